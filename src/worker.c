/* worker.c -- the worker's event loop: fetch, deliver, record, heartbeat.
 *
 * Two Redis connections, because a blocking BLMOVE on the fetch connection
 * holds up every command queued behind it: "fetch" carries only FETCH,
 * BLMOVE and RELEASE; "ack" carries outcomes, heartbeats, the reaper,
 * PROMOTE and pulls of parked jobs.
 *
 * The contract of this file: every event handler (a reply, a timer, a
 * signal, a connection coming up, deliveries finished, outcomes confirmed)
 * updates the state it owns and then calls progress(), which lets the two
 * machines below take their next step. Nothing else sends a fetch or ends a
 * stop. deliver.c and outbox.c report back only from the loop, never from
 * inside a call of ours, so no handler runs inside another.
 *
 * The fetch side (fetch_state; fetch_next() is its only decision point):
 *
 *   IDLE --lost seq range to give back-----------------> RELEASING --reply--> IDLE
 *   IDLE --queue seen empty, no parked job to pull------> WAITING (BLMOVE, 1 s) --reply--> IDLE
 *   IDLE --free slots >= refill_at, or none in flight---> FETCHING --reply--> IDLE
 *   IDLE --0 < free slots < refill_at-------------------> REFILL
 *   REFILL --REFILL_WAIT_MS, or refill_at slots free----> FETCHING (or WAITING)
 *   FETCHING, WAITING, RELEASING --error reply----------> PAUSED --ERROR_PAUSE_MS--> IDLE
 *   FETCHING --reply lost (connection cut)--------------> IDLE, its seq range on the lost list
 *
 * IDLE and REFILL stay put while the fetch connection is down, and (except
 * for RELEASING) while the worker takes no jobs: stopping, not registered,
 * or outcomes failing to record. In WAITING, parked jobs of an origin with
 * room again come over the ack connection (pull: IDLE -> BUSY -> IDLE, or
 * PAUSED after an error reply), since the fetch connection is blocked.
 *
 * The stop side (mode):
 *
 *   RUNNING --SIGTERM/SIGINT--> DRAINING --nothing in flight, no FETCH or
 *     RELEASE outstanding, outcomes confirmed, ack up--> FINISHING (RECLAIM
 *     sent) --reply--> CLOSING (handles closed, the loop ends)
 *   DRAINING, FINISHING --stop timer: shutdown_timeout less a margin, at
 *     once on SIGQUIT--> requests cut (cut = 1), QUIT_GRACE_MS more to
 *     record and requeue --grace over--> CLOSING, exit status 1
 *   DRAINING --ack not up, nothing in flight, outcomes confirmed--> CLOSING
 *     at once, not unregistered (Redis away: waiting changes nothing) */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "hookd/deliver.h"
#include "hookd/health.h"
#include "hookd/hosts.h"
#include "hookd/http.h"
#include "hookd/log.h"
#include "hookd/mem.h"
#include "hookd/outbox.h"
#include "hookd/queue.h"
#include "hookd/redis.h"
#include "hookd/rlimit.h"
#include "hookd/stats_shm.h"
#include "hookd/throttle.h"
#include "hookd/timeutil.h"
#include "hookd/worker.h"

#define WAIT_TIMEOUT_S 1.0          /* BLMOVE timeout: bounds shutdown latency */
#define CMD_TIMEOUT_MS 5000         /* no Redis reply this long: connection cut */
#define ERROR_PAUSE_MS 1000         /* after an error reply to a fetch */
#define QUIT_GRACE_MS 1500          /* SIGQUIT: time to record and requeue */
/* Of shutdown_timeout, kept for recording and requeueing after the drain. */
#define STOP_MARGIN_MS(t) ((t) / 4 < 500 ? (t) / 4 : 500)
#define REFILL_WAIT_MS 1             /* longest a free slot waits for a batch */
#define PROMOTE_BATCH 4000          /* due retries moved per PROMOTE call (Lua unpack limit: 8000) */
#define PROMOTE_IDLE_MS 1000        /* look at the retry set at least this often */
#define PROMOTE_JITTER_MS 5         /* spread workers promoting the same entry */

enum stop_mode { RUNNING, DRAINING, FINISHING, CLOSING };
enum fetch_state { F_IDLE, F_REFILL, F_FETCHING, F_WAITING, F_RELEASING, F_PAUSED };
enum pull_state { PULL_IDLE, PULL_BUSY, PULL_PAUSED };

struct lost_range {
    uint64_t lo, hi;
};

