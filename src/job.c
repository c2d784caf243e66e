/* job.c -- job codec: JSON or msgpack in, a validated struct job out. Its
 * one concern is decoding's order of steps: hookd's marks, the retry
 * envelope around a job, the format, then the job's fields.
 *
 * Both formats are first brought to the same shape (a table of the known
 * fields, each a json_value), then validated by one function
 * (job_validate.c), so a JSON job and a msgpack job with the same content
 * are accepted or rejected alike. The other parts of the codec:
 * job_mpcheck.c (msgpack bytes checked before msgpack-c sees them),
 * job_mpjson.c (msgpack to json_value), job_envelope.c (the retry
 * envelope), job_redact.c (what the dead letters show and keep aside);
 * src/job_internal.h is what they share. */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "hookd/event.h"
#include "hookd/job.h"
#include "hookd/json.h"
#include "hookd/mem.h"
#include "hookd/sign.h"
#include "hookd/policy.h"
#include "job_internal.h"

static int fields_from_msgpack(struct json_doc *doc, const char *data, size_t len,
                               const struct job_limits *lim, struct job_fields *f,
                               msgpack_unpacked *up, struct hk_err *err)
{
    size_t off = 0;
    int rc;

    long size = job_mp_check((const unsigned char *)data, len, 0, lim->max_depth + 1);
    if (size < 0)
        return hk_err_set(err, HK_EINVAL, "invalid_msgpack",
                          "not a valid msgpack value (truncated, a length beyond the data, "
                          "or nesting deeper than %d)", lim->max_depth);
    if ((size_t)size != len)
        return hk_err_set(err, HK_EINVAL, "invalid_msgpack",
                          "trailing bytes after the msgpack value");
    if (msgpack_unpack_next(up, data, len, &off) != MSGPACK_UNPACK_SUCCESS)
        return hk_err_set(err, HK_EINVAL, "invalid_msgpack", "not a valid msgpack value");
    if (off != len)
        return hk_err_set(err, HK_EINVAL, "invalid_msgpack",
                          "trailing bytes after the msgpack value");
    const msgpack_object *o = &up->data;
    if (o->type != MSGPACK_OBJECT_MAP)
        return hk_err_set(err, HK_EINVAL, "invalid_job", "job is not a map");
    /* Later duplicates win, as in JSON. */
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
        struct json_value *jv;
        if (k->type != MSGPACK_OBJECT_STR)
            continue;   /* not one of ours */
        if (k->via.str.size == 4 && memcmp(k->via.str.ptr, "body", 4) == 0 &&
            v->type == MSGPACK_OBJECT_BIN) {
            f->body = NULL;
            f->body_bin = v->via.bin.ptr;
            f->body_bin_len = v->via.bin.size;
            f->has_body_bin = 1;
            continue;
        }
        if ((rc = job_mp_to_json(doc, v, 1, lim->max_depth, &jv, err)) < 0)
            return rc;
        if (k->via.str.size == 4 && memcmp(k->via.str.ptr, "body", 4) == 0)
            f->has_body_bin = 0;
        job_fields_take(f, k->via.str.ptr, k->via.str.size, jv);
    }
    return 0;
}

/* msgpack maps start with 0x80-0x8f, 0xde or 0xdf; none of those can start
 * a JSON text, so the first byte tells the formats apart. */
