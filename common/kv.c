/* Ordered name/value pairs (see kv.h). */
#include "kv.h"

#include <stdlib.h>
#include <string.h>

void kv_init(struct kv_list *list)
{
    list->items = NULL;
    list->len = 0;
    list->cap = 0;
}

void kv_free(struct kv_list *list)
{
    for (size_t i = 0; i < list->len; i++) {
        free(list->items[i].name);
        free(list->items[i].value);
    }
    free(list->items);
    kv_init(list);
}

static char *copy_bytes(const char *s, size_t len)
{
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    if (len)
        memcpy(out, s, len);
    out[len] = '\0';
    return out;
}

int kv_addn(struct kv_list *list, const char *name, size_t name_len, const char *value, size_t value_len)
{
    if (list->len == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 8;
        struct kv_pair *items = realloc(list->items, cap * sizeof *items);
        if (!items)
            return -1;
        list->items = items;
        list->cap = cap;
    }
    char *n = copy_bytes(name, name_len);
    char *v = copy_bytes(value, value_len);
    if (!n || !v) {
        free(n);
        free(v);
        return -1;
    }
    list->items[list->len++] = (struct kv_pair){n, name_len, v, value_len};
    return 0;
}

int kv_add(struct kv_list *list, const char *name, const char *value)
{
    return kv_addn(list, name, strlen(name), value, strlen(value));
}

const struct kv_pair *kv_find(const struct kv_list *list, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < list->len; i++) {
        const struct kv_pair *p = &list->items[i];
        if (p->name_len == len && memcmp(p->name, name, len) == 0)
            return p;
    }
    return NULL;
}

const char *kv_get(const struct kv_list *list, const char *name)
{
    const struct kv_pair *p = kv_find(list, name);
    return p ? p->value : NULL;
}

size_t kv_count(const struct kv_list *list, const char *name)
{
    size_t len = strlen(name), n = 0;
    for (size_t i = 0; i < list->len; i++)
        if (list->items[i].name_len == len && memcmp(list->items[i].name, name, len) == 0)
            n++;
    return n;
}
