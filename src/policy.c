/* policy.c -- URL and header rules for outgoing webhooks.
 *
 * URLs are parsed with libcurl's own URL API (CURLU) rather than by hand, so
 * what is validated here is exactly what libcurl later connects to: two
 * parsers that disagree on an edge case are how URL filters get bypassed. */
#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hookd/policy.h"

int policy_check_url(const char *url, size_t len, char *origin, size_t origin_cap,
                     struct hk_err *err)
{
    CURLU *u;
    char *scheme = NULL, *host = NULL, *user = NULL, *password = NULL, *port = NULL;
    int rc = 0;

    if (len == 0)
        return hk_err_set(err, HK_EINVAL, "invalid_url", "url is empty");
    if (len > POLICY_URL_MAX)
        return hk_err_set(err, HK_EINVAL, "invalid_url", "url is longer than %d bytes",
                          POLICY_URL_MAX);
    if (memchr(url, '\0', len) != NULL || strlen(url) != len)
        return hk_err_set(err, HK_EINVAL, "invalid_url", "url contains a NUL byte");
    u = curl_url();
    if (u == NULL)
        return hk_err_set(err, HK_EINVAL, "invalid_url", "curl_url() failed");
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
        rc = hk_err_set(err, HK_EINVAL, "invalid_url", "url does not parse");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)) {
        rc = hk_err_set(err, HK_EINVAL, "invalid_url", "url scheme must be http or https");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0') {
        rc = hk_err_set(err, HK_EINVAL, "invalid_url", "url has no host");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK) {
        rc = hk_err_set(err, HK_EINVAL, "invalid_url",
                        "url must not carry user:password credentials");
        goto out;
    }
    if (origin != NULL) {
        /* What libcurl pools connections by: scheme, host, port (the
         * scheme's default when none is written), host lowercased. */
        if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
            rc = hk_err_set(err, HK_EINVAL, "invalid_url", "url has no usable port");
            goto out;
        }
        for (char *p = scheme; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        for (char *p = host; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        if ((size_t)snprintf(origin, origin_cap, "%s://%s:%s", scheme, host, port) >=
            origin_cap)
            rc = hk_err_set(err, HK_EINVAL, "invalid_url", "url host is too long");
    }
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_free(password);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

/* RFC 9110 tchar */
static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int policy_check_header_value(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return HK_EINVAL;
    }
    return 0;
}

static const char *const reserved[] = {
    "content-type", "content-length", "host", "transfer-encoding", "connection",
    "expect", "te", "upgrade", "keep-alive", "trailer",
    "x-dialgen-signature", "x-dialgen-event",
};

int policy_check_header(const char *name, size_t name_len, const char *value,
                        size_t value_len, struct hk_err *err)
{
    if (name_len == 0 || name_len > 256)
        return hk_err_set(err, HK_EINVAL, "invalid_header", "header name length %zu",
                          name_len);
    for (size_t i = 0; i < name_len; i++)
        if (!is_tchar((unsigned char)name[i]))
            return hk_err_set(err, HK_EINVAL, "invalid_header",
                              "header name has a byte that is not an HTTP token character");
    if (value_len > 8192 || policy_check_header_value(value, value_len) < 0)
        return hk_err_set(err, HK_EINVAL, "invalid_header",
                          "header %.*s: value has a control byte or is too long",
                          (int)(name_len > 64 ? 64 : name_len), name);
    for (size_t i = 0; i < sizeof(reserved) / sizeof(*reserved); i++)
        if (strlen(reserved[i]) == name_len && strncasecmp(name, reserved[i], name_len) == 0)
            goto reserved_name;
    if (name_len >= 8 && strncasecmp(name, "webhook-", 8) == 0)
        goto reserved_name;
    return 0;
reserved_name:
    return hk_err_set(err, HK_EINVAL, "reserved_header",
                      "header %.*s is set by hookd and cannot be overridden",
                      (int)name_len, name);
}

/* ---- destinations ---------------------------------------------------------- */

static int parse_net(const char *s, struct policy_net *n)
{
    char tmp[64];
    const char *slash = strchr(s, '/');
    size_t len = slash ? (size_t)(slash - s) : strlen(s);
    long bits;
    char *end;

    if (len == 0 || len >= sizeof(tmp))
        return HK_EINVAL;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    memset(n, 0, sizeof(*n));
    if (inet_pton(AF_INET, tmp, n->addr) == 1)
        n->family = AF_INET;
    else if (inet_pton(AF_INET6, tmp, n->addr) == 1)
        n->family = AF_INET6;
    else
        return HK_EINVAL;
    n->prefix = n->family == AF_INET ? 32 : 128;
    if (slash != NULL) {
        bits = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || *end != '\0' || bits < 0 || bits > n->prefix)
            return HK_EINVAL;
        n->prefix = (int)bits;
    }
    return 0;
}

