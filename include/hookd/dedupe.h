/* dedupe.h -- idempotent enqueue: is this job id new within dedupe_window?
 *
 * Before its first attempt, a job that carries its own id is *accepted* in
 * Redis by the ACCEPT script (queue.h): the first job with an id within the
 * window wins; a later one with the same id is recorded as a duplicate
 * (removed from flight, counted) and never delivered. Checks reached in one
 * loop iteration go to Redis as one script call, on the ack connection.
 *
 * A job hookd puts back after accepting it (a dead worker's jobs requeued,
 * a job parked, a dead letter replayed) carries JOB_ACCEPTED_MARK (job.h)
 * and is not checked again: it is the accepted copy, not a duplicate. */
#ifndef HOOKD_DEDUPE_H
#define HOOKD_DEDUPE_H

#include <stdint.h>
#include <uv.h>

#include "hookd/queue.h"

enum dedupe_verdict {
    DEDUPE_NEW,         /* accepted: deliver it */
    DEDUPE_DUPLICATE,   /* recorded as a duplicate in Redis: drop it */
    DEDUPE_GONE,        /* no longer this worker's (requeued meanwhile): drop it */
    DEDUPE_CANCELLED,   /* the worker is closing: drop it (it stays in flight) */
};

struct dedupe_req;
typedef void (*dedupe_cb)(struct dedupe_req *req, enum dedupe_verdict v);

/* One check; embedded in the caller's delivery. */
struct dedupe_req {
    struct dedupe_req *next;    /* internal */
    uint64_t seq;               /* the job's seq in the in-flight hash */
    const char *id;             /* borrowed until cb */
    dedupe_cb cb;
};

struct dedupe {
    struct redis_conn *conn;        /* borrowed */
    const struct queue_keys *keys;  /* borrowed */
    long window_ms;
    struct dedupe_req *head, *tail; /* queued, not yet sent */
    uv_timer_t timer;               /* next-iteration send, or retry pause */
    int scheduled;
    int closing;
};

void dedupe_init(struct dedupe *d, uv_loop_t *loop, struct redis_conn *conn,
                 const struct queue_keys *keys, long window_ms);

/* Check req->id; req->cb fires exactly once, later (never from inside this
 * call). A lost reply is asked again (ACCEPT is idempotent per seq). */
void dedupe_check(struct dedupe *d, struct dedupe_req *req);

/* Send what is queued (also called when the connection comes back). */
void dedupe_flush(struct dedupe *d);

/* Shutdown: every queued check gets DEDUPE_CANCELLED now, every sent one
 * when its reply (or the connection's end) comes. Closes the timer. */
void dedupe_close(struct dedupe *d);

#endif
