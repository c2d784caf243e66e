/* deliver.c -- one attempt at one job, and what follows from its outcome:
 * acknowledged, scheduled for a retry, or dead-lettered. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/backoff.h"
#include "hookd/deliver.h"
#include "hookd/deliver_headers.h"
#include "hookd/event.h"
#include "hookd/hosts.h"
#include "hookd/json.h"
#include "hookd/log.h"
#include "hookd/mem.h"
#include "hookd/sign.h"
#include "hookd/timeutil.h"

struct delivery {
    struct deliver_env *env;
    struct dedupe_req accept;       /* while its id is checked (dedupe.h) */
    struct hosts_waiter waiter;     /* while waiting for its origin */
    struct throttle_req slot;       /* while waiting for a slot of its origin's rate */
    int throttled;                  /* its slot has come */
    struct host *host;              /* admitted origin, until hosts_done */
    uint64_t seq;
    struct job *job;            /* owned; job->raw holds the producer's bytes */
    int attempt;                /* this attempt's number, 1-based */
    int max_attempts;
    int64_t first_attempt_ms;
    int64_t started_ms;
    int probe;                  /* the one attempt its open breaker lets through */
};

static void append_base64(struct buf *out, const char *p, size_t n)
{
    buf_reserve(out, SIGN_BASE64_LEN(n) + 1);
    out->len += sign_base64_encode((const unsigned char *)p, n, out->data + out->len);
    out->data[out->len] = '\0';
}

void deliver_dead_entry(struct buf *out, const struct dead_info *in, const char *raw,
                        size_t raw_len, const struct job_limits *limits)
{
    char t[TIME_ISO_LEN + 1];

    buf_append_str(out, "{\"dead_id\":");
    json_write_string(out, in->dead_id, strlen(in->dead_id));
    buf_append_str(out, ",\"id\":");
    if (in->id != NULL)
        json_write_string(out, in->id, strlen(in->id));
    else
        buf_append_str(out, "null");
    buf_append_str(out, ",\"reason\":");
    json_write_string(out, in->reason, strlen(in->reason));
    buf_append_str(out, ",\"error\":");
    json_write_string(out, in->error, strlen(in->error));
    buf_printf(out, ",\"gave_up\":\"%s\",\"status\":%ld,\"attempts\":%d", in->gave_up,
               in->status, in->attempts);
    time_format_iso(in->first_ms, t);
    buf_printf(out, ",\"first_attempt_at\":\"%s\"", t);
    time_format_iso(in->last_ms, t);
    buf_printf(out, ",\"last_attempt_at\":\"%s\"", t);
    time_format_iso(time_now_ms(), t);
    buf_printf(out, ",\"dead_at\":\"%s\",\"worker\":", t);
    json_write_string(out, in->wid, strlen(in->wid));
    /* The job itself, secret removed; bytes that are no job at all are kept
     * verbatim (as text when UTF-8, else base64) so nothing is lost. */
    buf_append_str(out, ",\"job\":");
    if (job_redact(raw, raw_len, limits, out) < 0) {
        if (json_utf8_valid(raw, raw_len)) {
            buf_append_str(out, "null,\"raw\":");
            json_write_string(out, raw, raw_len);
        } else {
            buf_append_str(out, "null,\"raw_base64\":\"");
            append_base64(out, raw, raw_len);
            buf_append_char(out, '"');
        }
    }
    buf_append_char(out, '}');
}

static void on_notify(uv_timer_t *t)
{
    struct deliver_env *env = t->data;
    unsigned n = env->nfinished;

    env->nfinished = 0;
    env->on_finished(env->arg, n);
}

void deliver_env_init(struct deliver_env *env, uv_loop_t *loop)
{
    uv_timer_init(loop, &env->notify);
    env->notify.data = env;
    env->nfinished = 0;
    env->closed = 0;
}

void deliver_env_close(struct deliver_env *env, uv_close_cb cb)
{
    env->closed = 1;
    uv_close((uv_handle_t *)&env->notify, cb);
}

