/* outbox.h -- outcomes waiting to be recorded in Redis.
 *
 * Delivery outcomes are recorded asynchronously and in batches: every ack
 * made during one loop iteration goes out as one script call. An outcome
 * stays in the outbox until Redis has confirmed it, so an outcome reached
 * while Redis is unreachable is recorded once Redis is back, not forgotten.
 * Every script behind it is idempotent (queue.h), which makes resending
 * after a lost reply safe. */
#ifndef HOOKD_OUTBOX_H
#define HOOKD_OUTBOX_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "hookd/queue.h"

struct dead_item;

struct outbox {
    struct redis_conn *conn;        /* borrowed */
    const struct queue_keys *keys;  /* borrowed */
    size_t dead_max;
    uint64_t *acks;                 /* owned; not yet sent */
    size_t nacks, capacks;
    struct dead_item *dead_head, *dead_tail;  /* owned; not yet sent */
    size_t unconfirmed;             /* outcomes sent, reply not yet seen */
    size_t queued;                  /* outcomes not yet sent */
    uv_timer_t flush_timer;         /* next-iteration flush, or retry pause */
    int flush_scheduled;
    void (*on_idle)(void *arg);     /* everything confirmed */
    void *idle_arg;
};

void outbox_init(struct outbox *o, uv_loop_t *loop, struct redis_conn *conn,
                 const struct queue_keys *keys, size_t dead_max);

/* Record a delivered job. */
void outbox_ack(struct outbox *o, uint64_t seq);

/* Record a dead-lettered job; entry (JSON) is copied. */
void outbox_dead(struct outbox *o, uint64_t seq, const char *entry, size_t len, int invalid);

/* Try to send what is queued now (also called when the connection is up). */
void outbox_flush(struct outbox *o);

/* Outcomes not yet confirmed by Redis (queued + sent). */
size_t outbox_pending(const struct outbox *o);

/* Release memory and close the timer. Outcomes still pending are dropped:
 * their jobs are still in the in-flight hash and will be redelivered. */
void outbox_close(struct outbox *o);

#endif
