/* http.c -- libcurl multi, driven by libuv (socket + timer callbacks).
 *
 * Shape follows curl's docs/examples/multi-uv.c, with its return codes
 * checked: one uv_timer_t for libcurl's timeout, one uv_poll_t per socket in
 * a context that libcurl hands back through curl_multi_assign, and each easy
 * handle's CURLOPT_PRIVATE pointing at its request. Easy handles are kept on
 * a free list so a steady stream of webhooks allocates nothing per request
 * beyond the header list.
 *
 * Unlike multi-uv.c, the poll handle of a kept-alive connection outlives
 * libcurl's interest in it: between two requests libcurl says
 * CURL_POLL_REMOVE, and closing and re-creating the uv_poll_t each time cost
 * half a dozen epoll_ctl calls and an allocation per request. Such an idle
 * socket stays watched for reading only, which tells us when the server
 * closes it (libcurl learns that itself, by its liveness check before
 * reuse), until libcurl's close-socket callback closes it. Sockets libcurl
 * closes without that callback (cut connection attempts, its resolver's
 * socketpair) lose their poll handle at REMOVE instead; see on_socket. */
#include <curl/curl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hookd/err.h"
#include "hookd/http.h"
#include "hookd/mem.h"
#include "hookd/policy.h"

struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    int events;                     /* UV_READABLE | UV_WRITABLE being watched */
    int assigned;                   /* libcurl holds it (curl_multi_assign) until
                                       its REMOVE; else idle, only in socks[] */
    struct http_client *client;
};

/* What the client knows about one socket number. */
struct sock_slot {
    struct sock_ctx *ctx;           /* its poll handle, NULL when none */
    int opened;                     /* on_open_socket made a socket under it */
    dev_t dev;                      /* identity of that socket (fstat) */
    ino_t ino;
};

/* libcurl 7.88 keeps TLS sessions per easy handle unless they share a
 * CURLSH, and a share holds 8 sessions (share.c, fixed): a worker talking
 * to more than 8 TLS origins in turn would evict each one's session before
 * it was used again. So a worker has HTTP_SHARES of them and an origin's
 * requests always use the one its origin hashes to: 128 sessions. */
#define HTTP_SHARES 16

/* A recycled easy handle and the share it is attached to (-1: none). */
struct idle_easy {
    CURL *easy;
    int share;
};

struct http_request {
    struct http_client *client;
    CURL *easy;
    int share;                      /* index of the share easy is attached to */
    struct curl_slist *headers;     /* owned */
    http_done_cb cb;
    void *arg;
    uint64_t started;               /* uv_now at start */
    long retry_after_s;
    char *capture;                  /* owned; capture_bytes long */
    size_t capture_len;
    size_t body_seen;               /* response bytes read so far */
    int cut;                        /* stopped reading at max_response_bytes */
    char *head;                     /* owned; with capture_headers, the latest
                                       response's header lines */
    size_t head_len, head_cap;
    struct http_request *prev, *next;  /* the client's running list */
    int forbidden;                  /* the destination policy refused an address */
    char forbid_why[128];           /* which address, which rule */
    char errbuf[CURL_ERROR_SIZE];
};

struct http_client {
    uv_loop_t *loop;
    CURLM *multi;
    CURLSH *shares[HTTP_SHARES];    /* TLS session caches, by origin; NULL
                                       entries when libcurl has none */
    uv_timer_t timer;
    size_t running;
    struct http_request *active;    /* running requests, for close */
    struct http_options opt;        /* strings and dest borrowed */
    struct curl_slist *resolve;     /* owned */
    struct idle_easy *free_easy;    /* recycled easy handles */
    size_t nfree, capfree;
    struct sock_slot *socks;        /* by fd number */
    size_t nsocks;
    int closing;
};

static void check_done(struct http_client *c);

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct sock_ctx *s = h->data;
    struct http_client *c = s->client;
    int flags = 0, running;

    if (!s->assigned) {
        /* Closed by the server (or sent something unasked) while kept
         * alive: stop watching; libcurl's liveness check will drop it. */
        uv_poll_stop(&s->poll);
        s->events = 0;
        return;
    }
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    /* s may be closed (not freed) by the time this returns */
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    check_done(c);
}

static void on_timer(uv_timer_t *t)
{
    struct http_client *c = t->data;
    int running;

    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(c);
}

