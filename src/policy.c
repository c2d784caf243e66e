/* policy.c -- URL and header rules for outgoing webhooks.
 *
 * URLs are parsed with libcurl's own URL API (CURLU) rather than by hand, so
 * what is validated here is exactly what libcurl later connects to: two
 * parsers that disagree on an edge case are how URL filters get bypassed. */
#include <curl/curl.h>
#include <string.h>
#include <strings.h>

#include "hookd/policy.h"

int policy_check_url(const char *url, size_t len, struct hk_err *err)
{
    CURLU *u;
    char *scheme = NULL, *host = NULL, *user = NULL, *password = NULL;
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
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_free(password);
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
