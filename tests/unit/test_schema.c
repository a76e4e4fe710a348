/* Unit tests for common/schema and the files of schemas/: every catalogue
 * type has a schema, every file is valid JSON and embedded as it is on disk,
 * and every keyword and format is enforced. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "schema.h"
#include "schema_sources.h"

static void test_every_catalogue_type_has_a_schema(void **state)
{
    (void)state;
    char err[256];
    if (schema_load_all(err, sizeof err) < 0)
        fail_msg("embedded schemas do not load: %s", err);
    assert_true(schema_exists("envelope"));
    for (size_t i = 0; i < event_catalogue_count; i++)
        if (!schema_exists(event_catalogue[i]))
            fail_msg("catalogue type %s has no schema", event_catalogue[i]);
}

static const char *embedded_text(const char *name)
{
    for (size_t i = 0; i < schema_sources_count; i++)
        if (strcmp(schema_sources[i].name, name) == 0)
            return schema_sources[i].text;
    return NULL;
}

static int in_catalogue(const char *name)
{
    for (size_t i = 0; i < event_catalogue_count; i++)
        if (strcmp(event_catalogue[i], name) == 0)
            return 1;
    return strcmp(name, "envelope") == 0;
}

static void test_schema_files_on_disk(void **state)
{
    (void)state;
    const char *root = getenv("STAGEHAND_ROOT");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/schemas", root ? root : ".");
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t files = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.')
            continue;
        if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
            fail_msg("schemas/%s is not a .json file", e->d_name);
        char path[8192], name[256];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        snprintf(name, sizeof name, "%.*s", (int)(len - 5), e->d_name);
        json_error_t jerr;
        json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
        if (!doc)
            fail_msg("schemas/%s is not valid JSON: line %d: %s", e->d_name, jerr.line, jerr.text);
        json_decref(doc);
        if (!in_catalogue(name))
            fail_msg("schemas/%s is neither the envelope nor a catalogue type", e->d_name);

        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        static char disk[1 << 16];
        size_t n = fread(disk, 1, sizeof disk - 1, f);
        fclose(f);
        disk[n] = '\0';
        const char *embedded = embedded_text(name);
        if (!embedded || strcmp(embedded, disk) != 0)
            fail_msg("the embedded copy of schemas/%s differs from the file (rebuild)", e->d_name);
        files++;
    }
    closedir(d);
    assert_int_equal(files, event_catalogue_count + 1);
}

/* Validates instance text against schema text; returns validate's result. */
static int check(const char *schema, const char *instance, char *err, size_t errlen)
{
    json_t *v = json_loads(instance, JSON_DECODE_ANY, NULL);
    if (!v)
        fail_msg("test instance is not JSON: %s", instance);
    int rc = schema_validate_text(schema, v, err, errlen);
    json_decref(v);
    return rc;
}

#define GOOD(schema, instance)                                                                                         \
    do {                                                                                                               \
        char e_[256] = "";                                                                                             \
        if (check(schema, instance, e_, sizeof e_) != 0)                                                               \
            fail_msg("%s refused %s: %s", schema, instance, e_);                                                       \
    } while (0)
#define BAD(schema, instance)                                                                                          \
    do {                                                                                                               \
        char e_[256] = "";                                                                                             \
        if (check(schema, instance, e_, sizeof e_) == 0)                                                               \
            fail_msg("%s accepted %s", schema, instance);                                                              \
    } while (0)

