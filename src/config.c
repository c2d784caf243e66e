/* config.c -- settings table, INI file (libinih), environment. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hookd/config.h"
#include "hookd/keys.h"
#include "hookd/mem.h"
#include "hookd/parse.h"
#include "hookd/queue.h"
#include "hookd/sign.h"
#include "hookd/suggest.h"

enum kind {
    K_STRING, K_INT, K_DURATION, K_SIZE, K_LEVEL, K_REDIS, K_SECRET, K_PREFIX,
    K_BOOL, K_FRACTION, K_SCHEDULE, K_ATTEMPT_LOG, K_CIDRS, K_RESOLVE, K_TIME, K_LOG_FORMAT,
    K_LISTEN, K_URL, K_RATES,
    K_COUNT                 /* number of kinds, not a kind */
};

struct key {
    const char *name;
    enum kind kind;
    size_t offset;
    long min, max;          /* for K_INT, K_DURATION (ms), K_SIZE */
    const char *dflt;       /* as shown in --help */
    const char *help;
};

#define OFF(f) offsetof(struct config, f)

static const struct key keys[] = {
    { "redis", K_REDIS, OFF(redis), 0, 0, "(embedded)",
      "redis[s]://[:password@]host:port[/db], unix:///path, redis-sentinel://host:port,.../"
      "name or redis-cluster://host:port,...; unset = private redis-server" },
    { "redis_ca_file", K_STRING, OFF(redis_ca_file), 0, 0, "(system)",
      "CA certificates (PEM) a rediss:// server is verified against" },
    { "redis_client_cert", K_STRING, OFF(redis_client_cert), 0, 0, "-",
      "client certificate (PEM) for a Redis that requires one (tls-auth-clients)" },
    { "redis_client_key", K_STRING, OFF(redis_client_key), 0, 0, "-",
      "private key (PEM) of redis_client_cert" },
    { "redis_tls_server_name", K_STRING, OFF(redis_tls_server_name), 0, 0, "(host)",
      "name Redis's certificate must carry, also sent as SNI" },
    { "redis_tls_verify", K_BOOL, OFF(redis_tls_verify), 0, 0, "on",
      "verify Redis's certificate and name (off: test rigs only)" },
    { "redis_wait_replicas", K_INT, OFF(redis_wait_replicas), 0, 16, "0",
      "an outcome counts once this many replicas have it (WAIT); 0 = the primary's word" },
    { "prefix", K_PREFIX, OFF(prefix), 0, 0, "hookd", "prefix of every Redis key" },
    { "workers", K_INT, OFF(workers), 1, 256, "CPUs", "worker processes" },
    { "max_in_flight", K_INT, OFF(max_in_flight), 1, 100000, "1000",
      "concurrent requests per worker (running or waiting for their origin)" },
    { "max_per_host", K_INT, OFF(max_per_host), 1, 100000, "64",
      "connections per origin (scheme://host:port) per worker; HTTP/2 streams not counted" },
    { "rate_limits", K_RATES, OFF(rate_limits), 0, 0, "-",
      "deliveries per origin across all workers and hosts: origin=N/s or N/m,..." },
    { "fetch_batch", K_INT, OFF(fetch_batch), 1, QUEUE_FETCH_MAX, "256",
      "jobs taken from Redis per round trip" },
    { "secret", K_SECRET, OFF(secret), 0, 0, "(generated)",
      "default signing secret; generated into <data_dir>/secret if unset" },
    { "secret_previous", K_SECRET, OFF(secret_previous), 0, 0, "-",
      "old secret during a rotation: webhook-signature also carries its signature" },
    { "secret_previous_until", K_TIME, OFF(secret_previous_until), 0, 0, "-",
      "when secret_previous stops being used (unix seconds or YYYY-MM-DDTHH:MM:SSZ)" },
    { "timeout", K_DURATION, OFF(timeout_ms), 1, 600000, "30s", "timeout of one attempt" },
    { "user_agent", K_STRING, OFF(user_agent), 0, 0, "hookd/" HOOKD_VERSION,
      "user-agent header" },
    { "data_dir", K_STRING, OFF(data_dir), 0, 0, "./var", "embedded Redis data and secret" },
    { "redis_server", K_STRING, OFF(redis_server), 0, 0, "redis-server",
      "redis-server binary for the embedded mode" },
    { "log_level", K_LEVEL, OFF(log_level), 0, 0, "info", "debug, info, warn or error" },
    { "log_format", K_LOG_FORMAT, OFF(log_format), 0, 0, "text",
      "text, or json: one JSON object per line (ts, level, worker, msg, job, ...)" },
    { "log_deliveries", K_BOOL, OFF(log_deliveries), 0, 0, "false",
      "log every successful delivery at info level (else at debug)" },
    { "max_job_bytes", K_SIZE, OFF(max_job_bytes), 64, 64L * 1024 * 1024, "1048576",
      "largest job accepted" },
    { "heartbeat_ttl", K_DURATION, OFF(heartbeat_ttl_ms), 1000, 3600000, "30s",
      "a worker silent this long is presumed dead and its jobs requeued" },
    { "shutdown_timeout", K_DURATION, OFF(shutdown_timeout_ms), 0, 3600000, "30s",
      "how long a stopping worker waits for requests in flight" },
    { "poison_after", K_INT, OFF(poison_after), 1, QUEUE_POISON_MAX, "3",
      "a job in flight in this many workers that died is dead-lettered (worker_crashed)" },
    { "dead_max", K_SIZE, OFF(dead_max), 1, 1L << 40, "100000",
      "dead-letter list cap (oldest trimmed)" },
    { "retry_schedule", K_SCHEDULE, OFF(retry), 0, 0, "1s,5s,25s",
      "delays before each retry; its length is the number of retries" },
    { "retry_jitter", K_FRACTION, OFF(retry.jitter), 0, 0, "0",
      "spread each delay by +-this fraction (0..1)" },
    { "retry_after_max", K_DURATION, OFF(retry.retry_after_max_ms), 0, 86400000, "1h",
      "cap on a 429/503 Retry-After" },
    { "retry_on_4xx", K_BOOL, OFF(retry.retry_on_4xx), 0, 0, "true",
      "retry 4xx answers (410 is never retried; 408 and 429 always are)" },
    { "attempt_log", K_ATTEMPT_LOG, OFF(attempt_log), 0, 0, "failures",
      "attempts written to <prefix>:attempts: failures, all or off" },
    { "attempt_log_max", K_SIZE, OFF(attempt_log_max), 1, 1L << 40, "100000",
      "approximate cap of the attempts stream" },
    { "deny_private", K_BOOL, OFF(dest.deny_private), 0, 0, "false",
      "refuse loopback and private destinations (checked on the connected address)" },
    { "allow_cidrs", K_CIDRS, OFF(dest.allow), 0, 0, "-",
      "destinations always allowed (unless in deny_cidrs), e.g. 10.1.0.0/16" },
    { "deny_cidrs", K_CIDRS, OFF(dest.deny), 0, 0, "-", "destinations always refused" },
    { "resolve", K_RESOLVE, OFF(resolve), 0, 0, "-",
      "pinned name resolutions host:port:address,... (as curl --resolve)" },
    { "ca_file", K_STRING, OFF(ca_file), 0, 0, "(system)",
      "CA certificates (PEM) that https receivers are verified against" },
    { "ca_path", K_STRING, OFF(ca_path), 0, 0, "(system)",
      "directory of CA certificates (c_rehash layout)" },
    { "client_cert", K_STRING, OFF(client_cert), 0, 0, "-",
      "client certificate (PEM) for receivers that require mutual TLS" },
    { "client_key", K_STRING, OFF(client_key), 0, 0, "-", "private key (PEM) of client_cert" },
    { "batch_ttl", K_DURATION, OFF(batch_ttl_ms), 1000, 366L * 86400000, "7d",
      "how long a Dialgen batch (statistics, URLs) is kept after batch.create" },
    { "unknown_batch_wait", K_DURATION, OFF(unknown_batch_wait_ms), 0, 86400000, "60s",
      "an event for an unregistered batch is retried this long, then dead-lettered" },
    { "dedupe_window", K_DURATION, OFF(dedupe_window_ms), 0, 366L * 86400000, "24h",
      "a job or event id seen within this window is not delivered again; 0 = off" },
    { "breaker", K_BOOL, OFF(breaker), 0, 0, "on",
      "circuit breaker per origin, shared by all workers (off = none)" },
    { "breaker_window", K_DURATION, OFF(breaker_window_ms), 1000, 86400000, "5m",
      "window over which an origin's failure rate is counted" },
    { "breaker_min_requests", K_INT, OFF(breaker_min_requests), 1, 1000000, "10",
      "attempts within breaker_window before the breaker may open" },
    { "breaker_failure_threshold", K_INT, OFF(breaker_failure_threshold), 1, 100, "70",
      "percent of attempts failing (timeout, connection, 5xx) that opens it" },
    { "breaker_cooldown", K_DURATION, OFF(breaker_cooldown_ms), 100, 86400000, "30s",
      "open this long before one probe; doubles while the origin keeps failing" },
    { "breaker_cooldown_max", K_DURATION, OFF(breaker_cooldown_max_ms), 100, 86400000, "10m",
      "the longest the cooldown doubles to" },
    { "disable_after", K_DURATION, OFF(disable_after_ms), 0, 366L * 86400000, "5d",
      "an origin failing this long is disabled, its jobs dead; 0 = never" },
    { "events_max", K_SIZE, OFF(events_max), 1, 1L << 40, "10000",
      "approximate cap of the <prefix>:events stream" },
    { "ops_webhook_url", K_URL, OFF(ops_webhook_url), 0, 0, "-",
      "URL every endpoint event is also delivered to, signed; - = none" },
    { "max_response_bytes", K_SIZE, OFF(max_response_bytes), 0, 1L << 30, "65536",
      "response bytes read; a longer answer is cut there (its status still counts)" },
    { "response_capture_bytes", K_SIZE, OFF(response_capture_bytes), 0, 1 << 20, "4096",
      "response body bytes kept in the attempt log" },
    { "metrics_listen", K_LISTEN, OFF(metrics_listen), 0, 0, "127.0.0.1:9464",
      "host:port serving /metrics, /livez, /readyz; off = none" },
};

