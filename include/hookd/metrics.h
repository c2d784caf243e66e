/* metrics.h -- the metrics process: GET /metrics (Prometheus text format
 * 0.0.4), /livez and /readyz on metrics_listen.
 *
 * A child of the supervisor, forked and restarted like a worker (with the
 * same crash backoff), because the supervisor forks and must hold no
 * threads, and libmicrohttpd serves from threads of its own. This process
 * never forks, so those threads are safe here. Its counters come from the
 * shared region (stats_shm.h), written by the workers and the supervisor;
 * the Redis-derived gauges from its own blocking Redis connection, at most
 * once a second whatever the scrape rate. */
#ifndef HOOKD_METRICS_H
#define HOOKD_METRICS_H

#include <sys/types.h>

#include "hookd/redis_addr.h"
#include "hookd/stats_shm.h"

struct metrics_opts {
    const char *listen;                 /* borrowed; "host:port" or "[v6]:port" */
    const struct redis_addr *redis;     /* borrowed */
    const char *prefix;                 /* borrowed; of every Redis key */
    const struct stats_shm *shm;        /* borrowed; the shared counters */
    pid_t supervisor;                   /* exit when the parent is not this any more */
};

/* Serve until SIGTERM, SIGINT or SIGQUIT (kept blocked by the caller, as
 * the supervisor's are), or until the supervisor is gone. Returns the
 * process's exit code: 0 when stopped, 2 when the address cannot be
 * listened on (logged with the reason; the supervisor retries with its
 * crash backoff). */
int metrics_run(const struct metrics_opts *o);

#endif