static void free_sock(uv_handle_t *h)
{
    free(h->data);
}

/* The slot for fd, the table grown to hold it. */
static struct sock_slot *slot(struct http_client *c, curl_socket_t fd)
{
    if ((size_t)fd >= c->nsocks) {
        size_t n = c->nsocks ? c->nsocks : 64;
        while (n <= (size_t)fd)
            n *= 2;
        c->socks = xrealloc(c->socks, n * sizeof(*c->socks));
        memset(c->socks + c->nsocks, 0, (n - c->nsocks) * sizeof(*c->socks));
        c->nsocks = n;
    }
    return &c->socks[fd];
}

/* Stop watching s's socket and close the poll handle (freed in the close
 * callback, so a caller still holding s for this call is safe). */
static void drop_sock(struct sock_ctx *s)
{
    struct http_client *c = s->client;

    if (c->socks[s->fd].ctx == s)
        c->socks[s->fd].ctx = NULL;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, free_sock);
}

/* The poll handle filed under fd, NULL when none. */
static struct sock_ctx *sock_at(struct http_client *c, curl_socket_t fd)
{
    return fd >= 0 && (size_t)fd < c->nsocks ? c->socks[fd].ctx : NULL;
}

/* 1 when the socket open under fd is the one on_open_socket made there. */
static int is_ours(struct http_client *c, curl_socket_t fd)
{
    struct sock_slot *sl;
    struct stat st;

    if (fd < 0 || (size_t)fd >= c->nsocks || !(sl = &c->socks[fd])->opened)
        return 0;
    return fstat(fd, &st) == 0 && st.st_dev == sl->dev && st.st_ino == sl->ino;
}

/* A new poll handle for fd, filed in its slot; NULL when libuv refuses. */
static struct sock_ctx *new_sock(struct http_client *c, curl_socket_t fd)
{
    struct sock_ctx *s = xcalloc(1, sizeof(*s));

    if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
        free(s);
        return NULL;
    }
    s->fd = fd;
    s->client = c;
    s->poll.data = s;
    slot(c, fd)->ctx = s;
    return s;
}

/* Watch events on s; no system call when they are unchanged. */
static int watch(struct sock_ctx *s, int events)
{
    int rc;

    if (events == s->events)
        return 0;
    rc = uv_poll_start(&s->poll, events, on_poll);
    s->events = rc == 0 ? events : 0;
    return rc;
}

/* libcurl's socket callback. Keeping an idle socket watched after REMOVE
 * is only safe for a socket whose closing we are told about first, and
 * libcurl 7.88 closes some sockets without the close-socket callback: a
 * connection attempt that never became the connection (one cut by a short
 * timeout, a losing happy-eyeballs attempt) is closed with a bare close()
 * and its REMOVE comes only afterwards (cf-socket.c, cf_socket_close); the
 * threaded resolver's socketpair is never opened through on_open_socket
 * and gets its REMOVE just before its bare close() (asyn-thread.c). A poll
 * handle left on such a number makes libuv abort() (its epoll_ctl ADD
 * fails with EBADF) or is inherited by the next socket given the number (a
 * Redis reconnect then fails uv_poll_init with EEXIST). So:
 *
 *  - on_open_socket records the identity (st_dev, st_ino) of every socket
 *    hookd opens, filed by its number. A socket is ours while the one open
 *    under that number still has that identity: socket inodes are unique
 *    among open sockets, so a number closed and given to another socket
 *    never passes.
 *  - On REMOVE, an ours socket stays watched (idle); any other (not ours,
 *    already closed, or another socket under the number) is dropped at
 *    once, while the socket is still open (resolver) or closed but its
 *    number not yet handed out again (attempts). libcurl deletes its own
 *    record of the socket right after REMOVE: nothing else refers to the
 *    handle.
 *  - An idle handle is taken back as it is: its socket was ours at the
 *    REMOVE, and libcurl closes such a socket only through on_close_socket,
 *    which drops the handle; while it is open no other socket can have its
 *    number.
 *  - on_open_socket drops an idle handle filed under the number it gets
 *    (took_number).
 *
 * The checks cost an fstat() per REMOVE (3-4% of a worker's CPU on fast
 * plain http; taking a handle back costs none), and no epoll_ctl: a
 * request on a warm connection still makes none. What they cannot see is
 * an ours socket closed bare after its REMOVE; libcurl 7.88 closes bare
 * only sockets that never became a connection, and it closes those before
 * their REMOVE, not after. */