#define NKEYS (sizeof(keys) / sizeof(*keys))

/* A key as the table spells it: lower case, '_' for '-' (cap bytes). */
static void normalize(const char *name, char *norm, size_t cap)
{
    size_t i;

    for (i = 0; name[i] != '\0' && i < cap - 1; i++)
        norm[i] = name[i] == '-' ? '_' : (char)tolower((unsigned char)name[i]);
    norm[i] = '\0';
}

static const struct key *find_key(const char *name)
{
    char norm[64];

    normalize(name, norm, sizeof(norm));
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, norm) == 0)
            return &keys[i];
    return NULL;
}

int config_known_key(const char *key)
{
    return find_key(key) != NULL;
}

const char *config_suggest_key(const char *name)
{
    char norm[SUGGEST_MAX_LEN + 2];
    struct suggest s;

    normalize(name, norm, sizeof(norm));
    suggest_init(&s, norm);
    for (size_t i = 0; i < NKEYS; i++)
        suggest_consider(&s, keys[i].name);
    return suggest_best(&s);
}

/* Put context in front of err's own message ("key 'redis': <why>"). The
 * message is copied out first: formatting err->msg into itself is undefined
 * behaviour (vsnprintf's source and destination overlap), and glibc really
 * does garble it. */
static int err_prefix(struct hk_err *err, const char *context)
{
    char why[sizeof(err->msg)];

    if (err == NULL)
        return HK_ECONFIG;
    snprintf(why, sizeof(why), "%s", err->msg);
    return hk_err_set(err, HK_ECONFIG, "config", "%s: %s", context, why);
}

