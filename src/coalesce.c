/* coalesce.c -- requests gathered into few Redis calls, retried in order
 * (coalesce.h). */
#include <stdlib.h>
#include <string.h>

#include "hookd/coalesce.h"
#include "hookd/mem.h"

/* One call in flight: what its reply settles. */
struct sent {
    struct coalesce *q;
    struct coalesce_item *first;    /* owned; the call's items, in order */
    size_t n;
};

static void on_timer(uv_timer_t *t)
{
    struct coalesce *q = t->data;

    q->scheduled = 0;
    coalesce_flush(q);
}

/* Send after delay_ms. A zero delay does not cut short a retry pause
 * already running: the pause is for whatever Redis is refusing, and new
 * items would only meet the same refusal. */
static void schedule(struct coalesce *q, uint64_t delay_ms)
{
    if (q->scheduled && delay_ms == 0)
        return;
    q->scheduled = 1;
    uv_timer_start(&q->timer, on_timer, delay_ms, 0);
}

int coalesce_init(struct coalesce *q, uv_loop_t *loop, struct redis_conn *conn,
                  const struct coalesce_ops *ops, void *arg, uint64_t retry_ms)
{
    int rc;

    memset(q, 0, sizeof(*q));
    q->conn = conn;
    q->ops = ops;
    q->arg = arg;
    q->retry_ms = retry_ms;
    if ((rc = uv_timer_init(loop, &q->timer)) < 0)
        return rc;
    q->timer.data = q;
    return 0;
}

void coalesce_add(struct coalesce *q, struct coalesce_item *item)
{
    item->next = NULL;
    if (q->tail != NULL)
        q->tail->next = item;
    else
        q->head = item;
    q->tail = item;
    q->queued++;
    schedule(q, 0);
}

/* Failed calls, in the order their replies came, which is the order they
 * were sent, go in front of the items waiting. Done when sending (and on
 * close), not when each reply comes: putting each failed call at the front
 * as it fails would reverse calls that fail one after another. */
static void splice_retries(struct coalesce *q)
{
    if (q->retry == NULL)
        return;
    q->retry_tail->next = q->head;
    if (q->tail == NULL)
        q->tail = q->retry_tail;
    q->head = q->retry;
    q->retry = q->retry_tail = NULL;
}

static void on_reply(struct redis_conn *c, struct redisReply *reply, void *arg)
{
    struct sent *s = arg;
    struct coalesce *q = s->q;
    struct coalesce_item *first = s->first, *last = first;
    size_t n = s->n;

    (void)c;
    free(s);
    q->in_flight -= n;
    if (q->closing) {
        q->ops->drop(q->arg, first);
        return;
    }
    if (q->ops->reply(q->arg, reply, first, n) == COALESCE_RETRY) {
        while (last->next != NULL)
            last = last->next;
        if (q->retry_tail != NULL)
            q->retry_tail->next = first;
        else
            q->retry = first;
        q->retry_tail = last;
        q->queued += n;
        /* A lost connection: sent again once it is back (flush waits for
         * it); an error reply: after the pause. */
        schedule(q, reply != NULL ? q->retry_ms : 0);
    }
    if (q->ops->settled != NULL)
        q->ops->settled(q->arg);
}

/* One call for the items at the head of the queue. */
static int send_one(struct coalesce *q)
{
    struct sent *s = xmalloc(sizeof(*s));   /* freed in on_reply */
    struct coalesce_item *last = q->head;
    size_t n = 0;

    s->q = q;
    s->first = q->head;
    if (q->ops->send(q->arg, q->head, &n, on_reply, s) < 0) {
        free(s);
        return -1;
    }
    for (size_t i = 1; i < n; i++)
        last = last->next;
    q->head = last->next;
    if (q->head == NULL)
        q->tail = NULL;
    last->next = NULL;
    s->n = n;
    q->queued -= n;
    q->in_flight += n;
    return 0;
}

void coalesce_flush(struct coalesce *q)
{
    if (q->closing || !q->conn->up)
        return;     /* the connection's up-callback flushes again */
    splice_retries(q);
    while (q->head != NULL)
        if (send_one(q) < 0)
            return;
}

size_t coalesce_pending(const struct coalesce *q)
{
    return q->queued + q->in_flight;
}

struct coalesce_item *coalesce_close(struct coalesce *q)
{
    struct coalesce_item *waiting;

    splice_retries(q);
    waiting = q->head;
    q->head = q->tail = NULL;
    q->queued = 0;
    q->closing = 1;
    uv_close((uv_handle_t *)&q->timer, NULL);
    return waiting;
}