/* The delivery is over: free it, and report it from the loop rather than
 * from here, which may be deep inside deliver_start or a callback of the
 * owner's (a zero timer runs after the current callback returns, in this
 * loop iteration or the next). Deliveries finishing meanwhile share one
 * report. */
static void finished(struct delivery *d)
{
    struct deliver_env *env = d->env;

    job_free(d->job);
    free(d);
    if (env->closed)
        return;
    if (env->nfinished++ == 0)
        uv_timer_start(&env->notify, on_notify, 0, 0);
}

/* The dead-letter entry for this delivery, appended to entry. */
static void dead_entry(struct delivery *d, int attempts, const char *reason, const char *error,
                       const char *gave_up, long status, struct buf *entry)
{
    char dead_id[160];
    struct dead_info info = {
        .dead_id = dead_id, .id = d->job->id, .reason = reason, .error = error,
        .gave_up = gave_up, .status = status, .attempts = attempts,
        .first_ms = d->first_attempt_ms, .last_ms = time_now_ms(), .wid = d->env->wid,
    };

    snprintf(dead_id, sizeof(dead_id), "%s:%llu", d->env->wid, (unsigned long long)d->seq);
    deliver_dead_entry(entry, &info, d->job->raw, d->job->raw_len, &d->env->limits);
}

/* Dead-letter the job after attempts attempts (kind as outbox_dead has it). */
static void dead_letter(struct delivery *d, char kind, int attempts, const char *reason,
                        const char *error, const char *gave_up, long status)
{
    struct buf entry = BUF_INIT, aside = BUF_INIT;

    dead_entry(d, attempts, reason, error, gave_up, status, &entry);
    /* The job's own secrets stay out of the entry, kept aside for replay. */
    job_aside_encode(d->job, &aside);
    outbox_dead(d->env->outbox, d->seq, d->job->id, kind, entry.data, entry.len, aside.data,
                aside.len);
    stats_outcome(d->env->stats, kind == 'I' ? STATS_INVALID : STATS_DEAD);
    buf_free(&entry);
    buf_free(&aside);
}

/* Retry envelope of this delivery after attempt d->attempt, appended to out. */
static void envelope(struct delivery *d, long status, const char *last_error, struct buf *out)
{
    char token[160];
    struct job_envelope e = {
        .id = d->job->id, .attempts = d->attempt, .first_attempt_ms = d->first_attempt_ms,
        .last_status = status, .last_error = last_error, .token = token,
    };

    snprintf(token, sizeof(token), "%s:%llu", d->env->wid, (unsigned long long)d->seq);
    job_envelope_encode(d->job, &e, out);
}

/* One entry in <prefix>:attempts: who, what, and the start of the answer. */
static void log_attempt(struct delivery *d, const struct http_result *res)
{
    char attempt[16], status[16], latency[24], at[TIME_ISO_LEN + 1];
    struct buf err = BUF_INIT, body = BUF_INIT;
    const char *bkey = "response";

    snprintf(attempt, sizeof(attempt), "%d", d->attempt);
    snprintf(status, sizeof(status), "%ld", res->status);
    snprintf(latency, sizeof(latency), "%ld", res->latency_ms);
    time_format_iso(d->started_ms, at);
    buf_printf(&err, "%s%s%s", res->ok ? "" : res->reason, res->error[0] ? ": " : "",
               res->error);
    if (json_utf8_valid(res->body ? res->body : "", res->body_len)) {
        buf_append(&body, res->body ? res->body : "", res->body_len);
    } else {
        bkey = "response_base64";
        append_base64(&body, res->body, res->body_len);
    }
    const char *f[] = { "id", d->job->id, "attempt", attempt, "url", d->job->url,
                        "status", status, "error", err.data ? err.data : "",
                        "latency_ms", latency, "worker", d->env->wid, "at", at,
                        bkey, body.data ? body.data : "" };
    size_t l[18];
    for (int i = 0; i < 18; i++)
        l[i] = strlen(f[i]);
    l[17] = body.len;
    outbox_log(d->env->outbox, f, l, 18);
    buf_free(&err);
    buf_free(&body);
}