static int on_socket(CURL *easy, curl_socket_t fd, int action, void *userp, void *socketp)
{
    struct http_client *c = userp;
    struct sock_ctx *s = socketp;
    int events = 0;

    (void)easy;
    if (action == CURL_POLL_REMOVE) {
        if (s == NULL || uv_is_closing((uv_handle_t *)&s->poll))
            return 0;
        s->assigned = 0;    /* libcurl forgets the socket after this call */
        if (is_ours(c, fd))
            watch(s, UV_READABLE);      /* idle until reused or closed */
        else
            drop_sock(s);               /* closed already, or about to be */
        return 0;
    }
    if (s == NULL) {
        if (fd < 0)
            return -1;
        /* An idle handle is the kept-alive connection's own: it was ours
         * at its REMOVE, and such a socket is closed only through
         * on_close_socket, which drops the handle (no fstat here: this is
         * every request on a warm connection). One libcurl still holds
         * would not come back as NULL. */
        s = sock_at(c, fd);
        if (s != NULL && s->assigned) {
            drop_sock(s);
            s = NULL;
        }
        if (s == NULL && (s = new_sock(c, fd)) == NULL)
            return -1;      /* libcurl fails the transfer */
        curl_multi_assign(c->multi, fd, s);
        s->assigned = 1;
    }
    if (action == CURL_POLL_IN || action == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    return watch(s, events) == 0 ? 0 : -1;
}

static int on_timeout(CURLM *multi, long timeout_ms, void *userp)
{
    struct http_client *c = userp;

    (void)multi;
    /* Never call curl_multi_socket_action from here: a 0 timeout fires on
     * the next loop iteration instead. */
    if (timeout_ms < 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

struct http_client *http_client_new(uv_loop_t *loop, const struct http_options *opt)
{
    struct http_client *c = xcalloc(1, sizeof(*c));

    c->loop = loop;
    if (opt != NULL)
        c->opt = *opt;
    if (opt != NULL && opt->resolve != NULL) {
        char *copy = xstrdup(opt->resolve), *tok, *save = NULL;
        for (tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
            struct curl_slist *l = curl_slist_append(c->resolve, tok);
            if (l != NULL)
                c->resolve = l;
        }
        free(copy);
    }
    c->multi = curl_multi_init();
    if (c->multi == NULL) {
        curl_slist_free_all(c->resolve);
        free(c);
        return NULL;
    }
    /* A connection is made by whichever recycled handle needs one, and one
     * that never connected to the origin has no session of its own to
     * resume: shared caches make most new connections resume. (DNS answers
     * and connections are the multi handle's already.) One thread: no lock
     * callbacks. Without them (a libcurl without TLS) hookd runs as it
     * did before: sessions per handle. */
    for (int i = 0; i < HTTP_SHARES; i++) {
        c->shares[i] = curl_share_init();
        if (c->shares[i] != NULL &&
            curl_share_setopt(c->shares[i], CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) !=
                CURLSHE_OK) {
            curl_share_cleanup(c->shares[i]);
            c->shares[i] = NULL;
        }
    }
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timeout);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    /* libcurl's default idle-connection cache is 4 x the transfers running
     * at the moment a transfer ends: whenever a worker's requests dip (the
     * end of a batch), that closes most warm connections, and about one
     * request in five paid a new TCP connect. Keep one idle connection per
     * in-flight slot instead, as far as the open-file limit allows
     * (rlimit.h). */
    if (c->opt.max_connections > 0)
        curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)c->opt.max_connections);
    /* hosts.c keeps requests per origin within this already; libcurl's own
     * cap is the backstop that also holds for HTTP/2 (streams beyond a
     * connection's share queue inside libcurl rather than open more). */
    if (c->opt.max_host_connections > 0)
        curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                          (long)c->opt.max_host_connections);
    return c;
}

