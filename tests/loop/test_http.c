/* test_http.c -- http.c on a real libuv loop against a real TCP listener.
 *
 * The listener runs on the same loop (127.0.0.1, port chosen by the
 * kernel) and answers every request on a connection with one canned
 * answer. Each test counts callbacks and ends, as libuv's own tests do, by
 * asserting that uv_loop_close() succeeds: a poll handle http.c forgot to
 * close fails the test, and so does a worker-killing abort inside libuv. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <uv.h>

#include "hookd/http.h"

#define DEADLINE_MS 60000   /* a test that has not finished by then fails */

static const char OK_200[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

struct server {
    uv_tcp_t listener;
    int port;
    const char *answer;     /* written once per request */
    int requests;
};

struct conn {
    uv_tcp_t tcp;
    struct server *srv;
    char buf[8192];
    size_t len;
};

static void free_conn(uv_handle_t *h)
{
    free(h->data);
}

static void free_write(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

/* Complete requests at the start of c->buf: headers, then Content-Length
 * bytes of body. Each one is answered and consumed. */
static void answer_requests(struct conn *c)
{
    for (;;) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (end == NULL)
            return;
        size_t head = (size_t)(end - c->buf) + 4, body = 0;
        for (char *p = c->buf; p < end; p++) {
            if (strncasecmp(p, "\r\ncontent-length:", 17) == 0) {
                body = strtoul(p + 17, NULL, 10);
                break;
            }
        }
        if (c->len < head + body)
            return;
        uv_write_t *w = malloc(sizeof(*w));
        uv_buf_t b = uv_buf_init((char *)c->srv->answer, strlen(c->srv->answer));
        assert_non_null(w);
        if (uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, free_write) != 0)
            free(w);
        c->srv->requests++;
        memmove(c->buf, c->buf + head + body, c->len - head - body);
        c->len -= head + body;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct conn *c = h->data;
    (void)suggested;
    *b = uv_buf_init(c->buf + c->len, (unsigned)(sizeof(c->buf) - c->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct conn *c = s->data;
    (void)b;
    if (n < 0 || c->len + (size_t)n == sizeof(c->buf)) {
        uv_close((uv_handle_t *)s, free_conn);    /* EOF, error, or a request too big */
        return;
    }
    c->len += (size_t)n;
    answer_requests(c);
}

static void on_connection(uv_stream_t *l, int status)
{
    struct server *srv = l->data;
    struct conn *c;

    assert_int_equal(status, 0);
    c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->srv = srv;
    uv_tcp_init(l->loop, &c->tcp);
    c->tcp.data = c;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&c->tcp), 0);
    assert_int_equal(uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read), 0);
}

/* Listen on ip (127.0.0.1 or ::1), port chosen by the kernel. */
static void server_start(uv_loop_t *loop, struct server *srv, const char *ip, const char *answer)
{
    struct sockaddr_storage addr, bound;
    int len = sizeof(bound);

    memset(srv, 0, sizeof(*srv));
    srv->answer = answer;
    assert_int_equal(uv_tcp_init(loop, &srv->listener), 0);
    srv->listener.data = srv;
    if (strchr(ip, ':') != NULL)
        assert_int_equal(uv_ip6_addr(ip, 0, (struct sockaddr_in6 *)&addr), 0);
    else
        assert_int_equal(uv_ip4_addr(ip, 0, (struct sockaddr_in *)&addr), 0);
    assert_int_equal(uv_tcp_bind(&srv->listener, (struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&srv->listener, 1024, on_connection), 0);
    assert_int_equal(uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&bound, &len), 0);
    /* sin_port and sin6_port sit at the same offset */
    srv->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
}

/* ---- a run of requests, at most `window` at a time ------------------------- */

struct run {
    uv_loop_t *loop;
    struct http_client *client;
    char url[320];          /* a 255-byte host name fits */
    int total, cut;         /* requests; the first `cut` have a 1 ms timeout */
    int window;             /* requests in flight at most (hookd's max_per_host) */
    int started, done;
    int owed;               /* requests to start in the check phase */
    int cut_timeout, ok, failed;    /* outcomes */
    int finished;
    int late;               /* the deadline passed */
    uv_timer_t deadline;
    uv_check_t check;       /* starts the requests owed */
};

