/* Bad input at the ingress, as tables. Every client endpoint against every
 * class of bad input (missing field, wrong type, too long, invalid UTF-8,
 * control characters, oversize body, wrong content type, bad auth, not
 * host, unknown stream, in jwt mode a user_identity that is not the
 * caller's, and names that are the dot segments "." or ".."): each row
 * says the status and error message it must get, or that it does not
 * apply and why. Twilio's webhooks against missing, wrong
 * and misplaced signatures, wrong content types, oversize bodies and
 * fields that are not UTF-8 text. And the connection limits: a header
 * block over the connection memory, a client that stalls mid-request, and
 * MAX_CONNECTIONS.
 *
 * No event may come of any of it: after each row Kafka's end offsets of
 * stagehand.events must not have moved (the ingress answers an accepted
 * request only after Kafka's ack), and each group of rows ends with
 * expect_no_event (which also waits for a late event) and then one valid
 * request whose event is read back, so that the check is not vacuous. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "../support/ingress_helpers.h"
#include "encode.h"
#include "event.h"
#include "form.h"
#include "kafka.h"
#include "signature.h"
#include "timeutil.h"

/* Over BODY_MAX_BYTES (16384 by default). */
#define OVERSIZE_BYTES 20000

/* 129 and 65 characters: one over the identity and stream name limits. */
#define A16 "aaaaaaaaaaaaaaaa"
#define A64 A16 A16 A16 A16
#define LONG_IDENTITY A64 A64 "a"
#define LONG_STREAM A64 "a"

/* --- the client API table ------------------------------------------------------------------ */

enum endpoint {
    VERIFY,
    CREATE,
    JOIN_SPEAKER,
    JOIN_VIEWER,
    VIEWER_CONNECTED,
    RAISE_HAND,
    INVITE,
    REMOVE,
    DELETE,
    ENDPOINTS
};

static const char *const endpoint_paths[ENDPOINTS] = {
    "/verify-passcode",
    "/create-stream",
    "/join-stream-as-speaker",
    "/join-stream-as-viewer",
    "/viewer-connected-to-player",
    "/raise-hand",
    "/send-speaker-invite",
    "/remove-speaker",
    "/delete-stream",
};

/* The classes every endpoint is checked against; OTHER rows (malformed
 * JSON, reserved names, the raised-hands cap, ...) come on top. */
enum bad_class {
    MISSING_FIELD,
    WRONG_TYPE,
    TOO_LONG,
    INVALID_UTF8,
    CONTROL_CHARS,
    OVERSIZE_BODY,
    WRONG_CONTENT_TYPE,
    BAD_AUTH,
    NOT_HOST,
    UNKNOWN_STREAM,
    NOT_SELF,    /* jwt mode: a user_identity that names someone else */
    DOT_SEGMENT, /* an identity or stream name of "." or "..": a Twilio path segment naming the parent */
    CLASSES,
    OTHER = CLASSES
};

static const char *const class_names[CLASSES + 1] = {
    "missing field", "wrong type",         "too long", "invalid UTF-8", "control characters",
    "oversize body", "wrong content type", "bad auth", "not host",      "unknown stream",
    "not self",      "dot segment",        "other",
};

enum mode { PASSCODE, JWT };

/* The Authorization header a row sends. CALLER is the mode's own: the
 * passcode, or in jwt mode a token for alice, the host of "friday". */
enum credential {
    CALLER,
    BOB, /* jwt: a valid token for bob, who hosts nothing */
    NO_AUTH,
    THE_PASSCODE, /* jwt mode: the passcode instead of a token */
    WRONG_PASSCODE,
    PASSCODE_AS_BEARER, /* "Bearer <passcode>" */
    FORGED,             /* alice's token signed with another secret */
    EXPIRED,            /* an hour ago, beyond the 30 s leeway */
    NOT_YET_VALID,      /* nbf an hour ahead */
    MALFORMED,          /* "Bearer not.a.jwt" */
    BAD_SUBJECT,        /* sub is not a valid identity */
    UNSIGNED_TOKEN,     /* alg "none", no signature */
    DOT_SUBJECT,        /* a valid signature, but sub is ".." */
    ACCESS_TOKEN,       /* signed with the JWT secret, but carries an access token's grants */
    TWILIO_CTY,         /* signed with the JWT secret, but typed as a Twilio access token */
    CREDENTIALS
};

struct bad_row {
    enum endpoint endpoint;
    enum bad_class class;
    enum mode mode;
    const char *content_type; /* NULL: no Content-Type */
    enum credential credential;
    const char *body; /* NULL in an OVERSIZE_BODY row: OVERSIZE_BYTES are sent */
    long status;
    const char *message;        /* the error's message */
    const char *not_applicable; /* why the combination does not apply; nothing is sent */
    const char *method;         /* NULL: POST */
    const char *path;           /* NULL: the endpoint's */
};

#define JSON_TYPE "application/json"
#define FORM_TYPE "application/x-www-form-urlencoded"

#define ROW(ep, cls, md, type, cred, text, code, msg)                                                                  \
    {                                                                                                                  \
        .endpoint = ep, .class = cls, .mode = md, .content_type = type, .credential = cred, .body = text,              \
        .status = code, .message = msg                                                                                 \
    }
#define PJ(ep, cls, text, code, msg) ROW(ep, cls, PASSCODE, JSON_TYPE, CALLER, text, code, msg)
#define PF(ep, cls, text, code, msg) ROW(ep, cls, PASSCODE, FORM_TYPE, CALLER, text, code, msg)
#define JJ(ep, cls, cred, text, code, msg) ROW(ep, cls, JWT, JSON_TYPE, cred, text, code, msg)
#define NA(ep, cls, why)                                                                                               \
    {                                                                                                                  \
        .endpoint = ep, .class = cls, .not_applicable = why                                                            \
    }

/* Rows every endpoint gets; valid is a body the endpoint would accept, so
 * that nothing but the class can be what is refused. */
#define OVERSIZE(ep) ROW(ep, OVERSIZE_BODY, PASSCODE, JSON_TYPE, CALLER, NULL, 413, "body too large")
#define WRONG_TYPES(ep, valid)                                                                                         \
    ROW(ep, WRONG_CONTENT_TYPE, PASSCODE, "text/plain", CALLER, valid, 415, "unsupported content type"),               \
        ROW(ep, WRONG_CONTENT_TYPE, PASSCODE, NULL, CALLER, valid, 415, "unsupported content type")
#define BAD_PASSCODES(ep, valid)                                                                                       \
    ROW(ep, BAD_AUTH, PASSCODE, JSON_TYPE, NO_AUTH, valid, 401, "passcode incorrect"),                                 \
        ROW(ep, BAD_AUTH, PASSCODE, JSON_TYPE, WRONG_PASSCODE, valid, 401, "passcode incorrect")
#define FORGED_TOKEN(ep, valid) JJ(ep, BAD_AUTH, FORGED, valid, 401, "invalid token")

#define SELF_SERVICE_NOT_HOST                                                                                          \
    "acts on the caller only, so no host check applies (anyone may join or raise a hand, as in the "                   \
    "reference); acting as someone else is the not-self row"

/* Issue 15: a viewer called ".." raised and lowered a hand, and the sync
 * worker's DELETE .../raised_hands/Items/.. deleted the whole map. An
 * identity (user_identity, or a token's sub) or a stream name that is "."
 * or ".." is refused, in JSON and in forms, plain or percent-encoded. */
#define DOT_IDENTITY_ROWS(ep, stream, json_more, form_more)                                                            \
    PJ(ep, DOT_SEGMENT, "{\"user_identity\":\".\",\"stream_name\":\"" stream "\"" json_more "}", 400,                  \
       "invalid user_identity"),                                                                                       \
        PJ(ep, DOT_SEGMENT, "{\"user_identity\":\"..\",\"stream_name\":\"" stream "\"" json_more "}", 400,             \
           "invalid user_identity"),                                                                                   \
        PF(ep, DOT_SEGMENT, "user_identity=..&stream_name=" stream form_more, 400, "invalid user_identity"),           \
        PF(ep, DOT_SEGMENT, "user_identity=%2E%2E&stream_name=" stream form_more, 400, "invalid user_identity")
#define DOT_STREAM_ROWS(ep, json_more)                                                                                 \
    PJ(ep, DOT_SEGMENT, "{\"user_identity\":\"bob\",\"stream_name\":\"..\"" json_more "}", 400, "invalid stream_name")
#define DOT_SUBJECT_ROW(ep, json_more) JJ(ep, DOT_SEGMENT, DOT_SUBJECT, "{" json_more "}", 401, "invalid token")

/* The endpoints that act on the caller's own identity in a stream:
 * user_identity and stream_name, then json_more / form_more. */
