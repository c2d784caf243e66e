/* metrics.c -- the metrics process: libmicrohttpd serving the shared
 * counters and a few Redis-derived gauges.
 *
 * The only file that includes libmicrohttpd. MHD runs a small pool of its
 * own threads (internal polling), and this process never forks, so the
 * threads are safe; the main thread only waits for a signal. /livez is
 * answered from shared memory alone, so a scrape waiting on a slow Redis
 * (bounded by REDIS_TIMEOUT_MS) never holds a liveness probe up: it is
 * served by another thread of the pool. The Redis gauges are refreshed at
 * most once per CACHE_MS, under a mutex, by whichever request needs them,
 * and by the main thread every second: the backlog age dates jobs by those
 * looks (backlog.h), so they do not wait for a scrape. */
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hookd/backlog.h"
#include "hookd/buf.h"
#include "hookd/keys.h"
#include "hookd/log.h"
#include "hookd/metrics.h"
#include "hookd/parse.h"
#include "hookd/queue.h"
#include "hookd/redis.h"
#include "hookd/timeutil.h"

#define REDIS_TIMEOUT_MS 500    /* connect and each command, per refresh */
#define CACHE_MS 1000           /* Redis is asked at most this often */
#define LIVE_MS 2000            /* the supervisor's loop turns every 200 ms */
#define PARKED_ORIGINS_MAX 1000 /* parked lists summed per refresh */
#define POOL_THREADS 4

/* What Redis said at the last refresh. */
struct gauges {
    int up;                         /* the last refresh succeeded */
    char why[256];                  /* when not: the reason, one line */
    long long ready, retry, dead, parked;
    long long backlog_age_ms;       /* the oldest ready job's (backlog.h) */
    struct queue_endpoint_counts endpoints; /* origins by state (ENDPOINT_COUNTS) */
    int64_t at;                     /* monotonic ms of the refresh, 0 = never */
};

struct metrics {
    const struct metrics_opts *o;
    struct keys keys;
    pthread_mutex_t lock;           /* over everything below */
    struct redis_sync *redis;       /* owned; NULL until connected */
    struct gauges g;
    struct backlog backlog;         /* the left arrivals' dates */
    uint64_t redis_errors;          /* this process's failed refreshes */
};

/* ---- Redis ---------------------------------------------------------------- */

/* One command whose reply is an integer; -1 with err filled on failure. */
static long long integer(struct metrics *m, struct hk_err *err, const char *cmd,
                         const char *key)
{
    const char *argv[] = { cmd, key };
    struct redisReply *r = redis_sync_command(m->redis, 2, argv, NULL, err);
    long long v;

    if (r == NULL)
        return -1;
    v = redis_reply_integer(r);
    redis_reply_free(r);
    return v;
}

/* Jobs in every parked list (the first PARKED_ORIGINS_MAX origins). */
static long long parked_jobs(struct metrics *m, struct hk_err *err)
{
    char stop[16], key[KEYS_MAX];
    const char *argv[] = { "ZRANGE", m->keys.parked, "0", stop };
    struct redisReply *r;
    long long sum = 0;

    snprintf(stop, sizeof(stop), "%d", PARKED_ORIGINS_MAX - 1);
    if ((r = redis_sync_command(m->redis, 4, argv, NULL, err)) == NULL)
        return -1;
    for (size_t i = 0; i < redis_reply_elements(r) && sum >= 0; i++) {
        const char *origin = redis_reply_str(redis_reply_element(r, i), NULL);
        if (origin == NULL || keys_parked_list(&m->keys, origin, key, sizeof(key)) < 0)
            continue;
        long long n = integer(m, err, "LLEN", key);
        sum = n < 0 ? -1 : sum + n;
    }
    redis_reply_free(r);
    return sum;
}

