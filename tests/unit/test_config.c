/* test_config.c -- settings, the INI file, environment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "hookd/config.h"

static void test_defaults(void **state)
{
    struct config c;
    (void)state;
    config_init(&c);
    assert_null(c.redis);
    assert_string_equal(c.prefix, "hookd");
    assert_true(c.workers >= 1);
    assert_int_equal(c.max_in_flight, 1000);
    assert_int_equal(c.timeout_ms, 30000);
    assert_string_equal(c.user_agent, "hookd/" HOOKD_VERSION);
    assert_string_equal(c.data_dir, "./var");
    assert_null(c.secret);
    assert_int_equal(c.dead_max, 100000);
    assert_int_equal(c.retry.nschedule, 3);
    assert_int_equal(c.retry.schedule_ms[0], 1000);
    assert_int_equal(c.retry.schedule_ms[1], 5000);
    assert_int_equal(c.retry.schedule_ms[2], 25000);
    assert_true(c.retry.jitter == 0);
    assert_int_equal(c.retry.retry_on_4xx, 1);
    assert_int_equal(c.attempt_log, ATTEMPT_LOG_FAILURES);
    assert_int_equal(c.response_capture_bytes, 4096);
    config_free(&c);
}

static void test_set_and_errors(void **state)
{
    struct config c;
    struct hk_err e;
    (void)state;
    config_init(&c);
    assert_int_equal(config_set(&c, "workers", "4", &e), 0);
    assert_int_equal(c.workers, 4);
    assert_int_equal(config_set(&c, "max-in-flight", "16", &e), 0);   /* dash form */
    assert_int_equal(c.max_in_flight, 16);
    assert_int_equal(config_set(&c, "timeout", "500ms", &e), 0);
    assert_int_equal(c.timeout_ms, 500);
    assert_int_equal(config_set(&c, "timeout", "2m", &e), 0);
    assert_int_equal(c.timeout_ms, 120000);
    assert_int_equal(config_set(&c, "log_level", "DEBUG", &e), 0);
    assert_int_equal(c.log_level, LOG_DEBUG);

    assert_int_equal(config_set(&c, "workers", "0", &e), HK_ECONFIG);
    assert_non_null(strstr(e.msg, "workers"));
    assert_int_equal(config_set(&c, "workers", "2x", &e), HK_ECONFIG);
    assert_int_equal(config_set(&c, "timeout", "forever", &e), HK_ECONFIG);
    assert_non_null(strstr(e.msg, "timeout"));
    assert_int_equal(config_set(&c, "timeout", "11m", &e), HK_ECONFIG);
    assert_int_equal(config_set(&c, "log_level", "loud", &e), HK_ECONFIG);
    assert_int_equal(config_set(&c, "prefix", "bad prefix", &e), HK_ECONFIG);
    assert_int_equal(config_set(&c, "nonsense", "1", &e), HK_ECONFIG);
    assert_non_null(strstr(e.msg, "unknown key 'nonsense'"));
    assert_int_equal(config_set(&c, "secret", "whsec_!!", &e), HK_ECONFIG);
    assert_int_equal(config_set(&c, "secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &e), 0);
    assert_int_equal(config_set(&c, "user_agent", "", &e), HK_ECONFIG);

    /* retry policy */
    assert_int_equal(config_set(&c, "retry_schedule", "2s, 10s", &e), 0);
    assert_int_equal(c.retry.nschedule, 2);
    assert_int_equal(c.retry.schedule_ms[1], 10000);
    assert_int_equal(config_set(&c, "retry_schedule", "2s,later", &e), HK_ECONFIG);
    assert_non_null(strstr(e.msg, "retry_schedule"));
    assert_int_equal(c.retry.nschedule, 2);
    assert_int_equal(config_set(&c, "retry_jitter", "0.25", &e), 0);
    assert_true(c.retry.jitter == 0.25);
    assert_int_equal(config_set(&c, "retry_jitter", "1.5", &e), HK_ECONFIG);
    assert_int_equal(config_set(&c, "retry_on_4xx", "off", &e), 0);
    assert_int_equal(c.retry.retry_on_4xx, 0);
    assert_int_equal(config_set(&c, "retry_on_4xx", "maybe", &e), HK_ECONFIG);
    assert_int_equal(config_set(&c, "retry_after_max", "10m", &e), 0);
    assert_int_equal(c.retry.retry_after_max_ms, 600000);
    assert_int_equal(config_set(&c, "attempt_log", "all", &e), 0);
    assert_int_equal(c.attempt_log, ATTEMPT_LOG_ALL);
    assert_int_equal(config_set(&c, "attempt_log", "some", &e), HK_ECONFIG);
    assert_int_equal(config_set(&c, "response_capture_bytes", "0", &e), 0);

    /* destinations, TLS, rotation */
    assert_int_equal(config_set(&c, "deny_private", "true", &e), 0);
    assert_int_equal(c.dest.deny_private, 1);
    assert_int_equal(config_set(&c, "allow_cidrs", "10.1.0.0/16, ::1", &e), 0);
    assert_int_equal(c.dest.nallow, 2);
    assert_int_equal(config_set(&c, "deny_cidrs", "10.1.5.0/24", &e), 0);
    assert_int_equal(c.dest.ndeny, 1);
    assert_int_equal(config_set(&c, "deny_cidrs", "10.1.5.0/99", &e), HK_ECONFIG);
    assert_int_equal(c.dest.ndeny, 1);
    assert_int_equal(config_set(&c, "resolve", "a.example:443:127.0.0.1,b:80:[::1]", &e), 0);
    assert_int_equal(config_set(&c, "resolve", "a.example:443", &e), HK_ECONFIG);
    assert_int_equal(config_set(&c, "resolve", "a.example:0:1.2.3.4", &e), HK_ECONFIG);
    assert_int_equal(config_set(&c, "secret_previous_until", "2026-11-27T00:00:00Z", &e), 0);
    assert_int_equal(c.secret_previous_until, 1795737600LL);
    assert_int_equal(config_set(&c, "secret_previous_until", "1795737600", &e), 0);
    assert_int_equal(c.secret_previous_until, 1795737600LL);
    assert_int_equal(config_set(&c, "secret_previous_until", "tomorrow", &e), HK_ECONFIG);
    assert_int_equal(config_set(&c, "max_response_bytes", "1024", &e), 0);
    assert_int_equal(c.max_response_bytes, 1024);
    config_free(&c);
}

static char *write_tmp(const char *text)
{
    static char path[64];
    strcpy(path, "/tmp/hookd-cfg-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_file(void **state)
{
    struct config c;
    struct hk_err e;
    char *p;
    (void)state;

    config_init(&c);
    p = write_tmp("; comment\n# another\nworkers = 3\nprefix = dg\n"
                  "redis = redis://127.0.0.1:6400/2\ntimeout = 10s\n");
    assert_int_equal(config_load_file(&c, p, &e), 0);
    assert_int_equal(c.workers, 3);
    assert_string_equal(c.prefix, "dg");
    assert_string_equal(c.redis, "redis://127.0.0.1:6400/2");
    assert_int_equal(c.addr.port, 6400);
    assert_int_equal(c.addr.db, 2);
    assert_int_equal(c.timeout_ms, 10000);
    unlink(p);

    p = write_tmp("workers = 2\n\nmax_in_flite = 10\nworkers = 0\n");
    assert_int_equal(config_load_file(&c, p, &e), HK_ECONFIG);
    assert_non_null(strstr(e.msg, "line 3"));
    assert_non_null(strstr(e.msg, "max_in_flite"));
    unlink(p);

    p = write_tmp("workers = lots\n");
    assert_int_equal(config_load_file(&c, p, &e), HK_ECONFIG);
    assert_non_null(strstr(e.msg, "line 1"));
    assert_non_null(strstr(e.msg, "'workers'"));
    unlink(p);

    assert_int_equal(config_load_file(&c, "/nonexistent/hookd.conf", &e), HK_ECONFIG);
    assert_non_null(strstr(e.msg, "cannot open"));
    config_free(&c);
}

/* A section header is refused on its own line, whether keys follow or
 * not; an unknown key names the key it is close to. */
static void test_sections_and_typos(void **state)
{
    static const struct { const char *text, *want; } cases[] = {
        { "[hookd]\n", "line 1: sections are not supported ([hookd])" },
        { "[section]\nworkers = 1\n", "line 1: sections are not supported ([section])" },
        { "workers = 1\n; c\n[x]\nworkers = 2\n", "line 3: sections are not supported ([x])" },
        { "max_inflight = 3\n", "line 1: unknown key 'max_inflight'; did you mean "
          "'max_in_flight'?" },
        { "nonsense = 3\n", "line 1: unknown key 'nonsense'" },
    };
    char want[512];
    struct config c;
    struct hk_err e;
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        char *p = write_tmp(cases[i].text);
        config_init(&c);
        assert_int_equal(config_load_file(&c, p, &e), HK_ECONFIG);
        snprintf(want, sizeof(want), "%s %s", p, cases[i].want);
        assert_string_equal(e.msg, want);
        config_free(&c);
        unlink(p);
    }
}

static void test_suggest_key(void **state)
{
    (void)state;
    assert_string_equal(config_suggest_key("wrokers"), "workers");
    assert_string_equal(config_suggest_key("MAX-INFLIGHT"), "max_in_flight");
    assert_string_equal(config_suggest_key("retry_schedul"), "retry_schedule");
    assert_null(config_suggest_key("redis_url"));
    assert_null(config_suggest_key("bogus"));
}

static void test_env_warning(void **state)
{
    char msg[256];
    (void)state;

    assert_int_equal(config_env_warning("HOOKD_WROKERS=3", msg, sizeof(msg)), 1);
    assert_string_equal(msg, "unknown environment variable HOOKD_WROKERS ignored; "
                        "did you mean HOOKD_WORKERS?");
    assert_int_equal(config_env_warning("HOOKD_REDIS_URL=redis://x", msg, sizeof(msg)), 1);
    assert_string_equal(msg, "unknown environment variable HOOKD_REDIS_URL ignored");
    assert_int_equal(config_env_warning("HOOKD_workers=3", msg, sizeof(msg)), 1);
    assert_string_equal(msg, "unknown environment variable HOOKD_workers ignored; "
                        "did you mean HOOKD_WORKERS?");
    assert_int_equal(config_env_warning("HOOKD_WORKERS=3", msg, sizeof(msg)), 0);
    assert_int_equal(config_env_warning("HOOKD_MAX_IN_FLIGHT=", msg, sizeof(msg)), 0);
    assert_int_equal(config_env_warning("HOOKD_BIN=/x/hookd", msg, sizeof(msg)), 0);
    assert_int_equal(config_env_warning("HOOKD_MODEL_SEED=1", msg, sizeof(msg)), 0);
    assert_int_equal(config_env_warning("PATH=/bin", msg, sizeof(msg)), 0);
    assert_int_equal(config_env_warning("XHOOKD_WORKERS=1", msg, sizeof(msg)), 0);
}

static void test_env(void **state)
{
    struct config c;
    struct hk_err e;
    (void)state;
    config_init(&c);
    setenv("HOOKD_WORKERS", "7", 1);
    setenv("HOOKD_MAX_IN_FLIGHT", "64", 1);
    assert_int_equal(config_load_env(&c, &e), 0);
    assert_int_equal(c.workers, 7);
    assert_int_equal(c.max_in_flight, 64);
    setenv("HOOKD_TIMEOUT", "never", 1);
    assert_int_equal(config_load_env(&c, &e), HK_ECONFIG);
    assert_non_null(strstr(e.msg, "HOOKD_TIMEOUT"));
    unsetenv("HOOKD_WORKERS");
    unsetenv("HOOKD_MAX_IN_FLIGHT");
    unsetenv("HOOKD_TIMEOUT");
    config_free(&c);
}

/* The layers main.c applies in order (README: defaults < file < HOOKD_*
 * < command line): each replaces only the keys it sets, and the command
 * line's key may be written with dashes. */
static void test_layers(void **state)
{
    struct config c;
    struct hk_err e;
    char *p;
    (void)state;

    config_init(&c);
    p = write_tmp("workers = 3\nprefix = pfile\ntimeout = 10s\n");
    assert_int_equal(config_load_file(&c, p, &e), 0);
    unlink(p);
    setenv("HOOKD_PREFIX", "penv", 1);
    setenv("HOOKD_TIMEOUT", "20s", 1);
    assert_int_equal(config_load_env(&c, &e), 0);
    unsetenv("HOOKD_PREFIX");
    unsetenv("HOOKD_TIMEOUT");
    assert_int_equal(config_set(&c, "prefix", "pcli", &e), 0);
    assert_int_equal(config_set(&c, "max-in-flight", "64", &e), 0);
    assert_int_equal(c.fetch_batch, 256);          /* default */
    assert_int_equal(c.workers, 3);                /* file */
    assert_int_equal(c.timeout_ms, 20000);         /* environment over file */
    assert_string_equal(c.prefix, "pcli");         /* command line over both */
    assert_int_equal(c.max_in_flight, 64);         /* command line over default */
    config_free(&c);
}

/* Messages that wrap another message ("key 'redis': <why>") are compared
 * whole: formatting a message into itself once garbled them. */
static void test_wrapped_messages(void **state)
{
    struct config c;
    struct hk_err e;
    char dir[] = "/tmp/hookd-msg-XXXXXX", path[128], want[256];
    int created;
    FILE *f;
    (void)state;

    config_init(&c);
    assert_int_equal(config_set(&c, "redis", "foo://bar", &e), HK_ECONFIG);
    assert_string_equal(e.msg, "key 'redis': redis URL must start with redis://, rediss://, "
                               "unix://, redis-sentinel:// or redis-cluster://");
    assert_int_equal(config_set(&c, "redis", "redis://h:99999", &e), HK_ECONFIG);
    assert_string_equal(e.msg, "key 'redis': bad port in redis URL");

    setenv("HOOKD_WORKERS", "0", 1);
    assert_int_equal(config_load_env(&c, &e), HK_ECONFIG);
    assert_string_equal(e.msg,
                        "environment HOOKD_WORKERS: key 'workers': '0' is not an integer in "
                        "[1, 256]");
    unsetenv("HOOKD_WORKERS");
    setenv("HOOKD_REDIS", "foo://bar", 1);      /* wrapped twice */
    assert_int_equal(config_load_env(&c, &e), HK_ECONFIG);
    assert_string_equal(e.msg, "environment HOOKD_REDIS: key 'redis': redis URL must start "
                               "with redis://, rediss://, unix://, redis-sentinel:// or redis-cluster://");
    unsetenv("HOOKD_REDIS");

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/secret", dir);
    assert_non_null(f = fopen(path, "w"));
    fputs("whsec_!!\n", f);
    fclose(f);
    config_set(&c, "data_dir", dir, &e);
    assert_int_equal(config_resolve_secret(&c, &created, &e), HK_ECONFIG);
    snprintf(want, sizeof(want), "%s: key 'secret': text after whsec_ is not valid base64",
             path);
    assert_string_equal(e.msg, want);
    unlink(path);
    rmdir(dir);
    config_free(&c);
}

static void test_secret_generation(void **state)
{
    struct config c;
    struct hk_err e;
    char dir[] = "/tmp/hookd-secret-XXXXXX", path[128], first[128];
    int created;
    struct stat st;
    (void)state;

    assert_non_null(mkdtemp(dir));
    config_init(&c);
    config_set(&c, "data_dir", dir, &e);
    assert_int_equal(config_resolve_secret(&c, &created, &e), 0);
    assert_int_equal(created, 1);
    assert_memory_equal(c.secret, "whsec_", 6);
    snprintf(path, sizeof(path), "%s/secret", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    strcpy(first, c.secret);
    config_free(&c);

    config_init(&c);            /* second start reads the same secret */
    config_set(&c, "data_dir", dir, &e);
    assert_int_equal(config_resolve_secret(&c, &created, &e), 0);
    assert_int_equal(created, 0);
    assert_string_equal(c.secret, first);
    config_free(&c);
    unlink(path);
    rmdir(dir);
}

/* config_finish: the Redis TLS settings into the address, refused without
 * rediss://; under Redis Cluster the prefix in braces (its hash tag), and
 * the address's slot key pointing at it. config_move_redis: the running
 * Redis settings into a reloaded config, every pointer of the address
 * into the config that now owns the strings. */
static void test_finish_and_move(void **state)
{
    struct config a, b;
    struct hk_err e;
    (void)state;
    config_init(&a);
    assert_int_equal(config_set(&a, "prefix", "{orders}", &e), 0);
    assert_int_equal(config_set(&a, "prefix", "{orders", &e), HK_ECONFIG);
    assert_int_equal(config_set(&a, "prefix", "{}", &e), HK_ECONFIG);
    assert_int_equal(config_set(&a, "redis_ca_file", "/ca.pem", &e), 0);
    assert_int_equal(config_finish(&a, &e), HK_ECONFIG);
    assert_string_equal(e.msg, "key 'redis_ca_file' is set, but redis is not a rediss:// URL");
    assert_int_equal(config_set(&a, "redis", "rediss-cluster://10.0.0.1:7000", &e), 0);
    assert_int_equal(config_set(&a, "prefix", "orders", &e), 0);
    assert_int_equal(config_finish(&a, &e), 0);
    assert_string_equal(a.prefix, "{orders}");
    assert_ptr_equal(a.addr.slot_key, a.prefix);
    assert_ptr_equal(a.addr.tls_opts.ca_file, a.redis_ca_file);
    assert_int_equal(a.addr.tls_opts.verify, 1);
    assert_int_equal(config_finish(&a, &e), 0);     /* again: braced once */
    assert_string_equal(a.prefix, "{orders}");

    config_init(&b);
    assert_int_equal(config_set(&b, "prefix", "{orders}", &e), 0);
    assert_int_equal(config_finish(&b, &e), 0);
    config_move_redis(&b, &a);
    assert_string_equal(b.redis, "rediss-cluster://10.0.0.1:7000");
    assert_int_equal(b.addr.kind, REDIS_CLUSTER);
    assert_ptr_equal(b.addr.tls_opts.ca_file, b.redis_ca_file);
    assert_string_equal(b.redis_ca_file, "/ca.pem");
    assert_ptr_equal(b.addr.slot_key, b.prefix);
    assert_null(a.redis);
    assert_null(a.redis_ca_file);
    assert_int_equal(a.addr.nnodes, 0);
    config_free(&a);
    config_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_set_and_errors),
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_sections_and_typos),
        cmocka_unit_test(test_suggest_key),
        cmocka_unit_test(test_env_warning),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_layers),
        cmocka_unit_test(test_wrapped_messages),
        cmocka_unit_test(test_secret_generation),
        cmocka_unit_test(test_finish_and_move),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
