/* Sync v1 in the emulator: Services, Maps and their Items, Documents, and
 * Permissions on maps and documents, as Twilio's Sync API has them. Maps and
 * documents can be addressed by SID or unique name; writes bump revisions,
 * which If-Match checks and the ETag header reports. Twilio's limits hold:
 * writes per object (a map's item writes and permission writes, and a
 * document's permission writes, count against the object; Twilio does not
 * document the permission part, we assume it) and object creations and
 * deletions per service, both answered 429 / 54009. Client
 * endpoints connect and disconnect through the simulation API, with
 * reachability webhooks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "emulator.h"
#include "timeutil.h"

#define SYNC_BASE_URL "https://sync.twilio.com/v1"
#define MAX_DATA_BYTES 16384
#define MAX_KEY_CHARS 320

struct emu_permission {
    char *identity;
    int read, write, manage;
};

struct emu_sync_item {
    char *key;
    json_t *data;
    long revision;
    int64_t created_ms, updated_ms;
};

/* A Map or a Document: the two share naming, revisions and permissions. */
struct emu_sync_object {
    char sid[EMU_SID_LEN + 1];
    char *unique_name;
    long revision;
    json_t *data;                /* documents */
    struct emu_sync_item *items; /* maps */
    size_t nitems;
    struct emu_permission *perms;
    size_t nperms;
    int64_t created_ms, updated_ms;
    double write_tokens;  /* Sync's per-object write budget */
    int64_t tokens_at_ms; /* when write_tokens was last refilled */
};

struct emu_endpoint {
    char id[EMU_SID_LEN + 1];
    char *identity;
    int connected;
    int64_t disconnect_due_ms; /* > 0: endpoint_disconnected waits for debouncing */
};

struct emu_sync_service {
    char sid[EMU_SID_LEN + 1];
    char *friendly_name;
    char *webhook_url;
    int acl_enabled, reachability, debouncing, debouncing_window, webhooks_from_rest;
    struct emu_sync_object *maps;
    size_t nmaps;
    struct emu_sync_object *docs;
    size_t ndocs;
    struct emu_endpoint *endpoints;
    size_t nendpoints;
    double create_tokens; /* the service's object creation budget */
    int64_t create_tokens_at_ms;
    int64_t created_ms, updated_ms;
};

/* --- JSON views -------------------------------------------------------------------------- */

static json_t *revision_json(long revision)
{
    char text[24];
    snprintf(text, sizeof text, "%ld", revision);
    return json_string(text);
}

static void set_etag(struct emu_response *resp, long revision)
{
    snprintf(resp->etag, sizeof resp->etag, "%ld", revision);
}

static json_t *service_json(const struct emulator *emu, const struct emu_sync_service *s)
{
    char url[128], docs[160], lists[160], maps[160], streams[160];
    snprintf(url, sizeof url, SYNC_BASE_URL "/Services/%s", s->sid);
    snprintf(docs, sizeof docs, "%s/Documents", url);
    snprintf(lists, sizeof lists, "%s/Lists", url);
    snprintf(maps, sizeof maps, "%s/Maps", url);
    snprintf(streams, sizeof streams, "%s/Streams", url);
    return json_pack("{s:s, s:n, s:s, s:o, s:o, s:o, s:s, s:o, s:b, s:b, s:b, s:b, s:i, "
                     "s:{s:s, s:s, s:s, s:s}}",
                     "sid", s->sid, "unique_name", "account_sid", emu->account_sid, "friendly_name",
                     s->friendly_name ? json_string(s->friendly_name) : json_null(), "date_created",
                     emu_date_or_null(s->created_ms), "date_updated", emu_date_or_null(s->updated_ms), "url", url,
                     "webhook_url", s->webhook_url ? json_string(s->webhook_url) : json_null(),
                     "webhooks_from_rest_enabled", s->webhooks_from_rest, "reachability_webhooks_enabled",
                     s->reachability, "acl_enabled", s->acl_enabled, "reachability_debouncing_enabled", s->debouncing,
                     "reachability_debouncing_window", s->debouncing_window, "links", "documents", docs, "lists", lists,
                     "maps", maps, "streams", streams);
}

static json_t *map_json(const struct emulator *emu, const struct emu_sync_service *s, const struct emu_sync_object *m)
{
    char url[192], items[224], perms[224];
    snprintf(url, sizeof url, SYNC_BASE_URL "/Services/%s/Maps/%s", s->sid, m->sid);
    snprintf(items, sizeof items, "%s/Items", url);
    snprintf(perms, sizeof perms, "%s/Permissions", url);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:o, s:n, s:o, s:o, s:s}", "sid", m->sid, "unique_name",
                     m->unique_name, "account_sid", emu->account_sid, "service_sid", s->sid, "url", url, "links",
                     "items", items, "permissions", perms, "revision", revision_json(m->revision), "date_expires",
                     "date_created", emu_date_or_null(m->created_ms), "date_updated", emu_date_or_null(m->updated_ms),
                     "created_by", "system");
}

