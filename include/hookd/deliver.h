/* deliver.h -- one delivery attempt: decode, sign, POST, classify, record.
 *
 * deliver.c decides each job's fate and is where that fate is logged, with
 * the job id. Outcomes are recorded through the outbox; finished deliveries
 * (whatever the outcome) are reported to the owner through on_finished so it
 * can take more work.
 *
 * Callback rule: on_finished is never called from inside a deliver_* call
 * (an invalid job finishes at once, but is reported from the loop, after
 * the call returned), so the owner may start deliveries in a loop without
 * its own state changing underneath it. Each delivery is counted in exactly
 * one on_finished call, unless deliver_env_close came first. */
#ifndef HOOKD_DELIVER_H
#define HOOKD_DELIVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "hookd/backoff.h"
#include "hookd/dedupe.h"
#include "hookd/health.h"
#include "hookd/hosts.h"
#include "hookd/http.h"
#include "hookd/job.h"
#include "hookd/outbox.h"
#include "hookd/stats_shm.h"
#include "hookd/throttle.h"

/* The settings deliver reads, filled by its owner (libcurl's style: the
 * module states what it needs instead of reading the whole config). The
 * strings are borrowed and must outlive every delivery started with them. */
struct deliver_opts {
    struct backoff_policy retry;    /* retry_schedule, retry_jitter, ... (copied) */
    int log_failures;               /* failed attempts go to the attempts stream */
    int log_successes;              /* and so do successful ones */
    int log_deliveries;             /* successes logged at info, not debug */
    const char *secret;             /* borrowed; default signing secret */
    const char *secret_previous;    /* borrowed; the secret rotated out, or NULL */
    long long secret_previous_until;    /* unix seconds it stays valid; 0 = forever */
    const char *user_agent;         /* borrowed */
    long timeout_ms;                /* per attempt, unless the job sets its own */
    long batch_ttl_ms;              /* lifetime of a Dialgen batch's records */
    long unknown_batch_wait_ms;     /* retry events for unknown batches this long */
    long dedupe_window_ms;          /* typed jobs' ids are remembered this long */
};

struct deliver_env {
    struct deliver_opts opts;
    struct http_client *http;       /* borrowed; NULL once a shutdown closed it */
    struct outbox *outbox;          /* borrowed */
    struct hosts *hosts;            /* borrowed; per-origin admission */
    struct dedupe *dedupe;          /* borrowed; NULL when dedupe_window is 0 */
    struct health *health;          /* borrowed; endpoint breakers */
    struct throttle *throttle;      /* borrowed; rate limits, or NULL */
    const char *wid;                /* borrowed */
    struct job_limits limits;
    /* n deliveries done since the last call: n slots are free. */
    void (*on_finished)(void *arg, unsigned n);
    void *arg;
    struct stats_slot *stats;       /* borrowed; shared counters (stats_shm.h), or NULL */
    /* Private (deliver_env_init): reports finished deliveries from the loop. */
    uv_timer_t notify;
    unsigned nfinished;             /* finished, not reported yet */
    int closed;
};

/* Set up env's handle on loop, once the fields above are filled. */
void deliver_env_init(struct deliver_env *env, uv_loop_t *loop);

/* Close env's handle (closed with cb): deliveries finishing from now on
 * are freed but not reported. Call before closing the http client, whose
 * cut requests finish deliveries. */
void deliver_env_close(struct deliver_env *env, uv_close_cb cb);

/* Deliver the job stored under seq in the worker's in-flight hash. raw is
 * copied. The delivery is reported through env->on_finished, later, from
 * the loop (see the callback rule above). */
void deliver_start(struct deliver_env *env, uint64_t seq, const char *raw, size_t len);

/* Park the jobs waiting for an origin that has stopped answering (call
 * every fraction of HOSTS_STALL_MS). */
void deliver_park_stalled(struct deliver_env *env);

/* Shutdown: give up every delivery still waiting for its origin, without an
 * outcome (the jobs stay in the in-flight hash and are requeued). */
void deliver_drop_waiting(struct deliver_env *env);

/* What a dead-letter entry says about the job's end. */
struct dead_info {
    const char *dead_id;        /* unique: "<wid>:<seq>" */
    const char *id;             /* job id, NULL if unknown */
    const char *reason;         /* machine-readable */
    const char *error;          /* for people */
    const char *gave_up;        /* "invalid", "not_retryable", "attempts_exhausted",
                                   "unknown_batch_wait" */
    long status;                /* last HTTP status, 0 = none */
    int attempts;
    int64_t first_ms, last_ms;
    const char *wid;
};

/* Build the dead-letter entry for a job (JSON object, appended to out): the
 * info above and the job itself, its secret removed. */
void deliver_dead_entry(struct buf *out, const struct dead_info *info, const char *raw,
                        size_t raw_len, const struct job_limits *limits);

#endif
