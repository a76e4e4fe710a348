/* stagehand-replay import: NDJSON events (as export writes them) onto
 * stagehand.events, keyed by their stream, with the id and type headers
 * the ingress sets.
 *
 *   import [FILE]        (standard input when FILE is missing or "-")
 *
 * Every line is checked (envelope and data schemas) before anything is
 * produced: one bad line and nothing is. Events keep their ids: a worker
 * skips the ones it handled lately and applies the others again, which its
 * idempotent side effects absorb. Exits 0 when every event was
 * acknowledged by Kafka. */
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "replay.h"

struct lines {
    char **items;
    size_t n, cap;
};

static int lines_add(struct lines *l, const char *text, size_t len)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        char **items = realloc(l->items, cap * sizeof *items);
        if (!items)
            return -1;
        l->items = items;
        l->cap = cap;
    }
    char *copy = strndup(text, len);
    if (!copy)
        return -1;
    l->items[l->n++] = copy;
    return 0;
}

static void lines_free(struct lines *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
}

/* Reads and checks every line. Returns 0, or 2 after reporting each bad
 * line (by number), or 1 when reading failed. */
static int read_events(FILE *in, struct lines *out)
{
    char *line = NULL;
    size_t size = 0;
    ssize_t len;
    long number = 0, bad = 0;
    while ((len = getline(&line, &size, in)) >= 0) {
        number++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        if (len == 0)
            continue;
        struct event ev;
        char err[256];
        if (event_parse(line, (size_t)len, &ev, err, sizeof err) < 0) {
            fprintf(stderr, "stagehand-replay: line %ld: %s\n", number, err);
            bad++;
            continue;
        }
        event_free(&ev);
        if (lines_add(out, line, (size_t)len) < 0) {
            fprintf(stderr, "stagehand-replay: out of memory at line %ld\n", number);
            free(line);
            return 1;
        }
    }
    free(line);
    if (ferror(in)) {
        fprintf(stderr, "stagehand-replay: cannot read the input\n");
        return 1;
    }
    if (bad) {
        fprintf(stderr, "stagehand-replay: %ld bad lines: nothing imported\n", bad);
        return 2;
    }
    return 0;
}

static int produce_all(const struct lines *l, const char *brokers)
{
    struct kafka_producer *p = replay_producer(brokers);
    if (!p)
        return 1;
    long queued = 0;
    for (size_t i = 0; i < l->n; i++) {
        struct event ev;
        char err[256];
        if (event_parse(l->items[i], strlen(l->items[i]), &ev, err, sizeof err) < 0)
            continue; /* checked already */
        int rc = replay_produce(p, ev.stream, ev.id, ev.type, NULL, l->items[i]);
        event_free(&ev);
        if (rc < 0)
            break;
        queued++;
    }
    long delivered = replay_close(p, queued);
    printf("imported %ld events\n", delivered);
    if (delivered < (long)l->n) {
        fprintf(stderr, "stagehand-replay: %ld of %zu events were not acknowledged\n", (long)l->n - delivered, l->n);
        return 1;
    }
    return 0;
}

int replay_import(int argc, char **argv, const char *brokers)
{
    if (argc > 2 || (argc == 2 && strcmp(argv[1], "--help") == 0)) {
        FILE *out = argc == 2 ? stdout : stderr;
        fprintf(out, "usage: stagehand-replay import [FILE]\n"
                     "produces the NDJSON events of FILE (or standard input) onto stagehand.events;\n"
                     "every line is checked first, and one bad line means nothing is produced\n");
        return argc == 2 ? 0 : 2;
    }
    FILE *in = stdin;
    if (argc == 2 && strcmp(argv[1], "-") != 0 && !(in = fopen(argv[1], "r"))) {
        fprintf(stderr, "stagehand-replay: cannot open %s\n", argv[1]);
        return 2;
    }
    struct lines l = {0};
    int rc = read_events(in, &l);
    if (in != stdin)
        fclose(in);
    if (rc == 0)
        rc = produce_all(&l, brokers);
    lines_free(&l);
    return rc;
}
