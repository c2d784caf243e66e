/* supervisor.c -- fork, signals, reaping, respawn; no libuv here.
 *
 * The loop in supervisor_run() waits in sigtimedwait() and nowhere else:
 * anything that can take long (a Redis round trip) runs in a child of its
 * own, so signals, respawns and the stop deadline never wait behind it.
 * A dead worker's jobs are requeued by a short-lived *reclaim helper*
 * (reclaim()), a forked process that is reaped like the workers but is not
 * one: fork is safe here because the supervisor holds no libuv loop, no
 * libcurl and no hiredis state of its own, only its config. A dead embedded
 * redis-server is started again without waiting for it to answer: the
 * workers reconnect on their own.
 *
 * Every deadline and interval here (respawn times, the crash window, the
 * SIGKILL deadline) is on the monotonic clock: a wall-clock step (NTP, an
 * operator's date -s) would otherwise postpone a respawn by the size of the
 * step, or SIGKILL draining workers early. The wall clock appears only where
 * it is a name: the start time in a worker's id. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hookd/backoff.h"
#include "hookd/embed.h"
#include "hookd/lockfile.h"
#include "hookd/log.h"
#include "hookd/mem.h"
#include "hookd/metrics.h"
#include "hookd/proc.h"
#include "hookd/queue.h"
#include "hookd/redis.h"
#include "hookd/rlimit.h"
#include "hookd/stats_shm.h"
#include "hookd/supervisor.h"
#include "hookd/timeutil.h"
#include "hookd/worker.h"

/* A helper's connect and each of its commands. As long as a worker's own
 * watchdog gives a Redis command (5 s): the helper blocks nothing, so the
 * bound is about giving up on a Redis that does not answer, not about the
 * loop. */
#define RECLAIM_TIMEOUT_MS 5000
/* Connect plus the RECLAIM script; a helper still running after this is
 * SIGKILLed (the heartbeat reaper then requeues those jobs). It also bounds
 * how long a stop waits for helpers. */
#define HELPER_DEADLINE_MS (2 * RECLAIM_TIMEOUT_MS)
#define CRASH_WINDOW_MS 5000       /* a child dying sooner counts as a crash loop */
#define KILL_GRACE_MS 5000         /* after the drain deadline, before SIGKILL */

struct slot {
    pid_t pid;                     /* 0 = not running */
    char wid[WORKER_ID_MAX];
    int64_t started_ms;            /* monotonic, for the crash window */
    int64_t respawn_at;            /* monotonic; when to start a worker in this slot */
    int failures;                  /* consecutive quick deaths */
    int stat;                      /* its slot of the shared counters */
};

/* A worker of an older generation (before SIGHUP or SIGTTOU), draining. */
struct retiree {
    pid_t pid;
    char wid[WORKER_ID_MAX];
    int stat;                      /* its slot of the shared counters */
};

/* A reclaim helper: a child requeueing one dead worker's jobs. */
struct helper {
    pid_t pid;
    char wid[WORKER_ID_MAX];       /* the dead worker */
    int64_t kill_at;               /* monotonic; SIGKILL after this, 0 once sent */
};

struct supervisor {
    struct config *cfg;
    const struct supervisor_reload *reload;
    struct slot *slots;            /* the current generation, cfg->workers of them */
    int nslots;
    int config_workers;            /* workers as the config last said (TTIN/TTOU aside) */
    struct retiree *retiring;
    int nretiring;
    struct helper *helpers;        /* reclaim helpers running */
    int nhelpers;
    struct embed redis;            /* pid 0 when not running */
    int embedded;                  /* the Redis is ours: restart it when it dies */
    int lock_fd;                   /* the data_dir lock (lockfile.h), -1 when not embedded */
    int64_t redis_started;         /* monotonic, for the crash window */
    int64_t redis_restart_at;      /* monotonic; when to start it again */
    int redis_failures;            /* consecutive quick deaths */
    int stopping;                  /* 0, SIGTERM or SIGQUIT */
    int64_t kill_at;               /* monotonic; SIGKILL stragglers after this */
    pid_t self;
    struct stats_shm *shm;         /* shared counters (stats_shm.h), mapped before any fork */
    pid_t stat_owner[STATS_SLOTS]; /* the worker writing each slot, 0 = free */
    pid_t metrics;                 /* the metrics process, 0 = not running */
    int64_t metrics_started;       /* monotonic, for the crash window */
    int64_t metrics_restart_at;    /* monotonic; when to start it (again) */
    int metrics_failures;          /* consecutive quick deaths */
};