/* The setters, one per kind of key. Each parses value, checks it against
 * its row's bounds and stores it in the row's field, or returns HK_ECONFIG
 * with err naming the key. Their messages are part of the interface: tests
 * and operators' scripts match them, so a setter's wording changes only on
 * purpose. */

static void *field_of(struct config *cfg, const struct key *k)
{
    return (char *)cfg + k->offset;
}

/* Replace an owned string field with a copy of value. */
static int store_string(struct config *cfg, const struct key *k, const char *value)
{
    char **p = field_of(cfg, k);

    free(*p);
    *p = xstrdup(value);
    return 0;
}

static int set_string(const struct key *k, const char *value, struct config *cfg,
                      struct hk_err *err)
{
    if (value[0] == '\0')
        return hk_err_set(err, HK_ECONFIG, "config", "key '%s': empty value", k->name);
    return store_string(cfg, k, value);
}

/* [A-Za-z0-9:_.-], or the same in braces: "{orders}", Redis Cluster's
 * hash tag, so that every key of the prefix is on one slot. */
static int valid_prefix(const char *s)
{
    size_t n = strlen(s), from = 0;

    if (n == 0 || n > KEYS_PREFIX_MAX)
        return 0;
    if (s[0] == '{') {
        if (n < 3 || s[n - 1] != '}')
            return 0;
        from = 1;
        n--;
    }
    for (size_t i = from; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && strchr(":_.-", s[i]) == NULL)
            return 0;
    return 1;
}

static int set_prefix(const struct key *k, const char *value, struct config *cfg,
                      struct hk_err *err)
{
    if (!valid_prefix(value))
        return hk_err_set(err, HK_ECONFIG, "config",
                          "key 'prefix': 1-64 characters of [A-Za-z0-9:_.-], "
                          "or such in braces ({name})");
    return store_string(cfg, k, value);
}

/* Both secret keys say "key 'secret'" in their messages, as they always
 * have: the wording is matched by tests, so it stays. */
static int set_secret(const struct key *k, const char *value, struct config *cfg,
                      struct hk_err *err)
{
    if (value[0] == '\0' || strlen(value) > SIGN_SECRET_MAX)
        return hk_err_set(err, HK_ECONFIG, "config",
                          "key 'secret': must be 1..%d bytes", SIGN_SECRET_MAX);
    if (strncmp(value, "whsec_", 6) == 0) {
        unsigned char tmp[SIGN_SECRET_MAX];
        if (sign_base64_decode(value + 6, strlen(value) - 6, tmp, sizeof(tmp)) <= 0)
            return hk_err_set(err, HK_ECONFIG, "config",
                              "key 'secret': text after whsec_ is not valid base64");
    }
    return store_string(cfg, k, value);
}

/* The URL as given and its parsed form (cfg->addr) change together. */
static int set_redis(const struct key *k, const char *value, struct config *cfg,
                     struct hk_err *err)
{
    char **url = field_of(cfg, k);

    if (value[0] == '\0') {     /* explicit empty = embedded */
        free(*url);
        *url = NULL;
        redis_addr_free(&cfg->addr);
        return 0;
    }
    if (redis_addr_parse(value, &cfg->addr, err) < 0)
        return err_prefix(err, "key 'redis'");
    return store_string(cfg, k, value);
}

/* "off", or host:port / [v6]:port: checked here so that a typo is refused
 * at start (and by --check-config), not found by the metrics process. */
static int set_listen(const struct key *k, const char *value, struct config *cfg,
                      struct hk_err *err)
{
    char host[256];
    int port;

    if (strcmp(value, "off") != 0 && parse_host_port(value, host, sizeof(host), &port) < 0)
        return hk_err_set(err, HK_ECONFIG, "config", "key '%s': '%s' is not off, host:port "
                          "or [ipv6]:port with a port of 1..65535", k->name, value);
    return store_string(cfg, k, value);
}

