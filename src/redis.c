/* redis.c -- Redis connections on libuv: hookd's own sockets, hiredis as
 * the codec, TLS through redis_tls.c, Sentinel discovery, reconnection and
 * command timeouts (see redis.h for the contract and why).
 *
 * One connection is a series of links, one socket each. A link connects
 * (resolving a host name off the loop), shakes hands when TLS is on, and
 * then either asks where the primary is (a sentinel, or a cluster node for
 * the slot of the prefix's keys), or sets up the server connection (AUTH,
 * SELECT, then ROLE) and carries commands. Every way a link ends goes through link_down(): pending
 * callbacks get NULL, the failure is reported once, a reconnect is
 * scheduled. That is the one "connection down" path.
 *
 * It logs nothing: state changes go to the owner's state callback, once
 * per change, and the owner says them (a lower layer that logged would
 * speak without knowing who it works for or what the failure costs). */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <hiredis/sds.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/mem.h"
#include "hookd/redis.h"
#include "hookd/redis_tls.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
/* With Sentinel or Cluster a new primary is named within seconds of a
 * failover, and asking costs the node little: retry at least every second,
 * so hookd follows the new primary about a second after it is named. */
#define FOLLOW_BACKOFF_MAX_MS 1000
#define WATCHDOG_MS 200
#define READ_CHUNK (64 * 1024)      /* bytes taken from the socket at once */
#define KEEPALIVE_S 60
/* Past this, the reader's buffer doubles instead of growing 1 MiB at a time
 * (hiredis 0.14's step), so a 64 MiB reply costs a few copies, not 64. */
#define READER_DOUBLE_AT (1024 * 1024)

struct redis_link {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } u;
    uv_connect_t connect_req;
    uv_getaddrinfo_t resolve_req;
    uv_write_t write_req;
    struct redis_conn *c;       /* NULL once detached: late callbacks do nothing */
    struct redis_tls *tls;      /* owned; NULL without TLS */
    char host[64];              /* connected to, for TLS names and messages */
    int port;
    int refs;                   /* the handle, and a resolution in progress */
    int connected;              /* the socket is connected (and TLS done) */
    int handshaking;
    char *wbuf;                 /* being written (owned), NULL when idle */
    char rbuf[READ_CHUNK];      /* what the socket gives */
};

static void schedule_reconnect(struct redis_conn *c);
static void start_connect(struct redis_conn *c);
static void on_retry_timer(uv_timer_t *t);
static void flush(struct redis_conn *c);

/* ---- reporting state -------------------------------------------------------- */

