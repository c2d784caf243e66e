/* test_policy.c -- URL and header rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "hookd/policy.h"

static int url(const char *u)
{
    return policy_check_url(u, strlen(u), NULL, 0, NULL);
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
    assert_int_equal(policy_check_url("http://a\0b", 10, NULL, 0, NULL), HK_EINVAL);
}

static void test_long_url(void **state)
{
    char *u = malloc(POLICY_URL_MAX + 2);
    struct hk_err err;
    (void)state;
    memcpy(u, "http://a.example/", 17);
    memset(u + 17, 'x', POLICY_URL_MAX - 17);
    u[POLICY_URL_MAX] = '\0';
    assert_int_equal(policy_check_url(u, strlen(u), NULL, 0, NULL), 0);
    u[POLICY_URL_MAX] = 'x';
    u[POLICY_URL_MAX + 1] = '\0';
    assert_int_equal(policy_check_url(u, strlen(u), NULL, 0, &err), HK_EINVAL);
    assert_string_equal(err.code, "invalid_url");
    free(u);
}

static int hdr(const char *n, const char *v, struct hk_err *err)
{
    return policy_check_header(n, strlen(n), v, strlen(v), err);
}

static const char *origin_of(const char *u, char *out, size_t cap)
{
    return policy_check_url(u, strlen(u), out, cap, NULL) == 0 ? out : "(rejected)";
}

static void test_origins(void **state)
{
    char o[POLICY_ORIGIN_MAX];
    (void)state;
    /* what connections are pooled and limited by: scheme, host, port */
    assert_string_equal(origin_of("HTTP://Example.COM/x?y", o, sizeof(o)), "http://example.com:80");
    assert_string_equal(origin_of("https://a.example/", o, sizeof(o)), "https://a.example:443");
    assert_string_equal(origin_of("https://[::1]:8443/h", o, sizeof(o)), "https://[::1]:8443");
    assert_string_equal(origin_of("http://127.0.0.1:9000", o, sizeof(o)), "http://127.0.0.1:9000");
    /* too small a buffer is an error, never a truncated key */
    assert_string_equal(origin_of("http://a.example/", o, 10), "(rejected)");
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

static int check(const struct policy_dest *d, const char *addr)
{
    struct sockaddr_in6 s6;
    struct sockaddr_in s4;
    char why[128];

    memset(&s4, 0, sizeof(s4));
    memset(&s6, 0, sizeof(s6));
    if (inet_pton(AF_INET, addr, &s4.sin_addr) == 1) {
        s4.sin_family = AF_INET;
        return policy_check_addr(d, (struct sockaddr *)&s4, why, sizeof(why));
    }
    assert_int_equal(inet_pton(AF_INET6, addr, &s6.sin6_addr), 1);
    s6.sin6_family = AF_INET6;
    return policy_check_addr(d, (struct sockaddr *)&s6, why, sizeof(why));
}

static void test_destinations(void **state)
{
    struct policy_dest d = { 0 };
    (void)state;
    /* default: metadata, link-local, unspecified, multicast, broadcast refused */
    assert_int_equal(check(&d, "169.254.169.254"), HK_EINVAL);
    assert_int_equal(check(&d, "fd00:ec2::254"), HK_EINVAL);
    assert_int_equal(check(&d, "fe80::1"), HK_EINVAL);
    assert_int_equal(check(&d, "0.0.0.0"), HK_EINVAL);
    assert_int_equal(check(&d, "::"), HK_EINVAL);
    assert_int_equal(check(&d, "224.0.0.1"), HK_EINVAL);
    assert_int_equal(check(&d, "ff02::1"), HK_EINVAL);
    assert_int_equal(check(&d, "255.255.255.255"), HK_EINVAL);
    assert_int_equal(check(&d, "::ffff:169.254.169.254"), HK_EINVAL);  /* v4-mapped */
    assert_int_equal(check(&d, "127.0.0.1"), 0);
    assert_int_equal(check(&d, "10.1.2.3"), 0);
    assert_int_equal(check(&d, "93.184.216.34"), 0);
    assert_int_equal(check(&d, "2606:2800::1"), 0);
    /* deny_private */
    d.deny_private = 1;
    const char *priv[] = { "127.0.0.1", "127.9.9.9", "::1", "10.0.0.1", "172.16.0.1",
                           "172.31.255.255", "192.168.1.1", "100.64.0.1", "fc00::1",
                           "fd12::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1" };
    for (size_t i = 0; i < sizeof(priv) / sizeof(*priv); i++)
        if (check(&d, priv[i]) != HK_EINVAL)
            fail_msg("%s allowed with deny_private", priv[i]);
    assert_int_equal(check(&d, "172.32.0.1"), 0);
    assert_int_equal(check(&d, "93.184.216.34"), 0);
    /* allow_cidrs punches holes, deny_cidrs wins over everything */
    assert_int_equal(policy_parse_cidrs("10.1.0.0/16, ::1", &d.allow, &d.nallow), 0);
    assert_int_equal(check(&d, "10.1.200.3"), 0);
    assert_int_equal(check(&d, "::1"), 0);
    assert_int_equal(check(&d, "10.2.0.1"), HK_EINVAL);
    assert_int_equal(policy_parse_cidrs("10.1.5.0/24,93.184.216.34", &d.deny, &d.ndeny), 0);
    assert_int_equal(check(&d, "10.1.5.9"), HK_EINVAL);
    assert_int_equal(check(&d, "93.184.216.34"), HK_EINVAL);
    free(d.allow);
    free(d.deny);
}

