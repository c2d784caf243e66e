/* outbox.c -- batched, retried recording of delivery outcomes (outbox.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/log.h"
#include "hookd/mem.h"
#include "hookd/outbox.h"

struct outbox_record {
    struct outbox_record *next;
    char kind;                  /* A, R, D, I, E, K, X (src/lua/record.lua) */
    char seq[24];
    char *a, *b;                /* owned (NULL = "") */
    size_t alen, blen;
    long delay_ms;              /* R, and X when its fallback is a retry; else -1 */
    char label[];               /* the job's id, "" when it has none */
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
                 const struct keys *keys, size_t dead_max, size_t attempt_log_max)
{
    memset(o, 0, sizeof(*o));
    o->conn = conn;
    o->keys = keys;
    o->dead_max = dead_max;
    o->attempt_log_max = attempt_log_max;
    uv_timer_init(loop, &o->flush_timer);
    uv_timer_init(loop, &o->held_timer);
    o->flush_timer.data = o;
    o->held_timer.data = o;
}

static void free_records(struct outbox_record *r)
{
    while (r != NULL) {
        struct outbox_record *next = r->next;
        free(r->a);
        free(r->b);
        free(r);
        r = next;
    }
}

static void free_log(struct outbox_log *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->f[i]);
    free(g->f);
    free(g->l);
    free(g);
}

/* Append a chain of records (one, a failed batch, the held ones) to the
 * queue. */
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

static void add(struct outbox *o, char kind, uint64_t seq, const char *id, const char *a,
                size_t alen, const char *b, size_t blen, long delay_ms)
{
    size_t idlen = id != NULL ? strlen(id) : 0;
    struct outbox_record *r = xcalloc(1, sizeof(*r) + idlen + 1);

    r->kind = kind;
    snprintf(r->seq, sizeof(r->seq), "%llu", (unsigned long long)seq);
    memcpy(r->label, id != NULL ? id : "", idlen + 1);
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
    o->records++;
    schedule(o, 0);
}

void outbox_ack(struct outbox *o, uint64_t seq, const char *id)
{
    add(o, 'A', seq, id, NULL, 0, NULL, 0, -1);
}

void outbox_retry(struct outbox *o, uint64_t seq, const char *id, const char *envelope,
                  size_t len, long delay_ms)
{
    char d[24];
    int n = snprintf(d, sizeof(d), "%ld", delay_ms);

    add(o, 'R', seq, id, envelope, len, d, (size_t)n, delay_ms);
}

void outbox_park(struct outbox *o, uint64_t seq, const char *id, const char *origin)
{
    add(o, 'K', seq, id, origin, strlen(origin), NULL, 0, -1);
}

void outbox_dead(struct outbox *o, uint64_t seq, const char *id, char kind, const char *entry,
                 size_t len, const char *aside, size_t aside_len)
{
    add(o, kind, seq, id, entry, len, aside, aside_len, -1);
}