/* A URL hookd will deliver to, checked as a job's url is (an event job
 * for it would otherwise be dead as invalid, each time, found late). At
 * most CONFIG_URL_MAX bytes: HEALTH takes it as an argument. */
static int set_url(const struct key *k, const char *value, struct config *cfg,
                   struct hk_err *err)
{
    char origin[POLICY_URL_MAX];
    struct hk_err why = { "", "" };

    if (strlen(value) > CONFIG_URL_MAX)
        return hk_err_set(err, HK_ECONFIG, "config", "key '%s': a URL of %zu bytes; at most "
                          "%d", k->name, strlen(value), CONFIG_URL_MAX);
    if (policy_check_url(value, strlen(value), origin, sizeof(origin), &why) < 0)
        return hk_err_set(err, HK_ECONFIG, "config", "key '%s': '%s' is not an http(s) URL: "
                          "%s", k->name, value, why.msg);
    return store_string(cfg, k, value);
}

static int set_level(const struct key *k, const char *value, struct config *cfg,
                     struct hk_err *err)
{
    if (log_parse_level(value, field_of(cfg, k)) < 0)
        return hk_err_set(err, HK_ECONFIG, "config",
                          "key 'log_level': '%s' is not debug, info, warn or error", value);
    return 0;
}

static int set_log_format(const struct key *k, const char *value, struct config *cfg,
                          struct hk_err *err)
{
    if (log_parse_format(value, field_of(cfg, k)) < 0)
        return hk_err_set(err, HK_ECONFIG, "config",
                          "key 'log_format': '%s' is not text or json", value);
    return 0;
}

static int set_duration(const struct key *k, const char *value, struct config *cfg,
                        struct hk_err *err)
{
    long v;

    if (parse_duration(value, &v) < 0 || v < k->min || v > k->max)
        return hk_err_set(err, HK_ECONFIG, "config",
                          "key '%s': '%s' is not a duration between %ldms and %lds "
                          "(e.g. 30s, 500ms)", k->name, value, k->min, k->max / 1000);
    *(long *)field_of(cfg, k) = v;
    return 0;
}

static int set_bool(const struct key *k, const char *value, struct config *cfg,
                    struct hk_err *err)
{
    int *field = field_of(cfg, k);

    if (strcasecmp(value, "true") == 0 || strcasecmp(value, "yes") == 0 ||
        strcasecmp(value, "on") == 0 || strcmp(value, "1") == 0)
        *field = 1;
    else if (strcasecmp(value, "false") == 0 || strcasecmp(value, "no") == 0 ||
             strcasecmp(value, "off") == 0 || strcmp(value, "0") == 0)
        *field = 0;
    else
        return hk_err_set(err, HK_ECONFIG, "config",
                          "key '%s': '%s' is not true or false", k->name, value);
    return 0;
}

static int set_fraction(const struct key *k, const char *value, struct config *cfg,
                        struct hk_err *err)
{
    char *end;
    double d = strtod(value, &end);

    if (end == value || *end != '\0' || !(d >= 0 && d <= 1))
        return hk_err_set(err, HK_ECONFIG, "config",
                          "key '%s': '%s' is not a number between 0 and 1", k->name, value);
    *(double *)field_of(cfg, k) = d;
    return 0;
}

static int set_schedule(const struct key *k, const char *value, struct config *cfg,
                        struct hk_err *err)
{
    if (backoff_parse_schedule(value, field_of(cfg, k)) < 0)
        return hk_err_set(err, HK_ECONFIG, "config",
                          "key '%s': '%s' is not a list of up to %d durations "
                          "(e.g. 1s,5s,25s; none for no retries)", k->name, value,
                          BACKOFF_SCHEDULE_MAX);
    return 0;
}

static int set_attempt_log(const struct key *k, const char *value, struct config *cfg,
                           struct hk_err *err)
{
    int *field = field_of(cfg, k);

    if (strcmp(value, "off") == 0)
        *field = ATTEMPT_LOG_OFF;
    else if (strcmp(value, "failures") == 0)
        *field = ATTEMPT_LOG_FAILURES;
    else if (strcmp(value, "all") == 0)
        *field = ATTEMPT_LOG_ALL;
    else
        return hk_err_set(err, HK_ECONFIG, "config",
                          "key 'attempt_log': '%s' is not failures, all or off", value);
    return 0;
}

static int set_time(const struct key *k, const char *value, struct config *cfg,
                    struct hk_err *err)
{
    long long t;

    if (parse_time(value, &t) < 0)
        return hk_err_set(err, HK_ECONFIG, "config",
                          "key '%s': '%s' is not unix seconds nor YYYY-MM-DDTHH:MM:SSZ",
                          k->name, value);
    *(long long *)field_of(cfg, k) = t;
    return 0;
}

/* A list of nets and its length, which lives beside it in cfg->dest. */
static int set_cidrs(const struct key *k, const char *value, struct config *cfg,
                     struct hk_err *err)
{
    struct policy_net **list = field_of(cfg, k), *nets;
    size_t n;