struct worker {
    uv_loop_t loop;
    const struct config *cfg;
    char wid[WORKER_ID_MAX];
    char server_id[48];             /* run_id of the Redis registered with, "" before */
    char info[256];                 /* registration, JSON */
    struct keys keys;
    struct redis_conn fetch, ack;
    struct http_client *http;
    struct hosts *hosts;            /* per-origin admission (owned) */
    struct outbox outbox;
    struct dedupe dedupe;           /* id checks for dedupe_window */
    struct health health;           /* endpoint breakers: reports and mirror */
    struct throttle throttle;       /* slots of rate-limited origins */
    struct deliver_env env;
    uint64_t next_seq;              /* last seq handed out */
    int in_flight;                  /* deliveries started, not finished */
    int reserved;                   /* jobs asked for by fetches not yet answered */
    int refill_at;                  /* fetch once this many slots are free */
    enum fetch_state fetch_state;   /* what the fetch connection is doing */
    enum pull_state pull;           /* pulls of parked jobs, on the ack connection */
    int queue_empty;                /* last fetch found nothing: BLMOVE next */
    char fetch_error[256];          /* last fetch error logged, "" when fine */
    char parked_error[256];         /* last parked list FETCH left untouched */
    char promote_error[256];        /* last PROMOTE error logged */
    char reap_error[256];           /* last reaper error or skip logged */
    char hb_error[256];             /* last heartbeat error logged */
    int registered;                 /* first heartbeat confirmed */
    enum stop_mode mode;
    int cut;                        /* drain time over: requests cut, grace running */
    int exit_code;
    struct lost_range *lost;        /* fetches whose reply was lost */
    size_t nlost;
    uv_signal_t sig_term, sig_int, sig_quit;
    uv_timer_t hb_timer, reap_timer, pause_timer, stop_timer, promote_timer, refill_timer;
    uv_timer_t sweep_timer;         /* parks jobs waiting for a stalled origin */
    uint64_t promote_at;            /* uv_now() the promote timer fires, 0 = idle */
    uint64_t ack_up_since;          /* uv_now() the ack connection came up */
    int promote_busy;               /* a PROMOTE is outstanding */
    struct stats_slot *stats;       /* this process's shared counters, or NULL */
};

static void fetch_next(struct worker *w, int refill_over);
static void maybe_finish(struct worker *w);
static void send_heartbeat(struct worker *w);

void worker_make_id(char out[WORKER_ID_MAX], int pid, long long start_ms)
{
    char host[64];

    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "unknown");
    host[sizeof(host) - 1] = '\0';
    snprintf(out, WORKER_ID_MAX, "%s:%d:%lld", host, pid, start_ms);
}

/* ---- fetching ------------------------------------------------------------- */

struct fetch_op {
    struct worker *w;
    int pull;                       /* a pull of parked jobs, on the ack connection */
    uint64_t base;
    int max;
};

/* After any event: let the fetch side and the stop side move. */
static void progress(struct worker *w)
{
    if (w->mode == CLOSING)
        return;
    fetch_next(w, 0);
    maybe_finish(w);
}

static void on_pause_timer(uv_timer_t *t)
{
    struct worker *w = t->data;

    if (w->fetch_state == F_PAUSED)
        w->fetch_state = F_IDLE;
    if (w->pull == PULL_PAUSED)
        w->pull = PULL_IDLE;
    progress(w);
}

/* An error reply: say it (once per distinct text, not once a second while
 * it lasts) and start the pause after which the caller asks again. */
static void pause_after(struct worker *w, const char *what, struct redisReply *reply)
{
    const char *msg = redis_reply_str(reply, NULL);

    if (log_changed(w->fetch_error, sizeof(w->fetch_error), msg))
        log_error("%s failed: %s; retrying every %d ms", what, msg ? msg : "?", ERROR_PAUSE_MS);
    stats_redis_error(w->stats);
    uv_timer_start(&w->pause_timer, on_pause_timer, ERROR_PAUSE_MS, 0);
}

/* Parked lists FETCH left untouched (origin, reason pairs): their jobs
 * stay where they are; said once per distinct reason. */
static void note_refused(struct worker *w, const struct redisReply *pairs)
{
    for (size_t i = 0; i + 1 < redis_reply_elements(pairs); i += 2) {
        const char *origin = redis_reply_str(redis_reply_element(pairs, i), NULL);
        const char *why = redis_reply_str(redis_reply_element(pairs, i + 1), NULL);
        if (origin != NULL && why != NULL &&
            log_changed(w->parked_error, sizeof(w->parked_error), why))
            log_error("cannot take parked jobs of %s: %s; they stay parked", origin, why);
    }
}

/* Which origins have parked jobs, from a FETCH reply. */
static void note_parked(struct worker *w, const struct redisReply *list)
{
    const char *origins[HOSTS_PARKED_MAX];
    size_t lens[HOSTS_PARKED_MAX], n = 0;

    for (size_t i = 0; i < redis_reply_elements(list) && n < HOSTS_PARKED_MAX; i++)
        if ((origins[n] = redis_reply_str(redis_reply_element(list, i), &lens[n])) != NULL)
            n++;
    hosts_set_parked(w->hosts, origins, lens, n);
}

/* A FETCH's jobs: start a delivery for each. deliver_start never reports a
 * delivery finished before it returns, so nothing here changes under the
 * loop. */
static void start_jobs(struct worker *w, const struct fetch_op *op,
                       const struct redisReply *reply)
{
    const struct redisReply *jobs = redis_reply_element(reply, 0);
    size_t n = redis_reply_elements(jobs);

    if (log_recovered(w->fetch_error))
        log_info("fetching works again");
    if (!op->pull)
        w->queue_empty = n < (size_t)op->max;
    note_parked(w, redis_reply_element(reply, 1));
    note_refused(w, redis_reply_element(reply, 2));
    health_note_fetch(&w->health, redis_reply_element(reply, 3), redis_reply_element(reply, 4));
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        const char *job = redis_reply_str(redis_reply_element(jobs, i), &len);
        w->in_flight++;
        deliver_start(&w->env, op->base + i + 1, job ? job : "", job ? len : 0);
    }
    stats_set_in_flight(w->stats, w->in_flight);
}

