/* test_health.c -- health.c on a real libuv loop against a real
 * redis-server, with the HEALTH and ENDPOINTS scripts this build embeds.
 *
 * The test plays a worker's ack connection (prefix "t"): it reports
 * attempts, lets the loop send them, and reads back what Redis holds (the
 * origin's record, P:events) and what the worker's mirror says. health.c
 * calls nothing back; the loop is run until its reports are answered (a
 * check handle, which runs after each iteration's I/O, stops it). Each test
 * ends, as libuv's tests do, by asserting that uv_loop_close() succeeds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "hookd/err.h"
#include "hookd/health.h"
#include "hookd/keys.h"
#include "hookd/redis.h"
#include "server.h"

#define DEADLINE_MS 8000    /* a test that has not finished by then fails */
#define O1 "http://a.example:80"
#define O2 "https://b.example:443"

static struct test_server srv;

struct t {
    uv_loop_t loop;
    struct redis_conn conn;
    struct health h;
    struct keys k;
    struct redis_sync *sync;    /* the test's own blocking client */
    uv_timer_t deadline;
    uv_check_t check;
    int (*until)(struct t *);   /* the loop stops once this holds */
    int late;
    int up;                     /* up-callbacks */
};

static struct redisReply *cmdv(struct t *t, int argc, const char **argv)
{
    size_t lens[8];
    struct hk_err err;
    struct redisReply *r;

    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    r = redis_sync_command(t->sync, argc, argv, lens, &err);
    if (r == NULL)
        fail_msg("%s: %s", argv[0], err.msg);
    return r;
}

static void cmd(struct t *t, int argc, const char **argv)
{
    redis_reply_free(cmdv(t, argc, argv));
}

/* A field of origin's record, as a number (0 when absent). */
static long long field(struct t *t, const char *origin, const char *name)
{
    char key[KEYS_MAX + 64];
    const char *argv[] = { "HGET", key, name };
    struct redisReply *r;
    long long v;

    snprintf(key, sizeof(key), "%s:%s", t->k.endpoint, origin);
    r = cmdv(t, 3, argv);
    v = redis_reply_str(r, NULL) ? atoll(redis_reply_str(r, NULL)) : 0;
    redis_reply_free(r);
    return v;
}

static long long events(struct t *t)
{
    const char *argv[] = { "XLEN", t->k.events };
    struct redisReply *r = cmdv(t, 2, argv);
    long long n = redis_reply_integer(r);

    redis_reply_free(r);
    return n;
}

static void on_state(struct redis_conn *c, enum redis_state state, const char *why, void *arg)
{
    struct t *t = arg;

    (void)c;
    (void)why;
    if (state != REDIS_UP)
        return;
    t->up++;
    health_flush(&t->h);
}

static void on_deadline(uv_timer_t *h)
{
    struct t *t = h->data;

    t->late = 1;
    uv_stop(&t->loop);
}

static void on_check(uv_check_t *c)
{
    struct t *t = c->data;

    if (t->until != NULL && t->until(t))
        uv_stop(&t->loop);
}

static void run_until(struct t *t, int (*until)(struct t *))
{
    t->until = until;
    if (!until(t))
        uv_run(&t->loop, UV_RUN_DEFAULT);
    assert_false(t->late);
    assert_true(until(t));
}

static int is_up(struct t *t)
{
    return t->up > 0;
}

/* Every report answered and the mirror as new as any reply said. */
static int settled(struct t *t)
{
    return coalesce_pending(&t->h.reports) == 0 && health_current(&t->h) && !t->h.loading;
}

static const struct queue_breaker BREAKER = {
    .on = 1, .window_ms = 60000, .min_requests = 3, .threshold_pct = 50,
    .cooldown_ms = 30000, .cooldown_max_ms = 600000, .disable_after_ms = 0,
    .events_max = 100,
};

/* A loop, an empty Redis but for what seed writes, a health module on a
 * connection that is up. */
static struct t *start(const struct queue_breaker *b, void (*seed)(struct t *))
{
    struct t *t = calloc(1, sizeof(*t));
    const char *flush[] = { "FLUSHALL" };
    struct hk_err err;

    assert_non_null(t);
    keys_init(&t->k, "t", "w1");
    t->sync = redis_sync_connect(&srv.addr, 5000, &err);
    assert_non_null(t->sync);
    cmd(t, 1, flush);
    if (seed != NULL)
        seed(t);
    assert_int_equal(uv_loop_init(&t->loop), 0);
    uv_timer_init(&t->loop, &t->deadline);
    t->deadline.data = t;
    uv_timer_start(&t->deadline, on_deadline, DEADLINE_MS, 0);
    uv_unref((uv_handle_t *)&t->deadline);
    uv_check_init(&t->loop, &t->check);
    t->check.data = t;
    uv_check_start(&t->check, on_check);
    uv_unref((uv_handle_t *)&t->check);
    health_init(&t->h, &t->loop, &t->conn, &t->k, b, NULL);
    assert_int_equal(redis_init(&t->conn, &t->loop, &srv.addr, "test", 5000, on_state, t), 0);
    run_until(t, is_up);
    run_until(t, settled);
    return t;
}

