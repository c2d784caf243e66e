/* redis_addr.c -- where Redis is: redis://, rediss://, unix://,
 * redis-sentinel:// and redis-cluster:// URLs (see redis_addr.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/mem.h"
#include "hookd/parse.h"
#include "hookd/redis_addr.h"

/* host:port, with [v6] brackets when the host needs them. */
static size_t format_node(char *out, size_t cap, const char *host, int port)
{
    int v6 = strchr(host, ':') != NULL;
    int n = snprintf(out, cap, "%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);

    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap ? cap - 1 : 0;
}

void redis_addr_format(const struct redis_addr *a, char *out, size_t cap)
{
    const char *pw = a->password ? " (password)" : "";
    const char *s = a->tls ? "s" : "";
    size_t n;

    if (cap == 0)
        return;
    if (a->path != NULL) {
        char db[24] = "";
        if (a->db != 0)
            snprintf(db, sizeof(db), "?db=%d", a->db);
        snprintf(out, cap, "unix://%s%s%s", a->path, db, pw);
    } else if (a->kind != REDIS_DIRECT) {
        n = (size_t)snprintf(out, cap, "redis%s-%s://", s,
                             a->kind == REDIS_SENTINEL ? "sentinel" : "cluster");
        for (size_t i = 0; i < a->nnodes && n < cap; i++) {
            if (i > 0 && n + 1 < cap)
                out[n++] = ',';
            n += format_node(out + n, cap - n, a->nodes[i].host, a->nodes[i].port);
        }
        if (n < cap && a->kind == REDIS_CLUSTER)
            snprintf(out + n, cap - n, "%s", pw);
        else if (n < cap && a->db != 0)
            snprintf(out + n, cap - n, "/%s?db=%d%s", a->master, a->db, pw);
        else if (n < cap)
            snprintf(out + n, cap - n, "/%s%s", a->master, pw);
    } else {
        n = (size_t)snprintf(out, cap, "redis%s://", s);
        if (n < cap)
            n += format_node(out + n, cap - n, a->host ? a->host : "", a->port);
        if (n < cap)
            snprintf(out + n, cap - n, "/%d%s", a->db, pw);
    }
}

void redis_addr_free(struct redis_addr *addr)
{
    free(addr->host);
    free(addr->path);
    free(addr->password);
    for (size_t i = 0; i < addr->nnodes; i++)
        free(addr->nodes[i].host);
    free(addr->master);
    free(addr->sentinel_password);
    memset(addr, 0, sizeof(*addr));
}

/* The ?k=v&... query of unix and sentinel URLs. */
static int parse_query(const char *q, struct redis_addr *a, struct hk_err *err)
{
    while (q != NULL && *q != '\0') {
        const char *p = q + 1;
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        char *kv = xstrndup(p, n);
        long db;
        int rc = 0;
        if (strncmp(kv, "db=", 3) == 0 && parse_long(kv + 3, &db) == 0 && db >= 0 &&
            db < 100000 && a->kind != REDIS_CLUSTER) {
            a->db = (int)db;
        } else if (strncmp(kv, "password=", 9) == 0) {
            free(a->password);
            a->password = xstrdup(kv + 9);
        } else if (strncmp(kv, "sentinel_password=", 18) == 0 && a->kind == REDIS_SENTINEL) {
            free(a->sentinel_password);
            a->sentinel_password = xstrdup(kv + 18);
        } else {
            rc = hk_err_set(err, HK_ECONFIG, "config", "unknown redis URL parameter '%.*s'",
                            (int)strcspn(kv, "="), kv);
        }
        free(kv);
        if (rc < 0)
            return rc;
        q = amp;
    }
    return 0;
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
    return parse_query(q, a, err);
}

/* host[:port] or [v6][:port], len bytes at p, into *host (owned) and *port. */
static int parse_hostport(const char *p, size_t len, int default_port, char **host, int *port,
                          struct hk_err *err)
{
    char *hp = xstrndup(p, len);
    char *colon = strrchr(hp, ':');
    int rc = 0;

    *port = default_port;
    if (hp[0] == '[') {     /* [::1]:6379 */
        char *close = strchr(hp, ']');
        if (close == NULL) {
            rc = hk_err_set(err, HK_ECONFIG, "config", "bad IPv6 host in redis URL");
            goto out;
        }
        *host = xstrndup(hp + 1, (size_t)(close - hp - 1));
        colon = close[1] == ':' ? close + 1 : NULL;
    } else {
        *host = xstrndup(hp, colon ? (size_t)(colon - hp) : strlen(hp));
    }
    if (colon != NULL) {
        long v;
        if (parse_long(colon + 1, &v) < 0 || v < 1 || v > 65535) {
            rc = hk_err_set(err, HK_ECONFIG, "config", "bad port in redis URL");
            goto out;
        }
        *port = (int)v;
    }
    if ((*host)[0] == '\0')
        rc = hk_err_set(err, HK_ECONFIG, "config", "redis URL has no host");
out:
    free(hp);
    return rc;
}

/* After "redis://" or "rediss://": [:password@]host[:port][/db]. */
static int parse_server_url(const char *p, struct redis_addr *a, struct hk_err *err)
{
    const char *at = strrchr(p, '@'), *slash;
    int rc;

    if (at != NULL) {
        /* userinfo is ":password" or "user:password"; ACL users are not
         * supported by hiredis 0.14's AUTH, so only the password counts. */
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon == NULL)
            return hk_err_set(err, HK_ECONFIG, "config", "redis URL userinfo must be :password");
        a->password = xstrndup(colon + 1, (size_t)(at - colon - 1));
        p = at + 1;
    }
    slash = strchr(p, '/');
    rc = parse_hostport(p, slash ? (size_t)(slash - p) : strlen(p), 6379, &a->host, &a->port,
                        err);
    if (rc < 0)
        return rc;
    if (slash != NULL && slash[1] != '\0') {
        long db;
        if (parse_long(slash + 1, &db) < 0 || db < 0 || db > 100000)
            return hk_err_set(err, HK_ECONFIG, "config", "bad database number in redis URL");
        a->db = (int)db;
    }
    return 0;
}