int policy_parse_cidrs(const char *list, struct policy_net **out, size_t *n)
{
    char *copy = strdup(list), *tok, *save = NULL;
    struct policy_net *v = NULL;
    size_t k = 0;

    if (copy == NULL)
        return HK_EINVAL;
    for (tok = strtok_r(copy, ", ", &save); tok != NULL; tok = strtok_r(NULL, ", ", &save)) {
        struct policy_net net;
        if (parse_net(tok, &net) < 0) {
            free(copy);
            free(v);
            return HK_EINVAL;
        }
        struct policy_net *nv = realloc(v, (k + 1) * sizeof(*v));
        if (nv == NULL) {
            free(copy);
            free(v);
            return HK_EINVAL;
        }
        v = nv;
        v[k++] = net;
    }
    free(copy);
    *out = v;
    *n = k;
    return 0;
}

static int in_net(const struct policy_net *n, int family, const unsigned char *a)
{
    int full = n->prefix / 8, rest = n->prefix % 8;

    if (n->family != family)
        return 0;
    if (memcmp(n->addr, a, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (n->addr[full] & mask) == (a[full] & mask);
}

static const char *const builtin_deny[] = {
    "169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "0.0.0.0/8", "::/128",
    "224.0.0.0/4", "ff00::/8", "255.255.255.255/32",
};

static const char *const private_nets[] = {
    "127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
    "100.64.0.0/10", "fc00::/7",
};

#define NBUILTIN (sizeof(builtin_deny) / sizeof(*builtin_deny))
#define NPRIVATE (sizeof(private_nets) / sizeof(*private_nets))

/* The two fixed lists, parsed once per process (constants: no locking). */
static struct policy_net builtin_nets[NBUILTIN], private_parsed[NPRIVATE];
static int lists_ready;

static void parse_lists(void)
{
    for (size_t i = 0; i < NBUILTIN; i++)
        parse_net(builtin_deny[i], &builtin_nets[i]);
    for (size_t i = 0; i < NPRIVATE; i++)
        parse_net(private_nets[i], &private_parsed[i]);
    lists_ready = 1;
}

static int in_list(const struct policy_net *list, size_t n, int family, const unsigned char *a)
{
    for (size_t i = 0; i < n; i++)
        if (in_net(&list[i], family, a))
            return 1;
    return 0;
}

/* The rule that refuses address a, or NULL when it may be connected to. */
static const char *refusal(const struct policy_dest *d, int family, const unsigned char *a)
{
    if (in_list(d->deny, d->ndeny, family, a))
        return "in deny_cidrs";
    if (in_list(d->allow, d->nallow, family, a))
        return NULL;
    if (in_list(builtin_nets, NBUILTIN, family, a))
        return "link-local, metadata, unspecified, multicast or broadcast";
    if (d->deny_private && in_list(private_parsed, NPRIVATE, family, a))
        return "loopback or private (deny_private)";
    return NULL;
}

/* 1 when the IPv6 address a carries an IPv4 address that a translator or
 * relay delivers to (NAT64 64:ff9b::/96, as on IPv6-only cloud subnets; 6to4
 * 2002::/16; Teredo 2001::/32, whose client address is inverted; the
 * deprecated IPv4-compatible ::/96 except :: and ::1), copied into v4. */
static int embedded_v4(const unsigned char *a, unsigned char *v4)
{
    static const unsigned char nat64[12] = { 0, 0x64, 0xff, 0x9b };
    static const unsigned char zero[12] = { 0 };

    if (memcmp(a, nat64, 12) == 0 ||
        (memcmp(a, zero, 12) == 0 && (a[12] | a[13] | a[14] || a[15] > 1))) {
        memcpy(v4, a + 12, 4);
        return 1;
    }
    if (a[0] == 0x20 && a[1] == 0x02) {
        memcpy(v4, a + 2, 4);
        return 1;
    }
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0) {
        for (int i = 0; i < 4; i++)
            v4[i] = (unsigned char)~a[12 + i];
        return 1;
    }
    return 0;
}

int policy_check_addr(const struct policy_dest *d, const struct sockaddr *sa, char *why,
                      size_t whylen)
{
    unsigned char a[16], v4[4];
    char text[INET6_ADDRSTRLEN], text4[INET_ADDRSTRLEN];
    int family = sa->sa_family;
    const char *rule;

    if (family == AF_INET) {
        memcpy(a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (family == AF_INET6) {
        memcpy(a, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        /* ::ffff:a.b.c.d is a.b.c.d */
        static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        if (memcmp(a, mapped, 12) == 0) {
            memmove(a, a + 12, 4);
            family = AF_INET;
        }
    } else {
        snprintf(why, whylen, "address family %d is not IP", family);
        return HK_EINVAL;
    }
    if (!lists_ready)
        parse_lists();
    inet_ntop(family, a, text, sizeof(text));
    rule = refusal(d, family, a);
    if (rule != NULL) {
        snprintf(why, whylen, "%s is %s", text, rule);
        return HK_EINVAL;
    }
    if (family == AF_INET6 && embedded_v4(a, v4) && (rule = refusal(d, AF_INET, v4)) != NULL) {
        inet_ntop(AF_INET, v4, text4, sizeof(text4));
        snprintf(why, whylen, "%s (IPv4 %s) is %s", text, text4, rule);
        return HK_EINVAL;
    }
    return 0;
}