static void start_next(struct run *run);

static void on_check(uv_check_t *h)
{
    struct run *run = h->data;

    uv_check_stop(h);
    for (; run->owed > 0; run->owed--)
        start_next(run);
}

static void on_done(const struct http_result *res, void *arg)
{
    struct run *run = arg;

    run->done++;
    if (res->curl_code == CURLE_OPERATION_TIMEDOUT)
        run->cut_timeout++;
    else if (res->ok)
        run->ok++;
    else
        run->failed++;
    /* The next request starts after the loop has polled for I/O, as in
     * hookd, where it waits for a fetch from Redis: starting it right here
     * would let libcurl reuse a closed socket's number before libuv acts
     * on the watcher left behind. */
    if (run->started + run->owed < run->total) {
        run->owed++;
        uv_check_start(&run->check, on_check);
    } else if (run->done == run->total) {
        run->finished = 1;
        uv_stop(run->loop);     /* the listener would keep the loop running */
    }
}

static void start_next(struct run *run)
{
    struct http_request_spec spec = {
        .url = run->url, .body = "{}", .body_len = 2, .user_agent = "test_http",
        .timeout_ms = run->started < run->cut ? 1 : 10000,
    };

    run->started++;
    assert_int_equal(http_post(run->client, &spec, on_done, run), 0);
}

static void on_deadline(uv_timer_t *t)
{
    struct run *run = t->data;

    run->late = 1;
    uv_stop(t->loop);
}

/* `total` requests to host, answered by a listener on ip, the first `cut`
 * of them with a 1 ms timeout, `window` at a time; then the client is
 * closed and every handle with it, and the loop must close cleanly. */