static void on_fetch_reply(struct redis_conn *c, struct redisReply *reply, void *arg)
{
    struct fetch_op *op = arg;
    struct worker *w = op->w;

    (void)c;
    if (op->pull)
        w->pull = PULL_IDLE;
    else
        w->fetch_state = F_IDLE;
    w->reserved -= op->max;
    if (reply == NULL) {
        /* The script may have run: its jobs would sit in our in-flight hash
         * unseen. Give that seq range back to the queue once reconnected. */
        w->lost = xrealloc(w->lost, (w->nlost + 1) * sizeof(*w->lost));
        w->lost[w->nlost].lo = op->base + 1;
        w->lost[w->nlost].hi = op->base + (uint64_t)op->max;
        w->nlost++;
    } else if (redis_reply_is_error(reply) &&
               strcmp(redis_reply_str(reply, NULL), QUEUE_NOT_REGISTERED) == 0) {
        /* Our heartbeat expired (we were cut off, or slow) and a reaper has
         * requeued our jobs and forgotten us; jobs fetched now would be in
         * nobody's care if we died. Register again, then fetch. */
        if (w->registered)
            log_warn("not registered any more (heartbeat expired; a reaper requeued this "
                     "worker's jobs); registering again before fetching");
        w->registered = 0;
        stats_set_state(w->stats, STATS_REGISTERED, 0);
        send_heartbeat(w);
    } else if (redis_reply_is_error(reply)) {
        if (op->pull)
            w->pull = PULL_PAUSED;
        else
            w->fetch_state = F_PAUSED;
        pause_after(w, "fetch", reply);
    } else if (w->mode == RUNNING) {
        start_jobs(w, op, reply);
    }
    /* else stopping: these jobs stay in the in-flight hash and go back to
     * the queue with the final reclaim. */
    free(op);
    progress(w);
}

static void on_wait_reply(struct redis_conn *c, struct redisReply *reply, void *arg)
{
    struct worker *w = arg;

    (void)c;
    w->fetch_state = F_IDLE;
    /* The queue has a job (fetch takes it and more), or a second passed
     * with none: fetch anyway, to hear which origins have parked jobs. An
     * error: let FETCH try next, its type guard explains what is wrong. */
    if (reply != NULL)
        w->queue_empty = 0;
    if (reply != NULL && redis_reply_is_error(reply)) {
        w->fetch_state = F_PAUSED;
        pause_after(w, "BLMOVE", reply);
    }
    progress(w);
}

static void on_release_reply(struct redis_conn *c, struct redisReply *reply, void *arg)
{
    struct worker *w = arg;

    (void)c;
    w->fetch_state = F_IDLE;
    if (reply != NULL && redis_reply_is_error(reply)) {
        /* Refused (a clobbered key, Redis at maxmemory): ask again after a
         * pause, not at once in a loop. A lost reply (NULL) is asked again
         * when the connection is back. */
        w->fetch_state = F_PAUSED;
        pause_after(w, "requeueing the jobs of a lost fetch", reply);
    } else if (reply != NULL) {
        if (redis_reply_integer(reply) > 0)
            log_info("requeued %lld jobs of a fetch whose reply was lost",
                     redis_reply_integer(reply));
        w->nlost--;
        memmove(w->lost, w->lost + 1, w->nlost * sizeof(*w->lost));
    }
    progress(w);
}

static void on_refill_timer(uv_timer_t *t)
{
    struct worker *w = t->data;

    if (w->fetch_state != F_REFILL)
        return;
    w->fetch_state = F_IDLE;
    fetch_next(w, 1);
}

/* How long a probe granted by FETCH may take before another worker may
 * probe instead: the longest an attempt lasts, and a margin to record it. */
static long probe_ms(const struct worker *w)
{
    return w->cfg->timeout_ms + 5000;
}

/* Send FETCH for up to max jobs (the parked ones planned in origins/counts
 * first): on the fetch connection, or for a pull (the fetch connection
 * blocks) on the ack connection. The whole seq range is reserved even if
 * fewer jobs come back, so a seq is never reused within this worker id. */
static void send_fetch(struct worker *w, int pull, int max, const char **origins,
                       const int *counts, size_t npull)
{
    struct fetch_op *op = xmalloc(sizeof(*op));

    op->w = w;
    op->pull = pull;
    op->base = w->next_seq;
    op->max = max;
    if (queue_fetch(pull ? &w->ack : &w->fetch, &w->keys, op->base, max, probe_ms(w), origins,
                    counts, npull, on_fetch_reply, op) < 0) {
        free(op);
        return;
    }
    w->next_seq += (uint64_t)max;
    w->reserved += max;
    if (pull)
        w->pull = PULL_BUSY;
    else
        w->fetch_state = F_FETCHING;
}

/* Slots free: max_in_flight less the jobs this worker holds, or may hold,
 * in its in-flight hash: the deliveries running, the outcomes Redis has not
 * confirmed yet, and what fetches still unanswered may bring. So a worker
 * killed -9 leaves at most max_in_flight jobs to requeue (and, at most, as
 * many duplicates). */
static int free_slots(const struct worker *w)
{
    return w->cfg->max_in_flight - w->in_flight - w->reserved -
           (int)outbox_records(&w->outbox);
}

/* Whether the worker takes new jobs at all: running, registered (FETCH
 * takes none for a worker the reaper may have forgotten), and able to
 * record outcomes (while RECORD fails as a whole, each new job would only
 * add to what waits in memory). */
static int taking_jobs(const struct worker *w)
{
    return w->mode == RUNNING && w->registered && !outbox_failing(&w->outbox);
}

/* Jobs one fetch may take now. */
static int fetch_size(const struct worker *w)
{
    int slots = free_slots(w);

    return slots < w->cfg->fetch_batch ? slots : w->cfg->fetch_batch;
}

/* An origin's room, as its breaker and its rate limit have it (hosts_room_fn). */
static int pull_room(void *arg, const char *origin, int room)
{
    struct worker *w = arg;

    return throttle_room(&w->throttle, origin, health_pull_room(&w->health, origin, room));
}