static json_t *item_json(const struct emulator *emu, const struct emu_sync_service *s, const struct emu_sync_object *m,
                         const struct emu_sync_item *it)
{
    char url[512];
    snprintf(url, sizeof url, SYNC_BASE_URL "/Services/%s/Maps/%s/Items/%s", s->sid, m->sid, it->key);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:O, s:n, s:o, s:o, s:s}", "key", it->key, "account_sid",
                     emu->account_sid, "service_sid", s->sid, "map_sid", m->sid, "url", url, "revision",
                     revision_json(it->revision), "data", it->data, "date_expires", "date_created",
                     emu_date_or_null(it->created_ms), "date_updated", emu_date_or_null(it->updated_ms), "created_by",
                     "system");
}

static json_t *document_json(const struct emulator *emu, const struct emu_sync_service *s,
                             const struct emu_sync_object *d)
{
    char url[192], perms[224];
    snprintf(url, sizeof url, SYNC_BASE_URL "/Services/%s/Documents/%s", s->sid, d->sid);
    snprintf(perms, sizeof perms, "%s/Permissions", url);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:s}, s:o, s:O, s:n, s:o, s:o, s:s}", "sid", d->sid, "unique_name",
                     d->unique_name, "account_sid", emu->account_sid, "service_sid", s->sid, "url", url, "links",
                     "permissions", perms, "revision", revision_json(d->revision), "data", d->data, "date_expires",
                     "date_created", emu_date_or_null(d->created_ms), "date_updated", emu_date_or_null(d->updated_ms),
                     "created_by", "system");
}

static json_t *permission_json(const struct emulator *emu, const struct emu_sync_service *s,
                               const struct emu_sync_object *o, const char *kind, const struct emu_permission *p)
{
    char url[512];
    snprintf(url, sizeof url, SYNC_BASE_URL "/Services/%s/%s/%s/Permissions/%s", s->sid,
             strcmp(kind, "map_sid") == 0 ? "Maps" : "Documents", o->sid, p->identity);
    return json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:b, s:s}", "account_sid", emu->account_sid, "service_sid", s->sid,
                     kind, o->sid, "identity", p->identity, "read", p->read, "write", p->write, "manage", p->manage,
                     "url", url);
}

/* --- rate limit and write counts ----------------------------------------------------------- */

/* Takes one token from a bucket refilled at rate per second and holding
 * burst_s seconds of tokens (full at first use). Returns 1, or 0 when empty.
 * A rate of 0 means no limit. */
static int bucket_take(double *tokens, int64_t *at_ms, double rate, double burst_s)
{
    if (rate <= 0)
        return 1;
    double capacity = rate * burst_s;
    int64_t now = time_monotonic_ms();
    if (*at_ms == 0) {
        *tokens = capacity;
    } else {
        *tokens += (double)(now - *at_ms) * rate / 1000.0;
        if (*tokens > capacity)
            *tokens = capacity;
    }
    *at_ms = now;
    if (*tokens < 1.0)
        return 0;
    *tokens -= 1.0;
    return 1;
}

/* Takes one creation or deletion from the service's budget (Twilio asks to
 * keep object creation under 20/s per service). Returns 1, or 0 after
 * answering 429 / 54009. */
static int take_create(struct emulator *emu, struct emu_sync_service *s, struct emu_response *resp)
{
    if (bucket_take(&s->create_tokens, &s->create_tokens_at_ms, emu->sync_creates_per_s, emu->sync_burst_s))
        return 1;
    emu->responses_429++;
    emu_error(resp, 429, 54009, "Rate limit exceeded for object creation in the Sync service");
    return 0;
}

/* Takes one write from the object's bucket (refilled at sync_writes_per_s,
 * holding sync_burst_s seconds of writes). Returns 1, or 0 after answering
 * 429 / 54009 when the object is over Twilio's limit. */
static int take_write(struct emulator *emu, struct emu_sync_object *o, struct emu_response *resp)
{
    if (!bucket_take(&o->write_tokens, &o->tokens_at_ms, emu->sync_writes_per_s, emu->sync_burst_s)) {
        emu->responses_429++;
        emu_error(resp, 429, 54009, "Rate limit exceeded for the Sync object");
        return 0;
    }
    json_t *count = json_object_get(emu->sync_writes, o->sid);
    json_object_set_new(emu->sync_writes, o->sid, json_integer(count ? json_integer_value(count) + 1 : 1));
    return 1;
}