static int mkdir_p(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof(tmp))
        return -ENAMETOOLONG;
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* The wait before restarting a child that died within CRASH_WINDOW_MS of
 * its start, after *failures such deaths in a row (this one is counted
 * here); backoff.h has the schedule. */
static long crash_delay(int *failures)
{
    return backoff_restart_ms((*failures)++);
}

/* A counters slot for a worker about to be forked: a free one, or, with
 * STATS_SLOTS processes still running (SIGHUPs in a row while old
 * generations drain), a shared one: its adds stay exact, being atomic. */
static int take_stat(struct supervisor *sv)
{
    for (int i = 0; i < STATS_SLOTS; i++)
        if (sv->stat_owner[i] == 0)
            return i;
    return sv->nslots % STATS_SLOTS;
}

/* A worker exited: its slot's gauges describe nobody now. Its counters
 * stay, for the next owner to add to (stats_shm.h). */
static void release_stat(struct supervisor *sv, int i, pid_t pid)
{
    if (sv->stat_owner[i] == pid)
        sv->stat_owner[i] = 0;
    stats_set_in_flight(&sv->shm->slots[i], 0);
    stats_set_state(&sv->shm->slots[i], STATS_REGISTERED | STATS_FETCH_UP, 0);
}

/* In a forked child that does not exec: close its copy of the data_dir
 * lock. fork() shares the open file description an flock belongs to, so a
 * worker draining or a reclaim helper finishing after the supervisor was
 * killed would keep a restarted hookd out, naming a pid that is gone. Only
 * the redis-server keeps a copy, on purpose (embed.h). */
static void drop_lock(const struct supervisor *sv)
{
    if (sv->lock_fd >= 0)
        close(sv->lock_fd);
}

static void spawn(struct supervisor *sv, struct slot *s)
{
    int stat = take_stat(sv);
    /* Wall clock: part of the worker's id, a name that must not repeat
     * across restarts and hosts, computed once and used by both sides. */
    long long start = (long long)time_now_ms();
    pid_t pid = fork();

    if (pid < 0) {
        log_error("fork() failed while spawning a worker: %s; retrying in 1 s",
                  strerror(errno));
        s->respawn_at = time_mono_ms() + 1000;
        return;
    }
    if (pid == 0) {
        sigset_t none;
        char wid[WORKER_ID_MAX];
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        drop_lock(sv);
        /* Die with the supervisor: SIGQUIT makes the worker requeue its jobs
         * and exit at once rather than deliver unsupervised. */
        prctl(PR_SET_PDEATHSIG, SIGQUIT);
        if (getppid() != sv->self)
            _exit(1);   /* the supervisor died before prctl took effect */
        worker_make_id(wid, (int)getpid(), start);
        /* exit(), not _exit(): the worker owns this process now, and exit
         * handlers (LeakSanitizer's among them in test builds) should run. */
        exit(worker_run(sv->cfg, wid, &sv->shm->slots[stat]));
    }
    s->pid = pid;
    s->stat = stat;
    sv->stat_owner[stat] = pid;
    s->started_ms = time_mono_ms();
    s->respawn_at = 0;
    worker_make_id(s->wid, (int)pid, start);
    log_info("worker %s started", s->wid);
}

/* In a reclaim helper: put worker wid's in-flight and claimed jobs back on
 * the queue (RECLAIM), log the outcome, and return the helper's exit
 * status. The supervisor's only call of queue_reclaim_sync. */