/* Up: connected, and AUTH, SELECT and ROLE answered. Only now is the
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

/* Only the first reason counts: what follows a failure is its consequence. */
static void set_error(struct redis_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_error(struct redis_conn *c, const char *fmt, ...)
{
    va_list ap;

    if (c->last_error[0] != '\0')
        return;
    va_start(ap, fmt);
    vsnprintf(c->last_error, sizeof(c->last_error), fmt, ap);
    va_end(ap);
}

/* libuv's codes are -errno; strerror's words are the ones an operator
 * knows ("Connection refused"). */
static const char *uv_why(int status)
{
    return status == UV_EOF ? "Server closed the connection"
         : status > -4096 && status < 0 ? strerror(-status) : uv_strerror(status);
}

/* ---- links ------------------------------------------------------------------ */

static void link_unref(struct redis_link *l)
{
    if (--l->refs > 0)
        return;
    redis_tls_free(l->tls);
    free(l->wbuf);
    free(l);
}

static void on_link_closed(uv_handle_t *h)
{
    link_unref(h->data);
}

/* Let the link go: its socket closes (reset: the kernel drops what it has
 * not sent; see on_watchdog), and it is freed once libuv is done with it. */
static void link_detach(struct redis_link *l, int reset)
{
    l->c = NULL;
    if (l->refs > 1)
        uv_cancel((uv_req_t *)&l->resolve_req);
    if (!reset || l->u.handle.type != UV_TCP || !l->connected ||
        uv_tcp_close_reset(&l->u.tcp, on_link_closed) < 0)
        uv_close(&l->u.handle, on_link_closed);
}

/* What c held for its link: parser state, unsent bytes, "up". */
static void conn_reset(struct redis_conn *c)
{
    redisReaderFree(c->reader);
    c->reader = redisReaderCreate();
    if (c->reader == NULL)
        mem_oom(sizeof(redisReader));
    c->olen = 0;
    c->up = 0;
    c->broken = 0;
    c->setup_pending = 0;
}

/* The one "connection down" path: the link is gone, every command still
 * out gets NULL (before the state callback, as the callbacks learn of the
 * loss first), the failure is reported when it is news, and a reconnect is
 * scheduled. With Sentinel or Cluster the next attempt asks again. */
static void link_down(struct redis_conn *c, int reset)
{
    struct redis_pending *pq = c->pq;
    size_t head = c->pq_head, len = c->pq_len, cap = c->pq_cap;

    if (c->link == NULL)
        return;
    link_detach(c->link, reset);
    c->link = NULL;
    conn_reset(c);
    c->pq = NULL;
    c->pq_head = c->pq_len = c->pq_cap = 0;
    for (size_t i = 0; i < len; i++) {
        struct redis_pending *p = &pq[(head + i) % cap];
        if (p->cb != NULL)
            p->cb(c, NULL, p->arg);
    }
    free(pq);
    if (c->closing)
        return;
    if (c->asking && ++c->nodes_asked < c->addr->nnodes) {
        /* This node did not answer; the next one may. The round is
         * reported only when none has. */
        c->node = (c->node + 1) % c->addr->nnodes;
        c->last_error[0] = '\0';
        start_connect(c);
        return;
    }
    if (c->asking)
        c->node = (c->node + 1) % c->addr->nnodes;
    c->nodes_asked = 0;
    report_down(c);
    c->primary[0] = '\0';     /* said with the loss; the next attempt asks again */
}

/* ---- writing ---------------------------------------------------------------- */

static void append(struct redis_conn *c, const char *p, size_t n)
{
    if (c->olen + n > c->ocap) {
        c->ocap = (c->olen + n) * 2;
        c->obuf = xrealloc(c->obuf, c->ocap);
    }
    memcpy(c->obuf + c->olen, p, n);
    c->olen += n;
}

/* TLS output (handshake, records) joins the bytes waiting to be sent. */
static void take_tls(struct redis_conn *c)
{
    size_t n;
    char *p = redis_tls_take(c->link->tls, &n);

    if (p != NULL)
        append(c, p, n);
    free(p);
}

static void on_written(uv_write_t *req, int status)
{
    struct redis_link *l = req->data;
    struct redis_conn *c = l->c;

    free(l->wbuf);
    l->wbuf = NULL;
    if (c == NULL)
        return;     /* detached: the close is under way */
    if (status < 0) {
        set_error(c, "write: %s", uv_why(status));
        link_down(c, 0);
        return;
    }
    flush(c);
}

/* Hand what is waiting to the socket. One write at a time: what is added
 * meanwhile goes out together when it completes, so a busy connection
 * makes one write per round, not one per command. */
static void flush(struct redis_conn *c)
{
    struct redis_link *l = c->link;
    uv_buf_t b;
    int rc;

    if (l == NULL || l->wbuf != NULL || c->olen == 0)
        return;
    l->wbuf = c->obuf;
    b = uv_buf_init(c->obuf, (unsigned)c->olen);
    c->obuf = NULL;
    c->olen = c->ocap = 0;
    l->write_req.data = l;
    rc = uv_write(&l->write_req, &l->u.stream, &b, 1, on_written);
    if (rc < 0) {
        /* Not ended here: flush runs inside redis_command, whose caller
         * must not see its callbacks fire before it returns. */
        free(l->wbuf);
        l->wbuf = NULL;
        set_error(c, "write: %s", uv_why(rc));
        c->broken = 1;
        uv_timer_start(&c->retry_timer, on_retry_timer, 0, 0);
    }
}

/* Queue a command, its callback in line for its reply. */
static int send_argv(struct redis_conn *c, redis_reply_cb cb, void *arg, int argc,
                     const char **argv, const size_t *argvlen)
{
    char *cmd = NULL;
    int n = redisFormatCommandArgv(&cmd, argc, argv, argvlen);

    if (n < 0)
        return HK_EREDIS;
    if (c->link->tls != NULL) {
        if (redis_tls_write(c->link->tls, cmd, (size_t)n) < 0) {
            redisFreeCommand(cmd);
            return HK_EREDIS;
        }
        take_tls(c);
    } else {
        append(c, cmd, (size_t)n);
    }
    redisFreeCommand(cmd);
    if (c->pq_len == c->pq_cap) {
        size_t cap = c->pq_cap ? c->pq_cap * 2 : 16;
        struct redis_pending *q = xmalloc(cap * sizeof(*q));
        for (size_t i = 0; i < c->pq_len; i++)
            q[i] = c->pq[(c->pq_head + i) % c->pq_cap];
        free(c->pq);
        c->pq = q;
        c->pq_head = 0;
        c->pq_cap = cap;
    }
    if (c->pq_len == 0)
        c->last_progress = uv_now(c->loop);
    c->pq[(c->pq_head + c->pq_len++) % c->pq_cap] = (struct redis_pending){ cb, arg };
    flush(c);
    return 0;
}

/* arg: the command's name (a literal), for its refusal's words. */
static void send_internal(struct redis_conn *c, redis_reply_cb cb, int argc, const char **argv)
{
    send_argv(c, cb, (void *)argv[0], argc, argv, NULL);
}

/* ---- setting a link up ------------------------------------------------------ */

/* AUTH, SELECT or ROLE answered. The connection is reported up only
 * once all have succeeded: a wrong password is a failure, said once with
 * Redis's words, and so is a server that takes the TCP connection but
 * never answers (stopped, hung), not an "up" followed by a "lost" on
 * every retry. */
static void on_setup_reply(struct redis_conn *c, struct redisReply *r, void *arg)
{
    if (r == NULL)
        return;         /* the link is going: link_down reports it */
    if (r->type == REDIS_REPLY_ERROR) {
        /* The first refusal says why (a wrong password); what is queued
         * behind it is refused only as its consequence. */
        set_error(c, "%s: %s", (const char *)arg, r->str);
        link_down(c, 0);
    } else if (--c->setup_pending == 0) {
        report_up(c);
    }
}

/* ROLE: the server must be a primary. With Sentinel, the one named may
 * have been demoted since; without, the address may name a replica. */
static void on_role_reply(struct redis_conn *c, struct redisReply *r, void *arg)
{
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "master") != 0) {
        set_error(c, "%s:%d is not the primary (ROLE: %s)", c->link->host, c->link->port,
                  r->element[0]->str);
        link_down(c, 0);
        return;
    }
    on_setup_reply(c, r, arg);
}

