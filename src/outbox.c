/* outbox.c -- batched, retried recording of delivery outcomes (outbox.h). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/log.h"
#include "hookd/mem.h"
#include "hookd/outbox.h"

struct outbox_record {
    struct coalesce_item link;  /* in the queue, a call, or the held chain */
    char kind;                  /* A, R, D, I, E, K, X (src/lua/record.lua) */
    char seq[24];
    char *a, *b;                /* owned (NULL = "") */
    size_t alen, blen;
    long delay_ms;              /* R, and X when its fallback is a retry; else -1 */
    char label[];               /* the job's id, "" when it has none */
};

struct outbox_log {
    struct coalesce_item link;  /* in the queue or a call */
    size_t n;
    char **f;                   /* owned, n strings */
    size_t *l;
};

static struct outbox_record *rec_of(struct coalesce_item *it)
{
    return (struct outbox_record *)((char *)it - offsetof(struct outbox_record, link));
}

static struct outbox_log *log_of(struct coalesce_item *it)
{
    return (struct outbox_log *)((char *)it - offsetof(struct outbox_log, link));
}

static void free_records(struct coalesce_item *it)
{
    while (it != NULL) {
        struct outbox_record *r = rec_of(it);
        it = it->next;
        free(r->a);
        free(r->b);
        free(r);
    }
}

static void free_logs(struct coalesce_item *it)
{
    while (it != NULL) {
        struct outbox_log *g = log_of(it);
        it = it->next;
        for (size_t i = 0; i < g->n; i++)
            free(g->f[i]);
        free(g->f);
        free(g->l);
        free(g);
    }
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
    o->records++;
    coalesce_add(&o->outcomes, &r->link);
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

    g->n = nfields;
    g->f = xmalloc(nfields * sizeof(char *));
    g->l = xmalloc(nfields * sizeof(size_t));
    for (size_t i = 0; i < nfields; i++) {
        g->f[i] = dup_bytes(fields[i], lens[i]);
        g->l[i] = lens[i];
    }
    coalesce_add(&o->attempts, &g->link);
}

static void on_held_timer(uv_timer_t *t)
{
    struct outbox *o = t->data;
    struct coalesce_item *it = o->held;

    if (it == NULL)
        return;
    o->held = NULL;
    o->nheld = 0;
    while (it != NULL) {
        struct coalesce_item *next = it->next;
        coalesce_add(&o->outcomes, it);
        it = next;
    }
    outbox_flush(o);
}

/* Take the record filed under seq out of the chain *head, or NULL. */
static struct outbox_record *unlink_seq(struct coalesce_item **head, const char *seq,
                                        size_t len)
{
    for (struct coalesce_item **p = head; *p != NULL; p = &(*p)->next) {
        struct outbox_record *r = rec_of(*p);
        if (strlen(r->seq) == len && memcmp(r->seq, seq, len) == 0) {
            *p = r->link.next;
            r->link.next = NULL;
            return r;
        }
    }
    return NULL;
}

/* The outcomes RECORD refused (seq, reason pairs), taken out of the call's
 * chain *first (*n of them): held, each job still in flight in Redis, and
 * sent again after OUTBOX_RETRY_MS. */
static void hold_refused(struct outbox *o, struct coalesce_item **first, size_t *n,
                         const struct redisReply *refused)
{
    for (size_t i = 0; i + 1 < redis_reply_elements(refused); i += 2) {
        size_t len;
        const char *seq = redis_reply_str(redis_reply_element(refused, i), &len);
        const char *why = redis_reply_str(redis_reply_element(refused, i + 1), NULL);
        struct outbox_record *r = seq ? unlink_seq(first, seq, len) : NULL;
        if (r == NULL)
            continue;
        (*n)--;
        if (why != NULL && log_changed(o->last_refusal, sizeof(o->last_refusal), why))
            log_emit(LOG_ERROR, r->label[0] ? r->label : "-", "Redis refused to record its "
                     "outcome (%c): %s; the job stays in flight, tried again every %d ms",
                     r->kind, why, OUTBOX_RETRY_MS);
        r->link.next = o->held;
        o->held = &r->link;
        o->nheld++;
    }
    if (o->held != NULL && !uv_is_active((uv_handle_t *)&o->held_timer))
        uv_timer_start(&o->held_timer, on_held_timer, OUTBOX_RETRY_MS, 0);
}

