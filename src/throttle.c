/* throttle.c -- jobs of rate-limited origins wait for their slot (throttle.h). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/log.h"
#include "hookd/mem.h"
#include "hookd/queue.h"
#include "hookd/throttle.h"

/* Allocation failure aborts, like everywhere else in hookd. */
#define uthash_malloc(sz) xmalloc(sz)
#include <uthash.h>

#define RETRY_PAUSE_MS 1000     /* after an error reply, before asking again */
#define CLOBBERED_MS 1000       /* a clobbered record: ask again after this */
#define FORGET_MS 300000        /* as throttle.lua: an origin's limit lapses */
#define US 1000000L             /* microseconds in a second */
/* A job whose slot went by longer ago than this (the loop was held up, or
 * the worker did not get the CPU) gives the slot up and asks for a new one.
 * Released anyway, the slots missed during a stall would go out together
 * after it: measured at 100/s on a loaded 2-core machine, up to 115 in one
 * second at the start, when the first slots wait for workers still busy
 * fetching and parking. Given up, every job goes out within LATE_MS of its
 * slot, so any second holds at most the rate x (1 s + LATE_MS) + 1; a slot
 * given up is a delivery less, never one more. */
#define LATE_MS 50

struct throttle_origin {
    UT_hash_handle hh;
    struct coalesce_item link;      /* while its ask is queued or sent */
    struct throttle *t;
    long cfg_us;                    /* configured interval; 0 = none */
    long want_us;                   /* largest interval the jobs since the last ask want */
    long iv_us;                     /* interval Redis last used; 0 = not asked yet */
    int64_t seen_ms;                /* when a job last brought a limit of its own */
    struct throttle_req *head, *tail;   /* waiting: those with a slot first */
    struct throttle_req *granted_tail;  /* the last with a slot, or NULL */
    struct throttle_req *ungranted;     /* the first without a slot, or NULL */
    size_t nwaiting, nungranted;
    size_t asked;                   /* slots asked for in the call in flight */
    int asking;                     /* link is with the coalesce queue */
    int64_t ask_at;                 /* no ask before this loop time */
    char name[];                    /* the origin */
};

static struct throttle_origin *of_link(struct coalesce_item *it)
{
    return (struct throttle_origin *)((char *)it - offsetof(struct throttle_origin, link));
}

static struct throttle_origin *origin_add(struct throttle *t, const char *name)
{
    size_t len = strlen(name);
    struct throttle_origin *o = xcalloc(1, sizeof(*o) + len + 1);   /* freed by close */

    memcpy(o->name, name, len + 1);
    o->t = t;
    HASH_ADD_KEYPTR(hh, t->table, o->name, len, o);
    return o;
}

/* About a second of the origin's rate, at least one job. */
static size_t second_of(const struct throttle_origin *o)
{
    long iv = o->iv_us > 0 ? o->iv_us : o->want_us > o->cfg_us ? o->want_us : o->cfg_us;

    return iv <= 0 || iv >= US ? 1 : (size_t)((US + iv - 1) / iv);
}

/* Queue an ask for the origin's jobs without a slot, unless one is out or
 * the last reply said to wait. */
static void maybe_ask(struct throttle_origin *o, int64_t now)
{
    if (o->nungranted == 0 || o->asking || now < o->ask_at)
        return;
    o->asking = 1;
    coalesce_add(&o->t->asks, &o->link);
}

static void on_timer(uv_timer_t *h);

/* Wake at the next slot due or ask to make; nothing when neither is.
 * An origin limited only by its jobs' rate_limit, none of which came for
 * FORGET_MS, is forgotten here, with nothing waiting or asked: a worker
 * meeting many such origins does not keep them all. */