static size_t on_body(char *data, size_t size, size_t n, void *userp)
{
    struct http_request *r = userp;
    size_t len = size * n, room = r->client->opt.capture_bytes - r->capture_len;
    size_t max = r->client->opt.max_response_bytes;

    if (room > 0) {
        /* Allocated on the first body bytes, not per request: most answers
         * are short or empty, and 1,000 requests in flight would otherwise
         * hold capture_bytes each. */
        if (r->capture == NULL)
            r->capture = xmalloc(r->client->opt.capture_bytes);
        size_t take = len < room ? len : room;
        memcpy(r->capture + r->capture_len, data, take);
        r->capture_len += take;
    }
    r->body_seen += len;
    if (max > 0 && r->body_seen > max) {
        /* Enough: a receiver gets no say in how much we read. Returning
         * short makes libcurl stop (and drop the connection); the status
         * line already arrived and still decides the outcome. */
        r->cut = 1;
        return 0;
    }
    return len;     /* read and discarded beyond the capture, connection kept */
}

/* Append one header line to r->head; what a receiver sends beyond
 * HEAD_CAPTURE_MAX is not kept (its status still counts). */
#define HEAD_CAPTURE_MAX 16384

static void keep_header(struct http_request *r, const char *data, size_t len)
{
    if (r->head_len + len > HEAD_CAPTURE_MAX)
        return;
    if (r->head_len + len > r->head_cap) {
        r->head_cap = r->head_len + len > 1024 ? HEAD_CAPTURE_MAX : 1024;
        r->head = xrealloc(r->head, r->head_cap);
    }
    memcpy(r->head + r->head_len, data, len);
    r->head_len += len;
}

/* libcurl passes the header lines of every response it reads, 1xx interim
 * responses (103 Early Hints, a 100 Continue) included, each after its own
 * status line. What a header says belongs to its response only: a
 * Retry-After on a 103 must not delay the retry of the final 503. So a
 * status line starts the parsed state afresh. */
static size_t on_header(char *data, size_t size, size_t n, void *userp)
{
    struct http_request *r = userp;
    size_t len = size * n;

    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        r->retry_after_s = -1;
        r->head_len = 0;
    }
    if (r->client->opt.capture_headers)
        keep_header(r, data, len);
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0)
        return len;
    if (len > 12 && strncasecmp(data, "retry-after:", 12) == 0) {
        char tmp[64];
        size_t vl = len - 12 < sizeof(tmp) - 1 ? len - 12 : sizeof(tmp) - 1;
        memcpy(tmp, data + 12, vl);
        tmp[vl] = '\0';
        char *end;
        long v = strtol(tmp, &end, 10);
        while (*end == ' ' || *end == '\r' || *end == '\n')
            end++;
        if (end != tmp && *end == '\0' && v >= 0) {
            r->retry_after_s = v;
        } else {
            /* HTTP-date form */
            time_t t = curl_getdate(tmp, NULL);
            if (t > 0) {
                time_t now = time(NULL);
                r->retry_after_s = t > now ? (long)(t - now) : 0;
            }
        }
    }
    return len;
}

/* fd is a new socket of ours: record its identity. A handle still filed
 * under the number belongs to a socket closed behind our back: an idle one
 * is dropped. One libcurl still holds (that socket was closed bare and its
 * REMOVE has not come yet) must stay, as libcurl may pass it again. */
static void took_number(struct http_client *c, curl_socket_t fd)
{
    struct sock_slot *sl = slot(c, fd);
    struct sock_ctx *s = sl->ctx;
    struct stat st;

    sl->opened = fstat(fd, &st) == 0;
    sl->dev = sl->opened ? st.st_dev : 0;
    sl->ino = sl->opened ? st.st_ino : 0;
    if (s == NULL)
        return;
    if (!s->assigned) {
        drop_sock(s);
        return;
    }
    /* libcurl may take the new socket for the old one without a word (same
     * number, same events), and closing the old one took it out of epoll:
     * watch those events on the new socket. */
    int events = s->events;
    s->events = 0;
    watch(s, events);
}

/* libcurl asks us for every socket it connects: the one place where the
 * destination policy sees the real address, after DNS, per attempt. */
static curl_socket_t on_open_socket(void *clientp, curlsocktype purpose,
                                    struct curl_sockaddr *addr)
{
    struct http_request *r = clientp;

    if (purpose == CURLSOCKTYPE_IPCXN && r->client->opt.dest != NULL &&
        policy_check_addr(r->client->opt.dest, &addr->addr, r->forbid_why,
                          sizeof(r->forbid_why)) < 0) {
        r->forbidden = 1;
        return CURL_SOCKET_BAD;
    }
    curl_socket_t fd = socket(addr->family, addr->socktype, addr->protocol);
    if (fd != CURL_SOCKET_BAD)
        took_number(r->client, fd);
    return fd;
}

