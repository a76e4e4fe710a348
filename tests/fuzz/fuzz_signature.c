/* libFuzzer: Twilio webhook signature checks. The input is split at the
 * first two newlines into the X-Twilio-Signature header, the URL (query
 * and bodySHA256 included) and the body, read both as a form and as JSON. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"
#include "kv.h"
#include "signature.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *header = text, *url = strchr(header, '\n'), *body = NULL;
    if (url) {
        *url++ = '\0';
        body = strchr(url, '\n');
        if (body)
            *body++ = '\0';
    }
    if (url && body) {
        struct kv_list params;
        char err[128];
        kv_init(&params);
        if (form_parse(body, strlen(body), &params, err, sizeof err) == 0)
            signature_valid("fuzz-auth-token", url, &params, header);
        kv_free(&params);
        signature_valid_json("fuzz-auth-token", url, body, strlen(body), header);
    }
    free(text);
    return 0;
}
