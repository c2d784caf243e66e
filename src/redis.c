/* redis.c -- hiredis on libuv, with reconnection and command timeouts.
 *
 * Why not hiredis' adapters/libuv.h: in 0.14.1 its poll callback returns
 * early on a poll error, so a socket that fails that way is never reported
 * and every command on it waits forever; it also leaks its state when
 * uv_poll_init fails. The adapter below is the same five hooks, plus error
 * handling. hiredis 0.14.1 has no command or connect timeouts at all, hence
 * the watchdog timer.
 *
 * It logs nothing: state changes go to the owner's state callback, once
 * per change, and the owner says them (a lower layer that logged would
 * speak without knowing who it works for or what the failure costs). */
#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "hookd/mem.h"
#include "hookd/redis.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define WATCHDOG_MS 200

struct redis_poll {
    uv_poll_t handle;
    redisAsyncContext *ac;      /* NULL once hiredis freed the context */
    int events;
};

struct pending_cmd {
    struct redis_conn *conn;
    redis_reply_cb cb;
    void *arg;
};

static void schedule_reconnect(struct redis_conn *c);

/* ---- reporting state -------------------------------------------------------- */

/* Up: connected, and AUTH, SELECT and PING answered. Only now is the
 * backoff reset, so a server that accepts connections but refuses the
 * password, or never answers, is retried at the backoff's pace, not every
 * BACKOFF_MIN_MS. */
static void report_up(struct redis_conn *c)
{
    c->backoff_ms = BACKOFF_MIN_MS;
    c->reported_up = 1;
    c->reported[0] = '\0';
    if (c->on_state != NULL)
        c->on_state(c, REDIS_UP, NULL, c->state_arg);
}

/* The current attempt or connection failed (why: c->last_error). Say it
 * when it is news: the loss of a connection that was up, or a reason not
 * said since. A server that stays away fails the same way every retry,
 * and is said once. Then try again after the backoff. */
static void report_down(struct redis_conn *c)
{
    const char *why = c->last_error[0] ? c->last_error : "closed";
    enum redis_state state = c->reported_up ? REDIS_LOST : REDIS_FAILED;
    int news = c->reported_up || strcmp(c->reported, why) != 0;

    c->reported_up = 0;
    snprintf(c->reported, sizeof(c->reported), "%s", why);
    c->last_error[0] = '\0';
    if (news && c->on_state != NULL)
        c->on_state(c, state, c->reported, c->state_arg);
    if (!c->closing)
        schedule_reconnect(c);
}

/* ---- event hooks (the adapter) --------------------------------------------- */

/* libuv reports a socket error (POLLERR) as UV_EBADF whatever it was; the
 * socket knows the real one. A refused TCP connect arrives this way, and
 * said as "bad file descriptor" it would tell an operator nothing. */
static void set_socket_error(struct redis_conn *c, int fd, int status)
{
    int so_error = 0;
    socklen_t len = sizeof(so_error);

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) == 0 && so_error != 0)
        snprintf(c->last_error, sizeof(c->last_error), "%s", strerror(so_error));
    else
        snprintf(c->last_error, sizeof(c->last_error), "poll: %s", uv_strerror(status));
}

static void on_poll(uv_poll_t *handle, int status, int events)
{
    struct redis_poll *p = handle->data;

    if (p->ac == NULL)
        return;
    if (status < 0) {
        /* The case hiredis' adapter ignores. Free the context: pending
         * callbacks see NULL and the cleanup hook schedules a reconnect. */
        redisAsyncContext *ac = p->ac;
        struct redis_conn *c = ac->data;
        set_socket_error(c, ac->c.fd, status);
        redisAsyncFree(ac);
        return;
    }
    if (events & UV_READABLE) {
        /* Bytes arriving are progress for the watchdog, not only whole
         * replies: a FETCH of a few 64 MiB jobs takes seconds to read
         * (hiredis 0.14 grows its buffer 1 MiB at a time past 1 MiB), and
         * cutting it at cmd_timeout_ms would release and fetch it again,
         * forever. */
        struct redis_conn *c = p->ac->data;
        c->last_progress = uv_now(c->loop);
        redisAsyncHandleRead(p->ac);
    }
    if (p->ac != NULL && (events & UV_WRITABLE))
        redisAsyncHandleWrite(p->ac);
}

static void poll_update(struct redis_poll *p, int add, int ev)
{
    if (add)
        p->events |= ev;
    else
        p->events &= ~ev;
    if (p->events)
        uv_poll_start(&p->handle, p->events, on_poll);
    else
        uv_poll_stop(&p->handle);
}

