/* Validation of JSON values against the schemas of schemas/ (embedded at
 * build time). The validator implements the subset of JSON Schema those
 * files use, and only that subset: a schema with any other keyword fails to
 * load, so a schema can never say something that is silently not enforced.
 *
 * Keywords: type (a name or an array of names: object, array, string,
 * integer, number, boolean, null), properties, required,
 * additionalProperties (boolean), minLength/maxLength (Unicode code points),
 * minimum, maximum, enum, const, items, minItems, maxItems, pattern (POSIX
 * extended regular expression, meant for ASCII tokens such as SIDs) and
 * format: identity and stream-name (the rules of text.h), date-time
 * (RFC 3339), event-id (32 lowercase hex digits). Annotations ignored:
 * $schema, $id, title, description, $comment, examples.
 *
 * Error messages name the path and the rule, never the offending value:
 * "data.identity: must not contain control characters". */
#ifndef STAGEHAND_SCHEMA_H
#define STAGEHAND_SCHEMA_H

#include <jansson.h>
#include <stddef.h>

/* Loads and checks every embedded schema (done once, thread-safe; the other
 * functions call it). Returns 0, or -1 with the first problem in err. */
int schema_load_all(char *err, size_t errlen);

/* 1 when an embedded schema of this name ("envelope", "hand.raised") exists. */
int schema_exists(const char *name);

/* Validates instance against the named schema. Returns 0, or -1 with the
 * reason in err; paths in err start with path_prefix ("" for none). */
int schema_validate(const char *name, const json_t *instance, char *err, size_t errlen);
int schema_validate_at(const char *name, const json_t *instance, const char *path_prefix, char *err, size_t errlen);

/* One member of an object given apart from the object: its name (name_len
 * bytes, no NUL needed) and its value in one of four forms, so that a
 * caller holding a string's bytes or an integer need not build a JSON
 * value to have it checked. */
enum schema_member_kind {
    SCHEMA_MEMBER_STRING,  /* str: len bytes and a NUL after them */
    SCHEMA_MEMBER_INTEGER, /* integer: checked as a JSON integer of that value */
    SCHEMA_MEMBER_JSON,    /* value: any JSON value */
    SCHEMA_MEMBER_OBJECT,  /* members: an object given as its nmembers members */
};

struct schema_member {
    const char *name;
    size_t name_len;
    enum schema_member_kind kind;
    const char *str;
    size_t len;
    json_int_t integer;
    const json_t *value;
    const struct schema_member *members;
    size_t nmembers;
};

/* 1 when the object made of these n members (all names different) is valid
 * against the named schema; 0 when it is not, when there is no such schema,
 * or when the schema has a rule (const, enum) about the object as a whole.
 * Nothing is built and no reason given: the event parser's fast path asks
 * this, and on 0 validates the object the long way, which says why. */
int schema_members_valid(const char *name, const struct schema_member *m, size_t n);

/* schema_members_valid against a schema given as text (tests): 1 or 0, or
 * -1 when the schema does not load. */
int schema_members_valid_text(const char *schema_json, const struct schema_member *m, size_t n);

/* Checks a schema given as text, then validates instance against it (tests
 * and tools). Returns 0, or -1 with the reason (load or validation) in err. */
int schema_validate_text(const char *schema_json, const json_t *instance, char *err, size_t errlen);

#endif