void outbox_event(struct outbox *o, uint64_t seq, const char *id, const char *args, size_t len,
                  const char *fallback, size_t flen, long retry_delay_ms)
{
    add(o, 'X', seq, id, args, len, fallback, flen, retry_delay_ms);
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

static void confirmed(struct outbox *o)
{
    if (o->on_confirmed != NULL)
        o->on_confirmed(o->arg);
}

static void on_held_timer(uv_timer_t *t)
{
    struct outbox *o = t->data;
    struct outbox_record *held = o->held;
    size_t n = o->nheld;

    if (held == NULL)
        return;
    o->held = NULL;
    o->nheld = 0;
    push_records(o, held, n);
    outbox_flush(o);
}

/* Take the record filed under seq out of the chain *head, or NULL. */
static struct outbox_record *unlink_seq(struct outbox_record **head, const char *seq,
                                        size_t len)
{
    for (struct outbox_record **p = head; *p != NULL; p = &(*p)->next) {
        struct outbox_record *r = *p;
        if (strlen(r->seq) == len && memcmp(r->seq, seq, len) == 0) {
            *p = r->next;
            r->next = NULL;
            return r;
        }
    }
    return NULL;
}

/* The outcomes RECORD refused (seq, reason pairs): held, each job still in
 * flight in Redis, and sent again after OUTBOX_RETRY_MS. */
static void hold_refused(struct outbox *o, struct record_batch *b,
                         const struct redisReply *refused)
{
    for (size_t i = 0; i + 1 < redis_reply_elements(refused); i += 2) {
        size_t len;
        const char *seq = redis_reply_str(redis_reply_element(refused, i), &len);
        const char *why = redis_reply_str(redis_reply_element(refused, i + 1), NULL);
        struct outbox_record *r = seq ? unlink_seq(&b->head, seq, len) : NULL;
        if (r == NULL)
            continue;
        b->n--;
        if (why != NULL && log_changed(o->last_refusal, sizeof(o->last_refusal), why))
            log_emit(LOG_ERROR, r->label[0] ? r->label : "-", "Redis refused to record its "
                     "outcome (%c): %s; the job stays in flight, tried again every %d ms",
                     r->kind, why, OUTBOX_RETRY_MS);
        r->next = o->held;
        o->held = r;
        o->nheld++;
    }
    if (o->held != NULL && !uv_is_active((uv_handle_t *)&o->held_timer))
        uv_timer_start(&o->held_timer, on_held_timer, OUTBOX_RETRY_MS, 0);
}

static void on_record_reply(struct redis_conn *c, struct redisReply *reply, void *arg)
{
    struct record_batch *b = arg;
    struct outbox *o = b->o;
    const struct redisReply *refused = redis_reply_element(reply, 1);

    (void)c;
    o->unconfirmed -= b->n;
    if (redis_reply_is_error(reply)) {
        /* Lost reply, or the call refused as a whole: the batch may or may
         * not have landed; RECORD is idempotent, so send it again later.
         * Logged once per distinct error, not once a second. */
        const char *msg = redis_reply_str(reply, NULL);
        if (reply != NULL && log_changed(o->last_error, sizeof(o->last_error), msg))
            log_error("recording %zu outcomes failed: %s; retrying every %d ms", b->n, msg,
                      OUTBOX_RETRY_MS);
        push_records(o, b->head, b->n);
        schedule(o, reply != NULL ? OUTBOX_RETRY_MS : 0);
    } else {
        if (o->last_error[0] != '\0') {
            log_info("recording outcomes works again");
            o->last_error[0] = '\0';
        }
        hold_refused(o, b, refused);
        if (redis_reply_elements(refused) == 0 && o->nheld == 0 && o->last_refusal[0] != '\0') {
            log_info("outcomes Redis refused earlier are recorded now");
            o->last_refusal[0] = '\0';
        }
        o->records -= b->n;
        free_records(b->head);
        if (b->min_delay >= 0 && o->on_retry_recorded != NULL)
            o->on_retry_recorded(o->arg, b->min_delay);
    }
    free(b);
    confirmed(o);
}

static void on_log_reply(struct redis_conn *c, struct redisReply *reply, void *arg)
{
    struct outbox_log *g = arg;
    struct outbox *owner = g->owner;

    (void)c;
    owner->unconfirmed--;
    if (reply == NULL) {
        /* Connection lost: send it again once reconnected. */
        push_log(owner, g);
        schedule(owner, 0);
    } else if (redis_reply_is_error(reply)) {
        /* Refused (the stream key clobbered, Redis at maxmemory): the
         * attempt log is a diagnostic, capped anyway; an entry kept and
         * retried while the refusal lasts would grow the worker without
         * bound. Dropped, and said once. */
        const char *msg = redis_reply_str(reply, NULL);
        if (log_changed(owner->last_log_error, sizeof(owner->last_log_error), msg))
            log_error("attempt log write failed: %s; attempt-log entries are dropped until "
                      "it works again", msg);
        free_log(g);
    } else {
        if (owner->last_log_error[0] != '\0') {
            log_info("attempt log writes work again");
            owner->last_log_error[0] = '\0';
        }
        free_log(g);
    }
    confirmed(owner);
}

/* One RECORD call for the records at the head of the queue: at most
 * QUEUE_RECORD_MAX of them and OUTBOX_BATCH_BYTES of arguments, at least
 * one. */
static int send_batch(struct outbox *o)
{
    const char *args[4 * QUEUE_RECORD_MAX];
    size_t lens[4 * QUEUE_RECORD_MAX];
    struct record_batch *b = xcalloc(1, sizeof(*b));
    struct outbox_record *r = o->head, *last = NULL;
    size_t n = 0, bytes = 0;

    b->o = o;
    b->min_delay = -1;
    b->head = o->head;
    for (; r != NULL && n < QUEUE_RECORD_MAX; last = r, r = r->next, n++) {
        static const char kinds[] = "ARDIEKX";
        size_t size = r->alen + r->blen + 32;
        if (n > 0 && bytes + size > OUTBOX_BATCH_BYTES)
            break;
        bytes += size;
        args[4 * n] = strchr(kinds, r->kind);   /* one char, length 1 */
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

size_t outbox_records(const struct outbox *o)
{
    return o->records;
}

size_t outbox_held(const struct outbox *o)
{
    return o->nheld;
}

int outbox_failing(const struct outbox *o)
{
    return o->last_error[0] != '\0';
}

size_t outbox_drop_held(struct outbox *o)
{
    size_t n = o->nheld;

    free_records(o->held);
    o->held = NULL;
    o->nheld = 0;
    o->records -= n;
    uv_timer_stop(&o->held_timer);
    return n;
}

void outbox_close(struct outbox *o)
{
    free_records(o->head);
    o->head = o->tail = NULL;
    outbox_drop_held(o);
    while (o->logs != NULL) {
        struct outbox_log *next = o->logs->next;
        free_log(o->logs);
        o->logs = next;
    }
    o->logs_tail = NULL;
    o->queued = 0;
    o->records = 0;
    uv_close((uv_handle_t *)&o->flush_timer, NULL);
    uv_close((uv_handle_t *)&o->held_timer, NULL);
}
