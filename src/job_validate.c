/* job_validate.c -- one concern: the rules a webhook job's fields must
 * meet, and the struct job they fill. Both formats reach here as the same
 * table of fields (struct job_fields, each a json_value), so a JSON job and
 * a msgpack job with the same content are accepted or rejected alike. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/buf.h"
#include "hookd/job.h"
#include "hookd/json.h"
#include "hookd/mem.h"
#include "hookd/policy.h"
#include "hookd/sign.h"
#include "job_internal.h"

void job_fields_take(struct job_fields *f, const char *key, size_t klen,
                     const struct json_value *v)
{
#define FIELD(name) \
    if (klen == sizeof(#name) - 1 && memcmp(key, #name, klen) == 0) { f->name = v; return; }
    FIELD(id) FIELD(url) FIELD(payload) FIELD(body) FIELD(body_base64) FIELD(event)
    FIELD(headers)
    FIELD(content_type) FIELD(secret) FIELD(secret_previous) FIELD(secret_previous_until)
    FIELD(timeout_ms) FIELD(max_attempts) FIELD(type) FIELD(rate_limit)
#undef FIELD
}

static int want_string(const struct json_value *v, const char *name, struct hk_err *err)
{
    if (v->type != JSON_STRING)
        return hk_err_set(err, HK_EINVAL, "invalid_type", "%s must be a string", name);
    if (!json_utf8_valid(v->u.string.ptr, v->u.string.len))
        return hk_err_set(err, HK_EINVAL, "invalid_utf8",
                          "%s contains a lone surrogate", name);
    return 0;
}

static int want_int(const struct json_value *v, const char *name, long lo, long hi,
                    long *out, struct hk_err *err)
{
    if (v->type != JSON_NUMBER || v->u.number != floor(v->u.number))
        return hk_err_set(err, HK_EINVAL, "invalid_type", "%s must be an integer", name);
    if (v->u.number < (double)lo || v->u.number > (double)hi)
        return hk_err_set(err, HK_EINVAL, "invalid_range", "%s must be in [%ld, %ld]",
                          name, lo, hi);
    *out = (long)v->u.number;
    return 0;
}

static char *dup_str(const struct json_value *v)
{
    return xstrndup(v->u.string.ptr, v->u.string.len);
}

/* A non-empty string, copied to *out (owned by the job). */
static int want_secret(const struct json_value *v, const char *name, char **out,
                       struct hk_err *err)
{
    int rc;

    if ((rc = want_string(v, name, err)) < 0)
        return rc;
    if (v->u.string.len == 0)
        return hk_err_set(err, HK_EINVAL, "invalid_type", "%s is empty", name);
    *out = dup_str(v);
    return 0;
}

int job_validate_id(struct job *job, const struct json_value *v, struct hk_err *err)
{
    int rc;

    if ((rc = want_string(v, "id", err)) < 0)
        return rc;
    if (v->u.string.len == 0 || v->u.string.len > JOB_ID_MAX ||
        policy_check_header_value(v->u.string.ptr, v->u.string.len) < 0 ||
        strchr(v->u.string.ptr, '\t') != NULL)
        return hk_err_set(err, HK_EINVAL, "invalid_id",
                          "id must be 1..%d bytes without control characters", JOB_ID_MAX);
    job->id = dup_str(v);
    return 0;
}

static int validate_headers(struct job *job, const struct json_value *h, struct hk_err *err)
{
    int rc;

    if (h->type != JSON_OBJECT)
        return hk_err_set(err, HK_EINVAL, "invalid_type", "headers must be an object");
    if (h->u.object.len > JOB_HEADERS_MAX)
        return hk_err_set(err, HK_EINVAL, "invalid_range", "at most %d headers",
                          JOB_HEADERS_MAX);
    job->headers = xcalloc(h->u.object.len, sizeof(struct job_header));
    for (size_t i = 0; i < h->u.object.len; i++) {
        const struct json_member *m = &h->u.object.items[i];
        if (m->value->type != JSON_STRING)
            return hk_err_set(err, HK_EINVAL, "invalid_type",
                              "header values must be strings");
        if ((rc = policy_check_header(m->key, m->key_len, m->value->u.string.ptr,
                                      m->value->u.string.len, err)) < 0)
            return rc;
        job->headers[i].name = xstrndup(m->key, m->key_len);
        job->headers[i].value = dup_str(m->value);
        job->nheaders++;
    }
    return 0;
}

/* Exactly one of payload, body (string or msgpack bin), body_base64: the
 * bytes to POST into job->body. */
