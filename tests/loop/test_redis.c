/* test_redis.c -- redis.c on a real libuv loop against a real redis-server.
 *
 * Each test starts its own redis-server on a free 127.0.0.1 port, so a test
 * may kill it (SIGKILL), stop it (SIGSTOP) or start it again on the same
 * address. The test counts every callback redis.c makes: reply callbacks
 * (and how many got NULL), state callbacks by kind, close callbacks. A
 * state callback stops the loop, so a test runs the loop until the next
 * change of state; a deadline timer turns a hang into a failure. Each test
 * ends, as libuv's tests do, by asserting that uv_loop_close() succeeds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "hookd/err.h"
#include "hookd/redis.h"
#include "server.h"

#define DEADLINE_MS 10000   /* a test that has not finished by then fails */
#define CMD_TIMEOUT_MS 500  /* the watchdog test's command timeout */
#define LONG_TIMEOUT_MS 60000   /* tests where the watchdog must not cut */

static struct test_server srv;    /* a fresh one for each test */

struct t {
    uv_loop_t loop;
    struct redis_conn conn;
    uv_timer_t deadline;
    uv_timer_t pause;           /* run_for(): lets the loop run a while */
    int late;
    int up, lost, failed;       /* state callbacks by kind */
    char why[128];              /* the last reason given */
    uint64_t down_at;           /* uv_now() of the last LOST */
    int replies, nulls;         /* reply callbacks: all, and those with NULL */
    int reply_goal;             /* stop the loop when replies reaches it */
    int closed;                 /* close callbacks */
    int close_in_reply;         /* redis_close from the next reply callback */
};

/* ---- the redis-server ------------------------------------------------------------ */

static int setup(void **state)
{
    (void)state;
    test_server_init(&srv, "test_redis", 1, 0);
    test_server_start(&srv);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    test_server_remove(&srv);
    return 0;
}

/* ---- callbacks -------------------------------------------------------------------- */

static void on_state(struct redis_conn *c, enum redis_state state, const char *why, void *arg)
{
    struct t *t = arg;

    assert_ptr_equal(c, &t->conn);
    assert_int_equal(t->closed, 0);
    if (state == REDIS_UP) {
        assert_null(why);
        t->up++;
    } else {
        assert_non_null(why);
        assert_true(why[0] != '\0');
        snprintf(t->why, sizeof(t->why), "%s", why);
        if (state == REDIS_LOST) {
            t->lost++;
            t->down_at = uv_now(&t->loop);
        } else {
            t->failed++;
        }
    }
    uv_stop(&t->loop);
}

static void on_closed(struct redis_conn *c)
{
    struct t *t = c->state_arg;

    t->closed++;
}

static void on_reply(struct redis_conn *c, struct redisReply *reply, void *arg)
{
    struct t *t = arg;

    assert_ptr_equal(c, &t->conn);
    t->replies++;
    if (reply == NULL)
        t->nulls++;
    else
        assert_false(redis_reply_is_error(reply));
    if (t->close_in_reply) {
        t->close_in_reply = 0;
        redis_close(&t->conn, on_closed);
    }
    if (t->replies == t->reply_goal)
        uv_stop(&t->loop);
}

static void send_cmd(struct t *t, const char *a0, const char *a1, const char *a2)
{
    const char *argv[3] = { a0, a1, a2 };
    size_t lens[3];
    int argc = 0;

    for (; argc < 3 && argv[argc] != NULL; argc++)
        lens[argc] = strlen(argv[argc]);
    assert_int_equal(redis_command(&t->conn, on_reply, t, argc, argv, lens), 0);
}

/* ---- the loop around each test ------------------------------------------------------ */

static void on_deadline(uv_timer_t *h)
{
    struct t *t = h->data;

    t->late = 1;
    uv_stop(&t->loop);
}

static void run(struct t *t)
{
    uv_run(&t->loop, UV_RUN_DEFAULT);
    assert_false(t->late);
}

static void on_pause(uv_timer_t *h)
{
    struct t *t = h->data;

    uv_stop(&t->loop);
}

/* Let the loop run for ms, whatever happens meanwhile (state callbacks
 * stop the loop; this keeps running it until the timer fires). */