/* While the fetch connection blocks in BLMOVE, parked jobs of an origin
 * that has room again come through the ack connection instead: otherwise
 * each slot freed would wait out the BLMOVE. */
static void maybe_pull(struct worker *w)
{
    const char *origins[QUEUE_PULL_MAX];
    int counts[QUEUE_PULL_MAX], max = 0;
    size_t npull;

    if (w->pull != PULL_IDLE || !taking_jobs(w) || !w->ack.up || fetch_size(w) <= 0)
        return;
    npull = hosts_pull_plan(w->hosts, fetch_size(w), time_mono_ms(), pull_room, w, origins,
                            counts, QUEUE_PULL_MAX);
    for (size_t i = 0; i < npull; i++)
        max += counts[i];
    if (npull > 0)
        send_fetch(w, 1, max, origins, counts, npull);
}

/* The one place that decides what the fetch connection does next (the
 * state machine at the top of this file). refill_over: REFILL_WAIT_MS has
 * passed, fetch whatever slots are free. */
static void fetch_next(struct worker *w, int refill_over)
{
    const char *origins[QUEUE_PULL_MAX];
    int counts[QUEUE_PULL_MAX], slots = free_slots(w);
    size_t npull;

    if (w->fetch_state == F_WAITING)
        maybe_pull(w);
    if ((w->fetch_state != F_IDLE && w->fetch_state != F_REFILL) || !w->fetch.up)
        return;
    if (w->nlost > 0) {
        uv_timer_stop(&w->refill_timer);
        w->fetch_state = F_IDLE;
        if (queue_release_range(&w->fetch, &w->keys, w->lost[0].lo, w->lost[0].hi,
                                on_release_reply, w) == 0)
            w->fetch_state = F_RELEASING;
        return;
    }
    if (!taking_jobs(w) || slots <= 0)
        return;
    /* Wait for refill_at free slots so that a round trip brings a
     * worthwhile batch, but never longer than REFILL_WAIT_MS: with slow
     * endpoints slots free up rarely, and jobs must not sit in the queue
     * while a slot is free. */
    if (slots < w->refill_at && w->in_flight > 0 && !refill_over) {
        if (w->fetch_state == F_IDLE) {
            uv_timer_start(&w->refill_timer, on_refill_timer, REFILL_WAIT_MS, 0);
            w->fetch_state = F_REFILL;
        }
        return;
    }
    uv_timer_stop(&w->refill_timer);
    w->fetch_state = F_IDLE;
    npull = hosts_pull_plan(w->hosts, fetch_size(w), time_mono_ms(), pull_room, w, origins,
                            counts, QUEUE_PULL_MAX);
    if (w->queue_empty && npull == 0) {
        if (queue_wait(&w->fetch, &w->keys, WAIT_TIMEOUT_S, on_wait_reply, w) == 0)
            w->fetch_state = F_WAITING;
        return;
    }
    send_fetch(w, 0, fetch_size(w), origins, counts, npull);
}

static void on_sweep_timer(uv_timer_t *t)
{
    struct worker *w = t->data;

    if (w->mode == RUNNING)
        deliver_park_stalled(&w->env);
}

static void on_delivery_finished(void *arg, unsigned n)
{
    struct worker *w = arg;

    w->in_flight -= (int)n;
    stats_set_in_flight(w->stats, w->in_flight);
    progress(w);
}

/* redis.c reports each change of a connection's state once; saying it is
 * ours. */
static void say_redis_state(const struct redis_conn *c, enum redis_state state,
                            const char *why)
{
    char where[512];

    redis_describe(c, where, sizeof(where));
    if (state == REDIS_UP)
        log_info("redis %s connection to %s up", c->name, where);
    else if (state == REDIS_LOST)
        log_warn("redis %s connection to %s lost (%s); reconnecting", c->name, where, why);
    else
        log_warn("redis %s connection to %s failed: %s; retrying", c->name, where, why);
}

static void on_fetch_state(struct redis_conn *c, enum redis_state state, const char *why,
                           void *arg)
{
    struct worker *w = arg;

    say_redis_state(c, state, why);
    stats_set_state(w->stats, STATS_FETCH_UP, state == REDIS_UP && w->mode == RUNNING);
    if (state != REDIS_UP)
        stats_redis_error(w->stats);
    if (state == REDIS_UP) {
        w->queue_empty = 0;     /* jobs may have come meanwhile */
        progress(w);
    }
}

/* ---- retries: every worker promotes due entries ---------------------------
 *
 * There is no scheduler process whose death would stop retries: each worker
 * runs PROMOTE when the earliest entry it knows of falls due (as PROMOTE
 * itself reports, or as its own RECORD of a retry says), and at least every
 * PROMOTE_IDLE_MS for entries other hosts added. */

static void on_promote_timer(uv_timer_t *t);

static void arm_promote(struct worker *w, long delay_ms)
{
    uint64_t at;

    if (w->mode != RUNNING)
        return;
    if (delay_ms < 0)
        delay_ms = 0;
    at = uv_now(&w->loop) + (uint64_t)delay_ms + (uint64_t)(random() % (PROMOTE_JITTER_MS + 1));
    if (w->promote_at != 0 && w->promote_at <= at)
        return;
    w->promote_at = at;
    uv_timer_start(&w->promote_timer, on_promote_timer, at - uv_now(&w->loop), 0);
}