/* What a link that asks is asking: "sentinel" or "cluster node". */
static const char *asked(const struct redis_conn *c)
{
    return c->addr->kind == REDIS_SENTINEL ? "sentinel" : "cluster node";
}

/* The primary is named: leave the node asked and connect to it at once. */
static void go_to_primary(struct redis_conn *c, const char *host, size_t len, long port)
{
    if (len >= sizeof(c->primary) || port < 1 || port > 65535) {
        set_error(c, "%s %s:%d named no usable address", asked(c), c->link->host,
                  c->link->port);
        link_down(c, 0);
        return;
    }
    if (len == 0) {     /* CLUSTER SLOTS: "" is the node asked */
        host = c->link->host;
        len = strlen(host);
    }
    snprintf(c->primary, sizeof(c->primary), "%.*s", (int)len, host);
    c->primary_port = (int)port;
    c->nodes_asked = 0;
    link_detach(c->link, 0);
    c->link = NULL;
    c->pq_len = 0;
    conn_reset(c);
    start_connect(c);
}

/* SENTINEL get-master-addr-by-name: [host, port], or nil. */
static void on_sentinel_reply(struct redis_conn *c, struct redisReply *r, void *arg)
{
    struct redis_link *l = c->link;

    (void)arg;
    if (r == NULL)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        set_error(c, "sentinel %s:%d: %s", l->host, l->port, r->str);
    } else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
               r->element[0]->type != REDIS_REPLY_STRING ||
               r->element[1]->type != REDIS_REPLY_STRING) {
        set_error(c, "sentinel %s:%d knows no primary named '%s'", l->host, l->port,
                  c->addr->master);
    } else if (--c->setup_pending == 0) {
        go_to_primary(c, r->element[0]->str, r->element[0]->len,
                      strtol(r->element[1]->str, NULL, 10));
        return;
    }
    if (c->last_error[0] != '\0')
        link_down(c, 0);
}

