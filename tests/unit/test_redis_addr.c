/* test_redis_addr.c -- redis:// and unix:// URLs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "hookd/redis_addr.h"

static void test_redis_urls(void **state)
{
    struct redis_addr a = { 0 };
    struct hk_err e;
    (void)state;
    assert_int_equal(redis_addr_parse("redis://127.0.0.1:6390", &a, &e), 0);
    assert_string_equal(a.host, "127.0.0.1");
    assert_int_equal(a.port, 6390);
    assert_null(a.password);
    assert_int_equal(a.db, 0);
    assert_int_equal(redis_addr_parse("redis://:p%40ss@db.example:7000/3", &a, &e), 0);
    assert_string_equal(a.host, "db.example");
    assert_string_equal(a.password, "p%40ss");
    assert_int_equal(a.db, 3);
    assert_int_equal(redis_addr_parse("redis://localhost", &a, &e), 0);
    assert_int_equal(a.port, 6379);
    assert_int_equal(redis_addr_parse("redis://[::1]:6380/1", &a, &e), 0);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 6380);
    assert_int_equal(a.db, 1);
    assert_int_equal(redis_addr_parse("unix:///run/redis.sock?db=2&password=x", &a, &e), 0);
    assert_string_equal(a.path, "/run/redis.sock");
    assert_null(a.host);
    assert_int_equal(a.db, 2);
    assert_string_equal(a.password, "x");
    assert_int_equal(redis_addr_parse("http://x", &a, &e), HK_ECONFIG);
    assert_int_equal(redis_addr_parse("redis://h:99999", &a, &e), HK_ECONFIG);
    assert_int_equal(redis_addr_parse("redis://h/x", &a, &e), HK_ECONFIG);
    assert_int_equal(redis_addr_parse("redis://", &a, &e), HK_ECONFIG);
    assert_int_equal(redis_addr_parse("unix://relative", &a, &e), HK_ECONFIG);
    assert_string_equal(a.path, "/run/redis.sock");     /* failures leave it as it was */
    redis_addr_free(&a);
}

/* The address as log lines show it: port and db always, never a password. */
static void test_format(void **state)
{
    static const char *cases[][2] = {
        { "redis://127.0.0.1:1", "redis://127.0.0.1:1/0" },
        { "redis://:s3cret@db.example:7000/3", "redis://db.example:7000/3 (password)" },
        { "redis://[::1]:6380/1", "redis://[::1]:6380/1" },
        { "unix:///run/redis.sock", "unix:///run/redis.sock" },
        { "unix:///run/redis.sock?db=2&password=x", "unix:///run/redis.sock?db=2 (password)" },
    };
    char out[128], tiny[8];
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct redis_addr a = { 0 };
        struct hk_err e;
        assert_int_equal(redis_addr_parse(cases[i][0], &a, &e), 0);
        redis_addr_format(&a, out, sizeof(out));
        assert_string_equal(out, cases[i][1]);
        redis_addr_format(&a, tiny, sizeof(tiny));      /* cut, terminated */
        assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
        redis_addr_free(&a);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_urls),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
