/* test_redis_addr.c -- redis://, rediss://, unix://, redis-sentinel:// and
 * redis-cluster:// URLs. */
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

static void test_tls_sentinel_and_cluster_urls(void **state)
{
    struct redis_addr a = { 0 };
    struct hk_err e;
    char big[512];
    (void)state;
    a.tls_opts.ca_file = "ca.pem";      /* kept across parses: the config's */
    assert_int_equal(redis_addr_parse("rediss://:pw@10.0.0.5:6380/2", &a, &e), 0);
    assert_int_equal(a.tls, 1);
    assert_int_equal(a.kind, REDIS_DIRECT);
    assert_string_equal(a.host, "10.0.0.5");
    assert_int_equal(a.port, 6380);
    assert_int_equal(a.db, 2);
    assert_string_equal(a.tls_opts.ca_file, "ca.pem");
    assert_int_equal(redis_addr_parse("redis-sentinel://10.0.0.1,10.0.0.2:26380,[::1]:1/mymaster"
                                      "?password=p&sentinel_password=s&db=4", &a, &e), 0);
    assert_int_equal(a.kind, REDIS_SENTINEL);
    assert_int_equal(a.tls, 0);
    assert_null(a.host);
    assert_int_equal(a.nnodes, 3);
    assert_string_equal(a.nodes[0].host, "10.0.0.1");
    assert_int_equal(a.nodes[0].port, 26379);       /* Sentinel's own default */
    assert_int_equal(a.nodes[1].port, 26380);
    assert_string_equal(a.nodes[2].host, "::1");
    assert_string_equal(a.master, "mymaster");
    assert_string_equal(a.password, "p");
    assert_string_equal(a.sentinel_password, "s");
    assert_int_equal(a.db, 4);
    assert_int_equal(redis_addr_parse("rediss-sentinel://h:1/m", &a, &e), 0);
    assert_int_equal(a.tls, 1);
    assert_int_equal(redis_addr_parse("redis-sentinel://h:1", &a, &e), HK_ECONFIG);
    assert_non_null(strstr(e.msg, "needs the primary's name"));
    assert_int_equal(redis_addr_parse("redis-sentinel://h:1/", &a, &e), HK_ECONFIG);
    assert_int_equal(redis_addr_parse("redis-sentinel:///m", &a, &e), HK_ECONFIG);
    assert_int_equal(redis_addr_parse("redis-sentinel://h:0/m", &a, &e), HK_ECONFIG);
    assert_int_equal(redis_addr_parse("redis-sentinel://h:1,,h:2/m", &a, &e), HK_ECONFIG);
    assert_int_equal(redis_addr_parse("redis-sentinel://h:1/m?bogus=1", &a, &e), HK_ECONFIG);
    assert_string_equal(e.msg, "unknown redis URL parameter 'bogus'");
    assert_int_equal(redis_addr_parse("unix:///s?sentinel_password=x", &a, &e), HK_ECONFIG);
    assert_int_equal(redis_addr_parse("redis-cluster://10.0.0.1:7000,10.0.0.2?password=p", &a,
                                      &e), 0);
    assert_int_equal(a.kind, REDIS_CLUSTER);
    assert_int_equal(a.nnodes, 2);
    assert_int_equal(a.nodes[1].port, 6379);
    assert_string_equal(a.password, "p");
    assert_null(a.master);
    assert_int_equal(redis_addr_parse("rediss-cluster://h:1/", &a, &e), 0);
    assert_int_equal(a.tls, 1);
    assert_int_equal(redis_addr_parse("redis-cluster://h:1/0", &a, &e), HK_ECONFIG);
    assert_int_equal(redis_addr_parse("redis-cluster://h:1?db=1", &a, &e), HK_ECONFIG);
    assert_int_equal(redis_addr_parse("redis-cluster://", &a, &e), HK_ECONFIG);
    /* REDIS_ADDR_NODES_MAX sentinels, and one more */
    strcpy(big, "redis-sentinel://");
    for (int i = 0; i < REDIS_ADDR_NODES_MAX; i++)
        strcat(big, i ? ",h:1" : "h:1");
    strcat(big, "/m");
    assert_int_equal(redis_addr_parse(big, &a, &e), 0);
    assert_int_equal(a.nnodes, REDIS_ADDR_NODES_MAX);
    memmove(big + 17 + 4, big + 17, strlen(big + 17) + 1);
    memcpy(big + 17, "h:2,", 4);
    assert_int_equal(redis_addr_parse(big, &a, &e), HK_ECONFIG);
    assert_non_null(strstr(e.msg, "more than 16 sentinels"));
    assert_int_equal(a.nnodes, REDIS_ADDR_NODES_MAX);  /* failures leave it as it was */
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
        { "rediss://h:1", "rediss://h:1/0" },
        { "redis-sentinel://a:1,[::1]:2/m?password=x", "redis-sentinel://a:1,[::1]:2/m (password)" },
        { "rediss-sentinel://a:1/m?db=3", "rediss-sentinel://a:1/m?db=3" },
        { "redis-cluster://a:1,b:2?password=x", "redis-cluster://a:1,b:2 (password)" },
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
        cmocka_unit_test(test_tls_sentinel_and_cluster_urls),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