static void on_promote_reply(struct redis_conn *c, struct redisReply *reply, void *arg)
{
    struct worker *w = arg;

    (void)c;
    w->promote_busy = 0;
    if (redis_reply_is_error(reply)) {
        const char *msg = redis_reply_str(reply, NULL);
        if (reply != NULL && log_changed(w->promote_error, sizeof(w->promote_error), msg))
            log_error("promoting retries failed: %s; retrying every %d ms", msg,
                      PROMOTE_IDLE_MS);
        arm_promote(w, PROMOTE_IDLE_MS);
        return;
    }
    if (log_recovered(w->promote_error))
        log_info("promoting retries works again");
    long long moved = redis_reply_integer(redis_reply_element(reply, 0));
    long long wait = redis_reply_integer(redis_reply_element(reply, 1));
    if (moved >= PROMOTE_BATCH)
        arm_promote(w, 0);
    else
        arm_promote(w, wait >= 0 && wait < PROMOTE_IDLE_MS ? (long)wait : PROMOTE_IDLE_MS);
}

static void on_promote_timer(uv_timer_t *t)
{
    struct worker *w = t->data;

    w->promote_at = 0;
    if (w->promote_busy || w->mode != RUNNING)
        return;
    if (!w->ack.up) {
        arm_promote(w, PROMOTE_IDLE_MS);
        return;
    }
    if (queue_promote(&w->ack, &w->keys, PROMOTE_BATCH, on_promote_reply, w) == 0)
        w->promote_busy = 1;
}

static void on_retry_recorded(void *arg, long delay_ms)
{
    arm_promote(arg, delay_ms);
}

/* ---- heartbeat and reaper ------------------------------------------------ */

static void on_heartbeat_reply(struct redis_conn *c, struct redisReply *reply, void *arg)
{
    struct worker *w = arg;

    (void)c;
    if (redis_reply_is_error(reply)) {
        const char *msg = redis_reply_str(reply, NULL);
        if (reply != NULL && log_changed(w->hb_error, sizeof(w->hb_error), msg))
            log_error("heartbeat failed: %s", msg);
        return;
    }
    if (log_recovered(w->hb_error))
        log_info("heartbeat works again");
    if (!w->registered) {
        w->registered = 1;
        stats_set_state(w->stats, STATS_REGISTERED, w->mode == RUNNING);
        log_info("registered; taking jobs from %s", w->keys.queue);
        progress(w);
    }
}

static void send_heartbeat(struct worker *w)
{
    if (w->ack.up && w->mode < CLOSING)
        queue_heartbeat(&w->ack, &w->keys, w->cfg->heartbeat_ttl_ms, w->info,
                        on_heartbeat_reply, w);
}

static void on_hb_timer(uv_timer_t *t)
{
    send_heartbeat(t->data);
}

/* RECLAIM's own options: how many crashes make a job poison. */
static struct queue_reclaim reclaim_opts(const struct worker *w, int crashed)
{
    struct queue_reclaim r = { crashed, w->cfg->poison_after, w->cfg->dead_max };

    return r;
}

static void on_reap_reply(struct redis_conn *c, struct redisReply *reply, void *arg)
{
    struct worker *w = arg;
    const char *why;

    (void)c;
    if (reply == NULL)
        return;
    /* An error, or a dead worker left alone because its keys hold other
     * types (its jobs stay where they are): said once per distinct text. */
    why = redis_reply_is_error(reply)
              ? redis_reply_str(reply, NULL)
              : redis_reply_str(redis_reply_element(redis_reply_element(reply, 2), 0), NULL);
    if (why == NULL)
        log_recovered(w->reap_error);  /* fine again: a recurrence is said anew */
    else if (log_changed(w->reap_error, sizeof(w->reap_error), why))
        log_error("reaper: %s", why);
    if (redis_reply_is_error(reply))
        return;
    long long requeued = redis_reply_integer(redis_reply_element(reply, 0));
    long long dead = redis_reply_integer(redis_reply_element(reply, 1));
    if (requeued > 0 || dead > 0)
        log_warn("requeued %lld jobs of workers whose heartbeat expired (%lld dead-lettered as "
                 "worker_crashed)", requeued, dead);
}

static void on_reap_timer(uv_timer_t *t)
{
    struct worker *w = t->data;

    /* After an outage every worker's heartbeat may have expired. Reaping
     * before the others have had a heartbeat period to reconnect would
     * requeue the jobs of live workers: harmless (at-least-once) but a
     * wave of duplicates. So a worker reaps only once it has itself been
     * connected for a whole heartbeat_ttl. */
    if (w->ack.up && w->mode == RUNNING &&
        uv_now(&w->loop) - w->ack_up_since >= (uint64_t)w->cfg->heartbeat_ttl_ms) {
        struct queue_reclaim r = reclaim_opts(w, 1);
        queue_reap(&w->ack, &w->keys, &r, on_reap_reply, w);
    }
}

static void begin_stop(struct worker *w, int immediate);

/* After a failover, or a restart that lost what it had acknowledged, Redis
 * may have taken back writes this worker acted on: outcomes recorded and
 * forgotten here are in flight there again, under this worker, which no
 * longer holds them. Nothing else would ever requeue them while the worker
 * lives. So a worker that finds a different server (its run_id) drains,
 * requeues what its in-flight record holds, and exits for the supervisor
 * to start a fresh one: those jobs are delivered again (at least once),
 * not left behind. */
