/* keys.h -- the name of every Redis key hookd uses; nothing else builds one.
 *
 * P is the configured prefix. Per worker (wid = the worker's id):
 *   P:claim:<wid>      list   earlier versions waited with BLMOVE into it;
 *                             RECLAIM still empties one it finds
 *   P:inflight:<wid>   hash   seq -> job bytes, every job the worker holds
 *   P:hb:<wid>         string heartbeat, expires after heartbeat_ttl
 * Shared:
 *   P:queue            list   producers LPUSH; workers take from the right
 *   P:workers          hash   wid -> JSON info of every registered worker
 *   P:retry            zset   retry envelopes scored by due time (ms, Redis clock)
 *   P:dead             list   dead-letter entries (JSON), newest first, capped
 *   P:dead:secrets     hash   dead_id -> what a dead entry must not show (the
 *                             job's own secrets, or the whole job), for replay
 *   P:attempts         stream attempt history, capped
 *   P:parked           zset   origins with parked jobs, scored by when last served
 *   P:parked:<origin>  list   jobs parked because their origin was saturated
 *   P:batch:<id>       hash   a Dialgen batch: ids, URLs, secret, statistics, times
 *   P:batch:<id>:calls set    call ids counted into the batch
 *   P:seen:<key>       string an id accepted within dedupe_window: <key> is
 *                             the 32 hex digits of SHA-256(id NUL url) for a
 *                             webhook, the id itself for a typed job
 *   P:stats            hash   counters
 *   P:backlog          hash   what the oldest ready job's age is found from
 *                             (src/lua/lib/backlog.lua)
 *   P:endpoint:<origin> hash  an origin's breaker: state, window counts, times
 *                             (src/lua/lib/endpoint.lua)
 *   P:endpoints        hash   origin -> "<state> <since> <due>" of every origin
 *                             not closed: what workers mirror
 *   P:endpoints:gen    string counts changes of P:endpoints
 *   P:events           stream endpoint transitions, capped
 *   P:rate:<origin>    hash   an origin's rate limit (GCRA)
 *   P:throttled        zset   origins throttled, scored by when their slots run out
 * docs/DESIGN.md says who writes each. The Lua scripts (src/lua/) build the
 * per-origin, per-batch and per-id names from the prefixes in struct keys,
 * which they are given; struct keys is filled here and nowhere else. */
#ifndef HOOKD_KEYS_H
#define HOOKD_KEYS_H

#include <stddef.h>

#define KEYS_MAX 256                /* longest key name held in struct keys */
#define KEYS_PREFIX_MAX 64          /* longest prefix config accepts */
#define KEYS_WID_MAX 128            /* longest worker id */

struct keys {
    char prefix[KEYS_PREFIX_MAX + 1];
    char wid[KEYS_WID_MAX];         /* "" when not acting as a worker */
    char queue[KEYS_MAX];
    char claim[KEYS_MAX];           /* per worker, "" without a wid */
    char inflight[KEYS_MAX];        /* per worker */
    char hb[KEYS_MAX];              /* per worker */
    char workers[KEYS_MAX];
    char dead[KEYS_MAX];
    char dead_aside[KEYS_MAX];      /* P:dead:secrets */
    char stats[KEYS_MAX];
    char backlog[KEYS_MAX];
    char retry[KEYS_MAX];
    char attempts[KEYS_MAX];
    char parked[KEYS_MAX];          /* the zset; also the prefix of each origin's list */
    char batch[KEYS_MAX];           /* prefix of P:batch:<id>[:calls] */
    char seen[KEYS_MAX];            /* prefix of P:seen:<key> */
    char endpoint[KEYS_MAX];        /* prefix of P:endpoint:<origin> */
    char endpoints[KEYS_MAX];
    char endpoints_gen[KEYS_MAX];
    char events[KEYS_MAX];
    char rate[KEYS_MAX];            /* prefix of P:rate:<origin> */
    char throttled[KEYS_MAX];
};

/* Fill k for prefix and, when wid is not NULL, that worker's own keys. */
void keys_init(struct keys *k, const char *prefix, const char *wid);

/* P:parked:<origin>, P:batch:<id>, P:batch:<id>:calls and the pattern that
 * matches every P:seen key, into out (cap bytes). Return the length, or -1
 * when it does not fit (nothing useful written). */
int keys_parked_list(const struct keys *k, const char *origin, char *out, size_t cap);
int keys_batch(const struct keys *k, const char *batch_id, char *out, size_t cap);
int keys_batch_calls(const struct keys *k, const char *batch_id, char *out, size_t cap);
int keys_seen_pattern(const struct keys *k, char *out, size_t cap);

#endif
