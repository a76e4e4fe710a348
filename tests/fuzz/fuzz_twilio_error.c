/* libFuzzer: the parser of Twilio's error bodies (both shapes). */
#include <stddef.h>
#include <stdint.h>

#include "twilio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int code;
    char message[256];
    twilio_parse_error((const char *)data, size, 400, &code, message, sizeof message);
    twilio_parse_error((const char *)data, size, 503, &code, message, sizeof message);
    return 0;
}
