/* cli_endpoints.c -- hookd endpoints [--json], hookd endpoints enable|disable
 * ORIGIN: what hookd holds back per origin, and the operator's switch.
 *
 * The list is read with plain commands, not one script: it is for people,
 * and an origin that changes state between two reads shows one state or
 * the other, never a half. Every origin in P:endpoints (breaker open,
 * half_open, disabled), P:throttled (a member scored after now) or
 * P:parked is one row. Enable and disable are ENDPOINT_SET, atomic. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/buf.h"
#include "hookd/cli_endpoints.h"
#include "hookd/cli_table.h"
#include "hookd/json.h"
#include "hookd/mem.h"
#include "hookd/policy.h"
#include "hookd/queue.h"
#include "hookd/timeutil.h"

#define ORIGINS_MAX 100000  /* rows read from each key; more is a runaway, not a fleet */

struct row {
    char origin[QUEUE_ORIGIN_MAX + 1];
    char breaker[QUEUE_STATE_MAX];  /* the record's state; "closed" when none */
    char reason[128];               /* the record's, "" when none */
    int throttled;                  /* a P:throttled member scored after now */
    int parked;                     /* in P:parked */
    long long throttled_until;      /* ms */
    long long jobs;                 /* LLEN P:parked:<origin> */
    long long attempts, failures;   /* the record's totals */
    long long since, due;           /* the record's, ms */
    double rate;                    /* failure rate 0..1 */
};

struct rows {
    struct row *v;
    size_t n, cap;
};

static struct row *row_add(struct rows *rs, const char *origin, size_t len)
{
    struct row *r;

    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? 2 * rs->cap : 16;
        rs->v = xrealloc(rs->v, rs->cap * sizeof(*rs->v));
    }
    r = &rs->v[rs->n++];
    memset(r, 0, sizeof(*r));
    snprintf(r->origin, sizeof(r->origin), "%.*s", (int)len, origin);
    snprintf(r->breaker, sizeof(r->breaker), "closed");
    return r;
}

static int by_origin(const void *a, const void *b)
{
    return strcmp(((const struct row *)a)->origin, ((const struct row *)b)->origin);
}

/* Sort by origin and fold the rows one origin got from each key into one. */
static void rows_merge(struct rows *rs)
{
    size_t out = 0;

    if (rs->n == 0)         /* rs->v is NULL: qsort must not see it */
        return;
    qsort(rs->v, rs->n, sizeof(*rs->v), by_origin);
    for (size_t i = 0; i < rs->n; i++) {
        const struct row *r = &rs->v[i];
        struct row *last = out > 0 ? &rs->v[out - 1] : NULL;
        if (last == NULL || strcmp(last->origin, r->origin) != 0) {
            rs->v[out++] = *r;
            continue;
        }
        last->parked |= r->parked;
        if (r->throttled) {
            last->throttled = 1;
            last->throttled_until = r->throttled_until;
        }
    }
    rs->n = out;
}

/* The state shown: the one that holds jobs back most. */
static const char *row_state(const struct row *r)
{
    if (strcmp(r->breaker, "closed") != 0)
        return r->breaker;
    return r->throttled ? "throttled" : r->parked ? "parked" : "closed";
}

/* Rows most held back first (disabled, open, half_open, throttled,
 * parked), then by origin. */
static int by_state(const void *a, const void *b)
{
    static const char *const order[] = { "disabled", "open", "half_open", "throttled",
                                         "parked", "closed" };
    const struct row *x = a, *y = b;
    int rx = 0, ry = 0;

    while (rx < 5 && strcmp(order[rx], row_state(x)) != 0)
        rx++;
    while (ry < 5 && strcmp(order[ry], row_state(y)) != 0)
        ry++;
    return rx != ry ? rx - ry : strcmp(x->origin, y->origin);
}

/* ---- reading -------------------------------------------------------------- */

static struct redisReply *command(struct redis_sync *s, struct hk_err *err, int argc,
                                  const char **argv)
{
    return redis_sync_command(s, argc, argv, NULL, err);
}

static long long redis_now(struct redis_sync *s, struct hk_err *err)
{
    const char *argv[] = { "TIME" };
    struct redisReply *r = command(s, err, 1, argv);
    const char *sec, *usec;
    long long now;

    if (r == NULL)
        return -1;
    sec = redis_reply_str(redis_reply_element(r, 0), NULL);
    usec = redis_reply_str(redis_reply_element(r, 1), NULL);
    now = sec && usec ? atoll(sec) * 1000 + atoll(usec) / 1000 : -1;
    redis_reply_free(r);
    if (now < 0)
        hk_err_set(err, HK_EREDIS, "redis", "redis TIME: unexpected reply");
    return now;
}

