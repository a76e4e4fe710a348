/* libFuzzer: the form parser (application/x-www-form-urlencoded), used by
 * the ingress for webhooks and by the Twilio emulator for every request. */
#include <stddef.h>
#include <stdint.h>

#include "form.h"
#include "kv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kv_list params;
    char err[256];
    kv_init(&params);
    if (form_parse((const char *)data, size, &params, err, sizeof err) == 0) {
        kv_get(&params, "Token");
        kv_get(&params, "Data");
    }
    kv_free(&params);
    return 0;
}