static void on_server_info(struct redis_conn *c, struct redisReply *reply, void *arg)
{
    struct worker *w = arg;
    const char *info = redis_reply_str(reply, NULL);
    const char *p = info ? strstr(info, "run_id:") : NULL;
    char id[sizeof(w->server_id)];
    char where[512];

    if (p == NULL)
        return;     /* lost with the connection: asked again when it is back */
    snprintf(id, sizeof(id), "%.*s", (int)strcspn(p + 7, "\r\n"), p + 7);
    if (w->server_id[0] != '\0' && strcmp(id, w->server_id) != 0 && w->mode == RUNNING) {
        redis_describe(c, where, sizeof(where));
        log_warn("redis at %s is another server than before (run_id %.8s, was %.8s): a "
                 "failover or restart may have lost writes it acknowledged; finishing what "
                 "this worker holds and restarting it, so that its in-flight jobs are "
                 "requeued", where, id, w->server_id);
        begin_stop(w, 0);
    }
    snprintf(w->server_id, sizeof(w->server_id), "%s", id);
}

static void on_ack_state(struct redis_conn *c, enum redis_state state, const char *why,
                         void *arg)
{
    struct worker *w = arg;

    say_redis_state(c, state, why);
    if (state != REDIS_UP) {
        stats_redis_error(w->stats);
        return;
    }
    w->ack_up_since = uv_now(&w->loop);
    queue_server_info(&w->ack, on_server_info, w);
    send_heartbeat(w);
    outbox_flush(&w->outbox);
    dedupe_flush(&w->dedupe);
    health_flush(&w->health);
    throttle_flush(&w->throttle);
    arm_promote(w, 0);
    progress(w);
}

/* ---- stopping --------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void on_ack_closed(struct redis_conn *c)
{
    struct worker *w = c->state_arg;

    /* Pending ack callbacks have run (with NULL); now nothing refers to
     * the outbox any more. */
    outbox_close(&w->outbox);
}

static void close_all(struct worker *w)
{
    if (w->mode == CLOSING)
        return;
    w->mode = CLOSING;
    uv_close((uv_handle_t *)&w->sig_term, on_handle_closed);
    uv_close((uv_handle_t *)&w->sig_int, on_handle_closed);
    uv_close((uv_handle_t *)&w->sig_quit, on_handle_closed);
    /* The stop is decided: a later SIGTERM (the supervisor's own stop
     * reaching a retiree already on its way out) must not kill the worker
     * by the default action, which the supervisor would take for a crash.
     * After the closes: closing its last handle of a signal, libuv puts
     * the default action back. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    uv_close((uv_handle_t *)&w->hb_timer, on_handle_closed);
    uv_close((uv_handle_t *)&w->reap_timer, on_handle_closed);
    uv_close((uv_handle_t *)&w->pause_timer, on_handle_closed);
    uv_close((uv_handle_t *)&w->stop_timer, on_handle_closed);
    uv_close((uv_handle_t *)&w->promote_timer, on_handle_closed);
    uv_close((uv_handle_t *)&w->refill_timer, on_handle_closed);
    uv_close((uv_handle_t *)&w->sweep_timer, on_handle_closed);
    /* Before the http client: the requests it cuts finish deliveries, and
     * nobody counts them any more. */
    deliver_env_close(&w->env, on_handle_closed);
    if (w->http != NULL) {
        http_client_close(w->http);
        w->http = NULL;
        w->env.http = NULL;     /* deliveries still being accepted do not start */
    }
    dedupe_close(&w->dedupe);
    health_close(&w->health);
    throttle_close(&w->throttle);
    redis_close(&w->fetch, NULL);
    redis_close(&w->ack, on_ack_closed);
}

static void on_reclaim_reply(struct redis_conn *c, struct redisReply *reply, void *arg)
{
    struct worker *w = arg;
    long long n = redis_reply_integer(redis_reply_element(reply, 0));

    (void)c;
    if (redis_reply_is_error(reply)) {
        log_error("could not requeue own jobs (%s); the supervisor or another worker will",
                  reply ? redis_reply_str(reply, NULL) : "connection lost");
        w->exit_code = 1;
    } else if (n > 0) {
        log_info("requeued %lld unfinished jobs", n);
    }
    log_info("stopped");
    close_all(w);
}

/* Done when nothing is in flight, no fetch can still add jobs, and every
 * outcome is confirmed: then the remaining in-flight record (jobs cut by a
 * shutdown) goes back to the queue and the worker unregisters. A BLMOVE
 * still waiting is not waited for: it moves nothing (queue_wait), and the
 * fetch connection is closed after the reclaim. */
static void maybe_finish(struct worker *w)
{
    struct queue_reclaim r = reclaim_opts(w, 0);
    size_t held;

    if (w->mode == DRAINING && !w->ack.reported_up && w->in_flight == 0 &&
        w->pull != PULL_BUSY && outbox_pending(&w->outbox) == 0) {
        /* Redis is away and nothing here waits to be recorded: waiting out
         * shutdown_timeout would change nothing. What Redis may still hold
         * under this worker (a fetch whose reply was lost) is requeued by
         * the supervisor's reclaim, or by the heartbeat reaper. */
        log_warn("redis unreachable and nothing to record: stopping without unregistering%s",
                 w->nlost > 0 ? "; the jobs of a lost fetch are requeued by the supervisor or "
                                "the heartbeat reaper" : "");
        close_all(w);
        return;
    }
    if (w->mode != DRAINING || w->in_flight > 0 || w->fetch_state == F_FETCHING ||
        w->fetch_state == F_RELEASING || w->pull == PULL_BUSY || w->nlost > 0 ||
        outbox_pending(&w->outbox) > 0 || !w->ack.up)
        return;
    /* Outcomes Redis keeps refusing are not waited for: their jobs are
     * still in the in-flight hash, and the reclaim below requeues them. */
    if ((held = outbox_drop_held(&w->outbox)) > 0)
        log_warn("stopping with %zu outcomes Redis refused to record; their jobs are requeued",
                 held);
    w->mode = FINISHING;
    if (queue_reclaim_async(&w->ack, &w->keys, &r, on_reclaim_reply, w) < 0)
        w->mode = DRAINING;     /* connection just dropped: try when back */
}

