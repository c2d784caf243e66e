/* test_coalesce.c -- coalesce.c on a real libuv loop against a real
 * redis-server.
 *
 * The test starts its own redis-server on a unix socket in a temporary
 * directory. Its items are short strings; a call is one EVAL that RPUSHes
 * them onto a list, unless a "gate" key exists, in which case the script
 * refuses with an error reply. The list then shows, in order, what Redis
 * took, so the ordering rule after a failure can be read off it. Each test
 * counts callbacks and ends, as libuv's tests do, by asserting that
 * uv_loop_close() succeeds. */
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

#include "hookd/coalesce.h"
#include "hookd/err.h"
#include "hookd/redis.h"
#include "server.h"

#define DEADLINE_MS 20000   /* a test that has not finished by then fails */
#define RETRY_MS 200        /* the pause after an error reply, short for the test */
#define PER_CALL 2          /* items per call: several calls in flight at once */

static const char SCRIPT[] =
    "if redis.call('exists', KEYS[2]) == 1 then return redis.error_reply('GATED') end "
    "return redis.call('rpush', KEYS[1], unpack(ARGV))";

static struct test_server srv;

struct item {
    struct coalesce_item link;
    char val[12];
};

struct t {
    uv_loop_t loop;
    struct redis_conn conn;
    struct coalesce q;
    struct redis_sync *sync;    /* the test's own blocking client */
    uv_timer_t deadline;
    int late;
    int up;                     /* up-callbacks */
    int calls;                  /* send calls that went out */
    int replies, errors, lost;  /* reply callbacks: all, error replies, NULL */
    int settled, dropped;       /* settled callbacks; items given to drop */
    int done;                   /* items Redis took */
    int done_goal;              /* stop the loop when done reaches it */
    int next_val;               /* value of the next item added */
    uint64_t failed_at;         /* uv_now() of the last error reply */
    uint64_t resent_at;         /* uv_now() of the first call after it */
    int in_add;                 /* inside coalesce_add: no callback may run */
    void (*on_error)(struct t *t);  /* test hook, after each error reply */
    int stop_after_send;        /* stop the loop once a call went out */
};

static struct item *item_of(struct coalesce_item *it)
{
    return (struct item *)((char *)it - offsetof(struct item, link));
}

static void free_items(struct coalesce_item *it)
{
    while (it != NULL) {
        struct item *i = item_of(it);
        it = it->next;
        free(i);
    }
}

/* ---- the test's user of coalesce ------------------------------------------- */

static int send_items(void *arg, struct coalesce_item *first, size_t *n, redis_reply_cb cb,
                      void *cbarg)
{
    struct t *t = arg;
    const char *argv[5 + PER_CALL] = { "EVAL", SCRIPT, "2", "list", "gate" };
    size_t lens[5 + PER_CALL];
    int argc = 5;

    assert_false(t->in_add);
    for (struct coalesce_item *it = first; it != NULL && argc < 5 + PER_CALL; it = it->next)
        argv[argc++] = item_of(it)->val;
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    *n = (size_t)argc - 5;
    if (redis_command(&t->conn, cb, cbarg, argc, argv, lens) < 0)
        return -1;
    t->calls++;
    if (t->failed_at != 0 && t->resent_at == 0)
        t->resent_at = uv_now(&t->loop);
    if (t->stop_after_send)
        uv_stop(&t->loop);
    return 0;
}

static enum coalesce_verdict on_items(void *arg, struct redisReply *reply,
                                      struct coalesce_item *first, size_t n)
{
    struct t *t = arg;

    assert_false(t->in_add);
    t->replies++;
    if (reply == NULL) {
        t->lost++;
        return COALESCE_RETRY;
    }
    if (redis_reply_is_error(reply)) {
        t->errors++;
        t->failed_at = uv_now(&t->loop);
        t->resent_at = 0;
        if (t->on_error != NULL)
            t->on_error(t);
        return COALESCE_RETRY;
    }
    t->done += (int)n;
    free_items(first);
    if (t->done == t->done_goal)
        uv_stop(&t->loop);
    return COALESCE_DONE;
}

static void drop_items(void *arg, struct coalesce_item *first)
{
    struct t *t = arg;

    for (struct coalesce_item *it = first; it != NULL; it = it->next)
        t->dropped++;
    free_items(first);
}

static void on_settled(void *arg)
{
    struct t *t = arg;

    t->settled++;
}

static const struct coalesce_ops ops = {
    .send = send_items, .reply = on_items, .drop = drop_items, .settled = on_settled,
};