static int reclaim_run(const struct config *cfg, const char *wid, int crashed)
{
    struct queue_reclaim r = { crashed, cfg->poison_after, cfg->dead_max };
    struct hk_err err;
    struct redis_sync *s = redis_sync_connect(&cfg->addr, RECLAIM_TIMEOUT_MS, &err);
    long long n = 0, dead = 0;
    int rc = -1;

    if (s != NULL) {
        rc = queue_reclaim_sync(s, cfg->prefix, wid, &r, &n, &dead, &err);
        redis_sync_free(s);
    }
    if (rc < 0) {
        log_warn("cannot requeue jobs of worker %s now (%s); the heartbeat reaper will",
                 wid, err.msg);
        return 1;
    }
    if (n > 0)
        log_info("requeued %lld jobs of worker %s", n, wid);
    if (dead > 0)
        log_warn("dead-lettered %lld jobs of worker %s as worker_crashed: each was in flight "
                 "in %d workers that died (hookd dlq list)", dead, wid, cfg->poison_after);
    return 0;
}

/* Put an exited worker's in-flight jobs back on the queue now, rather than
 * after its heartbeat expires (crashed: a signal ended it, abort() and the
 * OOM killer included, so each job's crash count goes up; poison_after,
 * queue.h; a worker that exits by itself, even with an error status because
 * it could not reach Redis, hands its jobs back uncounted), without waiting for
 * Redis here: a forked
 * helper runs the RECLAIM while the loop goes on. Were it run in place, a
 * Redis that accepts connections but does not answer (paused, overloaded,
 * a black-holed route) would hold up every signal and respawn for a
 * timeout per dead worker. */
static void reclaim(struct supervisor *sv, const char *wid, int crashed)
{
    struct helper *h;
    pid_t pid = fork();

    if (pid < 0) {
        log_warn("fork() failed while requeueing jobs of worker %s: %s; the heartbeat "
                 "reaper will", wid, strerror(errno));
        return;
    }
    if (pid == 0) {
        /* The supervisor's signals stay blocked: a Ctrl-C sent to the
         * process group must not cut a requeue short, and the helper ends
         * on its own within its timeouts (the supervisor's SIGKILL is the
         * backstop). No PDEATHSIG either: if the supervisor dies meanwhile,
         * finishing the requeue is still right. exit(), not _exit(), so
         * that LeakSanitizer checks the helper in test builds; the
         * supervisor leaves no stdio buffered to be flushed twice. */
        prctl(PR_SET_NAME, "hookd-reclaim");
        drop_lock(sv);
        log_set_process("reclaim");
        exit(reclaim_run(sv->cfg, wid, crashed));
    }
    sv->helpers = xrealloc(sv->helpers, (size_t)(sv->nhelpers + 1) * sizeof(*sv->helpers));
    h = &sv->helpers[sv->nhelpers++];
    h->pid = pid;
    memcpy(h->wid, wid, sizeof(h->wid));
    h->kill_at = time_mono_ms() + HELPER_DEADLINE_MS;
}

/* If pid was a reclaim helper, forget it and return 1. A helper that
 * failed has logged why; one killed (past its deadline) could not. */
static int helper_exited(struct supervisor *sv, pid_t pid, int status)
{
    for (int i = 0; i < sv->nhelpers; i++) {
        if (sv->helpers[i].pid != pid)
            continue;
        if (WIFSIGNALED(status))
            log_warn("requeueing jobs of worker %s cut short by signal %d; the heartbeat "
                     "reaper will", sv->helpers[i].wid, WTERMSIG(status));
        sv->helpers[i] = sv->helpers[--sv->nhelpers];
        return 1;
    }
    return 0;
}

/* SIGKILL helpers past their deadline: their own timeouts should have
 * ended them, but a helper must never keep a stop waiting for long. */
static void expire_helpers(struct supervisor *sv)
{
    int64_t now = time_mono_ms();

    for (int i = 0; i < sv->nhelpers; i++) {
        struct helper *h = &sv->helpers[i];
        if (h->kill_at == 0 || now < h->kill_at)
            continue;
        log_warn("requeueing jobs of worker %s takes over %d ms; killing it", h->wid,
                 HELPER_DEADLINE_MS);
        kill(h->pid, SIGKILL);
        h->kill_at = 0;
    }
}