/* CLUSTER KEYSLOT: the slot of the prefix's keys. */
static void on_keyslot_reply(struct redis_conn *c, struct redisReply *r, void *arg)
{
    if (r != NULL && r->type == REDIS_REPLY_INTEGER) {
        c->slot = (int)r->integer;
        --c->setup_pending;
        return;
    }
    on_setup_reply(c, r, arg);      /* an error: said, and the link ended */
}

/* CLUSTER SLOTS: [[first, last, [host, port, id], replicas...], ...]. */
static void on_slots_reply(struct redis_conn *c, struct redisReply *r, void *arg)
{
    (void)arg;
    if (r == NULL || c->link == NULL)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        set_error(c, "cluster node %s:%d: %s", c->link->host, c->link->port, r->str);
        link_down(c, 0);
        return;
    }
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *e = r->element[i], *node;
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->integer > c->slot || e->element[1]->integer < c->slot)
            continue;
        node = e->element[2];
        if (node->type == REDIS_REPLY_ARRAY && node->elements >= 2 &&
            node->element[0]->type == REDIS_REPLY_STRING &&
            node->element[1]->type == REDIS_REPLY_INTEGER && --c->setup_pending == 0) {
            go_to_primary(c, node->element[0]->str, node->element[0]->len,
                          (long)node->element[1]->integer);
            return;
        }
    }
    set_error(c, "cluster node %s:%d: no primary serves slot %d (of %s)", c->link->host,
              c->link->port, c->slot, c->addr->slot_key);
    link_down(c, 0);
}

/* Ask the node where the primary is: the sentinel for its name, the
 * cluster node for the slot of the prefix. */
static void ask_node(struct redis_conn *c)
{
    const struct redis_addr *a = c->addr;
    const char *pw = a->kind == REDIS_SENTINEL ? a->sentinel_password : a->password;
    const char *auth[] = { "AUTH", pw };

    if (pw != NULL && ++c->setup_pending)
        send_internal(c, on_setup_reply, 2, auth);
    if (a->kind == REDIS_SENTINEL) {
        const char *ask[] = { "SENTINEL", "get-master-addr-by-name", a->master };
        send_internal(c, on_sentinel_reply, 3, ask);
    } else {
        const char *slot[] = { "CLUSTER", "KEYSLOT", a->slot_key ? a->slot_key : "" };
        const char *slots[] = { "CLUSTER", "SLOTS" };
        ++c->setup_pending;
        send_internal(c, on_keyslot_reply, 3, slot);
        send_internal(c, on_slots_reply, 2, slots);
    }
}

/* The socket is connected (and TLS done): ask where the primary is, or set
 * the server connection up. Commands sent after these are queued behind
 * them, so the first ones run as authenticated as the rest. */
static void link_ready(struct redis_conn *c)
{
    const struct redis_addr *a = c->addr;
    char db[16];

    c->link->connected = 1;
    c->setup_pending = 1;
    if (c->asking) {
        ask_node(c);
        return;
    }
    if (a->password != NULL && ++c->setup_pending) {
        const char *auth[] = { "AUTH", a->password };
        send_internal(c, on_setup_reply, 2, auth);
    }
    if (a->db != 0 && ++c->setup_pending) {
        const char *sel[] = { "SELECT", db };
        snprintf(db, sizeof(db), "%d", a->db);
        send_internal(c, on_setup_reply, 2, sel);
    }
    /* ROLE, not PING: its answer proves the server serves, and that it
     * is a primary (a replica would refuse every write). */
    const char *role[] = { "ROLE" };
    send_internal(c, on_role_reply, 1, role);
    c->up = 1;
}

/* ---- reading ---------------------------------------------------------------- */

