/* libFuzzer: the event envelope parser and validator. event_parse (with its
 * fast path) and event_parse_reference (the whole envelope through jansson)
 * must agree on every input, and an event that parses must serialise and
 * parse again to the same id, type and stream. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct event ev, again;
    char err[256];
    int rc = event_parse((const char *)data, size, &ev, err, sizeof err);
    struct event full;
    int rc_full = event_parse_reference((const char *)data, size, &full, err, sizeof err);
    if (rc != rc_full)
        abort(); /* the fast path took what the full parse refuses, or the other way */
    if (rc < 0)
        return 0;
    if (strcmp(ev.id, full.id) != 0 || strcmp(ev.type, full.type) != 0 || strcmp(ev.stream, full.stream) != 0 ||
        strcmp(ev.source, full.source) != 0 || (!ev.actor) != (!full.actor) ||
        (ev.actor && strcmp(ev.actor, full.actor) != 0) || ev.ts_ms != full.ts_ms || ev.v != full.v ||
        !json_equal(event_data(&ev), event_data(&full)))
        abort(); /* read differently */
    event_free(&full);
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
