/* Keeps the README honest: every variable of the settings tables has a row in
 * README.md's configuration table, and every row names a known variable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "settings.h"

struct table {
    const struct config_spec *specs;
    size_t count;
};

static const struct table *all_tables(size_t *n)
{
    static struct table tables[10];
    tables[0] = (struct table){settings_logging, settings_logging_count};
    tables[1] = (struct table){settings_kafka, settings_kafka_count};
    tables[2] = (struct table){settings_twilio, settings_twilio_count};
    tables[3] = (struct table){settings_public, settings_public_count};
    tables[4] = (struct table){settings_ingress, settings_ingress_count};
    tables[5] = (struct table){settings_streams, settings_streams_count};
    tables[6] = (struct table){settings_workers, settings_workers_count};
    tables[7] = (struct table){settings_rooms, settings_rooms_count};
    tables[8] = (struct table){settings_media, settings_media_count};
    tables[9] = (struct table){settings_sync, settings_sync_count};
    *n = 10;
    return tables;
}

static char *read_readme(void)
{
    const char *root = getenv("STAGEHAND_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/README.md", root ? root : ".");
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static int is_known(const char *name)
{
    size_t n;
    const struct table *tables = all_tables(&n);
    for (size_t t = 0; t < n; t++)
        for (size_t i = 0; i < tables[t].count; i++)
            if (strcmp(tables[t].specs[i].name, name) == 0)
                return 1;
    return 0;
}

static void test_every_variable_has_a_readme_row(void **state)
{
    (void)state;
    const char *readme = read_readme();
    size_t n;
    const struct table *tables = all_tables(&n);
    for (size_t t = 0; t < n; t++) {
        for (size_t i = 0; i < tables[t].count; i++) {
            char row[256];
            snprintf(row, sizeof row, "\n| `%s` |", tables[t].specs[i].name);
            if (!strstr(readme, row))
                fail_msg("README.md has no configuration row for %s", tables[t].specs[i].name);
        }
    }
}

static void test_every_readme_row_is_a_known_variable(void **state)
{
    (void)state;
    const char *readme = read_readme();
    const char *section = strstr(readme, "\n## Configuration");
    assert_non_null(section);
    const char *end = strstr(section + 1, "\n## ");
    int rows = 0;
    for (const char *p = strstr(section, "\n| `"); p && (!end || p < end); p = strstr(p + 1, "\n| `")) {
        char name[128];
        const char *start = p + 4;
        size_t len = strcspn(start, "`");
        assert_true(len < sizeof name);
        memcpy(name, start, len);
        name[len] = '\0';
        if (!is_known(name))
            fail_msg("README.md documents %s, which no settings table declares", name);
        rows++;
    }
    assert_true(rows > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_variable_has_a_readme_row),
        cmocka_unit_test(test_every_readme_row_is_a_known_variable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
