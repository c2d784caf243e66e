/* test_outbox.c -- outbox.c on a real libuv loop against a real
 * redis-server, with the RECORD script this build embeds.
 *
 * The test starts its own redis-server on a unix socket in a temporary
 * directory and plays a worker ("w1", prefix "t"): it puts jobs into the
 * worker's in-flight hash with its own blocking client, hands their
 * outcomes to an outbox, and reads back what Redis holds. The outbox has no
 * per-outcome callback: "each outcome once" is read off Redis (counters,
 * the dead list, the retry zset, the emptied in-flight hash) and off
 * outbox_records(); its callbacks (on_confirmed after each reply,
 * on_retry_recorded after a call with retries) are counted. Each test ends,
 * as libuv's tests do, by asserting that uv_loop_close() succeeds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

/* Only to know when a call has left for Redis, and to lose a reply on
 * purpose (test_replay_after_lost_reply): the test reads the connection's
 * output buffer and socket, which hookd leaves to redis.c. */

#include "hookd/err.h"
#include "hookd/keys.h"
#include "hookd/outbox.h"
#include "hookd/redis.h"
#include "server.h"

#define DEADLINE_MS 8000    /* a test that has not finished by then fails */
#define DEAD_MAX 1000
#define LOG_MAX 100

static struct test_server srv;


struct t {
    uv_loop_t loop;
    struct redis_conn conn;
    struct outbox o;
    struct keys k;
    struct redis_sync *sync;    /* the test's own blocking client */
    uv_timer_t deadline;
    int late;
    int up;                     /* up-callbacks */
    int confirmed;              /* on_confirmed callbacks */
    int retry_recorded;         /* on_retry_recorded callbacks */
    long retry_delay;           /* the delay it last gave */
    int failing_seen;           /* on_confirmed calls while outbox_failing */
    int fix_after;              /* DEL fix_key after this many */
    const char *fix_key;
    int held_seen;              /* on_confirmed calls with outcomes held */
    int in_add;                 /* inside an outbox call: no callback may run */
    int log_fd;                 /* stderr while captured, else -1 */
    char log_path[96];
};

/* ---- the test's own Redis client --------------------------------------------- */

/* Run a command (NULL-terminated strings); the reply is the caller's. */
static struct redisReply *cmdv(struct t *t, const char *a0, const char *a1, const char *a2,
                               const char *a3, const char *a4)
{
    const char *argv[5] = { a0, a1, a2, a3, a4 };
    size_t lens[5];
    int argc = 0;
    struct hk_err err;
    struct redisReply *r;

    for (; argc < 5 && argv[argc] != NULL; argc++)
        lens[argc] = strlen(argv[argc]);
    r = redis_sync_command(t->sync, argc, argv, lens, &err);
    if (r == NULL)
        fail_msg("%s: %s", a0, err.msg);
    return r;
}

static void cmd(struct t *t, const char *a0, const char *a1, const char *a2, const char *a3)
{
    redis_reply_free(cmdv(t, a0, a1, a2, a3, NULL));
}

static long long counter(struct t *t, const char *field)
{
    struct redisReply *r = cmdv(t, "HGET", t->k.stats, field, NULL, NULL);
    const char *s = redis_reply_str(r, NULL);
    long long v = s != NULL ? atoll(s) : 0;

    redis_reply_free(r);
    return v;
}

static long long inflight(struct t *t)
{
    struct redisReply *r = cmdv(t, "HLEN", t->k.inflight, NULL, NULL, NULL);
    long long n = redis_reply_integer(r);

    redis_reply_free(r);
    return n;
}

static int hexists(struct t *t, const char *seq)
{
    struct redisReply *r = cmdv(t, "HEXISTS", t->k.inflight, seq, NULL, NULL);
    int yes = redis_reply_integer(r) == 1;

    redis_reply_free(r);
    return yes;
}

/* An array reply's strings, comma-separated. */
static void joined(struct t *t, const char *a0, const char *key, const char *a2,
                   const char *a3, char *out, size_t size)
{
    struct redisReply *r = cmdv(t, a0, key, a2, a3, NULL);
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; i < redis_reply_elements(r); i++) {
        const char *s = redis_reply_str(redis_reply_element(r, i), NULL);
        used += (size_t)snprintf(out + used, size - used, "%s%s", i ? "," : "", s ? s : "?");
        assert_true(used < size);
    }
    redis_reply_free(r);
}

