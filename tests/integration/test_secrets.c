/* Secrets never reach the logs: the whole pipeline runs at LOG_LEVEL=debug
 * through a stream's story (tokens minted, webhooks signed and checked, a
 * wrong passcode and a forged signature refused), and then every log and
 * output file of every process is searched for the API key secret, the
 * auth token, the passcode, the wrong passcode that was tried, and every
 * access token handed out (whole, and its signature). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/pipeline_helpers.h"
#include "kafka.h"
#include "timeutil.h"
#include "twilio.h"

#define MAX_SECRETS 16
#define WRONG_PASSCODE "wrong-passcode-977"

struct secrets {
    char *items[MAX_SECRETS];
    int n;
};

static void keep(struct secrets *s, const char *secret)
{
    assert_true(s->n < MAX_SECRETS);
    s->items[s->n] = strdup(secret);
    assert_non_null(s->items[s->n]);
    s->n++;
}

/* POSTs body to the ingress; keeps the token of a 200 answer (whole and
 * its signature) as secrets. */
static long call(struct fixture *f, struct secrets *s, const char *path, const char *body)
{
    static const char *const headers[] = {"Authorization: " TEST_PASSCODE, "Content-Type: application/json", NULL};
    char url[256];
    snprintf(url, sizeof url, "%s%s", f->s.ingress_url, path);
    struct http_reply r;
    http_call("POST", url, headers, body, strlen(body), &r);
    json_t *answer = json_loads(r.body, 0, NULL);
    const char *token = json_string_value(json_object_get(answer, "token"));
    if (token) {
        keep(s, token);
        keep(s, strrchr(token, '.') + 1);
    }
    json_decref(answer);
    long status = r.status;
    http_reply_free(&r);
    return status;
}

static void join_room(struct fixture *f, const char *token)
{
    char url[256];
    snprintf(url, sizeof url, "%s/_emulator/rooms/secretive/participants", f->emu.base_url);
    char *form = malloc(strlen(token) + 8);
    assert_non_null(form);
    sprintf(form, "Token=%s", token);
    struct http_reply r;
    http_call("POST", url, NULL, form, strlen(form), &r);
    assert_int_equal(r.status, 201);
    http_reply_free(&r);
    free(form);
}

/* Fails naming the file and the secret's position when any file holds any secret. */
static void search_file(const char *path, const struct secrets *s, int *files)
{
    char *text = process_read_file(path, NULL);
    if (!text)
        return;
    (*files)++;
    for (int i = 0; i < s->n; i++)
        if (strstr(text, s->items[i]))
            fail_msg("secret %d (of %d) found in %s", i, s->n, path);
    free(text);
}

static void test_no_secret_in_any_log(void **state)
{
    struct fixture *f = *state;
    struct secrets s = {{0}, 0};
    keep(&s, TEST_API_KEY_SECRET);
    keep(&s, TEST_AUTH_TOKEN);
    keep(&s, TEST_PASSCODE);
    keep(&s, WRONG_PASSCODE);

    assert_int_equal(call(f, &s, "/create-stream", "{\"user_identity\":\"alice\",\"stream_name\":\"secretive\"}"), 200);
    join_room(f, s.items[s.n - 2]); /* the host's token: the emulator signs the webhooks that follow */
    assert_int_equal(call(f, &s, "/join-stream-as-viewer", "{\"user_identity\":\"bob\",\"stream_name\":\"secretive\"}"),
                     200);
    assert_int_equal(call(f, &s, "/viewer-connected-to-player",
                          "{\"user_identity\":\"bob\",\"stream_name\":\"secretive\"}"),
                     200);
    assert_int_equal(call(f, &s, "/raise-hand",
                          "{\"user_identity\":\"bob\",\"stream_name\":\"secretive\",\"hand_raised\":true}"),
                     200);
    assert_int_equal(call(f, &s, "/send-speaker-invite", "{\"user_identity\":\"bob\",\"stream_name\":\"secretive\"}"),
                     200);
    assert_int_equal(call(f, &s, "/join-stream-as-speaker",
                          "{\"user_identity\":\"bob\",\"stream_name\":\"secretive\"}"),
                     200);
    join_room(f, s.items[s.n - 2]);

    /* Refused attempts: a wrong passcode, a forged webhook signature. */
    static const char *const wrong[] = {"Authorization: " WRONG_PASSCODE, "Content-Type: application/json", NULL};
    static const char *const forged[] = {"X-Twilio-Signature: bm90IGEgc2lnbmF0dXJl",
                                         "Content-Type: application/x-www-form-urlencoded", NULL};
    char url[256];
    struct http_reply r;
    snprintf(url, sizeof url, "%s/delete-stream", f->s.ingress_url);
    http_call("POST", url, wrong, "{\"stream_name\":\"secretive\"}", 27, &r);
    assert_int_equal(r.status, 401);
    http_reply_free(&r);
    snprintf(url, sizeof url, "%s/rooms-webhook", f->s.ingress_url);
    static const char hook[] = "StatusCallbackEvent=room-ended&RoomName=secretive&RoomSid=RM00&Timestamp=x";
    http_call("POST", url, forged, hook, strlen(hook), &r);
    assert_int_equal(r.status, 403);
    http_reply_free(&r);

    /* The host ends it; the workers tear down Twilio's side. */
    assert_int_equal(call(f, &s, "/delete-stream", "{\"stream_name\":\"secretive\"}"), 200);
    json_decref(wait_room(f, "secretive", "completed"));
    usleep(1000 * 1000);

    int files = 0;
    DIR *dir = opendir(f->s.dir);
    assert_non_null(dir);
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        if (entry->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", f->s.dir, entry->d_name);
        search_file(path, &s, &files);
    }
    closedir(dir);
    search_file(f->emu.out_path, &s, &files);
    search_file(f->emu.err_path, &s, &files);
    /* ingress, three workers, emulator: out and err; and the dev broker's
     * (on real Kafka the run's broker logs elsewhere) */
    assert_true(files >= (f->s.real_kafka ? 6 : 8));
    /* Debug logging was really on, in the workers too. */
    char path[512];
    snprintf(path, sizeof path, "%s/sync-3.err", f->s.dir);
    char *worker_log = process_read_file(path, NULL);
    assert_non_null(worker_log);
    assert_non_null(strstr(worker_log, "\"level\":\"debug\""));
    free(worker_log);
    for (int i = 0; i < s.n; i++)
        free(s.items[i]);
}

static int setup(void **state)
{
    static const char *const env[] = {"LOG_LEVEL=debug", NULL};
    return setup_whole_pipeline(state, env, NULL);
}

int main(void)
{
    setenv("LOG_LEVEL", "debug", 1); /* the emulator inherits it */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_secret_in_any_log, setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