int job_is_msgpack(const char *data, size_t len)
{
    unsigned char c = len ? (unsigned char)data[0] : 0;
    return (c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf;
}

static int looks_like_json_object(const char *data, size_t len)
{
    size_t i = 0;

    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r'))
        i++;
    return i < len && data[i] == '{';
}

/* A job straight from a producer (or from inside an envelope). */
static int decode_plain(const char *data, size_t len, const struct job_limits *limits,
                        struct job *job, struct hk_err *err)
{
    struct json_doc *doc = json_doc_new();
    struct json_value *root = NULL;   /* JSON jobs, and typed msgpack jobs */
    struct job_fields f;
    msgpack_unpacked up;
    int rc;

    memset(&f, 0, sizeof(f));
    msgpack_unpacked_init(&up);
    if (len > limits->max_job_bytes) {
        rc = hk_err_set(err, HK_EINVAL, "too_large", "job is %zu bytes, limit %zu", len,
                        limits->max_job_bytes);
        goto out;
    }
    if (job_is_msgpack(data, len)) {
        rc = fields_from_msgpack(doc, data, len, limits, &f, &up, err);
    } else if (!looks_like_json_object(data, len)) {
        rc = hk_err_set(err, HK_EINVAL, "invalid_format",
                        "job is neither a JSON object nor a msgpack map");
    } else {
        rc = json_parse(doc, data, len, limits->max_depth, &root, err);
        if (rc == 0 && root->type != JSON_OBJECT)
            rc = hk_err_set(err, HK_EINVAL, "invalid_job", "job is not a JSON object");
        for (size_t i = 0; rc == 0 && i < root->u.object.len; i++)
            job_fields_take(&f, root->u.object.items[i].key, root->u.object.items[i].key_len,
                            root->u.object.items[i].value);
    }
    if (rc == 0 && f.type != NULL) {
        /* A typed job (event.h): its own rules, on the whole tree. */
        if (root == NULL)
            rc = job_mp_to_json(doc, &up.data, 0, limits->max_depth, &root, err);
        if (rc == 0 && f.id != NULL)
            rc = job_validate_id(job, f.id, err);
        if (rc == 0)
            rc = event_decode(root, &job->typed, err);
    } else if (rc == 0) {
        rc = job_validate(job, &f, err);
    }
    if (rc < 0 && f.id != NULL && job->id == NULL) {
        struct hk_err ignore;
        job_validate_id(job, f.id, &ignore);
    }
out:
    msgpack_unpacked_destroy(&up);
    json_doc_free(doc);
    return rc;
}

static void set_raw(struct job *job, const char *data, size_t len)
{
    free(job->raw);
    job->raw = xmalloc(len + 1);
    memcpy(job->raw, data, len);
    job->raw[len] = '\0';
    job->raw_len = len;
}

/* A retry envelope: its metadata into job, then the producer's job inside
 * it decoded as if it came straight from the producer. */
static int decode_envelope(const char *data, size_t len, const struct job_limits *limits,
                           struct job *job, struct hk_err *err)
{
    char *inner, *id;
    size_t inner_len;
    int rc;

    if ((rc = job_envelope_open(data, len, job, &inner, &inner_len, &id, err)) < 0)
        return rc;
    free(job->raw);
    job->raw = inner;
    job->raw_len = inner_len;
    rc = decode_plain(job->raw, job->raw_len, limits, job, err);
    if (id != NULL && policy_check_header_value(id, strlen(id)) == 0) {
        /* The envelope's id wins: it may be the one generated at attempt 1. */
        free(job->id);
        job->id = id;
        id = NULL;
    }
    free(id);
    return rc;
}

/* JOB_CRASHED_MARK "<n>:" at *data: skipped, n into *crashes. Anything
 * else (no mark, or no number and colon after it) is left as it is. */
static void skip_crash_mark(const char **data, size_t *len, int *crashes)
{
    const char *p = *data + JOB_CRASHED_MARK_LEN, *end = *data + *len;
    int n = 0;

    if (*len < JOB_CRASHED_MARK_LEN + 2 ||
        memcmp(*data, JOB_CRASHED_MARK, JOB_CRASHED_MARK_LEN) != 0)
        return;
    for (; p < end && *p >= '0' && *p <= '9' && n < 1000000; p++)
        n = n * 10 + (*p - '0');
    if (p == *data + JOB_CRASHED_MARK_LEN || p >= end || *p != ':')
        return;
    *crashes = n;
    *len -= (size_t)(p + 1 - *data);
    *data = p + 1;
}

int job_decode(const char *data, size_t len, const struct job_limits *limits,
               struct job **out, struct hk_err *err)
{
    struct job *job = xcalloc(1, sizeof(*job));

    *out = job;
    if (len >= JOB_ACCEPTED_MARK_LEN &&
        memcmp(data, JOB_ACCEPTED_MARK, JOB_ACCEPTED_MARK_LEN) == 0) {
        job->accepted = 1;
        data += JOB_ACCEPTED_MARK_LEN;
        len -= JOB_ACCEPTED_MARK_LEN;
    }
    skip_crash_mark(&data, &len, &job->crashes);
    set_raw(job, data, len);
    if (job_envelope_is(data, len))
        return decode_envelope(data, len, limits, job, err);
    return decode_plain(data, len, limits, job, err);
}

void job_ensure_id(struct job *job)
{
    unsigned char r[16];
    char id[4 + 33];

    if (job->id != NULL)
        return;
    /* getrandom(2) never returns short for <= 256 bytes once the pool is
     * initialised; if the call itself fails (seccomp, old kernel) the clock
     * still makes ids unique enough within one process. */
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        memcpy(r, &ts, sizeof(ts) < sizeof(r) ? sizeof(ts) : sizeof(r));
    }
    memcpy(id, "msg_", 4);
    sign_to_hex(r, 16, id + 4);
    job->id = xstrdup(id);
}

void job_free(struct job *job)
{
    if (job == NULL)
        return;
    for (size_t i = 0; i < job->nheaders; i++) {
        free(job->headers[i].name);
        free(job->headers[i].value);
    }
    free(job->headers);
    free(job->origin);
    free(job->id);
    free(job->url);
    free(job->body);
    free(job->content_type);
    free(job->event);
    free(job->secret);
    free(job->secret_previous);
    free(job->raw);
    free(job->last_error);
    event_free(job->typed);
    free(job);
}