/* The structured side of a delivery's log line (log_format = json). */
static struct log_fields job_fields(const struct delivery *d)
{
    struct log_fields f = LOG_FIELDS_INIT;

    f.job = d->job->id;
    f.origin = d->job->origin;
    return f;
}

/* ... and of an attempt's. */
static struct log_fields attempt_fields(const struct delivery *d, const struct http_result *res,
                                        const char *error)
{
    struct log_fields f = job_fields(d);

    f.attempt = d->attempt;
    f.status = res->status;
    f.error = error;
    f.latency_ms = res->latency_ms;
    return f;
}

#define BODY_EXCERPT 100             /* response bytes quoted in a failure */

/* What went wrong, in words: curl's message, or for an answer with a bad
 * status "HTTP <status>" and the start of the body ("HTTP 500: boom: db
 * down"), which is what an operator reading the log or the retry list
 * needs first. The excerpt ends on a UTF-8 boundary, its control bytes
 * are spaces, and a body that is not UTF-8 is only counted. */
static void failure_error(const struct http_result *res, char *out, size_t cap)
{
    char excerpt[BODY_EXCERPT + 1];
    size_t n = res->body_len < BODY_EXCERPT ? res->body_len : BODY_EXCERPT;

    if (res->error[0] != '\0' || res->status == 0) {
        snprintf(out, cap, "%s", res->error[0] ? res->error : res->reason);
        return;
    }
    if (n < res->body_len)          /* cut: drop a sequence the cut split */
        while (n > 0 && ((unsigned char)res->body[n] & 0xC0) == 0x80)
            n--;
    if (n == 0) {
        snprintf(out, cap, "HTTP %ld", res->status);
        return;
    }
    if (!json_utf8_valid(res->body, n)) {
        snprintf(out, cap, "HTTP %ld (a %zu-byte body, not UTF-8)", res->status, res->body_len);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)res->body[i];
        excerpt[i] = c < 0x20 || c == 0x7F ? ' ' : (char)c;
    }
    excerpt[n] = '\0';
    snprintf(out, cap, "HTTP %ld: %s%s", res->status, excerpt, n < res->body_len ? "..." : "");
}

/* The failure path of an attempt: retry per the policy, or give up. */
static void deliver_fail(struct delivery *d, const struct http_result *res)
{
    const struct backoff_policy *p = &d->env->opts.retry;
    char error[512], failure[600];      /* failure: "<reason>: <error>" */
    struct log_fields f;

    failure_error(res, error, sizeof(error));
    snprintf(failure, sizeof(failure), "%s: %s", res->reason, error);
    f = attempt_fields(d, res, failure);
    if (backoff_retryable(p, res->status, res->reason) && d->attempt < d->max_attempts) {
        double rnd = (double)random() / ((double)RAND_MAX + 1.0);
        long delay = backoff_delay_ms(p, d->attempt, res->status, res->retry_after_s, rnd);
        struct buf env = BUF_INIT;
        envelope(d, res->status, failure, &env);
        log_emit_fields(LOG_WARN, &f, "attempt %d/%d to %s failed: %s (status %ld, %ld ms); "
                 "retry in %ld ms", d->attempt, d->max_attempts, d->job->url, failure,
                 res->status, res->latency_ms, delay);
        outbox_retry(d->env->outbox, d->seq, d->job->id, env.data, env.len, delay);
        stats_outcome(d->env->stats, STATS_RETRIED);
        buf_free(&env);
        return;
    }
    const char *gave_up = d->attempt >= d->max_attempts &&
                                  backoff_retryable(p, res->status, res->reason)
                              ? "attempts_exhausted" : "not_retryable";
    log_emit_fields(LOG_WARN, &f, "attempt %d/%d to %s failed: %s (status %ld, %ld ms); "
             "dead-lettered (%s)", d->attempt, d->max_attempts, d->job->url, failure,
             res->status, res->latency_ms, gave_up);
    dead_letter(d, 'D', d->attempt, res->reason, error, gave_up, res->status);
}