static void ev_add_read(void *d) { poll_update(d, 1, UV_READABLE); }
static void ev_del_read(void *d) { poll_update(d, 0, UV_READABLE); }
static void ev_add_write(void *d) { poll_update(d, 1, UV_WRITABLE); }
static void ev_del_write(void *d) { poll_update(d, 0, UV_WRITABLE); }

static void free_poll(uv_handle_t *h)
{
    free(h->data);
}

/* hiredis calls this exactly once, when it frees the context for any reason
 * (connect failure, I/O error, our redisAsyncFree). It is the one place
 * where a connection is declared down. */
static void ev_cleanup(void *d)
{
    struct redis_poll *p = d;
    struct redis_conn *c = p->ac->data;

    if (p->ac->errstr != NULL && p->ac->err != 0)
        snprintf(c->last_error, sizeof(c->last_error), "%s", p->ac->errstr);
    p->ac = NULL;
    uv_close((uv_handle_t *)&p->handle, free_poll);
    if (c->poll == p)
        c->poll = NULL;
    c->ctx = NULL;
    c->up = 0;
    c->pending = 0;
    if (c->closing)
        return;
    report_down(c);
}

static int attach(struct redis_conn *c, redisAsyncContext *ac)
{
    struct redis_poll *p = xcalloc(1, sizeof(*p));

    if (uv_poll_init(c->loop, &p->handle, ac->c.fd) != 0) {
        free(p);
        return HK_EREDIS;
    }
    p->handle.data = p;
    p->ac = ac;
    ac->data = c;
    ac->ev.data = p;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    c->poll = p;
    return 0;
}

/* ---- connection life cycle ------------------------------------------------- */

/* AUTH, SELECT or PING answered. The connection is reported up only once
 * all have succeeded: a wrong password is a failure, said once with
 * Redis's words, and so is a server that takes the TCP connection but
 * never answers (stopped, hung), not an "up" followed by a "lost" on
 * every retry. */
static void on_setup_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *reply = r;
    const char *what = privdata;
    struct redis_conn *c = ac->data;

    if (reply == NULL)
        return;         /* the context is going: ev_cleanup reports it */
    if (reply->type == REDIS_REPLY_ERROR) {
        /* The first refusal says why (a wrong password); the PING queued
         * behind it is refused only as its consequence. */
        if (c->last_error[0] == '\0') {
            snprintf(c->last_error, sizeof(c->last_error), "%s: %s", what, reply->str);
            redisAsyncDisconnect(ac);
        }
    } else if (--c->setup_pending == 0) {
        report_up(c);
    }
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    struct redis_conn *c = ac->data;

    if (status != REDIS_OK) {
        /* hiredis frees the context right after; ev_cleanup reports it. */
        snprintf(c->last_error, sizeof(c->last_error), "%s", ac->errstr);
        return;
    }
    /* AUTH and SELECT go first, then a PING whose answer proves the
     * server serves; everything sent after them is queued behind them. */
    c->setup_pending = 1;
    if (c->addr->password != NULL && ++c->setup_pending)
        redisAsyncCommand(ac, on_setup_reply, "AUTH", "AUTH %s", c->addr->password);
    if (c->addr->db != 0 && ++c->setup_pending)
        redisAsyncCommand(ac, on_setup_reply, "SELECT", "SELECT %d", c->addr->db);
    redisAsyncCommand(ac, on_setup_reply, "PING", "PING");
    c->up = 1;
    c->last_progress = uv_now(c->loop);
    c->last_error[0] = '\0';
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)ac;
    (void)status;   /* ev_cleanup does the work; it runs for every path */
}

static void start_connect(struct redis_conn *c)
{
    const struct redis_addr *a = c->addr;
    redisAsyncContext *ac;

    /* hiredis resolves host names with a blocking getaddrinfo(); use an IP
     * address or a unix socket for Redis in production. */
    ac = a->path ? redisAsyncConnectUnix(a->path) : redisAsyncConnect(a->host, a->port);
    if (ac == NULL) {
        snprintf(c->last_error, sizeof(c->last_error), "out of memory");
        report_down(c);
        return;
    }
    if (ac->err != 0) {
        snprintf(c->last_error, sizeof(c->last_error), "%s", ac->errstr);
        redisAsyncFree(ac);
        report_down(c);
        return;
    }
    if (attach(c, ac) < 0) {
        snprintf(c->last_error, sizeof(c->last_error), "uv_poll_init() failed");
        redisAsyncFree(ac);
        report_down(c);
        return;
    }
    if (!a->path)
        redisEnableKeepAlive(&ac->c);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    c->ctx = ac;
    c->last_progress = uv_now(c->loop);
}