static void run_requests(const char *host, const char *ip, int total, int cut, int window)
{
    uv_loop_t loop;
    struct server srv;
    struct run run;
    struct http_options opt = {
        .capture_bytes = 64, .max_host_connections = window, .max_connections = window,
    };

    assert_int_equal(uv_loop_init(&loop), 0);
    server_start(&loop, &srv, ip, OK_200);
    memset(&run, 0, sizeof(run));
    run.loop = &loop;
    run.total = total;
    run.cut = cut;
    run.window = window;
    snprintf(run.url, sizeof(run.url), "http://%s:%d/hook", host, srv.port);
    run.client = http_client_new(&loop, &opt);
    assert_non_null(run.client);
    uv_timer_init(&loop, &run.deadline);
    run.deadline.data = &run;
    uv_timer_start(&run.deadline, on_deadline, DEADLINE_MS, 0);
    uv_unref((uv_handle_t *)&run.deadline);     /* it cuts a hang, it keeps nothing alive */
    uv_check_init(&loop, &run.check);
    run.check.data = &run;
    for (int i = 0; i < window && run.started < total; i++)
        start_next(&run);

    uv_run(&loop, UV_RUN_DEFAULT);
    assert_false(run.late);
    assert_true(run.finished);
    assert_int_equal(run.done, total);
    assert_int_equal(run.failed, 0);
    /* the cut requests time out, or (rarely) are answered within 1 ms */
    assert_true(run.cut_timeout <= cut);
    assert_int_equal(run.ok + run.cut_timeout, total);
    assert_true(run.ok >= total - cut);
    assert_true(srv.requests >= total - cut);

    /* Closing the client closes its sockets, so the listener's side of
     * every connection sees EOF and closes too; a poll handle http.c left
     * active would keep this run going until the deadline. */
    http_client_close(run.client);
    uv_close((uv_handle_t *)&srv.listener, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_false(run.late);
    uv_close((uv_handle_t *)&run.deadline, NULL);
    uv_close((uv_handle_t *)&run.check, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Connection attempts cut by a 1 ms timeout: libcurl closes their sockets
 * without the close-socket callback and says CURL_POLL_REMOVE afterwards. */
static void test_cut_attempts_ip_literal(void **state)
{
    (void)state;
    for (int round = 0; round < 5; round++)
        run_requests("127.0.0.1", "127.0.0.1", 600, 200, 64);
}

/* The same through libcurl's threaded resolver, whose socketpair is never
 * opened through CURLOPT_OPENSOCKETFUNCTION. Needs a name other than
 * "localhost" (which libcurl answers itself) that resolves to 127.0.0.1:
 * the machine's host name, when /etc/hosts maps it so. */
static void test_cut_attempts_threaded_resolver(void **state)
{
    char name[256];
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *ai, *a;
    int local = 0;

    (void)state;
    if (gethostname(name, sizeof(name)) != 0 || strncasecmp(name, "localhost", 9) == 0 ||
        getaddrinfo(name, "80", &hints, &ai) != 0)
        skip();
    for (a = ai; a != NULL; a = a->ai_next)
        local |= ((struct sockaddr_in *)a->ai_addr)->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
    freeaddrinfo(ai);
    if (!local)
        skip();
    for (int round = 0; round < 5; round++)
        run_requests(name, "127.0.0.1", 600, 200, 64);
}

/* libcurl 7.88 resolves "localhost" itself, to 127.0.0.1 first and then
 * ::1. With the listener on ::1 only, every connection's first attempt is
 * refused, and libcurl removes and closes that socket while the next
 * attempt's socket is being opened for the same transfer. */
static void test_first_address_refused(void **state)
{
    uv_loop_t probe;
    uv_tcp_t t;
    struct sockaddr_in6 a;

    (void)state;
    uv_loop_init(&probe);
    uv_tcp_init(&probe, &t);
    uv_ip6_addr("::1", 0, &a);
    int no_ipv6 = uv_tcp_bind(&t, (struct sockaddr *)&a, 0) != 0;
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&probe, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&probe), 0);
    if (no_ipv6)
        skip();
    for (int round = 0; round < 3; round++)
        run_requests("localhost", "::1", 300, 100, 64);
}

/* ---- one request, one canned answer ---------------------------------------- */

struct answer {
    uv_loop_t *loop;
    int calls;
    long status, retry_after_s;
};

static void on_answer(const struct http_result *res, void *arg)
{
    struct answer *a = arg;

    a->calls++;
    a->status = res->status;
    a->retry_after_s = res->retry_after_s;
    uv_stop(a->loop);       /* the listener would keep the loop running */
}

/* POST once to a listener that answers `text`; the result's status and
 * Retry-After. */
static struct answer post_once(const char *text)
{
    uv_loop_t loop;
    struct server srv;
    struct answer a = { .loop = &loop };
    struct http_options opt = { .capture_bytes = 64 };
    char url[64];

    assert_int_equal(uv_loop_init(&loop), 0);
    server_start(&loop, &srv, "127.0.0.1", text);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", srv.port);
    struct http_request_spec spec = {
        .url = url, .body = "{}", .body_len = 2, .user_agent = "test_http",
        .timeout_ms = 10000,
    };
    struct http_client *c = http_client_new(&loop, &opt);
    assert_non_null(c);
    assert_int_equal(http_post(c, &spec, on_answer, &a), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(a.calls, 1);
    http_client_close(c);
    uv_close((uv_handle_t *)&srv.listener, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(a.calls, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
    return a;
}

/* A Retry-After belongs to the response it came with: one on a 1xx interim
 * response says nothing about the final answer. */
static void test_retry_after_of_the_final_response(void **state)
{
    struct answer a;

    (void)state;
    a = post_once("HTTP/1.1 103 Early Hints\r\nRetry-After: 3600\r\n\r\n"
                  "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
    assert_int_equal(a.status, 503);
    assert_int_equal(a.retry_after_s, -1);
    a = post_once("HTTP/1.1 100 Continue\r\nRetry-After: 9\r\n\r\n"
                  "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
                  "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\n"
                  "Content-Length: 0\r\n\r\n");
    assert_int_equal(a.status, 503);
    assert_int_equal(a.retry_after_s, 7);
    a = post_once("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\n"
                  "Content-Length: 0\r\n\r\n");
    assert_int_equal(a.status, 429);
    assert_int_equal(a.retry_after_s, 7);
    a = post_once(OK_200);
    assert_int_equal(a.status, 200);
    assert_int_equal(a.retry_after_s, -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cut_attempts_ip_literal),
        cmocka_unit_test(test_cut_attempts_threaded_resolver),
        cmocka_unit_test(test_first_address_refused),
        cmocka_unit_test(test_retry_after_of_the_final_response),
    };
    int rc;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
