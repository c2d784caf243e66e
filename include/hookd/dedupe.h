/* dedupe.h -- idempotent enqueue: is this job new within dedupe_window?
 *
 * Before its first attempt, a job that carries its own id is *accepted* in
 * Redis by the ACCEPT script (queue.h), keyed by its id and its
 * destination: the first job with an id for a URL within the window wins; a
 * later one with the same id and URL is recorded as a duplicate (removed
 * from flight, counted) and never delivered. The same id sent to other URLs
 * is not a duplicate: that is one event fanned out to several endpoints,
 * each delivered with the same webhook-id (Standard Webhooks' use of it).
 * Checks reached in one loop iteration go to Redis as one script call, on
 * the ack connection (coalesce.h: a failed call is asked again in order).
 *
 * A job hookd puts back after accepting it (a dead worker's jobs requeued,
 * a job parked, a dead letter replayed) carries JOB_ACCEPTED_MARK (job.h)
 * and is not checked again: it is the accepted copy, not a duplicate. */
#ifndef HOOKD_DEDUPE_H
#define HOOKD_DEDUPE_H

#include <stdint.h>
#include <uv.h>

#include "hookd/coalesce.h"
#include "hookd/queue.h"

enum dedupe_verdict {
    DEDUPE_NEW,         /* accepted: deliver it */
    DEDUPE_DUPLICATE,   /* recorded as a duplicate in Redis: drop it */
    DEDUPE_GONE,        /* no longer this worker's (requeued meanwhile): drop it */
    DEDUPE_CANCELLED,   /* the worker is closing: drop it (it stays in flight) */
    DEDUPE_UNCHECKED,   /* its P:seen key holds another type: deliver it unchecked */
};

/* The key of (id, url) under P:seen: 32 hex digits of SHA-256(id NUL url),
 * so a key has the same size whatever the URL's length. */
#define DEDUPE_KEY_LEN 32
void dedupe_key(const char *id, const char *url, char out[DEDUPE_KEY_LEN + 1]);

struct dedupe_req;
typedef void (*dedupe_cb)(struct dedupe_req *req, enum dedupe_verdict v);

/* One check; embedded in the caller's delivery. */
struct dedupe_req {
    struct coalesce_item link;  /* internal */
    uint64_t seq;               /* the job's seq in the in-flight hash */
    char key[DEDUPE_KEY_LEN + 1];   /* dedupe_key() of the job */
    dedupe_cb cb;
};

struct dedupe {
    struct redis_conn *conn;        /* borrowed */
    const struct keys *keys;  /* borrowed */
    long window_ms;
    struct coalesce checks;         /* queued and sent checks (coalesce.h) */
    char last_error[256];           /* last error logged, "" when fine */
};

void dedupe_init(struct dedupe *d, uv_loop_t *loop, struct redis_conn *conn,
                 const struct keys *keys, long window_ms);

/* Check req->key; req->cb fires exactly once, later (never from inside this
 * call). A lost reply is asked again (ACCEPT is idempotent per seq). */
void dedupe_check(struct dedupe *d, struct dedupe_req *req);

/* Send what is queued (also called when the connection comes back). */
void dedupe_flush(struct dedupe *d);

/* Shutdown: every queued check gets DEDUPE_CANCELLED now, every sent one
 * when its reply (or the connection's end) comes. Closes the timer. */
void dedupe_close(struct dedupe *d);

#endif