#define SELF_SERVICE_ROWS(ep, json_more, form_more)                                                                    \
    PJ(ep, MISSING_FIELD, "{\"stream_name\":\"friday\"" json_more "}", 400, "missing user_identity"),                  \
        PJ(ep, MISSING_FIELD, "{\"user_identity\":\"bob\"" json_more "}", 400, "missing stream_name"),                 \
        PF(ep, MISSING_FIELD, "stream_name=friday" form_more, 400, "missing user_identity"),                           \
        PJ(ep, WRONG_TYPE, "{\"user_identity\":true,\"stream_name\":\"friday\"" json_more "}", 400,                    \
           "invalid user_identity"),                                                                                   \
        PJ(ep, WRONG_TYPE, "{\"user_identity\":\"bob\",\"stream_name\":{\"name\":\"friday\"}" json_more "}", 400,      \
           "invalid stream_name"),                                                                                     \
        PJ(ep, TOO_LONG, "{\"user_identity\":\"" LONG_IDENTITY "\",\"stream_name\":\"friday\"" json_more "}", 400,     \
           "invalid user_identity"),                                                                                   \
        PJ(ep, TOO_LONG, "{\"user_identity\":\"bob\",\"stream_name\":\"" LONG_STREAM "\"" json_more "}", 400,          \
           "invalid stream_name"),                                                                                     \
        PF(ep, TOO_LONG, "user_identity=" LONG_IDENTITY "&stream_name=friday" form_more, 400,                          \
           "invalid user_identity"),                                                                                   \
        PJ(ep, INVALID_UTF8,                                                                                           \
           "{\"user_identity\":\"b\xff"                                                                                \
           "ob\",\"stream_name\":\"friday\"" json_more "}",                                                            \
           400, "invalid body"),                                                                                       \
        PF(ep, INVALID_UTF8, "user_identity=b%FFob&stream_name=friday" form_more, 400, "invalid body"),                \
        PJ(ep, CONTROL_CHARS, "{\"user_identity\":\"b\\u001bob\",\"stream_name\":\"friday\"" json_more "}", 400,       \
           "invalid user_identity"),                                                                                   \
        PF(ep, CONTROL_CHARS, "user_identity=bob&stream_name=fri%7Fday" form_more, 400, "invalid stream_name"),        \
        OVERSIZE(ep), WRONG_TYPES(ep, "{\"user_identity\":\"bob\",\"stream_name\":\"friday\"" json_more "}"),          \
        BAD_PASSCODES(ep, "{\"user_identity\":\"bob\",\"stream_name\":\"friday\"" json_more "}"),                      \
        PJ(ep, UNKNOWN_STREAM, "{\"user_identity\":\"bob\",\"stream_name\":\"nope\"" json_more "}", 404,               \
           "stream not found"),                                                                                        \
        PJ(ep, UNKNOWN_STREAM, "{\"user_identity\":\"bob\",\"stream_name\":\"gone\"" json_more "}", 404,               \
           "stream not found"),                                                                                        \
        JJ(ep, NOT_SELF, BOB, "{\"user_identity\":\"alice\",\"stream_name\":\"friday\"" json_more "}", 403,            \
           "identity mismatch"),                                                                                       \
        FORGED_TOKEN(ep, "{\"stream_name\":\"friday\"" json_more "}"),                                                 \
        DOT_IDENTITY_ROWS(ep, "friday", json_more, form_more), DOT_STREAM_ROWS(ep, json_more),                         \
        DOT_SUBJECT_ROW(ep, "\"stream_name\":\"friday\"" json_more)

/* "friday" is live, hosted by alice, with 2 raised hands of 2; "gone" has
 * ended; "nope" was never heard of. In passcode mode host-only actions
 * cannot be enforced (README, "Authentication"), so the not-host rows run
 * in jwt mode, as bob. */
