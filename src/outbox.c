/* outbox.c -- batched, retried recording of delivery outcomes. */
#include <stdlib.h>
#include <string.h>

#include "hookd/log.h"
#include "hookd/mem.h"
#include "hookd/outbox.h"

#define RETRY_PAUSE_MS 1000   /* after an error reply, before sending again */

struct dead_item {
    struct dead_item *next;
    uint64_t seq;
    int invalid;
    size_t len;
    char entry[];
};

struct ack_batch {
    struct outbox *o;
    size_t n;
    uint64_t seqs[];
};

struct dead_send {
    struct outbox *o;
    struct dead_item *item;
};

static void on_flush_timer(uv_timer_t *t)
{
    struct outbox *o = t->data;

    o->flush_scheduled = 0;
    outbox_flush(o);
}

static void schedule(struct outbox *o, uint64_t delay_ms)
{
    if (o->flush_scheduled && delay_ms == 0)
        return;
    o->flush_scheduled = 1;
    uv_timer_start(&o->flush_timer, on_flush_timer, delay_ms, 0);
}

void outbox_init(struct outbox *o, uv_loop_t *loop, struct redis_conn *conn,
                 const struct queue_keys *keys, size_t dead_max)
{
    memset(o, 0, sizeof(*o));
    o->conn = conn;
    o->keys = keys;
    o->dead_max = dead_max;
    uv_timer_init(loop, &o->flush_timer);
    o->flush_timer.data = o;
}

static void push_acks(struct outbox *o, const uint64_t *seqs, size_t n)
{
    if (o->nacks + n > o->capacks) {
        o->capacks = o->capacks ? o->capacks * 2 : 256;
        while (o->capacks < o->nacks + n)
            o->capacks *= 2;
        o->acks = xrealloc(o->acks, o->capacks * sizeof(uint64_t));
    }
    memcpy(o->acks + o->nacks, seqs, n * sizeof(uint64_t));
    o->nacks += n;
    o->queued += n;
}

static void push_dead(struct outbox *o, struct dead_item *d)
{
    d->next = NULL;
    if (o->dead_tail != NULL)
        o->dead_tail->next = d;
    else
        o->dead_head = d;
    o->dead_tail = d;
    o->queued++;
}

static void check_idle(struct outbox *o)
{
    if (outbox_pending(o) == 0 && o->on_idle != NULL)
        o->on_idle(o->idle_arg);
}

void outbox_ack(struct outbox *o, uint64_t seq)
{
    push_acks(o, &seq, 1);
    schedule(o, 0);
}

void outbox_dead(struct outbox *o, uint64_t seq, const char *entry, size_t len, int invalid)
{
    struct dead_item *d = xmalloc(sizeof(*d) + len + 1);

    d->seq = seq;
    d->invalid = invalid;
    d->len = len;
    memcpy(d->entry, entry, len);
    d->entry[len] = '\0';
    push_dead(o, d);
    schedule(o, 0);
}

static void on_ack_reply(struct redis_conn *c, struct redisReply *reply, void *arg)
{
    struct ack_batch *b = arg;
    struct outbox *o = b->o;

    (void)c;
    o->unconfirmed -= b->n;
    if (redis_reply_is_error(reply)) {
        /* Lost reply or script error: the acks may or may not have landed;
         * the script is idempotent, so send them again later. */
        if (reply != NULL)
            log_error("recording %zu deliveries failed: %s", b->n,
                      redis_reply_str(reply, NULL));
        push_acks(o, b->seqs, b->n);
        schedule(o, reply != NULL ? RETRY_PAUSE_MS : 0);
    }
    free(b);
    check_idle(o);
}

static void on_dead_reply(struct redis_conn *c, struct redisReply *reply, void *arg)
{
    struct dead_send *s = arg;
    struct outbox *o = s->o;

    (void)c;
    o->unconfirmed--;
    if (redis_reply_is_error(reply)) {
        if (reply != NULL)
            log_error("dead-lettering failed: %s", redis_reply_str(reply, NULL));
        push_dead(o, s->item);
        schedule(o, reply != NULL ? RETRY_PAUSE_MS : 0);
    } else {
        free(s->item);
    }
    free(s);
    check_idle(o);
}

void outbox_flush(struct outbox *o)
{
    if (!o->conn->up)
        return;     /* the connection's up-callback flushes again */
    while (o->nacks > 0) {
        size_t n = o->nacks < QUEUE_ACK_MAX ? o->nacks : QUEUE_ACK_MAX;
        struct ack_batch *b = xmalloc(sizeof(*b) + n * sizeof(uint64_t));
        b->o = o;
        b->n = n;
        memcpy(b->seqs, o->acks + o->nacks - n, n * sizeof(uint64_t));
        if (queue_ack(o->conn, o->keys, b->seqs, n, on_ack_reply, b) < 0) {
            free(b);
            return;
        }
        o->nacks -= n;
        o->queued -= n;
        o->unconfirmed += n;
    }
    while (o->dead_head != NULL) {
        struct dead_item *d = o->dead_head;
        struct dead_send *s = xmalloc(sizeof(*s));
        s->o = o;
        s->item = d;
        if (queue_dead(o->conn, o->keys, d->seq, d->entry, d->len, d->invalid, o->dead_max,
                       on_dead_reply, s) < 0) {
            free(s);
            return;
        }
        o->dead_head = d->next;
        if (o->dead_head == NULL)
            o->dead_tail = NULL;
        o->queued--;
        o->unconfirmed++;
    }
}

size_t outbox_pending(const struct outbox *o)
{
    return o->queued + o->unconfirmed;
}

void outbox_close(struct outbox *o)
{
    struct dead_item *d, *next;

    for (d = o->dead_head; d != NULL; d = next) {
        next = d->next;
        free(d);
    }
    o->dead_head = o->dead_tail = NULL;
    free(o->acks);
    o->acks = NULL;
    o->nacks = o->queued = 0;
    uv_close((uv_handle_t *)&o->flush_timer, NULL);
}
