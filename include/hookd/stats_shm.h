/* stats_shm.h -- the counters hookd's processes share through memory, for
 * the metrics endpoint (metrics.h).
 *
 * The supervisor maps one region (MAP_SHARED | MAP_ANONYMOUS) before it
 * forks anything, nginx-style, so every child sees the same pages without
 * a Redis round trip per delivery. Each worker process writes only its own
 * slot; the supervisor writes the header; the metrics process only reads.
 * Every field is a C11 atomic updated with relaxed ordering: a reader may
 * see one counter a moment ahead of another, never a torn value, and no
 * writer ever waits on a lock (a worker killed mid-update cannot leave one
 * held).
 *
 * Counters are never reset. A slot is handed to the next worker once its
 * previous owner has exited, and that worker adds to the same counters, so
 * sums over all slots only ever grow, as Prometheus counters must, across
 * crashes, SIGHUP generations and SIGTTIN/SIGTTOU. Only the per-process
 * gauges (in_flight, state) are cleared by the supervisor when it reaps
 * the owner. */
#ifndef HOOKD_STATS_SHM_H
#define HOOKD_STATS_SHM_H

#include <stdatomic.h>
#include <stdint.h>

/* Slots: 256 workers (config's maximum) plus as many draining retirees.
 * Past that (SIGHUPs in quick succession while old generations still
 * drain), a new worker shares a slot: its counters stay exact (the adds
 * are atomic), only that slot's gauges mix two processes. */
#define STATS_SLOTS 512

enum stats_outcome {
    STATS_DELIVERED, STATS_RETRIED, STATS_DEAD, STATS_DUPLICATE, STATS_INVALID,
    STATS_PARKED,
    STATS_NOUTCOMES                 /* not an outcome */
};

enum stats_result {
    STATS_2XX, STATS_3XX, STATS_4XX, STATS_5XX, STATS_TIMEOUT, STATS_CONNECT_FAILED,
    STATS_TLS, STATS_FORBIDDEN, STATS_OTHER,
    STATS_NRESULTS                  /* not a result */
};

/* Upper bounds (seconds) of the attempt duration histogram's buckets; one
 * more bucket counts everything above the last (+Inf). */
#define STATS_NBUCKETS 12
extern const double stats_bucket_bounds[STATS_NBUCKETS];

/* Bits of stats_slot.state. */
#define STATS_REGISTERED 1u         /* the worker's heartbeat is confirmed */
#define STATS_FETCH_UP 2u           /* its fetch connection is up */

struct stats_slot {
    _Atomic uint64_t outcomes[STATS_NOUTCOMES];
    _Atomic uint64_t attempts[STATS_NRESULTS];
    _Atomic uint64_t buckets[STATS_NBUCKETS + 1];   /* per bucket, not cumulative */
    _Atomic uint64_t duration_us;   /* sum of attempt durations */
    _Atomic uint64_t redis_errors;  /* connections lost or failed, error replies */
    _Atomic int64_t in_flight;      /* gauge: jobs held now; cleared at reap */
    _Atomic uint32_t state;         /* gauge: STATS_* bits; cleared at reap */
    char pad[4];                    /* to whole 64-byte lines: no false sharing */
};

struct stats_shm {
    _Atomic int64_t supervisor_tick_ms; /* CLOCK_MONOTONIC ms of the last loop turn */
    _Atomic uint64_t worker_restarts;   /* workers respawned after exiting */
    _Atomic int32_t workers;            /* worker processes running */
    struct stats_slot slots[STATS_SLOTS];
};

/* Map a zeroed region shared with every child forked afterwards. Returns
 * NULL with errno set when mmap fails. Never unmapped: it lives as long as
 * the processes that use it. */
struct stats_shm *stats_shm_create(void);

/* Writers (relaxed atomics; slot NULL means "not counting", a no-op). */
void stats_outcome(struct stats_slot *s, enum stats_outcome o);
/* One attempt that ended with an answer or an error; latency_ms < 0 counts
 * as 0. */
void stats_attempt(struct stats_slot *s, enum stats_result r, long latency_ms);
void stats_redis_error(struct stats_slot *s);
void stats_set_in_flight(struct stats_slot *s, int64_t n);
void stats_set_state(struct stats_slot *s, uint32_t bits, int on);

/* The class of an attempt's result, from http.h's status and reason
 * strings: a received status picks 2xx..5xx (1xx and others: other). */
enum stats_result stats_classify(long status, const char *reason);

/* Sums over every slot, for the reader. */
struct stats_totals {
    uint64_t outcomes[STATS_NOUTCOMES];
    uint64_t attempts[STATS_NRESULTS];
    uint64_t buckets[STATS_NBUCKETS + 1];
    uint64_t duration_us;
    uint64_t redis_errors;
    int64_t in_flight;
    int fetching;                   /* slots registered with fetch up */
};
void stats_sum(const struct stats_shm *shm, struct stats_totals *out);

/* Label values, in enum order. */
extern const char *const stats_outcome_names[STATS_NOUTCOMES];
extern const char *const stats_result_names[STATS_NRESULTS];

#endif