static void test_keywords(void **state)
{
    (void)state;
    GOOD("{\"type\":\"string\"}", "\"x\"");
    BAD("{\"type\":\"string\"}", "1");
    GOOD("{\"type\":[\"string\",\"null\"]}", "null");
    BAD("{\"type\":[\"string\",\"null\"]}", "true");
    GOOD("{\"type\":\"integer\"}", "3");
    BAD("{\"type\":\"integer\"}", "3.5");
    GOOD("{\"type\":\"number\"}", "3.5");
    BAD("{\"type\":\"boolean\"}", "0");
    GOOD("{\"type\":\"array\"}", "[]");
    BAD("{\"type\":\"object\"}", "[]");
    GOOD("{\"minLength\":2,\"maxLength\":3}", "\"\xc3\xa9\xc3\xa9\xc3\xa9\""); /* 3 chars, 6 bytes */
    BAD("{\"maxLength\":3}", "\"abcd\"");
    BAD("{\"minLength\":2}", "\"a\"");
    GOOD("{\"minimum\":0,\"maximum\":10}", "10");
    BAD("{\"minimum\":0}", "-1");
    BAD("{\"maximum\":10}", "10.5");
    GOOD("{\"enum\":[\"a\",\"b\"]}", "\"b\"");
    BAD("{\"enum\":[\"a\",\"b\"]}", "\"c\"");
    GOOD("{\"const\":1}", "1");
    BAD("{\"const\":1}", "2");
    GOOD("{\"items\":{\"type\":\"integer\"},\"minItems\":1,\"maxItems\":2}", "[1,2]");
    BAD("{\"items\":{\"type\":\"integer\"}}", "[1,\"2\"]");
    BAD("{\"minItems\":1}", "[]");
    BAD("{\"maxItems\":1}", "[1,2]");
    GOOD("{\"pattern\":\"^RM[0-9a-f]{4}$\"}", "\"RMab12\"");
    BAD("{\"pattern\":\"^RM[0-9a-f]{4}$\"}", "\"RMab123\"");
    const char *obj = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}},"
                      "\"required\":[\"a\"],\"additionalProperties\":false}";
    GOOD(obj, "{\"a\":\"x\"}");
    BAD(obj, "{}");
    BAD(obj, "{\"a\":1}");
    BAD(obj, "{\"a\":\"x\",\"b\":1}");
    GOOD("{\"type\":\"object\",\"properties\":{}}", "{\"b\":1}"); /* additional allowed by default */
    GOOD("{\"format\":\"date-time\"}", "\"2026-11-23T22:59:01.123Z\"");
    BAD("{\"format\":\"date-time\"}", "\"yesterday\"");
    GOOD("{\"format\":\"event-id\"}", "\"0123456789abcdef0123456789abcdef\"");
    BAD("{\"format\":\"event-id\"}", "\"0123456789ABCDEF0123456789abcdef\"");
}

static void test_error_messages_name_the_path(void **state)
{
    (void)state;
    char err[256];
    const char *schema = "{\"type\":\"object\",\"properties\":{\"data\":{\"type\":\"object\","
                         "\"properties\":{\"identity\":{\"type\":\"string\",\"format\":\"identity\"}}}}}";
    assert_int_equal(check(schema, "{\"data\":{\"identity\":\"a\\u0001b\"}}", err, sizeof err), -1);
    assert_string_equal(err, "data.identity: must not contain control characters");
    assert_int_equal(check("{\"additionalProperties\":false}", "{\"sneaky\\n\":1}", err, sizeof err), -1);
    assert_string_equal(err, "(root): unknown property \"sneaky?\"");
    assert_int_equal(check("{\"items\":{\"type\":\"string\"}}", "[\"a\",2]", err, sizeof err), -1);
    assert_string_equal(err, "[1]: must be of type string");
}