    if (policy_parse_cidrs(value, &nets, &n) < 0)
        return hk_err_set(err, HK_ECONFIG, "config",
                          "key '%s': '%s' is not a list of addresses or CIDRs", k->name,
                          value);
    free(*list);
    *list = nets;
    if (list == &cfg->dest.allow)
        cfg->dest.nallow = n;
    else
        cfg->dest.ndeny = n;
    return 0;
}

/* host:port:address[,...]; the address may be [v6]. Only the shape is
 * checked here: the string is handed to libcurl as it is. */
static int valid_resolve(const char *value)
{
    char *copy = xstrdup(value), *tok, *save = NULL;
    int ok = 1;

    for (tok = strtok_r(copy, ", ", &save); tok != NULL && ok; tok = strtok_r(NULL, ", ", &save)) {
        char *c1 = strchr(tok, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        long port = c1 ? strtol(c1 + 1, NULL, 10) : 0;
        ok = c1 != NULL && c1 != tok && c2 != NULL && c2[1] != '\0' && port > 0 &&
             port < 65536;
    }
    free(copy);
    return ok;
}

static int set_resolve(const struct key *k, const char *value, struct config *cfg,
                       struct hk_err *err)
{
    if (!valid_resolve(value))
        return hk_err_set(err, HK_ECONFIG, "config",
                          "key 'resolve': '%s' is not host:port:address[,...]", value);
    return store_string(cfg, k, value);
}

/* "N/s" or "N/m" (N at most RATE_MAX per second) as the spacing of
 * deliveries in microseconds, rounded up so the limit is never exceeded;
 * -1 for anything else. */
#define RATE_MAX 1000000L
static long rate_interval(const char *v)
{
    char *end;
    long n, per;

    if (!isdigit((unsigned char)v[0]))
        return -1;
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno != 0 || n < 1 || end[0] != '/' || (end[1] != 's' && end[1] != 'm') ||
        end[2] != '\0')
        return -1;
    per = end[1] == 's' ? 1000000L : 60000000L;
    if (n > RATE_MAX * (per / 1000000L))
        return -1;
    return (per + n - 1) / n;
}

/* One "origin=rate" entry into r; a message naming it into err. */
static int parse_rate_entry(const char *tok, struct config_rate *r, struct hk_err *err)
{
    const char *eq = strrchr(tok, '=');
    struct hk_err uerr;
    char given[POLICY_ORIGIN_MAX], origin[POLICY_ORIGIN_MAX];
    size_t len = eq != NULL ? (size_t)(eq - tok) : 0;

    if (eq == NULL || len == 0 || len >= sizeof(r->origin))
        return hk_err_set(err, HK_ECONFIG, "config", "key 'rate_limits': entry '%s' is not "
                          "origin=N/s or origin=N/m", tok);
    memcpy(given, tok, len);
    given[len] = '\0';
    if (policy_check_url(given, len, origin, sizeof(origin), &uerr) < 0 ||
        strcmp(origin, given) != 0)
        return hk_err_set(err, HK_ECONFIG, "config", "key 'rate_limits': entry '%s': '%.*s' "
                          "is not an origin as hookd writes it (scheme://host:port, lowercase, "
                          "port included, no path)", tok, (int)len, tok);
    if ((r->interval_us = rate_interval(eq + 1)) < 0)
        return hk_err_set(err, HK_ECONFIG, "config", "key 'rate_limits': entry '%s': '%s' is "
                          "not N/s or N/m with N from 1 to %ld per second", tok, eq + 1,
                          RATE_MAX);
    memcpy(r->origin, origin, len + 1);
    return 0;
}

static int set_rates(const struct key *k, const char *value, struct config *cfg,
                     struct hk_err *err)
{
    char *copy = xstrdup(value), *tok, *save = NULL;
    struct config_rate *list = NULL;
    size_t n = 0;
    int rc = 0;

    (void)k;
    for (tok = strtok_r(copy, ", ", &save); tok != NULL && rc == 0;
         tok = strtok_r(NULL, ", ", &save)) {
        list = xrealloc(list, (n + 1) * sizeof(*list));
        rc = parse_rate_entry(tok, &list[n++], err);
    }
    free(copy);
    if (rc < 0) {
        free(list);
        return rc;
    }
    free(cfg->rate_limits);
    cfg->rate_limits = list;
    cfg->nrate_limits = n;
    return 0;
}

/* K_INT and K_SIZE: a whole number within the row's bounds. */
static int parse_bounded(const struct key *k, const char *value, long *v, struct hk_err *err)
{
    if (parse_long(value, v) < 0 || *v < k->min || *v > k->max)
        return hk_err_set(err, HK_ECONFIG, "config",
                          "key '%s': '%s' is not an integer in [%ld, %ld]", k->name,
                          value, k->min, k->max);
    return 0;
}

static int set_int(const struct key *k, const char *value, struct config *cfg,
                   struct hk_err *err)
{
    long v;

    if (parse_bounded(k, value, &v, err) < 0)
        return HK_ECONFIG;
    *(int *)field_of(cfg, k) = (int)v;
    return 0;
}

static int set_size(const struct key *k, const char *value, struct config *cfg,
                    struct hk_err *err)
{
    long v;

    if (parse_bounded(k, value, &v, err) < 0)
        return HK_ECONFIG;
    *(size_t *)field_of(cfg, k) = (size_t)v;
    return 0;
}