static int validate_body(struct job *job, const struct job_fields *f, struct hk_err *err)
{
    int rc;

    int nbodies = (f->payload != NULL) + (f->body != NULL || f->has_body_bin) +
                  (f->body_base64 != NULL);
    if (nbodies == 0)
        return hk_err_set(err, HK_EINVAL, "missing_body", "job has neither payload nor body");
    if (nbodies > 1)
        return hk_err_set(err, HK_EINVAL, "invalid_job",
                          "job has more than one of payload, body, body_base64");
    if (f->body_base64 != NULL) {
        if ((rc = want_string(f->body_base64, "body_base64", err)) < 0)
            return rc;
        size_t blen = f->body_base64->u.string.len;
        job->body = xmalloc(SIGN_BASE64_DECODED_MAX(blen) + 1);   /* + NUL */
        int dl = blen == 0 ? 0 : sign_base64_decode(f->body_base64->u.string.ptr, blen,
                                                    (unsigned char *)job->body,
                                                    SIGN_BASE64_DECODED_MAX(blen));
        if (dl < 0)
            return hk_err_set(err, HK_EINVAL, "invalid_type", "body_base64 is not base64");
        job->body[dl] = '\0';
        job->body_len = (size_t)dl;
    } else if (f->payload != NULL) {
        struct buf b = BUF_INIT;
        json_write(&b, f->payload);
        job->body = buf_steal(&b, &job->body_len);
    } else if (f->has_body_bin) {
        job->body = xmalloc(f->body_bin_len + 1);
        memcpy(job->body, f->body_bin, f->body_bin_len);
        job->body[f->body_bin_len] = '\0';
        job->body_len = f->body_bin_len;
    } else {
        if ((rc = want_string(f->body, "body", err)) < 0)
            return rc;
        job->body = dup_str(f->body);
        job->body_len = f->body->u.string.len;
    }
    return 0;
}

/* The optional fields after the body, in the order they are checked. */
static int validate_options(struct job *job, const struct job_fields *f, struct hk_err *err)
{
    long n = 0;
    int rc;

    if (f->content_type != NULL) {
        if ((rc = want_string(f->content_type, "content_type", err)) < 0)
            return rc;
        if (f->content_type->u.string.len == 0 || f->content_type->u.string.len > 256 ||
            policy_check_header_value(f->content_type->u.string.ptr,
                                      f->content_type->u.string.len) < 0)
            return hk_err_set(err, HK_EINVAL, "invalid_header", "content_type is invalid");
        job->content_type = dup_str(f->content_type);
    }
    if (f->event != NULL) {
        if ((rc = want_string(f->event, "event", err)) < 0)
            return rc;
        if (f->event->u.string.len > 256 ||
            policy_check_header_value(f->event->u.string.ptr, f->event->u.string.len) < 0)
            return hk_err_set(err, HK_EINVAL, "invalid_header", "event is invalid");
        job->event = dup_str(f->event);
    }
    if (f->secret != NULL && (rc = want_secret(f->secret, "secret", &job->secret, err)) < 0)
        return rc;
    if (f->secret_previous != NULL &&
        (rc = want_secret(f->secret_previous, "secret_previous", &job->secret_previous, err)) < 0)
        return rc;
    if (f->secret_previous_until != NULL) {
        if ((rc = want_int(f->secret_previous_until, "secret_previous_until", 1,
                           4102444800L, &n, err)) < 0)
            return rc;
        job->secret_previous_until = n;
    }
    if (f->headers != NULL && (rc = validate_headers(job, f->headers, err)) < 0)
        return rc;
    if (f->timeout_ms != NULL) {
        if ((rc = want_int(f->timeout_ms, "timeout_ms", 1, JOB_TIMEOUT_MS_MAX, &n, err)) < 0)
            return rc;
        job->timeout_ms = n;
    }
    if (f->max_attempts != NULL) {
        if ((rc = want_int(f->max_attempts, "max_attempts", 1, JOB_MAX_ATTEMPTS_MAX, &n,
                           err)) < 0)
            return rc;
        job->max_attempts = (int)n;
    }
    if (f->rate_limit != NULL) {
        if ((rc = want_int(f->rate_limit, "rate_limit", 1, JOB_RATE_LIMIT_MAX, &n, err)) < 0)
            return rc;
        job->rate_limit = n;
    }
    return 0;
}

int job_validate(struct job *job, const struct job_fields *f, struct hk_err *err)
{
    int rc;

    if (f->id != NULL && (rc = job_validate_id(job, f->id, err)) < 0)
        return rc;
    if (f->url == NULL)
        return hk_err_set(err, HK_EINVAL, "missing_url", "job has no url");
    if ((rc = want_string(f->url, "url", err)) < 0)
        return rc;
    char origin[POLICY_ORIGIN_MAX];
    if ((rc = policy_check_url(f->url->u.string.ptr, f->url->u.string.len, origin,
                               sizeof(origin), err)) < 0)
        return rc;
    job->url = dup_str(f->url);
    job->origin = xstrdup(origin);
    if ((rc = validate_body(job, f, err)) < 0)
        return rc;
    return validate_options(job, f, err);
}
