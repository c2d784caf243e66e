/* test_backoff.c -- which failures are retried, and the delays. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "hookd/backoff.h"
#include "hookd/config.h"

static struct backoff_policy dflt(void)
{
    struct config c;
    struct backoff_policy p;

    config_init(&c);
    p = c.retry;
    config_free(&c);
    return p;
}

static void test_default_schedule_is_dialgens(void **state)
{
    struct backoff_policy p = dflt();
    (void)state;
    /* 3 retries at 1 s, 5 s, 25 s, as the Dialgen documentation promises */
    assert_int_equal(p.nschedule, 3);
    assert_int_equal(backoff_delay_ms(&p, 1, 500, -1, 0.5), 1000);
    assert_int_equal(backoff_delay_ms(&p, 2, 500, -1, 0.5), 5000);
    assert_int_equal(backoff_delay_ms(&p, 3, 0, -1, 0.5), 25000);
    /* a job allowing more attempts repeats the last delay */
    assert_int_equal(backoff_delay_ms(&p, 7, 0, -1, 0.5), 25000);
    assert_int_equal(p.retry_on_4xx, 1);
    assert_int_equal(p.retry_after_max_ms, 3600000);
}

static void test_retryable(void **state)
{
    struct backoff_policy p = dflt();
    (void)state;
    assert_true(backoff_retryable(&p, 0, "connect_failed"));
    assert_true(backoff_retryable(&p, 0, "timeout"));
    assert_true(backoff_retryable(&p, 0, "tls_error"));
    assert_true(backoff_retryable(&p, 500, "http_status"));
    assert_true(backoff_retryable(&p, 503, "http_status"));
    assert_true(backoff_retryable(&p, 301, "http_status"));
    assert_true(backoff_retryable(&p, 404, "http_status"));
    assert_false(backoff_retryable(&p, 410, "http_status"));
    assert_false(backoff_retryable(&p, 0, "destination_forbidden"));
    assert_false(backoff_retryable(&p, 0, "invalid_secret"));
    p.retry_on_4xx = 0;
    assert_false(backoff_retryable(&p, 404, "http_status"));
    assert_false(backoff_retryable(&p, 400, "http_status"));
    assert_true(backoff_retryable(&p, 429, "http_status"));
    assert_true(backoff_retryable(&p, 408, "http_status"));
    assert_true(backoff_retryable(&p, 500, "http_status"));
}

static void test_retry_after(void **state)
{
    struct backoff_policy p = dflt();
    (void)state;
    assert_int_equal(backoff_delay_ms(&p, 1, 429, 2, 0.5), 2000);     /* later: wins */
    assert_int_equal(backoff_delay_ms(&p, 2, 503, 2, 0.5), 5000);     /* earlier: ignored */
    assert_int_equal(backoff_delay_ms(&p, 1, 500, 9, 0.5), 1000);     /* only 429/503 */
    assert_int_equal(backoff_delay_ms(&p, 1, 429, 999999, 0.5), 3600000);  /* capped */
    p.retry_after_max_ms = 10000;
    assert_int_equal(backoff_delay_ms(&p, 1, 429, 60, 0.5), 10000);
}

static void test_jitter(void **state)
{
    struct backoff_policy p = dflt();
    (void)state;
    p.jitter = 0.2;
    assert_int_equal(backoff_delay_ms(&p, 2, 500, -1, 0.0), 4000);
    assert_int_equal(backoff_delay_ms(&p, 2, 500, -1, 0.5), 5000);
    assert_in_range(backoff_delay_ms(&p, 2, 500, -1, 0.999), 5990, 6000);
}

static void test_parse(void **state)
{
    struct backoff_policy p = dflt();
    (void)state;
    assert_int_equal(backoff_parse_schedule("100ms, 200ms,1m", &p), 0);
    assert_int_equal(p.nschedule, 3);
    assert_int_equal(p.schedule_ms[0], 100);
    assert_int_equal(p.schedule_ms[2], 60000);
    assert_int_equal(backoff_parse_schedule("none", &p), 0);
    assert_int_equal(p.nschedule, 0);
    assert_int_equal(backoff_delay_ms(&p, 1, 500, -1, 0.5), 0);
    assert_int_equal(backoff_parse_schedule("1s,,x", &p), HK_EINVAL);
    assert_int_equal(backoff_parse_schedule("1s,soon", &p), HK_EINVAL);
    assert_int_equal(backoff_parse_schedule(",", &p), HK_EINVAL);
    assert_int_equal(p.nschedule, 0);       /* unchanged on error */
    /* A refused list leaves the schedule as it was, delays included: a
     * config kept after a failed set must not run a mix of two lists. */
    assert_int_equal(backoff_parse_schedule("1s,5s,25s", &p), 0);
    assert_int_equal(backoff_parse_schedule("7s,8s,soon", &p), HK_EINVAL);
    assert_int_equal(p.nschedule, 3);
    assert_int_equal(p.schedule_ms[0], 1000);
    assert_int_equal(p.schedule_ms[1], 5000);
    assert_int_equal(p.schedule_ms[2], 25000);
}

/* README: a worker (or the embedded redis-server) that keeps dying right
 * after starting is restarted after 100 ms doubling, capped at 30 s. */
static void test_restart_backoff_is_capped_at_30s(void **state)
{
    static const long want[] = { 100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600,
                                 30000, 30000, 30000 };

    (void)state;
    for (int i = 0; i < (int)(sizeof(want) / sizeof(*want)); i++)
        assert_int_equal(backoff_restart_ms(i), want[i]);
    /* a process that never starts: the cap holds, no shift overflows */
    assert_int_equal(backoff_restart_ms(64), 30000);
    assert_int_equal(backoff_restart_ms(1000000), 30000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_schedule_is_dialgens),
        cmocka_unit_test(test_retryable),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_jitter),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_restart_backoff_is_capped_at_30s),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