static const struct bad_row bad_rows[] = {
    /* /verify-passcode reads no field, but its body is parsed like any other. */
    NA(VERIFY, MISSING_FIELD, "takes no field"),
    PJ(VERIFY, WRONG_TYPE, "[\"verify\"]", 400, "invalid body"),
    NA(VERIFY, TOO_LONG, "reads no field; its only length limit is BODY_MAX_BYTES (the oversize row)"),
    PJ(VERIFY, INVALID_UTF8, "{\"x\":\"\xff\"}", 400, "invalid body"),
    PF(VERIFY, INVALID_UTF8, "x=%FF", 400, "invalid body"),
    PJ(VERIFY, CONTROL_CHARS, "{\"x\":\"a\x01\"}", 400, "invalid body"), /* raw, so not JSON */
    NA(VERIFY, CONTROL_CHARS,
       "in a form (the JSON row applies): a control character breaks only a field "
       "rule, and no field is read, so the form is accepted"),
    OVERSIZE(VERIFY),
    WRONG_TYPES(VERIFY, "{}"),
    BAD_PASSCODES(VERIFY, "{}"),
    ROW(VERIFY, BAD_AUTH, PASSCODE, JSON_TYPE, PASSCODE_AS_BEARER, "{}", 401, "passcode incorrect"),
    NA(VERIFY, NOT_HOST, "names no stream, so there is no host"),
    NA(VERIFY, UNKNOWN_STREAM, "names no stream"),
    NA(VERIFY, NOT_SELF, "names no user"),
    FORGED_TOKEN(VERIFY, "{}"),
    NA(VERIFY, DOT_SEGMENT, "names no user and no stream"),
    JJ(VERIFY, BAD_AUTH, NO_AUTH, "{}", 401, "invalid token"),
    /* Issue 15: an access token is never a login token, whatever signed it. */
    JJ(VERIFY, BAD_AUTH, ACCESS_TOKEN, "{}", 401, "invalid token"),
    JJ(VERIFY, BAD_AUTH, TWILIO_CTY, "{}", 401, "invalid token"),

    PJ(CREATE, MISSING_FIELD, "{\"stream_name\":\"saturday\"}", 400, "missing user_identity"),
    PJ(CREATE, MISSING_FIELD, "{\"user_identity\":\"alice\"}", 400, "missing stream_name"),
    PF(CREATE, MISSING_FIELD, "stream_name=saturday", 400, "missing user_identity"),
    ROW(CREATE, MISSING_FIELD, PASSCODE, NULL, CALLER, "", 400, "missing user_identity"), /* no body */
    PJ(CREATE, WRONG_TYPE, "{\"user_identity\":7,\"stream_name\":\"saturday\"}", 400, "invalid user_identity"),
    PJ(CREATE, WRONG_TYPE, "{\"user_identity\":null,\"stream_name\":\"saturday\"}", 400, "invalid user_identity"),
    PJ(CREATE, WRONG_TYPE, "{\"user_identity\":\"alice\",\"stream_name\":[\"saturday\"]}", 400, "invalid stream_name"),
    PJ(CREATE, WRONG_TYPE, "[1,2]", 400, "invalid body"),
    PJ(CREATE, TOO_LONG, "{\"user_identity\":\"" LONG_IDENTITY "\",\"stream_name\":\"saturday\"}", 400,
       "invalid user_identity"),
    PJ(CREATE, TOO_LONG, "{\"user_identity\":\"alice\",\"stream_name\":\"" LONG_STREAM "\"}", 400,
       "invalid stream_name"),
    PF(CREATE, TOO_LONG, "user_identity=alice&stream_name=" LONG_STREAM, 400, "invalid stream_name"),
    PJ(CREATE, INVALID_UTF8, "{\"user_identity\":\"a\xff\",\"stream_name\":\"saturday\"}", 400, "invalid body"),
    PJ(CREATE, INVALID_UTF8, "{\"user_identity\":\"alice\",\"stream_name\":\"\xc0\xaf\"}", 400,
       "invalid body"), /* an overlong '/' */
    PJ(CREATE, INVALID_UTF8, "{\"user_identity\":\"\\ud800\",\"stream_name\":\"saturday\"}", 400,
       "invalid body"), /* a lone surrogate */
    PF(CREATE, INVALID_UTF8, "user_identity=a%FF&stream_name=saturday", 400, "invalid body"),
    PF(CREATE, INVALID_UTF8, "user_identity=alice&stream_name=%ED%A0%80", 400, "invalid body"),
    PJ(CREATE, CONTROL_CHARS, "{\"user_identity\":\"a\\u0007b\",\"stream_name\":\"saturday\"}", 400,
       "invalid user_identity"),
    PJ(CREATE, CONTROL_CHARS, "{\"user_identity\":\"alice\",\"stream_name\":\"x\\u0085\"}", 400,
       "invalid stream_name"), /* C1 */
    PJ(CREATE, CONTROL_CHARS, "{\"user_identity\":\"a\\u0000b\",\"stream_name\":\"saturday\"}", 400,
       "invalid body"), /* jansson refuses NUL */
    PF(CREATE, CONTROL_CHARS, "user_identity=a%07b&stream_name=saturday", 400, "invalid user_identity"),
    PF(CREATE, CONTROL_CHARS, "user_identity=a%00b&stream_name=saturday", 400, "invalid user_identity"),
    PF(CREATE, CONTROL_CHARS, "user_identity=alice&stream_name=x%E2%80%A8", 400, "invalid stream_name"), /* U+2028 */
    OVERSIZE(CREATE),
    WRONG_TYPES(CREATE, "{\"user_identity\":\"alice\",\"stream_name\":\"saturday\"}"),
    ROW(CREATE, WRONG_CONTENT_TYPE, PASSCODE, "application/jsonx", CALLER,
        "{\"user_identity\":\"alice\",\"stream_name\":\"saturday\"}", 415, "unsupported content type"),
    ROW(CREATE, WRONG_CONTENT_TYPE, PASSCODE, "multipart/form-data; boundary=x", CALLER,
        "user_identity=alice&stream_name=saturday", 415, "unsupported content type"),
    BAD_PASSCODES(CREATE, "{\"user_identity\":\"alice\",\"stream_name\":\"saturday\"}"),
    ROW(CREATE, BAD_AUTH, PASSCODE, JSON_TYPE, PASSCODE_AS_BEARER,
        "{\"user_identity\":\"alice\",\"stream_name\":\"saturday\"}", 401, "passcode incorrect"),
    /* Creating makes the caller host; a live stream of another host's is not to be taken. */
    JJ(CREATE, NOT_HOST, BOB, "{\"stream_name\":\"friday\"}", 409, "stream exists"),
    NA(CREATE, UNKNOWN_STREAM, "creates the stream: a name nobody knows is the normal case"),
    JJ(CREATE, NOT_SELF, BOB, "{\"user_identity\":\"alice\",\"stream_name\":\"saturday\"}", 403, "identity mismatch"),
    FORGED_TOKEN(CREATE, "{\"stream_name\":\"saturday\"}"),
    DOT_IDENTITY_ROWS(CREATE, "saturday", "", ""),
    PJ(CREATE, DOT_SEGMENT, "{\"user_identity\":\"alice\",\"stream_name\":\".\"}", 400, "invalid stream_name"),
    PJ(CREATE, DOT_SEGMENT, "{\"user_identity\":\"alice\",\"stream_name\":\"..\"}", 400, "invalid stream_name"),
    PF(CREATE, DOT_SEGMENT, "user_identity=alice&stream_name=%2E%2E", 400, "invalid stream_name"),
    DOT_SUBJECT_ROW(CREATE, "\"stream_name\":\"saturday\""),
    PJ(CREATE, OTHER, "{\"user_identity\":", 400, "invalid body"),
    PJ(CREATE, OTHER, "{\"user_identity\":\"a\",\"user_identity\":\"b\",\"stream_name\":\"x\"}", 400, "invalid body"),
    PF(CREATE, OTHER, "user_identity=a&user_identity=b&stream_name=x", 400, "invalid body"),
    PJ(CREATE, OTHER, "{\"user_identity\":\"video-composer-1\",\"stream_name\":\"x\"}", 400, "invalid user_identity"),
    PJ(CREATE, OTHER, "{\"user_identity\":\" a\",\"stream_name\":\"x\"}", 400, "invalid user_identity"),
    PJ(CREATE, OTHER, "{\"user_identity\":\"\",\"stream_name\":\"x\"}", 400, "invalid user_identity"),
    PJ(CREATE, OTHER, "{\"user_identity\":\"a\",\"stream_name\":\"a/b\"}", 400, "invalid stream_name"),
    PJ(CREATE, OTHER, "{\"user_identity\":\"a\",\"stream_name\":\"...\"}", 400, "invalid stream_name"),
    PJ(CREATE, OTHER, "{\"user_identity\":\"a\",\"stream_name\":\"" ROOM_SID "\"}", 400, "invalid stream_name"),
    PJ(CREATE, OTHER, "{\"user_identity\":\"alice\",\"stream_name\":\"friday\"}", 409, "stream exists"),
    {.endpoint = CREATE,
     .class = OTHER,
     .mode = PASSCODE,
     .content_type = JSON_TYPE,
     .body = "{}",
     .status = 404,
     .message = "not found",
     .path = "/create-streams"},
    {.endpoint = CREATE,
     .class = OTHER,
     .mode = PASSCODE,
     .content_type = JSON_TYPE,
     .body = "",
     .status = 405,
     .message = "method not allowed",
     .method = "GET"},

    SELF_SERVICE_ROWS(JOIN_SPEAKER, "", ""),
    /* Issue 15: in jwt mode the stage is the host's; bob was never invited. */
    JJ(JOIN_SPEAKER, NOT_HOST, BOB, "{\"stream_name\":\"friday\"}", 403, "not invited"),
    SELF_SERVICE_ROWS(JOIN_VIEWER, "", ""),
    NA(JOIN_VIEWER, NOT_HOST, SELF_SERVICE_NOT_HOST),
    SELF_SERVICE_ROWS(VIEWER_CONNECTED, "", ""),
    NA(VIEWER_CONNECTED, NOT_HOST, SELF_SERVICE_NOT_HOST),
    SELF_SERVICE_ROWS(RAISE_HAND, ",\"hand_raised\":false", "&hand_raised=false"),
    NA(RAISE_HAND, NOT_HOST, SELF_SERVICE_NOT_HOST),
    PJ(RAISE_HAND, MISSING_FIELD, "{\"user_identity\":\"bob\",\"stream_name\":\"friday\"}", 400, "missing hand_raised"),
    PJ(RAISE_HAND, WRONG_TYPE, "{\"user_identity\":\"bob\",\"stream_name\":\"friday\",\"hand_raised\":\"false\"}", 400,
       "invalid hand_raised"),
    PJ(RAISE_HAND, WRONG_TYPE, "{\"user_identity\":\"bob\",\"stream_name\":\"friday\",\"hand_raised\":1}", 400,
       "invalid hand_raised"),
    PF(RAISE_HAND, WRONG_TYPE, "user_identity=bob&stream_name=friday&hand_raised=yes", 400, "invalid hand_raised"),
    PJ(RAISE_HAND, OTHER, "{\"user_identity\":\"bob\",\"stream_name\":\"friday\",\"hand_raised\":true}", 409,
       "raised hands full"),

    /* Host actions: user_identity names the user acted on; the stream is
     * stream_name, or the reference's room_sid (invite) / room_name (remove). */
    PJ(INVITE, MISSING_FIELD, "{\"stream_name\":\"friday\"}", 400, "missing user_identity"),
    PJ(INVITE, MISSING_FIELD, "{\"user_identity\":\"carol\"}", 400, "missing stream_name"),
    PF(INVITE, MISSING_FIELD, "stream_name=friday", 400, "missing user_identity"),
    PJ(INVITE, WRONG_TYPE, "{\"user_identity\":[],\"stream_name\":\"friday\"}", 400, "invalid user_identity"),
    PJ(INVITE, WRONG_TYPE, "{\"user_identity\":\"carol\",\"stream_name\":false}", 400, "invalid stream_name"),
    PJ(INVITE, WRONG_TYPE, "{\"user_identity\":\"carol\",\"room_sid\":7}", 400, "invalid room_sid"),
    PJ(INVITE, WRONG_TYPE, "{\"user_identity\":\"carol\",\"room_sid\":\"RM1\"}", 400, "invalid room_sid"),
    PJ(INVITE, TOO_LONG, "{\"user_identity\":\"" LONG_IDENTITY "\",\"stream_name\":\"friday\"}", 400,
       "invalid user_identity"),
    PJ(INVITE, TOO_LONG, "{\"user_identity\":\"carol\",\"stream_name\":\"" LONG_STREAM "\"}", 400,
       "invalid stream_name"),
    PJ(INVITE, TOO_LONG, "{\"user_identity\":\"carol\",\"room_sid\":\"" ROOM_SID "0\"}", 400, "invalid room_sid"),
    PJ(INVITE, INVALID_UTF8,
       "{\"user_identity\":\"car\xff"
       "ol\",\"stream_name\":\"friday\"}",
       400, "invalid body"),
    PF(INVITE, INVALID_UTF8, "user_identity=carol&room_sid=RM%FF", 400, "invalid body"),
    PJ(INVITE, CONTROL_CHARS, "{\"user_identity\":\"carol\\t\",\"stream_name\":\"friday\"}", 400,
       "invalid user_identity"),
    PF(INVITE, CONTROL_CHARS, "user_identity=car%0Aol&stream_name=friday", 400, "invalid user_identity"),
    OVERSIZE(INVITE),
    WRONG_TYPES(INVITE, "{\"user_identity\":\"carol\",\"stream_name\":\"friday\"}"),
    BAD_PASSCODES(INVITE, "{\"user_identity\":\"carol\",\"stream_name\":\"friday\"}"),
    JJ(INVITE, NOT_HOST, BOB, "{\"user_identity\":\"carol\",\"stream_name\":\"friday\"}", 403, "not the host"),
    JJ(INVITE, NOT_HOST, BOB, "{\"user_identity\":\"carol\",\"room_sid\":\"" ROOM_SID "\"}", 403, "not the host"),
    PJ(INVITE, UNKNOWN_STREAM, "{\"user_identity\":\"carol\",\"stream_name\":\"nope\"}", 404, "stream not found"),
    PJ(INVITE, UNKNOWN_STREAM, "{\"user_identity\":\"carol\",\"stream_name\":\"gone\"}", 404, "stream not found"),
    PJ(INVITE, UNKNOWN_STREAM, "{\"user_identity\":\"carol\",\"room_sid\":\"RMffffffffffffffffffffffffffffffff\"}", 404,
       "stream not found"),
    NA(INVITE, NOT_SELF, "user_identity names the invitee, not the caller"),
    FORGED_TOKEN(INVITE, "{\"user_identity\":\"carol\",\"stream_name\":\"friday\"}"),
    DOT_IDENTITY_ROWS(INVITE, "friday", "", ""),
    JJ(INVITE, DOT_SEGMENT, CALLER, "{\"user_identity\":\"..\",\"stream_name\":\"friday\"}", 400,
       "invalid user_identity"), /* the host invites ".." */
    PJ(INVITE, DOT_SEGMENT, "{\"user_identity\":\"carol\",\"stream_name\":\"..\"}", 400, "invalid stream_name"),
    DOT_SUBJECT_ROW(INVITE, "\"user_identity\":\"carol\",\"stream_name\":\"friday\""),

    PJ(REMOVE, MISSING_FIELD, "{\"stream_name\":\"friday\"}", 400, "missing user_identity"),
    PJ(REMOVE, MISSING_FIELD, "{\"user_identity\":\"bob\"}", 400, "missing stream_name"),
    PF(REMOVE, MISSING_FIELD, "user_identity=bob", 400, "missing stream_name"),
    PJ(REMOVE, WRONG_TYPE, "{\"user_identity\":{},\"stream_name\":\"friday\"}", 400, "invalid user_identity"),
    PJ(REMOVE, WRONG_TYPE, "{\"user_identity\":\"bob\",\"room_name\":5}", 400, "invalid room_name"),
    PJ(REMOVE, TOO_LONG, "{\"user_identity\":\"" LONG_IDENTITY "\",\"stream_name\":\"friday\"}", 400,
       "invalid user_identity"),
    PJ(REMOVE, TOO_LONG, "{\"user_identity\":\"bob\",\"room_name\":\"" LONG_STREAM "\"}", 400, "invalid room_name"),
    PJ(REMOVE, INVALID_UTF8,
       "{\"user_identity\":\"bob\",\"room_name\":\"fri\xff"
       "day\"}",
       400, "invalid body"),
    PF(REMOVE, INVALID_UTF8, "user_identity=bob&room_name=fri%FFday", 400, "invalid body"),
    PJ(REMOVE, CONTROL_CHARS, "{\"user_identity\":\"bob\",\"room_name\":\"fri\\u0008day\"}", 400, "invalid room_name"),
    PF(REMOVE, CONTROL_CHARS, "user_identity=bob&stream_name=%C2%9B", 400, "invalid stream_name"), /* U+009B */
    OVERSIZE(REMOVE),
    WRONG_TYPES(REMOVE, "{\"user_identity\":\"bob\",\"stream_name\":\"friday\"}"),
    BAD_PASSCODES(REMOVE, "{\"user_identity\":\"bob\",\"stream_name\":\"friday\"}"),
    JJ(REMOVE, NOT_HOST, BOB, "{\"user_identity\":\"carol\",\"stream_name\":\"friday\"}", 403, "not the host"),
    JJ(REMOVE, NOT_HOST, BOB, "{\"user_identity\":\"carol\",\"room_name\":\"friday\"}", 403, "not the host"),
    PJ(REMOVE, UNKNOWN_STREAM, "{\"user_identity\":\"bob\",\"stream_name\":\"nope\"}", 404, "stream not found"),
    PJ(REMOVE, UNKNOWN_STREAM, "{\"user_identity\":\"bob\",\"room_name\":\"nope\"}", 404, "stream not found"),
    PJ(REMOVE, UNKNOWN_STREAM, "{\"user_identity\":\"bob\",\"stream_name\":\"gone\"}", 404, "stream not found"),
    NA(REMOVE, NOT_SELF, "user_identity names the speaker removed, not the caller"),
    FORGED_TOKEN(REMOVE, "{\"user_identity\":\"bob\",\"stream_name\":\"friday\"}"),
    DOT_IDENTITY_ROWS(REMOVE, "friday", "", ""),
    JJ(REMOVE, DOT_SEGMENT, CALLER, "{\"user_identity\":\"..\",\"stream_name\":\"friday\"}", 400,
       "invalid user_identity"), /* the host removes ".." */
    PJ(REMOVE, DOT_SEGMENT, "{\"user_identity\":\"bob\",\"room_name\":\"..\"}", 400, "invalid room_name"),
    DOT_SUBJECT_ROW(REMOVE, "\"user_identity\":\"bob\",\"stream_name\":\"friday\""),

    PJ(DELETE, MISSING_FIELD, "{}", 400, "missing stream_name"),
    PF(DELETE, MISSING_FIELD, "reason=bored", 400, "missing stream_name"),
    PJ(DELETE, WRONG_TYPE, "{\"stream_name\":1.5}", 400, "invalid stream_name"),
    PJ(DELETE, WRONG_TYPE, "\"friday\"", 400, "invalid body"),
    PJ(DELETE, TOO_LONG, "{\"stream_name\":\"" LONG_STREAM "\"}", 400, "invalid stream_name"),
    PJ(DELETE, INVALID_UTF8,
       "{\"stream_name\":\"fri\xe2\x82"
       "day\"}",
       400, "invalid body"), /* cut short */
    PF(DELETE, INVALID_UTF8, "stream_name=fri%E2%82day", 400, "invalid body"),
    PJ(DELETE, CONTROL_CHARS, "{\"stream_name\":\"friday\\r\\n\"}", 400, "invalid stream_name"),
    PF(DELETE, CONTROL_CHARS, "stream_name=friday%0D%0A", 400, "invalid stream_name"),
    OVERSIZE(DELETE),
    WRONG_TYPES(DELETE, "{\"stream_name\":\"friday\"}"),
    BAD_PASSCODES(DELETE, "{\"stream_name\":\"friday\"}"),
    JJ(DELETE, NOT_HOST, BOB, "{\"stream_name\":\"friday\"}", 403, "not the host"),
    PJ(DELETE, UNKNOWN_STREAM, "{\"stream_name\":\"nope\"}", 404, "stream not found"),
    PJ(DELETE, UNKNOWN_STREAM, "{\"stream_name\":\"gone\"}", 404, "stream not found"),
    NA(DELETE, NOT_SELF, "names no user; only the host may end a stream (the not-host row)"),
    PJ(DELETE, DOT_SEGMENT, "{\"stream_name\":\".\"}", 400, "invalid stream_name"),
    PJ(DELETE, DOT_SEGMENT, "{\"stream_name\":\"..\"}", 400, "invalid stream_name"),
    PF(DELETE, DOT_SEGMENT, "stream_name=%2E%2E", 400, "invalid stream_name"),
    DOT_SUBJECT_ROW(DELETE, "\"stream_name\":\"friday\""),
    /* Every way a bearer token can be wrong. */
    FORGED_TOKEN(DELETE, "{\"stream_name\":\"friday\"}"),
    JJ(DELETE, BAD_AUTH, NO_AUTH, "{\"stream_name\":\"friday\"}", 401, "invalid token"),
    JJ(DELETE, BAD_AUTH, THE_PASSCODE, "{\"stream_name\":\"friday\"}", 401, "invalid token"),
    JJ(DELETE, BAD_AUTH, EXPIRED, "{\"stream_name\":\"friday\"}", 401, "invalid token"),
    JJ(DELETE, BAD_AUTH, NOT_YET_VALID, "{\"stream_name\":\"friday\"}", 401, "invalid token"),
    JJ(DELETE, BAD_AUTH, MALFORMED, "{\"stream_name\":\"friday\"}", 401, "invalid token"),
    JJ(DELETE, BAD_AUTH, BAD_SUBJECT, "{\"stream_name\":\"friday\"}", 401, "invalid token"),
    JJ(DELETE, BAD_AUTH, UNSIGNED_TOKEN, "{\"stream_name\":\"friday\"}", 401, "invalid token"),
};

