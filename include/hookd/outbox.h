/* outbox.h -- outcomes waiting to be recorded in Redis.
 *
 * Delivery outcomes are recorded asynchronously and in batches: every
 * outcome reached during one loop iteration goes out in one RECORD script
 * call (queue.h). An outcome stays in the outbox until Redis has confirmed
 * it, so an outcome reached while Redis is unreachable is recorded once
 * Redis is back, not forgotten. RECORD is idempotent, which makes resending
 * after a lost reply safe. Attempt-log entries ride along the same way, one
 * XADD each, pipelined. */
#ifndef HOOKD_OUTBOX_H
#define HOOKD_OUTBOX_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "hookd/queue.h"

struct outbox_record;
struct outbox_log;

struct outbox {
    struct redis_conn *conn;        /* borrowed */
    const struct queue_keys *keys;  /* borrowed */
    size_t dead_max;
    size_t attempt_log_max;
    struct outbox_record *head, *tail;  /* owned; not yet sent */
    struct outbox_log *logs, *logs_tail; /* owned; not yet sent */
    size_t queued;                  /* items not yet sent */
    size_t unconfirmed;             /* items sent, reply not yet seen */
    uv_timer_t flush_timer;         /* next-iteration flush, or retry pause */
    int flush_scheduled;
    char last_error[256];           /* last error logged, "" when fine */
    void (*on_idle)(void *arg);     /* everything confirmed */
    /* retries were recorded; the earliest is due in delay_ms */
    void (*on_retry_recorded)(void *arg, long delay_ms);
    void *arg;
};

void outbox_init(struct outbox *o, uv_loop_t *loop, struct redis_conn *conn,
                 const struct queue_keys *keys, size_t dead_max, size_t attempt_log_max);

/* Delivered. */
void outbox_ack(struct outbox *o, uint64_t seq);

/* Failed, try again in delay_ms: envelope is the sorted-set member (copied). */
void outbox_retry(struct outbox *o, uint64_t seq, const char *envelope, size_t len,
                  long delay_ms);

/* Not attempted: its origin is saturated. The job goes back to Redis, on
 * origin's parked list (origin copied). */
void outbox_park(struct outbox *o, uint64_t seq, const char *origin);

/* Dead-lettered. kind: 'D' after a failed attempt, 'I' invalid job, 'E'
 * neither. entry (JSON) and secret (the job's own, NULL if none) are
 * copied; the secret is kept apart from the entry, for replay. */
void outbox_dead(struct outbox *o, uint64_t seq, char kind, const char *entry, size_t len,
                 const char *secret);

/* A typed job, applied in Redis (event.h): args is event_encode()'s map,
 * fallback the retry envelope (retry_delay_ms >= 0) or dead entry
 * (retry_delay_ms = -1) for when its batch is not registered; both copied. */
void outbox_event(struct outbox *o, uint64_t seq, const char *args, size_t len,
                  const char *fallback, size_t flen, long retry_delay_ms);

/* One attempt-log entry: nfields field/value strings (copied). */
void outbox_log(struct outbox *o, const char **fields, const size_t *lens, size_t nfields);

/* Try to send what is queued now (also called when the connection is up). */
void outbox_flush(struct outbox *o);

/* Items not yet confirmed by Redis (queued + sent). */
size_t outbox_pending(const struct outbox *o);

/* Release memory and close the timer. Outcomes still pending are dropped:
 * their jobs are still in the in-flight hash and will be redelivered. */
void outbox_close(struct outbox *o);

#endif
