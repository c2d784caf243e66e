/* test_hosts.c -- per-origin admission: limits, waiting, parking, HTTP/2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "hookd/hosts.h"

#define A "http://a.example:80"
#define B "https://b.example:443"

static void test_limit_then_wait_then_park(void **state)
{
    struct hosts *hs = hosts_new(2);
    struct hosts_waiter w[8];
    struct host *h, *h2;
    (void)state;

    assert_int_equal(hosts_admit(hs, A, &w[0], 0, &h), HOSTS_GO);
    assert_int_equal(hosts_admit(hs, A, &w[1], 0, &h2), HOSTS_GO);
    assert_ptr_equal(h, h2);
    /* A answers in 1 s: two connections get through 2 jobs per HOSTS_WAIT_MS */
    assert_null(hosts_done(hs, h, 1000, 0, 1000));
    assert_int_equal(hosts_admit(hs, A, &w[1], 1000, &h2), HOSTS_GO);
    assert_int_equal(hosts_admit(hs, A, &w[2], 1000, &h2), HOSTS_WAIT);
    assert_int_equal(hosts_admit(hs, A, &w[3], 1000, &h2), HOSTS_WAIT);
    assert_int_equal(hosts_admit(hs, A, &w[4], 1000, &h2), HOSTS_PARK);
    /* another origin is not affected */
    assert_int_equal(hosts_admit(hs, B, &w[5], 1000, &h2), HOSTS_GO);
    assert_int_equal(hosts_room(hs, A, 1000), 0);
    assert_int_equal(hosts_room(hs, B, 1000), 1);
    assert_int_equal(hosts_room(hs, "http://c.example:80", 1000), 2);
    /* a request ends: the oldest waiter is admitted, in order */
    assert_ptr_equal(hosts_done(hs, h, 1000, 0, 1100), &w[2]);
    assert_ptr_equal(hosts_done(hs, h, 1000, 0, 1100), &w[3]);
    assert_null(hosts_done(hs, h, 1000, 0, 1100));
    assert_null(hosts_done(hs, h, 1000, 0, 1100));
    /* A is idle and forgotten; B still runs */
    assert_int_equal(hosts_count(hs), 1);
    hosts_free(hs);
}

static void test_stalled_origin_parks_everything(void **state)
{
    struct hosts *hs = hosts_new(1);
    struct hosts_waiter w[4];
    struct host *h, *hw;
    (void)state;

    assert_int_equal(hosts_admit(hs, A, &w[0], 0, &h), HOSTS_GO);
    assert_int_equal(hosts_admit(hs, A, &w[1], 10, &hw), HOSTS_WAIT);
    /* not stalled yet: nothing to take */
    assert_null(hosts_take_stalled(hs, h, HOSTS_STALL_MS - 1));
    assert_int_equal(hosts_room(hs, A, HOSTS_STALL_MS - 1), 0);
    /* no answer for HOSTS_STALL_MS: new jobs park, and so do the waiters */
    assert_int_equal(hosts_admit(hs, A, &w[2], HOSTS_STALL_MS, &hw), HOSTS_PARK);
    assert_ptr_equal(hosts_take_stalled(hs, h, HOSTS_STALL_MS), &w[1]);
    assert_null(hosts_take_stalled(hs, h, HOSTS_STALL_MS));
    /* the hung request ends (timeout): the origin takes work again */
    assert_null(hosts_done(hs, h, 5, 0, 30000));
    assert_int_equal(hosts_room(hs, A, 30000), 1);
    assert_int_equal(hosts_count(hs), 0);
    hosts_free(hs);
}

static void test_waiting_follows_pace(void **state)
{
    struct hosts *hs = hosts_new(2);
    struct hosts_waiter w[2000];
    struct host *h, *x;
    int n;
    (void)state;

    /* before its first answer an origin may queue, until it stalls */
    assert_int_equal(hosts_admit(hs, A, &w[0], 0, &h), HOSTS_GO);
    assert_int_equal(hosts_admit(hs, A, &w[0], 0, &h), HOSTS_GO);
    for (n = 0; n < 50; n++)
        assert_int_equal(hosts_admit(hs, A, &w[n], 10, &x), HOSTS_WAIT);
    assert_int_equal(hosts_admit(hs, A, &w[50], HOSTS_STALL_MS, &x), HOSTS_PARK);
    for (n = 0; hosts_take_any_stalled(hs, HOSTS_STALL_MS) != NULL; n++)
        ;
    assert_int_equal(n, 50);

    /* an origin answering in 2 ms gets through 1,000 jobs a second on two
     * connections: that many may wait */
    assert_int_equal(hosts_admit(hs, B, &w[0], 0, &h), HOSTS_GO);
    assert_int_equal(hosts_admit(hs, B, &w[0], 0, &h), HOSTS_GO);
    assert_null(hosts_done(hs, h, 2, 0, 2));
    assert_int_equal(hosts_admit(hs, B, &w[0], 2, &h), HOSTS_GO);
    for (n = 0; n < 2000 && hosts_admit(hs, B, &w[n], 3, &x) == HOSTS_WAIT; n++)
        ;
    assert_int_equal(n, 1000);
    while (hosts_take_any_waiting(hs) != NULL)
        n--;
    assert_int_equal(n, 0);
    hosts_free(hs);
}

