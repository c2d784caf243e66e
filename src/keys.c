/* keys.c -- Redis key names (keys.h). */
#include <stdio.h>
#include <string.h>

#include "hookd/keys.h"

void keys_init(struct keys *k, const char *prefix, const char *wid)
{
    memset(k, 0, sizeof(*k));
    snprintf(k->prefix, sizeof(k->prefix), "%s", prefix);
    snprintf(k->wid, sizeof(k->wid), "%s", wid ? wid : "");
    snprintf(k->queue, sizeof(k->queue), "%s:queue", prefix);
    snprintf(k->workers, sizeof(k->workers), "%s:workers", prefix);
    snprintf(k->dead, sizeof(k->dead), "%s:dead", prefix);
    snprintf(k->dead_aside, sizeof(k->dead_aside), "%s:dead:secrets", prefix);
    snprintf(k->stats, sizeof(k->stats), "%s:stats", prefix);
    snprintf(k->backlog, sizeof(k->backlog), "%s:backlog", prefix);
    snprintf(k->retry, sizeof(k->retry), "%s:retry", prefix);
    snprintf(k->attempts, sizeof(k->attempts), "%s:attempts", prefix);
    snprintf(k->parked, sizeof(k->parked), "%s:parked", prefix);
    snprintf(k->batch, sizeof(k->batch), "%s:batch", prefix);
    snprintf(k->seen, sizeof(k->seen), "%s:seen", prefix);
    snprintf(k->endpoint, sizeof(k->endpoint), "%s:endpoint", prefix);
    snprintf(k->endpoints, sizeof(k->endpoints), "%s:endpoints", prefix);
    snprintf(k->endpoints_gen, sizeof(k->endpoints_gen), "%s:endpoints:gen", prefix);
    snprintf(k->events, sizeof(k->events), "%s:events", prefix);
    snprintf(k->rate, sizeof(k->rate), "%s:rate", prefix);
    snprintf(k->throttled, sizeof(k->throttled), "%s:throttled", prefix);
    if (wid != NULL) {
        snprintf(k->claim, sizeof(k->claim), "%s:claim:%s", prefix, wid);
        snprintf(k->inflight, sizeof(k->inflight), "%s:inflight:%s", prefix, wid);
        snprintf(k->hb, sizeof(k->hb), "%s:hb:%s", prefix, wid);
    }
}

static int fits(int n, size_t cap)
{
    return n >= 0 && (size_t)n < cap ? n : -1;
}

int keys_parked_list(const struct keys *k, const char *origin, char *out, size_t cap)
{
    return fits(snprintf(out, cap, "%s:%s", k->parked, origin), cap);
}

int keys_batch(const struct keys *k, const char *batch_id, char *out, size_t cap)
{
    return fits(snprintf(out, cap, "%s:%s", k->batch, batch_id), cap);
}

int keys_batch_calls(const struct keys *k, const char *batch_id, char *out, size_t cap)
{
    return fits(snprintf(out, cap, "%s:%s:calls", k->batch, batch_id), cap);
}

int keys_seen_pattern(const struct keys *k, char *out, size_t cap)
{
    return fits(snprintf(out, cap, "%s:*", k->seen), cap);
}