/* Every socket libcurl opened through on_open_socket and made a connection
 * of is closed here (the others it closes itself, see the top). */
static int on_close_socket(void *clientp, curl_socket_t fd)
{
    struct http_client *c = clientp;
    struct sock_ctx *s = sock_at(c, fd);

    if (s != NULL)
        drop_sock(s);
    if (fd >= 0 && (size_t)fd < c->nsocks)
        c->socks[fd].opened = 0;
    return close(fd);
}

static const char *classify(CURLcode code)
{
    switch (code) {
    case CURLE_OK:
        return "http_status";
    case CURLE_OPERATION_TIMEDOUT:
        return "timeout";
    case CURLE_COULDNT_CONNECT:
        return "connect_failed";
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return "dns_failed";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
        return "tls_error";
    case CURLE_SEND_ERROR:
        return "send_failed";
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return "recv_failed";
    default:
        return "http_error";
    }
}

static void finish(struct http_client *c, struct http_request *r, CURLcode code)
{
    struct http_result res;
    long status = 0;

    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    if (r->cut && code == CURLE_WRITE_ERROR) {
        code = CURLE_OK;    /* we stopped reading; the answer itself was complete enough */
        r->errbuf[0] = '\0';   /* libcurl's "Failure writing output" is no error of the attempt */
    }
    memset(&res, 0, sizeof(res));
    res.status = status;
    res.curl_code = (int)code;
    res.aborted = code == CURLE_ABORTED_BY_CALLBACK;
    res.ok = code == CURLE_OK && status >= 200 && status < 300;
    res.reason = res.ok ? "ok" : r->forbidden ? "destination_forbidden" : classify(code);
    res.error = r->forbidden ? r->forbid_why
                : r->errbuf[0] ? r->errbuf : (code != CURLE_OK ? curl_easy_strerror(code) : "");
    res.latency_ms = (long)(uv_now(c->loop) - r->started);
    res.retry_after_s = r->retry_after_s;
    long version = 0, port = 0;
    curl_easy_getinfo(r->easy, CURLINFO_HTTP_VERSION, &version);
    if (version == CURL_HTTP_VERSION_2_0) {
        /* no port (a connection not over TCP, which hookd never makes):
         * every connection is one to hosts.c, which then stays at 100
         * streams and one more */
        curl_easy_getinfo(r->easy, CURLINFO_LOCAL_PORT, &port);
        res.h2_conn = port > 0 ? port : 1;
    }
    res.body = r->capture;
    res.body_len = r->capture_len;
    res.headers = r->head;
    res.headers_len = r->head_len;

    curl_multi_remove_handle(c->multi, r->easy);
    c->running--;
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        c->active = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    r->cb(&res, r->arg);

    curl_slist_free_all(r->headers);
    if (c->nfree == c->capfree) {
        c->capfree = c->capfree ? c->capfree * 2 : 64;
        c->free_easy = xrealloc(c->free_easy, c->capfree * sizeof(*c->free_easy));
    }
    c->free_easy[c->nfree++] = (struct idle_easy){ .easy = r->easy, .share = r->share };
    free(r->capture);
    free(r->head);
    free(r);
}

static void check_done(struct http_client *c)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        struct http_request *r = NULL;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        finish(c, r, msg->data.result);
    }
}

/* A new easy handle with the options every request shares. Handles are
 * recycled without curl_easy_reset: resetting and setting these again cost
 * a dozen allocations per request; the per-request options are all set
 * anew by http_post. */
static CURL *new_easy(struct http_client *c)
{
    CURL *e = curl_easy_init();

    if (e == NULL)
        return NULL;
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    /* Webhook answers are small; libcurl's default 16 KiB receive buffer
     * per transfer was most of a worker's memory at 1,000 in flight. 1 KiB
     * is libcurl's minimum; a long answer just takes more reads. */
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 1024L);
    /* A transfer holds its upload buffer until it ends, answer included:
     * libcurl's default 64 KiB each was 64 MB of heap at 1,000 in flight
     * (massif), of which a page or two is written. 16 KiB is its minimum;
     * a longer body is sent in more writes. */
    curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    /* TLS: libcurl verifies peer and host name by default; hookd only adds
     * trust anchors and a client identity. */
    if (c->opt.ca_file != NULL)
        curl_easy_setopt(e, CURLOPT_CAINFO, c->opt.ca_file);
    if (c->opt.ca_path != NULL)
        curl_easy_setopt(e, CURLOPT_CAPATH, c->opt.ca_path);
    if (c->opt.client_cert != NULL) {
        curl_easy_setopt(e, CURLOPT_SSLCERT, c->opt.client_cert);
        curl_easy_setopt(e, CURLOPT_SSLKEY, c->opt.client_key);
    }
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, c);
    /* No proxies from the environment: the policy must see the real
     * destination, not a proxy's address. */
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    if (c->resolve != NULL)
        curl_easy_setopt(e, CURLOPT_RESOLVE, c->resolve);
    return e;
}

