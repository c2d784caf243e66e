/* redis_sync.c -- the blocking Redis client of the supervisor, the metrics
 * child and the command-line tools (see redis.h).
 *
 * It is redis.c's connection on a private loop, run until each answer, so
 * that TLS, Sentinel, timeouts and the error words are the workers' own and
 * written once. The loop lives only inside these calls' struct and is
 * closed by redis_sync_free, so none is carried across a fork. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/mem.h"
#include "hookd/redis.h"

struct redis_sync {
    uv_loop_t loop;
    struct redis_conn conn;
    int state;                  /* the last state reported, -1 before any */
    char why[160];              /* with it */
    int answered;               /* the command's callback ran */
    struct redisReply *reply;   /* its reply, kept; NULL if the link failed */
    int closed;
};

static void on_state(struct redis_conn *c, enum redis_state state, const char *why, void *arg)
{
    struct redis_sync *s = arg;

    (void)c;
    s->state = (int)state;
    snprintf(s->why, sizeof(s->why), "%s", why ? why : "");
}

static void on_reply(struct redis_conn *c, struct redisReply *reply, void *arg)
{
    struct redis_sync *s = arg;

    s->answered = 1;
    s->reply = reply ? redis_reply_keep(c) : NULL;
}

static void on_closed(struct redis_conn *c)
{
    struct redis_sync *s = c->state_arg;

    s->closed = 1;
}

/* The connection's watchdog runs every 200 ms, so each turn returns within
 * that even when nothing else happens, and every wait is bounded by the
 * connection's own timeouts. */
static void run_until(struct redis_sync *s, const int *flag)
{
    while (!*flag)
        uv_run(&s->loop, UV_RUN_ONCE);
}

static int any_state(struct redis_sync *s)
{
    return s->state >= 0;
}

struct redis_sync *redis_sync_connect(const struct redis_addr *a, long timeout_ms,
                                      struct hk_err *err)
{
    struct redis_sync *s = xcalloc(1, sizeof(*s));
    char where[512];

    s->state = -1;
    if (uv_loop_init(&s->loop) != 0) {
        free(s);
        hk_err_set(err, HK_EREDIS, "redis", "uv_loop_init() failed");
        return NULL;
    }
    redis_init(&s->conn, &s->loop, a, "sync", timeout_ms, on_state, s);
    while (!any_state(s))
        uv_run(&s->loop, UV_RUN_ONCE);
    if (s->state != REDIS_UP) {
        redis_describe(&s->conn, where, sizeof(where));
        hk_err_set(err, HK_EREDIS, "redis", "cannot connect to redis at %s: %s", where, s->why);
        redis_sync_free(s);
        return NULL;
    }
    return s;
}

struct redisReply *redis_sync_command(struct redis_sync *s, int argc, const char **argv,
                                      const size_t *argvlen, struct hk_err *err)
{
    struct redisReply *r;

    s->answered = 0;
    s->reply = NULL;
    /* The loop has not run since the last call, maybe for long: its clock
     * must be now's, or the watchdog takes the command for one that has
     * waited all that time. */
    uv_update_time(&s->loop);
    if (redis_command(&s->conn, on_reply, s, argc, argv, argvlen) < 0) {
        hk_err_set(err, HK_EREDIS, "redis", "redis %s: not connected (%s)", argv[0],
                   s->why[0] ? s->why : "connection lost");
        return NULL;
    }
    run_until(s, &s->answered);
    r = s->reply;
    s->reply = NULL;
    if (r == NULL) {
        /* The state callback ran right after ours, with the reason. */
        hk_err_set(err, HK_EREDIS, "redis", "redis %s: %s", argv[0],
                   s->why[0] ? s->why : "connection lost");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        hk_err_set(err, HK_EREDIS, "redis", "redis %s: %s", argv[0], r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

void redis_sync_free(struct redis_sync *s)
{
    if (s == NULL)
        return;
    redis_close(&s->conn, on_closed);
    run_until(s, &s->closed);
    /* The link closes in the same turn; a name still being resolved holds
     * the loop until the resolver returns. */
    while (uv_loop_close(&s->loop) == UV_EBUSY)
        uv_run(&s->loop, UV_RUN_ONCE);
    free(s);
}
