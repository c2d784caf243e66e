/* throttle.h -- per-origin rate limits, kept across all workers and hosts.
 *
 * A job whose origin has a limit (rate_limits in the config, or its own
 * rate_limit: the lowest wins, and so does a lower one Redis holds for the
 * origin) waits here for a delivery slot before it goes on to the origin's
 * admission (hosts.h). Slots come from the THROTTLE script (queue.h), GCRA
 * over Redis's clock: spaced one interval apart, at most 200 ms ahead.
 * Origins wanting slots in one loop iteration are asked for in one call,
 * on the ack connection (coalesce.h: a failed call is asked again in
 * order). A granted job is released by a timer at its slot's time; an
 * origin given less than it asked for is asked again when the reply says.
 *
 * Throttling only delays: a waiting job has made no attempt and counts
 * none, and a retry reaches it only once due. An origin holding about one
 * second of its rate in waiting jobs takes no more (throttle_wait says to
 * park them); throttle_room holds pulls of its parked jobs to the same.
 *
 * Callback rule: throttle_wait either returns an error and never calls the
 * callback, or returns 0 and calls it exactly once, later, from the loop
 * (never from inside a throttle function but throttle_close). */
#ifndef HOOKD_THROTTLE_H
#define HOOKD_THROTTLE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "hookd/coalesce.h"
#include "hookd/config.h"
#include "hookd/keys.h"
#include "hookd/redis.h"

enum throttle_verdict {
    THROTTLE_GO,            /* its slot has come: deliver it now */
    THROTTLE_CANCELLED,     /* the worker is closing: drop it (it stays in flight) */
};

struct throttle_req;
typedef void (*throttle_cb)(struct throttle_req *req, enum throttle_verdict v);

/* One job waiting; embedded in the caller's delivery. */
struct throttle_req {
    struct throttle_req *next;  /* internal: its origin's line */
    int64_t due_ms;             /* internal: loop time of its slot; -1 none yet */
    throttle_cb cb;             /* set by the caller */
};

struct throttle_origin;

struct throttle {
    uv_loop_t *loop;                    /* borrowed */
    struct redis_conn *conn;            /* borrowed */
    const struct keys *keys;            /* borrowed */
    struct throttle_origin *table;      /* owned; origins seen, by name */
    struct coalesce asks;               /* queued and sent asks (coalesce.h) */
    uv_timer_t timer;                   /* next slot or ask again */
    char last_error[256];               /* last error logged, "" when fine */
};

/* Ready t on loop, with the configured limits (copied). conn, keys must
 * outlive t. Returns 0 or a negative libuv code. */
int throttle_init(struct throttle *t, uv_loop_t *loop, struct redis_conn *conn,
                  const struct keys *keys, const struct config_rate *rates, size_t nrates);

/* Let req wait for a slot of origin; job_rate is the job's own rate_limit
 * per second (0: none). Returns 0 (req->cb fires once, later), -ENOENT
 * when origin has no limit here (deliver it now), or -EAGAIN when the
 * origin already holds about a second of its rate in waiting jobs (park
 * it). req is borrowed until its callback. */
int throttle_wait(struct throttle *t, const char *origin, long job_rate,
                  struct throttle_req *req);

/* An origin's room for parked jobs to pull (hosts_pull_plan), held to
 * what it has room for here: about a second of its rate minus what waits,
 * or room as it is when origin is not throttled. */
int throttle_room(const struct throttle *t, const char *origin, int room);

/* Send the asks queued (also called when the connection comes back). */
void throttle_flush(struct throttle *t);

/* Shutdown: every waiting job gets THROTTLE_CANCELLED now. Closes the
 * timer; t stays valid until the loop ran its close callback and every
 * call in flight had its reply (redis_close fails them). */
void throttle_close(struct throttle *t);

#endif
