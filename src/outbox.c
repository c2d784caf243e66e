/* outbox.c -- batched, retried recording of delivery outcomes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/log.h"
#include "hookd/mem.h"
#include "hookd/outbox.h"

#define RETRY_PAUSE_MS 1000   /* after an error reply, before sending again */

struct outbox_record {
    struct outbox_record *next;
    char kind;                  /* A, R, D, I, E, K, X (see RECORD_LUA) */
    char seq[24];
    char *a, *b;                /* owned (NULL = "") */
    size_t alen, blen;
    long delay_ms;              /* R, and X when its fallback is a retry; else -1 */
};

struct outbox_log {
    struct outbox_log *next;
    struct outbox *owner;
    size_t n;
    char **f;                   /* owned, n strings */
    size_t *l;
};

struct record_batch {
    struct outbox *o;
    struct outbox_record *head; /* owned while in flight */
    size_t n;
    long min_delay;             /* earliest retry in the batch, -1 if none */
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
                 const struct queue_keys *keys, size_t dead_max, size_t attempt_log_max)
{
    memset(o, 0, sizeof(*o));
    o->conn = conn;
    o->keys = keys;
    o->dead_max = dead_max;
    o->attempt_log_max = attempt_log_max;
    uv_timer_init(loop, &o->flush_timer);
    o->flush_timer.data = o;
}

static void free_record(struct outbox_record *r)
{
    free(r->a);
    free(r->b);
    free(r);
}

static void free_log(struct outbox_log *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->f[i]);
    free(g->f);
    free(g->l);
    free(g);
}

/* Append a chain of records (one or a failed batch) to the queue. */
static void push_records(struct outbox *o, struct outbox_record *first, size_t n)
{
    struct outbox_record *last = first;

    while (last->next != NULL)
        last = last->next;
    if (o->tail != NULL)
        o->tail->next = first;
    else
        o->head = first;
    o->tail = last;
    o->queued += n;
}

/* Append one attempt-log entry (new, or a failed send) to the queue. */
static void push_log(struct outbox *o, struct outbox_log *g)
{
    g->next = NULL;
    if (o->logs_tail != NULL)
        o->logs_tail->next = g;
    else
        o->logs = g;
    o->logs_tail = g;
    o->queued++;
}