static void arm(struct throttle *t)
{
    struct throttle_origin *o, *tmp;
    int64_t now = (int64_t)uv_now(t->loop), next = INT64_MAX;

    HASH_ITER(hh, t->table, o, tmp) {
        if (o->cfg_us == 0 && o->nwaiting == 0 && !o->asking && now - o->seen_ms > FORGET_MS) {
            HASH_DEL(t->table, o);
            free(o);
            continue;
        }
        if (o->head != NULL && o->head->due_ms >= 0 && o->head->due_ms < next)
            next = o->head->due_ms;
        if (o->nungranted > 0 && !o->asking && o->ask_at < next)
            next = o->ask_at;
    }
    if (next == INT64_MAX) {
        uv_timer_stop(&t->timer);
        return;
    }
    uv_timer_start(&t->timer, on_timer, next > now ? (uint64_t)(next - now) : 0, 0);
}

/* Pop the origin's first job, which has a slot. */
static struct throttle_req *pop_granted(struct throttle_origin *o)
{
    struct throttle_req *r = o->head;

    o->head = r->next;
    if (o->head == NULL)
        o->tail = NULL;
    if (o->granted_tail == r)
        o->granted_tail = NULL;
    r->next = NULL;
    return r;
}

/* Jobs that missed their slot (LATE_MS), first..last in order, go first
 * among those without one. */
static void regrant(struct throttle_origin *o, struct throttle_req *first,
                    struct throttle_req *last, size_t n)
{
    struct throttle_req **at = o->granted_tail != NULL ? &o->granted_tail->next : &o->head;

    last->next = *at;
    *at = first;
    if (last->next == NULL)
        o->tail = last;
    o->ungranted = first;
    o->nungranted += n;
}

/* Take the origin's jobs whose slot has come onto *out (in order); those
 * that missed it ask again. */
static void take_due(struct throttle_origin *o, int64_t now, struct throttle_req ***out)
{
    struct throttle_req *late = NULL, **late_end = &late, *last = NULL;
    size_t nlate = 0;

    while (o->head != NULL && o->head->due_ms >= 0 && o->head->due_ms <= now) {
        struct throttle_req *r = pop_granted(o);
        if (now - r->due_ms > LATE_MS) {
            r->due_ms = -1;
            *late_end = last = r;
            late_end = &r->next;
            nlate++;
            continue;
        }
        o->nwaiting--;
        **out = r;
        *out = &r->next;
    }
    if (late != NULL)
        regrant(o, late, last, nlate);
}

/* Release the jobs whose slot has come, ask for those that may ask; the
 * callbacks run once the table is no longer walked. */
static void on_timer(uv_timer_t *h)
{
    struct throttle *t = h->data;
    struct throttle_origin *o, *tmp;
    struct throttle_req *go = NULL, **tail = &go;
    int64_t now = (int64_t)uv_now(t->loop);

    HASH_ITER(hh, t->table, o, tmp) {
        take_due(o, now, &tail);
        maybe_ask(o, now);
    }
    arm(t);
    while (go != NULL) {
        struct throttle_req *r = go;
        go = r->next;
        r->next = NULL;
        r->cb(r, THROTTLE_GO);
    }
}

/* The queue.h call for the origins from first on: at most QUEUE_THROTTLE_MAX. */
static int send_asks(void *arg, struct coalesce_item *first, size_t *n, redis_reply_cb cb,
                     void *cbarg)
{
    struct throttle *t = arg;
    const char *args[3 * QUEUE_THROTTLE_MAX];
    char nums[QUEUE_THROTTLE_MAX][2][24];
    size_t k = 0;

    for (struct coalesce_item *it = first; it != NULL && k < QUEUE_THROTTLE_MAX;
         it = it->next, k++) {
        struct throttle_origin *o = of_link(it);
        long iv = o->want_us > o->cfg_us ? o->want_us : o->cfg_us;
        o->asked = o->nungranted < QUEUE_THROTTLE_COUNT_MAX ? o->nungranted
                                                            : QUEUE_THROTTLE_COUNT_MAX;
        snprintf(nums[k][0], sizeof(nums[k][0]), "%ld", iv > 0 ? iv : 1);
        snprintf(nums[k][1], sizeof(nums[k][1]), "%zu", o->asked);
        args[3 * k] = o->name;
        args[3 * k + 1] = nums[k][0];
        args[3 * k + 2] = nums[k][1];
    }
    *n = k;
    return queue_throttle(t->conn, t->keys, args, 3 * k, cb, cbarg);
}