static int query(struct metrics *m, struct gauges *g, struct hk_err *err)
{
    struct backlog_reading r;

    if (m->redis == NULL &&
        (m->redis = redis_sync_connect(m->o->redis, REDIS_TIMEOUT_MS, err)) == NULL)
        return -1;
    if (queue_backlog_sync(m->redis, &m->keys, &r, err) < 0 ||
        (g->retry = integer(m, err, "ZCARD", m->keys.retry)) < 0 ||
        (g->dead = integer(m, err, "LLEN", m->keys.dead)) < 0 ||
        (g->parked = parked_jobs(m, err)) < 0 ||
        queue_endpoint_counts_sync(m->redis, &m->keys, &g->endpoints, err) < 0)
        return -1;
    g->ready = r.len;
    g->backlog_age_ms = backlog_note(&m->backlog, &r);
    return 0;
}

/* Refresh the gauges unless they are fresh; the caller holds the lock. A
 * failed refresh drops the connection (a hiredis context that timed out
 * is unusable) and keeps the last depths, with up = 0. */
static void refresh(struct metrics *m)
{
    int64_t now = time_mono_ms();
    struct hk_err err = { "", "" };

    if (m->g.at != 0 && now - m->g.at < CACHE_MS)
        return;
    m->g.at = now;
    if (query(m, &m->g, &err) == 0) {
        m->g.up = 1;
        return;
    }
    m->g.up = 0;
    m->redis_errors++;
    snprintf(m->g.why, sizeof(m->g.why), "%s", err.msg);
    if (m->redis != NULL) {
        redis_sync_free(m->redis);
        m->redis = NULL;
    }
}

/* The gauges, refreshed first if stale, and (own_errors not NULL) this
 * process's error count. */
static struct gauges gauges_now(struct metrics *m, uint64_t *own_errors)
{
    struct gauges g;

    pthread_mutex_lock(&m->lock);
    refresh(m);
    g = m->g;
    if (own_errors != NULL)
        *own_errors = m->redis_errors;
    pthread_mutex_unlock(&m->lock);
    return g;
}

/* ---- the exposition ------------------------------------------------------- */

