/* stats_shm.c -- the shared counters region: creation, writers, the sum. */
#include <string.h>
#include <sys/mman.h>

#include "hookd/stats_shm.h"

_Static_assert(sizeof(struct stats_slot) % 64 == 0, "a slot is whole cache lines");

const double stats_bucket_bounds[STATS_NBUCKETS] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
};

const char *const stats_outcome_names[STATS_NOUTCOMES] = {
    "delivered", "retried", "dead", "duplicate", "invalid", "parked",
};

const char *const stats_result_names[STATS_NRESULTS] = {
    "2xx", "3xx", "4xx", "5xx", "timeout", "connect_failed", "tls", "forbidden", "other",
};

struct stats_shm *stats_shm_create(void)
{
    void *p = mmap(NULL, sizeof(struct stats_shm), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    /* Anonymous pages come zeroed: every atomic starts at 0. */
    return p == MAP_FAILED ? NULL : p;
}

static void add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

void stats_outcome(struct stats_slot *s, enum stats_outcome o)
{
    if (s != NULL)
        add(&s->outcomes[o], 1);
}

void stats_attempt(struct stats_slot *s, enum stats_result r, long latency_ms)
{
    double secs;
    int b = 0;

    if (s == NULL)
        return;
    if (latency_ms < 0)
        latency_ms = 0;
    secs = (double)latency_ms / 1000.0;
    while (b < STATS_NBUCKETS && secs > stats_bucket_bounds[b])
        b++;
    add(&s->attempts[r], 1);
    add(&s->buckets[b], 1);
    add(&s->duration_us, (uint64_t)latency_ms * 1000);
}

void stats_redis_error(struct stats_slot *s)
{
    if (s != NULL)
        add(&s->redis_errors, 1);
}

void stats_set_in_flight(struct stats_slot *s, int64_t n)
{
    if (s != NULL)
        atomic_store_explicit(&s->in_flight, n, memory_order_relaxed);
}

void stats_set_state(struct stats_slot *s, uint32_t bits, int on)
{
    if (s == NULL)
        return;
    if (on)
        atomic_fetch_or_explicit(&s->state, bits, memory_order_relaxed);
    else
        atomic_fetch_and_explicit(&s->state, ~bits, memory_order_relaxed);
}

enum stats_result stats_classify(long status, const char *reason)
{
    if (strcmp(reason, "ok") == 0 || strcmp(reason, "http_status") == 0) {
        if (status >= 200 && status < 600)
            return (enum stats_result)(STATS_2XX + (status / 100 - 2));
        return STATS_OTHER;
    }
    if (strcmp(reason, "timeout") == 0)
        return STATS_TIMEOUT;
    /* A name that does not resolve is a connection that could not be made. */
    if (strcmp(reason, "connect_failed") == 0 || strcmp(reason, "dns_failed") == 0)
        return STATS_CONNECT_FAILED;
    if (strcmp(reason, "tls_error") == 0)
        return STATS_TLS;
    if (strcmp(reason, "destination_forbidden") == 0)
        return STATS_FORBIDDEN;
    return STATS_OTHER;     /* send_failed, recv_failed, http_error */
}

static uint64_t get(const _Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

void stats_sum(const struct stats_shm *shm, struct stats_totals *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < STATS_SLOTS; i++) {
        const struct stats_slot *s = &shm->slots[i];
        uint32_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
        for (int k = 0; k < STATS_NOUTCOMES; k++)
            out->outcomes[k] += get(&s->outcomes[k]);
        for (int k = 0; k < STATS_NRESULTS; k++)
            out->attempts[k] += get(&s->attempts[k]);
        for (int k = 0; k <= STATS_NBUCKETS; k++)
            out->buckets[k] += get(&s->buckets[k]);
        out->duration_us += get(&s->duration_us);
        out->redis_errors += get(&s->redis_errors);
        out->in_flight += atomic_load_explicit(&s->in_flight, memory_order_relaxed);
        if ((st & (STATS_REGISTERED | STATS_FETCH_UP)) == (STATS_REGISTERED | STATS_FETCH_UP))
            out->fetching++;
    }
}
