/* outbox.h -- outcomes waiting to be recorded in Redis.
 *
 * Delivery outcomes are recorded asynchronously and in batches: every
 * outcome reached during one loop iteration goes out in one RECORD script
 * call (queue.h), at most QUEUE_RECORD_MAX outcomes and OUTBOX_BATCH_BYTES
 * a call. An outcome stays in the outbox until Redis has confirmed it, so an
 * outcome reached while Redis is unreachable is recorded once Redis is back,
 * not forgotten. RECORD is idempotent, which makes resending after a lost
 * reply safe; a failed call is sent again ahead of newer outcomes, in the
 * order first sent (coalesce.h). Attempt-log entries ride along the same
 * way, one XADD each, pipelined.
 *
 * RECORD may refuse single outcomes (a parked list or batch hash clobbered
 * by hand): those are *held*, their jobs still in flight in Redis, and sent
 * again every OUTBOX_RETRY_MS until Redis takes them, while the others go
 * through. Errors are logged here, once per distinct error, with the job
 * id of the outcome concerned.
 *
 * With wait_replicas > 0 (redis_wait_replicas), each RECORD is followed by
 * WAIT on the same connection, and its outcomes count as recorded only once
 * that many replicas have them: a failover cannot then take back an
 * outcome hookd has acted on. Short of them, the call is sent again (RECORD
 * is idempotent) every OUTBOX_RETRY_MS, said once. */
#ifndef HOOKD_OUTBOX_H
#define HOOKD_OUTBOX_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "hookd/coalesce.h"
#include "hookd/queue.h"

#define OUTBOX_RETRY_MS 1000                    /* after an error, before sending again */
#define OUTBOX_WAIT_MS 1000                     /* WAIT's timeout, with wait_replicas */
#define OUTBOX_BATCH_BYTES (16 * 1024 * 1024)   /* argument bytes per RECORD call, at
                                                   least one outcome: well inside Redis's
                                                   1 GiB client query buffer */

struct outbox_record;
struct outbox_log;

struct outbox {
    struct redis_conn *conn;        /* borrowed */
    const struct keys *keys;        /* borrowed */
    size_t dead_max;
    size_t attempt_log_max;
    int wait_replicas;              /* WAIT for this many after each RECORD; 0 = none */
    struct coalesce outcomes;       /* RECORD calls (coalesce.h) */
    struct coalesce attempts;       /* attempt-log XADDs, one item a call */
    struct coalesce_item *held;     /* owned; records RECORD refused, sent again later */
    size_t nheld;                   /* records in held */
    size_t records;                 /* outcomes not yet confirmed: queued,
                                       sent or held */
    uv_timer_t held_timer;          /* sends held records again */
    char last_error[256];           /* last whole-call error logged, "" when fine */
    char last_refusal[256];         /* last outcome refusal logged */
    char last_log_error[256];       /* last attempt-log error logged */
    void (*on_confirmed)(void *arg); /* Redis confirmed some items */
    /* retries were recorded; the earliest is due in delay_ms */
    void (*on_retry_recorded)(void *arg, long delay_ms);
    void *arg;
};

void outbox_init(struct outbox *o, uv_loop_t *loop, struct redis_conn *conn,
                 const struct keys *keys, size_t dead_max, size_t attempt_log_max);

/* Each outcome names its job by id (NULL when it has none; copied), for the
 * log line if Redis refuses it. */

/* Delivered. */
void outbox_ack(struct outbox *o, uint64_t seq, const char *id);

/* Failed, try again in delay_ms: envelope is the sorted-set member (copied). */
void outbox_retry(struct outbox *o, uint64_t seq, const char *id, const char *envelope,
                  size_t len, long delay_ms);

/* Not attempted: its origin is saturated. The job goes back to Redis, on
 * origin's parked list (origin copied). */
void outbox_park(struct outbox *o, uint64_t seq, const char *id, const char *origin);

/* Dead-lettered. kind: 'D' after a failed attempt, 'I' invalid job, 'E'
 * neither. entry (JSON) and aside (what the entry must not show, job.h's
 * job_aside_encode; NULL if nothing) are copied. */
void outbox_dead(struct outbox *o, uint64_t seq, const char *id, char kind, const char *entry,
                 size_t len, const char *aside, size_t aside_len);

/* A typed job, applied in Redis (event.h): args is event_encode()'s map,
 * fallback the retry envelope (retry_delay_ms >= 0) or dead entry
 * (retry_delay_ms = -1) for when its batch is not registered; both copied. */
void outbox_event(struct outbox *o, uint64_t seq, const char *id, const char *args, size_t len,
                  const char *fallback, size_t flen, long retry_delay_ms);

/* One attempt-log entry: nfields field/value strings (copied). */
void outbox_log(struct outbox *o, const char **fields, const size_t *lens, size_t nfields);

/* Try to send what is queued now (also called when the connection is up). */
void outbox_flush(struct outbox *o);

/* Items on their way to Redis (queued or sent, not yet confirmed); held
 * outcomes are not counted. */
size_t outbox_pending(const struct outbox *o);

/* Outcomes not yet confirmed, held ones included: each is a job still in
 * the worker's in-flight hash in Redis. */
size_t outbox_records(const struct outbox *o);

/* Outcomes held after RECORD refused them. */
size_t outbox_held(const struct outbox *o);

/* 1 while RECORD calls fail as a whole (script error, Redis refusing
 * writes): the worker takes no new jobs meanwhile. */
int outbox_failing(const struct outbox *o);

/* Give up the held outcomes (a stopping worker): their jobs stay in the
 * in-flight hash, which the worker's final reclaim requeues. Returns how
 * many were dropped. */
size_t outbox_drop_held(struct outbox *o);

/* Release memory and close the timers. Outcomes still pending are dropped:
 * their jobs are still in the in-flight hash and will be redelivered. */
void outbox_close(struct outbox *o);

#endif
