/* json.c -- JSON tree and ECMAScript-canonical serialization.
 *
 * Written by hand because no Debian-packaged JSON library reproduces
 * JSON.stringify(JSON.parse(text)): jansson rejects integers beyond 64 bits
 * and lone surrogate escapes, json-c and yajl rewrite lone surrogates, and
 * none applies ECMAScript's duplicate-key and array-index-key ordering rules
 * or prints numbers with Number.prototype.toString's shortest round-trip
 * digits. A receiver that checks its HMAC over JSON.stringify(req.body) sees
 * any of those differences as a forged webhook. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/json.h"
#include "hookd/mem.h"

/* ---- arena ------------------------------------------------------------ */

#define CHUNK_MIN 16384

struct chunk {
    struct chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

struct json_doc {
    struct chunk *head;
};

struct json_doc *json_doc_new(void)
{
    return xcalloc(1, sizeof(struct json_doc));
}

void json_doc_free(struct json_doc *doc)
{
    struct chunk *c, *next;

    if (doc == NULL)
        return;
    for (c = doc->head; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    free(doc);
}

static void *arena_alloc(struct json_doc *doc, size_t size)
{
    struct chunk *c = doc->head;
    size = (size + 15) & ~(size_t)15;
    if (c == NULL || c->cap - c->used < size) {
        size_t cap = size > CHUNK_MIN ? size : CHUNK_MIN;
        c = xmalloc(sizeof(*c) + cap);
        c->cap = cap;
        c->used = 0;
        c->next = doc->head;
        doc->head = c;
    }
    c->used += size;
    return c->data + c->used - size;
}

const char *json_doc_strdup(struct json_doc *doc, const char *s, size_t len)
{
    char *p = arena_alloc(doc, len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

/* ---- builders ----------------------------------------------------------- */

struct json_value *json_new_scalar(struct json_doc *doc, enum json_type type)
{
    struct json_value *v = arena_alloc(doc, sizeof(*v));
    memset(v, 0, sizeof(*v));
    v->type = type;
    return v;
}

struct json_value *json_new_number(struct json_doc *doc, double d)
{
    struct json_value *v = json_new_scalar(doc, JSON_NUMBER);
    v->u.number = d;
    return v;
}

struct json_value *json_new_string(struct json_doc *doc, const char *s, size_t len)
{
    struct json_value *v = json_new_scalar(doc, JSON_STRING);
    v->u.string.ptr = json_doc_strdup(doc, s, len);
    v->u.string.len = len;
    return v;
}

struct json_value *json_new_array(struct json_doc *doc, size_t n)
{
    struct json_value *v = json_new_scalar(doc, JSON_ARRAY);
    v->u.array.items = n ? arena_alloc(doc, n * sizeof(struct json_value *)) : NULL;
    v->u.array.len = n;
    return v;
}

struct json_value *json_new_object(struct json_doc *doc, size_t n)
{
    struct json_value *v = json_new_scalar(doc, JSON_OBJECT);
    v->u.object.items = n ? arena_alloc(doc, n * sizeof(struct json_member)) : NULL;
    v->u.object.len = n;
    return v;
}

/* ---- ECMAScript object semantics ----------------------------------------- */

/* An array index is the canonical decimal form of an integer in
 * [0, 2^32 - 2]; ECMAScript orders such keys first, ascending. */
static int index_key(const char *k, size_t len, uint32_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > 10 || (len > 1 && k[0] == '0'))
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (k[i] < '0' || k[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(k[i] - '0');
    }
    if (v >= 4294967295u)
        return 0;
    *out = (uint32_t)v;
    return 1;
}

static int key_cmp(const struct json_member *a, const struct json_member *b)
{
    size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
    int c = memcmp(a->key, b->key, n);
    if (c != 0)
        return c;
    return (a->key_len > b->key_len) - (a->key_len < b->key_len);
}

/* Sort helper: by key, then by position, so equal keys stay in input order. */
static const struct json_member *sort_base;

static int by_key_then_pos(const void *pa, const void *pb)
{
    size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
    int c = key_cmp(&sort_base[a], &sort_base[b]);
    if (c != 0)
        return c;
    return (a > b) - (a < b);
}

struct idx_member {
    uint32_t index;
    struct json_member m;
};

static int by_index(const void *pa, const void *pb)
{
    const struct idx_member *a = pa, *b = pb;
    return (a->index > b->index) - (a->index < b->index);
}

/* Resolve duplicates: the first occurrence keeps its place and takes the last
 * occurrence's value (that is what CreateDataProperty does in JSON.parse).
 * Members to drop get key == NULL. Small objects use the quadratic scan; a
 * large one is sorted so a hostile object of 100k keys costs n log n. */
static size_t resolve_duplicates(struct json_member *m, size_t n)
{
    size_t dropped = 0;

    if (n <= 16) {
        for (size_t i = 1; i < n; i++) {
            for (size_t j = 0; j < i; j++) {
                if (m[j].key != NULL && key_cmp(&m[i], &m[j]) == 0) {
                    m[j].value = m[i].value;
                    m[i].key = NULL;
                    dropped++;
                    break;
                }
            }
        }
        return dropped;
    }
    size_t *order = xmalloc(n * sizeof(size_t));
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    sort_base = m;
    qsort(order, n, sizeof(size_t), by_key_then_pos);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && key_cmp(&m[order[i]], &m[order[j]]) == 0)
            j++;
        if (j - i > 1) {
            m[order[i]].value = m[order[j - 1]].value;
            for (size_t k = i + 1; k < j; k++) {
                m[order[k]].key = NULL;
                dropped++;
            }
        }
        i = j;
    }
    free(order);
    return dropped;
}

void json_object_finish(struct json_value *obj)
{
    struct json_member *m = obj->u.object.items;
    size_t n = obj->u.object.len, w = 0, nidx = 0;
    uint32_t ix;

    if (n == 0)
        return;
    if (resolve_duplicates(m, n) > 0) {
        for (size_t i = 0; i < n; i++)
            if (m[i].key != NULL)
                m[w++] = m[i];
        n = obj->u.object.len = w;
    }
    for (size_t i = 0; i < n; i++)
        nidx += index_key(m[i].key, m[i].key_len, &ix);
    if (nidx == 0)
        return;
    /* Stable partition: index keys (sorted numerically; unique after the
     * step above) first, then the rest in insertion order. */
    struct idx_member *idx = xmalloc(nidx * sizeof(*idx));
    struct json_member *rest = xmalloc(n * sizeof(*rest));
    size_t ni = 0, nr = 0;
    for (size_t i = 0; i < n; i++) {
        if (index_key(m[i].key, m[i].key_len, &ix)) {
            idx[ni].index = ix;
            idx[ni++].m = m[i];
        } else {
            rest[nr++] = m[i];
        }
    }
    qsort(idx, ni, sizeof(*idx), by_index);
    for (size_t i = 0; i < ni; i++)
        m[i] = idx[i].m;
    memcpy(m + ni, rest, nr * sizeof(*rest));
    free(idx);
    free(rest);
}

const struct json_value *json_object_get(const struct json_value *obj, const char *key)
{
    size_t len = strlen(key);

    if (obj == NULL || obj->type != JSON_OBJECT)
        return NULL;
    for (size_t i = 0; i < obj->u.object.len; i++) {
        const struct json_member *m = &obj->u.object.items[i];
        if (m->key_len == len && memcmp(m->key, key, len) == 0)
            return m->value;
    }
    return NULL;
}

/* ---- UTF-8 ---------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at s (1..4), or 0 if invalid.
 * Surrogates (ED A0..BF xx) and overlongs are invalid. */
static size_t utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return avail >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (avail < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0))
            return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (avail < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 ||
            (s[3] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] >= 0x90))
            return 0;
        return 4;
    }
    return 0;
}