/* The embedded redis-server died: schedule its restart, at once unless it
 * keeps dying right after starting (a full disk, a corrupt AOF, a missing
 * binary), which gets the workers' crash backoff. */
static void redis_exited(struct supervisor *sv, int status)
{
    long delay = 0;

    sv->redis.pid = 0;
    if (sv->stopping)
        return;
    if (time_mono_ms() - sv->redis_started < CRASH_WINDOW_MS)
        delay = crash_delay(&sv->redis_failures);
    else
        sv->redis_failures = 0;
    log_error("embedded redis-server exited (status %d); restarting in %ld ms", status, delay);
    sv->redis_restart_at = time_mono_ms() + delay;
}

/* Fork redis-server again, not waiting for it to answer: that can take
 * seconds (an AOF to load), or forever (a server that hangs), and the loop
 * must go on meanwhile. Workers reconnect on their own, with a backoff
 * capped at 5 s. */
static void restart_redis(struct supervisor *sv)
{
    struct hk_err err;

    if (embed_spawn(&sv->redis, &err) < 0) {
        log_error("cannot restart the embedded redis-server: %s; retrying in 1 s", err.msg);
        sv->redis_restart_at = time_mono_ms() + 1000;
        return;
    }
    sv->redis_started = time_mono_ms();
    log_info("embedded redis-server restarted (pid %d)", (int)sv->redis.pid);
}

static int metrics_wanted(const struct supervisor *sv)
{
    return strcmp(sv->cfg->metrics_listen, "off") != 0;
}

/* Fork the metrics process (metrics.h). It keeps the supervisor's signal
 * mask (metrics_run takes SIGTERM/SIGINT/SIGQUIT with sigtimedwait; the
 * rest stay blocked) and dies with the supervisor. */
static void spawn_metrics(struct supervisor *sv)
{
    pid_t pid = fork();

    if (pid < 0) {
        log_error("fork() failed while spawning the metrics process: %s; retrying in 1 s",
                  strerror(errno));
        sv->metrics_restart_at = time_mono_ms() + 1000;
        return;
    }
    if (pid == 0) {
        struct metrics_opts o = {
            .listen = sv->cfg->metrics_listen, .redis = &sv->cfg->addr,
            .prefix = sv->cfg->prefix, .shm = sv->shm, .supervisor = sv->self,
        };
        prctl(PR_SET_NAME, "hookd-metrics");
        drop_lock(sv);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        log_set_process("metrics");
        if (getppid() != sv->self)
            _exit(1);
        exit(metrics_run(&o));
    }
    sv->metrics = pid;
    sv->metrics_started = time_mono_ms();
}

/* The metrics process exited: start it again, with the workers' crash
 * backoff if it died right after starting (a port in use, most often;
 * it has said why). Not while stopping or with metrics_listen off. */
static void metrics_exited(struct supervisor *sv, int status)
{
    long delay = 0;

    sv->metrics = 0;
    if (sv->stopping)
        return;
    if (!metrics_wanted(sv)) {
        log_info("metrics_listen is off: metrics process stopped");
        return;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        /* Stopped by a SIGHUP that moved metrics_listen: no crash. */
        log_info("metrics process moving to %s", sv->cfg->metrics_listen);
        sv->metrics_restart_at = time_mono_ms();
        return;
    }
    if (time_mono_ms() - sv->metrics_started < CRASH_WINDOW_MS)
        delay = crash_delay(&sv->metrics_failures);
    else
        sv->metrics_failures = 0;
    if (WIFSIGNALED(status))
        log_warn("metrics process killed by signal %d; restarting in %ld ms", WTERMSIG(status),
                 delay);
    else
        log_warn("metrics process exited with status %d; restarting in %ld ms",
                 WEXITSTATUS(status), delay);
    sv->metrics_restart_at = time_mono_ms() + delay;
}

/* Stop the metrics process last, so /livez answers through a drain:
 * SIGTERM, then SIGKILL if it has not exited within 2 s. */
