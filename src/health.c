/* health.c -- attempts reported to HEALTH, the breaker mirror kept current
 * (health.h). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/buf.h"
#include "hookd/health.h"
#include "hookd/json.h"
#include "hookd/log.h"
#include "hookd/mem.h"
#include "hookd/timeutil.h"

#define RETRY_PAUSE_MS 1000     /* coalesce wants one; reports are never resent */

struct report {
    struct coalesce_item link;
    char *origin;               /* owned */
    enum health_result result;
    int probe;
};

static struct report *report_of(struct coalesce_item *it)
{
    return (struct report *)((char *)it - offsetof(struct report, link));
}

static void free_chain(struct coalesce_item *it)
{
    while (it != NULL) {
        struct report *r = report_of(it);
        it = it->next;
        free(r->origin);
        free(r);
    }
}

/* One origin's counts within a call. */
struct group {
    const char *origin;         /* borrowed from a report */
    long ok, failed;
    char probe;                 /* '0' none, '1' succeeded, '2' failed */
};

/* Reports from first on, summed per origin, at most QUEUE_HEALTH_MAX
 * origins: fills groups, returns how many; *n reports taken. Linear
 * search: a call's reports come from one loop iteration, over few origins,
 * and a worker's reports for one origin come in a row. */
static size_t group_reports(struct coalesce_item *first, struct group *groups, size_t *n)
{
    size_t ng = 0, taken = 0;

    for (struct coalesce_item *it = first; it != NULL; it = it->next, taken++) {
        struct report *r = report_of(it);
        size_t g = ng;
        for (size_t i = ng; i-- > 0;)
            if (strcmp(groups[i].origin, r->origin) == 0) {
                g = i;
                break;
            }
        if (g == ng) {
            if (ng == QUEUE_HEALTH_MAX)
                break;
            groups[ng++] = (struct group){ .origin = r->origin, .probe = '0' };
        }
        if (r->probe)
            groups[g].probe = r->result == HEALTH_OK ? '1' : '2';
        else if (r->result == HEALTH_OK)
            groups[g].ok++;
        else
            groups[g].failed++;
    }
    *n = taken;
    return ng;
}

static int send_reports(void *arg, struct coalesce_item *first, size_t *n, redis_reply_cb cb,
                        void *cbarg)
{
    struct health *h = arg;
    struct group *groups = xmalloc(QUEUE_HEALTH_MAX * sizeof(*groups));
    size_t ng = group_reports(first, groups, n);
    const char **args = xmalloc(5 * ng * sizeof(*args));
    size_t *lens = xmalloc(5 * ng * sizeof(*lens));
    struct buf text = BUF_INIT;
    size_t *offs = xmalloc(4 * ng * sizeof(*offs));
    int rc;

    /* All the text first, then the pointers: the buffer may move as it grows. */
    for (size_t i = 0; i < ng; i++) {
        offs[4 * i] = text.len;
        json_write_string(&text, groups[i].origin, strlen(groups[i].origin));
        buf_append_char(&text, '\0');
        offs[4 * i + 1] = text.len;
        buf_printf(&text, "%ld", groups[i].ok);
        buf_append_char(&text, '\0');
        offs[4 * i + 2] = text.len;
        buf_printf(&text, "%ld", groups[i].failed);
        buf_append_char(&text, '\0');
        offs[4 * i + 3] = text.len;
        buf_append_char(&text, groups[i].probe);
        buf_append_char(&text, '\0');
    }
    for (size_t i = 0; i < ng; i++) {
        args[5 * i] = groups[i].origin;
        for (int j = 0; j < 4; j++)
            args[5 * i + 1 + j] = text.data + offs[4 * i + j];
        for (int j = 0; j < 5; j++)
            lens[5 * i + j] = strlen(args[5 * i + j]);
    }
    rc = queue_health(h->conn, h->keys, &h->breaker, h->ops_url, args, lens, 5 * ng, cb, cbarg);
    buf_free(&text);
    free(offs);
    free(lens);
    free(args);
    free(groups);
    return rc;
}

static void on_loaded(struct redis_conn *c, struct redisReply *reply, void *arg);

/* Load the mirror whole when a reply said it is behind. */
static void maybe_load(struct health *h)
{
    if (h->closed || h->loading || h->seen_gen <= h->known_gen || !h->conn->up)
        return;
    if (queue_endpoints(h->conn, h->keys, on_loaded, h) == 0)
        h->loading = 1;
}

static void note_gen(struct health *h, const struct redisReply *gen)
{
    long long g = redis_reply_integer(gen);

    if (g > h->seen_gen)
        h->seen_gen = g;
    maybe_load(h);
}

/* Origin, line pairs into the mirror. */
static void set_lines(struct health *h, const struct redisReply *pairs)
{
    for (size_t i = 0; i + 1 < redis_reply_elements(pairs); i += 2) {
        size_t olen, llen;
        const char *origin = redis_reply_str(redis_reply_element(pairs, i), &olen);
        const char *line = redis_reply_str(redis_reply_element(pairs, i + 1), &llen);
        if (origin != NULL && line != NULL && endpoints_set(h->mirror, origin, olen, line,
                                                            llen) < 0 &&
            log_changed(h->last_error, sizeof(h->last_error), "unreadable endpoint line"))
            log_error("endpoint %.*s: unreadable state line \"%.*s\" in Redis; taken as "
                      "closed", (int)olen, origin, (int)llen, line);
    }
}