/* --- parameters ---------------------------------------------------------------------------- */

/* Parses the Data parameter as a JSON object within Sync's size limit.
 * Returns the value, or NULL after answering with the error. */
static json_t *data_param(const struct emu_request *req, struct emu_response *resp, int required)
{
    const char *text = emu_param(req, "Data");
    if (!text) {
        if (required)
            emu_error(resp, 400, 20001, "Missing required parameter Data in the post body");
        else
            return json_object();
        return NULL;
    }
    if (strlen(text) > MAX_DATA_BYTES) {
        emu_error(resp, 413, 54006, "Sync entity is too large: Data is limited to 16 KiB");
        return NULL;
    }
    json_t *data = json_loads(text, 0, NULL);
    if (!json_is_object(data)) {
        json_decref(data);
        emu_error(resp, 400, 54008, "Invalid request body: Data must be a JSON object");
        return NULL;
    }
    return data;
}

/* 1 when If-Match is absent or equals the revision (quoted or not). */
static int if_match_ok(const struct emu_request *req, long revision)
{
    const char *want = emu_header(req, "If-Match");
    if (!want)
        return 1;
    char plain[24], quoted[28];
    snprintf(plain, sizeof plain, "%ld", revision);
    snprintf(quoted, sizeof quoted, "\"%ld\"", revision);
    return strcmp(want, plain) == 0 || strcmp(want, quoted) == 0 || strcmp(want, "*") == 0;
}

static void method_not_allowed(struct emu_response *resp)
{
    emu_error(resp, 405, 20004, "Method not allowed");
}

static void out_of_memory(struct emu_response *resp)
{
    emu_error(resp, 500, 20500, "Internal server error");
}

/* --- objects (maps and documents) ----------------------------------------------------------- */

static struct emu_sync_object *find_object(struct emu_sync_object *list, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i].sid, id) == 0 || strcmp(list[i].unique_name, id) == 0)
            return &list[i];
    return NULL;
}

static void free_object(struct emu_sync_object *o)
{
    for (size_t i = 0; i < o->nitems; i++) {
        free(o->items[i].key);
        json_decref(o->items[i].data);
    }
    free(o->items);
    for (size_t i = 0; i < o->nperms; i++)
        free(o->perms[i].identity);
    free(o->perms);
    json_decref(o->data);
    free(o->unique_name);
}

/* Adds an object to *list; answers 54301 when the unique name is taken and
 * 54009 when the service creates too fast. */
static struct emu_sync_object *create_object(struct emulator *emu, struct emu_sync_service *s,
                                             struct emu_sync_object **list, size_t *n, const char *prefix,
                                             const struct emu_request *req, struct emu_response *resp)
{
    const char *name = emu_param(req, "UniqueName");
    if (name && strlen(name) > MAX_KEY_CHARS) {
        emu_error(resp, 400, 54302, "Unique name is too long");
        return NULL;
    }
    if (name && find_object(*list, *n, name)) {
        emu_error(resp, 409, 54301, "Unique name already exists");
        return NULL;
    }
    if (!take_create(emu, s, resp))
        return NULL;
    struct emu_sync_object *grown = realloc(*list, (*n + 1) * sizeof *grown);
    if (!grown) {
        out_of_memory(resp);
        return NULL;
    }
    *list = grown;
    struct emu_sync_object *o = &grown[(*n)++];
    memset(o, 0, sizeof *o);
    emu_new_sid(prefix, o->sid);
    o->unique_name = strdup(name ? name : o->sid);
    o->created_ms = o->updated_ms = time_now_ms();
    return o;
}

static void delete_object(struct emu_sync_object *list, size_t *n, struct emu_sync_object *o)
{
    size_t index = (size_t)(o - list);
    free_object(o);
    memmove(&list[index], &list[index + 1], (*n - index - 1) * sizeof *list);
    (*n)--;
}

