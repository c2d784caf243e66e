/* redis.h -- one asynchronous Redis connection on a libuv loop, that
 * reconnects by itself: to a server, over TLS or not, to the primary that
 * Sentinel names, or to the cluster primary serving the prefix's slot.
 *
 * This is the only file that includes hiredis, and hookd uses hiredis only
 * as the protocol codec (its reader and command formatter): the sockets
 * are libuv streams, and TLS is redis_tls.c over memory buffers. Debian's
 * hiredis 0.14.1 has no TLS and no way to replace its I/O, and its libuv
 * adapter drops poll errors and leaks when uv_poll_init fails. Nor has it
 * command timeouts: a connection with commands outstanding that receives
 * nothing for cmd_timeout_ms is cut, every pending callback gets reply ==
 * NULL, and the connection is re-established with capped exponential
 * backoff.
 *
 * A server that says it is the wrong one (-READONLY: a replica since a
 * failover; -MOVED, -ASK: the slot is elsewhere) cuts the connection the same way:
 * the command's callback gets NULL, as if the connection had been lost
 * while it was out, and the next attempt finds the primary again.
 *
 * Callback rule: redis_command() either returns an error and never calls cb,
 * or returns 0 and calls cb exactly once, with the reply (borrowed for the
 * call; may be an error reply) or NULL when the connection failed first. */
#ifndef HOOKD_REDIS_H
#define HOOKD_REDIS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "hookd/redis_addr.h"

struct redis_conn;
struct redisReply;
struct redis_link;
struct redis_tls_ctx;

typedef void (*redis_reply_cb)(struct redis_conn *c, struct redisReply *reply, void *arg);

/* What a state callback reports. This module logs nothing: its caller says
 * these in its own words (worker.c: "connection to <addr> up", "... lost
 * (why); reconnecting", "... failed: why; retrying"). */
enum redis_state {
    REDIS_UP,       /* connected, and AUTH, SELECT and ROLE (a primary) answered */
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

struct redis_pending {
    redis_reply_cb cb;
    void *arg;
};

struct redis_conn {
    uv_loop_t *loop;
    const struct redis_addr *addr;  /* borrowed; outlives the connection */
    char name[16];                  /* for the caller's log lines: "fetch", "ack" */
    struct redis_link *link;        /* the current socket, NULL when down */
    struct redis_tls_ctx *tls;      /* owned; NULL without TLS */
    void *reader;                   /* hiredis redisReader, owned */
    struct redis_pending *pq;       /* commands sent, oldest first (a ring) */
    size_t pq_head, pq_len, pq_cap;
    char *obuf;                     /* bytes formatted, not yet handed to the socket */
    size_t olen, ocap;
    struct redisReply *reply;       /* the reply a callback is being given */
    uv_timer_t retry_timer;         /* reconnect backoff / deferred close */
    uv_timer_t watchdog;            /* command timeout */
    int up;                         /* connected (commands accepted) */
    int reported_up;                /* the last state reported was REDIS_UP */
    int setup_pending;              /* AUTH/SELECT/ROLE replies awaited before "up" */
    int closing;
    int broken;                     /* a write failed: end the link from the loop */
    int handles_open;               /* timers not yet closed */
    int asking;                     /* the link asks a sentinel or cluster node */
    size_t node;                    /* the one to ask next */
    size_t nodes_asked;             /* in this round, since the last report */
    char primary[64];               /* host they named, "" = ask them */
    int primary_port;
    int slot;                       /* cluster: the prefix's slot */
    long backoff_ms;
    long cmd_timeout_ms;
    uint64_t last_progress;         /* uv_now() bytes last arrived */
    redis_state_cb on_state;
    void *state_arg;
    redis_close_cb on_close;
    char last_error[160];           /* why the current attempt failed */
    char reported[160];             /* the last failure reported, "" after up */
};

/* Start connecting (on the next loop iteration). The connection retries
 * forever until redis_close. Returns 0 (on_state fires later) or a
 * negative code. TLS files that cannot be loaded fail each attempt, said
 * once like any other failure; main.c checks them at startup
 * (redis_tls_ctx_new) so that a wrong path is refused there. */
int redis_init(struct redis_conn *c, uv_loop_t *loop, const struct redis_addr *addr,
               const char *name, long cmd_timeout_ms, redis_state_cb on_state, void *arg);

/* Queue a command; see the callback rule above. HK_EREDIS when down. */
int redis_command(struct redis_conn *c, redis_reply_cb cb, void *arg, int argc,
                  const char **argv, const size_t *argvlen);

/* Where c is connected, for log lines: the address as redis_addr_format
 * writes it, and the primary found ("... (primary 10.0.0.5:6379)" with
 * Sentinel, "... (slot 1234 at 10.0.0.5:6379)" with Cluster). */
void redis_describe(const struct redis_conn *c, char *out, size_t cap);

/* Bytes of commands not yet taken by the kernel: queued, or not written yet
 * (a command is written at once when the socket takes it, from inside
 * redis_command). For tests that must know a command has left. */
size_t redis_unsent(const struct redis_conn *c);
/* The socket, -1 when down. For tests that read a reply before hookd does
 * (a reply lost with its connection). */
int redis_fileno(const struct redis_conn *c);

/* From inside a reply callback: keep the reply instead of having it freed
 * when the callback returns. The caller frees it with redis_reply_free. */
struct redisReply *redis_reply_keep(struct redis_conn *c);
void redis_reply_free(struct redisReply *r);

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

/* Blocking client for the supervisor and command-line tools: a
 * connection like the above on a private loop, run until each answer.
 * Connects, authenticates, selects (finds the primary, over TLS, as
 * configured); every call is bounded by timeout_ms. Returns NULL with err
 * filled ("cannot connect to redis at <addr>: <why>"). Free with
 * redis_sync_free. */
struct redis_sync;
struct redis_sync *redis_sync_connect(const struct redis_addr *addr, long timeout_ms,
                                      struct hk_err *err);
/* Run one command; returns the reply (caller frees with redis_reply_free)
 * or NULL with err filled. An error reply is returned as NULL + err too. */
struct redisReply *redis_sync_command(struct redis_sync *s, int argc, const char **argv,
                                      const size_t *argvlen, struct hk_err *err);
void redis_sync_free(struct redis_sync *s);

#endif