static void test_schemas_say_only_what_is_enforced(void **state)
{
    (void)state;
    char err[256];
    BAD("{\"oneOf\":[]}", "1");
    assert_int_equal(check("{\"patternProperties\":{}}", "1", err, sizeof err), -1);
    assert_non_null(strstr(err, "unsupported keyword"));
    assert_int_equal(check("{\"format\":\"email\"}", "\"a@b\"", err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown format"));
    BAD("{\"type\":\"text\"}", "\"x\"");
    BAD("{\"maxLength\":-1}", "\"x\"");
    BAD("{\"required\":\"a\"}", "{}");
    BAD("{\"additionalProperties\":{}}", "{}");
    BAD("{\"pattern\":\"([\"}", "\"x\"");
    BAD("[1]", "1");
    BAD("not json", "1");
    BAD("{\"properties\":{\"a\":{\"$ref\":\"#\"}}}", "{}");
}

static void test_identity_and_stream_formats(void **state)
{
    (void)state;
    const char *id = "{\"type\":\"string\",\"format\":\"identity\"}";
    const char *stream = "{\"type\":\"string\",\"format\":\"stream-name\"}";
    GOOD(id, "\"Zo\\u00eb Kravitz\"");
    GOOD(id, "\"dj \\ud83c\\udfa7\"");
    BAD(id, "\"tab\\there\"");
    BAD(id, "\"ac/dc\"");
    BAD(id, "\" lead\"");
    BAD(id, "\"\"");
    GOOD(stream, "\"Friday Townhall\"");
    BAD(stream, "\"a/b\"");
    BAD(stream, "\"..\"");
    BAD(stream, "\"RM0123456789abcdef0123456789abcdef\"");

    /* Invalid UTF-8 can only reach the validator through the no-check API. */
    json_t *bad = json_stringn_nocheck("bad\xff", 4);
    char err[256];
    assert_int_equal(schema_validate_text(id, bad, err, sizeof err), -1);
    assert_non_null(strstr(err, "UTF-8"));
    json_decref(bad);
    /* An embedded NUL never passes a pattern or a name rule. */
    json_t *nul = json_stringn("RM\0b12", 6);
    assert_int_equal(schema_validate_text("{\"pattern\":\"^RM\"}", nul, err, sizeof err), -1);
    assert_int_equal(schema_validate_text(id, nul, err, sizeof err), -1);
    json_decref(nul);
}

/* {"type":"object","properties":{"n":<rule>}} */
static void member_schema(char *out, size_t outlen, const char *rule)
{
    snprintf(out, outlen, "{\"type\":\"object\",\"properties\":{\"n\":%s}}", rule);
}

/* schema_members_valid_text on members says what schema_validate_text
 * says of the object made of them (takes object). A schema with a rule
 * about the whole object (whole_object_rule) is not the members' to judge:
 * they must say 0 and leave it to the full check. */
static void assert_members_agree_on(const char *schema, int whole_object_rule, const struct schema_member *m, size_t n,
                                    json_t *object)
{
    char err[256];
    int full = schema_validate_text(schema, object, err, sizeof err) == 0;
    int members = schema_members_valid_text(schema, m, n);
    if (whole_object_rule)
        full = 0;
    if (members != full) {
        char *text = json_dumps(object, JSON_COMPACT | JSON_ENCODE_ANY);
        fail_msg("members say %d, the full check %d (%s), for %s against %s", members, full, err, text, schema);
    }
    json_decref(object);
}

static void assert_members_agree(const char *schema, const struct schema_member *m, size_t n, json_t *object)
{
    assert_members_agree_on(schema, 0, m, n, object);
}

/* Rules an object member may meet, of every kind the validator knows. */
static const char *const member_rules[] = {
    "{}",
    "{\"type\":\"integer\"}",
    "{\"type\":\"number\"}",
    "{\"type\":\"string\"}",
    "{\"type\":\"boolean\"}",
    "{\"type\":[\"string\",\"integer\"]}",
    "{\"type\":[\"null\",\"boolean\"]}",
    "{\"const\":1}",
    "{\"const\":1.0}",
    "{\"const\":\"1\"}",
    "{\"const\":\"a\"}",
    "{\"const\":true}",
    "{\"enum\":[1,2.5,\"3\"]}",
    "{\"enum\":[2.0,-1]}",
    "{\"enum\":[\"a\",\"bc\",7,null]}",
    "{\"enum\":[\"\",\"abcdefghijklmnopq\"]}",
    "{\"minimum\":0}",
    "{\"maximum\":-1}",
    "{\"minimum\":-1.5,\"maximum\":2.5}",
    "{\"minimum\":9007199254740993}",
    "{\"maximum\":-9223372036854775807}",
    "{\"type\":\"integer\",\"minimum\":1,\"maximum\":1}",
    "{\"minLength\":2,\"maxLength\":3}",
    "{\"maxLength\":0}",
    "{\"pattern\":\"^a\"}",
    "{\"format\":\"identity\"}",
    "{\"format\":\"stream-name\"}",
    "{\"format\":\"date-time\"}",
    "{\"format\":\"event-id\"}",
    "{\"type\":\"array\"}",
};

/* An integer member is checked as a JSON integer of its value would be:
 * type, const, enum (never equal to a real), minimum and maximum (compared
 * as doubles), and the string rules that do not apply to it. */
static void test_members_integers(void **state)
{
    (void)state;
    static const json_int_t values[] = {
        INT64_MIN,          INT64_MIN + 1,      -9007199254740993LL, -2,       -1, 0, 1, 2, 3,
        9007199254740992LL, 9007199254740993LL, 9007199254740994LL,  INT64_MAX};
    for (size_t r = 0; r < sizeof member_rules / sizeof member_rules[0]; r++) {
        char schema[512];
        member_schema(schema, sizeof schema, member_rules[r]);
        for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
            struct schema_member m = {.name = "n", .name_len = 1, .kind = SCHEMA_MEMBER_INTEGER, .integer = values[i]};
            assert_members_agree(schema, &m, 1, json_pack("{s:I}", "n", (json_int_t)values[i]));
        }
    }
}

/* A string member given as bytes, ASCII or not, valid UTF-8 or not. */
static void test_members_strings(void **state)
{
    (void)state;
    static const char *const values[] = {"",
                                         "a",
                                         "1",
                                         "bc",
                                         "abc",
                                         "abcd",
                                         "abcdefghijklmnopq",
                                         "a/b",
                                         " a",
                                         "..",
                                         "video-composer-1",
                                         "RM0123456789abcdef0123456789abcdef",
                                         "\xc3\xa9",
                                         "\xc3\xa9\xc3\xa9\xc3\xa9",
                                         "abcdefgh\xc3\xa9",
                                         "abcdefgh\xff",
                                         "bad\xff",
                                         "tab\there",
                                         "2026-11-23T22:59:01.123Z",
                                         "0123456789abcdef0123456789abcdef"};
    for (size_t r = 0; r < sizeof member_rules / sizeof member_rules[0]; r++) {
        char schema[512];
        member_schema(schema, sizeof schema, member_rules[r]);
        for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
            size_t len = strlen(values[i]);
            struct schema_member m = {
                .name = "n", .name_len = 1, .kind = SCHEMA_MEMBER_STRING, .str = values[i], .len = len};
            json_t *object = json_object();
            json_object_set_new(object, "n", json_stringn_nocheck(values[i], len));
            assert_members_agree(schema, &m, 1, object);
        }
    }
}