static void permissions(struct emulator *emu, struct emu_sync_service *s, struct emu_sync_object *o, const char *kind,
                        const struct emu_request *req, int first, struct emu_response *resp)
{
    if (req->nsegments == first) {
        if (strcmp(req->method, "GET") != 0) {
            method_not_allowed(resp);
            return;
        }
        json_t *all = json_array();
        for (size_t i = 0; i < o->nperms; i++)
            json_array_append_new(all, permission_json(emu, s, o, kind, &o->perms[i]));
        emu_reply(resp, 200, emu_list_page("permissions", all, req, SYNC_BASE_URL "/Permissions"));
        return;
    }
    const char *identity = req->segments[first];
    struct emu_permission *p = NULL;
    for (size_t i = 0; i < o->nperms; i++)
        if (strcmp(o->perms[i].identity, identity) == 0)
            p = &o->perms[i];
    if (strcmp(req->method, "POST") == 0) {
        int read = emu_param_bool(req, "Read", -2), write = emu_param_bool(req, "Write", -2),
            manage = emu_param_bool(req, "Manage", -2);
        if (read == -2 || write == -2 || manage == -2) {
            emu_error(resp, 400, 20001, "Missing required parameter Read, Write or Manage in the post body");
            return;
        }
        if (read < 0 || write < 0 || manage < 0) {
            emu_error(resp, 400, 20001, "Read, Write and Manage must be true or false");
            return;
        }
        if (!take_write(emu, o, resp))
            return;
        if (!p) {
            struct emu_permission *grown = realloc(o->perms, (o->nperms + 1) * sizeof *grown);
            char *copy = strdup(identity);
            if (!grown || !copy) {
                free(copy);
                if (grown)
                    o->perms = grown;
                out_of_memory(resp);
                return;
            }
            o->perms = grown;
            p = &o->perms[o->nperms++];
            p->identity = copy;
        }
        p->read = read;
        p->write = write;
        p->manage = manage;
        emu_reply(resp, 200, permission_json(emu, s, o, kind, p));
    } else if (!p) {
        emu_not_found(resp);
    } else if (strcmp(req->method, "GET") == 0) {
        emu_reply(resp, 200, permission_json(emu, s, o, kind, p));
    } else if (strcmp(req->method, "DELETE") == 0) {
        if (!take_write(emu, o, resp))
            return;
        free(p->identity);
        size_t index = (size_t)(p - o->perms);
        memmove(&o->perms[index], &o->perms[index + 1], (o->nperms - index - 1) * sizeof *p);
        o->nperms--;
        emu_reply(resp, 204, NULL);
    } else {
        method_not_allowed(resp);
    }
}

/* --- map items ------------------------------------------------------------------------------ */

static struct emu_sync_item *find_item(struct emu_sync_object *m, const char *key)
{
    for (size_t i = 0; i < m->nitems; i++)
        if (strcmp(m->items[i].key, key) == 0)
            return &m->items[i];
    return NULL;
}

static int compare_items(const void *a, const void *b)
{
    const struct emu_sync_item *x = *(const struct emu_sync_item *const *)a;
    const struct emu_sync_item *y = *(const struct emu_sync_item *const *)b;
    return strcmp(x->key, y->key);
}

static void list_items(struct emulator *emu, struct emu_sync_service *s, struct emu_sync_object *m,
                       const struct emu_request *req, struct emu_response *resp)
{
    const char *order = emu_param(req, "Order");
    const char *from = emu_param(req, "From");
    const char *bounds = emu_param(req, "Bounds");
    int desc = order && strcasecmp(order, "desc") == 0;
    int exclusive = bounds && strcasecmp(bounds, "exclusive") == 0;
    const struct emu_sync_item **sorted = malloc((m->nitems ? m->nitems : 1) * sizeof *sorted);
    if (!sorted) {
        out_of_memory(resp);
        return;
    }
    for (size_t i = 0; i < m->nitems; i++)
        sorted[i] = &m->items[i];
    qsort(sorted, m->nitems, sizeof *sorted, compare_items);
    json_t *all = json_array();
    for (size_t k = 0; k < m->nitems; k++) {
        const struct emu_sync_item *it = sorted[desc ? m->nitems - 1 - k : k];
        if (from) {
            int c = strcmp(it->key, from);
            if ((desc ? c > 0 : c < 0) || (exclusive && c == 0))
                continue;
        }
        json_array_append_new(all, item_json(emu, s, m, it));
    }
    free(sorted);
    char url[192];
    snprintf(url, sizeof url, SYNC_BASE_URL "/Services/%s/Maps/%s/Items", s->sid, m->sid);
    emu_reply(resp, 200, emu_list_page("items", all, req, url));
}