/* What each kind of key does: its setter, and whether its field is a
 * string the config owns (config_free releases those). Indexed by kind;
 * a kind added without a row here fails the check below, or (in the
 * middle of the enum) crashes config_init in every test run. */
static const struct kind_ops {
    int (*set)(const struct key *k, const char *value, struct config *cfg, struct hk_err *err);
    int owns_string;
} kinds[] = {
    [K_STRING] = { set_string, 1 },     [K_INT] = { set_int, 0 },
    [K_DURATION] = { set_duration, 0 }, [K_SIZE] = { set_size, 0 },
    [K_LEVEL] = { set_level, 0 },       [K_REDIS] = { set_redis, 1 },
    [K_SECRET] = { set_secret, 1 },     [K_PREFIX] = { set_prefix, 1 },
    [K_BOOL] = { set_bool, 0 },         [K_FRACTION] = { set_fraction, 0 },
    [K_SCHEDULE] = { set_schedule, 0 }, [K_ATTEMPT_LOG] = { set_attempt_log, 0 },
    [K_CIDRS] = { set_cidrs, 0 },       [K_RESOLVE] = { set_resolve, 1 },
    [K_TIME] = { set_time, 0 },         [K_LOG_FORMAT] = { set_log_format, 0 },
    [K_LISTEN] = { set_listen, 1 },     [K_URL] = { set_url, 1 },
    [K_RATES] = { set_rates, 0 },
};
_Static_assert(sizeof(kinds) / sizeof(*kinds) == K_COUNT, "a kind without its setter");

int config_set(struct config *cfg, const char *name, const char *value, struct hk_err *err)
{
    const struct key *k = find_key(name);

    if (k == NULL) {
        const char *near = config_suggest_key(name);
        if (near != NULL)
            return hk_err_set(err, HK_ECONFIG, "config",
                              "unknown key '%s'; did you mean '%s'?", name, near);
        return hk_err_set(err, HK_ECONFIG, "config", "unknown key '%s'", name);
    }
    return kinds[k->kind].set(k, value, cfg, err);
}

/* Every default is the table's dflt, parsed by config_set: the value --help
 * and the README show is the value hookd runs with, and the two cannot drift
 * (they once did, silently, for retry_schedule). A dflt in parentheses or
 * "-" means unset; the worker count is the machine's. */
void config_init(struct config *cfg)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    struct hk_err err;

    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NKEYS; i++) {
        const char *d = keys[i].dflt;

        if (d[0] == '(' || strcmp(d, "-") == 0 || strcmp(keys[i].name, "workers") == 0)
            continue;
        if (config_set(cfg, keys[i].name, d, &err) != 0) {
            /* A table row whose default its own parser refuses: a bug that
             * every test run hits at once. */
            fprintf(stderr, "hookd: default of %s: %s\n", keys[i].name, err.msg);
            abort();
        }
    }
    cfg->workers = cpus > 0 ? (int)(cpus > 256 ? 256 : cpus) : 1;
}

void config_free(struct config *cfg)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (kinds[keys[i].kind].owns_string) {
            char **p = field_of(cfg, &keys[i]);
            free(*p);
            *p = NULL;
        }
    }
    redis_addr_free(&cfg->addr);
    free(cfg->dest.allow);
    free(cfg->dest.deny);
    cfg->dest.allow = cfg->dest.deny = NULL;
    free(cfg->rate_limits);
    cfg->rate_limits = NULL;
    cfg->nrate_limits = 0;
}

/* inih does not tell a handler the line it is on, nor call it for a
 * section header (INI_CALL_HANDLER_ON_NEW_SECTION is off in Debian's
 * build). A header followed by no key was accepted, and one followed by a
 * key was reported on the key's line. So hookd feeds inih its lines itself
 * (ini_parse_stream), counting them, and refuses a header on the line it
 * is on, keys or not. */
struct ini_state {
    struct config *cfg;
    struct hk_err *err;
    FILE *f;
    int line;               /* lines read so far */
    int failed;             /* err holds the first error */
    int failed_line;        /* its line */
};

static void ini_fail(struct ini_state *st, const struct hk_err *e)
{
    if (st->failed)
        return;
    *st->err = *e;
    st->failed = 1;
    st->failed_line = st->line;
}

/* A line inih would take for a section header: '[' first after blanks (and
 * line 1's UTF-8 byte order mark), and a ']' after it. Also catches an
 * indented one that inih reads as the continuation of a value: a value
 * starting with '[' on its own line is a header gone astray, not a value
 * any key takes. */