static void run_for(struct t *t, uint64_t ms)
{
    int fired = 0;

    uv_update_time(&t->loop);
    uv_timer_start(&t->pause, on_pause, ms, 0);
    while (!fired) {
        run(t);
        fired = !uv_is_active((uv_handle_t *)&t->pause);
    }
}

/* A loop and a connection to addr, not yet run. */
static struct t *start(long cmd_timeout_ms)
{
    struct t *t = calloc(1, sizeof(*t));

    assert_non_null(t);
    assert_int_equal(uv_loop_init(&t->loop), 0);
    uv_timer_init(&t->loop, &t->deadline);
    uv_timer_init(&t->loop, &t->pause);
    t->deadline.data = t;
    t->pause.data = t;
    uv_timer_start(&t->deadline, on_deadline, DEADLINE_MS, 0);
    uv_unref((uv_handle_t *)&t->deadline);      /* it cuts a hang, it keeps nothing alive */
    assert_int_equal(redis_init(&t->conn, &t->loop, &srv.addr, "test", cmd_timeout_ms,
                                on_state, t), 0);
    /* redis_init calls nothing back from inside itself */
    assert_int_equal(t->up + t->lost + t->failed, 0);
    return t;
}

/* A loop and a connection that is up. */
static struct t *start_up(long cmd_timeout_ms)
{
    struct t *t = start(cmd_timeout_ms);

    run(t);
    assert_int_equal(t->up, 1);
    return t;
}

