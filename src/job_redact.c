/* job_redact.c -- one concern: a job's secrets and the dead letters. What
 * a dead-letter entry shows of a job (job_redact: everything but secret
 * and secret_previous, as canonical JSON) and what is kept aside for a
 * replay to restore (job_aside_*). */
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/buf.h"
#include "hookd/job.h"
#include "hookd/json.h"
#include "hookd/mem.h"
#include "hookd/sign.h"
#include "job_internal.h"

static int is_secret_key(const char *k, size_t len)
{
    return (len == 6 && memcmp(k, "secret", 6) == 0) ||
           (len == 15 && memcmp(k, "secret_previous", 15) == 0);
}

static int redact_msgpack(struct json_doc *doc, const msgpack_object *o,
                          const struct job_limits *lim, struct json_value **out)
{
    struct hk_err err;
    size_t n = 0;

    *out = json_new_object(doc, o->via.map.size);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
        struct json_member *m = &(*out)->u.object.items[n];
        if (job_mp_key(doc, k, m, &err) < 0)
            return HK_EINVAL;
        if (is_secret_key(m->key, m->key_len))
            continue;
        if (v->type == MSGPACK_OBJECT_BIN) {
            if (json_utf8_valid(v->via.bin.ptr, v->via.bin.size)) {
                m->value = json_new_string(doc, v->via.bin.ptr, v->via.bin.size);
            } else {
                char *b64 = xmalloc(SIGN_BASE64_LEN(v->via.bin.size) + 1);
                size_t blen = sign_base64_encode((const unsigned char *)v->via.bin.ptr,
                                                 v->via.bin.size, b64);
                struct buf key = BUF_INIT;
                buf_printf(&key, "%s_base64", m->key);
                m->key = json_doc_strdup(doc, key.data, key.len);
                m->key_len = key.len;
                m->value = json_new_string(doc, b64, blen);
                buf_free(&key);
                free(b64);
            }
        } else if (job_mp_to_json(doc, v, 1, lim->max_depth, &m->value, &err) < 0) {
            return HK_EINVAL;
        }
        n++;
    }
    (*out)->u.object.len = n;
    json_object_finish(*out);
    return 0;
}

int job_redact(const char *data, size_t len, const struct job_limits *limits,
               struct buf *out)
{
    struct json_doc *doc = json_doc_new();
    struct json_value *root = NULL;
    struct hk_err err;
    int rc = HK_EINVAL;

    if (job_is_msgpack(data, len)) {
        msgpack_unpacked up;
        size_t off = 0;
        msgpack_unpacked_init(&up);
        if (job_mp_check((const unsigned char *)data, len, 0, limits->max_depth + 1) == (long)len &&
            msgpack_unpack_next(&up, data, len, &off) == MSGPACK_UNPACK_SUCCESS &&
            off == len && up.data.type == MSGPACK_OBJECT_MAP)
            rc = redact_msgpack(doc, &up.data, limits, &root);
        msgpack_unpacked_destroy(&up);
    } else if (json_parse(doc, data, len, limits->max_depth, &root, &err) == 0 &&
               root->type == JSON_OBJECT) {
        size_t w = 0;
        for (size_t i = 0; i < root->u.object.len; i++) {
            const struct json_member *m = &root->u.object.items[i];
            if (!is_secret_key(m->key, m->key_len))
                root->u.object.items[w++] = *m;
        }
        root->u.object.len = w;
        rc = 0;
    }
    if (rc == 0)
        json_write(out, root);
    json_doc_free(doc);
    return rc;
}

/* The aside value: 0xc1 (so it is never taken for an older plain secret,
 * which as UTF-8 text cannot start with that byte), then a msgpack map. */
#define ASIDE_TAG '\xc1'

int job_aside_encode(const struct job *job, struct buf *out)
{
    msgpack_packer pk;
    int n = (job->secret != NULL) + (job->secret_previous != NULL);

    if (n == 0)
        return 0;
    buf_append_char(out, ASIDE_TAG);
    job_packer_init(&pk, out);
    msgpack_pack_map(&pk, (size_t)n);
    if (job->secret != NULL) {
        job_pack_str(&pk, "secret");
        job_pack_str(&pk, job->secret);
    }
    if (job->secret_previous != NULL) {
        job_pack_str(&pk, "secret_previous");
        job_pack_str(&pk, job->secret_previous);
    }
    return 1;
}

static char *aside_field(const msgpack_object *v, size_t *len)
{
    const char *p;
    uint32_t n;

    if (v->type == MSGPACK_OBJECT_STR) {
        p = v->via.str.ptr;
        n = v->via.str.size;
    } else if (v->type == MSGPACK_OBJECT_BIN) {
        p = v->via.bin.ptr;
        n = v->via.bin.size;
    } else {
        return NULL;
    }
    if (len != NULL)
        *len = n;
    return xstrndup(p, n);
}

int job_aside_decode(const char *data, size_t len, struct job_aside *out)
{
    msgpack_unpacked up;
    size_t off = 0;
    int rc = HK_EINVAL;

    memset(out, 0, sizeof(*out));
    if (len == 0)
        return 0;
    if (data[0] != ASIDE_TAG) {     /* before the map: the job's own secret */
        out->secret = xstrndup(data, len);
        return 0;
    }
    msgpack_unpacked_init(&up);
    if (msgpack_unpack_next(&up, data + 1, len - 1, &off) == MSGPACK_UNPACK_SUCCESS &&
        up.data.type == MSGPACK_OBJECT_MAP) {
        const msgpack_object_map *m = &up.data.via.map;
        for (uint32_t i = 0; i < m->size; i++) {
            const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
            char **field = NULL;
            size_t *flen = NULL;
            if (k->type != MSGPACK_OBJECT_STR)
                continue;
            if (k->via.str.size == 6 && memcmp(k->via.str.ptr, "secret", 6) == 0)
                field = &out->secret;
            else if (k->via.str.size == 15 && memcmp(k->via.str.ptr, "secret_previous", 15) == 0)
                field = &out->secret_previous;
            else if (k->via.str.size == 3 && memcmp(k->via.str.ptr, "raw", 3) == 0) {
                field = &out->raw;
                flen = &out->raw_len;
            }
            if (field != NULL && *field == NULL)
                *field = aside_field(v, flen);
        }
        rc = 0;
    }
    msgpack_unpacked_destroy(&up);
    return rc;
}

void job_aside_free(struct job_aside *a)
{
    free(a->secret);
    free(a->secret_previous);
    free(a->raw);
    memset(a, 0, sizeof(*a));
}
