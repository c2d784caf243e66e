/* job_envelope.c -- one concern: the retry envelope, the msgpack map hookd
 * wraps around a producer's job when it puts the job back on its own
 * queues (layout in job.h). Reading it yields the attempt metadata and the
 * producer's bytes; decoding those is job.c's business. Also home of the
 * two msgpack packing helpers every hookd-written map uses. */
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/buf.h"
#include "hookd/job.h"
#include "hookd/mem.h"
#include "job_internal.h"

static int buf_write(void *data, const char *buf, size_t len)
{
    buf_append(data, buf, len);
    return 0;
}

void job_packer_init(msgpack_packer *pk, struct buf *out)
{
    msgpack_packer_init(pk, out, buf_write);
}

void job_pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);

    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* A retry envelope: fixmap whose first key is the fixstr "_hookd". */
int job_envelope_is(const char *data, size_t len)
{
    return len > 8 && (unsigned char)data[0] >= 0x80 && (unsigned char)data[0] <= 0x8f &&
           (unsigned char)data[1] == 0xa6 && memcmp(data + 2, "_hookd", 6) == 0;
}

int job_envelope_open(const char *data, size_t len, struct job *job, char **inner,
                      size_t *inner_len, char **id, struct hk_err *err)
{
    msgpack_unpacked up;
    size_t off = 0;
    const char *in = NULL;
    size_t in_len = 0;

    *inner = NULL;
    *inner_len = 0;
    *id = NULL;
    msgpack_unpacked_init(&up);
    if (job_mp_check((const unsigned char *)data, len, 0, 4) != (long)len ||
        msgpack_unpack_next(&up, data, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        up.data.type != MSGPACK_OBJECT_MAP) {
        msgpack_unpacked_destroy(&up);
        return hk_err_set(err, HK_EINVAL, "invalid_envelope", "malformed retry envelope");
    }
    for (uint32_t i = 0; i < up.data.via.map.size; i++) {
        const msgpack_object *k = &up.data.via.map.ptr[i].key, *v = &up.data.via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR)
            continue;
#define KEY(name) (k->via.str.size == sizeof(name) - 1 && \
                   memcmp(k->via.str.ptr, name, k->via.str.size) == 0)
        if (KEY("job") && v->type == MSGPACK_OBJECT_BIN) {
            in = v->via.bin.ptr;
            in_len = v->via.bin.size;
        } else if (KEY("id") && v->type == MSGPACK_OBJECT_STR && v->via.str.size > 0 &&
                   v->via.str.size <= JOB_ID_MAX) {
            free(*id);
            *id = xstrndup(v->via.str.ptr, v->via.str.size);
        } else if (KEY("attempts") && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                   v->via.u64 <= JOB_MAX_ATTEMPTS_MAX) {
            job->attempts = (int)v->via.u64;
        } else if (KEY("first_ms") && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            job->first_attempt_ms = (long long)v->via.u64;
        } else if (KEY("last_status") && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            job->last_status = (long)v->via.u64;
        } else if (KEY("last_error") && v->type == MSGPACK_OBJECT_STR) {
            free(job->last_error);
            job->last_error = xstrndup(v->via.str.ptr, v->via.str.size);
        }
#undef KEY
    }
    if (in == NULL || job_envelope_is(in, in_len)) {
        free(*id);
        *id = NULL;
        msgpack_unpacked_destroy(&up);
        return hk_err_set(err, HK_EINVAL, "invalid_envelope", "retry envelope without a job");
    }
    /* Copied while up still holds what in points into. */
    *inner = xmalloc(in_len + 1);
    memcpy(*inner, in, in_len);
    (*inner)[in_len] = '\0';
    *inner_len = in_len;
    msgpack_unpacked_destroy(&up);
    return 0;
}

void job_envelope_encode(const struct job *job, const struct job_envelope *env,
                         struct buf *out)
{
    msgpack_packer pk;

    job_packer_init(&pk, out);
    msgpack_pack_map(&pk, env->id != NULL ? 8 : 7);
    job_pack_str(&pk, "_hookd");    /* must stay first: job_envelope_is() */
    msgpack_pack_int(&pk, 1);
    if (env->id != NULL) {          /* a typed job may have none */
        job_pack_str(&pk, "id");
        job_pack_str(&pk, env->id);
    }
    job_pack_str(&pk, "attempts");
    msgpack_pack_int(&pk, env->attempts);
    job_pack_str(&pk, "first_ms");
    msgpack_pack_int64(&pk, env->first_attempt_ms);
    job_pack_str(&pk, "last_status");
    msgpack_pack_long(&pk, env->last_status);
    job_pack_str(&pk, "last_error");
    job_pack_str(&pk, env->last_error);
    job_pack_str(&pk, "token");
    job_pack_str(&pk, env->token);
    job_pack_str(&pk, "job");
    msgpack_pack_bin(&pk, job->raw_len);
    msgpack_pack_bin_body(&pk, job->raw, job->raw_len);
}