/* Members given as JSON values, and the rules of the object: required
 * names (properties or not), unknown members, rules on the whole object. */
static void test_members_objects(void **state)
{
    (void)state;
    for (size_t r = 0; r < sizeof member_rules / sizeof member_rules[0]; r++) {
        char schema[512];
        member_schema(schema, sizeof schema, member_rules[r]);
        json_t *values[] = {json_true(), json_false(), json_null(), json_real(1.0), json_array()};
        for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
            struct schema_member m = {.name = "n", .name_len = 1, .kind = SCHEMA_MEMBER_JSON, .value = values[i]};
            assert_members_agree(schema, &m, 1, json_pack("{s:o}", "n", values[i]));
        }
    }
    static const struct {
        const char *text;
        int whole_object_rule;
    } schemas[] = {
        {"{\"required\":[\"a\",\"zz\"],\"properties\":{\"a\":{},\"b\":{}},\"additionalProperties\":false}", 0},
        {"{\"required\":[\"zz\",\"a\",\"a\"],\"properties\":{\"a\":{}}}", 0},
        {"{\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"]}", 0},
        {"{\"properties\":{\"a\":{\"const\":2}}}", 0},
        {"{\"type\":\"object\",\"const\":{\"a\":1}}", 1},
        {"{\"enum\":[{\"a\":1}]}", 1},
        {"{\"type\":\"array\"}", 0},
    };
    static const char *const names[][3] = {{NULL}, {"a"}, {"zz"}, {"a", "zz"}, {"a", "b"}, {"b", "zz", "a"}};
    for (size_t s = 0; s < sizeof schemas / sizeof schemas[0]; s++) {
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
            struct schema_member m[3];
            size_t n = 0;
            json_t *object = json_object();
            for (; n < 3 && names[k][n]; n++) {
                m[n] = (struct schema_member){.name = names[k][n],
                                              .name_len = strlen(names[k][n]),
                                              .kind = SCHEMA_MEMBER_INTEGER,
                                              .integer = 1};
                json_object_set_new(object, names[k][n], json_integer(1));
            }
            assert_members_agree_on(schemas[s].text, schemas[s].whole_object_rule, m, n, object);
        }
    }
}

/* A member that is an object given as its own members (how the event
 * parser hands over an event's flat data): judged as the object made of
 * them would be. Against a rule about the nested object as a whole
 * (const, enum), the members say 0 and the full check decides. */