static struct delivery *of_waiter(struct hosts_waiter *w)
{
    return w ? (struct delivery *)((char *)w - offsetof(struct delivery, waiter)) : NULL;
}

static void send_request(struct delivery *d);

/* Start the waiters hosts_done admitted (a chain, hosts.h). */
static void send_admitted(struct hosts_waiter *w)
{
    while (w != NULL) {
        struct hosts_waiter *next = w->next;
        w->next = NULL;
        send_request(of_waiter(w));
        w = next;
    }
}

/* No outcome: the job stays in the in-flight hash and the worker's final
 * reclaim requeues it. */
static void drop(struct delivery *d, const char *why)
{
    log_emit(LOG_INFO, d->job->id, "%s; job will be requeued", why);
    finished(d);
}

/* Count the attempt in the stats, and towards its origin's breaker: a
 * timeout, a connection or TLS failure and a 5xx are the origin failing;
 * any other answer is not (a 4xx is the job's fault). A destination the
 * policy refused never reached it. */
static void report_health(struct delivery *d, const struct http_result *res)
{
    enum stats_result c = stats_classify(res->status, res->reason);

    stats_attempt(d->env->stats, c, res->latency_ms);
    if (c == STATS_FORBIDDEN)
        return;
    health_report(d->env->health, d->job->origin,
                  c == STATS_2XX || c == STATS_3XX || c == STATS_4XX ? HEALTH_OK : HEALTH_FAILED,
                  d->probe);
}

static void on_response(const struct http_result *res, void *arg)
{
    struct delivery *d = arg;
    struct deliver_env *env = d->env;
    long latency = res->aborted ? -1 : res->latency_ms;
    struct hosts_waiter *next = hosts_done(env->hosts, d->host, latency, res->h2_conn,
                                           time_mono_ms());

    if (res->aborted) {
        drop(d, "attempt aborted by shutdown");
        for (struct hosts_waiter *w = next, *after; w != NULL; w = after) {
            after = w->next;
            drop(of_waiter(w), "shutting down before its attempt");
        }
        return;
    }
    report_health(d, res);
    if (res->ok ? env->opts.log_successes : env->opts.log_failures)
        log_attempt(d, res);
    if (res->ok) {
        struct log_fields f = attempt_fields(d, res, NULL);
        log_emit_fields(env->opts.log_deliveries ? LOG_INFO : LOG_DEBUG, &f,
                 "delivered to %s: %ld in %ld ms (attempt %d)",
                 d->job->url, res->status, res->latency_ms, d->attempt);
        outbox_ack(d->env->outbox, d->seq, d->job->id);
        stats_outcome(d->env->stats, STATS_DELIVERED);
    } else {
        deliver_fail(d, res);
    }
    finished(d);
    send_admitted(next);
}

/* An admitted delivery ended without a response: free its origin's slot
 * (starting the next waiter), then finish. */
static void release_and_finish(struct delivery *d)
{
    struct hosts_waiter *next = hosts_done(d->env->hosts, d->host, -1, 0, time_mono_ms());

    finished(d);
    send_admitted(next);
}

static int held_back(struct delivery *d);