static void test_http2_counts_streams(void **state)
{
    struct hosts *hs = hosts_new(2);
    struct hosts_waiter w;
    struct host *h, *keep;
    (void)state;

    assert_int_equal(hosts_admit(hs, B, &w, 0, &keep), HOSTS_GO);
    assert_int_equal(hosts_admit(hs, B, &w, 0, &h), HOSTS_GO);
    assert_int_equal(hosts_room(hs, B, 0), 0);
    /* once an answer came over HTTP/2, a connection carries many streams,
     * and one request more may open the second connection */
    assert_null(hosts_done(hs, h, 5, 40001, 5));
    assert_int_equal(hosts_room(hs, B, 5), HOSTS_H2_STREAMS + 1 - 1);
    /* an answer on the second connection: both are full of streams, and
     * max_per_host (2) allows no third */
    assert_int_equal(hosts_admit(hs, B, &w, 5, &h), HOSTS_GO);
    assert_null(hosts_done(hs, h, 5, 40002, 6));
    assert_int_equal(hosts_room(hs, B, 6), 2 * HOSTS_H2_STREAMS - 1);
    /* an answer over HTTP/1.1 (0) or on a known connection changes nothing */
    assert_int_equal(hosts_admit(hs, B, &w, 6, &h), HOSTS_GO);
    assert_null(hosts_done(hs, h, 5, 40001, 7));
    assert_int_equal(hosts_room(hs, B, 7), 2 * HOSTS_H2_STREAMS - 1);
    assert_null(hosts_done(hs, keep, 5, 0, 8));
    hosts_free(hs);
}

/* The HTTP/2 limit grows with the connections seen answering, doubling
 * them per round: each known connection may be joined by one request that
 * opens another (libcurl 7.88 opens a connection for every request beyond
 * the open ones' streams; raising to max_per_host x 100 at once opened 64
 * per worker). */
static void test_http2_connections_double(void **state)
{
    enum { MAX = 5 };
    struct hosts *hs = hosts_new(MAX);
    struct hosts_waiter w;
    struct host *h;
    long conn = 50000;
    (void)state;

    assert_int_equal(hosts_admit(hs, B, &w, 0, &h), HOSTS_GO);
    assert_null(hosts_done(hs, h, 5, conn++, 1));       /* entry freed: nothing left */
    /* keep the entry: one request runs throughout */
    struct host *keep;
    assert_int_equal(hosts_admit(hs, B, &w, 1, &keep), HOSTS_GO);
    assert_int_equal(hosts_room(hs, B, 1), MAX - 1);    /* forgotten: HTTP/1.1 again */
    assert_int_equal(hosts_admit(hs, B, &w, 1, &h), HOSTS_GO);
    assert_null(hosts_done(hs, h, 5, conn++, 2));       /* 1 connection: 100 + 1 */
    assert_int_equal(hosts_room(hs, B, 2), 1 * HOSTS_H2_STREAMS + 1 - 1);
    for (int seen = 2; seen <= MAX + 1; seen++) {
        assert_int_equal(hosts_admit(hs, B, &w, 2, &h), HOSTS_GO);
        assert_null(hosts_done(hs, h, 5, conn++, 3));
        int n = seen < MAX ? seen : MAX;
        int more = MAX - n < n ? MAX - n : n;
        assert_int_equal(hosts_room(hs, B, 3), n * HOSTS_H2_STREAMS + more - 1);
    }
    assert_null(hosts_done(hs, keep, 5, 0, 4));
    hosts_free(hs);
}

/* Only connections heard from lately count: a server closes an HTTP/2
 * connection every so many requests and the next one has a new port, so
 * counting every port ever seen would climb back to max_per_host. */
static void test_http2_quiet_connections_drop(void **state)
{
    enum { MAX = 4 };
    struct hosts *hs = hosts_new(MAX);
    struct hosts_waiter w;
    struct host *h, *keep;
    (void)state;

    assert_int_equal(hosts_admit(hs, B, &w, 0, &keep), HOSTS_GO);
    for (long conn = 1; conn <= MAX; conn++) {
        assert_int_equal(hosts_admit(hs, B, &w, 10, &h), HOSTS_GO);
        assert_null(hosts_done(hs, h, 5, conn, 10));
    }
    assert_int_equal(hosts_room(hs, B, 10), MAX * HOSTS_H2_STREAMS - 1);
    /* connection 4 keeps answering; 1 to 3 go quiet (closed by the
     * server), and a new connection 5 answers after HOSTS_STALL_MS */
    assert_int_equal(hosts_admit(hs, B, &w, 500, &h), HOSTS_GO);
    assert_null(hosts_done(hs, h, 5, 4, 500));
    assert_int_equal(hosts_admit(hs, B, &w, 10 + HOSTS_STALL_MS + 1, &h), HOSTS_GO);
    assert_null(hosts_done(hs, h, 5, 5, 10 + HOSTS_STALL_MS + 1));
    /* 4 and 5 count: 2 x 100 streams, and 2 requests that may open more */
    assert_int_equal(hosts_room(hs, B, 10 + HOSTS_STALL_MS + 1), 2 * HOSTS_H2_STREAMS + 2 - 1);
    assert_null(hosts_done(hs, keep, 5, 0, 2000));
    hosts_free(hs);
}