static void stop_metrics(struct supervisor *sv)
{
    if (sv->metrics <= 0)
        return;
    proc_stop(sv->metrics, 2000);
    sv->metrics = 0;
}

static void reap(struct supervisor *sv)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (helper_exited(sv, pid, status))
            continue;
        if (pid == sv->redis.pid) {
            redis_exited(sv, status);
            continue;
        }
        if (pid == sv->metrics) {
            metrics_exited(sv, status);
            continue;
        }
        for (int i = 0; i < sv->nretiring; i++) {
            if (sv->retiring[i].pid != pid)
                continue;
            if (WIFSIGNALED(status))
                log_warn("retired worker %s killed by signal %d", sv->retiring[i].wid,
                         WTERMSIG(status));
            else
                log_info("retired worker %s exited with status %d", sv->retiring[i].wid,
                         WEXITSTATUS(status));
            release_stat(sv, sv->retiring[i].stat, pid);
            reclaim(sv, sv->retiring[i].wid, WIFSIGNALED(status));
            sv->retiring[i] = sv->retiring[--sv->nretiring];
            break;
        }
        for (int i = 0; i < sv->nslots; i++) {
            struct slot *s = &sv->slots[i];
            if (s->pid != pid)
                continue;
            s->pid = 0;
            release_stat(sv, s->stat, pid);
            int clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
            if (WIFSIGNALED(status))
                log_warn("worker %s killed by signal %d", s->wid, WTERMSIG(status));
            else if (!clean)
                log_warn("worker %s exited with status %d", s->wid, WEXITSTATUS(status));
            else
                log_info("worker %s exited", s->wid);
            reclaim(sv, s->wid, WIFSIGNALED(status));
            if (sv->stopping)
                break;
            atomic_fetch_add(&sv->shm->worker_restarts, 1);
            if (time_mono_ms() - s->started_ms < CRASH_WINDOW_MS && !clean) {
                long delay = crash_delay(&s->failures);
                log_warn("worker crashed %d times in a row; restarting in %ld ms",
                         s->failures, delay);
                s->respawn_at = time_mono_ms() + delay;
            } else {
                s->failures = 0;
                s->respawn_at = time_mono_ms();
            }
            break;
        }
    }
}

static int running(const struct supervisor *sv)
{
    int n = sv->nretiring;

    for (int i = 0; i < sv->nslots; i++)
        n += sv->slots[i].pid > 0;
    return n;
}

static void signal_all(struct supervisor *sv, int sig)
{
    for (int i = 0; i < sv->nslots; i++)
        if (sv->slots[i].pid > 0)
            kill(sv->slots[i].pid, sig);
    for (int i = 0; i < sv->nretiring; i++)
        kill(sv->retiring[i].pid, sig);
}

/* Move slot i's worker (if any) to the retiring list; the caller signals. */
static void retire(struct supervisor *sv, struct slot *s)
{
    if (s->pid <= 0)
        return;
    sv->retiring = xrealloc(sv->retiring, (size_t)(sv->nretiring + 1) * sizeof(*sv->retiring));
    sv->retiring[sv->nretiring].pid = s->pid;
    sv->retiring[sv->nretiring].stat = s->stat;
    memcpy(sv->retiring[sv->nretiring].wid, s->wid, sizeof(s->wid));
    sv->nretiring++;
    s->pid = 0;
}

static const char *workers_word(int n)
{
    return n == 1 ? "worker" : "workers";
}

/* Grow or shrink the current generation to n workers. New slots start at
 * once; removed slots' workers drain (SIGTERM) and are not replaced. */
static void resize(struct supervisor *sv, int n)
{
    if (n < 1)
        n = 1;
    for (int i = n; i < sv->nslots; i++) {
        pid_t pid = sv->slots[i].pid;
        retire(sv, &sv->slots[i]);
        if (pid > 0)
            kill(pid, SIGTERM);
    }
    sv->slots = xrealloc(sv->slots, (size_t)n * sizeof(*sv->slots));
    for (int i = sv->nslots; i < n; i++) {
        memset(&sv->slots[i], 0, sizeof(sv->slots[i]));
        spawn(sv, &sv->slots[i]);
    }
    sv->nslots = n;
    sv->cfg->workers = n;
}