/* Sign and POST an admitted delivery. */
static void send_request(struct delivery *d)
{
    struct deliver_env *env = d->env;
    struct hk_err err = { "", "" };
    struct buf store = BUF_INIT;
    size_t offs[DELIVER_HEADERS_MAX], n = 0;
    const char *hdrs[DELIVER_HEADERS_MAX];
    const struct deliver_secrets sec = {
        env->opts.secret, env->opts.secret_previous, env->opts.secret_previous_until,
    };
    int rc;

    if (held_back(d)) {
        release_and_finish(d);
        return;
    }
    d->started_ms = time_now_ms();
    rc = deliver_headers_build(d->job, &sec, (long long)(d->started_ms / 1000), &store, offs,
                               &n, &err);
    if (rc < 0) {
        struct log_fields f = job_fields(d);
        f.attempt = d->attempt;
        f.error = err.code;
        log_emit_fields(LOG_WARN, &f, "cannot sign: %s: %s; dead-lettered", err.code, err.msg);
        dead_letter(d, rc == HK_EINVAL ? 'I' : 'E', rc == HK_EINVAL ? 0 : d->attempt,
                    err.code, err.msg, rc == HK_EINVAL ? "invalid" : "not_retryable", 0);
        buf_free(&store);
        release_and_finish(d);
        return;
    }
    for (size_t i = 0; i < n; i++)
        hdrs[i] = store.data + offs[i];
    struct http_request_spec spec = {
        .url = d->job->url,
        .origin = d->job->origin,
        .body = d->job->body,
        .body_len = d->job->body_len,
        .headers = hdrs,
        .nheaders = n,
        .user_agent = env->opts.user_agent,
        .timeout_ms = d->job->timeout_ms ? d->job->timeout_ms : env->opts.timeout_ms,
    };
    if (http_post(env->http, &spec, on_response, d) < 0) {
        /* libcurl could not even start: treat it as a failed attempt, so
         * the retry policy applies. */
        struct http_result res = { .reason = "http_error", .error = "could not start the request",
                                   .retry_after_s = -1 };
        stats_attempt(env->stats, STATS_OTHER, 0);
        deliver_fail(d, &res);
        release_and_finish(d);
    }
    buf_free(&store);
}

/* Back to Redis, on its origin's parked list, without an attempt. */
static void park_as(struct delivery *d, const char *why)
{
    struct log_fields f = job_fields(d);

    log_emit_fields(LOG_DEBUG, &f, "%s %s; job parked", d->job->origin, why);
    outbox_park(d->env->outbox, d->seq, d->job->id, d->job->origin);
    stats_outcome(d->env->stats, STATS_PARKED);
}

static void park(struct delivery *d)
{
    park_as(d, "is saturated");
    finished(d);
}

/* Whether the job's origin takes no attempt now: its breaker is open (the
 * job is parked, unless it is the probe) or it is disabled (the job is
 * dead). The outcome is recorded; the caller finishes the delivery. */
static int held_back(struct delivery *d)
{
    switch (health_state(d->env->health, d->job->origin)) {
    case ENDPOINT_CLOSED:
        return 0;
    case ENDPOINT_OPEN:
    case ENDPOINT_HALF_OPEN:
        if (d->probe || (d->probe = health_take_probe(d->env->health, d->job->origin)))
            return 0;
        park_as(d, "has its circuit breaker open");
        return 1;
    case ENDPOINT_DISABLED:
        /* Dead is for good: said only on a mirror that is current. The
         * job that brought word of a change (an operator's enable, then a
         * replay) waits parked until the mirror is read again. */
        if (!health_current(d->env->health)) {
            park_as(d, "was disabled when last heard of");
            return 1;
        }
        break;
    }
    struct log_fields f = job_fields(d);
    log_emit_fields(LOG_WARN, &f, "%s is disabled; dead-lettered (endpoint_disabled)",
                    d->job->origin);
    /* Dead without this attempt: the attempts before it count. */
    dead_letter(d, 'E', d->attempt - 1, "endpoint_disabled", "the endpoint is disabled (hookd "
                "endpoints enable ORIGIN, then hookd dlq replay)", "endpoint_disabled", 0);
    return 1;
}

/* How long an event for an unregistered batch waits before its next try:
 * 250 ms doubling to 5 s (the batch.create is usually a moment behind),
 * never past the end of the wait. */