/* Jobs that queued while an origin's limit was its connections all start
 * when its first answer over HTTP/2 raises the limit to streams: one per
 * answer would have kept it at max_per_host for good (issue 17: 64 in
 * flight per worker against an HTTP/2 origin that took 2,000). */
static void test_http2_raise_admits_every_waiter(void **state)
{
    enum { WAITING = 150 };
    struct hosts *hs = hosts_new(2);
    struct hosts_waiter w[WAITING], *next;
    struct host *h, *other;
    int admitted = 0;
    (void)state;

    assert_int_equal(hosts_admit(hs, B, &w[0], 0, &h), HOSTS_GO);
    assert_int_equal(hosts_admit(hs, B, &w[0], 0, &other), HOSTS_GO);
    for (int i = 0; i < WAITING; i++)
        assert_int_equal(hosts_admit(hs, B, &w[i], 0, &other), HOSTS_WAIT);
    /* over HTTP/1.1 an answer frees one slot: one waiter starts */
    next = hosts_done(hs, h, 5, 0, 5);
    assert_ptr_equal(next, &w[0]);
    assert_null(next->next);
    /* the first answer over HTTP/2: room for 100 streams and a request
     * that may open the second connection (101), 1 running */
    for (next = hosts_done(hs, other, 5, 40001, 6); next != NULL; next = next->next)
        assert_ptr_equal(next, &w[++admitted]);
    assert_int_equal(admitted, HOSTS_H2_STREAMS);
    /* an answer on the second connection: 2 x 100 streams, every waiter */
    for (next = hosts_done(hs, other, 5, 40002, 7); next != NULL; next = next->next)
        assert_ptr_equal(next, &w[++admitted]);
    assert_int_equal(admitted, WAITING - 1);
    assert_int_equal(hosts_room(hs, B, 7), 2 * HOSTS_H2_STREAMS - (WAITING - 1));
    for (int i = 0; i < WAITING - 1; i++)
        assert_null(hosts_done(hs, other, 5, 40001, 8));
    hosts_free(hs);
}

static void test_pull_plan(void **state)
{
    struct hosts *hs = hosts_new(3);
    struct hosts_waiter w;
    struct host *h;
    const char *parked[] = { A, B, "http://c.example:80" };
    size_t lens[] = { sizeof(A) - 1, sizeof(B) - 1, 19 };
    const char *origins[8];
    int counts[8];
    (void)state;

    assert_int_equal(hosts_admit(hs, A, &w, 0, &h), HOSTS_GO);
    hosts_set_parked(hs, parked, lens, 3);
    /* A has 2 slots left, B and c 3 each; the budget cuts the plan */
    assert_int_equal(hosts_pull_plan(hs, 4, 0, NULL, NULL, origins, counts, 8), 2);
    assert_string_equal(origins[0], A);
    assert_int_equal(counts[0], 2);
    assert_string_equal(origins[1], B);
    assert_int_equal(counts[1], 2);
    assert_int_equal(hosts_pull_plan(hs, 100, 0, NULL, NULL, origins, counts, 8), 3);
    assert_int_equal(counts[2], 3);
    assert_string_equal(origins[2], "http://c.example:80");
    /* a stalled origin is not pulled from */
    assert_int_equal(hosts_admit(hs, A, &w, 0, &h), HOSTS_GO);
    assert_int_equal(hosts_admit(hs, A, &w, 0, &h), HOSTS_GO);
    assert_int_equal(hosts_pull_plan(hs, 100, HOSTS_STALL_MS, NULL, NULL, origins, counts, 8), 2);
    assert_string_equal(origins[0], B);
    hosts_free(hs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limit_then_wait_then_park),
        cmocka_unit_test(test_stalled_origin_parks_everything),
        cmocka_unit_test(test_waiting_follows_pace),
        cmocka_unit_test(test_http2_counts_streams),
        cmocka_unit_test(test_http2_connections_double),
        cmocka_unit_test(test_http2_quiet_connections_drop),
        cmocka_unit_test(test_http2_raise_admits_every_waiter),
        cmocka_unit_test(test_pull_plan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
