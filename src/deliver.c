/* deliver.c -- one attempt at one job. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/deliver.h"
#include "hookd/json.h"
#include "hookd/log.h"
#include "hookd/mem.h"
#include "hookd/sign.h"
#include "hookd/timeutil.h"

struct delivery {
    struct deliver_env *env;
    uint64_t seq;
    char *raw;                  /* owned copy of the job bytes */
    size_t raw_len;
    struct job *job;            /* owned */
    int64_t first_attempt_ms;
    int attempts;
};

static void delivery_free(struct delivery *d)
{
    job_free(d->job);
    free(d->raw);
    free(d);
}

void deliver_dead_entry(struct buf *out, const char *id, const char *raw, size_t raw_len,
                        const struct job_limits *limits, const char *reason,
                        const char *error, long status, int attempts, int64_t first_ms,
                        int64_t last_ms, const char *wid)
{
    char t[TIME_ISO_LEN + 1];

    buf_append_str(out, "{\"id\":");
    if (id != NULL)
        json_write_string(out, id, strlen(id));
    else
        buf_append_str(out, "null");
    buf_append_str(out, ",\"reason\":");
    json_write_string(out, reason, strlen(reason));
    buf_append_str(out, ",\"error\":");
    json_write_string(out, error, strlen(error));
    buf_printf(out, ",\"status\":%ld,\"attempts\":%d", status, attempts);
    time_format_iso(first_ms, t);
    buf_printf(out, ",\"first_attempt_at\":\"%s\"", t);
    time_format_iso(last_ms, t);
    buf_printf(out, ",\"last_attempt_at\":\"%s\"", t);
    time_format_iso(time_now_ms(), t);
    buf_printf(out, ",\"dead_at\":\"%s\",\"worker\":", t);
    json_write_string(out, wid, strlen(wid));
    /* The job itself, secret removed; bytes that are no job at all are kept
     * verbatim (as text when UTF-8, else base64) so nothing is lost. */
    buf_append_str(out, ",\"job\":");
    if (job_redact(raw, raw_len, limits, out) < 0) {
        if (json_utf8_valid(raw, raw_len)) {
            buf_append_str(out, "null,\"raw\":");
            json_write_string(out, raw, raw_len);
        } else {
            char *b64 = xmalloc(4 * (raw_len / 3 + 1) + 1);
            size_t n = sign_base64_encode((const unsigned char *)raw, raw_len, b64);
            buf_append_str(out, "null,\"raw_base64\":\"");
            buf_append(out, b64, n);
            buf_append_char(out, '"');
            free(b64);
        }
    }
    buf_append_char(out, '}');
}

static void finished(struct delivery *d)
{
    struct deliver_env *env = d->env;

    delivery_free(d);
    env->on_finished(env->arg);
}

static void dead_letter(struct delivery *d, const char *reason, const char *error,
                        long status, int invalid)
{
    struct buf entry = BUF_INIT;
    const char *id = d->job ? d->job->id : NULL;

    deliver_dead_entry(&entry, id, d->raw, d->raw_len, &d->env->limits, reason, error,
                       status, d->attempts, d->first_attempt_ms, time_now_ms(), d->env->wid);
    outbox_dead(d->env->outbox, d->seq, entry.data, entry.len, invalid);
    buf_free(&entry);
}

/* The failure path of an attempt. Every failure ends here, so the retry
 * scheduler replaces this one function: for now a failed attempt is final. */
static void deliver_fail(struct delivery *d, const struct http_result *res)
{
    log_emit(LOG_WARN, d->job->id, "attempt %d to %s failed: %s%s%s (status %ld, %ld ms); "
             "dead-lettered", d->attempts, d->job->url, res->reason,
             res->error[0] ? ": " : "", res->error, res->status, res->latency_ms);
    dead_letter(d, res->reason, res->error[0] ? res->error : res->reason, res->status, 0);
}

