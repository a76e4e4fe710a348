/* Worker pools that grow and shrink during an event (issue 19): the whole
 * pipeline as real processes (broker, Twilio emulator, ingress, workers),
 * driven through the ingress with the reference client's flow.
 *
 * One join-and-leave burst is played twice over STREAMS streams each: first
 * on "base-NN" streams with one member per role and no rebalance, then on
 * "live-NN" streams while each role's pool grows to three members (a second,
 * then a third started mid-burst) and shrinks again (the first stopped with
 * SIGTERM, the second killed with SIGKILL). Per stream: VIEWERS viewers join
 * (/join-stream-as-viewer, /viewer-connected-to-player), four raise a hand,
 * the host invites one of them, one lowers it, four others leave (their Sync
 * endpoint drops, and the emulator's webhook comes back through the
 * ingress). At the end:
 *   - each stream's Sync state is exact (one service, the count, the listed
 *     viewers, the raised hands, the invitation), and so is its public state
 *     through the ingress; one room, PlayerStreamer and MediaProcessor each;
 *   - each live stream's Sync objects took as many writes as its base twin
 *     (the stream document's count updates aside: one per viewers round that
 *     saw the count change, which depends on timing, so only its other writes
 *     are compared; both are printed); the base streams, rebuilt by the new
 *     members, took no write at all after their own burst;
 *   - the DLQ is empty, the emulator answered no 429 and the ingress
 *     answered every request 200.
 * Sync access is on demand here (SYNC_EAGER_VIEWERS=0) and the viewers map
 * holds the first LISTED viewers, who stay: how many writes a viewer who
 * leaves costs would otherwise depend on whether a round saw it first.
 *
 * A second test runs two ingress processes side by side: a stream created
 * through one is joinable through the other once that one's view shows it,
 * and both answer the same public state, byte for byte; it prints how long
 * the views took.
 *
 * The first also prints the handoff figures (reported, not asserted): an event's
 * apply time is that of the first state record of its stream and role
 * whose applied_offset covers it (stagehand.state, read back afterwards);
 * each stretch in which a partition's events waited more than STALL_MS is
 * a time it applied nothing, printed with the other partitions' worst
 * delay meanwhile, beside the worst delays of the base run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "../support/emulator_process.h"
#include "../support/stack.h"
#include "kafka.h"
#include "timeutil.h"
#include "twilio.h"

#define STREAMS 20
#define VIEWERS 28      /* fan-01 .. fan-28 per stream */
#define LISTED 20       /* VIEWERS_MAP_CAP: fan-01 .. fan-20, who never leave */
#define FIRST_HAND 21   /* fan-21 .. fan-24 raise a hand; 21 is invited, 24 lowers it */
#define FIRST_LEAVER 25 /* fan-25 .. fan-28 leave */
#define CLIENTS 4
#define ROLES 3
#define MEMBERS 3
#define WAVE_MS 2500 /* a wave's requests are spread over this long */

static const char *const roles[ROLES] = {"room", "stream", "sync"};

struct fixture {
    struct stack s;
    struct emulator_process emu;
    struct twilio_client *emu_client;
    struct process members[ROLES][MEMBERS];
    int ports[ROLES][MEMBERS];
    char public_env[96], port_env[32];
    char service[2][STREAMS][40]; /* per run: each stream's Sync service SID */
    char *leaver_token[2][STREAMS][VIEWERS - FIRST_LEAVER + 1];
    int64_t actions_ms[8]; /* when each rebalance was started */
    const char *action_names[8];
    int nactions;
    int64_t base_start_ms, live_start_ms; /* each run's first wave after its streams were created */
};

static const char *const prefixes[2] = {"base", "live"};

/* --- requests ------------------------------------------------------------------------------- */

static json_t *emulator_get(struct fixture *f, const char *path)
{
    struct twilio_result res;
    twilio_request(f->emu_client, TWILIO_SYNC, "GET", path, NULL, NULL, &res);
    json_t *body = json_incref(res.body);
    twilio_result_free(&res);
    assert_non_null(body);
    return body;
}

/* POST to the ingress; the answer's JSON in *answer when asked for. */
static long api(struct fixture *f, const char *path, const char *body, json_t **answer)
{
    static const char *const headers[] = {"Authorization: " TEST_PASSCODE, "Content-Type: application/json", NULL};
    char url[256];
    snprintf(url, sizeof url, "%s%s", f->s.ingress_url, path);
    struct http_reply r;
    http_call("POST", url, headers, body, strlen(body), &r);
    if (answer)
        *answer = r.status == 200 ? json_loads(r.body, 0, NULL) : NULL;
    long status = r.status;
    http_reply_free(&r);
    return status;
}

static long emulator_post(struct fixture *f, const char *path, const char *form, json_t **answer)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", f->emu.base_url, path);
    struct http_reply r;
    http_call("POST", url, NULL, form, strlen(form), &r);
    if (answer)
        *answer = json_loads(r.body, 0, NULL);
    long status = r.status;
    http_reply_free(&r);
    return status;
}

