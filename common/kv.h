/* An ordered list of (name, value) string pairs: form fields, query
 * parameters, webhook parameters. Names may repeat. Every string is owned by
 * the list and NUL-terminated; lengths are kept because a decoded value may
 * itself contain a NUL byte. */
#ifndef STAGEHAND_KV_H
#define STAGEHAND_KV_H

#include <stddef.h>

struct kv_pair {
    char *name;
    size_t name_len;
    char *value;
    size_t value_len;
};

struct kv_list {
    struct kv_pair *items;
    size_t len;
    size_t cap;
};

void kv_init(struct kv_list *list);
void kv_free(struct kv_list *list);

/* Appends copies of name and value. Returns 0, or -1 when out of memory. */
int kv_add(struct kv_list *list, const char *name, const char *value);
int kv_addn(struct kv_list *list, const char *name, size_t name_len, const char *value, size_t value_len);

/* The value of the first pair called name, or NULL. */
const char *kv_get(const struct kv_list *list, const char *name);

/* The first pair called name, or NULL. */
const struct kv_pair *kv_find(const struct kv_list *list, const char *name);

/* How many pairs are called name. */
size_t kv_count(const struct kv_list *list, const char *name);

#endif
