/* redis_addr.h -- where a Redis server is, and the URLs that say so.
 *
 * A leaf apart from config.h so that redis.h, and everything that reaches
 * Redis through it, need not include the whole configuration. */
#ifndef HOOKD_REDIS_ADDR_H
#define HOOKD_REDIS_ADDR_H

#include <stddef.h>

#include "hookd/err.h"

#define REDIS_ADDR_NODES_MAX 16     /* sentinels or cluster seeds in one URL */

enum redis_kind {
    REDIS_DIRECT,           /* one server: host:port or a unix socket */
    REDIS_SENTINEL,         /* the primary that sentinels name */
    REDIS_CLUSTER,          /* the primary serving slot_key's slot */
};

struct redis_node {
    char *host;             /* owned */
    int port;
};

/* TLS settings. The strings are borrowed from the configuration that set
 * them (config.h's redis_ca_file ...), NULL when unset. */
struct redis_tls_opts {
    const char *ca_file;        /* PEM bundle; NULL = OpenSSL's default paths */
    const char *client_cert;    /* PEM; with client_key, or neither */
    const char *client_key;
    const char *server_name;    /* SNI and the name verified; NULL = the host */
    int verify;                 /* verify the server's certificate (default 1) */
};

struct redis_addr {
    int kind;               /* enum redis_kind */
    int tls;                /* rediss://, rediss-sentinel:// */
    char *host;             /* owned; NULL for a unix socket or a sentinel URL */
    int port;
    char *path;             /* owned; unix socket path, or NULL */
    char *password;         /* owned; the server's (the primary's) AUTH, or NULL */
    int db;
    struct redis_node nodes[REDIS_ADDR_NODES_MAX];  /* sentinels, or cluster seeds */
    size_t nnodes;
    char *master;           /* owned; the name sentinels know the primary by */
    char *sentinel_password;    /* owned; the sentinels' AUTH, or NULL */
    const char *slot_key;   /* cluster: a key of the slot to serve (the hash-tagged
                               prefix); borrowed from the config */
    struct redis_tls_opts tls_opts;
};

/* Parse a redis URL:
 *   redis://[:password@]host[:port][/db]       rediss:// the same over TLS
 *   unix:///path[?db=N&password=P]
 *   redis-sentinel://host:port[,host:port...]/master[?db=N&password=P&sentinel_password=S]
 *   rediss-sentinel://...                      the same, every hop over TLS
 *   redis-cluster://host:port[,host:port...][?password=P]   rediss-cluster:// over TLS
 * On success frees what addr held and fills it (its strings owned by addr,
 * released by redis_addr_free; tls_opts and slot_key kept as they were); on error
 * returns HK_ECONFIG with err->msg saying what is wrong, and leaves addr
 * as it was. */
int redis_addr_parse(const char *url, struct redis_addr *addr, struct hk_err *err);

/* addr for log lines, into out (cap bytes, truncated to fit):
 * redis[s]://host:port/db, unix:///path?db=N or
 * redis[s]-sentinel://host:port,.../master[?db=N] or
 * redis[s]-cluster://host:port,..., with "(password)" after it
 * when one is set; never the password itself. */
void redis_addr_format(const struct redis_addr *addr, char *out, size_t cap);

/* Free addr's strings and zero it; a zeroed addr may be freed again. */
void redis_addr_free(struct redis_addr *addr);

#endif