static void on_loaded(struct redis_conn *c, struct redisReply *reply, void *arg)
{
    struct health *h = arg;

    (void)c;
    h->loading = 0;
    if (h->closed || reply == NULL)
        return;
    if (redis_reply_is_error(reply) || redis_reply_elements(reply) != 2) {
        const char *msg = redis_reply_str(reply, NULL);
        if (log_changed(h->last_error, sizeof(h->last_error), msg ? msg : "bad reply"))
            log_error("reading endpoint states failed: %s; keeping the last ones",
                      msg ? msg : "bad reply");
        return;
    }
    endpoints_clear(h->mirror);
    set_lines(h, redis_reply_element(reply, 1));
    h->known_gen = redis_reply_integer(redis_reply_element(reply, 0));
    maybe_load(h);
}

static enum coalesce_verdict on_reported(void *arg, struct redisReply *reply,
                                         struct coalesce_item *first, size_t n)
{
    struct health *h = arg;

    if (reply == NULL || redis_reply_is_error(reply) || redis_reply_elements(reply) != 3) {
        const char *msg = reply ? redis_reply_str(reply, NULL) : "connection lost";
        if (log_changed(h->last_error, sizeof(h->last_error), msg ? msg : "bad reply"))
            log_error("recording %zu attempts' endpoint health failed: %s; dropped (they "
                      "only count towards breakers)", n, msg ? msg : "bad reply");
        free_chain(first);
        return COALESCE_DONE;
    }
    if (log_recovered(h->last_error))
        log_info("recording endpoint health works again");
    set_lines(h, redis_reply_element(reply, 1));
    const struct redisReply *refused = redis_reply_element(reply, 2);
    for (size_t i = 0; i + 1 < redis_reply_elements(refused); i += 2) {
        const char *why = redis_reply_str(redis_reply_element(refused, i + 1), NULL);
        if (why != NULL && log_changed(h->last_error, sizeof(h->last_error), why))
            log_error("endpoint health of %s not recorded: %s",
                      redis_reply_str(redis_reply_element(refused, i), NULL), why);
    }
    note_gen(h, redis_reply_element(reply, 0));
    free_chain(first);
    return COALESCE_DONE;
}

static void drop_chain(void *arg, struct coalesce_item *first)
{
    (void)arg;
    free_chain(first);
}

static const struct coalesce_ops report_ops = {
    .send = send_reports, .reply = on_reported, .drop = drop_chain,
};

void health_init(struct health *h, uv_loop_t *loop, struct redis_conn *conn,
                 const struct keys *keys, const struct queue_breaker *b, const char *ops_url)
{
    memset(h, 0, sizeof(*h));
    h->mirror = endpoints_new();
    h->conn = conn;
    h->keys = keys;
    h->breaker = *b;
    h->ops_url = ops_url;
    h->counting = b->on || b->disable_after_ms > 0;
    h->known_gen = -1;      /* never loaded: load once connected */
    h->seen_gen = 0;
    coalesce_init(&h->reports, loop, conn, &report_ops, h, RETRY_PAUSE_MS);
}

void health_report(struct health *h, const char *origin, enum health_result r, int probe)
{
    struct report *rep;

    if (!h->counting || h->closed)
        return;
    if (coalesce_pending(&h->reports) >= HEALTH_PENDING_MAX) {
        if (h->dropped++ == 0)
            log_warn("over %d attempts wait to be recorded for endpoint health (Redis is "
                     "away); dropping more until they are sent", HEALTH_PENDING_MAX);
        return;
    }
    h->dropped = 0;
    rep = xmalloc(sizeof(*rep));
    rep->origin = xstrdup(origin);
    rep->result = r;
    rep->probe = probe;
    coalesce_add(&h->reports, &rep->link);
}

enum endpoint_state health_state(struct health *h, const char *origin)
{
    enum endpoint_state s = endpoints_state(h->mirror, origin);

    if (!h->breaker.on && (s == ENDPOINT_OPEN || s == ENDPOINT_HALF_OPEN))
        return ENDPOINT_CLOSED;
    return s;
}

int health_take_probe(struct health *h, const char *origin)
{
    return endpoints_take_probe(h->mirror, origin, time_mono_ms());
}

void health_note_fetch(struct health *h, const struct redisReply *gen,
                       const struct redisReply *probes)
{
    int64_t now = time_mono_ms();

    for (size_t i = 0; i < redis_reply_elements(probes); i++) {
        size_t len;
        const char *origin = redis_reply_str(redis_reply_element(probes, i), &len);
        if (origin != NULL)
            endpoints_grant_probe(h->mirror, origin, len, now);
    }
    note_gen(h, gen);
}

int health_pull_room(struct health *h, const char *origin, int room)
{
    if (health_state(h, origin) == ENDPOINT_CLOSED)
        return room;
    return endpoints_pull_room(h->mirror, origin, room, time_mono_ms());
}

void health_flush(struct health *h)
{
    coalesce_flush(&h->reports);
    maybe_load(h);
}

void health_close(struct health *h)
{
    h->closed = 1;
    free_chain(coalesce_close(&h->reports));
}

void health_free(struct health *h)
{
    endpoints_free(h->mirror);
    h->mirror = NULL;
}