#define BAD_ROWS (sizeof bad_rows / sizeof bad_rows[0])
/* What the table holds; a row removed or added must change these too. */
#define APPLICABLE_ROWS 271
#define NOT_APPLICABLE_ROWS 14

/* The valid request that ends each endpoint's group: it must be answered
 * status and produce event (for /verify-passcode, which produces none,
 * a viewer's connection stands in). Sent with Prefer: respond-async, so
 * that create-stream answers once Kafka has the event. */
struct valid_request {
    const char *path;
    const char *body;
    long status;
    const char *event;
    const char *stream;
};

static const struct valid_request valid_passcode[ENDPOINTS] = {
    [VERIFY] = {"/viewer-connected-to-player", "{\"user_identity\":\"bob\",\"stream_name\":\"friday\"}", 200,
                "viewer.connected", "friday"},
    [CREATE] = {"/create-stream", "{\"user_identity\":\"alice\",\"stream_name\":\"saturday\"}", 202,
                "stream.create_requested", "saturday"},
    [JOIN_SPEAKER] = {"/join-stream-as-speaker", "{\"user_identity\":\"bob\",\"stream_name\":\"friday\"}", 200,
                      "user.joined", "friday"},
    [JOIN_VIEWER] = {"/join-stream-as-viewer", "{\"user_identity\":\"bob\",\"stream_name\":\"friday\"}", 200,
                     "user.joined", "friday"},
    [VIEWER_CONNECTED] = {"/viewer-connected-to-player", "{\"user_identity\":\"bob\",\"stream_name\":\"friday\"}", 200,
                          "viewer.connected", "friday"},
    [RAISE_HAND] = {"/raise-hand", "{\"user_identity\":\"bob\",\"stream_name\":\"friday\",\"hand_raised\":false}", 200,
                    "hand.lowered", "friday"},
    [INVITE] = {"/send-speaker-invite", "{\"user_identity\":\"carol\",\"stream_name\":\"friday\"}", 200,
                "speaker.invited", "friday"},
    [REMOVE] = {"/remove-speaker", "{\"user_identity\":\"bob\",\"stream_name\":\"friday\"}", 200,
                "speaker.remove_requested", "friday"},
    [DELETE] = {"/delete-stream", "{\"stream_name\":\"friday\"}", 200, "stream.end_requested", "friday"},
};

/* The same as alice, the host, in jwt mode. */
static const struct valid_request valid_jwt[ENDPOINTS] = {
    [VERIFY] = {"/viewer-connected-to-player", "{\"stream_name\":\"friday\"}", 200, "viewer.connected", "friday"},
    [CREATE] = {"/create-stream", "{\"stream_name\":\"saturday\"}", 202, "stream.create_requested", "saturday"},
    [JOIN_SPEAKER] = {"/join-stream-as-speaker", "{\"stream_name\":\"friday\"}", 200, "user.joined", "friday"},
    [JOIN_VIEWER] = {"/join-stream-as-viewer", "{\"stream_name\":\"friday\"}", 200, "user.joined", "friday"},
    [VIEWER_CONNECTED] = {"/viewer-connected-to-player", "{\"stream_name\":\"friday\"}", 200, "viewer.connected",
                          "friday"},
    [RAISE_HAND] = {"/raise-hand", "{\"stream_name\":\"friday\",\"hand_raised\":false}", 200, "hand.lowered", "friday"},
    [INVITE] = {"/send-speaker-invite", "{\"user_identity\":\"carol\",\"stream_name\":\"friday\"}", 200,
                "speaker.invited", "friday"},
    [REMOVE] = {"/remove-speaker", "{\"user_identity\":\"bob\",\"stream_name\":\"friday\"}", 200,
                "speaker.remove_requested", "friday"},
    [DELETE] = {"/delete-stream", "{\"stream_name\":\"friday\"}", 200, "stream.end_requested", "friday"},
};

/* --- the webhook table -------------------------------------------------------------------------- */

enum webhook { ROOMS, SYNC, MEDIA, WEBHOOKS };

enum webhook_class {
    NO_SIGNATURE,
    WRONG_SIGNATURE,
    SIGNED_FOR_ANOTHER_URL,
    WEBHOOK_CONTENT_TYPE,
    WEBHOOK_OVERSIZE,
    WEBHOOK_NOT_UTF8,
    WEBHOOK_CLASSES,
    WEBHOOK_OTHER = WEBHOOK_CLASSES
};

static const char *const webhook_class_names[WEBHOOK_CLASSES + 1] = {
    "no signature",         "wrong signature", "signed for another URL", "wrong content type", "oversize body",
    "field not UTF-8 text", "other",
};

/* How a webhook row is signed. */
enum signing {
    SIGNED,      /* as Twilio would: PUBLIC_BASE_URL + path and query, the auth token */
    UNSIGNED,    /* no X-Twilio-Signature */
    GARBAGE,     /* a well-formed signature of nothing */
    OTHER_TOKEN, /* under another auth token */
    TAMPERED,    /* signed, then the field changed */
    OTHER_PATH,  /* signed for another webhook's path */
    OTHER_QUERY, /* signed for another query */
    OTHER_BASE,  /* signed for the address the test reached, not PUBLIC_BASE_URL */
};

/* A webhook's valid delivery: the fields of an event that produces one.
 * WEBHOOK_NOW stands for the current time, since the ingress refuses
 * deliveries outside its replay window (WEBHOOK_REPLAY_WINDOW_S). */
#define WEBHOOK_NOW "(now)"
struct webhook_info {
    const char *path;
    const char *query;       /* "" or "?stream=friday" */
    const char *other_query; /* what OTHER_QUERY signs */
    const char *fields[8][2];
    const char *event; /* produced for the valid delivery, on "friday" */
};

static const struct webhook_info webhooks[WEBHOOKS] = {
    [ROOMS] = {"/rooms-webhook",
               "",
               "?x=1",
               {{"AccountSid", TEST_ACCOUNT_SID},
                {"RoomName", "friday"},
                {"RoomSid", ROOM_SID},
                {"StatusCallbackEvent", "participant-connected"},
                {"Timestamp", WEBHOOK_NOW},
                {"ParticipantIdentity", "bob"},
                {"ParticipantSid", "PA0123456789abcdef0123456789abcdef"},
                {NULL, NULL}},
               "participant.connected"},
    [SYNC] = {"/sync-webhook",
              "?stream=friday",
              "?stream=saturday",
              {{"AccountSid", TEST_ACCOUNT_SID},
               {"ServiceSid", SERVICE_SID},
               {"EventType", "endpoint_disconnected"},
               {"Identity", "carol"},
               {"EndpointId", "EP1"},
               {"DateCreated", WEBHOOK_NOW},
               {NULL, NULL}},
              "viewer.disconnected"},
    [MEDIA] = {"/media-webhook",
               "?stream=friday",
               "?stream=saturday",
               {{"AccountSid", TEST_ACCOUNT_SID},
                {"MediaProcessorSid", PROCESSOR_SID},
                {"StatusCallbackEvent", "media-processor-ended"},
                {"EndedReason", "max-duration-exceeded"},
                {"Timestamp", WEBHOOK_NOW},
                {NULL, NULL}},
               "media.ended"},
};

