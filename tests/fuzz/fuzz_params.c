/* libFuzzer: the ingress's request body parser (JSON and form) and the
 * field readers the handlers use. The first byte picks the content type. */
#include <stddef.h>
#include <stdint.h>

#include "params.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const types[] = {"application/json", "application/x-www-form-urlencoded",
                                        "application/json; charset=utf-8", "text/plain", NULL};
    if (size == 0)
        return 0;
    const char *type = types[data[0] % 5];
    struct params p;
    struct api_error e;
    if (params_parse(type, (const char *)data + 1, size - 1, &p, &e) < 0)
        return 0;
    int flag;
    const char *optional;
    params_identity(&p, "user_identity", &e);
    params_stream(&p, "stream_name", &e);
    params_bool(&p, "hand_raised", &flag, &e);
    params_optional_identity(&p, "room_sid", &optional, &e);
    params_has(&p, "room_name");
    params_free(&p);
    return 0;
}