/* The share for an origin ("scheme://host:port", as policy_check_url
 * writes it: one origin, one string): a hash of it (FNV-1a). */
static int share_of(const char *origin)
{
    uint32_t h = 2166136261u;

    if (origin == NULL)
        return 0;
    for (const char *q = origin; *q != '\0'; q++)
        h = (h ^ (unsigned char)*q) * 16777619u;
    return (int)(h % HTTP_SHARES);
}

int http_post(struct http_client *c, const struct http_request_spec *spec, http_done_cb cb,
              void *arg)
{
    struct http_request *r;
    CURL *e;

    if (c->closing)
        return HK_EHTTP;
    struct idle_easy idle = c->nfree > 0 ? c->free_easy[--c->nfree]
                                          : (struct idle_easy){ new_easy(c), -1 };
    if ((e = idle.easy) == NULL)
        return HK_EHTTP;
    r = xcalloc(1, sizeof(*r));
    r->client = c;
    r->easy = e;
    r->share = share_of(spec->origin);
    if (r->share != idle.share)
        curl_easy_setopt(e, CURLOPT_SHARE, c->shares[r->share]);
    r->cb = cb;
    r->arg = arg;
    r->retry_after_s = -1;
    for (size_t i = 0; i < spec->nheaders; i++) {
        struct curl_slist *l = curl_slist_append(r->headers, spec->headers[i]);
        if (l == NULL)
            goto fail;
        r->headers = l;
    }
    /* libcurl adds "Expect: 100-continue" to large POSTs; an empty value
     * removes it, saving a round trip a webhook receiver never needs. */
    struct curl_slist *l = curl_slist_append(r->headers, "Expect:");
    if (l == NULL)
        goto fail;
    r->headers = l;

    curl_easy_setopt(e, CURLOPT_URL, spec->url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, spec->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)spec->body_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, spec->user_agent);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, spec->timeout_ms);
    /* PIPEWAIT makes a request wait for a connection that may multiplex
     * rather than open its own. Only TLS can learn (ALPN) that a server
     * speaks HTTP/2, during the handshake; on cleartext HTTP curl learns
     * nothing until the first response, so every request to a slow
     * endpoint would queue behind the first one. */
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, strncasecmp(spec->url, "https:", 6) == 0 ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, r);
    r->started = uv_now(c->loop);
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK)
        goto fail;
    c->running++;
    r->next = c->active;
    if (c->active != NULL)
        c->active->prev = r;
    c->active = r;
    return 0;
fail:
    curl_slist_free_all(r->headers);
    free(r->capture);
    free(r);
    curl_easy_cleanup(e);
    return HK_EHTTP;
}

size_t http_running(const struct http_client *c)
{
    return c->running;
}

static void free_client(uv_handle_t *h)
{
    struct http_client *c = h->data;

    free(c);
}

void http_client_close(struct http_client *c)
{
    c->closing = 1;
    /* Fail whatever is still running, so every cb fires exactly once. */
    while (c->active != NULL)
        finish(c, c->active, CURLE_ABORTED_BY_CALLBACK);
    for (size_t i = 0; i < c->nfree; i++)
        curl_easy_cleanup(c->free_easy[i].easy);
    free(c->free_easy);
    curl_multi_cleanup(c->multi);   /* closes every socket: on_close_socket */
    for (int i = 0; i < HTTP_SHARES; i++)
        curl_share_cleanup(c->shares[i]);  /* after every easy handle that used it */
    /* Handles left are those of sockets libcurl closed itself. */
    for (size_t i = 0; i < c->nsocks; i++)
        if (c->socks[i].ctx != NULL)
            drop_sock(c->socks[i].ctx);
    free(c->socks);
    curl_slist_free_all(c->resolve);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, free_client);
}
