/* Unit tests for stats_shm.c: result classes, histogram buckets, the sum
 * over slots and the readiness bits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hookd/stats_shm.h"

static void test_classify(void **state)
{
    (void)state;
    assert_int_equal(stats_classify(200, "ok"), STATS_2XX);
    assert_int_equal(stats_classify(204, "ok"), STATS_2XX);
    assert_int_equal(stats_classify(301, "http_status"), STATS_3XX);
    assert_int_equal(stats_classify(404, "http_status"), STATS_4XX);
    assert_int_equal(stats_classify(599, "http_status"), STATS_5XX);
    assert_int_equal(stats_classify(101, "http_status"), STATS_OTHER);
    assert_int_equal(stats_classify(600, "http_status"), STATS_OTHER);
    assert_int_equal(stats_classify(0, "timeout"), STATS_TIMEOUT);
    assert_int_equal(stats_classify(0, "connect_failed"), STATS_CONNECT_FAILED);
    assert_int_equal(stats_classify(0, "dns_failed"), STATS_CONNECT_FAILED);
    assert_int_equal(stats_classify(0, "tls_error"), STATS_TLS);
    assert_int_equal(stats_classify(0, "destination_forbidden"), STATS_FORBIDDEN);
    assert_int_equal(stats_classify(0, "recv_failed"), STATS_OTHER);
    assert_int_equal(stats_classify(0, "http_error"), STATS_OTHER);
}

static void test_sum(void **state)
{
    struct stats_shm *shm = stats_shm_create();
    struct stats_totals t;
    (void)state;

    assert_non_null(shm);
    stats_attempt(&shm->slots[0], STATS_2XX, 5);        /* on the bound: le 0.005 */
    stats_attempt(&shm->slots[0], STATS_5XX, 6);        /* le 0.01 */
    stats_attempt(&shm->slots[3], STATS_TIMEOUT, 30001); /* above 30 s: +Inf only */
    stats_attempt(&shm->slots[3], STATS_OTHER, -1);     /* counts as 0 */
    stats_outcome(&shm->slots[0], STATS_DELIVERED);
    stats_outcome(&shm->slots[STATS_SLOTS - 1], STATS_DELIVERED);
    stats_outcome(NULL, STATS_DEAD);                    /* not counting: a no-op */
    stats_set_in_flight(&shm->slots[1], 7);
    stats_set_in_flight(&shm->slots[2], 3);
    stats_set_state(&shm->slots[1], STATS_REGISTERED | STATS_FETCH_UP, 1);
    stats_set_state(&shm->slots[2], STATS_REGISTERED, 1);   /* fetch down: not fetching */
    stats_redis_error(&shm->slots[2]);
    stats_sum(shm, &t);
    assert_int_equal(t.outcomes[STATS_DELIVERED], 2);
    assert_int_equal(t.outcomes[STATS_DEAD], 0);
    assert_int_equal(t.attempts[STATS_2XX], 1);
    assert_int_equal(t.attempts[STATS_5XX], 1);
    assert_int_equal(t.attempts[STATS_TIMEOUT], 1);
    assert_int_equal(t.attempts[STATS_OTHER], 1);
    assert_int_equal(t.buckets[0], 2);          /* 5 ms and the negative one */
    assert_int_equal(t.buckets[1], 1);
    assert_int_equal(t.buckets[STATS_NBUCKETS], 1);
    assert_int_equal(t.duration_us, (5 + 6 + 30001) * 1000ULL);
    assert_int_equal(t.in_flight, 10);
    assert_int_equal(t.fetching, 1);
    assert_int_equal(t.redis_errors, 1);
    stats_set_state(&shm->slots[1], STATS_FETCH_UP, 0);
    stats_sum(shm, &t);
    assert_int_equal(t.fetching, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_sum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