static void add_items(struct t *t, int count)
{
    for (int i = 0; i < count; i++) {
        struct item *it = calloc(1, sizeof(*it));
        assert_non_null(it);
        snprintf(it->val, sizeof(it->val), "%d", ++t->next_val);
        t->in_add = 1;
        coalesce_add(&t->q, &it->link);
        t->in_add = 0;
    }
}

/* ---- the test's own Redis client --------------------------------------------- */

static void sync_cmd(struct t *t, const char *a0, const char *a1, const char *a2,
                     const char *a3)
{
    const char *argv[4] = { a0, a1, a2, a3 };
    size_t lens[4];
    int argc = 0;
    struct hk_err err;
    struct redisReply *r;

    for (; argc < 4 && argv[argc] != NULL; argc++)
        lens[argc] = strlen(argv[argc]);
    r = redis_sync_command(t->sync, argc, argv, lens, &err);
    if (r == NULL)
        fail_msg("%s: %s", a0, err.msg);
    redis_reply_free(r);
}

/* The list as Redis holds it, comma-separated. */
static void list_contents(struct t *t, char *out, size_t size)
{
    const char *argv[] = { "LRANGE", "list", "0", "-1" };
    size_t lens[] = { 6, 4, 1, 2 };
    struct hk_err err;
    struct redisReply *r = redis_sync_command(t->sync, 4, argv, lens, &err);
    size_t used = 0;

    assert_non_null(r);
    out[0] = '\0';
    for (size_t i = 0; i < redis_reply_elements(r); i++) {
        const char *s = redis_reply_str(redis_reply_element(r, i), NULL);
        used += (size_t)snprintf(out + used, size - used, "%s%s", i ? "," : "", s ? s : "?");
        assert_true(used < size);
    }
    redis_reply_free(r);
}

/* ---- the loop around each test ------------------------------------------------ */

static void on_state(struct redis_conn *c, enum redis_state state, const char *why, void *arg)
{
    struct t *t = arg;

    (void)c;
    (void)why;
    if (state != REDIS_UP)
        return;
    t->up++;
    coalesce_flush(&t->q);
    uv_stop(&t->loop);
}

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

/* A loop, a connection that is up, an empty Redis. */
static struct t *start(void)
{
    struct t *t = calloc(1, sizeof(*t));
    struct hk_err err;

    assert_non_null(t);
    t->sync = redis_sync_connect(&srv.addr, 5000, &err);
    assert_non_null(t->sync);
    sync_cmd(t, "FLUSHALL", NULL, NULL, NULL);
    assert_int_equal(uv_loop_init(&t->loop), 0);
    uv_timer_init(&t->loop, &t->deadline);
    t->deadline.data = t;
    uv_timer_start(&t->deadline, on_deadline, DEADLINE_MS, 0);
    uv_unref((uv_handle_t *)&t->deadline);      /* it cuts a hang, it keeps nothing alive */
    assert_int_equal(coalesce_init(&t->q, &t->loop, &t->conn, &ops, t, RETRY_MS), 0);
    assert_int_equal(redis_init(&t->conn, &t->loop, &srv.addr, "test", 5000, on_state, t), 0);
    run(t);
    assert_int_equal(t->up, 1);
    return t;
}

static void on_conn_closed(struct redis_conn *c)
{
    (void)c;
}

/* Close everything; the loop must close cleanly. */
static void finish(struct t *t)
{
    if (!t->q.closing)
        free_items(coalesce_close(&t->q));
    redis_close(&t->conn, on_conn_closed);
    uv_close((uv_handle_t *)&t->deadline, NULL);
    assert_int_equal(uv_run(&t->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&t->loop), 0);
    redis_sync_free(t->sync);
    free(t);
}

/* ---- tests ---------------------------------------------------------------------- */

/* Items added in one iteration go out on the next, cut into calls, in
 * order; nothing happens inside coalesce_add. */
static void test_one_iteration_few_calls(void **state)
{
    struct t *t = start();
    char list[256];

    (void)state;
    add_items(t, 5);
    assert_int_equal(t->calls, 0);
    assert_int_equal(coalesce_pending(&t->q), 5);
    t->done_goal = 5;
    run(t);
    assert_int_equal(t->calls, 3);      /* 2 + 2 + 1 */
    assert_int_equal(t->replies, 3);
    assert_int_equal(t->settled, 3);
    assert_int_equal(t->errors + t->lost, 0);
    assert_int_equal(coalesce_pending(&t->q), 0);
    list_contents(t, list, sizeof(list));
    assert_string_equal(list, "1,2,3,4,5");
    finish(t);
}

/* Items 7 and 8 arrive while 1..6 are failing; once the gate opens, Redis
 * takes all eight in the order they were added. */