/* Jobs 1..n in the worker's in-flight hash. */
static void put_inflight(struct t *t, int n)
{
    char seq[16], job[32];

    for (int i = 1; i <= n; i++) {
        snprintf(seq, sizeof(seq), "%d", i);
        snprintf(job, sizeof(job), "job-%d", i);
        cmd(t, "HSET", t->k.inflight, seq, job);
    }
}

/* ---- stderr, where the outbox says what fails ---------------------------------- */

static void capture_log(struct t *t)
{
    int fd;

    snprintf(t->log_path, sizeof(t->log_path), "%s/log.XXXXXX", srv.dir);
    fd = mkstemp(t->log_path);
    assert_true(fd >= 0);
    t->log_fd = dup(2);
    dup2(fd, 2);
    close(fd);
}

/* Stop capturing; how many lines held needle. */
static int log_lines(struct t *t, const char *needle)
{
    char line[1024];
    int n = 0;
    FILE *f;

    dup2(t->log_fd, 2);
    close(t->log_fd);
    t->log_fd = -1;
    f = fopen(t->log_path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        fputs(line, stderr);    /* still shown, for a failing test */
        if (strstr(line, needle) != NULL)
            n++;
    }
    fclose(f);
    unlink(t->log_path);
    return n;
}

/* ---- the loop around each test ------------------------------------------------ */

/* Everything confirmed: the loop has nothing left to do for the test. */
static int settled(struct t *t)
{
    return outbox_records(&t->o) == 0 && outbox_pending(&t->o) == 0;
}

static void on_confirmed(void *arg)
{
    struct t *t = arg;

    assert_false(t->in_add);
    t->confirmed++;
    if (outbox_failing(&t->o)) {
        /* refused as a whole: nothing of the call may have been written */
        assert_int_equal(counter(t, "delivered"), 0);
        if (++t->failing_seen == t->fix_after)
            cmd(t, "DEL", t->fix_key, NULL, NULL);
    } else if (outbox_held(&t->o) > 0 && ++t->held_seen == t->fix_after) {
        cmd(t, "DEL", t->fix_key, NULL, NULL);
    }
    if (settled(t))
        uv_stop(&t->loop);
}

static void on_retry_recorded(void *arg, long delay_ms)
{
    struct t *t = arg;

    assert_false(t->in_add);
    t->retry_recorded++;
    t->retry_delay = delay_ms;
}