/* IPv6 addresses that carry an IPv4 address reach that IPv4 host through a
 * translator (NAT64, as on IPv6-only cloud subnets), a 6to4 or Teredo relay,
 * or the kernel (v4-mapped): each is judged as the IPv4 address too. */
static void test_embedded_ipv4(void **state)
{
    struct policy_dest d = { 0 };
    struct sockaddr_in6 s6 = { .sin6_family = AF_INET6 };
    char why[128];
    (void)state;
    const char *meta[] = { "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe",
                           "2002:a9fe:a9fe::1", "2001:0:4136:e378:8000:63bf:5601:5601",
                           "::a9fe:a9fe", "64:ff9b::e000:1", "::ffff:0.0.0.0" };
    for (size_t i = 0; i < sizeof(meta) / sizeof(*meta); i++)
        if (check(&d, meta[i]) != HK_EINVAL)
            fail_msg("%s allowed by default", meta[i]);
    assert_int_equal(check(&d, "64:ff9b::7f00:1"), 0);
    assert_int_equal(check(&d, "::1"), 0);                  /* not v4-compatible 0.0.0.1 */
    d.deny_private = 1;
    const char *priv[] = { "::ffff:7f00:1", "64:ff9b::7f00:1", "64:ff9b::a00:1",
                           "64:ff9b::c0a8:101", "2002:c0a8:101::", "2002:7f00:1:1::1",
                           "2001:0:4136:e378:8000:63bf:80ff:fffe", "::7f00:1", "::a00:1" };
    for (size_t i = 0; i < sizeof(priv) / sizeof(*priv); i++)
        if (check(&d, priv[i]) != HK_EINVAL)
            fail_msg("%s allowed with deny_private", priv[i]);
    assert_int_equal(check(&d, "64:ff9b::5db8:d822"), 0);   /* 93.184.216.34 */
    assert_int_equal(check(&d, "2002:5db8:d822::1"), 0);
    /* the rules apply to the IPv4 address inside, both ways */
    assert_int_equal(policy_parse_cidrs("10.1.0.0/16", &d.allow, &d.nallow), 0);
    assert_int_equal(check(&d, "64:ff9b::a01:203"), 0);
    assert_int_equal(policy_parse_cidrs("93.184.216.34", &d.deny, &d.ndeny), 0);
    assert_int_equal(check(&d, "::ffff:93.184.216.34"), HK_EINVAL);
    inet_pton(AF_INET6, "64:ff9b::5db8:d822", &s6.sin6_addr);
    assert_int_equal(policy_check_addr(&d, (struct sockaddr *)&s6, why, sizeof(why)), HK_EINVAL);
    assert_string_equal(why, "64:ff9b::5db8:d822 (IPv4 93.184.216.34) is in deny_cidrs");
    free(d.allow);
    free(d.deny);
}

static void test_cidr_parsing(void **state)
{
    struct policy_net *n = NULL;
    size_t k = 0;
    (void)state;
    assert_int_equal(policy_parse_cidrs("192.0.2.7, 2001:db8::/32 ,10.0.0.0/8", &n, &k), 0);
    assert_int_equal(k, 3);
    assert_int_equal(n[0].prefix, 32);
    assert_int_equal(n[1].prefix, 32);
    assert_int_equal(n[1].family, AF_INET6);
    free(n);
    assert_int_equal(policy_parse_cidrs("10.0.0.0/33", &n, &k), HK_EINVAL);
    assert_int_equal(policy_parse_cidrs("example.com", &n, &k), HK_EINVAL);
    assert_int_equal(policy_parse_cidrs("10.0.0.0/x", &n, &k), HK_EINVAL);
    assert_int_equal(policy_parse_cidrs("", &n, &k), 0);
    assert_int_equal(k, 0);
    free(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_long_url),
        cmocka_unit_test(test_origins),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_destinations),
        cmocka_unit_test(test_embedded_ipv4),
        cmocka_unit_test(test_cidr_parsing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