static void create_item(struct emulator *emu, struct emu_sync_service *s, struct emu_sync_object *m,
                        const struct emu_request *req, struct emu_response *resp)
{
    const char *key = emu_param(req, "Key");
    if (!key || !key[0]) {
        emu_error(resp, 400, 20001, "Missing required parameter Key in the post body");
        return;
    }
    if (strlen(key) > MAX_KEY_CHARS) {
        emu_error(resp, 400, 54209, "Map Item key is too long");
        return;
    }
    json_t *data = data_param(req, resp, 1);
    if (!data)
        return;
    if (find_item(m, key)) {
        json_decref(data);
        emu_error(resp, 409, 54208, "Map Item with the specified key already exists");
        return;
    }
    if (!take_write(emu, m, resp)) {
        json_decref(data);
        return;
    }
    struct emu_sync_item *grown = realloc(m->items, (m->nitems + 1) * sizeof *grown);
    char *copy = strdup(key);
    if (!grown || !copy) {
        if (grown)
            m->items = grown;
        free(copy);
        json_decref(data);
        out_of_memory(resp);
        return;
    }
    m->items = grown;
    struct emu_sync_item *it = &m->items[m->nitems++];
    it->key = copy;
    it->data = data;
    it->revision = 0;
    it->created_ms = it->updated_ms = time_now_ms();
    m->revision++;
    m->updated_ms = it->created_ms;
    set_etag(resp, it->revision);
    emu_reply(resp, 201, item_json(emu, s, m, it));
}

static void item(struct emulator *emu, struct emu_sync_service *s, struct emu_sync_object *m,
                 const struct emu_request *req, struct emu_response *resp)
{
    struct emu_sync_item *it = find_item(m, req->segments[6]);
    if (!it) {
        emu_not_found(resp);
        return;
    }
    if (strcmp(req->method, "GET") == 0) {
        set_etag(resp, it->revision);
        emu_reply(resp, 200, item_json(emu, s, m, it));
        return;
    }
    if (strcmp(req->method, "POST") != 0 && strcmp(req->method, "DELETE") != 0) {
        method_not_allowed(resp);
        return;
    }
    if (!if_match_ok(req, it->revision)) {
        emu_error(resp, 412, 54205, "The revision of the Map Item does not match the expected revision");
        return;
    }
    if (!take_write(emu, m, resp))
        return;
    if (strcmp(req->method, "DELETE") == 0) {
        free(it->key);
        json_decref(it->data);
        size_t index = (size_t)(it - m->items);
        memmove(&m->items[index], &m->items[index + 1], (m->nitems - index - 1) * sizeof *it);
        m->nitems--;
        m->revision++;
        m->updated_ms = time_now_ms();
        emu_reply(resp, 204, NULL);
        return;
    }
    json_t *data = data_param(req, resp, 0);
    if (!data)
        return;
    if (!emu_param(req, "Data")) { /* only a TTL change: nothing we model */
        json_decref(data);
    } else {
        json_decref(it->data); /* an update replaces the data, no merge */
        it->data = data;
        it->revision++;
        m->revision++;
    }
    it->updated_ms = m->updated_ms = time_now_ms();
    set_etag(resp, it->revision);
    emu_reply(resp, 200, item_json(emu, s, m, it));
}

/* --- maps and documents --------------------------------------------------------------------- */

static void maps(struct emulator *emu, struct emu_sync_service *s, const struct emu_request *req,
                 struct emu_response *resp)
{
    if (req->nsegments == 4) {
        if (strcmp(req->method, "POST") == 0) {
            struct emu_sync_object *m = create_object(emu, s, &s->maps, &s->nmaps, "MP", req, resp);
            if (m)
                emu_reply(resp, 201, map_json(emu, s, m));
        } else if (strcmp(req->method, "GET") == 0) {
            json_t *all = json_array();
            for (size_t i = 0; i < s->nmaps; i++)
                json_array_append_new(all, map_json(emu, s, &s->maps[i]));
            emu_reply(resp, 200, emu_list_page("maps", all, req, SYNC_BASE_URL "/Maps"));
        } else {
            method_not_allowed(resp);
        }
        return;
    }
    struct emu_sync_object *m = find_object(s->maps, s->nmaps, req->segments[4]);
    if (!m) {
        emu_not_found(resp);
        return;
    }
    if (req->nsegments == 5) {
        if (strcmp(req->method, "GET") == 0 || strcmp(req->method, "POST") == 0)
            emu_reply(resp, 200, map_json(emu, s, m));
        else if (strcmp(req->method, "DELETE") == 0) {
            if (take_create(emu, s, resp)) {
                delete_object(s->maps, &s->nmaps, m);
                emu_reply(resp, 204, NULL);
            }
        } else
            method_not_allowed(resp);
        return;
    }
    if (strcmp(req->segments[5], "Items") == 0 && req->nsegments == 6) {
        if (strcmp(req->method, "POST") == 0)
            create_item(emu, s, m, req, resp);
        else if (strcmp(req->method, "GET") == 0)
            list_items(emu, s, m, req, resp);
        else
            method_not_allowed(resp);
    } else if (strcmp(req->segments[5], "Items") == 0 && req->nsegments == 7) {
        item(emu, s, m, req, resp);
    } else if (strcmp(req->segments[5], "Permissions") == 0 && req->nsegments <= 7) {
        permissions(emu, s, m, "map_sid", req, 6, resp);
    } else {
        emu_not_found(resp);
    }
}