static int section_header(struct ini_state *st, const char *s)
{
    const char *close;
    struct hk_err e;

    if (st->line == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3;
    s += strspn(s, " \t");
    if (*s != '[' || (close = strchr(s, ']')) == NULL)
        return 0;
    hk_err_set(&e, HK_ECONFIG, "config", "sections are not supported ([%.*s])",
               (int)(close - s - 1), s + 1);
    ini_fail(st, &e);
    return 1;
}

/* A line that does not fit inih's buffer (num bytes, its NUL included:
 * INI_MAX_LINE, 200 in Debian's libinih, fixed when it was built). inih
 * would read the rest as lines of their own, after taking the cut value:
 * refused instead, naming the way around it. */
static int too_long(struct ini_state *st, const char *s, int num)
{
    size_t len = strlen(s);
    struct hk_err e;
    int next;

    if (len + 1 < (size_t)num || s[len - 1] == '\n')
        return 0;
    if ((next = getc(st->f)) == EOF || next == '\n')
        return 0;                   /* exactly full: its newline, if any, read here */
    ungetc(next, st->f);
    hk_err_set(&e, HK_ECONFIG, "config",
               "longer than %d bytes, the most a line may hold here; set that key "
               "with its --option or HOOKD_ environment variable instead", num - 1);
    ini_fail(st, &e);
    return 1;
}

/* fgets for inih, counting lines and ending the file at a section header
 * or a line too long. */
static char *read_line(char *str, int num, void *stream)
{
    struct ini_state *st = stream;

    if (fgets(str, num, st->f) == NULL)
        return NULL;
    st->line++;
    if (section_header(st, str) || too_long(st, str, num))
        return NULL;
    return str;
}

/* No section reaches here: read_line stops at the first header. */
static int on_ini_pair(void *user, const char *section, const char *name, const char *value)
{
    struct ini_state *st = user;
    struct hk_err e;

    (void)section;
    if (config_set(st->cfg, name, value, &e) == 0)
        return 1;
    ini_fail(st, &e);
    return 0;
}

int config_load_file(struct config *cfg, const char *path, struct hk_err *err)
{
    struct ini_state st = { cfg, err, NULL, 0, 0, 0 };
    struct hk_err e;
    int line;

    if (err == NULL)
        st.err = &e;
    if ((st.f = fopen(path, "r")) == NULL)
        return hk_err_set(err, HK_ECONFIG, "config", "%s: cannot open: %s", path,
                          strerror(errno));
    line = ini_parse_stream(read_line, &st, on_ini_pair, &st);
    fclose(st.f);
    /* the first error wins (inih counts reads, which are lines: a longer
     * one is refused) */
    if (st.failed && (line == 0 || st.failed_line <= line)) {
        char msg[sizeof(e.msg)];
        snprintf(msg, sizeof(msg), "%s", st.err->msg);
        return hk_err_set(err, HK_ECONFIG, "config", "%s line %d: %s", path, st.failed_line,
                          msg);
    }
    if (line != 0)
        return hk_err_set(err, HK_ECONFIG, "config", "%s line %d: syntax error", path, line);
    return 0;
}

int config_load_env(struct config *cfg, struct hk_err *err)
{
    char var[80];

    for (size_t i = 0; i < NKEYS; i++) {
        size_t j;
        const char *v;
        memcpy(var, "HOOKD_", 6);
        for (j = 0; keys[i].name[j] != '\0'; j++)
            var[6 + j] = (char)toupper((unsigned char)keys[i].name[j]);
        var[6 + j] = '\0';
        if ((v = getenv(var)) == NULL)
            continue;
        if (config_set(cfg, keys[i].name, v, err) < 0) {
            char context[96];
            snprintf(context, sizeof(context), "environment %s", var);
            return err_prefix(err, context);
        }
    }
    return 0;
}

/* HOOKD_ variables that are not settings but are in hookd's environment
 * when its own tools run it: the test harness and bench read HOOKD_BIN,
 * HOOKD_REAL_BIN (valgrind wrapper), HOOKD_LUA_DIR and HOOKD_KEEP, the
 * model test HOOKD_MODEL_*. Every other unknown HOOKD_ name is warned
 * about, not only those close to a key: HOOKD_REDIS_URL is close to no
 * key and is exactly the mistake to report. This list is what keeps the
 * tests' logs free of warnings; a tool reading a new HOOKD_ variable adds
 * it here. */
static const char *const tool_vars[] = {
    "HOOKD_BIN", "HOOKD_REAL_BIN", "HOOKD_LUA_DIR", "HOOKD_KEEP",
    "HOOKD_MODEL_SEED", "HOOKD_MODEL_STEPS", "HOOKD_MODEL_TRACE",
};

/* 1 if HOOKD_<name> (name len bytes) is read by config_load_env: the key
 * in upper case, '_' only. */
static int env_is_setting(const char *name, size_t len)
{
    char key[64];

    if (len >= sizeof(key))
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (islower((unsigned char)name[i]) || name[i] == '-')
            return 0;
        key[i] = name[i];
    }
    key[len] = '\0';
    return find_key(key) != NULL;
}

int config_env_warning(const char *entry, char *msg, size_t cap)
{
    const char *eq = strchr(entry, '=');
    size_t len = eq != NULL ? (size_t)(eq - entry) : strlen(entry);
    char name[SUGGEST_MAX_LEN + 8], upper[SUGGEST_MAX_LEN + 2];
    const char *near;
    size_t i;

    if (strncmp(entry, "HOOKD_", 6) != 0 || env_is_setting(entry + 6, len - 6))
        return 0;
    snprintf(name, sizeof(name), "%.*s", (int)len, entry);
    for (i = 0; i < sizeof(tool_vars) / sizeof(*tool_vars); i++)
        if (strcmp(name, tool_vars[i]) == 0)
            return 0;
    near = config_suggest_key(name + 6);
    if (near == NULL) {
        snprintf(msg, cap, "unknown environment variable %.*s ignored", (int)len, entry);
        return 1;
    }
    for (i = 0; near[i] != '\0' && i < sizeof(upper) - 1; i++)
        upper[i] = (char)toupper((unsigned char)near[i]);
    upper[i] = '\0';
    snprintf(msg, cap, "unknown environment variable %.*s ignored; did you mean HOOKD_%s?",
             (int)len, entry, upper);
    return 1;
}

