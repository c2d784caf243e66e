/* hosts.h -- per-destination admission: how many requests a worker runs at
 * once against one origin, and what happens to the jobs beyond that.
 *
 * Pure bookkeeping, no I/O: deliver.c asks before each request and reports
 * each end; worker.c asks which parked origins it has room for. An origin is
 * "scheme://host:port" (policy_check_url computes it).
 *
 * A job for an origin already running its limit waits in the worker's memory
 * while the wait is short: the origin answers, and at its measured pace it
 * gets through the jobs ahead within HOSTS_WAIT_MS. Beyond that, or once
 * the origin has answered nothing for HOSTS_STALL_MS while full, the job is
 * parked: moved back to Redis, on a list of its own origin. So a slow or
 * dead endpoint holds at most its limit of requests and a few waiting jobs,
 * never the in-flight slots other origins could use. */
#ifndef HOOKD_HOSTS_H
#define HOOKD_HOSTS_H

#include <stddef.h>
#include <stdint.h>

#define HOSTS_STALL_MS 1000         /* no answer this long while full: stalled */
#define HOSTS_WAIT_MS 1000          /* longest expected wait for a job kept in memory */
#define HOSTS_H2_STREAMS 100        /* libcurl's default streams per HTTP/2 connection */
#define HOSTS_PARKED_MAX 32         /* parked origins a worker keeps track of */

struct hosts;
struct host;

/* A delivery waiting for its origin; embedded in the caller's struct. */
struct hosts_waiter {
    struct hosts_waiter *next;
};

enum hosts_verdict {
    HOSTS_GO,       /* start now; hosts_done when it ends */
    HOSTS_WAIT,     /* queued; hosts_done of another request hands it back */
    HOSTS_PARK,     /* do not keep it: put it back in Redis */
};

/* New table, max_per_host connections per origin. Freed by hosts_free. */
struct hosts *hosts_new(int max_per_host);
void hosts_free(struct hosts *hs);

/* Admit a request for origin at now_ms. *h is set for HOSTS_GO and
 * HOSTS_WAIT and stays valid until the matching hosts_done (or until the
 * waiter is handed back by hosts_done or hosts_take_waiting). On HOSTS_WAIT w
 * is queued. */
enum hosts_verdict hosts_admit(struct hosts *hs, const char *origin, struct hosts_waiter *w,
                               int64_t now_ms, struct host **h);

/* A request admitted with HOSTS_GO ended after latency_ms (-1: it never
 * reached the origin). h2_conn: 0 when it did not run over HTTP/2, else a
 * number naming the connection it ran on (its local port): the limit
 * counts streams on the connections seen (see hosts.c). Returns the
 * waiters of the same origin now admitted, linked by next (the caller
 * starts each), or NULL: one for the slot freed, or many when the limit
 * just rose. h may be freed by this call when nothing else uses it. */
struct hosts_waiter *hosts_done(struct hosts *hs, struct host *h, long latency_ms,
                                long h2_conn, int64_t now_ms);

/* When origin h is stalled (full, nothing finished for HOSTS_STALL_MS),
 * remove and return one of its waiters for the caller to park; else NULL.
 * h may be freed once its last waiter is taken and nothing runs. */
struct hosts_waiter *hosts_take_stalled(struct hosts *hs, struct host *h, int64_t now_ms);

/* hosts_take_stalled over every origin: one waiter of any stalled origin,
 * or NULL. Called periodically, as no new job may come to find it stalled. */
struct hosts_waiter *hosts_take_any_stalled(struct hosts *hs, int64_t now_ms);

/* Remove and return any waiter of any origin, NULL when none: shutdown
 * drops them (their jobs are still in the in-flight hash). */
struct hosts_waiter *hosts_take_any_waiting(struct hosts *hs);

/* Requests that may start for origin now (0 when full or stalled). */
int hosts_room(struct hosts *hs, const char *origin, int64_t now_ms);

/* The origins Redis says have parked jobs (copied; at most
 * HOSTS_PARKED_MAX kept), replacing the previous list. */
void hosts_set_parked(struct hosts *hs, const char *const *origins, const size_t *lens,
                      size_t n);

/* What the caller makes of an origin's room (its breaker, its rate limit):
 * the jobs to pull. */
typedef int hosts_room_fn(void *arg, const char *origin, int room);

/* Parked origins with room, and how many jobs to take from each, at most
 * budget in total: fills origins[i] (borrowed until the next
 * hosts_set_parked) and counts[i], returns how many. fn, when not NULL,
 * has the last word on each origin's room. */
size_t hosts_pull_plan(struct hosts *hs, int budget, int64_t now_ms, hosts_room_fn *fn,
                       void *arg, const char **origins, int *counts, size_t max);

/* Origins currently tracked (for tests and logs). */
size_t hosts_count(const struct hosts *hs);

#endif
