/* endpoints.h -- a worker's mirror of the origins whose breaker is not
 * closed (P:endpoints, src/lua/lib/endpoint.lua), and the probes FETCH
 * granted it.
 *
 * Pure bookkeeping, no I/O, times passed in (like hosts.h): health.c fills
 * it from Redis's replies; deliver.c asks it, for each job, whether the
 * job's origin takes attempts; worker.c asks how many parked jobs of an
 * origin to pull. Redis decides every transition; the mirror only says
 * what the worker last heard, so a worker that has not heard yet sends an
 * attempt or two more, never fewer. */
#ifndef HOOKD_ENDPOINTS_H
#define HOOKD_ENDPOINTS_H

#include <stddef.h>
#include <stdint.h>

#define ENDPOINTS_ASK_MS 1000       /* an open origin's probe is asked for at most
                                       this often */
#define ENDPOINTS_GRANT_MS 2000     /* a probe granted is taken by a job within this */

enum endpoint_state {
    ENDPOINT_CLOSED,        /* attempts go */
    ENDPOINT_OPEN,          /* breaker open: jobs are parked, a probe once due */
    ENDPOINT_HALF_OPEN,     /* a probe is out: jobs are parked */
    ENDPOINT_DISABLED,      /* jobs go to dead as endpoint_disabled */
};

struct endpoints;

struct endpoints *endpoints_new(void);
void endpoints_free(struct endpoints *eps);

/* A line of P:endpoints, "<state> <since ms> <due ms>": 0, or -1 when it
 * is not one. */
int endpoints_parse_line(const char *line, size_t len, enum endpoint_state *state,
                         int64_t *since_ms, int64_t *due_ms);

/* Origin's state from its line (a closed or unreadable one forgets it):
 * 0, or -1 when the line is not one. Probe grants are kept. */
int endpoints_set(struct endpoints *eps, const char *origin, size_t olen, const char *line,
                  size_t llen);

/* Forget every state (before the mirror is loaded again whole). */
void endpoints_clear(struct endpoints *eps);

enum endpoint_state endpoints_state(const struct endpoints *eps, const char *origin);

/* States mirrored (not closed). */
size_t endpoints_count(const struct endpoints *eps);

/* FETCH granted this worker origin's probe at now_ms (monotonic). */
void endpoints_grant_probe(struct endpoints *eps, const char *origin, size_t olen,
                           int64_t now_ms);

/* Whether a job for origin is the probe granted: 1 (and the grant is
 * used) when one was granted within ENDPOINTS_GRANT_MS, else 0. */
int endpoints_take_probe(struct endpoints *eps, const char *origin, int64_t now_ms);

/* Parked jobs of origin to ask FETCH for, given the room the origin has:
 * room when closed or disabled (drained to dead); for an open or half-open
 * one 1, at most once per ENDPOINTS_ASK_MS of mono_ms, else 0. FETCH gives
 * it, the probe, only once due on Redis's clock, and otherwise re-scores
 * the origin to its due time in P:parked, behind every origin that can be
 * served: asking, not the host's clock, keeps open origins from holding
 * the places a FETCH reply lists. */
int endpoints_pull_room(struct endpoints *eps, const char *origin, int room, int64_t mono_ms);

#endif