struct webhook_row {
    enum webhook hook;
    enum webhook_class class;
    enum signing signing;
    const char *content_type; /* NULL: none */
    const char *field;        /* a field given value instead (added if the delivery has none) */
    const char *value;        /* NULL with field: the field is left out */
    size_t value_len;         /* 0: strlen(value) */
    const char *query;        /* NULL: the webhook's own */
    long status;
    const char *message; /* the error's message; NULL: the answer is 200 {} (ignored) */
};

#define HOOK_ROW(h, cls, sig, type, code, msg)                                                                         \
    {                                                                                                                  \
        .hook = h, .class = cls, .signing = sig, .content_type = type, .status = code, .message = msg                  \
    }
#define HOOK_FIELD(h, cls, name, text, len, code, msg)                                                                 \
    {                                                                                                                  \
        .hook = h, .class = cls, .signing = SIGNED, .content_type = FORM_TYPE, .field = name, .value = text,           \
        .value_len = len, .status = code, .message = msg                                                               \
    }
#define OVERSIZE_FIELD "Padding" /* its value is made OVERSIZE_BYTES long */

/* The rows every webhook gets; identity is a field that goes into its event. */
#define WEBHOOK_ROWS(h, identity)                                                                                      \
    HOOK_ROW(h, NO_SIGNATURE, UNSIGNED, FORM_TYPE, 403, "invalid signature"),                                          \
        HOOK_ROW(h, WRONG_SIGNATURE, GARBAGE, FORM_TYPE, 403, "invalid signature"),                                    \
        HOOK_ROW(h, WRONG_SIGNATURE, OTHER_TOKEN, FORM_TYPE, 403, "invalid signature"),                                \
        {.hook = h,                                                                                                    \
         .class = WRONG_SIGNATURE,                                                                                     \
         .signing = TAMPERED,                                                                                          \
         .content_type = FORM_TYPE,                                                                                    \
         .field = identity,                                                                                            \
         .value = "mallory",                                                                                           \
         .status = 403,                                                                                                \
         .message = "invalid signature"},                                                                              \
        HOOK_ROW(h, SIGNED_FOR_ANOTHER_URL, OTHER_PATH, FORM_TYPE, 403, "invalid signature"),                          \
        HOOK_ROW(h, SIGNED_FOR_ANOTHER_URL, OTHER_QUERY, FORM_TYPE, 403, "invalid signature"),                         \
        HOOK_ROW(h, SIGNED_FOR_ANOTHER_URL, OTHER_BASE, FORM_TYPE, 403, "invalid signature"),                          \
        HOOK_ROW(h, WEBHOOK_CONTENT_TYPE, SIGNED, "application/json", 415, "unsupported content type"),                \
        HOOK_ROW(h, WEBHOOK_CONTENT_TYPE, SIGNED, NULL, 415, "unsupported content type"),                              \
        HOOK_ROW(h, WEBHOOK_CONTENT_TYPE, SIGNED, FORM_TYPE "x", 415, "unsupported content type"),                     \
        HOOK_FIELD(h, WEBHOOK_OVERSIZE, OVERSIZE_FIELD, "", 0, 413, "body too large"),                                 \
        HOOK_FIELD(h, WEBHOOK_NOT_UTF8, identity,                                                                      \
                   "b\xff"                                                                                             \
                   "ob",                                                                                               \
                   0, 400, "invalid webhook"),                                                                         \
        HOOK_FIELD(h, WEBHOOK_NOT_UTF8, identity, "b\0ob", 4, 400, "invalid webhook")

static const struct webhook_row webhook_rows[] = {
    WEBHOOK_ROWS(ROOMS, "ParticipantIdentity"),
    HOOK_FIELD(ROOMS, WEBHOOK_NOT_UTF8, "RoomName",
               "fri\xff"
               "day",
               0, 400, "invalid webhook"),
    HOOK_FIELD(ROOMS, WEBHOOK_OTHER, "RoomSid", NULL, 0, 400, "invalid webhook"),
    HOOK_FIELD(ROOMS, WEBHOOK_OTHER, "Timestamp", NULL, 0, 400, "invalid webhook"),
    /* A name that cannot be a stream: a stream nobody knows, ignored. */
    HOOK_FIELD(ROOMS, WEBHOOK_OTHER, "RoomName", "a/b", 0, 200, NULL),
    /* An identity that is a dot segment makes no valid event: ignored. */
    HOOK_FIELD(ROOMS, WEBHOOK_OTHER, "ParticipantIdentity", "..", 0, 200, NULL),
    HOOK_FIELD(ROOMS, WEBHOOK_OTHER, "RoomName", "..", 0, 200, NULL),
    WEBHOOK_ROWS(SYNC, "Identity"),
    HOOK_FIELD(SYNC, WEBHOOK_OTHER, "ServiceSid", NULL, 0, 400, "invalid webhook"),
    HOOK_FIELD(SYNC, WEBHOOK_OTHER, "Identity", ".", 0, 200, NULL),
    {.hook = SYNC,
     .class = WEBHOOK_OTHER,
     .signing = SIGNED,
     .content_type = FORM_TYPE,
     .query = "?stream=%FF",
     .status = 200,
     .message = NULL},
    WEBHOOK_ROWS(MEDIA, "EndedReason"),
    HOOK_FIELD(MEDIA, WEBHOOK_NOT_UTF8, "MediaProcessorSid", "ZX\xff", 0, 400, "invalid webhook"),
    HOOK_FIELD(MEDIA, WEBHOOK_OTHER, "MediaProcessorSid", NULL, 0, 400, "invalid webhook"),
};

#define WEBHOOK_ROW_COUNT (sizeof webhook_rows / sizeof webhook_rows[0])
#define EXPECTED_WEBHOOK_ROWS 50

/* --- sending ------------------------------------------------------------------------------- */

/* Authorization headers by credential (NULL: none), made once per test. */
struct credentials {
    char *header[CREDENTIALS];
};

/* A login token for identity signed with the JWT secret, but with the
 * header of a Twilio access token. */
static char *twilio_typed_token(const char *identity)
{
    const char *h = "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"cty\":\"twilio-fpa;v=1\"}";
    json_t *claims = json_pack("{s:s, s:I}", "sub", identity, "exp", (json_int_t)(time(NULL) + 600));
    char *c = json_dumps(claims, JSON_COMPACT);
    json_decref(claims);
    assert_non_null(c);
    char h64[128], c64[256], input[400], sig64[64];
    assert_true(strlen(h) < 90 && strlen(c) < 180);
    base64url_encode((const unsigned char *)h, strlen(h), h64);
    base64url_encode((const unsigned char *)c, strlen(c), c64);
    snprintf(input, sizeof input, "%s.%s", h64, c64);
    free(c);
    unsigned char mac[32];
    unsigned int mac_len = 0;
    assert_non_null(HMAC(EVP_sha256(), JWT_SECRET, (int)strlen(JWT_SECRET), (const unsigned char *)input, strlen(input),
                         mac, &mac_len));
    base64url_encode(mac, mac_len, sig64);
    size_t n = strlen(input) + strlen(sig64) + 32;
    char *out = malloc(n);
    assert_non_null(out);
    snprintf(out, n, "Authorization: Bearer %s.%s", input, sig64);
    return out;
}

/* A token with alg "none" and no signature. */
static char *unsigned_token(const char *identity)
{
    json_t *header = json_pack("{s:s, s:s}", "alg", "none", "typ", "JWT");
    json_t *claims = json_pack("{s:s, s:I}", "sub", identity, "exp", (json_int_t)(time(NULL) + 600));
    char *h = json_dumps(header, JSON_COMPACT), *c = json_dumps(claims, JSON_COMPACT);
    assert_non_null(h);
    assert_non_null(c);
    char h64[128], c64[256];
    assert_true(strlen(h) < 90 && strlen(c) < 180);
    base64url_encode((const unsigned char *)h, strlen(h), h64);
    base64url_encode((const unsigned char *)c, strlen(c), c64);
    size_t n = strlen(h64) + strlen(c64) + 32;
    char *out = malloc(n);
    assert_non_null(out);
    snprintf(out, n, "Authorization: Bearer %s.%s.", h64, c64);
    free(h);
    free(c);
    json_decref(header);
    json_decref(claims);
    return out;
}

static void credentials_make(struct credentials *c)
{
    memset(c, 0, sizeof *c);
    c->header[BOB] = bearer_for("bob", JWT_SECRET);
    c->header[THE_PASSCODE] = strdup("Authorization: " TEST_PASSCODE);
    c->header[WRONG_PASSCODE] = strdup("Authorization: 4242");
    c->header[PASSCODE_AS_BEARER] = strdup("Authorization: Bearer " TEST_PASSCODE);
    c->header[FORGED] = bearer_for("alice", "not-the-identity-service-secret");
    c->header[EXPIRED] = bearer_expiring("alice", JWT_SECRET, -3600);
    c->header[NOT_YET_VALID] = bearer_with_claims(json_pack("{s:s, s:I, s:I}", "sub", "alice", "exp",
                                                            (json_int_t)(time(NULL) + 7200), "nbf",
                                                            (json_int_t)(time(NULL) + 3600)),
                                                  JWT_SECRET);
    c->header[MALFORMED] = strdup("Authorization: Bearer not.a.jwt");
    c->header[BAD_SUBJECT] = bearer_for("video-composer-1", JWT_SECRET);
    c->header[UNSIGNED_TOKEN] = unsigned_token("alice");
    c->header[DOT_SUBJECT] = bearer_for("..", JWT_SECRET);
    c->header[ACCESS_TOKEN] = bearer_with_claims(json_pack("{s:s, s:I, s:{s:s, s:{s:s}}}", "sub", "alice", "exp",
                                                           (json_int_t)(time(NULL) + 600), "grants", "identity",
                                                           "alice", "video", "room", "friday"),
                                                 JWT_SECRET);
    c->header[TWILIO_CTY] = twilio_typed_token("alice");
    for (int i = 0; i < CREDENTIALS; i++)
        assert_true(i == CALLER || i == NO_AUTH || c->header[i]);
}