/* Give the first g jobs without a slot their release times. */
static void grant(struct throttle_origin *o, int64_t now, long long g, long long delay_us,
                  long long iv_us)
{
    for (long long i = 0; i < g && o->ungranted != NULL; i++) {
        long long at_us = delay_us + i * iv_us;
        /* Rounded up: a job is never released before its slot. */
        o->ungranted->due_ms = now + (at_us + 999) / 1000;
        o->granted_tail = o->ungranted;
        o->ungranted = o->ungranted->next;
        o->nungranted--;
    }
}

/* One origin's answer: {status, granted, delay, interval, retry}. */
static void answered(struct throttle *t, struct throttle_origin *o, const struct redisReply *a,
                     int64_t now)
{
    long long status = redis_reply_integer(redis_reply_element(a, 0));
    long long g = redis_reply_integer(redis_reply_element(a, 1));
    long long delay = redis_reply_integer(redis_reply_element(a, 2));
    long long iv = redis_reply_integer(redis_reply_element(a, 3));
    long long retry = redis_reply_integer(redis_reply_element(a, 4));

    o->asking = 0;
    o->want_us = 0;
    if (status != 0 || g < 0 || delay < 0 || iv <= 0) {
        char why[512];
        snprintf(why, sizeof(why), "the rate record of %s is not one THROTTLE reads", o->name);
        if (log_changed(t->last_error, sizeof(t->last_error), why))
            log_error("%s; its jobs wait (rename or delete %s:%s)", why, t->keys->rate,
                      o->name);
        o->ask_at = now + CLOBBERED_MS;
        return;
    }
    o->iv_us = (long)iv;
    grant(o, now, g, delay, iv);
    /* Asked for fewer than wait now (more came meanwhile): ask at once. */
    o->ask_at = (size_t)g < o->asked ? now + 1 + retry / 1000 : now;
}

static enum coalesce_verdict on_answers(void *arg, struct redisReply *reply,
                                        struct coalesce_item *first, size_t n)
{
    struct throttle *t = arg;
    int64_t now;

    /* Slots are times from when Redis ran the script, a moment ago: the
     * loop's cached time may be older by all the work this iteration did
     * before this reply, and a slot counted from it would come early. */
    uv_update_time(t->loop);
    now = (int64_t)uv_now(t->loop);
    if (redis_reply_is_error(reply) || redis_reply_elements(reply) != n) {
        const char *msg = redis_reply_str(reply, NULL);
        if (reply != NULL &&
            log_changed(t->last_error, sizeof(t->last_error), msg ? msg : "bad reply"))
            log_error("rate limit slots for %zu origins not granted: %s; retrying every %d ms",
                      n, msg ? msg : "bad reply", RETRY_PAUSE_MS);
        return COALESCE_RETRY;
    }
    if (log_recovered(t->last_error))
        log_info("rate limit slots are granted again");
    for (size_t i = 0; first != NULL; i++) {
        struct throttle_origin *o = of_link(first);
        first = first->next;
        o->link.next = NULL;
        answered(t, o, redis_reply_element(reply, i), now);
    }
    arm(t);
    return COALESCE_DONE;
}

/* An ask whose reply came after throttle_close: its origins were cut
 * loose then, and are freed now. */
static void drop_asks(void *arg, struct coalesce_item *it)
{
    (void)arg;
    while (it != NULL) {
        struct throttle_origin *o = of_link(it);
        it = it->next;
        free(o);
    }
}

static const struct coalesce_ops ask_ops = {
    .send = send_asks, .reply = on_answers, .drop = drop_asks,
};