/* One row per origin in P:endpoints, P:parked and P:throttled (scored
 * after now), sorted by origin. */
static int collect(struct redis_sync *s, const struct keys *k, long long now, struct rows *rs,
                   struct hk_err *err)
{
    char from[32], stop[24];
    const char *hall[] = { "HKEYS", k->endpoints };
    const char *park[] = { "ZRANGE", k->parked, "0", stop };
    const char *thr[] = { "ZRANGEBYSCORE", k->throttled, from, "+inf", "WITHSCORES",
                          "LIMIT", "0", stop };
    struct redisReply *r;
    size_t len;

    snprintf(from, sizeof(from), "(%lld", now);
    snprintf(stop, sizeof(stop), "%d", ORIGINS_MAX - 1);
    if ((r = command(s, err, 2, hall)) == NULL)
        return -1;
    for (size_t i = 0; i < redis_reply_elements(r) && i < ORIGINS_MAX; i++) {
        const char *o = redis_reply_str(redis_reply_element(r, i), &len);
        if (o != NULL)
            row_add(rs, o, len);
    }
    redis_reply_free(r);
    if ((r = command(s, err, 4, park)) == NULL)
        return -1;
    for (size_t i = 0; i < redis_reply_elements(r); i++) {
        const char *o = redis_reply_str(redis_reply_element(r, i), &len);
        if (o != NULL)
            row_add(rs, o, len)->parked = 1;
    }
    redis_reply_free(r);
    snprintf(stop, sizeof(stop), "%d", ORIGINS_MAX);
    if ((r = command(s, err, 8, thr)) == NULL)
        return -1;
    for (size_t i = 0; i + 1 < redis_reply_elements(r); i += 2) {
        const char *o = redis_reply_str(redis_reply_element(r, i), &len);
        const char *score = redis_reply_str(redis_reply_element(r, i + 1), NULL);
        if (o == NULL)
            continue;
        struct row *w = row_add(rs, o, len);
        w->throttled = 1;
        w->throttled_until = score ? atoll(score) : 0;
    }
    redis_reply_free(r);
    rows_merge(rs);
    return 0;
}

static long long field(const struct redisReply *r, size_t i)
{
    const char *v = redis_reply_str(redis_reply_element(r, i), NULL);
    return v ? atoll(v) : 0;
}

/* The failure rate shown: for an origin whose breaker is not closed, the
 * rate at its last transition (no attempt is counted while it is open);
 * for a closed one, the sliding window's as HEALTH computes it (the
 * previous window's counts fading out linearly). */
static double failure_rate(const struct redisReply *h, int closed, long long now,
                           long window)
{
    long long win_start = field(h, 2), n, f;
    double w, pn = (double)field(h, 5), pf = (double)field(h, 6);

    if (!closed)
        return (double)field(h, 11) / 1000.0;
    n = field(h, 3);
    f = field(h, 4);
    if (win_start == 0 || now - win_start >= 2 * window)
        return 0;
    if (now - win_start >= window) {
        pn = (double)n, pf = (double)f, n = 0, f = 0;
        win_start += window;
    }
    w = 1.0 - (double)(now - win_start) / (double)window;
    return pn * w + (double)n > 0 ? (pf * w + (double)f) / (pn * w + (double)n) : 0;
}

/* Each row's record (P:endpoint:<origin>) and parked jobs. */
static int fill(struct redis_sync *s, const struct keys *k, long long now, long window,
                struct rows *rs, struct hk_err *err)
{
    char key[KEYS_MAX + QUEUE_ORIGIN_MAX + 2];
    const char *hm[] = { "HMGET", key, "state", "reason", "win_start", "cur_n", "cur_f",
                         "prev_n", "prev_f", "attempts", "failures", "since", "due", "rate" };
    const char *ll[] = { "LLEN", key };

    for (size_t i = 0; i < rs->n; i++) {
        struct row *w = &rs->v[i];
        struct redisReply *h;
        size_t len;
        const char *v;

        snprintf(key, sizeof(key), "%s:%s", k->endpoint, w->origin);
        if ((h = command(s, err, 14, hm)) == NULL)
            return -1;
        if ((v = redis_reply_str(redis_reply_element(h, 0), &len)) != NULL)
            snprintf(w->breaker, sizeof(w->breaker), "%.*s", (int)len, v);
        if ((v = redis_reply_str(redis_reply_element(h, 1), &len)) != NULL)
            snprintf(w->reason, sizeof(w->reason), "%.*s", (int)len, v);
        w->attempts = field(h, 7);
        w->failures = field(h, 8);
        w->since = field(h, 9);
        w->due = field(h, 10);
        w->rate = failure_rate(h, strcmp(w->breaker, "closed") == 0, now, window);
        redis_reply_free(h);
        if (w->parked && keys_parked_list(k, w->origin, key, sizeof(key)) >= 0) {
            if ((h = command(s, err, 2, ll)) == NULL)
                return -1;
            w->jobs = redis_reply_integer(h);
            redis_reply_free(h);
        }
    }
    return 0;
}

