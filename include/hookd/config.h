/* config.h -- hookd's settings: defaults < config file < HOOKD_<KEY>
 * environment variables < command line.
 *
 * The file is INI (parsed by libinih): `key = value` lines, `;` or `#`
 * comments, no sections. Every key is listed in config.c's table, which is
 * the single source for parsing, --help and the README's reference. */
#ifndef HOOKD_CONFIG_H
#define HOOKD_CONFIG_H

#include <stddef.h>

#include "hookd/backoff.h"
#include "hookd/err.h"
#include "hookd/log.h"
#include "hookd/policy.h"
#include "hookd/redis_addr.h"

#define CONFIG_URL_MAX 4096         /* longest ops_webhook_url (HEALTH's limit) */

enum attempt_log { ATTEMPT_LOG_OFF, ATTEMPT_LOG_FAILURES, ATTEMPT_LOG_ALL };

/* One entry of rate_limits: an origin and the spacing of its deliveries. */
struct config_rate {
    char origin[POLICY_ORIGIN_MAX]; /* scheme://host:port, lowercase */
    long interval_us;               /* 1e6 / (deliveries per second), rounded up */
};

struct config {
    char *redis;            /* owned; the URL as given, NULL = embedded */
    struct redis_addr addr; /* parsed from redis (or the embedded socket) */
    char *redis_ca_file;    /* owned; CA bundle Redis's certificate is checked against */
    char *redis_client_cert;    /* owned; PEM client certificate for Redis, or NULL */
    char *redis_client_key;     /* owned; its PEM private key */
    char *redis_tls_server_name;    /* owned; name verified (and SNI), NULL = the host */
    int redis_tls_verify;   /* verify Redis's certificate (default on) */
    int redis_wait_replicas;    /* WAIT for this many replicas after each RECORD */
    char *prefix;           /* owned; key prefix, default "hookd" */
    int workers;            /* worker processes, default: CPUs */
    int max_in_flight;      /* concurrent requests per worker */
    int max_per_host;       /* connections per origin per worker */
    struct config_rate *rate_limits;    /* owned array of nrate_limits */
    size_t nrate_limits;
    int fetch_batch;        /* jobs taken from Redis per round trip */
    char *secret;           /* owned; default signing secret (may be NULL
                               until config_resolve_secret) */
    char *secret_previous;  /* owned; the secret being rotated out, or NULL */
    long long secret_previous_until;  /* unix seconds it stays valid; 0 = forever */
    long timeout_ms;        /* per attempt */
    char *user_agent;       /* owned */
    char *data_dir;         /* owned; embedded Redis and generated secret */
    char *redis_server;     /* owned; redis-server binary for the embedded mode */
    enum log_level log_level;
    enum log_format log_format;     /* text or json lines */
    int log_deliveries;             /* successes at info level, not debug */
    size_t max_job_bytes;
    long heartbeat_ttl_ms;
    long shutdown_timeout_ms;
    size_t dead_max;        /* cap of the dead-letter list */
    int poison_after;       /* crashes with a job in flight before it is dead */
    struct backoff_policy retry;    /* retry_schedule, retry_jitter, ... */
    int attempt_log;        /* enum attempt_log */
    size_t attempt_log_max; /* approximate cap of the attempts stream */
    size_t response_capture_bytes;  /* response bytes kept in the log */
    char *ca_file;          /* owned; CA bundle for https, NULL = system default */
    char *ca_path;          /* owned; directory of CA certificates, or NULL */
    char *client_cert;      /* owned; PEM client certificate for mutual TLS */
    char *client_key;       /* owned; its PEM private key */
    size_t max_response_bytes;      /* response bytes read before cutting */
    struct policy_dest dest;        /* deny_private, allow_cidrs, deny_cidrs */
    char *resolve;          /* owned; "host:port:addr,..." pinned resolutions */
    long batch_ttl_ms;      /* lifetime of a Dialgen batch's records */
    long unknown_batch_wait_ms;     /* retry events for unknown batches this long */
    long dedupe_window_ms;  /* ids remembered this long; 0 = no dedupe */
    int breaker;            /* circuit breaker per origin on */
    long breaker_window_ms;         /* failure rate counted over this window */
    int breaker_min_requests;       /* attempts in the window before it may open */
    int breaker_failure_threshold;  /* percent failing that opens it */
    long breaker_cooldown_ms;       /* open this long before a probe (doubling) */
    long breaker_cooldown_max_ms;   /* ... up to this */
    long disable_after_ms;  /* failing this long: disabled; 0 = never */
    size_t events_max;      /* approximate cap of P:events */
    char *ops_webhook_url;  /* owned; endpoint events delivered here, or NULL */
    char *metrics_listen;   /* owned; host:port of the metrics endpoint, or "off" */
};

/* After every source is read: checks between settings, and what is
 * derived from several (the Redis TLS options into addr). Returns 0 or
 * HK_ECONFIG with err saying which setting is wrong. */
int config_finish(struct config *cfg, struct hk_err *err);

/* Move from's Redis settings (the URL, its parsed address with the
 * embedded socket path, the TLS settings) into to, replacing to's, and
 * point the address at to's strings (TLS files, the prefix for Cluster's
 * slot). from keeps none of them. For a reload that keeps the running
 * Redis. */
void config_move_redis(struct config *to, struct config *from);

/* Defaults. The result owns its strings; release with config_free. */
void config_init(struct config *cfg);
void config_free(struct config *cfg);

/* Set one key from text. Returns 0 or HK_ECONFIG with err->msg naming the
 * key and what is wrong. Keys may be written with '-' or '_'. */
int config_set(struct config *cfg, const char *key, const char *value, struct hk_err *err);

/* Read an INI file. Errors name the file, line and key. */
int config_load_file(struct config *cfg, const char *path, struct hk_err *err);

/* Apply every HOOKD_<KEY> variable present in the environment. */
int config_load_env(struct config *cfg, struct hk_err *err);

/* When no secret is configured: read <data_dir>/secret, or create it with a
 * new whsec_ secret (mode 0600). *created tells which happened. */
int config_resolve_secret(struct config *cfg, int *created, struct hk_err *err);

/* Write the key reference (name, default, meaning) for --help. */
void config_print_keys(void);

/* 1 if name is a known key. */
int config_known_key(const char *key);

/* The known key closest to a mistyped one (case and '-' folded), when it
 * is close enough to be the one meant (suggest.h), else NULL. The result
 * is the table's own string. */
const char *config_suggest_key(const char *key);

/* The warning for one environment entry ("NAME=value", as in environ): a
 * HOOKD_ variable that config_load_env does not read and that is not one
 * of hookd's tools' own (the test harness's HOOKD_BIN, ...). Writes
 * "unknown environment variable NAME ignored" into msg (cap bytes), with
 * "; did you mean HOOKD_KEY?" when a key is close, and returns 1; returns
 * 0 for any other entry. */
int config_env_warning(const char *entry, char *msg, size_t cap);

#endif
