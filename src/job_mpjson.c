/* job_mpjson.c -- one concern: msgpack-c objects as json_value trees, so
 * that a msgpack job is validated (and redacted) by the same code as a
 * JSON one. A key must be a string or an integer (a JavaScript object key
 * is a string); bin and ext values have no JSON form and are refused here
 * (the callers that accept a bin body or redact one handle it first). */
#include <msgpack.h>
#include <stdio.h>
#include <string.h>

#include "hookd/buf.h"
#include "hookd/json.h"
#include "job_internal.h"

int job_mp_key(struct json_doc *doc, const msgpack_object *k, struct json_member *m,
               struct hk_err *err)
{
    char tmp[32];

    switch (k->type) {
    case MSGPACK_OBJECT_STR:
        if (!json_utf8_valid(k->via.str.ptr, k->via.str.size))
            return hk_err_set(err, HK_EINVAL, "invalid_utf8", "map key is not UTF-8");
        m->key = json_doc_strdup(doc, k->via.str.ptr, k->via.str.size);
        m->key_len = k->via.str.size;
        return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: {
        /* A JavaScript object key is a string: 5 becomes "5". */
        struct buf b = BUF_INIT;
        json_write_number(&b, k->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                                  ? (double)k->via.u64 : (double)k->via.i64);
        snprintf(tmp, sizeof(tmp), "%s", b.data);
        buf_free(&b);
        m->key = json_doc_strdup(doc, tmp, strlen(tmp));
        m->key_len = strlen(tmp);
        return 0;
    }
    default:
        return hk_err_set(err, HK_EINVAL, "invalid_type", "map key is not a string");
    }
}

int job_mp_to_json(struct json_doc *doc, const msgpack_object *o, int depth, int max_depth,
                   struct json_value **out, struct hk_err *err)
{
    int rc;

    if (depth > max_depth)
        return hk_err_set(err, HK_EINVAL, "too_deep", "msgpack nesting deeper than %d",
                          max_depth);
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        *out = json_new_scalar(doc, JSON_NULL);
        return 0;
    case MSGPACK_OBJECT_BOOLEAN:
        *out = json_new_scalar(doc, o->via.boolean ? JSON_TRUE : JSON_FALSE);
        return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        *out = json_new_number(doc, (double)o->via.u64);
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        *out = json_new_number(doc, (double)o->via.i64);
        return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        *out = json_new_number(doc, o->via.f64);
        return 0;
    case MSGPACK_OBJECT_STR:
        if (!json_utf8_valid(o->via.str.ptr, o->via.str.size))
            return hk_err_set(err, HK_EINVAL, "invalid_utf8", "msgpack string is not UTF-8");
        *out = json_new_string(doc, o->via.str.ptr, o->via.str.size);
        return 0;
    case MSGPACK_OBJECT_ARRAY:
        *out = json_new_array(doc, o->via.array.size);
        for (uint32_t i = 0; i < o->via.array.size; i++)
            if ((rc = job_mp_to_json(doc, &o->via.array.ptr[i], depth + 1, max_depth,
                                     &(*out)->u.array.items[i], err)) < 0)
                return rc;
        return 0;
    case MSGPACK_OBJECT_MAP:
        *out = json_new_object(doc, o->via.map.size);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            struct json_member *m = &(*out)->u.object.items[i];
            if ((rc = job_mp_key(doc, &o->via.map.ptr[i].key, m, err)) < 0)
                return rc;
            if ((rc = job_mp_to_json(doc, &o->via.map.ptr[i].val, depth + 1, max_depth,
                                     &m->value, err)) < 0)
                return rc;
        }
        json_object_finish(*out);
        return 0;
    default:
        return hk_err_set(err, HK_EINVAL, "invalid_type",
                          "msgpack bin/ext values have no JSON form");
    }
}