static long unknown_batch_delay(int attempt, long remaining_ms)
{
    long delay = 250L << (attempt < 6 ? attempt - 1 : 5);

    if (delay > 5000)
        delay = 5000;
    return delay < remaining_ms ? delay : remaining_ms + 1;
}

/* A typed job: nothing to POST. The RECORD script applies it (event.h),
 * with the fallback for a batch it does not know (yet): a retry envelope
 * while unknown_batch_wait lasts, then a dead-letter entry. */
static void apply_event(struct delivery *d)
{
    const struct deliver_opts *opts = &d->env->opts;
    const struct event *ev = d->job->typed;
    struct buf args = BUF_INIT, fallback = BUF_INIT;
    char label[2 * EVENT_ID_MAX + 32];
    int64_t now = time_now_ms();
    long waited = (long)(now - d->first_attempt_ms);
    struct event_apply ap = {
        .id = d->job->id, .now_ms = now, .batch_ttl_ms = opts->batch_ttl_ms,
        .dedupe_window_ms = opts->dedupe_window_ms, .fallback = 'D', .delay_ms = -1,
    };

    /* Logs name the job by its id, or else by what it reports. */
    if (d->job->id != NULL)
        snprintf(label, sizeof(label), "%s", d->job->id);
    else
        snprintf(label, sizeof(label), "%s:%s%s%s", event_type_name(ev->type), ev->batch_id,
                 ev->call_id ? ":" : "", ev->call_id ? ev->call_id : "");
    if (ev->type != EVENT_BATCH_CREATE) {
        if (waited < opts->unknown_batch_wait_ms) {
            ap.fallback = 'R';
            ap.delay_ms = unknown_batch_delay(d->attempt, opts->unknown_batch_wait_ms - waited);
            envelope(d, 0, "unknown_batch", &fallback);
        } else {
            char error[256];
            snprintf(error, sizeof(error), "batch %s is not registered (waited %ld ms for its "
                     "batch.create)", ev->batch_id, waited);
            dead_entry(d, d->attempt, "unknown_batch", error, "unknown_batch_wait", 0,
                       &fallback);
            /* Logged here, though the script decides: a batch registered
             * meanwhile leaves the entry unused. */
            log_emit(LOG_WARN, label, "%s; dead-lettered as unknown_batch unless it is there "
                     "now", error);
        }
    }
    event_encode(ev, &ap, &args);
    log_emit(LOG_DEBUG, label, "applying (try %d)", d->attempt);
    outbox_event(d->env->outbox, d->seq, label, args.data, args.len, fallback.data, fallback.len,
                 ap.delay_ms);
    buf_free(&args);
    buf_free(&fallback);
}

static void admit(struct delivery *d);
static void on_slot(struct throttle_req *req, enum throttle_verdict v);
static void on_accepted(struct dedupe_req *req, enum dedupe_verdict v);

void deliver_start(struct deliver_env *env, uint64_t seq, const char *raw, size_t len)
{
    struct delivery *d = xcalloc(1, sizeof(*d));
    struct hk_err err = { "", "" };
    int rc;

    d->env = env;
    d->seq = seq;
    d->started_ms = time_now_ms();
    rc = job_decode(raw, len, &env->limits, &d->job, &err);
    d->attempt = d->job->attempts + 1;
    d->first_attempt_ms = d->job->first_attempt_ms ? d->job->first_attempt_ms : d->started_ms;
    d->max_attempts = d->job->max_attempts ? d->job->max_attempts : env->opts.retry.nschedule + 1;
    if (rc < 0) {
        log_emit(LOG_WARN, d->job->id ? d->job->id : "-", "invalid job: %s: %s; dead-lettered",
                 err.code, err.msg);
        dead_letter(d, 'I', 0, err.code, err.msg, "invalid", 0);
        finished(d);
        return;
    }
    if (d->job->typed != NULL) {
        apply_event(d);
        finished(d);
        return;
    }
    /* Only a producer's own id is checked, at the first attempt, and not
     * for a job hookd itself put back after accepting it. */
    if (env->dedupe != NULL && d->job->id != NULL && d->job->attempts == 0 &&
        !d->job->accepted) {
        d->accept.seq = seq;
        dedupe_key(d->job->id, d->job->url, d->accept.key);
        d->accept.cb = on_accepted;
        dedupe_check(env->dedupe, &d->accept);
        return;
    }
    job_ensure_id(d->job);
    admit(d);
}