static void on_stop_timer(uv_timer_t *t)
{
    struct worker *w = t->data;

    if (!w->cut) {
        /* Drain time is up (at once on SIGQUIT): cut what is left. Those
         * jobs get no outcome and are requeued by the reclaim; give Redis a
         * moment more for that, also when no request happens to be running:
         * jobs held elsewhere (a dedupe check, an outcome not confirmed yet)
         * still need their reclaim, and after a supervisor's death nobody
         * else is there to do it. */
        w->cut = 1;
        if (w->http != NULL) {
            if (http_running(w->http) > 0)
                log_warn("shutdown timeout: cutting %zu requests in flight",
                         http_running(w->http));
            http_client_close(w->http);
            w->http = NULL;
            w->env.http = NULL; /* deliveries still being accepted do not start */
        }
        uv_timer_start(&w->stop_timer, on_stop_timer, QUIT_GRACE_MS, 0);
        progress(w);
        return;
    }
    log_error("could not record outcomes or requeue before the deadline (redis down?); "
              "exiting, the supervisor will requeue");
    w->exit_code = 1;
    close_all(w);
}

static void begin_stop(struct worker *w, int immediate)
{
    if (w->mode != RUNNING) {
        if (immediate && w->http != NULL) {
            uv_timer_stop(&w->stop_timer);
            on_stop_timer(&w->stop_timer);
        }
        return;
    }
    w->mode = DRAINING;
    /* A draining worker takes no jobs: it must not make /readyz say yes. */
    stats_set_state(w->stats, STATS_REGISTERED | STATS_FETCH_UP, 0);
    log_info("stopping (%s): %d in flight", immediate ? "now" : "draining", w->in_flight);
    deliver_drop_waiting(&w->env);
    uv_timer_stop(&w->reap_timer);
    uv_timer_stop(&w->promote_timer);
    /* Requests in flight get shutdown_timeout less the time needed to
     * record and requeue afterwards, so the worker is gone within
     * shutdown_timeout as promised. */
    long drain = w->cfg->shutdown_timeout_ms - STOP_MARGIN_MS(w->cfg->shutdown_timeout_ms);
    uv_timer_start(&w->stop_timer, on_stop_timer, immediate ? 0 : (uint64_t)drain, 0);
    progress(w);
}

static void on_signal(uv_signal_t *h, int signum)
{
    begin_stop(h->data, signum == SIGQUIT);
}

/* Outcomes confirmed: their slots are free, and a stop may be done. */
static void on_outbox_confirmed(void *arg)
{
    progress(arg);
}

/* ---- setup ------------------------------------------------------------------- */

/* What deliver reads of the settings. The strings stay cfg's: it outlives
 * the worker's loop, and so every delivery. */
static void deliver_opts_from_config(struct deliver_opts *o, const struct config *cfg)
{
    o->retry = cfg->retry;
    o->log_failures = cfg->attempt_log != ATTEMPT_LOG_OFF;
    o->log_successes = cfg->attempt_log == ATTEMPT_LOG_ALL;
    o->log_deliveries = cfg->log_deliveries;
    o->secret = cfg->secret;
    o->secret_previous = cfg->secret_previous;
    o->secret_previous_until = cfg->secret_previous_until;
    o->user_agent = cfg->user_agent;
    o->timeout_ms = cfg->timeout_ms;
    o->batch_ttl_ms = cfg->batch_ttl_ms;
    o->unknown_batch_wait_ms = cfg->unknown_batch_wait_ms;
    o->dedupe_window_ms = cfg->dedupe_window_ms;
}

static void breaker_from_config(struct queue_breaker *b, const struct config *cfg)
{
    b->on = cfg->breaker;
    b->window_ms = cfg->breaker_window_ms;
    b->min_requests = cfg->breaker_min_requests;
    b->threshold_pct = cfg->breaker_failure_threshold;
    b->cooldown_ms = cfg->breaker_cooldown_ms;
    b->cooldown_max_ms = cfg->breaker_cooldown_max_ms;
    b->disable_after_ms = cfg->disable_after_ms;
    b->events_max = cfg->events_max;
}

/* The worker's modules, on its loop and its ack connection. */
static void wire_modules(struct worker *w)
{
    const struct config *cfg = w->cfg;
    struct queue_breaker breaker;

    outbox_init(&w->outbox, &w->loop, &w->ack, &w->keys, cfg->dead_max, cfg->attempt_log_max);
    w->outbox.wait_replicas = cfg->redis_wait_replicas;
    w->outbox.on_confirmed = on_outbox_confirmed;
    w->outbox.on_retry_recorded = on_retry_recorded;
    w->outbox.arg = w;
    dedupe_init(&w->dedupe, &w->loop, &w->ack, &w->keys, cfg->dedupe_window_ms);
    w->env.dedupe = cfg->dedupe_window_ms > 0 ? &w->dedupe : NULL;
    breaker_from_config(&breaker, cfg);
    health_init(&w->health, &w->loop, &w->ack, &w->keys, &breaker, cfg->ops_webhook_url);
    w->env.health = &w->health;
    throttle_init(&w->throttle, &w->loop, &w->ack, &w->keys, cfg->rate_limits,
                  cfg->nrate_limits);
    w->env.throttle = &w->throttle;
    deliver_opts_from_config(&w->env.opts, cfg);
    w->env.http = w->http;
    w->env.outbox = &w->outbox;
    w->env.hosts = w->hosts;
    w->env.wid = w->wid;
    w->env.limits.max_job_bytes = cfg->max_job_bytes;
    w->env.limits.max_depth = 64;
    w->env.on_finished = on_delivery_finished;
    w->env.arg = w;
    w->env.stats = w->stats;
    deliver_env_init(&w->env, &w->loop);
}

