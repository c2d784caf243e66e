/* health.h -- endpoint health in a worker: each attempt's result goes to
 * Redis (HEALTH, batched), which moves the origin's circuit breaker; the
 * breaker states come back into the worker's mirror (endpoints.h).
 *
 * deliver.c reports every attempt that reached, or failed to reach, its
 * origin and asks, before each attempt, what the origin's state is;
 * worker.c hands it FETCH's generation and probe grants and asks how many
 * parked jobs of an origin to pull. Reports are statistics: one whose call
 * fails is dropped (said once), never sent twice, as HEALTH counts what it
 * is given.
 *
 * Callback rule: no function here calls back into its caller. */
#ifndef HOOKD_HEALTH_H
#define HOOKD_HEALTH_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "hookd/coalesce.h"
#include "hookd/endpoints.h"
#include "hookd/keys.h"
#include "hookd/queue.h"
#include "hookd/redis.h"

#define HEALTH_PENDING_MAX 100000   /* reports held while Redis is away */

enum health_result {
    HEALTH_OK,          /* an answer that is no failure (2xx, 3xx, 4xx) */
    HEALTH_FAILED,      /* timeout, connection or TLS failure, 5xx */
};

struct health {
    struct coalesce reports;
    struct endpoints *mirror;       /* owned */
    struct redis_conn *conn;        /* borrowed: the ack connection */
    const struct keys *keys;        /* borrowed */
    struct queue_breaker breaker;
    const char *ops_url;            /* borrowed; NULL = none */
    int counting;                   /* breaker on or disable_after set: report */
    long long known_gen;            /* generation the mirror was loaded at; -1 never */
    long long seen_gen;             /* newest generation a reply carried */
    int loading;                    /* ENDPOINTS sent, not answered */
    int closed;
    size_t dropped;                 /* reports dropped while too many waited */
    char last_error[256];           /* log_changed memo */
};

void health_init(struct health *h, uv_loop_t *loop, struct redis_conn *conn,
                 const struct keys *keys, const struct queue_breaker *b, const char *ops_url);

/* One attempt at origin ended; probe: it was the probe FETCH granted. */
void health_report(struct health *h, const char *origin, enum health_result r, int probe);

/* What the worker last heard of origin (open and half_open read as closed
 * while the breaker is off). */
enum endpoint_state health_state(struct health *h, const char *origin);

/* Whether a job for an origin not closed is the probe granted to this
 * worker (the grant is used). */
int health_take_probe(struct health *h, const char *origin);

/* A FETCH reply's generation and probe grants (its 4th and 5th elements). */
void health_note_fetch(struct health *h, const struct redisReply *gen,
                       const struct redisReply *probes);

/* Parked jobs of origin to pull, given its room (endpoints_pull_room). */
int health_pull_room(struct health *h, const char *origin, int room);

/* The connection is up: send what waits, load the mirror if it is behind. */
void health_flush(struct health *h);

/* Stop: reports not sent are dropped; replies still coming are ignored. h
 * stays valid until the loop has closed its handles and every call had its
 * reply. */
void health_close(struct health *h);

/* Free the mirror, after the loop ended. */
void health_free(struct health *h);

#endif