/* Two optional settings alike: both unset, or the same text. */
static int same(const char *a, const char *b)
{
    return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

/* The worker count after a reload whose config says configured, and (into
 * why) what the log line should add. A count set by SIGTTIN/SIGTTOU
 * outlives a reload that leaves the config's workers as they were: an
 * operator who scaled up and then changed, say, the timeout does not want
 * to be scaled back down. A changed workers in the config is a new
 * decision, and wins. */
static int reload_workers(struct supervisor *sv, int configured, char *why, size_t cap)
{
    int n = configured;

    why[0] = '\0';
    if (configured == sv->config_workers && sv->nslots != configured) {
        snprintf(why, cap, "; kept from SIGTTIN/SIGTTOU (the config's workers, %d, did not "
                 "change)", configured);
        n = sv->nslots;
    } else if (configured != sv->config_workers && sv->nslots != sv->config_workers) {
        snprintf(why, cap, "; the config's workers changed from %d, so the count "
                 "SIGTTIN/SIGTTOU set is dropped", sv->config_workers);
    }
    sv->config_workers = configured;
    return n;
}

/* SIGHUP: read the settings again. A config with errors is refused and the
 * running one kept. Otherwise every worker is replaced, each new one forked
 * (with the new settings) before the old ones are told to drain, so there
 * is no moment without workers and no job is dropped: the old ones finish
 * what they hold or requeue it. */
static void reload(struct supervisor *sv)
{
    struct config next;
    struct hk_err err;
    int created;

    if (sv->reload == NULL) {
        log_warn("SIGHUP: no config to reload");
        return;
    }
    if (sv->reload->fn(&next, sv->reload->ctx, &err) < 0) {
        log_error("SIGHUP: config refused, keeping the running one: %s", err.msg);
        return;
    }
    /* A larger max_in_flight needs its open files, as at start (rlimit.h). */
    if (rlimit_ensure_files(next.max_in_flight, &err) < 0) {
        log_error("SIGHUP: config refused, keeping the running one: %s", err.msg);
        config_free(&next);
        return;
    }
    /* Redis, data_dir and prefix belong to the running process: data_dir
     * holds the embedded Redis and the generated secret, and the jobs the
     * retiring workers hold are under the running prefix. Retirees are
     * reclaimed with the supervisor's prefix; under a new one those RECLAIMs
     * would find nothing and the jobs would stay in <old>:inflight:*, where
     * no worker of the new prefix (nor its heartbeat reaper) ever looks.
     * Moving a deployment to a new prefix is a restart, or a second hookd. */
    if (!same(next.redis, sv->cfg->redis) || !same(next.redis_ca_file, sv->cfg->redis_ca_file) ||
        !same(next.redis_client_cert, sv->cfg->redis_client_cert) ||
        !same(next.redis_client_key, sv->cfg->redis_client_key) ||
        !same(next.redis_tls_server_name, sv->cfg->redis_tls_server_name) ||
        next.redis_tls_verify != sv->cfg->redis_tls_verify ||
        strcmp(next.data_dir, sv->cfg->data_dir) != 0 ||
        strcmp(next.prefix, sv->cfg->prefix) != 0)
        log_warn("SIGHUP: redis (its TLS settings too), data_dir and prefix changes need a "
                 "restart; keeping the running ones");
    free(next.data_dir);
    next.data_dir = xstrdup(sv->cfg->data_dir);     /* where the secret lives */
    free(next.prefix);
    next.prefix = xstrdup(sv->cfg->prefix);
    if (config_resolve_secret(&next, &created, &err) < 0) {
        log_error("SIGHUP: config refused, keeping the running one: %s", err.msg);
        config_free(&next);
        return;
    }
    /* Accepted: the running Redis settings move over whole (the embedded
     * socket path included) before the old config is freed. */
    config_move_redis(&next, sv->cfg);
    if (strcmp(next.metrics_listen, sv->cfg->metrics_listen) != 0 && sv->metrics > 0)
        kill(sv->metrics, SIGTERM);     /* reaped, then started on the new address */
    char why[160];
    next.workers = reload_workers(sv, next.workers, why, sizeof(why));
    config_free(sv->cfg);
    *sv->cfg = next;
    log_set_level(sv->cfg->log_level);
    log_set_format(sv->cfg->log_format);
    log_info("SIGHUP: config reloaded; replacing %d %s with %d (max_in_flight %d)%s",
             sv->nslots, workers_word(sv->nslots), sv->cfg->workers,
             sv->cfg->max_in_flight, why);
    int old = sv->nslots;
    pid_t *olds = xcalloc((size_t)old, sizeof(pid_t));
    for (int i = 0; i < old; i++) {
        olds[i] = sv->slots[i].pid;
        retire(sv, &sv->slots[i]);
    }
    free(sv->slots);
    sv->slots = NULL;
    sv->nslots = 0;
    resize(sv, sv->cfg->workers);       /* new generation first ... */
    for (int i = 0; i < old; i++)       /* ... then the old one drains */
        if (olds[i] > 0)
            kill(olds[i], SIGTERM);
    free(olds);
}

static void begin_stop(struct supervisor *sv, int sig)
{
    if (sv->stopping == SIGQUIT || sv->stopping == sig)
        return;
    sv->stopping = sig;
    int n = running(sv);
    log_info("%s: stopping %d %s", sig == SIGQUIT ? "SIGQUIT" : "SIGTERM", n, workers_word(n));
    signal_all(sv, sig);
    sv->kill_at = time_mono_ms() + KILL_GRACE_MS +
                  (sig == SIGQUIT ? 0 : sv->cfg->shutdown_timeout_ms);
}

static int prepare(struct supervisor *sv, struct hk_err *err)
{
    struct config *cfg = sv->cfg;
    int created, rc;

    if ((sv->shm = stats_shm_create()) == NULL)
        return hk_err_set(err, HK_ESPAWN, "metrics", "mmap() of the shared counters failed: %s",
                          strerror(errno));
    if ((rc = mkdir_p(cfg->data_dir)) < 0)
        return hk_err_set(err, HK_ECONFIG, "config", "cannot create data dir %s: %s",
                          cfg->data_dir, strerror(-rc));
    /* Before the secret too: a second hookd refused here writes nothing
     * into data_dir. Only the embedded Redis needs data_dir to itself; with
     * `redis` configured, instances share a Redis by design, and the hookd
     * CLI commands (cli.c) are clients of a running one, never lockers. */
    if (cfg->redis == NULL && (sv->lock_fd = lockfile_take(cfg->data_dir, err)) < 0)
        return sv->lock_fd;
    if (config_resolve_secret(cfg, &created, err) < 0)
        return HK_ECONFIG;
    if (created)
        log_warn("no secret configured: generated one into %s/secret (keep it; receivers "
                 "verify signatures with it)", cfg->data_dir);
    if (cfg->redis == NULL) {
        if (embed_start(&sv->redis, cfg->data_dir, cfg->redis_server, sv->lock_fd, err) < 0)
            return HK_ESPAWN;
        sv->embedded = 1;
        sv->redis_started = time_mono_ms();
        redis_addr_free(&cfg->addr);
        cfg->addr.path = xstrdup(sv->redis.socket_path);
        log_info("embedded redis-server (pid %d) listening on unix://%s", (int)sv->redis.pid,
                 sv->redis.socket_path);
    } else {
        char where[512];
        redis_addr_format(&cfg->addr, where, sizeof(where));
        log_info("using redis at %s", where);
    }
    return 0;
}

/* Act on the signal sigtimedwait returned (or on none: a timeout, EINTR). */
static void on_signal(struct supervisor *sv, int sig)
{
    switch (sig) {
    case SIGCHLD:
        reap(sv);
        break;
    case SIGTERM:
    case SIGINT:
        begin_stop(sv, SIGTERM);
        break;
    case SIGQUIT:
        begin_stop(sv, SIGQUIT);
        break;
    case SIGHUP:
        if (!sv->stopping)
            reload(sv);
        break;
    case SIGTTIN:
    case SIGTTOU:
        if (!sv->stopping) {
            resize(sv, sv->nslots + (sig == SIGTTIN ? 1 : -1));
            log_info("%s: now %d %s", sig == SIGTTIN ? "SIGTTIN" : "SIGTTOU", sv->nslots,
                     workers_word(sv->nslots));
        }
        break;
    default:
        break;      /* timeout or EINTR: only the housekeeping */
    }
}

/* What every tick does, after the signal if any: reap, expire helpers, and
 * either push a stop along or restart what is due (the embedded Redis,
 * workers whose respawn delay is over). Returns 1 once a stop is complete. */
static int housekeeping(struct supervisor *sv)
{
    int n = 0;

    reap(sv);   /* SIGCHLDs coalesce; reaping on every tick misses none */
    /* What /livez and hookd_workers read (stats_shm.h). */
    for (int i = 0; i < sv->nslots; i++)
        n += sv->slots[i].pid > 0;
    atomic_store(&sv->shm->workers, n);
    atomic_store(&sv->shm->supervisor_tick_ms, time_mono_ms());
    expire_helpers(sv);
    if (sv->stopping) {
        /* Helpers too: a SIGTERM right after a worker died still
         * requeues its jobs before hookd exits (and before the
         * embedded Redis, which they may need, is stopped). */
        if (running(sv) == 0 && sv->nhelpers == 0)
            return 1;
        /* Only workers: helpers have deadlines of their own, and with
         * no worker left there is nobody to blame or kill here. */
        if (running(sv) > 0 && time_mono_ms() > sv->kill_at) {
            log_error("workers did not stop in time; sending SIGKILL");
            signal_all(sv, SIGKILL);
            sv->kill_at = time_mono_ms() + 60000;
        }
        return 0;
    }
    if (sv->embedded && sv->redis.pid == 0 && time_mono_ms() >= sv->redis_restart_at)
        restart_redis(sv);
    if (metrics_wanted(sv) && sv->metrics == 0 && time_mono_ms() >= sv->metrics_restart_at)
        spawn_metrics(sv);
    for (int i = 0; i < sv->nslots; i++) {
        struct slot *s = &sv->slots[i];
        if (s->pid == 0 && s->respawn_at != 0 && time_mono_ms() >= s->respawn_at)
            spawn(sv, s);
    }
    return 0;
}

int supervisor_run(struct config *cfg, const struct supervisor_reload *rl)
{
    struct supervisor sv;
    struct hk_err err;
    sigset_t set;
    int sigs[] = { SIGTERM, SIGINT, SIGQUIT, SIGCHLD, SIGHUP, SIGTTIN, SIGTTOU };

    memset(&sv, 0, sizeof(sv));
    sv.cfg = cfg;
    sv.config_workers = cfg->workers;
    sv.reload = rl;
    sv.self = getpid();
    sv.lock_fd = -1;
    log_set_process("supervisor");
    signal(SIGPIPE, SIG_IGN);
    /* Blocked before any child exists, so no signal is lost in between. */
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(*sigs); i++)
        sigaddset(&set, sigs[i]);
    sigprocmask(SIG_BLOCK, &set, NULL);

    if (prepare(&sv, &err) < 0) {
        log_error("%s", err.msg);
        return 1;
    }
    log_info("hookd %s: %d %s, prefix %s, max_in_flight %d", HOOKD_VERSION, cfg->workers,
             workers_word(cfg->workers), cfg->prefix, cfg->max_in_flight);
    resize(&sv, cfg->workers);

    for (;;) {
        struct timespec tick = { 0, 200 * 1000000 };
        on_signal(&sv, sigtimedwait(&set, NULL, &tick));
        if (housekeeping(&sv))
            break;
    }
    stop_metrics(&sv);
    embed_stop(&sv.redis, 10000);
    /* Only now that its redis-server is gone may another hookd have
     * data_dir. */
    if (sv.lock_fd >= 0)
        close(sv.lock_fd);
    free(sv.slots);
    free(sv.retiring);
    free(sv.helpers);
    log_info("stopped");
    return 0;
}