/* Timers and signal handlers; every one is closed by close_all. */
static void start_handles(struct worker *w)
{
    const struct config *cfg = w->cfg;
    uv_timer_t *timers[] = { &w->hb_timer, &w->reap_timer, &w->pause_timer, &w->stop_timer,
                             &w->promote_timer, &w->refill_timer, &w->sweep_timer };
    uv_signal_t *sigs[] = { &w->sig_term, &w->sig_int, &w->sig_quit };
    const int signums[] = { SIGTERM, SIGINT, SIGQUIT };

    for (size_t i = 0; i < sizeof(timers) / sizeof(*timers); i++) {
        uv_timer_init(&w->loop, timers[i]);
        timers[i]->data = w;
    }
    uv_timer_start(&w->hb_timer, on_hb_timer, (uint64_t)cfg->heartbeat_ttl_ms / 3,
                   (uint64_t)cfg->heartbeat_ttl_ms / 3);
    /* Reapers on every worker, spread by pid, so no single process's death
     * stops recovery. */
    uint64_t reap_every = (uint64_t)cfg->heartbeat_ttl_ms / 2 + (uint64_t)(getpid() % 997);
    uv_timer_start(&w->reap_timer, on_reap_timer, reap_every, reap_every);
    uv_timer_start(&w->sweep_timer, on_sweep_timer, HOSTS_STALL_MS / 4, HOSTS_STALL_MS / 4);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(*sigs); i++) {
        uv_signal_init(&w->loop, sigs[i]);
        sigs[i]->data = w;
        uv_signal_start(sigs[i], on_signal, signums[i]);
    }
}

int worker_run(const struct config *cfg, const char *wid, struct stats_slot *stats)
{
    struct worker *w = xcalloc(1, sizeof(*w));
    struct http_options hopt = {
        .capture_bytes = cfg->response_capture_bytes, .ca_file = cfg->ca_file,
        .ca_path = cfg->ca_path, .client_cert = cfg->client_cert,
        .client_key = cfg->client_key, .max_response_bytes = cfg->max_response_bytes,
        .dest = &cfg->dest, .resolve = cfg->resolve,
        .max_host_connections = cfg->max_per_host,
        .max_connections = rlimit_idle_connections(cfg->max_in_flight),
    };
    char started[TIME_ISO_LEN + 1];
    int rc;

    signal(SIGPIPE, SIG_IGN);
    log_set_process(wid);
    /* A CA bundle that vanished (a botched deploy) makes every https
     * delivery fail; refuse to start instead, so the supervisor's crash
     * backoff shows it loudly until the file is back. */
    if (cfg->ca_file != NULL && access(cfg->ca_file, R_OK) != 0) {
        log_error("cannot read ca_file %s: %s", cfg->ca_file, strerror(errno));
        free(w);
        return 1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("curl_global_init() failed");
        free(w);
        return 1;
    }
    uv_loop_init(&w->loop);
    w->cfg = cfg;
    w->stats = stats;
    snprintf(w->wid, sizeof(w->wid), "%s", wid);
    time_format_iso(time_now_ms(), started);
    snprintf(w->info, sizeof(w->info),
             "{\"pid\":%d,\"started\":\"%s\",\"max_in_flight\":%d}", (int)getpid(), started,
             cfg->max_in_flight);
    keys_init(&w->keys, cfg->prefix, wid);
    w->refill_at = cfg->max_in_flight / 4 < cfg->fetch_batch ? cfg->max_in_flight / 4
                                                               : cfg->fetch_batch;
    if (w->refill_at < 1)
        w->refill_at = 1;

    w->hosts = hosts_new(cfg->max_per_host);
    w->http = http_client_new(&w->loop, &hopt);
    if (w->http == NULL) {
        log_error("curl_multi_init() failed");
        hosts_free(w->hosts);
        free(w);
        return 1;
    }
    wire_modules(w);
    srandom((unsigned)getpid() ^ (unsigned)time_now_ms());
    start_handles(w);
    redis_init(&w->ack, &w->loop, &cfg->addr, "ack", CMD_TIMEOUT_MS, on_ack_state, w);
    /* The fetch connection's blocking BLMOVE legitimately waits
     * WAIT_TIMEOUT_S; its watchdog allows for that. */
    redis_init(&w->fetch, &w->loop, &cfg->addr, "fetch",
               CMD_TIMEOUT_MS + (long)(WAIT_TIMEOUT_S * 1000), on_fetch_state, w);
    log_info("started: max_in_flight=%d max_per_host=%d fetch_batch=%d", cfg->max_in_flight,
             cfg->max_per_host, cfg->fetch_batch);

    uv_run(&w->loop, UV_RUN_DEFAULT);
    rc = w->exit_code;
    if (uv_loop_close(&w->loop) != 0)
        log_warn("event loop closed with handles still open");
    free(w->lost);
    hosts_free(w->hosts);
    health_free(&w->health);
    free(w);
    curl_global_cleanup();
    return rc;
}