static void documents(struct emulator *emu, struct emu_sync_service *s, const struct emu_request *req,
                      struct emu_response *resp)
{
    if (req->nsegments == 4) {
        if (strcmp(req->method, "POST") == 0) {
            json_t *data = data_param(req, resp, 0);
            if (!data)
                return;
            struct emu_sync_object *d = create_object(emu, s, &s->docs, &s->ndocs, "ET", req, resp);
            if (!d) {
                json_decref(data);
                return;
            }
            d->data = data;
            take_write(emu, d, resp); /* a fresh object always has budget */
            set_etag(resp, d->revision);
            emu_reply(resp, 201, document_json(emu, s, d));
        } else if (strcmp(req->method, "GET") == 0) {
            json_t *all = json_array();
            for (size_t i = 0; i < s->ndocs; i++)
                json_array_append_new(all, document_json(emu, s, &s->docs[i]));
            emu_reply(resp, 200, emu_list_page("documents", all, req, SYNC_BASE_URL "/Documents"));
        } else {
            method_not_allowed(resp);
        }
        return;
    }
    struct emu_sync_object *d = find_object(s->docs, s->ndocs, req->segments[4]);
    if (!d) {
        emu_not_found(resp);
        return;
    }
    if (req->nsegments >= 6) {
        if (strcmp(req->segments[5], "Permissions") == 0 && req->nsegments <= 7)
            permissions(emu, s, d, "document_sid", req, 6, resp);
        else
            emu_not_found(resp);
        return;
    }
    if (strcmp(req->method, "GET") == 0) {
        set_etag(resp, d->revision);
        emu_reply(resp, 200, document_json(emu, s, d));
    } else if (strcmp(req->method, "DELETE") == 0) {
        if (take_create(emu, s, resp)) {
            delete_object(s->docs, &s->ndocs, d);
            emu_reply(resp, 204, NULL);
        }
    } else if (strcmp(req->method, "POST") == 0) {
        if (!if_match_ok(req, d->revision)) {
            emu_error(resp, 412, 54103, "The revision of the Document does not match the expected revision");
            return;
        }
        if (!take_write(emu, d, resp))
            return;
        json_t *data = data_param(req, resp, 0);
        if (!data)
            return;
        if (emu_param(req, "Data")) {
            json_decref(d->data);
            d->data = data;
            d->revision++;
        } else {
            json_decref(data);
        }
        d->updated_ms = time_now_ms();
        set_etag(resp, d->revision);
        emu_reply(resp, 200, document_json(emu, s, d));
    } else {
        method_not_allowed(resp);
    }
}

/* --- services ------------------------------------------------------------------------------- */

/* Applies the service parameters of a create or update. Returns 0, or -1
 * after answering with the error. */
static int apply_service_params(struct emu_sync_service *s, const struct emu_request *req, struct emu_response *resp)
{
    int acl = emu_param_bool(req, "AclEnabled", s->acl_enabled);
    int reach = emu_param_bool(req, "ReachabilityWebhooksEnabled", s->reachability);
    int debounce = emu_param_bool(req, "ReachabilityDebouncingEnabled", s->debouncing);
    int from_rest = emu_param_bool(req, "WebhooksFromRestEnabled", s->webhooks_from_rest);
    int ok = 1;
    long window = emu_param_long(req, "ReachabilityDebouncingWindow", s->debouncing_window, &ok);
    if (acl < 0 || reach < 0 || debounce < 0 || from_rest < 0 || !ok || window < 1000 || window > 30000) {
        emu_error(resp, 400, 20001,
                  "Invalid parameter: booleans must be true or false, "
                  "ReachabilityDebouncingWindow 1000 to 30000");
        return -1;
    }
    const char *friendly = emu_param(req, "FriendlyName");
    const char *webhook = emu_param(req, "WebhookUrl");
    if (friendly) {
        free(s->friendly_name);
        s->friendly_name = strdup(friendly);
    }
    if (webhook) {
        free(s->webhook_url);
        s->webhook_url = webhook[0] ? strdup(webhook) : NULL;
    }
    s->acl_enabled = acl;
    s->reachability = reach;
    s->debouncing = debounce;
    s->webhooks_from_rest = from_rest;
    s->debouncing_window = (int)window;
    s->updated_ms = time_now_ms();
    return 0;
}