/* A server saying it is the wrong one to ask; see redis.h. Not
 * -CLUSTERDOWN: the node is the right one, the cluster is briefly without
 * some slot (another prefix's node failing over); the caller gets the
 * error reply and pauses as after any refusal, where ending the link made
 * it reconnect, come up and be refused again every 100 ms. */
static int wrong_server(const redisReply *r)
{
    static const char *const words[] = { "READONLY ", "MOVED ", "ASK " };

    if (r->type != REDIS_REPLY_ERROR)
        return 0;
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strncmp(r->str, words[i], strlen(words[i])) == 0)
            return 1;
    return 0;
}

/* Hand every complete reply to the callback first in line. A callback may
 * end the link (or the connection): then the rest is not ours to read. */
static void dispatch(struct redis_conn *c)
{
    struct redis_link *l = c->link;
    void *r;

    while (c->link == l && !c->closing) {
        if (redisReaderGetReply(c->reader, &r) != REDIS_OK) {
            set_error(c, "protocol error: %s", ((redisReader *)c->reader)->errstr);
            link_down(c, 0);
            return;
        }
        if (r == NULL)
            return;
        if (c->pq_len == 0) {
            freeReplyObject(r);
            set_error(c, "protocol error: a reply to no command");
            link_down(c, 0);
            return;
        }
        if (c->up && wrong_server(r)) {
            set_error(c, "the server answered %.100s", ((redisReply *)r)->str);
            freeReplyObject(r);
            link_down(c, 0);
            return;
        }
        struct redis_pending p = c->pq[c->pq_head];
        c->pq_head = (c->pq_head + 1) % c->pq_cap;
        c->pq_len--;
        c->last_progress = uv_now(c->loop);
        c->reply = r;
        p.cb(c, r, p.arg);
        if (c->reply != NULL)
            freeReplyObject(c->reply);
        c->reply = NULL;
    }
}

static void feed(struct redis_conn *c, const char *p, size_t n)
{
    redisReader *rd = c->reader;

    if (rd->buf != NULL && sdslen(rd->buf) >= READER_DOUBLE_AT && sdsavail(rd->buf) < n)
        rd->buf = sdsMakeRoomFor(rd->buf, sdslen(rd->buf));
    if (redisReaderFeed(rd, p, n) != REDIS_OK)
        mem_oom(n);
}