int json_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;

    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(p + i, len - i);
        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

/* Append code point cp (any value up to 0x10FFFF, surrogates included:
 * that is WTF-8) to b. */
static void put_wtf8(struct buf *b, uint32_t cp)
{
    char t[4];
    size_t n;

    if (cp < 0x80) {
        t[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        t[0] = (char)(0xC0 | (cp >> 6));
        t[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        t[0] = (char)(0xE0 | (cp >> 12));
        t[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        t[0] = (char)(0xF0 | (cp >> 18));
        t[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        t[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    buf_append(b, t, n);
}

/* ---- parser ----------------------------------------------------------------- */

struct parser {
    struct json_doc *doc;
    const char *p, *end, *start;
    int depth, max_depth;
    struct buf str;                 /* scratch for decoding strings */
    struct json_value **vals;       /* scratch stack of array elements */
    size_t nvals, capvals;
    struct json_member *mems;       /* scratch stack of object members */
    size_t nmems, capmems;
    struct hk_err *err;
};

static int fail(struct parser *ps, const char *code, const char *what)
{
    return hk_err_set(ps->err, HK_EINVAL, code, "%s at byte %zu", what,
                      (size_t)(ps->p - ps->start));
}

static void skip_ws(struct parser *ps)
{
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static int hex4(const char *p, uint32_t *out)
{
    uint32_t v = 0;

    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Parse a string at ps->p (the opening quote) into ps->str. */
static int parse_string_raw(struct parser *ps)
{
    buf_reset(&ps->str);
    ps->p++;
    for (;;) {
        const char *run = ps->p;
        while (ps->p < ps->end && *ps->p != '"' && *ps->p != '\\' &&
               (unsigned char)*ps->p >= 0x20 && (unsigned char)*ps->p < 0x80)
            ps->p++;
        buf_append(&ps->str, run, (size_t)(ps->p - run));
        if (ps->p >= ps->end)
            return fail(ps, "invalid_json", "unterminated string");
        unsigned char c = (unsigned char)*ps->p;
        if (c == '"') {
            ps->p++;
            return 0;
        }
        if (c < 0x20)
            return fail(ps, "invalid_json", "control character in string");
        if (c >= 0x80) {
            size_t n = utf8_seq((const unsigned char *)ps->p, (size_t)(ps->end - ps->p));
            if (n == 0)
                return fail(ps, "invalid_utf8", "invalid UTF-8");
            buf_append(&ps->str, ps->p, n);
            ps->p += n;
            continue;
        }
        /* backslash */
        if (ps->end - ps->p < 2)
            return fail(ps, "invalid_json", "unterminated escape");
        char e = ps->p[1];
        const char *simple = NULL;
        switch (e) {
        case '"': simple = "\""; break;
        case '\\': simple = "\\"; break;
        case '/': simple = "/"; break;
        case 'b': simple = "\b"; break;
        case 'f': simple = "\f"; break;
        case 'n': simple = "\n"; break;
        case 'r': simple = "\r"; break;
        case 't': simple = "\t"; break;
        case 'u': break;
        default:
            return fail(ps, "invalid_json", "invalid escape");
        }
        if (simple != NULL) {
            buf_append(&ps->str, simple, 1);
            ps->p += 2;
            continue;
        }
        uint32_t cp, lo;
        if (ps->end - ps->p < 6 || hex4(ps->p + 2, &cp) < 0)
            return fail(ps, "invalid_json", "invalid \\u escape");
        ps->p += 6;
        /* A high surrogate directly followed by a low one is one code point;
         * anything else stays a lone surrogate, as in a JavaScript string. */
        if (cp >= 0xD800 && cp <= 0xDBFF && ps->end - ps->p >= 6 && ps->p[0] == '\\' &&
            ps->p[1] == 'u' && hex4(ps->p + 2, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            ps->p += 6;
        }
        put_wtf8(&ps->str, cp);
    }
}

static int parse_number(struct parser *ps, double *out)
{
    const char *s = ps->p;
    char small[64], *tmp;
    size_t len;

    if (ps->p < ps->end && *ps->p == '-')
        ps->p++;
    if (ps->p >= ps->end)
        return fail(ps, "invalid_json", "invalid number");
    if (*ps->p == '0') {
        ps->p++;
    } else if (*ps->p >= '1' && *ps->p <= '9') {
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
            ps->p++;
    } else {
        return fail(ps, "invalid_json", "invalid number");
    }
    if (ps->p < ps->end && *ps->p == '.') {
        ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
            return fail(ps, "invalid_json", "invalid number");
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
            ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
            ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
            return fail(ps, "invalid_json", "invalid number");
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
            ps->p++;
    }
    len = (size_t)(ps->p - s);
    tmp = len < sizeof(small) ? small : xmalloc(len + 1);
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    /* glibc's strtod rounds correctly, like ECMAScript's StringToNumber;
     * overflow gives +-HUGE_VAL (Infinity), underflow 0 or a subnormal. */
    *out = strtod(tmp, NULL);
    if (tmp != small)
        free(tmp);
    return 0;
}

static int parse_value(struct parser *ps, struct json_value **out);

static int parse_array(struct parser *ps, struct json_value **out)
{
    size_t base = ps->nvals;
    struct json_value *v;
    int rc;

    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        *out = json_new_array(ps->doc, 0);
        return 0;
    }
    for (;;) {
        if ((rc = parse_value(ps, &v)) < 0)
            return rc;
        if (ps->nvals == ps->capvals) {
            ps->capvals = ps->capvals ? ps->capvals * 2 : 64;
            ps->vals = xrealloc(ps->vals, ps->capvals * sizeof(*ps->vals));
        }
        ps->vals[ps->nvals++] = v;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == ']') {
            ps->p++;
            break;
        }
        return fail(ps, "invalid_json", "expected ',' or ']'");
    }
    *out = json_new_array(ps->doc, ps->nvals - base);
    memcpy((*out)->u.array.items, ps->vals + base, (ps->nvals - base) * sizeof(*ps->vals));
    ps->nvals = base;
    return 0;
}

static int parse_object(struct parser *ps, struct json_value **out)
{
    size_t base = ps->nmems;
    struct json_member m;
    int rc;

    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        *out = json_new_object(ps->doc, 0);
        return 0;
    }
    for (;;) {
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != '"')
            return fail(ps, "invalid_json", "expected a string key");
        if ((rc = parse_string_raw(ps)) < 0)
            return rc;
        m.key_len = ps->str.len;
        m.key = json_doc_strdup(ps->doc, ps->str.data ? ps->str.data : "", m.key_len);
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':')
            return fail(ps, "invalid_json", "expected ':'");
        ps->p++;
        if ((rc = parse_value(ps, &m.value)) < 0)
            return rc;
        if (ps->nmems == ps->capmems) {
            ps->capmems = ps->capmems ? ps->capmems * 2 : 64;
            ps->mems = xrealloc(ps->mems, ps->capmems * sizeof(*ps->mems));
        }
        ps->mems[ps->nmems++] = m;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == '}') {
            ps->p++;
            break;
        }
        return fail(ps, "invalid_json", "expected ',' or '}'");
    }
    *out = json_new_object(ps->doc, ps->nmems - base);
    memcpy((*out)->u.object.items, ps->mems + base, (ps->nmems - base) * sizeof(*ps->mems));
    ps->nmems = base;
    json_object_finish(*out);
    return 0;
}

static int literal(struct parser *ps, const char *word, enum json_type type,
                   struct json_value **out)
{
    size_t n = strlen(word);

    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return fail(ps, "invalid_json", "unexpected token");
    ps->p += n;
    *out = json_new_scalar(ps->doc, type);
    return 0;
}

static int parse_value(struct parser *ps, struct json_value **out)
{
    int rc;

    skip_ws(ps);
    if (ps->p >= ps->end)
        return fail(ps, "invalid_json", "unexpected end of input");
    switch (*ps->p) {
    case '{':
    case '[':
        if (++ps->depth > ps->max_depth)
            return fail(ps, "too_deep", "nesting too deep");
        rc = *ps->p == '{' ? parse_object(ps, out) : parse_array(ps, out);
        ps->depth--;
        return rc;
    case '"':
        if ((rc = parse_string_raw(ps)) < 0)
            return rc;
        *out = json_new_string(ps->doc, ps->str.data ? ps->str.data : "", ps->str.len);
        return 0;
    case 't':
        return literal(ps, "true", JSON_TRUE, out);
    case 'f':
        return literal(ps, "false", JSON_FALSE, out);
    case 'n':
        return literal(ps, "null", JSON_NULL, out);
    default: {
        double d = 0;
        if ((rc = parse_number(ps, &d)) < 0)
            return rc;
        *out = json_new_number(ps->doc, d);
        return 0;
    }
    }
}

int json_parse(struct json_doc *doc, const char *text, size_t len, int max_depth,
               struct json_value **out, struct hk_err *err)
{
    struct parser ps = {
        .doc = doc, .p = text, .end = text + len, .start = text,
        .max_depth = max_depth, .err = err,
    };
    int rc = parse_value(&ps, out);

    if (rc == 0) {
        skip_ws(&ps);
        if (ps.p != ps.end)
            rc = fail(&ps, "invalid_json", "trailing bytes after the JSON value");
    }
    buf_free(&ps.str);
    free(ps.vals);
    free(ps.mems);
    return rc;
}

/* ---- canonical writer ----------------------------------------------------------- */

void json_write_string(struct buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t run = 0;

    buf_reserve(out, len + 2);
    buf_append_char(out, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = p[i];
        const char *esc = NULL;
        char u[6];

        if (c >= 0x20 && c != '"' && c != '\\' &&
            !(c == 0xED && i + 2 < len && p[i + 1] >= 0xA0))
            continue;
        buf_append(out, s + run, i - run);
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            break;
        }
        if (esc != NULL) {
            buf_append_str(out, esc);
        } else if (c < 0x20) {
            memcpy(u, "\\u00", 4);
            u[4] = hex[c >> 4];
            u[5] = hex[c & 15];
            buf_append(out, u, 6);
        } else {
            /* A WTF-8 surrogate: JSON.stringify escapes lone surrogates. */
            uint32_t cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(p[i + 1] & 0x3F) << 6) |
                          (uint32_t)(p[i + 2] & 0x3F);
            u[0] = '\\';
            u[1] = 'u';
            u[2] = hex[(cp >> 12) & 15];
            u[3] = hex[(cp >> 8) & 15];
            u[4] = hex[(cp >> 4) & 15];
            u[5] = hex[cp & 15];
            buf_append(out, u, 6);
            i += 2;
        }
        run = i + 1;
    }
    buf_append(out, s + run, len - run);
    buf_append_char(out, '"');
}

/* Shortest decimal digits that read back as d (ECMAScript's Number::toString
 * step 5): try each precision in turn; printf rounds correctly, so the first
 * candidate that round-trips is the closest of that length. Near a power of
 * two the round-trip interval is lopsided, so the neighbours of the rounded
 * candidate are tried too. Writes digits to `digits` and returns the
 * decimal exponent n such that d = 0.DIGITS * 10^n. */
static int shortest_digits(double d, char *digits, int *ndigits)
{
    char tmp[40];

    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, d);
        char *e = strchr(tmp, 'e');
        int exp10 = atoi(e + 1);
        int k = 0;
        for (char *c = tmp; c < e; c++)
            if (*c >= '0' && *c <= '9')
                digits[k++] = *c;
        digits[k] = '\0';
        if (strtod(tmp, NULL) == d) {
            *ndigits = k;
            return exp10 + 1;
        }
        if (prec == 17)
            break;
        /* neighbours: digits +- 1 in the last place */
        for (int dir = -1; dir <= 1; dir += 2) {
            char cand[24];
            int ce = exp10;
            memcpy(cand, digits, (size_t)k + 1);
            int i = k - 1;
            if (dir > 0) {
                while (i >= 0 && cand[i] == '9')
                    cand[i--] = '0';
                if (i < 0) {
                    memmove(cand + 1, cand, (size_t)k);
                    cand[0] = '1';
                    cand[k] = '\0';
                    ce++;
                } else {
                    cand[i]++;
                }
            } else {
                while (i >= 0 && cand[i] == '0')
                    cand[i--] = '9';
                if (i < 0)
                    continue;
                cand[i]--;
                if (cand[0] == '0')
                    continue;
            }
            snprintf(tmp, sizeof(tmp), "%c.%se%d", cand[0], cand + 1, ce);
            if (strtod(tmp, NULL) == d) {
                memcpy(digits, cand, (size_t)k + 1);
                *ndigits = k;
                return ce + 1;
            }
        }
    }
    *ndigits = (int)strlen(digits);
    return atoi(strchr(tmp, 'e') + 1) + 1;
}