/* ---- printing ------------------------------------------------------------- */

static void iso_or_dash(long long ms, char out[TIME_ISO_LEN + 1])
{
    if (ms > 0)
        time_format_iso(ms, out);
    else
        snprintf(out, TIME_ISO_LEN + 1, "-");
}

static void json_time(struct buf *b, const char *name, long long ms)
{
    char iso[TIME_ISO_LEN + 1];

    if (ms <= 0) {
        buf_printf(b, ",\"%s\":null", name);
        return;
    }
    time_format_iso(ms, iso);
    buf_printf(b, ",\"%s\":\"%s\"", name, iso);
}

/* One object per row; the keys are README's (hookd endpoints --json). */
static void print_json(const struct rows *rs)
{
    struct buf b = BUF_INIT;

    buf_append_char(&b, '[');
    for (size_t i = 0; i < rs->n; i++) {
        const struct row *w = &rs->v[i];
        int closed = strcmp(w->breaker, "closed") == 0;
        buf_append_str(&b, i ? ",\n{\"origin\":" : "{\"origin\":");
        json_write_string(&b, w->origin, strlen(w->origin));
        buf_printf(&b, ",\"state\":\"%s\",\"breaker\":\"%s\",\"throttled\":%s", row_state(w),
                   w->breaker, w->throttled ? "true" : "false");
        json_time(&b, "throttled_until", w->throttled ? w->throttled_until : 0);
        buf_printf(&b, ",\"parked\":%lld,\"failure_rate\":%.3f,\"attempts\":%lld,"
                   "\"failures\":%lld", w->jobs, w->rate, w->attempts, w->failures);
        json_time(&b, "since", closed ? 0 : w->since);
        json_time(&b, "next_probe", strcmp(w->breaker, "open") == 0 ? w->due : 0);
        buf_append_str(&b, ",\"reason\":");
        json_write_string(&b, w->reason, strlen(w->reason));
        buf_append_char(&b, '}');
    }
    buf_append_str(&b, "]\n");
    fwrite(b.data, 1, b.len, stdout);
    buf_free(&b);
}

#define NCOLS 8

static void table_row(const char *cols[NCOLS], const int w[NCOLS], const char *reason,
                      size_t columns)
{
    struct buf line = BUF_INIT;

    buf_printf(&line, "%-*s  %-*s  %*s  %*s  %*s  %*s  %-*s  %-*s  ", w[0], cols[0], w[1],
               cols[1], w[2], cols[2], w[3], cols[3], w[4], cols[4], w[5], cols[5], w[6],
               cols[6], w[7], cols[7]);
    table_append_cut(&line, line.len, columns, reason, strlen(reason));
    buf_append_char(&line, '\n');
    fwrite(line.data, 1, line.len, stdout);
    buf_free(&line);
}

struct cells {
    char rate[16], attempts[24], failures[24], jobs[24];
    char since[TIME_ISO_LEN + 1], probe[TIME_ISO_LEN + 1];
};

static void cells_fill(struct cells *c, const struct row *w)
{
    snprintf(c->rate, sizeof(c->rate), "%.0f%%", w->rate * 100);
    snprintf(c->attempts, sizeof(c->attempts), "%lld", w->attempts);
    snprintf(c->failures, sizeof(c->failures), "%lld", w->failures);
    snprintf(c->jobs, sizeof(c->jobs), "%lld", w->jobs);
    iso_or_dash(strcmp(w->breaker, "closed") != 0 ? w->since : 0, c->since);
    iso_or_dash(strcmp(w->breaker, "open") == 0 ? w->due : 0, c->probe);
}

/* The human table, like dlq list's: columns as wide as their longest
 * value, the reason cut to what is left of the line. */
