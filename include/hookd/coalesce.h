/* coalesce.h -- requests gathered into few Redis calls, sent when the
 * connection is up, sent again after a failure.
 *
 * The outbox (outcomes, attempt-log entries) and the dedupe checks share
 * this machine; each brings only what is its own: how its items become one
 * call (the script and its arguments) and what a reply means for them.
 * The name says what it does and keeps clear of "batch", which in hookd
 * means a Dialgen batch (event.h, P:batch:<id>).
 *
 * Items added during one loop iteration wait for a zero timer, so they go
 * out together at the start of the next one, cut into calls by the user's
 * send function. Nothing is sent while the connection is down; the owner
 * calls coalesce_flush() when it comes up.
 *
 * Ordering rule: items go out in the order they were added. A call that
 * fails goes back in front of everything still waiting, and calls that
 * fail one after another go back in the order they were sent (Redis
 * answers a connection's calls in order, and a lost connection fails them
 * in order), so a retried item never falls behind an item added after it.
 * Retries after an error reply wait retry_ms (the cause, a clobbered key
 * or Redis refusing writes, does not go away at once); after a lost
 * connection they go as soon as it is back.
 *
 * Callback rule: coalesce_add() never calls anything; the user's reply
 * function runs once per call sent, from the Redis reply (or the
 * connection's end), never from inside a coalesce function. */
#ifndef HOOKD_COALESCE_H
#define HOOKD_COALESCE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "hookd/redis.h"

/* Embedded in the user's item; the user finds its item from it with
 * offsetof. */
struct coalesce_item {
    struct coalesce_item *next;     /* internal while queued or sent */
};

enum coalesce_verdict {
    COALESCE_DONE,      /* the user keeps the items (finished, or held elsewhere) */
    COALESCE_RETRY,     /* send them again (ordering rule above) */
};

struct coalesce_ops {
    /* Issue one call for the items from first on, in queue order (follow
     * ->next, at most to NULL): take n >= 1 of them (set *n) and pass cb and
     * cbarg to the queue.h function. Return 0 (cb fires once, later), or a
     * negative code when nothing was sent (the connection is down; cb never
     * fires), which ends this flush. */
    int (*send)(void *arg, struct coalesce_item *first, size_t *n, redis_reply_cb cb,
                void *cbarg);
    /* The reply to a call of n items, first..NULL (reply borrowed; NULL when
     * the connection was lost). COALESCE_DONE hands the items to the user;
     * COALESCE_RETRY keeps them queued. */
    enum coalesce_verdict (*reply)(void *arg, struct redisReply *reply,
                                   struct coalesce_item *first, size_t n);
    /* A call whose reply came after coalesce_close: the items are handed
     * back to the user, unanswered. */
    void (*drop)(void *arg, struct coalesce_item *first);
    /* Optional: after each reply, once coalesce_pending() counts it right. */
    void (*settled)(void *arg);
};

struct coalesce {
    struct redis_conn *conn;            /* borrowed */
    const struct coalesce_ops *ops;     /* borrowed */
    void *arg;                          /* for the ops */
    uint64_t retry_ms;                  /* pause after an error reply */
    struct coalesce_item *head, *tail;  /* owned; waiting, in order */
    struct coalesce_item *retry, *retry_tail; /* owned; failed calls, in the order
                                           sent: they go before head */
    size_t queued;                      /* items waiting (head and retry) */
    size_t in_flight;                   /* items sent, reply not yet seen */
    uv_timer_t timer;                   /* next-iteration send, or retry pause */
    int scheduled;                      /* timer running */
    int closing;
};

/* Ready q on loop; nothing is sent before the first coalesce_add. ops and
 * conn must outlive q. Returns 0 or a negative libuv code. */
int coalesce_init(struct coalesce *q, uv_loop_t *loop, struct redis_conn *conn,
                  const struct coalesce_ops *ops, void *arg, uint64_t retry_ms);

/* Queue item (owned by q until ops->reply returns COALESCE_DONE for it, or
 * ops->drop or coalesce_close hands it back). Sent on the next loop
 * iteration, or after the retry pause if one is running. */
void coalesce_add(struct coalesce *q, struct coalesce_item *item);

/* Send everything waiting now, retries first, if the connection is up
 * (also what the owner calls when it comes up). */
void coalesce_flush(struct coalesce *q);

/* Items added and not yet answered: waiting or sent. */
size_t coalesce_pending(const struct coalesce *q);

/* Stop: returns the items not yet sent, in order (the caller owns them);
 * calls in flight go to ops->drop when their reply comes. Closes the timer:
 * q must stay valid until the loop has run its close callback and every
 * call in flight has had its reply (redis_close fails them). */
struct coalesce_item *coalesce_close(struct coalesce *q);

#endif