/* TLS records in, plaintext to the reader. */
static int feed_tls(struct redis_conn *c, const char *p, size_t n)
{
    struct redis_link *l = c->link;
    char plain[16 * 1024];
    long got;

    redis_tls_put(l->tls, p, n);
    if (l->handshaking) {
        int rc = redis_tls_handshake(l->tls, c->last_error, sizeof(c->last_error));
        take_tls(c);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            flush(c);
            return 0;
        }
        l->handshaking = 0;
        link_ready(c);
    }
    while ((got = redis_tls_read(l->tls, plain, sizeof(plain), c->last_error,
                                 sizeof(c->last_error))) > 0)
        feed(c, plain, (size_t)got);
    take_tls(c);
    flush(c);
    return got < 0 ? (int)got : 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct redis_link *l = h->data;

    (void)suggested;
    *buf = uv_buf_init(l->rbuf, sizeof(l->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct redis_link *l = s->data;
    struct redis_conn *c = l->c;

    if (c == NULL || nread == 0)
        return;
    if (nread < 0) {
        set_error(c, "%s", uv_why((int)nread));
        link_down(c, 0);
        return;
    }
    /* Bytes arriving are progress for the watchdog, not only whole
     * replies: a FETCH of a few 64 MiB jobs takes a while to read, and
     * cutting it at cmd_timeout_ms would release and fetch it again,
     * forever. */
    c->last_progress = uv_now(c->loop);
    if (l->tls != NULL) {
        if (feed_tls(c, buf->base, (size_t)nread) < 0) {
            link_down(c, 0);
            return;
        }
    } else {
        feed(c, buf->base, (size_t)nread);
    }
    dispatch(c);
}

/* ---- connecting ------------------------------------------------------------- */

static void on_connected(uv_connect_t *req, int status)
{
    struct redis_link *l = req->data;
    struct redis_conn *c = l->c;
    int rc;

    if (c == NULL)
        return;
    if (status < 0) {
        if (c->asking)
            set_error(c, "%s %s:%d: %s", asked(c), l->host, l->port, uv_why(status));
        else
            set_error(c, "%s", uv_why(status));
        link_down(c, 0);
        return;
    }
    if (l->u.handle.type == UV_TCP) {
        uv_tcp_nodelay(&l->u.tcp, 1);
        uv_tcp_keepalive(&l->u.tcp, 1, KEEPALIVE_S);
    }
    if ((rc = uv_read_start(&l->u.stream, on_alloc, on_read)) < 0) {
        set_error(c, "uv_read_start(): %s", uv_why(rc));
        link_down(c, 0);
        return;
    }
    if (l->tls != NULL) {
        l->handshaking = 1;
        take_tls(c);        /* the ClientHello */
        flush(c);
        return;
    }
    link_ready(c);
    flush(c);
}

static void connect_to(struct redis_link *l, const struct sockaddr *sa)
{
    struct redis_conn *c = l->c;
    int rc;

    l->connect_req.data = l;
    rc = uv_tcp_connect(&l->connect_req, &l->u.tcp, sa, on_connected);
    if (rc < 0) {
        set_error(c, "connect: %s", uv_why(rc));
        link_down(c, 0);
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct redis_link *l = req->data;
    struct redis_conn *c = l->c;

    if (c != NULL && status < 0) {
        set_error(c, "cannot resolve %s: %s", l->host, uv_strerror(status));
        link_down(c, 0);
    } else if (c != NULL) {
        connect_to(l, res->ai_addr);
    }
    uv_freeaddrinfo(res);
    link_unref(l);
}

/* Open a link to where c should be now: the socket, the server, the
 * sentinel to ask, or the primary a sentinel named. */
static void start_connect(struct redis_conn *c)
{
    const struct redis_addr *a = c->addr;
    struct redis_link *l = xcalloc(1, sizeof(*l));
    const char *host = a->host;
    int port = a->port;

    c->link = l;
    l->c = c;
    l->refs = 1;
    l->u.handle.data = l;
    c->last_progress = uv_now(c->loop);
    c->asking = a->kind != REDIS_DIRECT && c->primary[0] == '\0';
    if (a->path != NULL) {
        uv_pipe_init(c->loop, &l->u.pipe, 0);
        l->connect_req.data = l;
        uv_pipe_connect(&l->connect_req, &l->u.pipe, a->path, on_connected);
        return;
    }
    if (c->asking) {
        host = a->nodes[c->node].host;
        port = a->nodes[c->node].port;
    } else if (a->kind != REDIS_DIRECT) {
        host = c->primary;
        port = c->primary_port;
    }
    snprintf(l->host, sizeof(l->host), "%s", host);
    l->port = port;
    uv_tcp_init(c->loop, &l->u.tcp);
    if (a->tls) {
        struct hk_err err;
        if (c->tls == NULL && redis_tls_ctx_new(&a->tls_opts, &c->tls, &err) < 0) {
            set_error(c, "%s", err.msg);
            link_down(c, 0);
            return;
        }
        l->tls = redis_tls_new(c->tls, l->host);
    }
    struct sockaddr_storage ss;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) == 0) {
        connect_to(l, (struct sockaddr *)&ss);
        return;
    }
    /* A name: resolved on libuv's thread pool, not on the loop. */
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    char service[8];
    snprintf(service, sizeof(service), "%d", port);
    l->resolve_req.data = l;
    l->refs++;
    if (uv_getaddrinfo(c->loop, &l->resolve_req, on_resolved, l->host, service, &hints) < 0) {
        l->refs--;
        set_error(c, "cannot resolve %s", l->host);
        link_down(c, 0);
    }
}

/* ---- the connection's life -------------------------------------------------- */

static void finish_close(uv_handle_t *h)
{
    struct redis_conn *c = h->data;

    if (--c->handles_open == 0) {
        redisReaderFree(c->reader);
        c->reader = NULL;
        redis_tls_ctx_free(c->tls);
        c->tls = NULL;
        free(c->obuf);
        c->obuf = NULL;
        if (c->on_close != NULL)
            c->on_close(c);
    }
}