static void on_accepted(struct dedupe_req *req, enum dedupe_verdict v)
{
    struct delivery *d = (struct delivery *)((char *)req - offsetof(struct delivery, accept));

    switch (v) {
    case DEDUPE_NEW:
        admit(d);
        return;
    case DEDUPE_UNCHECKED:
        log_emit(LOG_WARN, d->job->id, "cannot check for a duplicate: its dedupe key %s "
                 "holds another type in Redis; delivering it unchecked", d->accept.key);
        admit(d);
        return;
    case DEDUPE_DUPLICATE:
        log_emit(LOG_INFO, d->job->id, "id already accepted for %s within dedupe_window; "
                 "counted as duplicate, not delivered", d->job->url);
        stats_outcome(d->env->stats, STATS_DUPLICATE);
        break;
    case DEDUPE_GONE:
        log_emit(LOG_INFO, d->job->id, "requeued while its id was checked; left to the "
                 "requeued copy");
        break;
    case DEDUPE_CANCELLED:
        log_emit(LOG_INFO, d->job->id, "shutting down before its id was checked; job will be "
                 "requeued");
        break;
    }
    finished(d);
}

/* Admit a decoded job for its origin: send it, let it wait, or park it. */
static void admit(struct delivery *d)
{
    struct deliver_env *env = d->env;
    struct hosts_waiter *w;
    int64_t now = time_mono_ms();

    if (env->http == NULL) {    /* requests were cut by a shutdown meanwhile */
        drop(d, "shutting down before its attempt");
        return;
    }
    if (held_back(d)) {
        finished(d);
        return;
    }
    /* A rate-limited origin: wait for a slot first (on_slot), or park
     * when a second of its rate waits already. */
    if (env->throttle != NULL && !d->throttled) {
        d->slot.cb = on_slot;
        int rc = throttle_wait(env->throttle, d->job->origin, d->job->rate_limit, &d->slot);
        if (rc == -EAGAIN) {
            park_as(d, "is at its rate limit");
            finished(d);
        }
        if (rc != -ENOENT)
            return;
    }
    switch (hosts_admit(env->hosts, d->job->origin, &d->waiter, now, &d->host)) {
    case HOSTS_GO:
        send_request(d);
        break;
    case HOSTS_WAIT:
        break;
    case HOSTS_PARK:
        /* A stalled origin gives back its waiting jobs too: they would
         * wait for it as long as the job just parked. */
        while ((w = hosts_take_stalled(env->hosts, d->host, now)) != NULL)
            park(of_waiter(w));
        park(d);
        break;
    }
}

static void on_slot(struct throttle_req *req, enum throttle_verdict v)
{
    struct delivery *d = (struct delivery *)((char *)req - offsetof(struct delivery, slot));

    if (v == THROTTLE_CANCELLED) {
        drop(d, "shutting down while it waited for its rate limit");
        return;
    }
    d->throttled = 1;
    admit(d);
}

void deliver_park_stalled(struct deliver_env *env)
{
    struct hosts_waiter *w;
    int64_t now = time_mono_ms();

    while ((w = hosts_take_any_stalled(env->hosts, now)) != NULL)
        park(of_waiter(w));
}

void deliver_drop_waiting(struct deliver_env *env)
{
    struct hosts_waiter *w;

    while ((w = hosts_take_any_waiting(env->hosts)) != NULL)
        drop(of_waiter(w), "shutting down before its attempt");
}