static void on_conn_closed(struct redis_conn *c)
{
    (void)c;
}

static void finish(struct t *t)
{
    health_close(&t->h);
    redis_close(&t->conn, on_conn_closed);
    uv_close((uv_handle_t *)&t->deadline, NULL);
    uv_close((uv_handle_t *)&t->check, NULL);
    assert_int_equal(uv_run(&t->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&t->loop), 0);
    health_free(&t->h);
    redis_sync_free(t->sync);
    free(t);
}

/* One iteration's reports are one HEALTH call, summed per origin; the
 * worker that reported knows at once that it opened O1's breaker. */
static void test_reports_open_a_breaker_and_the_mirror_knows(void **state)
{
    struct t *t = start(&BREAKER, NULL);

    (void)state;
    for (int i = 0; i < 4; i++)
        health_report(&t->h, O1, HEALTH_FAILED, 0);
    for (int i = 0; i < 5; i++)
        health_report(&t->h, O2, HEALTH_OK, 0);
    health_report(&t->h, O1, HEALTH_OK, 0);
    assert_int_equal(health_state(&t->h, O1), ENDPOINT_CLOSED);   /* nothing sent yet */
    run_until(t, settled);
    assert_int_equal(field(t, O1, "attempts"), 5);
    assert_int_equal(field(t, O1, "failures"), 4);
    assert_int_equal(field(t, O2, "attempts"), 5);
    assert_int_equal(health_state(&t->h, O1), ENDPOINT_OPEN);
    assert_int_equal(health_state(&t->h, O2), ENDPOINT_CLOSED);
    assert_int_equal(events(t), 1);
    /* an open origin's jobs are not pulled but for the probe, asked once */
    assert_int_equal(health_pull_room(&t->h, O1, 10), 1);
    assert_int_equal(health_pull_room(&t->h, O1, 10), 0);
    assert_int_equal(health_pull_room(&t->h, O2, 10), 10);
    finish(t);
}

static void seed_states(struct t *t)
{
    const char *hset[] = { "HSET", t->k.endpoints, O1, "disabled 1 0", O2, "open 1 2" };
    const char *gen[] = { "SET", t->k.endpoints_gen, "7" };

    cmd(t, 6, hset);
    cmd(t, 3, gen);
}

/* A worker that connects reads the states before it judges a job. */
static void test_mirror_loaded_once_connected(void **state)
{
    struct t *t = start(&BREAKER, seed_states);

    (void)state;
    assert_true(health_current(&t->h));
    assert_int_equal(t->h.known_gen, 7);
    assert_int_equal(health_state(&t->h, O1), ENDPOINT_DISABLED);
    assert_int_equal(health_state(&t->h, O2), ENDPOINT_OPEN);
    finish(t);
}

/* Breaker off: an open origin reads as closed, a disabled one stays so. */
static void test_breaker_off(void **state)
{
    struct queue_breaker b = BREAKER;
    struct t *t;

    (void)state;
    b.on = 0;
    t = start(&b, seed_states);
    assert_int_equal(health_state(&t->h, O1), ENDPOINT_DISABLED);
    assert_int_equal(health_state(&t->h, O2), ENDPOINT_CLOSED);
    finish(t);
}

/* A refused call's reports are dropped, not sent again: HEALTH counts what
 * it is given, and they are statistics. */
static void test_refused_reports_are_dropped(void **state)
{
    struct t *t = start(&BREAKER, NULL);
    const char *clobber[] = { "SET", t->k.events, "not a stream" };
    const char *fix[] = { "DEL", t->k.events };

    (void)state;
    cmd(t, 3, clobber);
    for (int i = 0; i < 3; i++)
        health_report(&t->h, O1, HEALTH_FAILED, 0);
    run_until(t, settled);
    assert_int_equal(field(t, O1, "attempts"), 0);
    cmd(t, 2, fix);
    health_report(&t->h, O1, HEALTH_FAILED, 0);
    run_until(t, settled);
    assert_int_equal(field(t, O1, "attempts"), 1);
    assert_int_equal(health_state(&t->h, O1), ENDPOINT_CLOSED);
    finish(t);
}

static int setup(void **state)
{
    (void)state;
    test_server_init(&srv, "health", 0, 0);
    test_server_start(&srv);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    test_server_remove(&srv);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reports_open_a_breaker_and_the_mirror_knows),
        cmocka_unit_test(test_mirror_loaded_once_connected),
        cmocka_unit_test(test_breaker_off),
        cmocka_unit_test(test_refused_reports_are_dropped),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