static void on_state(struct redis_conn *c, enum redis_state state, const char *why, void *arg)
{
    struct t *t = arg;

    (void)c;
    (void)why;
    if (state != REDIS_UP)
        return;
    t->up++;
    outbox_flush(&t->o);
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

/* Run until every outcome is confirmed. */
static void run_settled(struct t *t)
{
    while (!settled(t))
        run(t);
}

/* A loop, a connection that is up, an empty Redis, an outbox. */
static struct t *start(void)
{
    struct t *t = calloc(1, sizeof(*t));
    struct hk_err err;

    assert_non_null(t);
    t->log_fd = -1;
    keys_init(&t->k, "t", "w1");
    t->sync = redis_sync_connect(&srv.addr, 5000, &err);
    assert_non_null(t->sync);
    cmd(t, "FLUSHALL", NULL, NULL, NULL);
    assert_int_equal(uv_loop_init(&t->loop), 0);
    uv_timer_init(&t->loop, &t->deadline);
    t->deadline.data = t;
    uv_timer_start(&t->deadline, on_deadline, DEADLINE_MS, 0);
    uv_unref((uv_handle_t *)&t->deadline);      /* it cuts a hang, it keeps nothing alive */
    outbox_init(&t->o, &t->loop, &t->conn, &t->k, DEAD_MAX, LOG_MAX);
    t->o.on_confirmed = on_confirmed;
    t->o.on_retry_recorded = on_retry_recorded;
    t->o.arg = t;
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
    outbox_close(&t->o);
    redis_close(&t->conn, on_conn_closed);
    uv_close((uv_handle_t *)&t->deadline, NULL);
    assert_int_equal(uv_run(&t->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&t->loop), 0);
    redis_sync_free(t->sync);
    free(t);
}

/* ---- tests ---------------------------------------------------------------------- */

static void add_mixed(struct t *t)
{
    const char *log1[] = { "seq", "1" }, *log2[] = { "seq", "2" };
    const size_t lens[] = { 3, 1 };

    t->in_add = 1;
    outbox_ack(&t->o, 1, "id-1");
    outbox_retry(&t->o, 2, "id-2", "env-2", 5, 60000);
    outbox_dead(&t->o, 3, "id-3", 'D', "dead-3", 6, NULL, 0);
    outbox_ack(&t->o, 4, NULL);
    outbox_dead(&t->o, 5, "id-5", 'I', "dead-5", 6, "aside-5", 7);
    outbox_retry(&t->o, 6, "id-6", "env-6", 5, 30000);
    outbox_log(&t->o, log1, lens, 2);
    outbox_log(&t->o, log2, lens, 2);
    t->in_add = 0;
}

/* Outcomes of one iteration go out in one RECORD call: each moves its job
 * once, to where its kind says; attempt-log entries follow in order. */
static void test_recorded_once_each(void **state)
{
    struct t *t = start();
    char s[256];

    (void)state;
    put_inflight(t, 6);
    add_mixed(t);
    assert_int_equal(t->confirmed, 0);          /* nothing runs inside the calls */
    assert_int_equal(outbox_records(&t->o), 6);
    assert_int_equal(outbox_pending(&t->o), 8);
    run_settled(t);
    assert_int_equal(t->confirmed, 3);          /* one RECORD, two XADDs */
    assert_int_equal(t->retry_recorded, 1);
    assert_int_equal(t->retry_delay, 30000);    /* the earliest of the call */
    assert_int_equal(inflight(t), 0);
    assert_int_equal(counter(t, "delivered"), 2);
    assert_int_equal(counter(t, "retried"), 2);
    assert_int_equal(counter(t, "failed_attempts"), 3);
    assert_int_equal(counter(t, "dead"), 2);
    assert_int_equal(counter(t, "invalid"), 1);
    joined(t, "LRANGE", t->k.dead, "0", "-1", s, sizeof(s));
    assert_string_equal(s, "dead-5,dead-3");    /* newest first */
    joined(t, "ZRANGE", t->k.retry, "0", "-1", s, sizeof(s));
    assert_string_equal(s, "env-6,env-2");
    joined(t, "HGETALL", t->k.dead_aside, NULL, NULL, s, sizeof(s));
    assert_string_equal(s, "w1:5,aside-5");
    assert_false(outbox_failing(&t->o));
    finish(t);
}

/* More outcomes than one RECORD takes: two calls, Redis applies them in
 * the order they were added. */
static void test_order_across_calls(void **state)
{
    struct t *t = start();
    char entry[16];
    int n = QUEUE_RECORD_MAX + 20;
    struct redisReply *r;

    (void)state;
    put_inflight(t, n);
    t->in_add = 1;
    for (int i = 1; i <= n; i++) {
        int len = snprintf(entry, sizeof(entry), "d%d", i);
        outbox_dead(&t->o, (uint64_t)i, NULL, 'E', entry, (size_t)len, NULL, 0);
    }
    t->in_add = 0;
    run_settled(t);
    assert_int_equal(t->confirmed, 2);
    assert_int_equal(t->retry_recorded, 0);
    assert_int_equal(inflight(t), 0);
    assert_int_equal(counter(t, "dead"), n);
    r = cmdv(t, "LRANGE", t->k.dead, "0", "-1", NULL);
    assert_int_equal(redis_reply_elements(r), n);
    for (int i = 0; i < n; i++) {
        snprintf(entry, sizeof(entry), "d%d", n - i);
        assert_string_equal(redis_reply_str(redis_reply_element(r, (size_t)i), NULL), entry);
    }
    redis_reply_free(r);
    finish(t);
}

/* The retry zset clobbered: RECORD refuses the whole call, nothing is
 * written (checked in on_confirmed), the outcomes stay queued and go again
 * every OUTBOX_RETRY_MS; once the key is fixed they are recorded, once.
 * The refusal is said once, and its end once. */
static void test_refused_then_fixed(void **state)
{
    struct t *t = start();

    (void)state;
    put_inflight(t, 2);
    cmd(t, "SET", t->k.retry, "clobbered", NULL);
    t->fix_after = 2;
    t->fix_key = t->k.retry;
    capture_log(t);
    t->in_add = 1;
    outbox_ack(&t->o, 1, "id-1");
    outbox_retry(&t->o, 2, "id-2", "env-2", 5, 1000);
    t->in_add = 0;
    run_settled(t);
    assert_int_equal(log_lines(t, "recording 2 outcomes failed"), 1);
    assert_int_equal(t->failing_seen, 2);
    assert_int_equal(t->confirmed, 3);          /* two refusals, one success */
    assert_int_equal(t->retry_recorded, 1);
    assert_false(outbox_failing(&t->o));
    assert_int_equal(inflight(t), 0);
    assert_int_equal(counter(t, "delivered"), 1);
    assert_int_equal(counter(t, "retried"), 1);
    finish(t);
}

/* Redis applies a RECORD call but its reply never arrives (read off the
 * socket here, then the connection is cut): the outbox sends the call again
 * after reconnecting, and RECORD, finding the jobs gone from the in-flight
 * hash, does nothing: each outcome counted once. */
static void test_replay_after_lost_reply(void **state)
{
    struct t *t = start();
    char buf[4096];
    struct pollfd p;

    (void)state;
    put_inflight(t, 3);
    outbox_ack(&t->o, 1, "id-1");
    outbox_ack(&t->o, 2, "id-2");
    outbox_retry(&t->o, 3, "id-3", "env-3", 5, 1000);
    /* Sent from here, outside the loop: redis.c writes it to the socket at
     * once, and with the loop not running nothing reads the reply before
     * the test takes it. (Stepping the loop until the call had left, the
     * reply could be read in the same step, and the wait never ended.) */
    outbox_flush(&t->o);
    assert_true(t->o.outcomes.in_flight > 0);
    assert_int_equal(redis_unsent(&t->conn), 0);
    assert_int_equal(t->confirmed, 0);
    while (counter(t, "delivered") != 2)
        usleep(1000);
    cmd(t, "CLIENT", "KILL", "TYPE", "normal");  /* not this client (SKIPME) */
    p.fd = redis_fileno(&t->conn);
    p.events = POLLIN;
    for (;;) {  /* the reply, then the end of the stream, which stays */
        assert_true(poll(&p, 1, 2000) == 1);
        if (recv(p.fd, buf, sizeof(buf), 0) <= 0)
            break;
    }
    run(t);     /* the lost reply, then the up-callback */
    assert_int_equal(t->up, 2);
    assert_int_equal(outbox_records(&t->o), 3);
    run_settled(t);
    assert_int_equal(t->confirmed, 2);          /* the lost call, then the resent one */
    assert_int_equal(t->retry_recorded, 1);
    assert_int_equal(inflight(t), 0);
    assert_int_equal(counter(t, "delivered"), 2);
    assert_int_equal(counter(t, "retried"), 1);
    finish(t);
}

/* RECORD refuses one outcome (its origin's parked list clobbered) and
 * applies the others: the refused one is held, its job still in flight,
 * and sent again every OUTBOX_RETRY_MS until the key is fixed; the refusal
 * is said once. */
static void test_held_then_fixed(void **state)
{
    struct t *t = start();
    char list[KEYS_MAX], s[256];

    (void)state;
    assert_true(keys_parked_list(&t->k, "o.example", list, sizeof(list)) > 0);
    put_inflight(t, 2);
    cmd(t, "SET", list, "clobbered", NULL);
    t->fix_after = 2;
    t->fix_key = list;
    capture_log(t);
    t->in_add = 1;
    outbox_ack(&t->o, 1, "id-1");
    outbox_park(&t->o, 2, "id-2", "o.example");
    t->in_add = 0;
    run_settled(t);
    assert_int_equal(log_lines(t, "Redis refused to record its outcome (K)"), 1);
    assert_int_equal(t->held_seen, 2);
    assert_int_equal(t->confirmed, 3);          /* the first call, two resends */
    assert_int_equal(outbox_held(&t->o), 0);
    assert_int_equal(inflight(t), 0);
    assert_int_equal(counter(t, "delivered"), 1);
    assert_int_equal(counter(t, "parked"), 1);
    joined(t, "LRANGE", list, "0", "-1", s, sizeof(s));
    assert_string_equal(s, "\301accepted:job-2");
    finish(t);
}

/* redis-server dies while a RECORD call waits in it (CLIENT PAUSE), before
 * running it, and starts again from its append-only file: the outcomes are
 * not lost, and are recorded once the connection is back. */
static void test_redis_restart(void **state)
{
    struct t *t = start();
    struct hk_err err;

    (void)state;
    put_inflight(t, 2);
    cmd(t, "CLIENT", "PAUSE", "20000", "WRITE");
    outbox_ack(&t->o, 1, "id-1");
    outbox_retry(&t->o, 2, "id-2", "env-2", 5, 1000);
    outbox_flush(&t->o);            /* sent at once, as above */
    assert_true(t->o.outcomes.in_flight > 0);
    assert_int_equal(redis_unsent(&t->conn), 0);
    test_server_kill(&srv, SIGKILL);
    redis_sync_free(t->sync);
    test_server_start(&srv);
    t->sync = redis_sync_connect(&srv.addr, 5000, &err);
    assert_non_null(t->sync);
    assert_int_equal(inflight(t), 2);           /* nothing of the call ran */
    run_settled(t);
    assert_int_equal(t->up, 2);
    assert_int_equal(t->confirmed, 2);          /* the lost call, the resent one */
    assert_int_equal(t->retry_recorded, 1);
    assert_int_equal(inflight(t), 0);
    assert_int_equal(counter(t, "delivered"), 1);
    assert_int_equal(counter(t, "retried"), 1);
    finish(t);
}

/* Close with one call in flight (held by CLIENT PAUSE) and more waiting:
 * no callback runs after the close, the jobs not recorded are still in
 * flight in Redis (the worker's final reclaim requeues them), the loop
 * closes. */
static void test_close_with_pending(void **state)
{
    struct t *t = start();

    (void)state;
    put_inflight(t, 3);
    cmd(t, "CLIENT", "PAUSE", "20000", "WRITE");
    outbox_ack(&t->o, 1, "id-1");
    while (t->o.outcomes.in_flight == 0)
        uv_run(&t->loop, UV_RUN_NOWAIT);
    outbox_ack(&t->o, 2, "id-2");
    outbox_retry(&t->o, 3, "id-3", "env-3", 5, 1000);
    assert_int_equal(outbox_records(&t->o), 3);
    outbox_close(&t->o);
    assert_int_equal(outbox_records(&t->o), 0);
    redis_close(&t->conn, on_conn_closed);
    uv_close((uv_handle_t *)&t->deadline, NULL);
    assert_int_equal(uv_run(&t->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(t->confirmed, 0);
    assert_int_equal(t->retry_recorded, 0);
    assert_int_equal(uv_loop_close(&t->loop), 0);
    cmd(t, "CLIENT", "UNPAUSE", NULL, NULL);
    /* The call sent before the close may still land (Redis runs a paused
     * command of a client that has gone): RECORD is idempotent, so either
     * way is right. What was never sent is still in flight. */
    assert_true(hexists(t, "2") && hexists(t, "3"));
    assert_true(counter(t, "delivered") <= 1);
    redis_sync_free(t->sync);
    free(t);
}

/* ---- the redis-server ----------------------------------------------------------- */

static int start_redis(void **state)
{
    (void)state;
    test_server_init(&srv, "test_outbox", 0, 1);
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
        cmocka_unit_test(test_recorded_once_each),
        cmocka_unit_test(test_order_across_calls),
        cmocka_unit_test(test_refused_then_fixed),
        cmocka_unit_test(test_held_then_fixed),
        cmocka_unit_test(test_replay_after_lost_reply),
        cmocka_unit_test(test_redis_restart),
        cmocka_unit_test(test_close_with_pending),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, start_redis, stop_redis);
}