/* The earliest retry among a call's outcomes, -1 if none. */
static long min_delay(struct coalesce_item *it)
{
    long min = -1;

    for (; it != NULL; it = it->next) {
        long d = rec_of(it)->delay_ms;
        if (d >= 0 && (min < 0 || d < min))
            min = d;
    }
    return min;
}

static enum coalesce_verdict on_recorded(void *arg, struct redisReply *reply,
                                         struct coalesce_item *first, size_t n)
{
    struct outbox *o = arg;
    const struct redisReply *refused = redis_reply_element(reply, 1);
    long delay;

    if (reply != NULL && o->wait_replicas > 0 && !redis_reply_is_error(reply) &&
        redis_reply_elements(reply) == 0) {
        /* WAIT's count, short of wait_replicas (see send_records). */
        char msg[128];
        snprintf(msg, sizeof(msg), "only %lld of %d replicas confirmed them within %d ms",
                 redis_reply_integer(reply), o->wait_replicas, OUTBOX_WAIT_MS);
        if (log_changed(o->last_error, sizeof(o->last_error), msg))
            log_error("recording %zu outcomes: %s; sending them again every %d ms", n, msg,
                      OUTBOX_RETRY_MS);
        return COALESCE_RETRY;
    }
    if (redis_reply_is_error(reply)) {
        /* Lost reply, or the call refused as a whole: the batch may or may
         * not have landed; RECORD is idempotent, so send it again later.
         * Logged once per distinct error, not once a second. */
        const char *msg = redis_reply_str(reply, NULL);
        if (reply != NULL && log_changed(o->last_error, sizeof(o->last_error), msg))
            log_error("recording %zu outcomes failed: %s; retrying every %d ms", n, msg,
                      OUTBOX_RETRY_MS);
        return COALESCE_RETRY;
    }
    if (log_recovered(o->last_error))
        log_info("recording outcomes works again");
    delay = min_delay(first);
    hold_refused(o, &first, &n, refused);
    if (redis_reply_elements(refused) == 0 && o->nheld == 0 && log_recovered(o->last_refusal))
        log_info("outcomes Redis refused earlier are recorded now");
    o->records -= n;
    free_records(first);
    if (delay >= 0 && o->on_retry_recorded != NULL)
        o->on_retry_recorded(o->arg, delay);
    return COALESCE_DONE;
}

static enum coalesce_verdict on_logged(void *arg, struct redisReply *reply,
                                       struct coalesce_item *first, size_t n)
{
    struct outbox *o = arg;

    (void)n;
    if (reply == NULL)
        return COALESCE_RETRY;  /* connection lost: send it again once reconnected */
    if (redis_reply_is_error(reply)) {
        /* Refused (the stream key clobbered, Redis at maxmemory): the
         * attempt log is a diagnostic, capped anyway; an entry kept and
         * retried while the refusal lasts would grow the worker without
         * bound. Dropped, and said once. */
        const char *msg = redis_reply_str(reply, NULL);
        if (log_changed(o->last_log_error, sizeof(o->last_log_error), msg))
            log_error("attempt log write failed: %s; attempt-log entries are dropped until "
                      "it works again", msg);
    } else if (log_recovered(o->last_log_error)) {
        log_info("attempt log writes work again");
    }
    free_logs(first);
    return COALESCE_DONE;
}

/* RECORD followed by WAIT: coalesce gets one reply for the pair, RECORD's
 * when it failed or when enough replicas have it, else WAIT's count, which
 * on_recorded reads as the shortfall. */
struct replicated {
    redis_reply_cb cb;          /* coalesce's */
    void *cbarg;
    struct redisReply *recorded;    /* RECORD's reply, kept until WAIT's; owned */
    int waiting;                /* WAIT was sent */
    int want;                   /* replicas */
};

static void on_record_part(struct redis_conn *c, struct redisReply *reply, void *arg)
{
    struct replicated *rp = arg;

    if (!rp->waiting) {         /* WAIT could not be sent: RECORD's reply alone */
        rp->cb(c, reply, rp->cbarg);
        free(rp);
        return;
    }
    rp->recorded = reply ? redis_reply_keep(c) : NULL;
}