static void free_service(struct emu_sync_service *s)
{
    for (size_t i = 0; i < s->nmaps; i++)
        free_object(&s->maps[i]);
    for (size_t i = 0; i < s->ndocs; i++)
        free_object(&s->docs[i]);
    for (size_t i = 0; i < s->nendpoints; i++)
        free(s->endpoints[i].identity);
    free(s->endpoints);
    free(s->maps);
    free(s->docs);
    free(s->friendly_name);
    free(s->webhook_url);
    free(s);
}

static struct emu_sync_service *find_service(struct emulator *emu, const char *sid)
{
    for (size_t i = 0; i < emu->nservices; i++)
        if (strcmp(emu->services[i]->sid, sid) == 0)
            return emu->services[i];
    return NULL;
}

static void create_service(struct emulator *emu, const struct emu_request *req, struct emu_response *resp)
{
    struct emu_sync_service *s = calloc(1, sizeof *s);
    struct emu_sync_service **grown = s ? realloc(emu->services, (emu->nservices + 1) * sizeof *grown) : NULL;
    if (!grown) {
        free(s);
        out_of_memory(resp);
        return;
    }
    emu->services = grown;
    s->debouncing_window = 5000;
    if (apply_service_params(s, req, resp) < 0) {
        free_service(s);
        return;
    }
    emu_new_sid("IS", s->sid);
    s->created_ms = s->updated_ms;
    emu->services[emu->nservices++] = s;
    emu_reply(resp, 201, service_json(emu, s));
}

int sync_handle(struct emulator *emu, const struct emu_request *req, struct emu_response *resp)
{
    if (req->nsegments < 2 || strcmp(req->segments[0], "v1") != 0 || strcmp(req->segments[1], "Services") != 0)
        return 0;
    if (req->nsegments == 2) {
        if (strcmp(req->method, "POST") == 0) {
            create_service(emu, req, resp);
        } else if (strcmp(req->method, "GET") == 0) {
            json_t *all = json_array();
            for (size_t i = 0; i < emu->nservices; i++)
                json_array_append_new(all, service_json(emu, emu->services[i]));
            emu_reply(resp, 200, emu_list_page("services", all, req, SYNC_BASE_URL "/Services"));
        } else {
            method_not_allowed(resp);
        }
        return 1;
    }
    struct emu_sync_service *s = find_service(emu, req->segments[2]);
    if (!s) {
        emu_not_found(resp);
        return 1;
    }
    if (req->nsegments == 3) {
        if (strcmp(req->method, "GET") == 0) {
            emu_reply(resp, 200, service_json(emu, s));
        } else if (strcmp(req->method, "POST") == 0) {
            if (apply_service_params(s, req, resp) == 0)
                emu_reply(resp, 200, service_json(emu, s));
        } else if (strcmp(req->method, "DELETE") == 0) {
            size_t index = 0;
            while (emu->services[index] != s)
                index++;
            free_service(s);
            memmove(&emu->services[index], &emu->services[index + 1],
                    (emu->nservices - index - 1) * sizeof *emu->services);
            emu->nservices--;
            emu_reply(resp, 204, NULL);
        } else {
            method_not_allowed(resp);
        }
        return 1;
    }
    if (strcmp(req->segments[3], "Maps") == 0)
        maps(emu, s, req, resp);
    else if (strcmp(req->segments[3], "Documents") == 0)
        documents(emu, s, req, resp);
    else
        emu_not_found(resp);
    return 1;
}

void sync_free(struct emulator *emu)
{
    for (size_t i = 0; i < emu->nservices; i++)
        free_service(emu->services[i]);
    free(emu->services);
    emu->services = NULL;
    emu->nservices = 0;
}

json_t *sync_state(const struct emulator *emu)
{
    json_t *services = json_array();
    for (size_t i = 0; i < emu->nservices; i++) {
        const struct emu_sync_service *s = emu->services[i];
        json_t *service = service_json(emu, s);
        json_t *maps = json_array(), *docs = json_array();
        for (size_t m = 0; m < s->nmaps; m++) {
            const struct emu_sync_object *map = &s->maps[m];
            json_t *mj = map_json(emu, s, map);
            json_t *items = json_object();
            for (size_t k = 0; k < map->nitems; k++)
                json_object_set(items, map->items[k].key, map->items[k].data);
            json_object_set_new(mj, "items", items);
            json_array_append_new(maps, mj);
        }
        for (size_t d = 0; d < s->ndocs; d++)
            json_array_append_new(docs, document_json(emu, s, &s->docs[d]));
        json_object_set_new(service, "maps", maps);
        json_object_set_new(service, "documents", docs);
        json_array_append_new(services, service);
    }
    return services;
}

/* --- simulated client endpoints ------------------------------------------------------------ */