static void print_table(const struct rows *rs)
{
    const char *head[NCOLS] = { "ORIGIN", "STATE", "FAILED", "ATTEMPTS", "FAILURES", "PARKED",
                                "SINCE", "NEXT PROBE" };
    struct cells *c = xcalloc(rs->n + 1, sizeof(*c));
    size_t columns = table_columns();
    int w[NCOLS];

    for (int j = 0; j < NCOLS; j++)
        w[j] = (int)strlen(head[j]);
    for (size_t i = 0; i < rs->n; i++) {
        cells_fill(&c[i], &rs->v[i]);
        const char *v[NCOLS] = { rs->v[i].origin, row_state(&rs->v[i]), c[i].rate,
                                 c[i].attempts, c[i].failures, c[i].jobs, c[i].since,
                                 c[i].probe };
        for (int j = 0; j < NCOLS; j++)
            w[j] = (int)strlen(v[j]) > w[j] ? (int)strlen(v[j]) : w[j];
    }
    table_row(head, w, "REASON", columns);
    for (size_t i = 0; i < rs->n; i++) {
        const char *v[NCOLS] = { rs->v[i].origin, row_state(&rs->v[i]), c[i].rate,
                                 c[i].attempts, c[i].failures, c[i].jobs, c[i].since,
                                 c[i].probe };
        table_row(v, w, rs->v[i].reason[0] ? rs->v[i].reason : "-", columns);
    }
    free(c);
}

int cli_endpoints_list(struct redis_sync *s, const struct keys *k,
                       const struct cli_endpoints_opts *a, struct hk_err *err)
{
    struct rows rs = { NULL, 0, 0 };
    long long now = redis_now(s, err);
    int rc = 1;

    if (now < 0 || collect(s, k, now, &rs, err) < 0 ||
        fill(s, k, now, a->cfg->breaker_window_ms, &rs, err) < 0)
        goto out;
    if (rs.n > 0)
        qsort(rs.v, rs.n, sizeof(*rs.v), by_state);
    if (a->json)
        print_json(&rs);
    else
        print_table(&rs);
    rc = 0;
out:
    free(rs.v);
    return rc;
}

/* ---- enable / disable ----------------------------------------------------- */

/* ORIGIN as hookd computes origins, from an origin or any URL of it; 2
 * (usage, said) when it is neither. */
static int origin_arg(const struct cli_endpoints_opts *a, char origin[POLICY_ORIGIN_MAX])
{
    struct hk_err why = { "", "" };
    const char *arg = a->origins[0];

    if (a->norigins > 1) {
        fprintf(stderr, "hookd: endpoints %s takes one ORIGIN; '%s' is one too many\n",
                a->action, a->origins[1]);
        return 2;
    }
    if (policy_check_url(arg, strlen(arg), origin, POLICY_ORIGIN_MAX, &why) < 0) {
        fprintf(stderr, "hookd: '%s' is not an origin: %s; write scheme://host[:port] (e.g. "
                "https://api.example.com:443) or a URL of it\n", arg, why.msg);
        return 2;
    }
    return 0;
}

int cli_endpoints_set(struct redis_sync *s, const struct keys *k,
                      const struct cli_endpoints_opts *a, struct hk_err *err)
{
    char origin[POLICY_ORIGIN_MAX], was[QUEUE_STATE_MAX], now[QUEUE_STATE_MAX];
    struct buf json = BUF_INIT;
    int rc = origin_arg(a, origin), enable = strcmp(a->action, "enable") == 0;
    const char *verb = a->action;

    if (rc != 0)
        return rc;
    json_write_string(&json, origin, strlen(origin));
    struct queue_endpoint_set set = { .enable = enable, .origin = origin,
                                      .origin_json = json.data,
                                      .events_max = a->cfg->events_max,
                                      .ops_url = a->cfg->ops_webhook_url,
                                      .window_ms = a->cfg->breaker_window_ms };
    rc = queue_endpoint_set(s, k, &set, was, now, err) < 0 ? 1 : 0;
    if (rc == 0 && a->json)
        printf("{\"origin\":%s,\"previous\":\"%s\",\"state\":\"%s\",\"changed\":%s}\n",
               json.data, was, now, strcmp(was, now) != 0 ? "true" : "false");
    buf_free(&json);
    if (rc != 0)
        return rc;
    if (strcmp(was, now) != 0) {
        if (!a->json)
            printf("%s: %s (was %s)\n", origin, now, was);
        return 0;
    }
    if (strcmp(was, "none") == 0)
        hk_err_set(err, HK_EINVAL, "not_found", "%s: no record of it (never attempted, or "
                   "closed long enough to be forgotten); nothing to %s", origin, verb);
    else
        hk_err_set(err, HK_EINVAL, "unchanged", "%s is %s already; nothing to %s", origin,
                   was, verb);
    return 1;
}