static void finish_close(uv_handle_t *h)
{
    struct redis_conn *c = h->data;

    if (--c->handles_open == 0 && c->on_close != NULL)
        c->on_close(c);
}

static void on_retry_timer(uv_timer_t *t)
{
    struct redis_conn *c = t->data;

    if (c->closing) {
        if (c->ctx != NULL)
            redisAsyncFree(c->ctx);
        uv_close((uv_handle_t *)&c->retry_timer, finish_close);
        uv_close((uv_handle_t *)&c->watchdog, finish_close);
        return;
    }
    if (c->ctx == NULL)
        start_connect(c);
}

static void schedule_reconnect(struct redis_conn *c)
{
    uv_timer_start(&c->retry_timer, on_retry_timer, (uint64_t)c->backoff_ms, 0);
    c->backoff_ms *= 2;
    if (c->backoff_ms > BACKOFF_MAX_MS)
        c->backoff_ms = BACKOFF_MAX_MS;
}

/* No reply for cmd_timeout_ms while commands are outstanding (or a connect
 * that hangs): cut the connection. Runs from a timer, never from inside a
 * hiredis callback, so freeing the context here is allowed. */
static void on_watchdog(uv_timer_t *t)
{
    struct redis_conn *c = t->data;
    uint64_t idle;

    if (c->ctx == NULL || c->closing)
        return;
    idle = uv_now(c->loop) - c->last_progress;
    if ((c->pending > 0 || !c->up || c->setup_pending > 0) &&
        idle > (uint64_t)c->cmd_timeout_ms) {
        /* Reset, not a graceful close: the kernel must drop what it has
         * not delivered yet rather than keep sending it. A FETCH stuck in
         * a partition and delivered after the new connection's RELEASE
         * would file jobs under seqs this worker has given up. */
        struct linger reset = { 1, 0 };
        redisAsyncContext *ac = c->ctx;
        setsockopt(ac->c.fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
        /* A connect that hangs, or a server that never answers, is said
         * the same way every time, so it is reported once. */
        if (!c->up)
            snprintf(c->last_error, sizeof(c->last_error),
                     "connect not answered within %ld ms", c->cmd_timeout_ms);
        else if (c->setup_pending > 0)
            snprintf(c->last_error, sizeof(c->last_error),
                     "connected, but no answer to PING within %ld ms", c->cmd_timeout_ms);
        else
            snprintf(c->last_error, sizeof(c->last_error), "nothing received for %llu ms",
                     (unsigned long long)idle);
        redisAsyncFree(ac);
    }
}

int redis_init(struct redis_conn *c, uv_loop_t *loop, const struct redis_addr *addr,
               const char *name, long cmd_timeout_ms, redis_state_cb on_state, void *arg)
{
    memset(c, 0, sizeof(*c));
    c->loop = loop;
    c->addr = addr;
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->cmd_timeout_ms = cmd_timeout_ms;
    c->backoff_ms = BACKOFF_MIN_MS;
    c->on_state = on_state;
    c->state_arg = arg;
    uv_timer_init(loop, &c->retry_timer);
    uv_timer_init(loop, &c->watchdog);
    c->retry_timer.data = c;
    c->watchdog.data = c;
    c->handles_open = 2;
    uv_timer_start(&c->watchdog, on_watchdog, WATCHDOG_MS, WATCHDOG_MS);
    /* The first attempt runs from the timer too: a failure known at once
     * (no such socket) is reported from the loop, not from in here. */
    uv_timer_start(&c->retry_timer, on_retry_timer, 0, 0);
    return 0;
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct pending_cmd *pc = privdata;
    struct redis_conn *c = pc->conn;

    (void)ac;
    if (c->pending > 0)
        c->pending--;
    c->last_progress = uv_now(c->loop);
    pc->cb(c, r, pc->arg);
    free(pc);
}

int redis_command(struct redis_conn *c, redis_reply_cb cb, void *arg, int argc,
                  const char **argv, const size_t *argvlen)
{
    struct pending_cmd *pc;

    if (c->ctx == NULL || !c->up || c->closing)
        return HK_EREDIS;
    pc = xmalloc(sizeof(*pc));
    pc->conn = c;
    pc->cb = cb;
    pc->arg = arg;
    if (redisAsyncCommandArgv(c->ctx, on_reply, pc, argc, argv, argvlen) != REDIS_OK) {
        free(pc);
        return HK_EREDIS;
    }
    if (c->pending++ == 0)
        c->last_progress = uv_now(c->loop);
    return 0;
}

void redis_close(struct redis_conn *c, redis_close_cb cb)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->on_close = cb;
    /* Deferred: we may be inside a hiredis callback, where freeing the
     * context is not allowed. */
    uv_timer_start(&c->retry_timer, on_retry_timer, 0, 0);
}

