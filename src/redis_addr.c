/* redis_addr.c -- where Redis is: redis:// and unix:// URLs (see
 * redis_addr.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/mem.h"
#include "hookd/parse.h"
#include "hookd/redis_addr.h"

void redis_addr_format(const struct redis_addr *a, char *out, size_t cap)
{
    const char *pw = a->password ? " (password)" : "";
    const char *host = a->host ? a->host : "";
    int v6 = strchr(host, ':') != NULL;
    char db[24] = "";

    if (a->path != NULL) {
        if (a->db != 0)
            snprintf(db, sizeof(db), "?db=%d", a->db);
        snprintf(out, cap, "unix://%s%s%s", a->path, db, pw);
    } else {
        snprintf(out, cap, "redis://%s%s%s:%d/%d%s", v6 ? "[" : "", host, v6 ? "]" : "", a->port,
                 a->db, pw);
    }
}

void redis_addr_free(struct redis_addr *addr)
{
    free(addr->host);
    free(addr->path);
    free(addr->password);
    memset(addr, 0, sizeof(*addr));
}

/* The part of a unix URL after "unix://": an absolute path, then an optional
 * ?db=N&password=P query. */
static int parse_unix_url(const char *rest, struct redis_addr *a, struct hk_err *err)
{
    const char *q = strchr(rest, '?');
    size_t plen = q ? (size_t)(q - rest) : strlen(rest);

    if (plen == 0 || rest[0] != '/')
        return hk_err_set(err, HK_ECONFIG, "config", "unix URL needs an absolute path");
    a->path = xstrndup(rest, plen);
    while (q != NULL && *q != '\0') {
        const char *p = q + 1;
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        char *kv = xstrndup(p, n);
        long db;
        if (strncmp(kv, "db=", 3) == 0 && parse_long(kv + 3, &db) == 0 && db >= 0 &&
            db < 100000) {
            a->db = (int)db;
        } else if (strncmp(kv, "password=", 9) == 0) {
            free(a->password);
            a->password = xstrdup(kv + 9);
        } else {
            free(kv);
            return hk_err_set(err, HK_ECONFIG, "config", "unknown unix URL parameter");
        }
        free(kv);
        q = amp;
    }
    return 0;
}

int redis_addr_parse(const char *url, struct redis_addr *a, struct hk_err *err)
{
    struct redis_addr tmp;
    int rc = 0;

    memset(&tmp, 0, sizeof(tmp));
    if (strncmp(url, "unix://", 7) == 0) {
        rc = parse_unix_url(url + 7, &tmp, err);
    } else if (strncmp(url, "redis://", 8) == 0) {
        const char *p = url + 8, *at = strrchr(p, '@'), *slash;
        if (at != NULL) {
            /* userinfo is ":password" or "user:password"; ACL users are not
             * supported by hiredis 0.14's AUTH, so only the password counts. */
            const char *colon = memchr(p, ':', (size_t)(at - p));
            if (colon == NULL) {
                rc = hk_err_set(err, HK_ECONFIG, "config",
                                "redis URL userinfo must be :password");
                goto out;
            }
            tmp.password = xstrndup(colon + 1, (size_t)(at - colon - 1));
            p = at + 1;
        }
        slash = strchr(p, '/');
        size_t hostport_len = slash ? (size_t)(slash - p) : strlen(p);
        char *hp = xstrndup(p, hostport_len);
        char *colon = strrchr(hp, ':');
        tmp.port = 6379;
        if (hp[0] == '[') {     /* [::1]:6379 */
            char *close = strchr(hp, ']');
            if (close == NULL) {
                free(hp);
                rc = hk_err_set(err, HK_ECONFIG, "config", "bad IPv6 host in redis URL");
                goto out;
            }
            tmp.host = xstrndup(hp + 1, (size_t)(close - hp - 1));
            colon = close[1] == ':' ? close + 1 : NULL;
        } else {
            tmp.host = xstrndup(hp, colon ? (size_t)(colon - hp) : strlen(hp));
        }
        if (colon != NULL) {
            long port;
            if (parse_long(colon + 1, &port) < 0 || port < 1 || port > 65535) {
                free(hp);
                rc = hk_err_set(err, HK_ECONFIG, "config", "bad port in redis URL");
                goto out;
            }
            tmp.port = (int)port;
        }
        free(hp);
        if (tmp.host[0] == '\0') {
            rc = hk_err_set(err, HK_ECONFIG, "config", "redis URL has no host");
            goto out;
        }
        if (slash != NULL && slash[1] != '\0') {
            long db;
            if (parse_long(slash + 1, &db) < 0 || db < 0 || db > 100000) {
                rc = hk_err_set(err, HK_ECONFIG, "config", "bad database number in redis URL");
                goto out;
            }
            tmp.db = (int)db;
        }
    } else {
        rc = hk_err_set(err, HK_ECONFIG, "config",
                        "redis URL must start with redis:// or unix://");
    }
out:
    if (rc < 0) {
        redis_addr_free(&tmp);
        return rc;
    }
    redis_addr_free(a);
    *a = tmp;
    return 0;
}