static void on_response(const struct http_result *res, void *arg)
{
    struct delivery *d = arg;

    if (res->ok) {
        log_emit(LOG_DEBUG, d->job->id, "delivered to %s: %ld in %ld ms", d->job->url,
                 res->status, res->latency_ms);
        outbox_ack(d->env->outbox, d->seq);
    } else if (res->aborted) {
        /* The worker is stopping and cut the request: no outcome. The job
         * stays in the in-flight hash and is requeued by the reclaim. */
        log_emit(LOG_INFO, d->job->id, "attempt aborted by shutdown; job will be requeued");
    } else {
        deliver_fail(d, res);
    }
    finished(d);
}

/* Headers hookd sets on every POST, then the job's own. */
static int build_headers(struct delivery *d, struct buf *store, size_t *offs, size_t *n,
                         struct hk_err *err)
{
    const struct job *job = d->job;
    const char *secret = job->secret ? job->secret : d->env->cfg->secret;
    char hex[SIGN_HEX_LEN + 1], v1[SIGN_V1_LEN + 1];
    long long ts = (long long)(time_now_ms() / 1000);

    if (sign_hex(secret, strlen(secret), job->body, job->body_len, hex) < 0)
        return hk_err_set(err, HK_ECRYPTO, "sign_failed", "HMAC computation failed");
    int rc = sign_standard(secret, strlen(secret), job->id, ts, job->body, job->body_len, v1);
    if (rc == HK_EINVAL)
        return hk_err_set(err, HK_EINVAL, "invalid_secret",
                          "secret starts with whsec_ but is not valid base64");
    if (rc < 0)
        return hk_err_set(err, HK_ECRYPTO, "sign_failed", "HMAC computation failed");
#define ADD(...) do { offs[(*n)++] = store->len; buf_printf(store, __VA_ARGS__); \
                      buf_append_char(store, '\0'); } while (0)
    ADD("content-type: %s", job->content_type ? job->content_type : "application/json");
    ADD("x-dialgen-signature: %s", hex);
    ADD("webhook-id: %s", job->id);
    ADD("webhook-timestamp: %lld", ts);
    ADD("webhook-signature: %s", v1);
    if (job->event != NULL)
        ADD("x-dialgen-event: %s", job->event);
    for (size_t i = 0; i < job->nheaders; i++)
        ADD("%s: %s", job->headers[i].name, job->headers[i].value);
#undef ADD
    return 0;
}

void deliver_start(struct deliver_env *env, uint64_t seq, const char *raw, size_t len)
{
    struct delivery *d = xcalloc(1, sizeof(*d));
    struct hk_err err = { "", "" };
    struct buf store = BUF_INIT;
    size_t offs[8 + 64], n = 0;
    const char *hdrs[8 + 64];

    d->env = env;
    d->seq = seq;
    d->raw = xmalloc(len + 1);
    memcpy(d->raw, raw, len);
    d->raw[len] = '\0';
    d->raw_len = len;
    d->first_attempt_ms = time_now_ms();

    if (job_decode(raw, len, &env->limits, &d->job, &err) < 0) {
        log_emit(LOG_WARN, d->job->id ? d->job->id : "-", "invalid job: %s: %s; dead-lettered",
                 err.code, err.msg);
        dead_letter(d, err.code, err.msg, 0, 1);
        finished(d);
        return;
    }
    job_ensure_id(d->job);
    int rc = build_headers(d, &store, offs, &n, &err);
    if (rc < 0) {
        log_emit(LOG_WARN, d->job->id, "cannot sign: %s: %s; dead-lettered", err.code, err.msg);
        dead_letter(d, err.code, err.msg, 0, rc == HK_EINVAL);
        buf_free(&store);
        finished(d);
        return;
    }
    for (size_t i = 0; i < n; i++)
        hdrs[i] = store.data + offs[i];
    struct http_request_spec spec = {
        .url = d->job->url,
        .body = d->job->body,
        .body_len = d->job->body_len,
        .headers = hdrs,
        .nheaders = n,
        .user_agent = env->cfg->user_agent,
        .timeout_ms = d->job->timeout_ms ? d->job->timeout_ms : env->cfg->timeout_ms,
    };
    d->attempts = 1;
    if (http_post(env->http, &spec, on_response, d) < 0) {
        log_emit(LOG_ERROR, d->job->id, "http_post() failed; dead-lettered");
        dead_letter(d, "http_error", "could not start the request", 0, 0);
        buf_free(&store);
        finished(d);
        return;
    }
    buf_free(&store);
}