/* host:port[,host:port...] from p to end, into a->nodes. */
static int parse_nodes(const char *p, const char *end, int default_port, const char *what,
                       struct redis_addr *a, struct hk_err *err)
{
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        int rc;
        if (a->nnodes == REDIS_ADDR_NODES_MAX)
            return hk_err_set(err, HK_ECONFIG, "config", "more than %d %ss in redis URL",
                              REDIS_ADDR_NODES_MAX, what);
        rc = parse_hostport(p, (size_t)(stop - p), default_port, &a->nodes[a->nnodes].host,
                            &a->nodes[a->nnodes].port, err);
        a->nnodes++;            /* counted even on error: its host is freed */
        if (rc < 0)
            return rc;
        p = stop + (comma != NULL);
    }
    if (a->nnodes == 0)
        return hk_err_set(err, HK_ECONFIG, "config", "redis URL lists no %s", what);
    return 0;
}

/* After "redis-cluster://": host:port[,host:port...][/][?password=P]. */
static int parse_cluster_url(const char *p, struct redis_addr *a, struct hk_err *err)
{
    const char *q = strchr(p, '?');
    const char *end = q ? q : p + strlen(p);
    int rc;

    a->kind = REDIS_CLUSTER;
    if (end > p && end[-1] == '/')
        end--;
    if (memchr(p, '/', (size_t)(end - p)) != NULL)
        return hk_err_set(err, HK_ECONFIG, "config",
                          "a cluster URL names no database: redis-cluster://host:port,...");
    if ((rc = parse_nodes(p, end, 6379, "cluster node", a, err)) < 0)
        return rc;
    return parse_query(q, a, err);
}

/* After "redis-sentinel://": host:port[,host:port...]/master[?query]. */
static int parse_sentinel_url(const char *p, struct redis_addr *a, struct hk_err *err)
{
    const char *slash = strchr(p, '/');
    const char *q;
    int rc;

    a->kind = REDIS_SENTINEL;
    if (slash == NULL || slash[1] == '\0' || slash[1] == '?')
        return hk_err_set(err, HK_ECONFIG, "config",
                          "sentinel URL needs the primary's name: "
                          "redis-sentinel://host:port,.../name");
    if ((rc = parse_nodes(p, slash, 26379, "sentinel", a, err)) < 0)
        return rc;
    q = strchr(slash + 1, '?');
    a->master = xstrndup(slash + 1, q ? (size_t)(q - slash - 1) : strlen(slash + 1));
    return parse_query(q, a, err);
}

/* Each scheme, its prefix written once: the rest of the URL goes to its
 * parser. */
static const struct {
    const char *prefix;
    int tls;
    int (*parse)(const char *rest, struct redis_addr *a, struct hk_err *err);
} schemes[] = {
    { "unix://", 0, parse_unix_url },
    { "redis://", 0, parse_server_url },
    { "rediss://", 1, parse_server_url },
    { "redis-sentinel://", 0, parse_sentinel_url },
    { "rediss-sentinel://", 1, parse_sentinel_url },
    { "redis-cluster://", 0, parse_cluster_url },
    { "rediss-cluster://", 1, parse_cluster_url },
};

int redis_addr_parse(const char *url, struct redis_addr *a, struct hk_err *err)
{
    struct redis_addr tmp;
    int rc;

    memset(&tmp, 0, sizeof(tmp));
    rc = 1;     /* no scheme matched */
    for (size_t i = 0; rc == 1 && i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        size_t n = strlen(schemes[i].prefix);
        if (strncmp(url, schemes[i].prefix, n) == 0) {
            tmp.tls = schemes[i].tls;
            rc = schemes[i].parse(url + n, &tmp, err);
        }
    }
    if (rc == 1)
        rc = hk_err_set(err, HK_ECONFIG, "config",
                        "redis URL must start with redis://, rediss://, unix://, "
                        "redis-sentinel:// or redis-cluster://");
    if (rc < 0) {
        redis_addr_free(&tmp);
        return rc;
    }
    tmp.tls_opts = a->tls_opts;
    tmp.slot_key = a->slot_key;
    redis_addr_free(a);
    *a = tmp;
    return 0;
}