static void on_wait_part(struct redis_conn *c, struct redisReply *reply, void *arg)
{
    struct replicated *rp = arg;
    struct redisReply *r = rp->recorded;

    if (r != NULL && !redis_reply_is_error(r) &&
        (reply == NULL || redis_reply_is_error(reply) || redis_reply_integer(reply) < rp->want))
        r = reply;
    rp->cb(c, r, rp->cbarg);
    redis_reply_free(rp->recorded);
    free(rp);
}

static int record_and_wait(struct outbox *o, const char **args, const size_t *lens, size_t n,
                           redis_reply_cb cb, void *cbarg)
{
    struct replicated *rp;
    int rc;

    if (o->wait_replicas == 0)
        return queue_record(o->conn, o->keys, o->dead_max, args, lens, n, cb, cbarg);
    rp = xcalloc(1, sizeof(*rp));   /* freed by the last of its two callbacks */
    rp->cb = cb;
    rp->cbarg = cbarg;
    rp->want = o->wait_replicas;
    if ((rc = queue_record(o->conn, o->keys, o->dead_max, args, lens, n, on_record_part,
                           rp)) < 0) {
        free(rp);
        return rc;
    }
    rp->waiting = queue_wait_replicas(o->conn, o->wait_replicas, OUTBOX_WAIT_MS,
                                      on_wait_part, rp) == 0;
    return 0;
}

/* One RECORD call for the records from first on: at most QUEUE_RECORD_MAX
 * of them and OUTBOX_BATCH_BYTES of arguments, at least one. */
static int send_records(void *arg, struct coalesce_item *first, size_t *count,
                        redis_reply_cb cb, void *cbarg)
{
    static const char kinds[] = "ARDIEKX";
    struct outbox *o = arg;
    const char *args[4 * QUEUE_RECORD_MAX];
    size_t lens[4 * QUEUE_RECORD_MAX];
    size_t n = 0, bytes = 0;

    for (struct coalesce_item *it = first; it != NULL && n < QUEUE_RECORD_MAX;
         it = it->next, n++) {
        struct outbox_record *r = rec_of(it);
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
    }
    *count = n;
    return record_and_wait(o, args, lens, 4 * n, cb, cbarg);
}

/* One XADD per attempt-log entry, pipelined. */
static int send_log(void *arg, struct coalesce_item *first, size_t *n, redis_reply_cb cb,
                    void *cbarg)
{
    struct outbox *o = arg;
    struct outbox_log *g = log_of(first);

    *n = 1;
    return queue_log_attempt(o->conn, o->keys, o->attempt_log_max, (const char **)g->f, g->l,
                             g->n, cb, cbarg);
}

/* Redis confirmed (or refused) some items: their slots are free. */
static void confirmed(void *arg)
{
    struct outbox *o = arg;

    if (o->on_confirmed != NULL)
        o->on_confirmed(o->arg);
}

static void drop_records(void *arg, struct coalesce_item *first)
{
    (void)arg;
    free_records(first);
}

static void drop_logs(void *arg, struct coalesce_item *first)
{
    (void)arg;
    free_logs(first);
}

static const struct coalesce_ops record_ops = {
    .send = send_records, .reply = on_recorded, .drop = drop_records, .settled = confirmed,
};

static const struct coalesce_ops log_ops = {
    .send = send_log, .reply = on_logged, .drop = drop_logs, .settled = confirmed,
};

void outbox_init(struct outbox *o, uv_loop_t *loop, struct redis_conn *conn,
                 const struct keys *keys, size_t dead_max, size_t attempt_log_max)
{
    memset(o, 0, sizeof(*o));
    o->conn = conn;
    o->keys = keys;
    o->dead_max = dead_max;
    o->attempt_log_max = attempt_log_max;
    coalesce_init(&o->outcomes, loop, conn, &record_ops, o, OUTBOX_RETRY_MS);
    coalesce_init(&o->attempts, loop, conn, &log_ops, o, OUTBOX_RETRY_MS);
    uv_timer_init(loop, &o->held_timer);
    o->held_timer.data = o;
}

void outbox_flush(struct outbox *o)
{
    coalesce_flush(&o->outcomes);
    coalesce_flush(&o->attempts);
}

size_t outbox_pending(const struct outbox *o)
{
    return coalesce_pending(&o->outcomes) + coalesce_pending(&o->attempts);
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
    free_records(coalesce_close(&o->outcomes));
    free_logs(coalesce_close(&o->attempts));
    outbox_drop_held(o);
    o->records = 0;
    uv_close((uv_handle_t *)&o->held_timer, NULL);
}
