/* libFuzzer: the event envelope parser and validator. An event that parses
 * must serialise and parse again to the same id, type and stream. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct event ev, again;
    char err[256];
    if (event_parse((const char *)data, size, &ev, err, sizeof err) < 0)
        return 0;
    char *text = event_serialize(&ev);
    if (text) {
        if (event_parse(text, strlen(text), &again, err, sizeof err) < 0)
            abort(); /* what we wrote we must read back */
        if (strcmp(again.id, ev.id) != 0 || strcmp(again.type, ev.type) != 0 || strcmp(again.stream, ev.stream) != 0)
            abort();
        event_free(&again);
        free(text);
    }
    event_free(&ev);
    return 0;
}