static void test_members_nested_objects(void **state)
{
    (void)state;
    static const struct {
        const char *rule;
        int whole_object_rule;
    } rules[] = {
        {"{}", 0},
        {"{\"type\":\"object\"}", 0},
        {"{\"type\":\"string\"}", 0},
        {"{\"type\":\"object\",\"required\":[\"a\"]}", 0},
        {"{\"properties\":{\"a\":{\"type\":\"string\"}},\"additionalProperties\":false}", 0},
        {"{\"properties\":{\"a\":{\"type\":\"integer\",\"minimum\":2}}}", 0},
        {"{\"const\":{\"a\":1}}", 1},
    };
    static const char *const inner[] = {"{}", "{\"a\":1}", "{\"a\":\"x\"}", "{\"b\":true}"};
    for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
        char schema[512];
        member_schema(schema, sizeof schema, rules[r].rule);
        for (size_t i = 0; i < sizeof inner / sizeof inner[0]; i++) {
            json_t *value = json_loads(inner[i], 0, NULL);
            assert_non_null(value);
            struct schema_member members[1];
            size_t n = 0;
            const char *key;
            json_t *v;
            json_object_foreach (value, key, v) {
                members[n] = (struct schema_member){.name = key, .name_len = strlen(key)};
                if (json_is_integer(v)) {
                    members[n].kind = SCHEMA_MEMBER_INTEGER;
                    members[n].integer = json_integer_value(v);
                } else if (json_is_string(v)) {
                    members[n].kind = SCHEMA_MEMBER_STRING;
                    members[n].str = json_string_value(v);
                    members[n].len = json_string_length(v);
                } else {
                    members[n].kind = SCHEMA_MEMBER_JSON;
                    members[n].value = v;
                }
                n++;
            }
            struct schema_member m = {
                .name = "n", .name_len = 1, .kind = SCHEMA_MEMBER_OBJECT, .members = members, .nmembers = n};
            assert_members_agree_on(schema, rules[r].whole_object_rule, &m, 1, json_pack("{s:O}", "n", value));
            json_decref(value);
        }
    }
}

/* Required properties past the 64th are checked by name, not by bit. */
static void test_members_many_properties(void **state)
{
    (void)state;
    char schema[4096];
    size_t used = (size_t)snprintf(schema, sizeof schema, "{\"required\":[\"p3\",\"p66\",\"p69\"],\"properties\":{");
    for (int i = 0; i < 70; i++)
        used += (size_t)snprintf(schema + used, sizeof schema - used, "%s\"p%d\":{\"type\":\"integer\"}", i ? "," : "",
                                 i);
    snprintf(schema + used, sizeof schema - used, "}}");
    static const char *const sets[][4] = {{"p3", "p66", "p69"}, {"p3", "p66"}, {"p66", "p69"}, {"p3", "p69", "p0"}};
    for (size_t k = 0; k < sizeof sets / sizeof sets[0]; k++) {
        struct schema_member m[4];
        size_t n = 0;
        json_t *object = json_object();
        for (; n < 4 && sets[k][n]; n++) {
            m[n] = (struct schema_member){.name = sets[k][n],
                                          .name_len = strlen(sets[k][n]),
                                          .kind = SCHEMA_MEMBER_INTEGER,
                                          .integer = 1};
            json_object_set_new(object, sets[k][n], json_integer(1));
        }
        assert_members_agree(schema, m, n, object);
    }
    assert_int_equal(schema_members_valid_text("{\"oneOf\":[]}", NULL, 0), -1);
}

static void test_unknown_schema_name(void **state)
{
    (void)state;
    char err[256];
    json_t *v = json_object();
    assert_int_equal(schema_validate("no.such.type", v, err, sizeof err), -1);
    assert_non_null(strstr(err, "no schema"));
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_catalogue_type_has_a_schema),
        cmocka_unit_test(test_schema_files_on_disk),
        cmocka_unit_test(test_keywords),
        cmocka_unit_test(test_error_messages_name_the_path),
        cmocka_unit_test(test_schemas_say_only_what_is_enforced),
        cmocka_unit_test(test_identity_and_stream_formats),
        cmocka_unit_test(test_members_integers),
        cmocka_unit_test(test_members_strings),
        cmocka_unit_test(test_members_objects),
        cmocka_unit_test(test_members_nested_objects),
        cmocka_unit_test(test_members_many_properties),
        cmocka_unit_test(test_unknown_schema_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
