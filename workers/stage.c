/* The invited identities of one stream's stage (see stage.h). */
#include "stage.h"

#include <stdlib.h>
#include <string.h>

#include "text.h"

void stage_clear(struct stage *s)
{
    for (size_t i = 0; i < s->count; i++)
        free(s->invited[i]);
    s->count = 0;
}

static long position(const struct stage *s, const char *identity)
{
    for (size_t i = 0; i < s->count; i++)
        if (strcmp(s->invited[i], identity) == 0)
            return (long)i;
    return -1;
}

/* Removes entry i, keeping the order of the others. */
static void drop(struct stage *s, size_t i)
{
    free(s->invited[i]);
    memmove(&s->invited[i], &s->invited[i + 1], (s->count - i - 1) * sizeof s->invited[0]);
    s->count--;
}

int stage_invite(struct stage *s, const char *identity)
{
    if (position(s, identity) >= 0)
        return 0;
    char *copy = strdup(identity);
    if (!copy)
        return -1;
    if (s->count == STAGE_INVITED_MAX)
        drop(s, 0);
    s->invited[s->count++] = copy;
    return 1;
}

int stage_uninvite(struct stage *s, const char *identity)
{
    long i = position(s, identity);
    if (i < 0)
        return 0;
    drop(s, (size_t)i);
    return 1;
}

int stage_is_invited(const struct stage *s, const char *identity)
{
    return position(s, identity) >= 0;
}

json_t *stage_to_json(const struct stage *s)
{
    json_t *list = json_array();
    for (size_t i = 0; list && i < s->count; i++) {
        if (json_array_append_new(list, json_string(s->invited[i])) < 0) {
            json_decref(list);
            return NULL;
        }
    }
    return list;
}

int stage_from_json(struct stage *s, const json_t *list)
{
    stage_clear(s);
    if (!json_is_array(list))
        return -1;
    size_t i;
    const json_t *entry;
    json_array_foreach (list, i, entry) {
        const char *identity = json_string_value(entry);
        if (!identity || identity_problem(identity, json_string_length(entry)) ||
            strlen(identity) != json_string_length(entry))
            continue;
        if (stage_invite(s, identity) < 0) {
            stage_clear(s);
            return -1;
        }
    }
    return 0;
}