static void family(struct buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counters(struct buf *b, const struct stats_totals *t)
{
    family(b, "hookd_deliveries_total", "counter",
           "Jobs by the outcome this instance's workers decided.");
    for (int i = 0; i < STATS_NOUTCOMES; i++)
        buf_printf(b, "hookd_deliveries_total{outcome=\"%s\"} %llu\n", stats_outcome_names[i],
                   (unsigned long long)t->outcomes[i]);
    family(b, "hookd_attempts_total", "counter", "HTTP attempts by result class.");
    for (int i = 0; i < STATS_NRESULTS; i++)
        buf_printf(b, "hookd_attempts_total{result=\"%s\"} %llu\n", stats_result_names[i],
                   (unsigned long long)t->attempts[i]);
    family(b, "hookd_attempt_duration_seconds", "histogram",
           "Duration of HTTP attempts, request start to completion.");
    uint64_t cum = 0;
    for (int i = 0; i < STATS_NBUCKETS; i++) {
        cum += t->buckets[i];
        buf_printf(b, "hookd_attempt_duration_seconds_bucket{le=\"%g\"} %llu\n",
                   stats_bucket_bounds[i], (unsigned long long)cum);
    }
    cum += t->buckets[STATS_NBUCKETS];
    buf_printf(b, "hookd_attempt_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
               "hookd_attempt_duration_seconds_sum %.6f\n"
               "hookd_attempt_duration_seconds_count %llu\n", (unsigned long long)cum,
               (double)t->duration_us / 1e6, (unsigned long long)cum);
}

/* Origins by state, aggregate only: per-origin labels would let the number
 * of series grow with the number of customers. */
static void endpoint_gauges(struct buf *b, const struct queue_endpoint_counts *e)
{
    family(b, "hookd_endpoints", "gauge", "Origins by state: breaker open, half_open (a probe "
           "out), disabled; throttled by their rate limit; with parked jobs. As of the last "
           "successful look (at most 1 s old).");
    buf_printf(b, "hookd_endpoints{state=\"open\"} %lld\nhookd_endpoints{state=\"half_open\"} "
               "%lld\nhookd_endpoints{state=\"disabled\"} %lld\nhookd_endpoints{state="
               "\"throttled\"} %lld\nhookd_endpoints{state=\"parked\"} %lld\n", e->open,
               e->half_open, e->disabled, e->throttled, e->parked);
}

static void exposition(struct metrics *m, struct buf *b)
{
    const struct stats_shm *shm = m->o->shm;
    struct stats_totals t;
    struct gauges g;
    uint64_t own_errors;

    stats_sum(shm, &t);
    g = gauges_now(m, &own_errors);
    counters(b, &t);
    family(b, "hookd_queue_depth", "gauge", "Jobs in Redis by place (ready, retry, dead, "
           "parked), as of the last successful look (at most 1 s old).");
    buf_printf(b, "hookd_queue_depth{queue=\"ready\"} %lld\nhookd_queue_depth{queue=\"retry\"} "
               "%lld\nhookd_queue_depth{queue=\"dead\"} %lld\nhookd_queue_depth{queue=\"parked\"}"
               " %lld\n", g.ready, g.retry, g.dead, g.parked);
    family(b, "hookd_backlog_age_seconds", "gauge",
           "Age of the oldest ready job since it became due (0 when none).");
    /* As of now: the job the last look found has aged since that look
     * (also one that look was the first to see, dated 0 then). */
    buf_printf(b, "hookd_backlog_age_seconds %.3f\n", g.backlog_age_ms > 0 || g.ready > 0 ?
               (double)(g.backlog_age_ms + time_mono_ms() - g.at) / 1000.0 : 0.0);
    endpoint_gauges(b, &g.endpoints);
    family(b, "hookd_in_flight", "gauge", "Jobs held by this instance's workers.");
    buf_printf(b, "hookd_in_flight %lld\n", (long long)t.in_flight);
    family(b, "hookd_workers", "gauge", "Worker processes running.");
    buf_printf(b, "hookd_workers %d\n", (int)atomic_load(&shm->workers));
    family(b, "hookd_worker_restarts_total", "counter", "Workers respawned after exiting.");
    buf_printf(b, "hookd_worker_restarts_total %llu\n",
               (unsigned long long)atomic_load(&shm->worker_restarts));
    family(b, "hookd_redis_up", "gauge", "1 when the last look at Redis succeeded.");
    buf_printf(b, "hookd_redis_up %d\n", g.up);
    family(b, "hookd_redis_errors_total", "counter",
           "Redis connections lost or failed and error replies, in every process.");
    buf_printf(b, "hookd_redis_errors_total %llu\n",
               (unsigned long long)(t.redis_errors + own_errors));
    family(b, "hookd_build_info", "gauge", "Always 1; the version is in the label.");
    buf_printf(b, "hookd_build_info{version=\"%s\"} 1\n", HOOKD_VERSION);
}

/* ---- HTTP ----------------------------------------------------------------- */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             struct buf *body)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        body->len, body->data ? body->data : (char *)"", MHD_RESPMEM_MUST_COPY);
    enum MHD_Result rc;

    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

