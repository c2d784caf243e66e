/* test_parse.c -- durations, times and integers from text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "hookd/parse.h"

static void test_durations(void **state)
{
    long ms;
    (void)state;
    assert_int_equal(parse_duration("30s", &ms), 0);
    assert_int_equal(ms, 30000);
    assert_int_equal(parse_duration("30", &ms), 0);
    assert_int_equal(ms, 30000);
    assert_int_equal(parse_duration("1.5s", &ms), 0);
    assert_int_equal(ms, 1500);
    assert_int_equal(parse_duration("500 ms", &ms), 0);
    assert_int_equal(ms, 500);
    assert_int_equal(parse_duration("2m", &ms), 0);
    assert_int_equal(ms, 120000);
    assert_int_equal(parse_duration("1h", &ms), 0);
    assert_int_equal(ms, 3600000);
    assert_int_equal(parse_duration("7d", &ms), 0);
    assert_int_equal(ms, 7L * 86400000);
    assert_int_equal(parse_duration("-1s", &ms), HK_EINVAL);
    assert_int_equal(parse_duration("5 days", &ms), HK_EINVAL);
    assert_int_equal(parse_duration("", &ms), HK_EINVAL);
    assert_int_equal(parse_duration("nan", &ms), HK_EINVAL);
    assert_int_equal(parse_duration("inf", &ms), HK_EINVAL);
    assert_int_equal(parse_duration("1e16ms", &ms), HK_EINVAL);
    assert_int_equal(ms, 7L * 86400000);        /* untouched by the failures */
}

static void test_times(void **state)
{
    long long t = 0;
    (void)state;
    assert_int_equal(parse_time("1795737600", &t), 0);
    assert_int_equal(t, 1795737600LL);
    assert_int_equal(parse_time("2026-11-27T00:00:00Z", &t), 0);
    assert_int_equal(t, 1795737600LL);
    assert_int_equal(parse_time("1970-01-01T00:00:01", &t), 0);
    assert_int_equal(t, 1);
    assert_int_equal(parse_time("tomorrow", &t), HK_EINVAL);
    assert_int_equal(parse_time("2026-11-27T00:00:00+01", &t), HK_EINVAL);
    assert_int_equal(parse_time("", &t), HK_EINVAL);
    assert_int_equal(t, 1);
}

static void test_integers(void **state)
{
    long v = 7;
    (void)state;
    assert_int_equal(parse_long("1024", &v), 0);
    assert_int_equal(v, 1024);
    assert_int_equal(parse_long("-3", &v), 0);
    assert_int_equal(v, -3);
    assert_int_equal(parse_long("", &v), HK_EINVAL);
    assert_int_equal(parse_long("12k", &v), HK_EINVAL);
    assert_int_equal(parse_long("x", &v), HK_EINVAL);
    assert_int_equal(parse_long("99999999999999999999999", &v), HK_EINVAL);
    assert_int_equal(v, -3);
}

static void test_host_port(void **state)
{
    char host[16] = "unchanged";
    int port = 7;
    (void)state;
    assert_int_equal(parse_host_port("127.0.0.1:9464", host, sizeof(host), &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 9464);
    assert_int_equal(parse_host_port("[::1]:1", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 1);
    assert_int_equal(parse_host_port("localhost:65535", host, sizeof(host), &port), 0);
    assert_int_equal(port, 65535);
    assert_int_equal(parse_host_port("localhost:65536", host, sizeof(host), &port), HK_EINVAL);
    assert_int_equal(parse_host_port("localhost:0", host, sizeof(host), &port), HK_EINVAL);
    assert_int_equal(parse_host_port("localhost", host, sizeof(host), &port), HK_EINVAL);
    assert_int_equal(parse_host_port(":9464", host, sizeof(host), &port), HK_EINVAL);
    assert_int_equal(parse_host_port("::1:9464", host, sizeof(host), &port), HK_EINVAL);
    assert_int_equal(parse_host_port("[::1]9464", host, sizeof(host), &port), HK_EINVAL);
    assert_int_equal(parse_host_port("[]:9464", host, sizeof(host), &port), HK_EINVAL);
    assert_int_equal(parse_host_port("a-very-long-hostname:1", host, sizeof(host), &port),
                     HK_EINVAL);
    assert_int_equal(parse_host_port("h:12x", host, sizeof(host), &port), HK_EINVAL);
    assert_string_equal(host, "localhost");     /* untouched by the failures */
    assert_int_equal(port, 65535);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_host_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