void json_write_number(struct buf *out, double d)
{
    char digits[24], tmp[64];
    int k, n;

    if (!isfinite(d)) {
        buf_append(out, "null", 4);     /* JSON.stringify(Infinity) */
        return;
    }
    if (d == 0) {
        buf_append_char(out, '0');      /* also -0 */
        return;
    }
    if (d == trunc(d) && fabs(d) < 9007199254740992.0) {
        /* Exactly representable integer: its digits are the shortest. */
        snprintf(tmp, sizeof(tmp), "%lld", (long long)d);
        buf_append_str(out, tmp);
        return;
    }
    if (d < 0) {
        buf_append_char(out, '-');
        d = -d;
    }
    n = shortest_digits(d, digits, &k);
    /* Number::toString layout rules, ECMA-262 6.1.6.1.20 steps 6-10. */
    if (k <= n && n <= 21) {
        buf_append(out, digits, (size_t)k);
        for (int i = k; i < n; i++)
            buf_append_char(out, '0');
    } else if (0 < n && n <= 21) {
        buf_append(out, digits, (size_t)n);
        buf_append_char(out, '.');
        buf_append(out, digits + n, (size_t)(k - n));
    } else if (-6 < n && n <= 0) {
        buf_append(out, "0.", 2);
        for (int i = 0; i < -n; i++)
            buf_append_char(out, '0');
        buf_append(out, digits, (size_t)k);
    } else {
        buf_append_char(out, digits[0]);
        if (k > 1) {
            buf_append_char(out, '.');
            buf_append(out, digits + 1, (size_t)(k - 1));
        }
        snprintf(tmp, sizeof(tmp), "e%c%d", n - 1 >= 0 ? '+' : '-', abs(n - 1));
        buf_append_str(out, tmp);
    }
}

void json_write(struct buf *out, const struct json_value *v)
{
    switch (v->type) {
    case JSON_NULL:
        buf_append(out, "null", 4);
        break;
    case JSON_FALSE:
        buf_append(out, "false", 5);
        break;
    case JSON_TRUE:
        buf_append(out, "true", 4);
        break;
    case JSON_NUMBER:
        json_write_number(out, v->u.number);
        break;
    case JSON_STRING:
        json_write_string(out, v->u.string.ptr, v->u.string.len);
        break;
    case JSON_ARRAY:
        buf_append_char(out, '[');
        for (size_t i = 0; i < v->u.array.len; i++) {
            if (i)
                buf_append_char(out, ',');
            json_write(out, v->u.array.items[i]);
        }
        buf_append_char(out, ']');
        break;
    case JSON_OBJECT:
        buf_append_char(out, '{');
        for (size_t i = 0; i < v->u.object.len; i++) {
            const struct json_member *m = &v->u.object.items[i];
            if (i)
                buf_append_char(out, ',');
            json_write_string(out, m->key, m->key_len);
            buf_append_char(out, ':');
            json_write(out, m->value);
        }
        buf_append_char(out, '}');
        break;
    }
}
