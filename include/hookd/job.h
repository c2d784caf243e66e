/* job.h -- decoding and validating the jobs producers LPUSH.
 *
 * A job is a JSON object or a msgpack map with the keys
 *   url (required), payload | body | body_base64 (exactly one), id, event,
 *   headers, content_type, secret, secret_previous, secret_previous_until,
 *   timeout_ms, max_attempts, rate_limit.
 * `payload` (any value) is sent as ECMAScript-canonical JSON (see json.h);
 * `body` (string, or msgpack bin) is sent byte-for-byte. Unknown keys are
 * ignored so producers can add their own bookkeeping. A job with a `type`
 * key is a typed job instead (event.h): only `id` and the type's own keys
 * apply, job->typed is set and job->url is NULL. Pure code: no I/O. */
#ifndef HOOKD_JOB_H
#define HOOKD_JOB_H

#include <stddef.h>

#include "hookd/buf.h"
#include "hookd/err.h"

/* Prefixes hookd puts in front of a job it puts back on a queue; 0xc1
 * starts neither JSON nor msgpack, so no producer's job has one. In this
 * order, each at most once (src/lua/lib/marks.lua writes them):
 * - JOB_ACCEPTED_MARK: it may have been accepted for dedupe_window
 *   (dedupe.h) already: requeued from a dead worker, parked, or replayed
 *   from the dead letters;
 * - JOB_CRASHED_MARK "<n>:": it was in flight in n workers that died
 *   (RECLAIM counts them; poison_after of them and it is dead-lettered). */
#define JOB_ACCEPTED_MARK "\xc1" "accepted:"
#define JOB_ACCEPTED_MARK_LEN 10
#define JOB_CRASHED_MARK "\xc1" "crashed:"
#define JOB_CRASHED_MARK_LEN 9

#define JOB_ID_MAX 256
#define JOB_TIMEOUT_MS_MAX 600000   /* 10 minutes per attempt */
#define JOB_MAX_ATTEMPTS_MAX 100
#define JOB_RATE_LIMIT_MAX 1000000    /* deliveries per second to an origin */
#define JOB_HEADERS_MAX 64          /* entries in a job's `headers` */

struct job_header {
    char *name;                 /* owned */
    char *value;                /* owned */
};

struct event;

struct job {
    struct event *typed;        /* owned; a typed job (event.h), else NULL */
    char *id;                   /* owned; NULL when the producer gave none */
    char *url;                  /* owned */
    char *origin;               /* owned; "scheme://host:port" of url */
    char *body;                 /* owned; the exact bytes to POST */
    size_t body_len;
    char *content_type;         /* owned; NULL = application/json */
    char *event;                /* owned; NULL = no x-dialgen-event header */
    char *secret;               /* owned; NULL = the configured default */
    char *secret_previous;      /* owned; being rotated out, or NULL */
    long long secret_previous_until;  /* unix seconds; 0 = while present */
    struct job_header *headers; /* owned array of nheaders */
    size_t nheaders;
    long timeout_ms;            /* 0 = configured default */
    int max_attempts;           /* 0 = configured default */
    long rate_limit;            /* deliveries per second to its origin; 0 = none */
    int accepted;               /* carried JOB_ACCEPTED_MARK: already accepted */
    int crashes;                /* from JOB_CRASHED_MARK: workers that died with it */
    /* From the retry envelope (all 0 for a job straight from a producer): */
    int attempts;               /* attempts already made */
    long long first_attempt_ms; /* wall clock of attempt 1 */
    long last_status;           /* of the last attempt */
    char *last_error;           /* owned; of the last attempt, or NULL */
    /* The producer's job bytes (inside the envelope, if any, without
     * its marks); owned. Set even when decoding fails. */
    char *raw;
    size_t raw_len;
};

struct job_limits {
    size_t max_job_bytes;       /* larger jobs are rejected as "too_large" */
    int max_depth;              /* JSON / msgpack nesting limit */
};

#define JOB_LIMITS_DEFAULT { 1024 * 1024, 64 }

/* The retry envelope: what hookd puts on its own queues for a job that has
 * been attempted. A msgpack map whose first key is "_hookd", holding the
 * producer's job verbatim (bin), its id (so a generated id stays the same
 * on every attempt), the attempts made, the first attempt's time, the last
 * error, and a token unique to this envelope (a sorted-set member must not
 * collide with another job's). Appended to out. */
struct job_envelope {
    const char *id;             /* NULL: none (a typed job without one) */
    int attempts;
    long long first_attempt_ms;
    long last_status;
    const char *last_error;
    const char *token;
};
void job_envelope_encode(const struct job *job, const struct job_envelope *env,
                         struct buf *out);

/* Decode and validate one job (or retry envelope). Always sets *out to a new job that the caller
 * frees with job_free, even on error: then it carries whatever id could be
 * read (for the log line and the dead-letter entry). Returns 0, or HK_EINVAL
 * with a reason code in err->code (invalid_format, invalid_json, invalid_msgpack,
 * invalid_utf8, too_deep, too_large, invalid_job, invalid_type, missing_url,
 * invalid_url, missing_body, invalid_id, invalid_header, reserved_header,
 * invalid_range, invalid_event). */
int job_decode(const char *data, size_t len, const struct job_limits *limits,
               struct job **out, struct hk_err *err);

/* For a dead-letter entry: append to out the job as a canonical JSON
 * object with its `secret` removed, so secrets never reach the dead list.
 * A msgpack job is converted; a bin value that is not UTF-8 is written as
 * "<key>_base64". Returns 0 when written, HK_EINVAL (nothing written) when
 * data is not a well-formed JSON object or msgpack map. */
int job_redact(const char *data, size_t len, const struct job_limits *limits,
               struct buf *out);

/* What a dead-letter entry must not show but a replay needs, kept aside in
 * P:dead:secrets under the entry's dead_id: the job's own secret and
 * secret_previous (job_aside_encode appends them to out and returns 1, or
 * returns 0 and appends nothing when the job has neither), or, for a job
 * dead as worker_crashed, its whole bytes (written by src/lua/reclaim.lua).
 * job_aside_decode reads either form, and the plain secret older versions
 * kept; it fills a (strings owned, free with job_aside_free) and returns 0,
 * or HK_EINVAL for a value it cannot read. */
struct job_aside {
    char *secret;
    char *secret_previous;
    char *raw;                  /* the job's bytes, raw_len long */
    size_t raw_len;
};
int job_aside_encode(const struct job *job, struct buf *out);
int job_aside_decode(const char *data, size_t len, struct job_aside *a);
void job_aside_free(struct job_aside *a);

/* Give the job a fresh random id ("msg_" + 32 hex digits) if it has none. */
void job_ensure_id(struct job *job);

void job_free(struct job *job);

#endif