static void reachability_event(struct emulator *emu, const struct emu_sync_service *s, const struct emu_endpoint *ep,
                               const char *event)
{
    if (!s->reachability || !s->webhook_url || !emu->webhooks)
        return;
    struct kv_list params;
    kv_init(&params);
    char ts[RFC3339_MS_LEN + 1];
    time_format_rfc3339_ms(time_now_ms(), ts);
    kv_add(&params, "AccountSid", emu->account_sid);
    kv_add(&params, "ServiceSid", s->sid);
    kv_add(&params, "EventType", event);
    kv_add(&params, "Identity", ep->identity);
    kv_add(&params, "EndpointId", ep->id);
    kv_add(&params, "DateCreated", ts);
    webhook_send(emu->webhooks, s->webhook_url, "POST", &params);
}

static void connect_endpoint(struct emulator *emu, struct emu_sync_service *s, const struct emu_request *req,
                             struct emu_response *resp)
{
    char *identity = emu_check_access_token(emu, emu_param(req, "Token"), "data_sync", "service_sid", s->sid, NULL,
                                            NULL, resp);
    if (!identity)
        return;
    /* A reconnection within the debouncing window cancels the pending
     * disconnect of the same identity: no webhook for either. */
    int cancelled = 0;
    for (size_t i = 0; i < s->nendpoints; i++) {
        struct emu_endpoint *old = &s->endpoints[i];
        if (old->disconnect_due_ms && strcmp(old->identity, identity) == 0) {
            old->disconnect_due_ms = 0;
            cancelled = 1;
        }
    }
    struct emu_endpoint *grown = realloc(s->endpoints, (s->nendpoints + 1) * sizeof *grown);
    if (!grown) {
        free(identity);
        out_of_memory(resp);
        return;
    }
    s->endpoints = grown;
    struct emu_endpoint *ep = &s->endpoints[s->nendpoints++];
    memset(ep, 0, sizeof *ep);
    emu_new_sid("EP", ep->id);
    ep->identity = identity;
    ep->connected = 1;
    if (!cancelled)
        reachability_event(emu, s, ep, "endpoint_connected");
    emu_reply(resp, 201,
              json_pack("{s:s, s:s, s:s}", "endpoint_id", ep->id, "identity", ep->identity, "service_sid", s->sid));
}

static void disconnect_endpoint(struct emulator *emu, struct emu_sync_service *s, const char *id,
                                struct emu_response *resp)
{
    struct emu_endpoint *ep = NULL;
    for (size_t i = 0; i < s->nendpoints; i++)
        if (strcmp(s->endpoints[i].id, id) == 0)
            ep = &s->endpoints[i];
    if (!ep || !ep->connected) {
        emu_not_found(resp);
        return;
    }
    ep->connected = 0;
    if (s->debouncing) {
        double scale = emu->time_scale > 0 ? emu->time_scale : 1;
        ep->disconnect_due_ms = time_now_ms() + (int64_t)(s->debouncing_window / scale);
        if (ep->disconnect_due_ms == 0)
            ep->disconnect_due_ms = 1;
    } else {
        reachability_event(emu, s, ep, "endpoint_disconnected");
    }
    emu_reply(resp, 200, json_pack("{s:s, s:b}", "endpoint_id", ep->id, "debounced", s->debouncing));
}

int sync_simulate(struct emulator *emu, const struct emu_request *req, struct emu_response *resp)
{
    /* segments: _emulator sync {service} endpoints [{id} disconnect] */
    if (req->nsegments < 4 || strcmp(req->segments[1], "sync") != 0 || strcmp(req->segments[3], "endpoints") != 0)
        return 0;
    if (strcmp(req->method, "POST") != 0) {
        method_not_allowed(resp);
        return 1;
    }
    struct emu_sync_service *s = find_service(emu, req->segments[2]);
    if (!s)
        emu_not_found(resp);
    else if (req->nsegments == 4)
        connect_endpoint(emu, s, req, resp);
    else if (req->nsegments == 6 && strcmp(req->segments[5], "disconnect") == 0)
        disconnect_endpoint(emu, s, req->segments[4], resp);
    else
        emu_error(resp, 404, 20404, "No such emulator endpoint");
    return 1;
}

void sync_tick(struct emulator *emu, int64_t now_ms)
{
    for (size_t i = 0; i < emu->nservices; i++) {
        struct emu_sync_service *s = emu->services[i];
        for (size_t k = 0; k < s->nendpoints; k++) {
            struct emu_endpoint *ep = &s->endpoints[k];
            if (ep->disconnect_due_ms && now_ms >= ep->disconnect_due_ms) {
                ep->disconnect_due_ms = 0;
                reachability_event(emu, s, ep, "endpoint_disconnected");
            }
        }
    }
}
