/* json.h -- JSON parsing into a tree, and ECMAScript-canonical serialization.
 *
 * json_write() emits exactly the bytes that JavaScript's
 * JSON.stringify(JSON.parse(text)) produces for the text json_parse() read.
 * Receivers that verify a signature over JSON.stringify(req.body) (the Dialgen
 * Node sample) only accept that byte form. To get there the tree follows
 * ECMAScript, not JSON's RFC:
 *   - numbers are IEEE doubles (1e400 becomes Infinity, written as null);
 *   - strings are WTF-8, so a lone surrogate escape survives the round trip;
 *   - objects keep insertion order, a repeated key keeps its first position
 *     and its last value, and array-index keys ("0".."4294967294") come
 *     first in ascending numeric order.
 *
 * Every node lives in the json_doc's arena and is freed with it. */
#ifndef HOOKD_JSON_H
#define HOOKD_JSON_H

#include <stddef.h>

#include "hookd/buf.h"
#include "hookd/err.h"

enum json_type {
    JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT
};

struct json_value;

struct json_member {
    const char *key;            /* WTF-8, NUL-terminated, in the arena */
    size_t key_len;
    struct json_value *value;
};

struct json_value {
    enum json_type type;
    union {
        double number;
        struct { const char *ptr; size_t len; } string;  /* WTF-8, NUL-terminated */
        struct { struct json_value **items; size_t len; } array;
        struct { struct json_member *items; size_t len; } object;
    } u;
};

struct json_doc;

/* A new empty document (an arena). Freed with json_doc_free. */
struct json_doc *json_doc_new(void);
void json_doc_free(struct json_doc *doc);

/* Parse one JSON text (RFC 8259, as strict as JSON.parse, plus: raw bytes
 * must be valid UTF-8, nesting at most max_depth). On success *out points
 * into doc. Returns 0 or HK_EINVAL with err->code "invalid_json",
 * "invalid_utf8" or "too_deep" and the byte offset in err->msg. */
int json_parse(struct json_doc *doc, const char *text, size_t len, int max_depth,
               struct json_value **out, struct hk_err *err);

/* Builders, for trees made from other formats (msgpack). Strings are copied
 * into the arena. An object is made with room for n members, filled by the
 * caller through u.object.items[i], then passed to json_object_finish. */
struct json_value *json_new_scalar(struct json_doc *doc, enum json_type type);
struct json_value *json_new_number(struct json_doc *doc, double d);
struct json_value *json_new_string(struct json_doc *doc, const char *s, size_t len);
struct json_value *json_new_array(struct json_doc *doc, size_t n);
struct json_value *json_new_object(struct json_doc *doc, size_t n);
/* Copy a key into the arena (for filling object members). */
const char *json_doc_strdup(struct json_doc *doc, const char *s, size_t len);

/* Apply ECMAScript's property rules (duplicates, index keys first). */
void json_object_finish(struct json_value *obj);

/* The member named key (NUL-terminated UTF-8), or NULL. */
const struct json_value *json_object_get(const struct json_value *obj, const char *key);

/* Canonical serialization (see above), appended to out. */
void json_write(struct buf *out, const struct json_value *v);
void json_write_string(struct buf *out, const char *s, size_t len);
void json_write_number(struct buf *out, double d);

/* 1 when s is well-formed UTF-8 (no surrogates, no overlongs), else 0. */
int json_utf8_valid(const char *s, size_t len);

#endif
