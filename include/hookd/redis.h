/* redis.h -- one asynchronous Redis connection on a libuv loop, that
 * reconnects by itself.
 *
 * This is the only file that includes hiredis. It replaces hiredis 0.14.1's
 * own libuv adapter, which drops poll errors (a broken socket is never
 * reported) and leaks when uv_poll_init fails, and adds what 0.14.1 lacks:
 * command timeouts. A connection with commands outstanding that receives
 * nothing for cmd_timeout_ms is cut, every pending callback gets reply == NULL, and
 * the connection is re-established with capped exponential backoff.
 *
 * Callback rule: redis_command() either returns an error and never calls cb,
 * or returns 0 and calls cb exactly once, with the reply (borrowed for the
 * call; may be an error reply) or NULL when the connection failed first. */
#ifndef HOOKD_REDIS_H
#define HOOKD_REDIS_H

#include <stddef.h>
#include <uv.h>

#include "hookd/redis_addr.h"

struct redis_conn;
struct redisReply;

typedef void (*redis_reply_cb)(struct redis_conn *c, struct redisReply *reply, void *arg);

/* What a state callback reports. This module logs nothing: its caller says
 * these in its own words (worker.c: "connection to <addr> up", "... lost
 * (why); reconnecting", "... failed: why; retrying"). */
enum redis_state {
    REDIS_UP,       /* connected, and AUTH, SELECT and a PING answered */
    REDIS_LOST,     /* was up, went down (why says how); reconnecting */
    REDIS_FAILED,   /* while down, an attempt failed for a reason not reported yet */
};
/* Called only on a change, never once per retry: an attempt that fails for
 * the reason last reported is silent, so a Redis that stays away is said
 * once. why is NULL for REDIS_UP, else borrowed for the call. Never called
 * from inside redis_init, redis_command or redis_close, nor after
 * redis_close. */
typedef void (*redis_state_cb)(struct redis_conn *c, enum redis_state state, const char *why,
                               void *arg);
typedef void (*redis_close_cb)(struct redis_conn *c);

struct redis_conn {
    uv_loop_t *loop;
    const struct redis_addr *addr;  /* borrowed; outlives the connection */
    char name[16];                  /* for the caller's log lines: "fetch", "ack" */
    void *ctx;                      /* redisAsyncContext *, NULL when down */
    struct redis_poll *poll;        /* current socket watcher */
    uv_timer_t retry_timer;         /* reconnect backoff / deferred close */
    uv_timer_t watchdog;            /* command timeout */
    int up;                         /* connected (commands accepted) */
    int reported_up;                /* the last state reported was REDIS_UP */
    int setup_pending;              /* AUTH/SELECT replies awaited before "up" */
    int closing;
    int handles_open;               /* timers not yet closed */
    long backoff_ms;
    long cmd_timeout_ms;
    unsigned pending;               /* commands sent, reply not yet seen */
    uint64_t last_progress;         /* uv_now() bytes last arrived */
    redis_state_cb on_state;
    void *state_arg;
    redis_close_cb on_close;
    char last_error[128];           /* why the current context failed */
    char reported[128];             /* the last failure reported, "" after up */
};

/* Start connecting (on the next loop iteration). The connection retries
 * forever until redis_close. Returns 0 (on_state fires later) or a
 * negative code. */
int redis_init(struct redis_conn *c, uv_loop_t *loop, const struct redis_addr *addr,
               const char *name, long cmd_timeout_ms, redis_state_cb on_state, void *arg);

/* Queue a command; see the callback rule above. HK_EREDIS when down. */
int redis_command(struct redis_conn *c, redis_reply_cb cb, void *arg, int argc,
                  const char **argv, const size_t *argvlen);

/* Disconnect at once (pending callbacks get NULL), close the handles, then
 * call cb. Safe to call from any callback. */
void redis_close(struct redis_conn *c, redis_close_cb cb);

/* Reply helpers, so callers need not include hiredis. */
int redis_reply_is_error(const struct redisReply *r);
int redis_reply_is_nil(const struct redisReply *r);
long long redis_reply_integer(const struct redisReply *r);     /* 0 if not integer */
size_t redis_reply_elements(const struct redisReply *r);       /* 0 if not array */
const struct redisReply *redis_reply_element(const struct redisReply *r, size_t i);
const char *redis_reply_str(const struct redisReply *r, size_t *len); /* NULL if none */

/* Blocking client for the supervisor and command-line tools (no loop).
 * Connects, authenticates, selects; every call is bounded by timeout_ms.
 * Returns NULL with err filled. Free with redis_sync_free. */
struct redis_sync;
struct redis_sync *redis_sync_connect(const struct redis_addr *addr, long timeout_ms,
                                      struct hk_err *err);
/* Run one command; returns the reply (caller frees with redis_sync_reply_free)
 * or NULL with err filled. An error reply is returned as NULL + err too. */
struct redisReply *redis_sync_command(struct redis_sync *s, int argc, const char **argv,
                                      const size_t *argvlen, struct hk_err *err);
void redis_sync_reply_free(struct redisReply *r);
void redis_sync_free(struct redis_sync *s);

#endif