/* Close the connection unless the test did; the loop must close cleanly. */
static void finish(struct t *t)
{
    if (!t->conn.closing)
        redis_close(&t->conn, on_closed);
    uv_close((uv_handle_t *)&t->deadline, NULL);
    uv_close((uv_handle_t *)&t->pause, NULL);
    assert_int_equal(uv_run(&t->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(t->closed, 1);
    assert_int_equal(uv_loop_close(&t->loop), 0);
    free(t);
}

/* Send PING and wait for its answer. */
static void ping(struct t *t)
{
    int before = t->replies, nulls = t->nulls;

    send_cmd(t, "PING", NULL, NULL);
    t->reply_goal = before + 1;
    run(t);
    assert_int_equal(t->replies, before + 1);
    assert_int_equal(t->nulls, nulls);
}

/* ---- tests -------------------------------------------------------------------------- */

/* Up once, three commands, three replies; nothing else is called. */
static void test_command_reply(void **state)
{
    struct t *t = start_up(LONG_TIMEOUT_MS);

    (void)state;
    send_cmd(t, "SET", "k", "v");
    send_cmd(t, "GET", "k", NULL);
    send_cmd(t, "PING", NULL, NULL);
    t->reply_goal = 3;
    run(t);
    assert_int_equal(t->replies, 3);
    assert_int_equal(t->nulls, 0);
    assert_int_equal(t->up, 1);
    assert_int_equal(t->lost + t->failed, 0);
    finish(t);
}

/* The server dies with two commands outstanding: each gets NULL once, the
 * loss is reported once; the refused retries that follow are reported once
 * between them, however many there are. Back on the same address: up once,
 * and commands work again. */
static void test_reconnect(void **state)
{
    struct t *t = start_up(LONG_TIMEOUT_MS);

    (void)state;
    send_cmd(t, "BLPOP", "nothing", "0");
    send_cmd(t, "BLPOP", "nothing", "0");
    test_server_kill(&srv, SIGKILL);
    run(t);                             /* stops on the loss */
    assert_int_equal(t->lost, 1);
    assert_int_equal(t->nulls, 2);
    assert_int_equal(t->replies, 2);
    assert_int_equal(redis_command(&t->conn, on_reply, t, 0, NULL, NULL), HK_EREDIS);
    run_for(t, 1000);                   /* retries after 100, 300, 700 ms */
    assert_true(t->conn.backoff_ms >= 1600);
    assert_int_equal(t->failed, 1);
    assert_string_equal(t->why, "Connection refused");
    assert_int_equal(t->lost, 1);
    test_server_start(&srv);
    run(t);                             /* stops on the reconnection */
    assert_int_equal(t->up, 2);
    ping(t);
    assert_int_equal(t->lost, 1);
    assert_int_equal(t->failed, 1);
    assert_int_equal(t->replies, 3);
    finish(t);
}

/* A server that stops answering with a command outstanding: the watchdog
 * cuts the connection no earlier than the command timeout after the
 * command went out (and not much later); the command gets NULL once, the
 * loss is reported once. Resumed, the server gets us back. */
static void test_watchdog(void **state)
{
    struct t *t = start_up(CMD_TIMEOUT_MS);
    uint64_t sent_at;

    (void)state;
    ping(t);
    kill(srv.pid, SIGSTOP);
    uv_update_time(&t->loop);
    sent_at = uv_now(&t->loop);
    send_cmd(t, "PING", NULL, NULL);
    run(t);                             /* stops on the NULL reply and the loss */
    assert_int_equal(t->nulls, 1);
    assert_int_equal(t->replies, 2);
    assert_int_equal(t->lost, 1);
    assert_non_null(strstr(t->why, "nothing received"));
    assert_true(t->down_at >= sent_at + CMD_TIMEOUT_MS);
    assert_true(t->down_at < sent_at + CMD_TIMEOUT_MS + 2000);
    kill(srv.pid, SIGCONT);
    run(t);                             /* stops on the reconnection */
    assert_int_equal(t->up, 2);
    ping(t);
    assert_int_equal(t->lost, 1);
    assert_int_equal(t->failed, 0);
    assert_int_equal(t->nulls, 1);
    finish(t);
}

/* Nothing listens: every retry fails the same way, and that is reported
 * once. A different failure is reported once more, then the first one
 * again, as it is news again. The first failure is known inside
 * redis_init (no such socket) and still comes from the loop; the second
 * (refused) comes from the socket later, said in strerror's words. */
static void test_error_once(void **state)
{
    struct t *t;

    (void)state;
    test_server_kill(&srv, SIGKILL);
    srv.addr.path = "/nonexistent/redis.sock";  /* redis.c reads addr at each try */
    t = start(LONG_TIMEOUT_MS);
    run_for(t, 1000);                   /* tries at 0, 100, 300, 700 ms */
    assert_true(t->conn.backoff_ms >= 1600);
    assert_int_equal(t->failed, 1);
    assert_string_equal(t->why, "No such file or directory");
    srv.addr.path = NULL;                   /* 127.0.0.1, where nothing listens now */
    run(t);                             /* stops at the next failure reported */
    assert_int_equal(t->failed, 2);
    assert_string_equal(t->why, "Connection refused");
    srv.addr.path = "/nonexistent/redis.sock";
    run(t);
    assert_int_equal(t->failed, 3);
    assert_string_equal(t->why, "No such file or directory");
    assert_int_equal(t->up + t->lost, 0);
    assert_int_equal(t->replies, 0);
    finish(t);
}

/* A server that takes the TCP connection but never answers (stopped):
 * not up, but a failure said once however often it is retried, the
 * backoff growing; up once it answers. Before, each try was an "up" and,
 * cmd_timeout later, a "lost". */
static void test_silent_server_said_once(void **state)
{
    struct t *t;

    (void)state;
    kill(srv.pid, SIGSTOP);             /* the kernel still completes the handshakes */
    t = start(300);
    run_for(t, 1500);                   /* tries at 0, 400, 900 ms and so on */
    assert_int_equal(t->up, 0);
    assert_int_equal(t->failed, 1);
    assert_string_equal(t->why, "connected, but no answer to ROLE within 300 ms");
    assert_true(t->conn.backoff_ms >= 400);
    kill(srv.pid, SIGCONT);
    run(t);                             /* stops on the answer */
    assert_int_equal(t->up, 1);
    ping(t);
    assert_int_equal(t->lost, 0);
    finish(t);
}

/* redis_close from inside a reply callback: the command still outstanding
 * gets NULL once, the close callback runs once, no state callback follows,
 * and the loop closes. */
static void test_close_in_callback(void **state)
{
    struct t *t = start_up(LONG_TIMEOUT_MS);

    (void)state;
    t->close_in_reply = 1;
    send_cmd(t, "PING", NULL, NULL);
    send_cmd(t, "BLPOP", "nothing", "0");   /* queued behind PING; never answered */
    uv_close((uv_handle_t *)&t->deadline, NULL);
    uv_close((uv_handle_t *)&t->pause, NULL);
    assert_int_equal(uv_run(&t->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(t->replies, 2);
    assert_int_equal(t->nulls, 1);
    assert_int_equal(t->closed, 1);
    assert_int_equal(t->up, 1);
    assert_int_equal(t->lost + t->failed, 0);
    assert_int_equal(uv_loop_close(&t->loop), 0);
    free(t);
}

/* Run one command on a blocking connection of its own. */
static void sync_cmd(int argc, const char **argv)
{
    struct hk_err err;
    struct redis_sync *s = redis_sync_connect(&srv.addr, 5000, &err);
    struct redisReply *r;

    assert_non_null(s);
    r = redis_sync_command(s, argc, argv, NULL, &err);
    assert_non_null(r);
    redis_reply_free(r);
    redis_sync_free(s);
}

/* A primary turned replica (a failover that did not cut its clients): a
 * write is answered -READONLY, which ends the link as a loss would. The
 * write's callback gets NULL, not the error; the loss is reported once,
 * with Redis's words. While it is a replica, ROLE refuses it (said once);
 * back to a primary, the connection is up again. */
static void test_readonly_ends_the_link(void **state)
{
    struct t *t = start_up(LONG_TIMEOUT_MS);
    const char *demote[] = { "REPLICAOF", "127.0.0.1", "1" };
    char cmd[128];

    (void)state;
    sync_cmd(3, demote);
    send_cmd(t, "SET", "k", "v");
    run(t);                             /* stops on the loss */
    assert_int_equal(t->replies, 1);
    assert_int_equal(t->nulls, 1);
    assert_int_equal(t->lost, 1);
    assert_non_null(strstr(t->why, "the server answered READONLY"));
    run(t);                             /* stops on the first refused attempt */
    assert_int_equal(t->failed, 1);
    assert_non_null(strstr(t->why, "is not the primary (ROLE: slave)"));
    /* the blocking client refuses a replica too (ROLE): redis-cli */
    snprintf(cmd, sizeof(cmd), "redis-cli -h 127.0.0.1 -p %d REPLICAOF NO ONE >/dev/null",
             srv.addr.port);
    assert_int_equal(system(cmd), 0);
    run(t);                             /* stops on the reconnection */
    assert_int_equal(t->up, 2);
    assert_int_equal(t->failed, 1);
    send_cmd(t, "SET", "k", "v");
    t->reply_goal = 2;
    run(t);
    assert_int_equal(t->nulls, 1);
    assert_int_equal(t->lost, 1);
    finish(t);
}

struct big {
    struct t *t;
    const char *want;
    size_t len;
    int matched;
};

static void on_big(struct redis_conn *c, struct redisReply *reply, void *arg)
{
    struct big *b = arg;
    size_t len = 0;
    const char *s = redis_reply_str(reply, &len);

    (void)c;
    b->matched = s != NULL && len == b->len && memcmp(s, b->want, len) == 0;
    uv_stop(&b->t->loop);
}

/* A 24 MiB reply (the reader's buffer doubles past 1 MiB instead of
 * growing 1 MiB at a time): every byte arrives, in one reply. */
static void test_large_reply(void **state)
{
    struct t *t = start_up(LONG_TIMEOUT_MS);
    struct big b = { t, NULL, 24u << 20, 0 };
    char *v = malloc(b.len);
    const char *set[] = { "SET", "big", v };
    const char *get[] = { "GET", "big" };
    size_t setlen[] = { 3, 3, b.len };

    (void)state;
    assert_non_null(v);
    for (size_t i = 0; i < b.len; i++)
        v[i] = (char)('a' + i % 26);
    b.want = v;
    assert_int_equal(redis_command(&t->conn, on_reply, t, 3, set, setlen), 0);
    assert_int_equal(redis_command(&t->conn, on_big, &b, 2, get, NULL), 0);
    run(t);
    assert_int_equal(t->replies, 1);
    assert_int_equal(b.matched, 1);
    assert_int_equal(t->lost + t->failed, 0);
    free(v);
    finish(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_command_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watchdog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silent_server_said_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_in_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readonly_ends_the_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_reply, setup, teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