int throttle_init(struct throttle *t, uv_loop_t *loop, struct redis_conn *conn,
                  const struct keys *keys, const struct config_rate *rates, size_t nrates)
{
    int rc;

    memset(t, 0, sizeof(*t));
    t->loop = loop;
    t->conn = conn;
    t->keys = keys;
    if ((rc = uv_timer_init(loop, &t->timer)) < 0)
        return rc;
    t->timer.data = t;
    if ((rc = coalesce_init(&t->asks, loop, conn, &ask_ops, t, RETRY_PAUSE_MS)) < 0) {
        uv_close((uv_handle_t *)&t->timer, NULL);
        return rc;
    }
    for (size_t i = 0; i < nrates; i++) {
        struct throttle_origin *o;
        HASH_FIND_STR(t->table, rates[i].origin, o);
        if (o == NULL)
            o = origin_add(t, rates[i].origin);
        o->cfg_us = rates[i].interval_us;   /* a later entry wins, as in the file */
    }
    return 0;
}

/* The origin's record if its jobs are limited now: configured, this job
 * carries a limit, or one of its jobs did within FORGET_MS (Redis may
 * still hold that limit, and the lowest wins). NULL otherwise. */
static struct throttle_origin *limited(struct throttle *t, const char *origin, long job_us,
                                       int64_t now)
{
    struct throttle_origin *o;

    HASH_FIND_STR(t->table, origin, o);
    if (job_us > 0) {
        if (o == NULL)
            o = origin_add(t, origin);
        o->seen_ms = now;
        return o;
    }
    if (o == NULL || (o->cfg_us == 0 && o->nwaiting == 0 && now - o->seen_ms > FORGET_MS))
        return NULL;
    return o;
}

int throttle_wait(struct throttle *t, const char *origin, long job_rate,
                  struct throttle_req *req)
{
    int64_t now = (int64_t)uv_now(t->loop);
    long job_us = job_rate > 0 ? (US + job_rate - 1) / job_rate : 0;
    struct throttle_origin *o = limited(t, origin, job_us, now);

    if (o == NULL)
        return -ENOENT;
    if (o->nwaiting >= second_of(o))
        return -EAGAIN;
    if (job_us > o->want_us)
        o->want_us = job_us;
    req->next = NULL;
    req->due_ms = -1;
    if (o->tail != NULL)
        o->tail->next = req;
    else
        o->head = req;
    o->tail = req;
    if (o->ungranted == NULL)
        o->ungranted = req;
    o->nwaiting++;
    o->nungranted++;
    maybe_ask(o, now);
    if (!o->asking)
        arm(t);
    return 0;
}

int throttle_room(const struct throttle *t, const char *origin, int room)
{
    struct throttle_origin *o;
    size_t second;

    HASH_FIND_STR(t->table, origin, o);
    if (o == NULL || (o->cfg_us == 0 && o->iv_us == 0))
        return room;
    second = second_of(o);
    if (o->nwaiting >= second)
        return 0;
    return second - o->nwaiting < (size_t)room ? (int)(second - o->nwaiting) : room;
}

void throttle_flush(struct throttle *t)
{
    coalesce_flush(&t->asks);
}

/* Cancel the origin's waiting jobs; free it unless its ask is in flight
 * (drop_asks frees it then). */
static void origin_close(struct throttle *t, struct throttle_origin *o)
{
    HASH_DEL(t->table, o);
    while (o->head != NULL) {
        struct throttle_req *r = o->head;
        o->head = r->next;
        r->next = NULL;
        r->cb(r, THROTTLE_CANCELLED);
    }
    if (!o->asking)
        free(o);
}

void throttle_close(struct throttle *t)
{
    struct coalesce_item *waiting = coalesce_close(&t->asks);
    struct throttle_origin *o, *tmp;

    /* Asks never sent: their origins are no longer asking. */
    for (struct coalesce_item *it = waiting; it != NULL; it = it->next)
        of_link(it)->asking = 0;
    HASH_ITER(hh, t->table, o, tmp)
        origin_close(t, o);
    uv_close((uv_handle_t *)&t->timer, NULL);
}