/* One sample of a worker's metrics (-1 when absent or unreachable). */
static double metric(int port, const char *sample)
{
    char url[128], line_start[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    struct http_reply r;
    if (http_call("GET", url, NULL, NULL, 0, &r) < 0 || r.status != 200) {
        http_reply_free(&r);
        return -1;
    }
    snprintf(line_start, sizeof line_start, "\n%s ", sample);
    const char *at = strstr(r.body, line_start);
    double value = at ? atof(at + strlen(line_start)) : -1;
    http_reply_free(&r);
    return value;
}

/* --- the emulator's Sync state ------------------------------------------------------------- */

static void stream_name(char *out, size_t len, int run, int i)
{
    snprintf(out, len, "%s-%02d", prefixes[run], i);
}

/* The services named after stream in state: how many, and the last one. */
static json_t *service_of(json_t *state, const char *stream, int *count)
{
    char friendly[128];
    snprintf(friendly, sizeof friendly, "Live Video Stream %s", stream);
    json_t *found = NULL, *s;
    size_t i;
    *count = 0;
    json_array_foreach (json_object_get(state, "sync_services"), i, s) {
        const char *name = json_string_value(json_object_get(s, "friendly_name"));
        if (name && strcmp(name, friendly) == 0) {
            found = s;
            (*count)++;
        }
    }
    return found;
}

static json_t *named(json_t *service, const char *kind, const char *name)
{
    size_t i;
    json_t *o;
    json_array_foreach (json_object_get(service, kind), i, o) {
        const char *unique = json_string_value(json_object_get(o, "unique_name"));
        if (unique && strcmp(unique, name) == 0)
            return o;
    }
    return NULL;
}

static int count_named(json_t *list, const char *field, const char *value)
{
    int n = 0;
    size_t i;
    json_t *o;
    json_array_foreach (list, i, o) {
        const char *v = json_string_value(json_object_get(o, field));
        n += v && strcmp(v, value) == 0;
    }
    return n;
}

static int has_docs(json_t *service, int from, int to)
{
    for (int v = from; v <= to; v++) {
        char doc[32];
        snprintf(doc, sizeof doc, "user-fan-%02d", v);
        if (!named(service, "documents", doc))
            return 0;
    }
    return 1;
}

/* 1 when the map's items are exactly fan-<from> .. fan-<to> minus skip (0: none). */
static int items_are(json_t *service, const char *map, int from, int to, int skip)
{
    json_t *items = json_object_get(named(service, "maps", map), "items");
    if (!json_is_object(items) || json_object_size(items) != (size_t)(to - from + 1 - (skip >= from && skip <= to)))
        return 0;
    for (int v = from; v <= to; v++) {
        char key[32];
        snprintf(key, sizeof key, "fan-%02d", v);
        if (v != skip && !json_object_get(items, key))
            return 0;
    }
    return 1;
}

/* The stream's Sync is as the whole burst leaves it; why not in why. */
static int sync_exact(json_t *state, const char *stream, char *why, size_t whylen)
{
    int services;
    json_t *service = service_of(state, stream, &services);
    json_t *count = json_object_get(json_object_get(named(service, "documents", "stream"), "data"), "viewer_count");
    json_t *invited = json_object_get(json_object_get(named(service, "documents", "user-fan-21"), "data"),
                                      "speaker_invite");
    json_t *speakers = json_object_get(named(service, "maps", "speakers"), "items");
    const char *problem = services != 1 ? "not exactly one service"
                          : json_integer_value(count) != VIEWERS - (VIEWERS - FIRST_LEAVER + 1) ? "viewer_count"
                          : !items_are(service, "viewers", 1, LISTED, 0)                        ? "viewers map"
                          : !items_are(service, "raised_hands", FIRST_HAND, FIRST_HAND + 3, FIRST_HAND + 3)
                              ? "raised hands"
                          : !json_is_true(invited)                         ? "invitation"
                          : !has_docs(service, FIRST_HAND, FIRST_HAND + 3) ? "hand raisers' documents"
                          : json_object_size(speakers) != 1 || !json_object_get(speakers, "host") ? "speakers"
                                                                                                  : NULL;
    if (problem)
        snprintf(why, whylen, "%s: %s (count %lld)", stream, problem, (long long)json_integer_value(count));
    return problem == NULL;
}

/* Waits until every stream of the run is exact. */
static void wait_sync_exact(struct fixture *f, int run)
{
    char why[256] = "";
    for (int tries = 0; tries < 600; tries++) {
        json_t *state = emulator_get(f, "/_emulator/state");
        int exact = 1;
        for (int i = 0; i < STREAMS && exact; i++) {
            char stream[32];
            stream_name(stream, sizeof stream, run, i);
            exact = sync_exact(state, stream, why, sizeof why);
        }
        json_decref(state);
        if (exact)
            return;
        usleep(200 * 1000);
    }
    fail_msg("the %s streams never reached their exact Sync state: %s", prefixes[run], why);
}

/* Waits until every stream of the run shows its four raised hands and the
 * raisers' documents (so that the invitation and the lowered hand come
 * after them, as a person would). */
static void wait_hands(struct fixture *f, int run)
{
    for (int tries = 0; tries < 600; tries++) {
        json_t *state = emulator_get(f, "/_emulator/state");
        int shown = 1;
        for (int i = 0; i < STREAMS && shown; i++) {
            char stream[32];
            int services;
            stream_name(stream, sizeof stream, run, i);
            json_t *service = service_of(state, stream, &services);
            shown = items_are(service, "raised_hands", FIRST_HAND, FIRST_HAND + 3, 0) &&
                    has_docs(service, FIRST_HAND, FIRST_HAND + 3);
        }
        json_decref(state);
        if (shown)
            return;
        usleep(200 * 1000);
    }
    fail_msg("the %s streams' hands never showed", prefixes[run]);
}

/* Waits until every stream of the run shows the invitation and the lowered
 * hand (so that the SIGTERM's handoff is over before the SIGKILL). */
static void wait_invited(struct fixture *f, int run)
{
    for (int tries = 0; tries < 600; tries++) {
        json_t *state = emulator_get(f, "/_emulator/state");
        int shown = 1;
        for (int i = 0; i < STREAMS && shown; i++) {
            char stream[32];
            int services;
            stream_name(stream, sizeof stream, run, i);
            json_t *service = service_of(state, stream, &services);
            json_t *doc = json_object_get(named(service, "documents", "user-fan-21"), "data");
            shown = json_is_true(json_object_get(doc, "speaker_invite")) &&
                    items_are(service, "raised_hands", FIRST_HAND, FIRST_HAND + 3, FIRST_HAND + 3);
        }
        json_decref(state);
        if (shown)
            return;
        usleep(200 * 1000);
    }
    fail_msg("the %s streams' invitations and lowered hands never showed", prefixes[run]);
}

/* Every Sync object of the stream: "map/NAME" or "doc/NAME" -> writes; for
 * the stream document also "doc/stream#data" (its data updates, the
 * revision) and "doc/stream" counts the rest (creation, permissions). */
static json_t *writes_of(json_t *state, json_t *stats, const char *stream)
{
    int services;
    json_t *service = service_of(state, stream, &services);
    json_t *writes = json_object(), *sync_writes = json_object_get(stats, "sync_writes");
    static const char *const kinds[] = {"maps", "documents"};
    for (int k = 0; k < 2; k++) {
        size_t i;
        json_t *o;
        json_array_foreach (json_object_get(service, kinds[k]), i, o) {
            char key[160];
            const char *name = json_string_value(json_object_get(o, "unique_name"));
            json_int_t n = json_integer_value(
                json_object_get(sync_writes, json_string_value(json_object_get(o, "sid"))));
            snprintf(key, sizeof key, "%s/%s", k ? "doc" : "map", name ? name : "?");
            if (k && name && strcmp(name, "stream") == 0) {
                const char *revision = json_string_value(json_object_get(o, "revision"));
                json_int_t data = revision ? atoll(revision) : 0;
                json_object_set_new(writes, "doc/stream#data", json_integer(data));
                n -= data;
            }
            json_object_set_new(writes, key, json_integer(n));
        }
    }
    return writes;
}

/* --- the burst, played by CLIENTS threads ---------------------------------------------------- */

struct client {
    struct fixture *f;
    int run, wave, id;
    long spread_ms; /* the wave's requests spread over this long (0: at once) */
    int ok, refused429, failed;
    char failure[256];
};

static void tally(struct client *c, long status, long expected, const char *what)
{
    if (status == expected) {
        c->ok++;
        return;
    }
    if (status == 429)
        c->refused429++;
    if (!c->failed++)
        snprintf(c->failure, sizeof c->failure, "%s: %ld, not %ld", what, status, expected);
}

/* One step of a wave for fan v of stream i (its index k among the thread's steps). */
static void step(struct client *c, int i, int v)
{
    struct fixture *f = c->f;
    char stream[32], body[256], path[256];
    stream_name(stream, sizeof stream, c->run, i);
    snprintf(body, sizeof body, "{\"user_identity\":\"fan-%02d\",\"stream_name\":\"%s\"}", v, stream);
    if (c->wave == 0) {
        snprintf(body, sizeof body, "{\"user_identity\":\"host\",\"stream_name\":\"%s\"}", stream);
        tally(c, api(f, "/create-stream", body, NULL), 200, "create");
    } else if (c->wave == 1 || c->wave == 2) {
        json_t *answer = NULL;
        tally(c, api(f, "/join-stream-as-viewer", body, &answer), 200, "join");
        if (v >= FIRST_LEAVER) {
            const char *token = json_string_value(json_object_get(answer, "token"));
            char **slot = &f->leaver_token[c->run][i][v - FIRST_LEAVER];
            free(*slot);
            *slot = token ? strdup(token) : NULL;
        }
        json_decref(answer);
        tally(c, api(f, "/viewer-connected-to-player", body, NULL), 200, "connected");
        if (c->wave == 2 && v >= FIRST_HAND && v < FIRST_LEAVER) {
            snprintf(body, sizeof body, "{\"user_identity\":\"fan-%02d\",\"stream_name\":\"%s\",\"hand_raised\":true}",
                     v, stream);
            tally(c, api(f, "/raise-hand", body, NULL), 200, "raise-hand");
        }
    } else if (c->wave == 3) {
        if (v == FIRST_HAND) {
            tally(c, api(f, "/send-speaker-invite", body, NULL), 200, "invite");
        } else {
            snprintf(body, sizeof body, "{\"user_identity\":\"fan-%02d\",\"stream_name\":\"%s\",\"hand_raised\":false}",
                     v, stream);
            tally(c, api(f, "/raise-hand", body, NULL), 200, "lower-hand");
        }
    } else {
        /* The viewer closes the app: its Sync endpoint drops. */
        const char *token = f->leaver_token[c->run][i][v - FIRST_LEAVER];
        if (!token) {
            tally(c, 0, 201, "a leaver without a token");
            return;
        }
        char *form = malloc(strlen(token) + 8);
        if (!form) {
            tally(c, 0, 201, "out of memory");
            return;
        }
        sprintf(form, "Token=%s", token);
        json_t *endpoint = NULL;
        snprintf(path, sizeof path, "/_emulator/sync/%s/endpoints", f->service[c->run][i]);
        tally(c, emulator_post(f, path, form, &endpoint), 201, "endpoint connect");
        free(form);
        const char *id = json_string_value(json_object_get(endpoint, "endpoint_id"));
        snprintf(path, sizeof path, "/_emulator/sync/%s/endpoints/%s/disconnect", f->service[c->run][i],
                 id ? id : "none");
        json_decref(endpoint);
        tally(c, emulator_post(f, path, "", NULL), 200, "endpoint disconnect");
    }
}

static void *client_main(void *arg)
{
    struct client *c = arg;
    int from = c->wave == 0   ? 0
               : c->wave == 1 ? 1
               : c->wave == 2 ? LISTED / 2 + 1
               : c->wave == 3 ? FIRST_HAND
                              : FIRST_LEAVER;
    int to = c->wave == 0   ? 0
             : c->wave == 1 ? LISTED / 2
             : c->wave == 2 ? VIEWERS
             : c->wave == 3 ? FIRST_HAND + 3
                            : VIEWERS;
    int steps = 0, total = 0;
    for (int v = from; v <= to; v++)
        for (int i = c->id; i < STREAMS; i += CLIENTS)
            total += c->wave != 3 || v == FIRST_HAND || v == FIRST_HAND + 3;
    int64_t start = time_monotonic_ms();
    for (int v = from; v <= to; v++) {
        if (c->wave == 3 && v != FIRST_HAND && v != FIRST_HAND + 3)
            continue;
        /* Round robin over the thread's streams, so every partition gets events all along. */
        for (int i = c->id; i < STREAMS; i += CLIENTS) {
            int64_t due = start + c->spread_ms * steps++ / total;
            int64_t now = time_monotonic_ms();
            if (due > now)
                usleep((useconds_t)(due - now) * 1000);
            step(c, i, v);
        }
    }
    return NULL;
}

static struct client clients[CLIENTS];
static pthread_t threads[CLIENTS];

static void wave_start(struct fixture *f, int run, int wave, long spread_ms)
{
    for (int t = 0; t < CLIENTS; t++) {
        clients[t] = (struct client){.f = f, .run = run, .wave = wave, .id = t, .spread_ms = spread_ms};
        assert_int_equal(pthread_create(&threads[t], NULL, client_main, &clients[t]), 0);
    }
}

static int requests_ok, requests_429;

static void wave_end(void)
{
    for (int t = 0; t < CLIENTS; t++)
        assert_int_equal(pthread_join(threads[t], NULL), 0);
    for (int t = 0; t < CLIENTS; t++) {
        requests_ok += clients[t].ok;
        requests_429 += clients[t].refused429;
        if (clients[t].failed)
            fail_msg("wave %d: %d requests failed, the first %s", clients[t].wave, clients[t].failed,
                     clients[t].failure);
    }
}

/* --- members --------------------------------------------------------------------------------- */

static void start_member(struct fixture *f, int role, int m)
{
    char err[512];
    const char *env[] = {f->public_env,
                         "VIEWERS_MAP_CAP=20",
                         "COUNT_INTERVAL_MS=200",
                         "SYNC_EAGER_VIEWERS=0",
                         "SYNC_DEBOUNCE_MS=1000",
                         "LOG_LEVEL=info",
                         NULL};
    f->ports[role][m] = stack_start_worker(&f->s, roles[role], f->emu.base_url, env, &f->members[role][m], err,
                                           sizeof err);
    if (f->ports[role][m] < 0)
        fail_msg("%s", err);
}

static double partitions_of(struct fixture *f, int role, int m)
{
    return f->members[role][m].pid ? metric(f->ports[role][m], "stagehand_worker_partitions") : 0;
}

/* Waits until each role's partitions are held as want says: per member,
 * -1 any number (it may hold none), else at least that many; all of them
 * assigned in total. */
static void wait_assignment(struct fixture *f, const int want[MEMBERS], const char *what)
{
    for (int tries = 0; tries < 600; tries++) {
        int settled = 1;
        for (int r = 0; r < ROLES && settled; r++) {
            double total = 0;
            for (int m = 0; m < MEMBERS; m++) {
                double held = partitions_of(f, r, m);
                total += held > 0 ? held : 0;
                if (want[m] > 0 && held < want[m])
                    settled = 0;
            }
            settled = settled && total == 3;
        }
        if (settled)
            return;
        usleep(100 * 1000);
    }
    fail_msg("the partitions were never spread as expected after %s", what);
}

static void mark(struct fixture *f, const char *name)
{
    f->actions_ms[f->nactions] = time_now_ms();
    f->action_names[f->nactions++] = name;
}

/* --- set up and tear down -------------------------------------------------------------------- */

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    char err[512];
    assert_non_null(f);
    int port = process_free_port();
    assert_true(port > 0);
    /* The emulator's webhooks (a viewer's endpoint gone) come back to this ingress. */
    snprintf(f->public_env, sizeof f->public_env, "PUBLIC_BASE_URL=http://127.0.0.1:%d", port);
    snprintf(f->port_env, sizeof f->port_env, "INGRESS_PORT=%d", port);
    const char *ingress_env[] = {f->public_env, f->port_env, "CREATE_WAIT_MS=20000", "SYNC_EAGER_VIEWERS=0", NULL};
    if (stack_start_broker(&f->s, err, sizeof err) < 0 ||
        stack_start_ingress(&f->s, ingress_env, err, sizeof err) < 0 ||
        emulator_start(&f->emu, NULL, err, sizeof err) < 0)
        fail_msg("%s", err);
    f->emu_client = emulator_client(&f->emu, err, sizeof err);
    if (!f->emu_client)
        fail_msg("%s", err);
    for (int r = 0; r < ROLES; r++)
        start_member(f, r, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    int bad = 0;
    for (int r = 0; r < ROLES; r++)
        for (int m = 0; m < MEMBERS; m++)
            if (f->members[r][m].pid && process_stop(&f->members[r][m], 20000) != 0) {
                fprintf(stderr, "# the %s worker %d did not stop cleanly\n", roles[r], m + 1);
                bad = 1;
            }
    twilio_client_free(f->emu_client);
    bad |= emulator_stop(&f->emu) != 0;
    bad |= stack_stop_ingress(&f->s) != 0;
    bad |= stack_stop(&f->s) != 0;
    for (int run = 0; run < 2; run++)
        for (int i = 0; i < STREAMS; i++)
            for (int k = 0; k <= VIEWERS - FIRST_LEAVER; k++)
                free(f->leaver_token[run][i][k]);
    free(f);
    assert_false(bad);
    return 0;
}

/* --- the run ---------------------------------------------------------------------------------- */

static void wave_start(struct fixture *f, int run, int wave, long spread_ms);
static void wave_end(void);

/* The hosts create the run's streams (each answer waits until its stream is live). */
static void create_streams(struct fixture *f, int run)
{
    wave_start(f, run, 0, 0);
    wave_end();
    json_t *state = emulator_get(f, "/_emulator/state");
    for (int i = 0; i < STREAMS; i++) {
        char stream[32];
        int services;
        stream_name(stream, sizeof stream, run, i);
        json_t *service = service_of(state, stream, &services);
        assert_int_equal(services, 1);
        snprintf(f->service[run][i], sizeof f->service[run][i], "%s",
                 json_string_value(json_object_get(service, "sid")));
    }
    json_decref(state);
}

static long dlq_entries(struct fixture *f)
{
    char err[256];
    struct kafka_reader_options ropt = {.brokers = f->s.brokers, .topic = f->s.topic_dlq};
    struct kafka_reader *r = kafka_reader_new(&ropt, err, sizeof err);
    if (!r)
        fail_msg("%s", err);
    long n = 0;
    while (!kafka_reader_caught_up(r)) {
        rd_kafka_message_t *m = kafka_reader_poll(r, 100);
        if (m) {
            n++;
            rd_kafka_message_destroy(m);
        }
    }
    kafka_reader_close(r);
    return n;
}

/* The public state of a stream agrees with Sync (the ingress's view may lag a moment). */
static void wait_public_state(struct fixture *f, int run)
{
    static const char *const headers[] = {"Authorization: " TEST_PASSCODE, NULL};
    for (int i = 0; i < STREAMS; i++) {
        char stream[32], url[256];
        stream_name(stream, sizeof stream, run, i);
        snprintf(url, sizeof url, "%s/streams/%s/state", f->s.ingress_url, stream);
        int agreed = 0;
        for (int tries = 0; tries < 300 && !agreed; tries++) {
            struct http_reply r;
            http_call("GET", url, headers, NULL, 0, &r);
            json_t *body = r.status == 200 ? json_loads(r.body, 0, NULL) : NULL;
            agreed = json_integer_value(json_object_get(body, "viewer_count")) == FIRST_LEAVER - 1 &&
                     json_integer_value(json_object_get(body, "raised_hands")) == 3 &&
                     json_array_size(json_object_get(body, "viewers")) == LISTED;
            json_decref(body);
            http_reply_free(&r);
            if (!agreed)
                usleep(100 * 1000);
        }
        if (!agreed)
            fail_msg("the public state of %s never agreed with Sync", stream);
    }
}

/* --- handoff figures, from the topics ---------------------------------------------------------- */

struct logged {
    int32_t partition;
    int64_t offset, ts;
    char key[96];    /* events: the stream; state: "<stream>/<role>" */
    char type[40];   /* events only */
    int64_t applied; /* state only */
};

static struct logged *read_topic(struct fixture *f, const char *topic, int state, size_t *count)
{
    char err[256];
    struct kafka_reader_options ropt = {.brokers = f->s.brokers, .topic = topic};
    struct kafka_reader *r = kafka_reader_new(&ropt, err, sizeof err);
    if (!r)
        fail_msg("%s", err);
    size_t n = 0, cap = 1024;
    struct logged *all = malloc(cap * sizeof *all);
    assert_non_null(all);
    while (!kafka_reader_caught_up(r)) {
        rd_kafka_message_t *m = kafka_reader_poll(r, 100);
        if (!m)
            continue;
        if (n == cap) {
            cap *= 2;
            struct logged *grown = realloc(all, cap * sizeof *all);
            assert_non_null(grown);
            all = grown;
        }
        struct logged *l = &all[n];
        memset(l, 0, sizeof *l);
        l->partition = m->partition;
        l->offset = m->offset;
        l->ts = rd_kafka_message_timestamp(m, NULL);
        l->applied = -1;
        snprintf(l->key, sizeof l->key, "%.*s", (int)(m->key_len < 95 ? m->key_len : 95),
                 m->key ? (const char *)m->key : "");
        if (state) {
            json_t *record = m->payload ? json_loadb(m->payload, m->len, 0, NULL) : NULL;
            json_t *applied = json_object_get(record, "applied_offset");
            l->applied = json_is_integer(applied) ? json_integer_value(applied) : -1;
            json_decref(record);
        } else {
            kafka_header_string(m, "type", l->type, sizeof l->type);
        }
        n++;
        rd_kafka_message_destroy(m);
    }
    kafka_reader_close(r);
    *count = n;
    return all;
}

static int handled_by(const char *role, const char *type)
{
    static const char *const room[] = {"user.joined", "speaker.invited", NULL};
    static const char *const sync[] = {"user.joined", "viewer.connected", "viewer.disconnected",
                                       "hand.raised", "hand.lowered",     "speaker.invited",
                                       NULL};
    const char *const *types = strcmp(role, "room") == 0 ? room : sync;
    for (int i = 0; types[i]; i++)
        if (strcmp(types[i], type) == 0)
            return 1;
    return 0;
}

/* When each live event of a role's partitions was applied: the first state
 * record of its stream and role whose applied_offset covers it (-1: none). */
struct applied {
    int32_t partition;
    int64_t ts, at;
};

static struct applied *applied_times(const struct logged *events, size_t nev, const struct logged *records, size_t nst,
                                     const char *role, const char *prefix, int64_t since, size_t *count)
{
    struct applied *out = calloc(nev ? nev : 1, sizeof *out);
    assert_non_null(out);
    size_t n = 0;
    for (size_t e = 0; e < nev; e++) {
        const struct logged *ev = &events[e];
        if (!handled_by(role, ev->type) || strncmp(ev->key, prefix, strlen(prefix)) != 0 || ev->ts < since)
            continue;
        char key[128];
        snprintf(key, sizeof key, "%s/%s", ev->key, role);
        int64_t at = -1;
        for (size_t s = 0; s < nst && at < 0; s++)
            if (records[s].applied >= ev->offset && strcmp(records[s].key, key) == 0)
                at = records[s].ts;
        out[n++] = (struct applied){ev->partition, ev->ts, at};
    }
    *count = n;
    return out;
}

/* The rebalances as the members logged them ("kafka partitions assigned" /
 * "revoked", LOG_LEVEL=info), from every worker's stderr in the stack's
 * directory: who took or gave up how many partitions, when. Members are
 * named by start order (each round starts a room, a stream and a sync
 * worker, so serial 1-3 are the first members, 4-6 the second, 7-9 the third). */
struct moved {
    int64_t ms;
    char role[8];
    char what[48];
};

static int by_time(const void *a, const void *b)
{
    const struct moved *x = a, *y = b;
    return x->ms < y->ms ? -1 : x->ms > y->ms;
}

static struct moved *read_rebalances(struct fixture *f, size_t *count)
{
    size_t n = 0, cap = 64;
    struct moved *all = malloc(cap * sizeof *all);
    assert_non_null(all);
    for (int serial = 1; serial <= ROLES * MEMBERS; serial++) {
        const char *role = roles[(serial - 1) % ROLES];
        char path[256];
        snprintf(path, sizeof path, "%s/%s-%d.err", f->s.dir, role, serial);
        char *text = process_read_file(path, NULL);
        for (char *line = text; line && *line;) {
            char *end = strchr(line, '\n');
            if (end)
                *end = '\0';
            int took = strstr(line, "\"kafka partitions assigned\"") != NULL;
            int gave = strstr(line, "\"kafka partitions revoked\"") != NULL;
            const char *time = strstr(line, "\"time\":\"");
            const char *parts = strstr(line, "\"partitions\":\"");
            char stamp[40];
            int64_t ms;
            if ((took || gave) && time && parts && atoi(parts + 14) > 0 && sscanf(time + 8, "%39[^\"]", stamp) == 1 &&
                time_parse_rfc3339(stamp, &ms) == 0) {
                if (n == cap) {
                    cap *= 2;
                    struct moved *grown = realloc(all, cap * sizeof *all);
                    assert_non_null(grown);
                    all = grown;
                }
                all[n].ms = ms;
                snprintf(all[n].role, sizeof all[n].role, "%s", role);
                snprintf(all[n].what, sizeof all[n].what, "member %d %s %d", (serial - 1) / ROLES + 1,
                         took ? "took" : "gave up", atoi(parts + 14));
                n++;
            }
            line = end ? end + 1 : NULL;
        }
        free(text);
    }
    qsort(all, n, sizeof *all, by_time);
    *count = n;
    return all;
}

#define STALL_MS 1000 /* an event applied later than this after it was produced waited for a handoff */

/* 1 when an event of partition q waited more than STALL_MS at some time in [from, to]. */
static int stalled_within(const struct applied *a, size_t n, int32_t q, int64_t from, int64_t to)
{
    for (size_t i = 0; i < n; i++)
        if (a[i].partition == q && (a[i].at < 0 || a[i].at - a[i].ts > STALL_MS) && a[i].ts <= to &&
            (a[i].at < 0 || a[i].at >= from))
            return 1;
    return 0;
}

/* Prints the handoff figures: per role, each stretch of time in which a
 * partition applied nothing (the union of [produced, applied] of its
 * events that waited more than STALL_MS), and the worst delay of the other
 * partitions' events produced meanwhile; and the worst delay per partition
 * in the base run (one member, no rebalance), for comparison. Times are
 * from the live run's start. */
static void report_handoffs(struct fixture *f)
{
    size_t nev, nst;
    struct logged *events = read_topic(f, f->s.topic_events, 0, &nev);
    struct logged *records = read_topic(f, f->s.topic_state, 1, &nst);
    size_t nmoved;
    struct moved *moved = read_rebalances(f, &nmoved);
    static const char *const measured[] = {"room", "sync"};
    char line[512];
    int len = snprintf(line, sizeof line, "# handoff: rebalances started at");
    for (int k = 0; k < f->nactions && len < (int)sizeof line; k++)
        len += snprintf(line + len, sizeof line - (size_t)len, "%s +%.1f s (%s)", k ? "," : "",
                        (double)(f->actions_ms[k] - f->live_start_ms) / 1000, f->action_names[k]);
    printf("%s\n", line);
    for (int r = 0; r < 2; r++) {
        size_t nb, nl;
        struct applied *base = applied_times(events, nev, records, nst, measured[r], "base-", f->base_start_ms, &nb);
        struct applied *live = applied_times(events, nev, records, nst, measured[r], "live-", f->live_start_ms, &nl);
        len = snprintf(line, sizeof line, "# handoff: %s worker, base run, worst delay per partition:", measured[r]);
        for (int32_t p = 0; p < 3 && len < (int)sizeof line; p++) {
            int64_t worst = -1;
            for (size_t i = 0; i < nb; i++)
                if (base[i].partition == p && base[i].at >= 0 && base[i].at - base[i].ts > worst)
                    worst = base[i].at - base[i].ts;
            len += snprintf(line + len, sizeof line - (size_t)len, " p%d %lld ms", (int)p, (long long)worst);
        }
        printf("%s\n", line);
        for (int32_t p = 0; p < 3; p++) {
            /* The events come in offset order per partition, so stalls come in time order. */
            int64_t from = -1, to = -1;
            int waiting = 0, never = 0;
            for (size_t i = 0; i <= nl; i++) {
                int stalled = i < nl && live[i].partition == p &&
                              (live[i].at < 0 || live[i].at - live[i].ts > STALL_MS);
                if (i < nl && live[i].partition != p)
                    continue;
                if (stalled && from >= 0 && live[i].ts <= to) {
                    if (live[i].at > to)
                        to = live[i].at;
                    waiting++;
                    never += live[i].at < 0;
                    continue;
                }
                if (from >= 0) {
                    /* The partitions that kept applying meanwhile: their worst delay. */
                    int64_t others = -1;
                    for (size_t j = 0; j < nl; j++)
                        if (live[j].partition != p && live[j].ts >= from && live[j].ts <= to && live[j].at >= 0 &&
                            live[j].at - live[j].ts > others && !stalled_within(live, nl, live[j].partition, from, to))
                            others = live[j].at - live[j].ts;
                    char spans[384] = "";
                    int slen = 0;
                    for (size_t k = 0; k < nmoved && slen < (int)sizeof spans; k++)
                        if (strcmp(moved[k].role, measured[r]) == 0 && moved[k].ms >= from - STALL_MS &&
                            moved[k].ms <= to)
                            slen += snprintf(spans + slen, sizeof spans - (size_t)slen, "%s%s at +%.1f s",
                                             slen ? ", " : "", moved[k].what,
                                             (double)(moved[k].ms - f->live_start_ms) / 1000);
                    printf("# handoff: %s worker, partition %d applied nothing from +%.1f s for %.1f s (%d events "
                           "waited%s; meanwhile: %s); the partitions that kept applying: worst delay %lld ms\n",
                           measured[r], (int)p, (double)(from - f->live_start_ms) / 1000, (double)(to - from) / 1000,
                           waiting, never ? ", some never applied" : "", slen ? spans : "no partition moved",
                           (long long)others);
                    from = -1;
                }
                if (stalled) {
                    from = live[i].ts;
                    to = live[i].at < 0 ? live[i].ts : live[i].at;
                    waiting = 1;
                    never = live[i].at < 0;
                }
            }
        }
        free(base);
        free(live);
    }
    for (size_t k = 0; k < nmoved; k++)
        if (moved[k].ms >= f->live_start_ms)
            printf("# handoff: %s worker %s at +%.1f s\n", moved[k].role, moved[k].what,
                   (double)(moved[k].ms - f->live_start_ms) / 1000);
    free(moved);
    free(events);
    free(records);
}

/* --- the test --------------------------------------------------------------------------------- */

static void play(struct fixture *f, int run)
{
    static const int one_each[MEMBERS] = {1, 1, 1};
    static const int after_term[MEMBERS] = {-1, 1, 1};
    static const int after_kill[MEMBERS] = {-1, -1, 3};
    int live = run == 1;
    long spread = WAVE_MS; /* both runs alike, so that the base run is the reference for delays too */
    create_streams(f, run);
    *(live ? &f->live_start_ms : &f->base_start_ms) = time_now_ms();

    wave_start(f, run, 1, spread);
    if (live) {
        mark(f, "second member started");
        for (int r = 0; r < ROLES; r++)
            start_member(f, r, 1);
    }
    wave_end();

    wave_start(f, run, 2, spread);
    if (live) {
        mark(f, "third member started");
        for (int r = 0; r < ROLES; r++)
            start_member(f, r, 2);
        wait_assignment(f, one_each, "the third member"); /* each member holds one partition */
    }
    wave_end();
    wait_hands(f, run);

    wave_start(f, run, 3, spread);
    if (live) {
        mark(f, "first member stopped (SIGTERM)");
        for (int r = 0; r < ROLES; r++)
            assert_int_equal(process_signal(&f->members[r][0], SIGTERM), 0);
        for (int r = 0; r < ROLES; r++) {
            assert_int_equal(process_wait(&f->members[r][0], 30000), 0);
            assert_int_equal(f->members[r][0].status, 0); /* finished, committed, left the group */
        }
        wait_assignment(f, after_term, "the SIGTERM");
    }
    wave_end();
    wait_invited(f, run);

    wave_start(f, run, 4, spread);
    if (live) {
        mark(f, "second member killed (SIGKILL)");
        for (int r = 0; r < ROLES; r++) {
            assert_true(partitions_of(f, r, 1) >= 1); /* it had work to lose */
            assert_int_equal(process_signal(&f->members[r][1], SIGKILL), 0);
            process_wait(&f->members[r][1], 10000);
        }
        wait_assignment(f, after_kill, "the SIGKILL");
    }
    wave_end();
    wait_sync_exact(f, run);
}

static void test_scale_out_and_in_mid_burst(void **state)
{
    struct fixture *f = *state;
    int64_t t0 = time_monotonic_ms();

    play(f, 0);
    usleep(1000 * 1000); /* the last state records and rounds */
    json_t *st = emulator_get(f, "/_emulator/state"), *stats = emulator_get(f, "/_emulator/stats");
    json_t *base_writes[STREAMS];
    for (int i = 0; i < STREAMS; i++) {
        char stream[32];
        stream_name(stream, sizeof stream, 0, i);
        base_writes[i] = writes_of(st, stats, stream);
    }
    json_decref(st);
    json_decref(stats);
    int64_t t1 = time_monotonic_ms();

    play(f, 1);
    int64_t t2 = time_monotonic_ms();
    wait_public_state(f, 1);
    wait_sync_exact(f, 0); /* the base streams too, rebuilt by the new members */

    /* Nothing twice: per stream one room, PlayerStreamer and MediaProcessor;
     * each live stream's objects written as often as its base twin's; the
     * base streams not written again. */
    usleep(1000 * 1000);
    st = emulator_get(f, "/_emulator/state");
    stats = emulator_get(f, "/_emulator/stats");
    json_t *media = json_object_get(st, "media");
    assert_int_equal(json_array_size(json_object_get(media, "player_streamers")), 2 * STREAMS);
    assert_int_equal(json_array_size(json_object_get(media, "media_processors")), 2 * STREAMS);
    long data_base = 0, data_live = 0;
    for (int i = 0; i < STREAMS; i++) {
        char base[32], live[32];
        stream_name(base, sizeof base, 0, i);
        stream_name(live, sizeof live, 1, i);
        assert_int_equal(count_named(json_object_get(st, "rooms"), "unique_name", base), 1);
        assert_int_equal(count_named(json_object_get(st, "rooms"), "unique_name", live), 1);
        json_t *base_now = writes_of(st, stats, base), *live_now = writes_of(st, stats, live);
        if (!json_equal(base_now, base_writes[i])) {
            char *was = json_dumps(base_writes[i], JSON_SORT_KEYS), *now = json_dumps(base_now, JSON_SORT_KEYS);
            fail_msg("%s was written again after its burst: %s, then %s", base, was, now);
        }
        data_base += (long)json_integer_value(json_object_get(base_now, "doc/stream#data"));
        data_live += (long)json_integer_value(json_object_get(live_now, "doc/stream#data"));
        json_object_del(base_now, "doc/stream#data");
        json_object_del(live_now, "doc/stream#data");
        if (!json_equal(base_now, live_now)) {
            char *one = json_dumps(base_now, JSON_SORT_KEYS), *three = json_dumps(live_now, JSON_SORT_KEYS);
            fail_msg("%s's writes differ from %s's: %s against %s", live, base, three, one);
        }
        json_decref(base_now);
        json_decref(live_now);
        json_decref(base_writes[i]);
    }
    assert_int_equal(json_integer_value(json_object_get(stats, "responses_429")), 0);
    json_decref(st);
    json_decref(stats);
    assert_int_equal(requests_429, 0);
    assert_int_equal(dlq_entries(f), 0);

    /* The scaling signals of the member left: every partition, nothing behind. */
    for (int r = 0; r < ROLES; r++) {
        int caught_up = 0;
        for (int tries = 0; tries < 150 && !caught_up; tries++) {
            caught_up = metric(f->ports[r][2], "stagehand_worker_partitions") == 3;
            for (int p = 0; p < 3 && caught_up; p++) {
                char lag[96], age[96];
                snprintf(lag, sizeof lag, "stagehand_worker_consumer_lag{partition=\"%d\"}", p);
                snprintf(age, sizeof age, "stagehand_worker_oldest_unapplied_seconds{partition=\"%d\"}", p);
                caught_up = metric(f->ports[r][2], lag) == 0 && metric(f->ports[r][2], age) == 0;
            }
            if (!caught_up)
                usleep(100 * 1000);
        }
        if (!caught_up)
            fail_msg("the %s worker left never reported every partition caught up", roles[r]);
    }

    printf("# %d requests answered 200, 0 429s; the stream documents' count updates: %ld on the base streams, "
           "%ld on the live ones\n",
           requests_ok, data_base, data_live);
    printf("# base run %.1f s, live run (with the rebalances) %.1f s\n", (double)(t1 - t0) / 1000,
           (double)(t2 - t1) / 1000);
    report_handoffs(f);
}

/* --- two ingress replicas (issue 19 item 3) ----------------------------------------------------- */

#define DUAL_STREAMS 4
#define DUAL_VIEWERS 5

static long post_to(const char *base_url, const char *path, const char *body)
{
    static const char *const headers[] = {"Authorization: " TEST_PASSCODE, "Content-Type: application/json", NULL};
    char url[256];
    snprintf(url, sizeof url, "%s%s", base_url, path);
    struct http_reply r;
    http_call("POST", url, headers, body, strlen(body), &r);
    long status = r.status;
    http_reply_free(&r);
    return status;
}

/* GET /streams/{stream}/state from one replica: its status, the body in *body (malloc'd). */
static long public_state(const char *base_url, const char *stream, char **body)
{
    static const char *const headers[] = {"Authorization: " TEST_PASSCODE, NULL};
    char url[256];
    snprintf(url, sizeof url, "%s/streams/%s/state", base_url, stream);
    struct http_reply r;
    http_call("GET", url, headers, NULL, 0, &r);
    long status = r.status;
    *body = strdup(r.body ? r.body : "");
    http_reply_free(&r);
    assert_non_null(*body);
    return status;
}

static int by_value(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Two ingress processes side by side: a stream created through one is
 * joinable through the other once that one's view shows it; both answer the
 * same public state, byte for byte (so the same ETag), once their views
 * caught up. Prints how long each view took. */
static void test_two_ingress_replicas(void **state)
{
    struct fixture *f = *state;
    char err[512];
    struct stack second = f->s; /* the same broker, topics and directory; its own ingress */
    memset(&second.ingress, 0, sizeof second.ingress);
    const char *env[] = {f->public_env, "CREATE_WAIT_MS=20000", "SYNC_EAGER_VIEWERS=0", NULL};
    if (stack_start_ingress(&second, env, err, sizeof err) < 0)
        fail_msg("%s", err);
    const char *replica[2] = {f->s.ingress_url, second.ingress_url};
    int64_t shown_ms[DUAL_STREAMS], agreed_ms[DUAL_STREAMS];

    for (int i = 0; i < DUAL_STREAMS; i++) {
        char stream[32], body[160];
        int one = i % 2, other = 1 - one;
        snprintf(stream, sizeof stream, "dual-%02d", i);
        snprintf(body, sizeof body, "{\"user_identity\":\"host\",\"stream_name\":\"%s\"}", stream);
        assert_int_equal(post_to(replica[one], "/create-stream", body), 200);
        /* Live through the one that created it: how long until the other's view shows it? */
        int64_t created = time_now_ms();
        int shown = 0;
        for (int tries = 0; tries < 2000 && !shown; tries++) {
            char *state_body;
            shown = public_state(replica[other], stream, &state_body) == 200 && strstr(state_body, "\"live\"");
            free(state_body);
            if (!shown)
                usleep(5 * 1000);
        }
        assert_true(shown);
        shown_ms[i] = time_now_ms() - created;
        /* Viewers join through the other replica, hands through both. */
        for (int v = 1; v <= DUAL_VIEWERS; v++) {
            snprintf(body, sizeof body, "{\"user_identity\":\"fan-%02d\",\"stream_name\":\"%s\"}", v, stream);
            assert_int_equal(post_to(replica[other], "/join-stream-as-viewer", body), 200);
            assert_int_equal(post_to(replica[v % 2], "/viewer-connected-to-player", body), 200);
        }
        snprintf(body, sizeof body, "{\"user_identity\":\"fan-01\",\"stream_name\":\"%s\",\"hand_raised\":true}",
                 stream);
        assert_int_equal(post_to(replica[one], "/raise-hand", body), 200);
        int64_t last = time_now_ms();
        /* Both replicas agree, byte for byte, on the final state. */
        int agreed = 0;
        for (int tries = 0; tries < 3000 && !agreed; tries++) {
            char *a, *b;
            long sa = public_state(replica[0], stream, &a), sb = public_state(replica[1], stream, &b);
            json_t *body_a = json_loads(a, 0, NULL);
            agreed = sa == 200 && sb == 200 && strcmp(a, b) == 0 &&
                     json_integer_value(json_object_get(body_a, "viewer_count")) == DUAL_VIEWERS &&
                     json_integer_value(json_object_get(body_a, "raised_hands")) == 1;
            json_decref(body_a);
            free(a);
            free(b);
            if (!agreed)
                usleep(10 * 1000);
        }
        if (!agreed)
            fail_msg("the two replicas never agreed on %s's public state", stream);
        agreed_ms[i] = time_now_ms() - last;
    }
    assert_int_equal(process_stop(&second.ingress, 20000), 0);
    assert_int_equal(dlq_entries(f), 0);
    qsort(shown_ms, DUAL_STREAMS, sizeof shown_ms[0], by_value);
    qsort(agreed_ms, DUAL_STREAMS, sizeof agreed_ms[0], by_value);
    printf("# replicas: a stream live through one ingress was live in the other's view after %lld ms (median; "
           "max %lld ms over %d streams); after the last request, both answered the same final public state "
           "within %lld ms (median; max %lld ms; it waits for the sync worker's viewers round and state record)\n",
           (long long)shown_ms[DUAL_STREAMS / 2], (long long)shown_ms[DUAL_STREAMS - 1], DUAL_STREAMS,
           (long long)agreed_ms[DUAL_STREAMS / 2], (long long)agreed_ms[DUAL_STREAMS - 1]);
}

int main(void)
{
    if (curl_global_init(CURL_GLOBAL_ALL) != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_scale_out_and_in_mid_burst, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_ingress_replicas, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