/* 200 "ready", or 503 with the first reason it is not. */
static unsigned readiness(struct metrics *m, struct buf *b)
{
    struct stats_totals t;
    struct gauges g = gauges_now(m, NULL);

    stats_sum(m->o->shm, &t);
    if (!g.up)
        buf_printf(b, "not ready: redis unreachable: %s\n", g.why);
    else if (t.fetching == 0)
        buf_append_str(b, "not ready: no worker registered and fetching\n");
    else
        buf_printf(b, "ready: %d workers fetching\n", t.fetching);
    return g.up && t.fetching > 0 ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **state)
{
    struct metrics *m = cls;
    struct buf b = BUF_INIT;
    const char *text = "text/plain; charset=utf-8";
    unsigned status = MHD_HTTP_OK;
    enum MHD_Result rc;

    (void)version, (void)upload, (void)upload_size, (void)state;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        status = MHD_HTTP_METHOD_NOT_ALLOWED;
        buf_append_str(&b, "GET only\n");
    } else if (strcmp(url, "/metrics") == 0) {
        exposition(m, &b);
        text = "text/plain; version=0.0.4; charset=utf-8";
    } else if (strcmp(url, "/livez") == 0) {
        int64_t age = time_mono_ms() - atomic_load(&m->o->shm->supervisor_tick_ms);
        status = age < LIVE_MS ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
        buf_printf(&b, "%s: supervisor loop last ran %lld ms ago\n",
                   age < LIVE_MS ? "live" : "not live", (long long)age);
    } else if (strcmp(url, "/readyz") == 0) {
        status = readiness(m, &b);
    } else {
        status = MHD_HTTP_NOT_FOUND;
        buf_append_str(&b, "not found: /metrics, /livez or /readyz\n");
    }
    rc = reply(c, status, text, &b);
    buf_free(&b);
    return rc;
}

/* ---- the process ---------------------------------------------------------- */

/* A listening socket on o->listen, or -1 with the reason logged. Bound
 * here rather than by MHD so that the log says which call failed and why
 * (a port in use, an address not on this host). */
static int listen_on(const char *listen_addr)
{
    char host[256], port[8];
    struct addrinfo hints = { .ai_flags = AI_PASSIVE, .ai_socktype = SOCK_STREAM }, *ai;
    int p, fd, one = 1, rc;

    if (parse_host_port(listen_addr, host, sizeof(host), &p) < 0) {
        log_error("metrics_listen %s: not host:port", listen_addr);
        return -1;
    }
    snprintf(port, sizeof(port), "%d", p);
    if ((rc = getaddrinfo(host, port, &hints, &ai)) != 0) {
        log_error("cannot listen on %s for metrics: getaddrinfo() failed: %s", listen_addr,
                  gai_strerror(rc));
        return -1;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
        log_error("cannot listen on %s for metrics: %s() failed: %s; retrying with backoff",
                  listen_addr, fd < 0 ? "socket" : "bind", strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

int metrics_run(const struct metrics_opts *o)
{
    struct metrics m = { .o = o };
    struct MHD_Daemon *d;
    sigset_t stop;
    int fd;

    keys_init(&m.keys, o->prefix, NULL);
    backlog_init(&m.backlog);
    pthread_mutex_init(&m.lock, NULL);
    if ((fd = listen_on(o->listen)) < 0)
        return 2;
    /* The signal mask the supervisor left (its signals blocked) is what
     * MHD's threads inherit: only this thread takes them, below. */
    d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL, NULL,
                         on_request, &m, MHD_OPTION_LISTEN_SOCKET, fd,
                         MHD_OPTION_THREAD_POOL_SIZE, (unsigned)POOL_THREADS,
                         MHD_OPTION_CONNECTION_TIMEOUT, 10u,
                         MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_END);
    if (d == NULL) {
        log_error("MHD_start_daemon() failed for metrics on %s", o->listen);
        close(fd);
        return 2;
    }
    log_info("serving /metrics, /livez and /readyz on http://%s", o->listen);
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGQUIT);
    for (;;) {
        struct timespec tick = { 1, 0 };
        int sig = sigtimedwait(&stop, NULL, &tick);
        if (sig > 0 || getppid() != o->supervisor)
            break;
        (void)gauges_now(&m, NULL);
    }
    MHD_stop_daemon(d);     /* joins its threads; closes the socket */
    if (m.redis != NULL)
        redis_sync_free(m.redis);
    pthread_mutex_destroy(&m.lock);
    return 0;
}
