/* redis_addr.h -- where a Redis server is, and the URLs that say so.
 *
 * A leaf apart from config.h so that redis.h, and everything that reaches
 * Redis through it, need not include the whole configuration. */
#ifndef HOOKD_REDIS_ADDR_H
#define HOOKD_REDIS_ADDR_H

#include <stddef.h>

#include "hookd/err.h"

struct redis_addr {
    char *host;             /* owned; NULL for a unix socket */
    int port;
    char *path;             /* owned; unix socket path, or NULL */
    char *password;         /* owned; NULL if none */
    int db;
};

/* Parse a redis URL: redis://[:password@]host[:port][/db] or unix:///path
 * (unix:///path?db=N&password=P also accepted). On success frees what addr
 * held and fills it (its strings owned by addr, released by
 * redis_addr_free); on error returns HK_ECONFIG with err->msg saying what
 * is wrong, and leaves addr as it was. */
int redis_addr_parse(const char *url, struct redis_addr *addr, struct hk_err *err);

/* addr for log lines, into out (cap bytes, truncated to fit):
 * redis://host:port/db or unix:///path?db=N, with "(password)" after it
 * when one is set; never the password itself. */
void redis_addr_format(const struct redis_addr *addr, char *out, size_t cap);

/* Free addr's strings and zero it; a zeroed addr may be freed again. */
void redis_addr_free(struct redis_addr *addr);

#endif