static void credentials_free(struct credentials *c)
{
    for (int i = 0; i < CREDENTIALS; i++)
        free(c->header[i]);
}

/* The caller's own header in mode: the passcode, or alice's token. */
static const char *caller_header(struct fixture *f, const struct credentials *c, enum mode mode)
{
    return mode == PASSCODE ? c->header[THE_PASSCODE] : f->auth;
}

/* Checks that r is the error the row wants: status, a JSON body
 * {"error": {"message": message, "explanation": "..."}}, or when message
 * is NULL a JSON object without "error". 0, or -1 with why in out. */
static int check_answer(const struct http_reply *r, long status, const char *message, char *why, size_t whylen)
{
    json_t *body = json_loads(r->body, 0, NULL);
    const json_t *error = json_object_get(body, "error");
    const char *got = json_string_value(json_object_get(error, "message"));
    const char *explanation = json_string_value(json_object_get(error, "explanation"));
    int ok = r->status == status && json_is_object(body) && strncmp(r->content_type, "application/json", 16) == 0;
    if (message)
        ok = ok && got && strcmp(got, message) == 0 && explanation && explanation[0];
    else
        ok = ok && !error;
    json_decref(body);
    if (!ok)
        snprintf(why, whylen, "got %ld (%s) %.300s; wanted %ld %s", r->status, r->content_type, r->body, status,
                 message ? message : "{}");
    return ok ? 0 : -1;
}

/* A JSON body of OVERSIZE_BYTES. malloc'd. */
static char *oversize_json(void)
{
    char *big = malloc(OVERSIZE_BYTES + 1);
    assert_non_null(big);
    memset(big, 'a', OVERSIZE_BYTES);
    memcpy(big, "{\"user_identity\":\"", 18);
    memcpy(big + OVERSIZE_BYTES - 2, "\"}", 2);
    big[OVERSIZE_BYTES] = '\0';
    return big;
}

/* Sends row i and checks its answer, and that Kafka still holds events
 * (no more). */
static void run_row(struct fixture *f, size_t i, const struct credentials *cred, int64_t events)
{
    const struct bad_row *row = &bad_rows[i];
    char type[160], path[128], why[600];
    const char *headers[3];
    size_t n = 0;
    /* "Content-Type:" with no value stops curl from adding its own. */
    snprintf(type, sizeof type, "Content-Type:%s%s", row->content_type ? " " : "",
             row->content_type ? row->content_type : "");
    headers[n++] = type;
    const char *auth = row->credential == CALLER ? caller_header(f, cred, row->mode) : cred->header[row->credential];
    if (auth)
        headers[n++] = auth;
    headers[n] = NULL;
    char *big = row->body ? NULL : oversize_json();
    snprintf(path, sizeof path, "%s", row->path ? row->path : endpoint_paths[row->endpoint]);
    struct http_reply r = call(f, row->method ? row->method : "POST", path, headers, row->body ? row->body : big);
    free(big);
    int wrong = check_answer(&r, row->status, row->message, why, sizeof why) < 0;
    http_reply_free(&r);
    if (wrong)
        fail_msg("row %zu (%s, %s, %s mode, body %.80s): %s", i, path, class_names[row->class],
                 row->mode == JWT ? "jwt" : "passcode", row->body ? row->body : "(oversize)", why);
    int64_t now = events_in_kafka(f);
    if (now != events)
        fail_msg("row %zu (%s, %s) must produce nothing, yet %lld event(s) reached Kafka", i, path,
                 class_names[row->class], (long long)(now - events));
}

/* The valid request that ends a group: its answer, and its event read
 * back, the only one since the group began with events in Kafka. */
static void expect_valid(struct fixture *f, const struct valid_request *v, const char *auth, int64_t events)
{
    const char *headers[] = {"Content-Type: application/json", "Prefer: respond-async", auth, NULL};
    struct http_reply r = call(f, "POST", v->path, headers, v->body);
    long status = r.status;
    http_reply_free(&r);
    if (status != v->status)
        fail_msg("the valid request %s %s got %ld, not %ld", v->path, v->body, status, v->status);
    json_decref(expect_event(f, v->event, v->stream, NULL));
    assert_int_equal(events_in_kafka(f), events + 1);
}

/* Runs the applicable rows of mode, grouped by endpoint. Returns how many. */
static size_t run_rows(struct fixture *f, enum mode mode)
{
    struct credentials cred;
    size_t ran = 0;
    credentials_make(&cred);
    for (int ep = 0; ep < ENDPOINTS; ep++) {
        int64_t events = events_in_kafka(f);
        for (size_t i = 0; i < BAD_ROWS; i++) {
            if (bad_rows[i].endpoint != (enum endpoint)ep || bad_rows[i].mode != mode || bad_rows[i].not_applicable)
                continue;
            run_row(f, i, &cred, events);
            ran++;
        }
        expect_no_event(f);
        expect_valid(f, mode == PASSCODE ? &valid_passcode[ep] : &valid_jwt[ep], caller_header(f, &cred, mode), events);
    }
    credentials_free(&cred);
    return ran;
}

/* "friday" live (alice hosts; 2 raised hands of 2), "gone" ended. */
static void publish_streams(struct fixture *f)
{
    publish_live_stream(f, "friday", "alice", 2, 2);
    publish_state(f, "gone", "room",
                  json_pack("{s:s, s:i, s:s, s:s}", "status", "ended", "since", 1000, "host", "alice", "room_sid",
                            "RMeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"));
    wait_stream_status(f, "friday", "live");
    wait_stream_status(f, "gone", "ended");
}

/* How many rows of mode apply. */
static size_t applicable_rows(enum mode mode)
{
    size_t n = 0;
    for (size_t i = 0; i < BAD_ROWS; i++)
        if (!bad_rows[i].not_applicable && bad_rows[i].mode == mode)
            n++;
    return n;
}

/* --- tests: the tables -------------------------------------------------------------------------- */

/* Every endpoint has a row for every class (one that applies, or one that
 * says why not), every row is well formed, and the counts are the ones
 * written down. Prints the matrix of statuses. */
static void test_matrix_is_complete(void **state)
{
    (void)state;
    char cells[ENDPOINTS][CLASSES][48];
    size_t applicable = 0, not_applicable = 0;
    memset(cells, 0, sizeof cells);
    for (size_t i = 0; i < BAD_ROWS; i++) {
        const struct bad_row *row = &bad_rows[i];
        assert_true(row->endpoint < ENDPOINTS && row->class <= OTHER);
        if (row->not_applicable) {
            if (!row->not_applicable[0] || row->status || row->body || row->class == OTHER)
                fail_msg("row %zu: a row that does not apply has a reason and nothing else", i);
            not_applicable++;
        } else {
            if (row->status < 400 || !row->message || (!row->body && row->class != OVERSIZE_BODY))
                fail_msg("row %zu: an applicable row has a 4xx status, a message and a body", i);
            int jwt_only = row->credential == BOB || row->credential == THE_PASSCODE || row->credential >= FORGED;
            if ((row->mode == PASSCODE && jwt_only) ||
                (row->mode == JWT && (row->credential == WRONG_PASSCODE || row->credential == PASSCODE_AS_BEARER)))
                fail_msg("row %zu: credential %d does not belong to its mode", i, row->credential);
            applicable++;
        }
        if (row->class == OTHER)
            continue;
        char *cell = cells[row->endpoint][row->class];
        char status[8];
        snprintf(status, sizeof status, "%ld", row->status);
        const char *mark = row->not_applicable ? "n/a" : status;
        if (!strstr(cell, mark) && strlen(cell) + strlen(mark) + 2 < sizeof cells[0][0])
            snprintf(cell + strlen(cell), sizeof cells[0][0] - strlen(cell), "%s%s", cell[0] ? "," : "", mark);
    }
    printf("# %-20s", "class \\ endpoint");
    for (int e = 0; e < ENDPOINTS; e++)
        printf(" %s", endpoint_paths[e] + 1);
    printf("\n");
    for (int c = 0; c < CLASSES; c++) {
        printf("# %-20s", class_names[c]);
        for (int e = 0; e < ENDPOINTS; e++) {
            if (!cells[e][c][0])
                fail_msg("no row for %s x %s: add one, or one that does not apply, with the reason", endpoint_paths[e],
                         class_names[c]);
            printf(" %s", cells[e][c]);
        }
        printf("\n");
    }
    printf("# client API: %zu rows apply (%zu passcode, %zu jwt), %zu do not\n", applicable, applicable_rows(PASSCODE),
           applicable_rows(JWT), not_applicable);
    assert_int_equal(applicable, APPLICABLE_ROWS);
    assert_int_equal(not_applicable, NOT_APPLICABLE_ROWS);

    int hooks[WEBHOOKS][WEBHOOK_CLASSES];
    memset(hooks, 0, sizeof hooks);
    for (size_t i = 0; i < WEBHOOK_ROW_COUNT; i++) {
        const struct webhook_row *row = &webhook_rows[i];
        assert_true(row->hook < WEBHOOKS && row->class <= WEBHOOK_OTHER);
        assert_true(row->status == 200 ? !row->message : row->status >= 400 && row->message != NULL);
        if (row->class != WEBHOOK_OTHER)
            hooks[row->hook][row->class]++;
    }
    for (int h = 0; h < WEBHOOKS; h++)
        for (int c = 0; c < WEBHOOK_CLASSES; c++)
            if (!hooks[h][c])
                fail_msg("no row for %s x %s", webhooks[h].path, webhook_class_names[c]);
    printf("# webhooks: %zu rows\n", WEBHOOK_ROW_COUNT);
    assert_int_equal(WEBHOOK_ROW_COUNT, EXPECTED_WEBHOOK_ROWS);
}

static void test_client_api_passcode(void **state)
{
    struct fixture *f = *state;
    publish_streams(f);
    assert_int_equal(run_rows(f, PASSCODE), applicable_rows(PASSCODE));
}

static void test_client_api_jwt(void **state)
{
    struct fixture *f = *state;
    char *alice = bearer_for("alice", JWT_SECRET);
    f->auth = alice; /* GET /streams and the valid requests */
    publish_streams(f);
    assert_int_equal(run_rows(f, JWT), applicable_rows(JWT));
    f->auth = NULL;
    free(alice);
}