/* ---- reply helpers ------------------------------------------------------------ */

int redis_reply_is_error(const struct redisReply *r)
{
    return r == NULL || r->type == REDIS_REPLY_ERROR;
}

int redis_reply_is_nil(const struct redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_NIL;
}

long long redis_reply_integer(const struct redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
}

size_t redis_reply_elements(const struct redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
}

const struct redisReply *redis_reply_element(const struct redisReply *r, size_t i)
{
    return i < redis_reply_elements(r) ? r->element[i] : NULL;
}

const char *redis_reply_str(const struct redisReply *r, size_t *len)
{
    if (r == NULL || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS &&
                      r->type != REDIS_REPLY_ERROR))
        return NULL;
    if (len != NULL)
        *len = r->len;
    return r->str;
}

/* ---- blocking client ---------------------------------------------------------- */

struct redis_sync {
    redisContext *ctx;
    long timeout_ms;
};

/* Why the last call failed. hiredis reports a read that timed out with
 * EAGAIN's text ("Resource temporarily unavailable"), which tells an
 * operator nothing. */
static const char *sync_why(const struct redis_sync *s, char *buf, size_t cap)
{
    if (s->ctx->err == REDIS_ERR_IO && strcmp(s->ctx->errstr, strerror(EAGAIN)) == 0) {
        snprintf(buf, cap, "no answer within %ld ms", s->timeout_ms);
        return buf;
    }
    return s->ctx->errstr;
}

struct redis_sync *redis_sync_connect(const struct redis_addr *a, long timeout_ms,
                                      struct hk_err *err)
{
    struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
    struct redis_sync *s;
    redisContext *ctx;
    redisReply *r;
    char why_buf[64];

    ctx = a->path ? redisConnectUnixWithTimeout(a->path, tv)
                  : redisConnectWithTimeout(a->host, a->port, tv);
    if (ctx == NULL || ctx->err) {
        const char *why = ctx ? ctx->errstr : "out of memory";
        if (a->path)
            hk_err_set(err, HK_EREDIS, "redis", "cannot connect to redis at unix://%s: %s",
                       a->path, why);
        else
            hk_err_set(err, HK_EREDIS, "redis", "cannot connect to redis at %s:%d: %s",
                       a->host, a->port, why);
        redisFree(ctx);
        return NULL;
    }
    redisSetTimeout(ctx, tv);
    s = xcalloc(1, sizeof(*s));
    s->ctx = ctx;
    s->timeout_ms = timeout_ms;
    if (a->password != NULL) {
        r = redisCommand(ctx, "AUTH %s", a->password);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            hk_err_set(err, HK_EREDIS, "redis", "redis AUTH failed: %s",
                       r ? r->str : sync_why(s, why_buf, sizeof(why_buf)));
            freeReplyObject(r);
            redis_sync_free(s);
            return NULL;
        }
        freeReplyObject(r);
    }
    if (a->db != 0) {
        r = redisCommand(ctx, "SELECT %d", a->db);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            hk_err_set(err, HK_EREDIS, "redis", "redis SELECT %d failed: %s", a->db,
                       r ? r->str : sync_why(s, why_buf, sizeof(why_buf)));
            freeReplyObject(r);
            redis_sync_free(s);
            return NULL;
        }
        freeReplyObject(r);
    }
    return s;
}

struct redisReply *redis_sync_command(struct redis_sync *s, int argc, const char **argv,
                                      const size_t *argvlen, struct hk_err *err)
{
    redisReply *r = redisCommandArgv(s->ctx, argc, argv, argvlen);

    if (r == NULL) {
        char why[64];
        hk_err_set(err, HK_EREDIS, "redis", "redis %s: %s", argv[0],
                   sync_why(s, why, sizeof(why)));
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        hk_err_set(err, HK_EREDIS, "redis", "redis %s: %s", argv[0], r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

void redis_sync_reply_free(struct redisReply *r)
{
    freeReplyObject(r);
}

void redis_sync_free(struct redis_sync *s)
{
    if (s == NULL)
        return;
    redisFree(s->ctx);
    free(s);
}
