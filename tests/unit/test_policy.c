/* test_policy.c -- URL and header rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hookd/policy.h"

static int url(const char *u)
{
    return policy_check_url(u, strlen(u), NULL);
}

static void test_urls(void **state)
{
    (void)state;
    assert_int_equal(url("http://example.com/hook"), 0);
    assert_int_equal(url("https://api.example.com:8443/a/b?c=d#e"), 0);
    assert_int_equal(url("http://127.0.0.1:3000/webhooks/call-complete"), 0);
    assert_int_equal(url("http://[::1]:8080/"), 0);
    assert_int_equal(url("HTTPS://EXAMPLE.COM/"), 0);
    assert_int_equal(url(""), HK_EINVAL);
    assert_int_equal(url("ftp://example.com/"), HK_EINVAL);
    assert_int_equal(url("file:///etc/passwd"), HK_EINVAL);
    assert_int_equal(url("gopher://example.com/"), HK_EINVAL);
    assert_int_equal(url("example.com/hook"), HK_EINVAL);
    assert_int_equal(url("http://user:pass@example.com/"), HK_EINVAL);
    assert_int_equal(url("http://user@example.com/"), HK_EINVAL);
    assert_int_equal(url("http://:80/"), HK_EINVAL);
    assert_int_equal(url("http://"), HK_EINVAL);
    assert_int_equal(url("http://exa mple.com/"), HK_EINVAL);
    assert_int_equal(policy_check_url("http://a\0b", 10, NULL), HK_EINVAL);
}

static void test_long_url(void **state)
{
    char *u = malloc(POLICY_URL_MAX + 2);
    struct hk_err err;
    (void)state;
    memcpy(u, "http://a.example/", 17);
    memset(u + 17, 'x', POLICY_URL_MAX - 17);
    u[POLICY_URL_MAX] = '\0';
    assert_int_equal(policy_check_url(u, strlen(u), NULL), 0);
    u[POLICY_URL_MAX] = 'x';
    u[POLICY_URL_MAX + 1] = '\0';
    assert_int_equal(policy_check_url(u, strlen(u), &err), HK_EINVAL);
    assert_string_equal(err.code, "invalid_url");
    free(u);
}

static int hdr(const char *n, const char *v, struct hk_err *err)
{
    return policy_check_header(n, strlen(n), v, strlen(v), err);
}

static void test_headers(void **state)
{
    struct hk_err err;
    (void)state;
    assert_int_equal(hdr("X-Tenant", "t1", &err), 0);
    assert_int_equal(hdr("Authorization", "Bearer a.b.c", &err), 0);
    assert_int_equal(hdr("X-Tab", "a\tb", &err), 0);
    assert_int_equal(hdr("X Bad", "v", &err), HK_EINVAL);
    assert_string_equal(err.code, "invalid_header");
    assert_int_equal(hdr("X-Bad:", "v", &err), HK_EINVAL);
    assert_int_equal(hdr("", "v", &err), HK_EINVAL);
    assert_int_equal(hdr("X-Inject", "v\r\nX-Evil: 1", &err), HK_EINVAL);
    assert_string_equal(err.code, "invalid_header");
    assert_int_equal(hdr("X-Nl", "v\n", &err), HK_EINVAL);
    assert_int_equal(policy_check_header("X-Nul", 5, "a\0b", 3, &err), HK_EINVAL);
    const char *reserved[] = { "Content-Type", "content-length", "Host", "X-Dialgen-Signature",
                               "webhook-id", "Webhook-Signature", "WEBHOOK-TIMESTAMP",
                               "Transfer-Encoding", "Connection" };
    for (size_t i = 0; i < sizeof(reserved) / sizeof(*reserved); i++) {
        assert_int_equal(hdr(reserved[i], "x", &err), HK_EINVAL);
        assert_string_equal(err.code, "reserved_header");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_long_url),
        cmocka_unit_test(test_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