/* The fields of webhook h's valid delivery, with row's change (row may
 * be NULL; with ignore_change the change is not made). */
static void webhook_fields(enum webhook h, const struct webhook_row *row, int ignore_change, const char *now,
                           struct kv_list *p)
{
    const struct webhook_info *w = &webhooks[h];
    const char *field = row && !ignore_change ? row->field : NULL;
    const char *value = field ? row->value : NULL;
    size_t value_len = value ? (row->value_len ? row->value_len : strlen(value)) : 0;
    char *padding = NULL;
    if (field && strcmp(field, OVERSIZE_FIELD) == 0) {
        padding = malloc(OVERSIZE_BYTES);
        assert_non_null(padding);
        memset(padding, 'a', OVERSIZE_BYTES);
        value = padding;
        value_len = OVERSIZE_BYTES;
    }
    int replaced = 0;
    kv_init(p);
    for (int i = 0; w->fields[i][0]; i++) {
        int is_field = field && strcmp(field, w->fields[i][0]) == 0;
        replaced |= is_field;
        const char *given = strcmp(w->fields[i][1], WEBHOOK_NOW) == 0 ? now : w->fields[i][1];
        if (!is_field)
            assert_int_equal(kv_add(p, w->fields[i][0], given), 0);
        else if (value)
            assert_int_equal(kv_addn(p, field, strlen(field), value, value_len), 0);
    }
    if (field && !replaced && value)
        assert_int_equal(kv_addn(p, field, strlen(field), value, value_len), 0);
    free(padding);
}

/* Sends a delivery of webhook h (row NULL: the valid one) and returns the
 * reply. */
static struct http_reply send_webhook(struct fixture *f, enum webhook h, const struct webhook_row *row)
{
    const struct webhook_info *w = &webhooks[h];
    const char *query = row && row->query ? row->query : w->query;
    enum signing signing = row ? row->signing : SIGNED;
    char path[256], url[512], type[128], signature_header[64], signature[SIGNATURE_LEN + 1];
    struct kv_list sent, signed_fields;
    snprintf(path, sizeof path, "%s%s", w->path, query);
    /* One timestamp for what is sent and what is signed (two clock reads
     * could fall in different milliseconds and break the signature). */
    char now[RFC3339_MS_LEN + 1];
    webhook_now(now);
    webhook_fields(h, row, 0, now, &sent);
    webhook_fields(h, row, signing == TAMPERED, now, &signed_fields);
    switch (signing) {
    case OTHER_PATH:
        snprintf(url, sizeof url, "%s%s%s", TEST_PUBLIC_BASE_URL, webhooks[(h + 1) % WEBHOOKS].path, query);
        break;
    case OTHER_QUERY:
        snprintf(url, sizeof url, "%s%s%s", TEST_PUBLIC_BASE_URL, w->path, w->other_query);
        break;
    case OTHER_BASE:
        snprintf(url, sizeof url, "%s%s", f->s.ingress_url, path);
        break;
    default:
        snprintf(url, sizeof url, "%s%s", TEST_PUBLIC_BASE_URL, path);
    }
    const char *token = signing == OTHER_TOKEN ? "another-auth-token" : TEST_AUTH_TOKEN;
    assert_int_equal(signature_compute(token, url, &signed_fields, signature), 0);
    if (signing == GARBAGE)
        snprintf(signature, sizeof signature, "%s", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    snprintf(signature_header, sizeof signature_header, "X-Twilio-Signature: %s", signature);
    const char *content_type = row ? row->content_type : FORM_TYPE;
    snprintf(type, sizeof type, "Content-Type:%s%s", content_type ? " " : "", content_type ? content_type : "");
    const char *headers[] = {type, signing == UNSIGNED ? NULL : signature_header, NULL};
    char *body = form_encode(&sent);
    assert_non_null(body);
    struct http_reply r = call(f, "POST", path, headers, body);
    free(body);
    kv_free(&sent);
    kv_free(&signed_fields);
    return r;
}

/* Each webhook's rows, then its valid delivery, whose event is read back. */
static void test_webhooks(void **state)
{
    struct fixture *f = *state;
    char why[600];
    publish_live_stream(f, "friday", "alice", 0, 100);
    wait_stream_status(f, "friday", "live");
    for (int h = 0; h < WEBHOOKS; h++) {
        int64_t events = events_in_kafka(f);
        for (size_t i = 0; i < WEBHOOK_ROW_COUNT; i++) {
            const struct webhook_row *row = &webhook_rows[i];
            if (row->hook != (enum webhook)h)
                continue;
            struct http_reply r = send_webhook(f, row->hook, row);
            int wrong = check_answer(&r, row->status, row->message, why, sizeof why) < 0;
            http_reply_free(&r);
            if (wrong)
                fail_msg("webhook row %zu (%s, %s): %s", i, webhooks[h].path, webhook_class_names[row->class], why);
            int64_t now = events_in_kafka(f);
            if (now != events)
                fail_msg("webhook row %zu (%s, %s) must produce nothing, yet %lld event(s) reached Kafka", i,
                         webhooks[h].path, webhook_class_names[row->class], (long long)(now - events));
        }
        expect_no_event(f);
        struct http_reply r = send_webhook(f, (enum webhook)h, NULL);
        int wrong = check_answer(&r, 200, NULL, why, sizeof why) < 0;
        http_reply_free(&r);
        if (wrong)
            fail_msg("the valid delivery to %s: %s", webhooks[h].path, why);
        json_decref(expect_event(f, webhooks[h].event, "friday", NULL));
        assert_int_equal(events_in_kafka(f), events + 1);
    }
}

/* --- tests: connection limits ------------------------------------------------------------------ */

enum { RAW_CLOSED = 0, RAW_SILENT = -1 };

/* A plain TCP connection to the ingress. */
static int raw_connect(struct fixture *f)
{
    int port = 0;
    if (sscanf(f->s.ingress_url, "http://127.0.0.1:%d", &port) != 1)
        fail_msg("cannot read the port of %s", f->s.ingress_url);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
        fail_msg("cannot connect to the ingress: %s", strerror(errno));
    return fd;
}

static void raw_send(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fail_msg("cannot send to the ingress: %s", strerror(errno));
        data += n;
        len -= (size_t)n;
    }
}

/* Waits up to timeout_ms for the status line of an answer on fd: its
 * status, RAW_CLOSED when the ingress closed the connection without
 * answering, RAW_SILENT when nothing came. */
static int raw_status(int fd, int timeout_ms)
{
    char line[256];
    size_t len = 0;
    int64_t until = time_monotonic_ms() + timeout_ms;
    for (;;) {
        int64_t left = until - time_monotonic_ms();
        if (left <= 0)
            return RAW_SILENT;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int ready = poll(&p, 1, (int)left);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready < 0)
            fail_msg("poll: %s", strerror(errno));
        if (ready == 0)
            return RAW_SILENT;
        ssize_t n = recv(fd, line + len, sizeof line - 1 - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != ECONNRESET)
            fail_msg("recv: %s", strerror(errno));
        if (n <= 0) {
            if (len > 0)
                fail_msg("the ingress closed the connection mid-answer: %.*s", (int)len, line);
            return RAW_CLOSED;
        }
        len += (size_t)n;
        line[len] = '\0';
        int status;
        if (strstr(line, "\r\n")) {
            if (sscanf(line, "HTTP/1.%*d %d", &status) != 1)
                fail_msg("not an HTTP answer: %s", line);
            return status;
        }
        if (len == sizeof line - 1)
            fail_msg("an answer line longer than %zu bytes", sizeof line);
    }
}

/* Headers over the connection memory (32 KiB in all): 431 from
 * libmicrohttpd before the request reaches us. Headers over the ingress's
 * own 16 KiB cap but within the memory (near its end, libmicrohttpd has no
 * room left to answer a request already produced): 431 from the ingress,
 * no event. Headers well under the cap pass. */
static void test_header_limit(void **state)
{
    struct fixture *f = *state;
    publish_live_stream(f, "friday", "alice", 0, 100);
    wait_stream_status(f, "friday", "live");
    int64_t events = events_in_kafka(f);
    const char *body = "{\"user_identity\":\"bob\",\"stream_name\":\"friday\"}";
    char request[44 * 1024];
    static const size_t paddings[] = {40 * 1024, 31 * 1024, 17 * 1024, 8 * 1024};
    for (int i = 0; i < 4; i++) {
        size_t padding = paddings[i];
        char *filler = malloc(padding + 1);
        assert_non_null(filler);
        memset(filler, 'a', padding);
        filler[padding] = '\0';
        int len = snprintf(request, sizeof request,
                           "POST /viewer-connected-to-player HTTP/1.1\r\nHost: test\r\nAuthorization: " TEST_PASSCODE
                           "\r\nContent-Type: application/json\r\nX-Padding: %s\r\nContent-Length: %zu\r\n"
                           "Connection: close\r\n\r\n%s",
                           filler, strlen(body), body);
        free(filler);
        assert_true(len > 0 && (size_t)len < sizeof request);
        int fd = raw_connect(f);
        raw_send(fd, request, (size_t)len);
        int status = raw_status(fd, 10000);
        close(fd);
        if (i < 3) {
            if (status != 431)
                fail_msg("headers padded with %zu bytes: status %d, not 431", padding, status);
            assert_int_equal(events_in_kafka(f), events);
            expect_no_event(f);
        } else {
            assert_int_equal(status, 200);
            json_decref(expect_event(f, "viewer.connected", "friday", NULL));
            assert_int_equal(events_in_kafka(f), events + 1);
        }
    }
}

static int setup_short_timeout(void **state)
{
    static const char *const env[] = {"CONNECTION_TIMEOUT_S=1", NULL};
    return fixture_setup_ingress(state, env);
}

/* Clients that send half a request and stall: one mid-body, one
 * mid-headers. CONNECTION_TIMEOUT_S=1 closes both, unanswered, and the
 * request that was never completed produces nothing. */