static void on_retry_timer(uv_timer_t *t)
{
    struct redis_conn *c = t->data;

    if (c->closing) {
        link_down(c, 0);
        uv_close((uv_handle_t *)&c->retry_timer, finish_close);
        uv_close((uv_handle_t *)&c->watchdog, finish_close);
        return;
    }
    if (c->link == NULL)
        start_connect(c);
    else if (c->broken)
        link_down(c, 0);
}

static void schedule_reconnect(struct redis_conn *c)
{
    long max = c->addr->kind != REDIS_DIRECT ? FOLLOW_BACKOFF_MAX_MS : BACKOFF_MAX_MS;

    uv_timer_start(&c->retry_timer, on_retry_timer, (uint64_t)c->backoff_ms, 0);
    c->backoff_ms *= 2;
    if (c->backoff_ms > max)
        c->backoff_ms = max;
}

/* No reply for cmd_timeout_ms while commands are outstanding (or a connect
 * or handshake that hangs): cut the connection. Runs from a timer, never
 * from inside a reply callback. */
static void on_watchdog(uv_timer_t *t)
{
    struct redis_conn *c = t->data;
    uint64_t idle;

    if (c->link == NULL || c->closing)
        return;
    idle = uv_now(c->loop) - c->last_progress;
    if ((c->pq_len > 0 || !c->link->connected || c->setup_pending > 0) &&
        idle > (uint64_t)c->cmd_timeout_ms) {
        /* A connect that hangs, or a server that never answers, is said
         * the same way every time, so it is reported once. */
        if (!c->link->connected)
            set_error(c, "%s not answered within %ld ms", c->link->tls ? "connect or TLS handshake"
                      : "connect", c->cmd_timeout_ms);
        else if (c->setup_pending > 0)
            set_error(c, "connected, but no answer to %s within %ld ms",
                      c->asking ? "CLUSTER or SENTINEL" : "ROLE", c->cmd_timeout_ms);
        else
            set_error(c, "nothing received for %llu ms", (unsigned long long)idle);
        /* Reset, not a graceful close: the kernel must drop what it has
         * not delivered yet rather than keep sending it. A FETCH stuck in
         * a partition and delivered after the new connection's RELEASE
         * would file jobs under seqs this worker has given up. */
        link_down(c, 1);
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
    c->reader = redisReaderCreate();
    if (c->reader == NULL)
        mem_oom(sizeof(redisReader));
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

int redis_command(struct redis_conn *c, redis_reply_cb cb, void *arg, int argc,
                  const char **argv, const size_t *argvlen)
{
    if (c->link == NULL || !c->up || c->closing)
        return HK_EREDIS;
    return send_argv(c, cb, arg, argc, argv, argvlen);
}

void redis_close(struct redis_conn *c, redis_close_cb cb)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->on_close = cb;
    /* Deferred: we may be inside a reply callback, where the link and the
     * reader are in use. */
    uv_timer_start(&c->retry_timer, on_retry_timer, 0, 0);
}

size_t redis_unsent(const struct redis_conn *c)
{
    return c->olen + (c->link != NULL ? uv_stream_get_write_queue_size(&c->link->u.stream) : 0);
}

int redis_fileno(const struct redis_conn *c)
{
    uv_os_fd_t fd;

    if (c->link == NULL || uv_fileno(&c->link->u.handle, &fd) != 0)
        return -1;
    return fd;
}

void redis_describe(const struct redis_conn *c, char *out, size_t cap)
{
    size_t n;

    redis_addr_format(c->addr, out, cap);
    n = strlen(out);
    if (c->primary[0] != '\0' && n < cap && c->addr->kind == REDIS_SENTINEL)
        snprintf(out + n, cap - n, " (primary %s:%d)", c->primary, c->primary_port);
    else if (c->primary[0] != '\0' && n < cap)
        snprintf(out + n, cap - n, " (slot %d at %s:%d)", c->slot, c->primary, c->primary_port);
}

struct redisReply *redis_reply_keep(struct redis_conn *c)
{
    struct redisReply *r = c->reply;

    c->reply = NULL;
    return r;
}

void redis_reply_free(struct redisReply *r)
{
    freeReplyObject(r);
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