static void add_two_then_open(struct t *t)
{
    if (t->errors == 1)
        add_items(t, 2);
    if (t->errors == 3)
        sync_cmd(t, "DEL", "gate", NULL, NULL);
}

/* Three calls in flight fail with an error reply: they go back in the
 * order sent, in front of the items added meanwhile, and go out again
 * after the retry pause, not before. */
static void test_requeue_order_after_error(void **state)
{
    struct t *t = start();
    char list[256];

    (void)state;
    sync_cmd(t, "SET", "gate", "1", NULL);
    t->on_error = add_two_then_open;
    add_items(t, 6);
    t->done_goal = 8;
    run(t);
    assert_int_equal(t->errors, 3);
    assert_int_equal(t->lost, 0);
    assert_int_equal(t->calls, 3 + 4);  /* 6 items in 3 calls, then 8 in 4 */
    assert_int_equal(t->replies, 7);
    assert_int_equal(t->settled, 7);
    /* the retry waited for the timer */
    assert_true(t->resent_at >= t->failed_at + RETRY_MS);
    list_contents(t, list, sizeof(list));
    assert_string_equal(list, "1,2,3,4,5,6,7,8");
    assert_int_equal(coalesce_pending(&t->q), 0);
    finish(t);
}

/* The connection is cut while three calls wait in Redis (CLIENT PAUSE):
 * each gets a NULL reply, and all go out again, in order, as soon as the
 * connection is back (no retry pause). */
static void test_resend_after_lost_connection(void **state)
{
    struct t *t = start();
    char list[256];

    (void)state;
    sync_cmd(t, "CLIENT", "PAUSE", "20000", "WRITE");
    add_items(t, 6);
    t->stop_after_send = 1;
    while (t->calls < 3)
        run(t);
    t->stop_after_send = 0;
    assert_int_equal(coalesce_pending(&t->q), 6);
    /* the three EVALs are paused in Redis; cut the connection under them */
    sync_cmd(t, "CLIENT", "KILL", "TYPE", "normal");
    t->done_goal = 6;
    run(t);     /* stops on the up-callback */
    assert_int_equal(t->lost, 3);
    assert_int_equal(t->up, 2);
    sync_cmd(t, "CLIENT", "UNPAUSE", NULL, NULL);
    run(t);
    assert_int_equal(t->errors, 0);
    assert_int_equal(t->calls, 6);
    assert_int_equal(t->replies, 6);
    assert_int_equal(t->settled, 6);
    list_contents(t, list, sizeof(list));
    assert_string_equal(list, "1,2,3,4,5,6");
    finish(t);
}

/* Close hands back what waits, in order, at once; a call in flight goes
 * to drop when the connection's end fails it; no reply callback runs. */
static void test_close(void **state)
{
    struct t *t = start();
    struct coalesce_item *waiting;
    int n = 0;

    (void)state;
    sync_cmd(t, "CLIENT", "PAUSE", "20000", "WRITE");
    add_items(t, 1);
    t->stop_after_send = 1;
    run(t);
    assert_int_equal(t->calls, 1);
    add_items(t, 3);
    waiting = coalesce_close(&t->q);
    for (struct coalesce_item *it = waiting; it != NULL; it = it->next, n++)
        assert_int_equal(atoi(item_of(it)->val), 2 + n);
    assert_int_equal(n, 3);
    free_items(waiting);
    assert_int_equal(coalesce_pending(&t->q), 1);
    coalesce_flush(&t->q);      /* closed: sends nothing */
    assert_int_equal(t->calls, 1);
    assert_int_equal(t->dropped, 0);
    redis_close(&t->conn, on_conn_closed);
    uv_close((uv_handle_t *)&t->deadline, NULL);
    assert_int_equal(uv_run(&t->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(t->dropped, 1);
    assert_int_equal(t->replies, 0);
    assert_int_equal(t->settled, 0);
    sync_cmd(t, "CLIENT", "UNPAUSE", NULL, NULL);
    assert_int_equal(uv_loop_close(&t->loop), 0);
    redis_sync_free(t->sync);
    free(t);
}

/* ---- the redis-server ----------------------------------------------------------- */

static int start_redis(void **state)
{
    (void)state;
    test_server_init(&srv, "test_coalesce", 0, 0);
    test_server_start(&srv);
    return 0;
}

static int stop_redis(void **state)
{
    (void)state;
    test_server_remove(&srv);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_iteration_few_calls),
        cmocka_unit_test(test_requeue_order_after_error),
        cmocka_unit_test(test_resend_after_lost_connection),
        cmocka_unit_test(test_close),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, start_redis, stop_redis);
}