static char *dup_bytes(const char *p, size_t n)
{
    char *d = xmalloc(n + 1);

    memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

static void add(struct outbox *o, char kind, uint64_t seq, const char *a, size_t alen,
                const char *b, size_t blen, long delay_ms)
{
    struct outbox_record *r = xcalloc(1, sizeof(*r));

    r->kind = kind;
    snprintf(r->seq, sizeof(r->seq), "%llu", (unsigned long long)seq);
    if (a != NULL) {
        r->a = dup_bytes(a, alen);
        r->alen = alen;
    }
    if (b != NULL) {
        r->b = dup_bytes(b, blen);
        r->blen = blen;
    }
    r->delay_ms = delay_ms;
    push_records(o, r, 1);
    schedule(o, 0);
}

void outbox_ack(struct outbox *o, uint64_t seq)
{
    add(o, 'A', seq, NULL, 0, NULL, 0, -1);
}

void outbox_retry(struct outbox *o, uint64_t seq, const char *envelope, size_t len,
                  long delay_ms)
{
    char d[24];
    int n = snprintf(d, sizeof(d), "%ld", delay_ms);

    add(o, 'R', seq, envelope, len, d, (size_t)n, delay_ms);
}

void outbox_park(struct outbox *o, uint64_t seq, const char *origin)
{
    add(o, 'K', seq, origin, strlen(origin), NULL, 0, -1);
}

void outbox_dead(struct outbox *o, uint64_t seq, char kind, const char *entry, size_t len,
                 const char *secret)
{
    add(o, kind, seq, entry, len, secret, secret ? strlen(secret) : 0, -1);
}

void outbox_event(struct outbox *o, uint64_t seq, const char *args, size_t len,
                  const char *fallback, size_t flen, long retry_delay_ms)
{
    add(o, 'X', seq, args, len, fallback, flen, retry_delay_ms);
}

void outbox_log(struct outbox *o, const char **fields, const size_t *lens, size_t nfields)
{
    struct outbox_log *g = xcalloc(1, sizeof(*g));

    g->owner = o;
    g->n = nfields;
    g->f = xmalloc(nfields * sizeof(char *));
    g->l = xmalloc(nfields * sizeof(size_t));
    for (size_t i = 0; i < nfields; i++) {
        g->f[i] = dup_bytes(fields[i], lens[i]);
        g->l[i] = lens[i];
    }
    push_log(o, g);
    schedule(o, 0);
}

static void check_idle(struct outbox *o)
{
    if (outbox_pending(o) == 0 && o->on_idle != NULL)
        o->on_idle(o->arg);
}

static void on_record_reply(struct redis_conn *c, struct redisReply *reply, void *arg)
{
    struct record_batch *b = arg;
    struct outbox *o = b->o;

    (void)c;
    o->unconfirmed -= b->n;
    if (redis_reply_is_error(reply)) {
        /* Lost reply or script error: the batch may or may not have landed;
         * RECORD is idempotent, so send it again later. */
        const char *msg = redis_reply_str(reply, NULL);
        if (msg != NULL && strcmp(msg, o->last_error) != 0) {
            log_error("recording %zu outcomes failed: %s; retrying every %d ms", b->n, msg,
                      RETRY_PAUSE_MS);
            snprintf(o->last_error, sizeof(o->last_error), "%s", msg);
        }
        push_records(o, b->head, b->n);
        schedule(o, reply != NULL ? RETRY_PAUSE_MS : 0);
    } else {
        if (o->last_error[0] != '\0') {
            log_info("recording outcomes works again");
            o->last_error[0] = '\0';
        }
        while (b->head != NULL) {
            struct outbox_record *next = b->head->next;
            free_record(b->head);
            b->head = next;
        }
        if (b->min_delay >= 0 && o->on_retry_recorded != NULL)
            o->on_retry_recorded(o->arg, b->min_delay);
    }
    free(b);
    check_idle(o);
}

static void on_log_reply(struct redis_conn *c, struct redisReply *reply, void *arg)
{
    struct outbox_log *g = arg;
    struct outbox *owner = g->owner;

    (void)c;
    owner->unconfirmed--;
    if (redis_reply_is_error(reply)) {
        if (reply != NULL)
            log_error("attempt log write failed: %s", redis_reply_str(reply, NULL));
        push_log(owner, g);
        schedule(owner, reply != NULL ? RETRY_PAUSE_MS : 0);
    } else {
        free_log(g);
    }
    check_idle(owner);
}

static int send_batch(struct outbox *o)
{
    const char *args[4 * QUEUE_RECORD_MAX];
    size_t lens[4 * QUEUE_RECORD_MAX];
    struct record_batch *b = xcalloc(1, sizeof(*b));
    struct outbox_record *r = o->head, *last = NULL;
    size_t n = 0;

    b->o = o;
    b->min_delay = -1;
    b->head = o->head;
    for (; r != NULL && n < QUEUE_RECORD_MAX; last = r, r = r->next, n++) {
        static const char kinds[] = "ARDIEKX";
        const char *k = strchr(kinds, r->kind);
        args[4 * n] = k;            /* one char, length 1 */
        lens[4 * n] = 1;
        args[4 * n + 1] = r->seq;
        lens[4 * n + 1] = strlen(r->seq);
        args[4 * n + 2] = r->a ? r->a : "";
        lens[4 * n + 2] = r->alen;
        args[4 * n + 3] = r->b ? r->b : "";
        lens[4 * n + 3] = r->blen;
        if (r->delay_ms >= 0 && (b->min_delay < 0 || r->delay_ms < b->min_delay))
            b->min_delay = r->delay_ms;
    }
    if (queue_record(o->conn, o->keys, o->dead_max, args, lens, 4 * n, on_record_reply, b) < 0) {
        free(b);
        return -1;
    }
    /* detach the sent records from the queue */
    o->head = r;
    if (r == NULL)
        o->tail = NULL;
    last->next = NULL;
    b->n = n;
    o->queued -= n;
    o->unconfirmed += n;
    return 0;
}

void outbox_flush(struct outbox *o)
{
    if (!o->conn->up)
        return;     /* the connection's up-callback flushes again */
    while (o->head != NULL)
        if (send_batch(o) < 0)
            return;
    while (o->logs != NULL) {
        struct outbox_log *g = o->logs;
        struct outbox_log *next = g->next;
        if (queue_log_attempt(o->conn, o->keys, o->attempt_log_max, (const char **)g->f,
                              g->l, g->n, on_log_reply, g) < 0)
            return;
        g->next = NULL;
        o->logs = next;
        if (next == NULL)
            o->logs_tail = NULL;
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
    while (o->head != NULL) {
        struct outbox_record *next = o->head->next;
        free_record(o->head);
        o->head = next;
    }
    while (o->logs != NULL) {
        struct outbox_log *next = o->logs->next;
        free_log(o->logs);
        o->logs = next;
    }
    o->tail = NULL;
    o->logs_tail = NULL;
    o->queued = 0;
    uv_close((uv_handle_t *)&o->flush_timer, NULL);
}