static void move_string(char **to, char **from)
{
    free(*to);
    *to = *from;
    *from = NULL;
}

void config_move_redis(struct config *to, struct config *from)
{
    move_string(&to->redis, &from->redis);
    move_string(&to->redis_ca_file, &from->redis_ca_file);
    move_string(&to->redis_client_cert, &from->redis_client_cert);
    move_string(&to->redis_client_key, &from->redis_client_key);
    move_string(&to->redis_tls_server_name, &from->redis_tls_server_name);
    to->redis_tls_verify = from->redis_tls_verify;
    redis_addr_free(&to->addr);
    to->addr = from->addr;
    memset(&from->addr, 0, sizeof(from->addr));
    to->addr.tls_opts.ca_file = to->redis_ca_file;
    to->addr.tls_opts.client_cert = to->redis_client_cert;
    to->addr.tls_opts.client_key = to->redis_client_key;
    to->addr.tls_opts.server_name = to->redis_tls_server_name;
    to->addr.slot_key = to->prefix;
}

/* The TLS settings are for rediss:// alone: set for a plain or embedded
 * Redis they would be ignored, and an operator who set them expects TLS.
 * With Redis Cluster the prefix gets its hash tag here, after every source
 * has had its say. */
int config_finish(struct config *cfg, struct hk_err *err)
{
    struct redis_tls_opts *o = &cfg->addr.tls_opts;
    const char *set = cfg->redis_ca_file ? "redis_ca_file"
                    : cfg->redis_client_cert ? "redis_client_cert"
                    : cfg->redis_client_key ? "redis_client_key"
                    : cfg->redis_tls_server_name ? "redis_tls_server_name" : NULL;

    o->ca_file = cfg->redis_ca_file;
    o->client_cert = cfg->redis_client_cert;
    o->client_key = cfg->redis_client_key;
    o->server_name = cfg->redis_tls_server_name;
    o->verify = cfg->redis_tls_verify;
    if (!cfg->addr.tls && set != NULL)
        return hk_err_set(err, HK_ECONFIG, "config",
                          "key '%s' is set, but redis is not a rediss:// URL", set);
    if (cfg->addr.kind == REDIS_CLUSTER && cfg->prefix[0] != '{') {
        /* Every key on one slot, so that every script runs on one node. */
        char tagged[KEYS_PREFIX_MAX + 3];
        if (strlen(cfg->prefix) + 2 > KEYS_PREFIX_MAX)
            return hk_err_set(err, HK_ECONFIG, "config",
                              "key 'prefix': at most %d characters with Redis Cluster, "
                              "which puts it in braces", KEYS_PREFIX_MAX - 2);
        snprintf(tagged, sizeof(tagged), "{%s}", cfg->prefix);
        free(cfg->prefix);
        cfg->prefix = xstrdup(tagged);
    }
    cfg->addr.slot_key = cfg->prefix;
    return 0;
}

int config_resolve_secret(struct config *cfg, int *created, struct hk_err *err)
{
    char path[4096], secret[SIGN_SECRET_MAX + 2];
    FILE *f;
    int fd;

    *created = 0;
    if (cfg->secret != NULL)
        return 0;
    snprintf(path, sizeof(path), "%s/secret", cfg->data_dir);
    if ((f = fopen(path, "r")) != NULL) {
        size_t n = fread(secret, 1, sizeof(secret) - 1, f);
        fclose(f);
        secret[n] = '\0';
        secret[strcspn(secret, "\r\n")] = '\0';
        if (secret[0] == '\0')
            return hk_err_set(err, HK_ECONFIG, "config", "%s is empty", path);
        return config_set(cfg, "secret", secret, err) < 0 ? err_prefix(err, path) : 0;
    }
    if (errno != ENOENT)
        return hk_err_set(err, HK_ECONFIG, "config", "cannot read %s: %s", path,
                          strerror(errno));
    if (sign_generate_secret(secret, sizeof(secret)) < 0)
        return hk_err_set(err, HK_ECRYPTO, "config", "cannot generate a secret");
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return hk_err_set(err, HK_ECONFIG, "config", "cannot create %s: %s", path,
                          strerror(errno));
    size_t len = strlen(secret);
    secret[len] = '\n';
    if (write(fd, secret, len + 1) != (ssize_t)(len + 1) || fsync(fd) < 0) {
        close(fd);
        unlink(path);
        return hk_err_set(err, HK_ECONFIG, "config", "cannot write %s", path);
    }
    close(fd);
    secret[len] = '\0';
    *created = 1;
    return config_set(cfg, "secret", secret, err);
}

void config_print_keys(void)
{
    for (size_t i = 0; i < NKEYS; i++)
        printf("  %-22s %-12s %s\n", keys[i].name, keys[i].dflt, keys[i].help);
}