static void test_slow_client(void **state)
{
    struct fixture *f = *state;
    publish_live_stream(f, "friday", "alice", 0, 100);
    wait_stream_status(f, "friday", "live");
    int64_t events = events_in_kafka(f);
    const char *body = "{\"user_identity\":\"bob\",\"stream_name\":\"friday\"}";
    char head[512];
    int len = snprintf(head, sizeof head,
                       "POST /viewer-connected-to-player HTTP/1.1\r\nHost: test\r\nAuthorization: " TEST_PASSCODE
                       "\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                       strlen(body));
    assert_true(len > 0 && (size_t)len < sizeof head);
    int mid_body = raw_connect(f), mid_headers = raw_connect(f);
    raw_send(mid_body, head, (size_t)len);
    raw_send(mid_body, body, strlen(body) / 2);
    raw_send(mid_headers, head, (size_t)len / 2);
    int64_t started = time_monotonic_ms();
    assert_int_equal(raw_status(mid_body, 10000), RAW_CLOSED);
    assert_int_equal(raw_status(mid_headers, 10000), RAW_CLOSED);
    int64_t took = time_monotonic_ms() - started;
    if (took > 5000)
        fail_msg("the stalled connections were closed after %lld ms (CONNECTION_TIMEOUT_S=1)", (long long)took);
    close(mid_body);
    close(mid_headers);
    assert_int_equal(events_in_kafka(f), events);
    expect_no_event(f);
    /* The ingress still serves, and the same request, whole, is accepted. */
    assert_int_equal(post(f, "/viewer-connected-to-player", body, NULL), 200);
    json_decref(expect_event(f, "viewer.connected", "friday", NULL));
    assert_int_equal(events_in_kafka(f), events + 1);
}

static int setup_four_connections(void **state)
{
    static const char *const env[] = {"MAX_CONNECTIONS=4", NULL};
    return fixture_setup_ingress(state, env);
}

/* MAX_CONNECTIONS=4: with four connections open, a fifth is not served
 * (libmicrohttpd stops accepting at the limit, so it waits in the listen
 * backlog, or is closed); once they close, the ingress serves again. */
static void test_connection_limit(void **state)
{
    struct fixture *f = *state;
    static const char keep_alive[] = "GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";
    static const char last[] = "GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
    publish_live_stream(f, "friday", "alice", 0, 100);
    wait_stream_status(f, "friday", "live");
    int64_t events = events_in_kafka(f);
    int open[4];
    for (int i = 0; i < 4; i++) {
        open[i] = raw_connect(f);
        raw_send(open[i], keep_alive, sizeof keep_alive - 1);
        assert_int_equal(raw_status(open[i], 10000), 200); /* accepted, and kept open */
    }
    int fifth = raw_connect(f); /* the kernel completes the handshake either way */
    raw_send(fifth, last, sizeof last - 1);
    int status = raw_status(fifth, 1000);
    if (status != RAW_SILENT && status != RAW_CLOSED)
        fail_msg("a fifth connection was answered %d with four open (MAX_CONNECTIONS=4)", status);
    for (int i = 0; i < 4; i++)
        close(open[i]);
    if (status == RAW_SILENT) /* it waited: now it is served */
        assert_int_equal(raw_status(fifth, 10000), 200);
    close(fifth);
    assert_int_equal(events_in_kafka(f), events);
    expect_no_event(f);
    assert_int_equal(post(f, "/viewer-connected-to-player", "{\"user_identity\":\"bob\",\"stream_name\":\"friday\"}",
                          NULL),
                     200);
    json_decref(expect_event(f, "viewer.connected", "friday", NULL));
    assert_int_equal(events_in_kafka(f), events + 1);
}

/* --- the public state: GET /streams/{name}/state ----------------------------------------------- */

/* A GET reads no body and no field, so the body classes of the matrix do
 * not apply to it; what can be wrong is the path (its one segment is cut
 * from the raw request target and percent-decoded, then held to the stream
 * name rules), the credentials, the method, and the stream. Each row must
 * get its status and error message, and no event. */
struct state_row {
    enum mode mode;
    const char *method; /* NULL: GET */
    const char *path;
    enum credential credential;
    int oversize; /* a body of OVERSIZE_BYTES */
    long status;
    const char *message;
};

#define SP(path, code, msg)                                                                                            \
    {                                                                                                                  \
        PASSCODE, NULL, path, CALLER, 0, code, msg                                                                     \
    }
#define SJ(cred, code, msg)                                                                                            \
    {                                                                                                                  \
        JWT, NULL, "/streams/friday/state", cred, 0, code, msg                                                         \
    }

static const struct state_row state_rows[] = {
    SP("/streams/fri%ZZday/state", 400, "invalid path"),
    SP("/streams/friday%/state", 400, "invalid path"),
    SP("/streams/friday%2/state", 400, "invalid path"),
    SP("/streams/fri%FFday/state", 400, "invalid stream name"), /* not UTF-8 */
    SP("/streams/%C0%AF/state", 400, "invalid stream name"),    /* an overlong '/' */
    SP("/streams/%ED%A0%80/state", 400, "invalid stream name"), /* a surrogate */
    SP("/streams/fri%07day/state", 400, "invalid stream name"), /* control characters */
    SP("/streams/fri%00day/state", 400, "invalid stream name"),
    SP("/streams/friday%0D%0A/state", 400, "invalid stream name"),
    SP("/streams/x%C2%85/state", 400, "invalid stream name"),    /* C1 */
    SP("/streams/x%E2%80%A8/state", 400, "invalid stream name"), /* U+2028 */
    SP("/streams/" LONG_STREAM "/state", 400, "invalid stream name"),
    SP("/streams/fri%2Fday/state", 400, "invalid stream name"), /* reserved characters */
    SP("/streams/fri%3Fday/state", 400, "invalid stream name"),
    SP("/streams/a%25b/state", 400, "invalid stream name"),
    SP("/streams/%2E%2E/state", 400, "invalid stream name"), /* dot segments */
    SP("/streams/%2E/state", 400, "invalid stream name"),
    SP("/streams/" ROOM_SID "/state", 400, "invalid stream name"), /* shaped like a Room SID */
    SP("/streams//state", 400, "invalid stream name"),
    SP("/streams/%20friday/state", 400, "invalid stream name"), /* a space at one end */
    SP("/streams/nope/state", 404, "stream not found"),
    SP("/streams/friday/state/", 404, "stream not found"), /* then GET /streams/{name}, no such name */
    {PASSCODE, NULL, "/streams/friday/state", NO_AUTH, 0, 401, "passcode incorrect"},
    {PASSCODE, NULL, "/streams/friday/state", WRONG_PASSCODE, 0, 401, "passcode incorrect"},
    {PASSCODE, NULL, "/streams/friday/state", PASSCODE_AS_BEARER, 0, 401, "passcode incorrect"},
    {PASSCODE, NULL, "/streams/fri%ZZday/state", NO_AUTH, 0, 401, "passcode incorrect"}, /* credentials first */
    {PASSCODE, "POST", "/streams/friday/state", CALLER, 0, 405, "method not allowed"},
    {PASSCODE, "PUT", "/streams/friday/state", CALLER, 0, 405, "method not allowed"},
    {PASSCODE, "DELETE", "/streams/friday/state", CALLER, 0, 405, "method not allowed"},
    {PASSCODE, NULL, "/streams/friday/state", CALLER, 1, 413, "body too large"},
    SJ(NO_AUTH, 401, "invalid token"),
    SJ(THE_PASSCODE, 401, "invalid token"),
    SJ(FORGED, 401, "invalid token"),
    SJ(EXPIRED, 401, "invalid token"),
    SJ(NOT_YET_VALID, 401, "invalid token"),
    SJ(MALFORMED, 401, "invalid token"),
    SJ(BAD_SUBJECT, 401, "invalid token"),
    SJ(UNSIGNED_TOKEN, 401, "invalid token"),
    SJ(ACCESS_TOKEN, 401, "invalid token"),
    SJ(TWILIO_CTY, 401, "invalid token"),
    {JWT, NULL, "/streams/nope/state", CALLER, 0, 404, "stream not found"},
    {JWT, NULL, "/streams/%2E%2E/state", CALLER, 0, 400, "invalid stream name"},
};

#define STATE_ROWS (sizeof state_rows / sizeof state_rows[0])

/* The rows of mode, then the valid request (as bob in jwt mode: any valid
 * token reads the state): 200 with the stream's public state, and no
 * event from any of it. */
static void run_state_rows(struct fixture *f, enum mode mode)
{
    struct credentials cred;
    char why[600];
    size_t ran = 0;
    credentials_make(&cred);
    publish_streams(f);
    int64_t events = events_in_kafka(f);
    for (size_t i = 0; i < STATE_ROWS; i++) {
        const struct state_row *row = &state_rows[i];
        if (row->mode != mode)
            continue;
        const char *auth = row->credential == CALLER ? caller_header(f, &cred, mode) : cred.header[row->credential];
        const char *headers[] = {auth, NULL};
        char *big = row->oversize ? oversize_json() : NULL;
        struct http_reply r = call(f, row->method ? row->method : "GET", row->path, headers, big);
        free(big);
        int wrong = check_answer(&r, row->status, row->message, why, sizeof why) < 0;
        http_reply_free(&r);
        if (wrong)
            fail_msg("state row %zu (%s %s): %s", i, row->method ? row->method : "GET", row->path, why);
        assert_int_equal(events_in_kafka(f), events);
        ran++;
    }
    assert_true(ran > 0);
    const char *valid[] = {mode == PASSCODE ? cred.header[THE_PASSCODE] : cred.header[BOB], NULL};
    struct http_reply r = call(f, "GET", "/streams/friday/state", valid, NULL);
    assert_int_equal(r.status, 200);
    json_t *body = json_loads(r.body, 0, NULL);
    http_reply_free(&r);
    assert_string_equal(json_string_value(json_object_get(body, "stream")), "friday");
    json_decref(body);
    expect_no_event(f);
    credentials_free(&cred);
}

static void test_public_state_passcode(void **state)
{
    run_state_rows(*state, PASSCODE);
}

static void test_public_state_jwt(void **state)
{
    struct fixture *f = *state;
    char *alice = bearer_for("alice", JWT_SECRET);
    f->auth = alice;
    run_state_rows(f, JWT);
    f->auth = NULL;
    free(alice);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matrix_is_complete),
        cmocka_unit_test_setup_teardown(test_client_api_passcode, setup_ingress, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_client_api_jwt, setup_ingress_jwt, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_webhooks, setup_ingress, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_public_state_passcode, setup_ingress, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_public_state_jwt, setup_ingress_jwt, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_header_limit, setup_ingress, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_slow_client, setup_short_timeout, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_connection_limit, setup_four_connections, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
