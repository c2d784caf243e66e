/* cli.c -- hookd dlq list|show|replay|purge, retry list, attempts, stats, batch show,
 * and the dispatch of every command (endpoints: cli_endpoints.c). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/buf.h"
#include "hookd/cli.h"
#include "hookd/cli_endpoints.h"
#include "hookd/cli_table.h"
#include "hookd/event.h"
#include "hookd/job.h"
#include "hookd/json.h"
#include "hookd/mem.h"
#include "hookd/queue.h"
#include "hookd/redis.h"
#include "hookd/sign.h"
#include "hookd/timeutil.h"

#define TIMEOUT_MS 5000
#define MOVE_CHUNK 200      /* dead entries moved per script call */

int cli_is_command(const char *word)
{
    return strcmp(word, "dlq") == 0 || strcmp(word, "retry") == 0 ||
           strcmp(word, "stats") == 0 || strcmp(word, "batch") == 0 ||
           strcmp(word, "attempts") == 0 || strcmp(word, "endpoints") == 0;
}

static struct redisReply *cmd(struct redis_sync *s, struct hk_err *err, int argc, ...)
{
    const char *argv[8];
    va_list ap;

    va_start(ap, argc);
    for (int i = 0; i < argc; i++)
        argv[i] = va_arg(ap, const char *);
    va_end(ap);
    return redis_sync_command(s, argc, argv, NULL, err);
}

/* The i-th element of an array reply as a string (len may be NULL). */
static const char *el(const struct redisReply *r, size_t i, size_t *len)
{
    return redis_reply_str(redis_reply_element(r, i), len);
}

static const char *member_str(const struct json_value *obj, const char *key)
{
    const struct json_value *v = json_object_get(obj, key);
    return v != NULL && v->type == JSON_STRING ? v->u.string.ptr : NULL;
}

/* ---- naming dead entries ---------------------------------------------------- */

/* The index of the id named on the command line that dead entry e answers
 * to, or -1: its job id; "-" for an entry without one (as dlq list shows
 * it); or its dead_id, which is unique even when ids repeat. */
static int named(const struct cli_args *a, const struct json_value *e)
{
    const char *id = member_str(e, "id"), *dead_id = member_str(e, "dead_id");

    for (int i = 0; i < a->nids; i++)
        if (strcmp(a->ids[i], id ? id : "-") == 0 ||
            (dead_id != NULL && strcmp(a->ids[i], dead_id) == 0))
            return i;
    return -1;
}

/* Named ids nothing answered to (hits[i] == 0), as one line into err,
 * "<what>: ID, ID<hint>"; returns 1 (the exit code) when there were any,
 * else 0. */
static int report_missing(const struct cli_args *a, const int *hits, const char *what,
                          const char *hint, struct hk_err *err)
{
    struct buf b = BUF_INIT;
    int missing = 0;

    for (int i = 0; i < a->nids; i++)
        if (!hits[i])
            buf_printf(&b, "%s%s", missing++ ? ", " : "", a->ids[i]);
    if (missing)
        hk_err_set(err, HK_EINVAL, "not_found", "%s: %s%s", what, b.data, hint);
    buf_free(&b);
    return missing ? 1 : 0;
}

/* ---- dlq list / show ------------------------------------------------------- */

/* One row of dlq list: the fixed columns sized to the longest value seen
 * (w), then the error, cut to what is left of the line. */
static void list_row(const char *cols[5], const int w[5], const char *error, size_t columns)
{
    struct buf line = BUF_INIT;

    buf_printf(&line, "%-*s  %-*s  %-*s  %*s  %*s  ", w[0], cols[0], w[1], cols[1], w[2],
               cols[2], w[3], cols[3], w[4], cols[4]);
    table_append_cut(&line, line.len, columns, error, strlen(error));
    buf_append_char(&line, '\n');
    fwrite(line.data, 1, line.len, stdout);
    buf_free(&line);
}

struct list_entry {
    char dead_at[32], id[128], reason[48], status[16], attempts[16];
    const char *error;          /* borrowed from the parsed entry */
};

static void list_fill(struct list_entry *le, const struct json_value *e)
{
    const struct json_value *st = json_object_get(e, "status");
    const struct json_value *at = json_object_get(e, "attempts");
    const char *id = member_str(e, "id"), *v;

    snprintf(le->dead_at, sizeof(le->dead_at), "%s",
             (v = member_str(e, "dead_at")) ? v : "-");
    snprintf(le->id, sizeof(le->id), "%s", id ? id : "-");
    snprintf(le->reason, sizeof(le->reason), "%s", (v = member_str(e, "reason")) ? v : "-");
    snprintf(le->status, sizeof(le->status), "%.0f",
             st && st->type == JSON_NUMBER ? st->u.number : 0);
    snprintf(le->attempts, sizeof(le->attempts), "%.0f",
             at && at->type == JSON_NUMBER ? at->u.number : 0);
    le->error = (v = member_str(e, "error")) ? v : "-";
}

/* The human table: columns as wide as their longest value. */
static void dlq_table(const struct redisReply *r)
{
    size_t n = redis_reply_elements(r), columns = table_columns();
    struct list_entry *rows = xcalloc(n + 1, sizeof(*rows));
    struct json_doc **docs = xcalloc(n + 1, sizeof(*docs));
    const char *head[5] = { "DEAD AT", "ID", "REASON", "STATUS", "ATTEMPTS" };
    int w[5];

    for (int c = 0; c < 5; c++)
        w[c] = (int)strlen(head[c]);
    for (size_t i = 0; i < n; i++) {
        struct json_value *e;
        size_t len;
        const char *text = el(r, i, &len);
        docs[i] = json_doc_new();
        if (json_parse(docs[i], text, len, 64, &e, NULL) < 0)
            snprintf(rows[i].id, sizeof(rows[i].id), "(not JSON)");
        else
            list_fill(&rows[i], e);
        const char *v[5] = { rows[i].dead_at, rows[i].id, rows[i].reason, rows[i].status,
                             rows[i].attempts };
        for (int c = 0; c < 5; c++)
            w[c] = (int)strlen(v[c]) > w[c] ? (int)strlen(v[c]) : w[c];
    }
    list_row(head, w, "ERROR", columns);
    for (size_t i = 0; i < n; i++) {
        const char *v[5] = { rows[i].dead_at, rows[i].id, rows[i].reason, rows[i].status,
                             rows[i].attempts };
        list_row(v, w, rows[i].error ? rows[i].error : "-", columns);
        json_doc_free(docs[i]);
    }
    free(docs);
    free(rows);
}

static int dlq_list(struct redis_sync *s, const struct keys *k, const struct cli_args *a,
                    struct hk_err *err)
{
    char stop[24];
    struct redisReply *r;

    snprintf(stop, sizeof(stop), "%ld", a->limit - 1);
    if ((r = cmd(s, err, 4, "LRANGE", k->dead, "0", stop)) == NULL)
        return 1;
    if (a->json) {
        printf("[");
        for (size_t i = 0; i < redis_reply_elements(r); i++) {
            size_t len;
            const char *e = el(r, i, &len);
            printf("%s%.*s", i ? ",\n" : "", (int)len, e);
        }
        printf("]\n");
    } else {
        dlq_table(r);
    }
    redis_reply_free(r);
    return 0;
}

/* dlq show: every entry each named id answers to, whole, newest first. */
static int dlq_show(struct redis_sync *s, const struct keys *k, const struct cli_args *a,
                    struct hk_err *err)
{
    struct redisReply *r;
    int *hits = xcalloc((size_t)a->nids + 1, sizeof(*hits)), shown = 0, rc;

    if ((r = cmd(s, err, 4, "LRANGE", k->dead, "0", "-1")) == NULL) {
        free(hits);
        return 1;
    }
    printf("%s", a->json ? "[" : "");
    for (size_t i = 0; i < redis_reply_elements(r); i++) {
        struct json_doc *doc = json_doc_new();
        struct json_value *e;
        size_t len;
        const char *text = el(r, i, &len);
        int at = json_parse(doc, text, len, 64, &e, NULL) == 0 ? named(a, e) : -1;
        if (at >= 0) {
            hits[at]++;
            printf("%s%.*s\n", a->json && shown++ ? "," : "", (int)len, text);
        }
        json_doc_free(doc);
    }
    printf("%s", a->json ? "]\n" : "");
    redis_reply_free(r);
    rc = report_missing(a, hits, "not in the dead list", "", err);
    free(hits);
    return rc;
}

/* ---- dlq replay / purge ----------------------------------------------------- */

/* The job to push back for a dead entry: its redacted job with the id it
 * was delivered under and what was kept aside for it restored (its own
 * secrets), or the job's bytes as they were (kept aside, for a job dead as
 * worker_crashed; in the entry, for bytes that were no job at all). */
static int rebuild_job(struct redis_sync *s, const struct keys *k,
                       const struct json_value *e, struct buf *out, struct hk_err *err)
{
    const struct json_value *job = json_object_get(e, "job");
    const char *id = member_str(e, "id"), *dead_id = member_str(e, "dead_id");
    const char *raw = member_str(e, "raw"), *raw64 = member_str(e, "raw_base64");
    struct job_aside aside = { 0 };
    struct redisReply *r = NULL;
    size_t alen;
    const char *a;

    if (dead_id != NULL && (r = cmd(s, err, 3, "HGET", k->dead_aside, dead_id)) == NULL)
        return -1;
    if ((a = redis_reply_str(r, &alen)) != NULL && job_aside_decode(a, alen, &aside) < 0) {
        hk_err_set(err, HK_EINVAL, "aside", "what %s keeps for %s cannot be read",
                   k->dead_aside, dead_id);
        redis_reply_free(r);
        return -1;
    }
    redis_reply_free(r);
    /* A replay is meant to be delivered: marked as already accepted, so
     * dedupe_window does not take it for a duplicate of itself. */
    if (aside.raw != NULL) {
        buf_append(out, JOB_ACCEPTED_MARK, JOB_ACCEPTED_MARK_LEN);
        buf_append(out, aside.raw, aside.raw_len);
    } else if (job == NULL || job->type != JSON_OBJECT) {
        /* not a job at all: put the bytes back as they came */
        if (raw != NULL) {
            buf_append_str(out, raw);
        } else if (raw64 != NULL) {
            size_t n = strlen(raw64);
            unsigned char *b = xmalloc(SIGN_BASE64_DECODED_MAX(n));
            int dl = sign_base64_decode(raw64, n, b, SIGN_BASE64_DECODED_MAX(n));
            if (dl > 0)
                buf_append(out, b, (size_t)dl);
            free(b);
        }
    } else {
        struct json_doc *doc = json_doc_new();
        const char *const names[] = { "id", "secret", "secret_previous" };
        const char *values[] = { json_object_get(job, "id") == NULL ? id : NULL, aside.secret,
                                 aside.secret_previous };
        size_t n = job->u.object.len;
        struct json_value *o = json_new_object(doc, n + 3);
        memcpy(o->u.object.items, job->u.object.items, n * sizeof(struct json_member));
        for (size_t i = 0; i < 3; i++) {
            if (values[i] == NULL)
                continue;
            o->u.object.items[n].key = names[i];
            o->u.object.items[n].key_len = strlen(names[i]);
            o->u.object.items[n++].value = json_new_string(doc, values[i], strlen(values[i]));
        }
        o->u.object.len = n;
        json_object_finish(o);
        buf_append(out, JOB_ACCEPTED_MARK, JOB_ACCEPTED_MARK_LEN);
        json_write(out, o);
        json_doc_free(doc);
    }
    job_aside_free(&aside);
    return 0;
}


/* One DLQ_MOVE call's worth of dead entries, as triples (queue.h): the
 * entry's exact bytes, the job to push back ('' = purge), its dead_id. */
struct move_chunk {
    const char **trip;          /* owned array; the strings point into the
                                   LRANGE reply, jobs and docs */
    size_t *lens;               /* owned */
    struct buf *jobs;           /* owned, MOVE_CHUNK; the rebuilt jobs */
    struct json_doc **docs;     /* owned, MOVE_CHUNK; the entries parsed */
    size_t n;                   /* triples filled */
};

static void chunk_init(struct move_chunk *c)
{
    c->trip = xmalloc(3 * MOVE_CHUNK * sizeof(char *));
    c->lens = xmalloc(3 * MOVE_CHUNK * sizeof(size_t));
    c->jobs = xcalloc(MOVE_CHUNK, sizeof(struct buf));
    c->docs = xcalloc(MOVE_CHUNK, sizeof(struct json_doc *));
    c->n = 0;
}

static void chunk_free(struct move_chunk *c)
{
    for (size_t j = 0; j < MOVE_CHUNK; j++) {
        json_doc_free(c->docs[j]);
        buf_free(&c->jobs[j]);
    }
    free(c->docs);
    free(c->jobs);
    free(c->trip);
    free(c->lens);
}

/* Add the dead entry etext to c when the command names it (or --all) and,
 * for a replay, something of its job is left to push back. hits[i] counts
 * the entries the i-th id named. Returns 0, or -1 with err filled when the
 * job could not be rebuilt. */
static int chunk_add(struct redis_sync *s, const struct keys *k, const struct cli_args *a,
                     int replay, struct move_chunk *c, const char *etext, size_t elen,
                     int *hits, struct hk_err *err)
{
    size_t n = c->n;
    struct json_value *e;
    const char *dead_id;
    int at = -1;

    c->docs[n] = json_doc_new();
    if (json_parse(c->docs[n], etext, elen, 64, &e, NULL) < 0 ||
        (!a->all && (at = named(a, e)) < 0)) {
        json_doc_free(c->docs[n]);
        c->docs[n] = NULL;
        return 0;
    }
    dead_id = member_str(e, "dead_id");
    buf_reset(&c->jobs[n]);
    if (replay && rebuild_job(s, k, e, &c->jobs[n], err) < 0)
        return -1;
    if (at >= 0)
        hits[at]++;
    if (replay && c->jobs[n].len == 0) {
        /* Nothing of the job is left to push (what was kept aside for it
         * deleted by hand): an empty job would tell DLQ_MOVE to purge the
         * entry. It stays dead. */
        fprintf(stderr, "hookd: dead entry %s not replayed: nothing of its job is "
                "left (%s has nothing for it)\n", dead_id ? dead_id : "-", k->dead_aside);
        json_doc_free(c->docs[n]);
        c->docs[n] = NULL;
        return 0;
    }
    c->trip[3 * n] = etext;
    c->lens[3 * n] = elen;
    c->trip[3 * n + 1] = replay ? (c->jobs[n].data ? c->jobs[n].data : "") : "";
    c->lens[3 * n + 1] = replay ? c->jobs[n].len : 0;
    c->trip[3 * n + 2] = dead_id ? dead_id : "";
    c->lens[3 * n + 2] = strlen(c->trip[3 * n + 2]);
    c->n++;
    return 0;
}

/* Move the chunk's entries in one atomic DLQ_MOVE and empty it. Returns
 * how many entries moved, or a negative code with err filled. */
static long long chunk_send(struct redis_sync *s, const struct keys *k, int replay,
                            struct move_chunk *c, struct hk_err *err)
{
    long long m = queue_dlq_move(s, k, replay ? "replayed" : "purged", c->trip, c->lens,
                                 c->n, err);

    for (size_t j = 0; j < c->n; j++) {
        json_doc_free(c->docs[j]);
        c->docs[j] = NULL;
    }
    c->n = 0;
    return m;
}

/* Walk the dead list from the oldest entry, in chunks; each chunk is one
 * atomic script call, so an interruption loses nothing: an entry is either
 * still dead or already back on the queue. */
static int dlq_move(struct redis_sync *s, const struct keys *k, const struct cli_args *a,
                    int replay, struct hk_err *err)
{
    struct redisReply *r;
    struct move_chunk c;
    long long moved = 0;
    int rc = 0, *hits;

    if (!replay && a->all) {
        long long n = queue_dlq_purge_all(s, k, err);
        if (n < 0)
            return 1;
        printf(a->json ? "{\"purged\":%lld}\n" : "purged %lld dead entries\n", n);
        return 0;
    }
    if ((r = cmd(s, err, 4, "LRANGE", k->dead, "0", "-1")) == NULL)
        return 1;
    chunk_init(&c);
    hits = xcalloc((size_t)a->nids + 1, sizeof(*hits));
    for (size_t i = redis_reply_elements(r); i-- > 0 && rc == 0;) {
        size_t elen;
        const char *etext = el(r, i, &elen);
        if (chunk_add(s, k, a, replay, &c, etext, elen, hits, err) < 0) {
            rc = 1;
            break;
        }
        if (c.n == MOVE_CHUNK || (i == 0 && c.n > 0)) {
            long long m = chunk_send(s, k, replay, &c, err);
            if (m < 0)
                rc = 1;
            else
                moved += m;
        }
    }
    chunk_free(&c);
    redis_reply_free(r);
    if (rc == 0) {
        if (a->json)
            printf("{\"%s\":%lld}\n", replay ? "replayed" : "purged", moved);
        else
            printf("%s %lld dead entries\n", replay ? "replayed" : "purged", moved);
        rc = a->all ? 0 : report_missing(a, hits, "not in the dead list", "", err);
    }
    free(hits);
    return rc;
}

/* ---- retry list ----------------------------------------------------------------- */

static int retry_list(struct redis_sync *s, const struct keys *k, const struct cli_args *a,
                      struct hk_err *err)
{
    char stop[24], due[TIME_ISO_LEN + 1];
    struct job_limits lim = JOB_LIMITS_DEFAULT;
    struct redisReply *r;
    struct buf out = BUF_INIT;

    snprintf(stop, sizeof(stop), "%ld", a->limit - 1);
    if ((r = cmd(s, err, 5, "ZRANGE", k->retry, "0", stop, "WITHSCORES")) == NULL)
        return 1;
    if (a->json)
        buf_append_char(&out, '[');
    else
        printf("%-24s  %-24s  %8s  %6s  %-48s  %s\n", "DUE", "ID", "ATTEMPTS", "STATUS",
               "LAST ERROR", "URL");
    for (size_t i = 0; i + 1 < redis_reply_elements(r); i += 2) {
        struct job *job;
        size_t len;
        const char *env = el(r, i, &len);
        job_decode(env, len, &lim, &job, NULL);
        time_format_iso(atoll(el(r, i + 1, NULL)), due);
        const char *id = job->id ? job->id : "-", *url = job->url ? job->url : "-";
        const char *le = job->last_error ? job->last_error : "";
        if (a->json) {
            buf_printf(&out, "%s{\"due_at\":\"%s\",\"id\":", i ? ",\n" : "", due);
            json_write_string(&out, id, strlen(id));
            buf_printf(&out, ",\"attempts\":%d,\"last_status\":%ld,\"last_error\":",
                       job->attempts, job->last_status);
            json_write_string(&out, le, strlen(le));
            buf_append_str(&out, ",\"url\":");
            json_write_string(&out, url, strlen(url));
            buf_append_char(&out, '}');
        } else {
            printf("%-24s  %-24s  %8d  %6ld  %-48.48s  %s\n", due, id, job->attempts,
                   job->last_status, le, url);
        }
        job_free(job);
    }
    if (a->json) {
        buf_append_str(&out, "]\n");
        fputs(out.data, stdout);
    }
    buf_free(&out);
    redis_reply_free(r);
    return 0;
}

/* ---- attempts ---------------------------------------------------------------------- */

#define ATTEMPTS_PAGE "1000"    /* stream entries read per XRANGE */

/* A field of a stream entry's field/value array, or "" (len may be NULL). */
static const char *xfield(const struct redisReply *fields, const char *name, size_t *len)
{
    for (size_t i = 0; i + 1 < redis_reply_elements(fields); i += 2) {
        const char *f = el(fields, i, NULL);
        if (f != NULL && strcmp(f, name) == 0) {
            const char *v = el(fields, i + 1, len);
            return v ? v : "";
        }
    }
    if (len != NULL)
        *len = 0;
    return "";
}

/* One attempt: a line (the response's start, cut to the terminal), or a
 * JSON object of every field. */
static void attempt_out(const struct redisReply *fields, const struct cli_args *a,
                        struct buf *out, size_t columns)
{
    size_t rlen;
    const char *resp = xfield(fields, "response", &rlen);

    if (a->json) {
        buf_append_str(out, out->len > 1 ? ",\n{" : "{");
        for (size_t i = 0; i + 1 < redis_reply_elements(fields); i += 2) {
            size_t fl, vl;
            const char *f = el(fields, i, &fl), *v = el(fields, i + 1, &vl);
            buf_append_str(out, i ? "," : "");
            json_write_string(out, f ? f : "", f ? fl : 0);
            buf_append_char(out, ':');
            json_write_string(out, v ? v : "", v ? vl : 0);
        }
        buf_append_char(out, '}');
        return;
    }
    size_t start = out->len;
    buf_printf(out, "%-24s  %-24s  %7s  %6s  %8s  %-24s  ", xfield(fields, "at", NULL),
               xfield(fields, "id", NULL), xfield(fields, "attempt", NULL),
               xfield(fields, "status", NULL), xfield(fields, "latency_ms", NULL),
               xfield(fields, "error", NULL));
    if (rlen == 0 && xfield(fields, "response_base64", &rlen)[0] != '\0')
        buf_printf(out, "(%zu bytes of base64: not UTF-8)", rlen);
    else
        table_append_cut(out, out->len - start, columns, resp, rlen);
    buf_append_char(out, '\n');
}

/* hookd attempts ID...: every attempt of those jobs still in P:attempts,
 * oldest first, read a page at a time. */
static int attempts(struct redis_sync *s, const struct keys *k, const struct cli_args *a,
                    struct hk_err *err)
{
    char start[64] = "-";
    int *hits = xcalloc((size_t)a->nids + 1, sizeof(*hits)), rc = 1;
    struct buf out = BUF_INIT;
    size_t columns = table_columns(), n;

    buf_append_str(&out, a->json ? "[" : "");
    if (!a->json)
        buf_printf(&out, "%-24s  %-24s  %7s  %6s  %8s  %-24s  %s\n", "AT", "ID", "ATTEMPT",
                   "STATUS", "MS", "ERROR", "RESPONSE");
    do {
        struct redisReply *r = cmd(s, err, 6, "XRANGE", k->attempts, start, "+", "COUNT",
                                   ATTEMPTS_PAGE);
        if (r == NULL)
            goto done;
        n = redis_reply_elements(r);
        for (size_t i = 0; i < n; i++) {
            const struct redisReply *e = redis_reply_element(r, i);
            const struct redisReply *fields = redis_reply_element(e, 1);
            const char *id = xfield(fields, "id", NULL);
            for (int j = 0; j < a->nids; j++)
                if (strcmp(a->ids[j], id) == 0) {
                    hits[j]++;
                    attempt_out(fields, a, &out, columns);
                    break;
                }
            if (i + 1 == n)
                snprintf(start, sizeof(start), "(%s", el(e, 0, NULL) ? el(e, 0, NULL) : "+");
        }
        redis_reply_free(r);
    } while (n > 0);
    buf_append_str(&out, a->json ? "]\n" : "");
    fwrite(out.data, 1, out.len, stdout);
    rc = report_missing(a, hits, "no attempt recorded of", " (attempt_log = failures, the "
                        "default, records failed attempts only; the stream keeps about "
                        "attempt_log_max)", err);
done:
    buf_free(&out);
    free(hits);
    return rc;
}

/* ---- stats ------------------------------------------------------------------------ */

static long long int_reply(struct redis_sync *s, struct hk_err *err, int *failed,
                           const char *c, const char *key)
{
    struct redisReply *r = cmd(s, err, 2, c, key);
    long long n = redis_reply_integer(r);

    if (r == NULL)
        *failed = 1;
    redis_reply_free(r);
    return n;
}

/* How many ids dedupe_window remembers (P:seen keys) and about how much
 * memory they take: the keys are counted with SCAN, which Redis serves in
 * small steps without blocking, and MEMORY USAGE of the first
 * SEEN_SAMPLES of them, averaged, stands for all. */
#define SEEN_SAMPLES 64

static int seen_keys(struct redis_sync *s, const struct keys *k, long long *count,
                     long long *bytes, struct hk_err *err)
{
    char pattern[KEYS_MAX + 4], cursor[32] = "0";
    long long sampled = 0, sampled_bytes = 0;

    *count = 0;
    if (keys_seen_pattern(k, pattern, sizeof(pattern)) < 0)
        return hk_err_set(err, HK_EINVAL, "prefix", "prefix too long");
    do {
        struct redisReply *r = cmd(s, err, 6, "SCAN", cursor, "MATCH", pattern, "COUNT", "1000");
        const struct redisReply *found = redis_reply_element(r, 1);
        if (r == NULL)
            return HK_EREDIS;
        snprintf(cursor, sizeof(cursor), "%s", el(r, 0, NULL) ? el(r, 0, NULL) : "0");
        *count += (long long)redis_reply_elements(found);
        for (size_t i = 0; i < redis_reply_elements(found) && sampled < SEEN_SAMPLES; i++) {
            struct redisReply *m = cmd(s, err, 3, "MEMORY", "USAGE",
                                       redis_reply_str(redis_reply_element(found, i), NULL));
            if (m != NULL && redis_reply_integer(m) > 0) {
                sampled_bytes += redis_reply_integer(m);
                sampled++;
            }
            redis_reply_free(m);
        }
        redis_reply_free(r);
    } while (strcmp(cursor, "0") != 0);
    *bytes = sampled > 0 ? sampled_bytes / sampled * *count : 0;
    return 0;
}

static int stats(struct redis_sync *s, const struct keys *k, const struct cli_args *a,
                 struct hk_err *err)
{
    int failed = 0;
    long long queue = int_reply(s, err, &failed, "LLEN", k->queue);
    long long retry = int_reply(s, err, &failed, "ZCARD", k->retry);
    long long dead = int_reply(s, err, &failed, "LLEN", k->dead);
    struct redisReply *w = cmd(s, err, 2, "HGETALL", k->workers);
    struct redisReply *c = w ? cmd(s, err, 2, "HGETALL", k->stats) : NULL;
    struct redisReply *po = c ? cmd(s, err, 4, "ZRANGE", k->parked, "0", "-1") : NULL;
    struct buf out = BUF_INIT, wl = BUF_INIT, pl = BUF_INIT;
    long long in_flight = 0, parked = 0, seen = 0, seen_bytes = 0;

    if (po != NULL && seen_keys(s, k, &seen, &seen_bytes, err) < 0)
        failed = 1;
    if (failed || w == NULL || c == NULL || po == NULL) {
        redis_reply_free(w);
        redis_reply_free(c);
        redis_reply_free(po);
        return 1;
    }
    for (size_t i = 0; i < redis_reply_elements(po); i++) {
        size_t olen;
        const char *origin = el(po, i, &olen);
        char key[KEYS_MAX + 320];
        long long n = keys_parked_list(k, origin, key, sizeof(key)) < 0
                          ? 0 : int_reply(s, err, &failed, "LLEN", key);
        parked += n;
        if (a->json) {
            buf_append_str(&pl, i ? "," : "");
            json_write_string(&pl, origin, olen);
            buf_printf(&pl, ":%lld", n);
        } else {
            buf_printf(&pl, "  %-40s %lld\n", origin, n);
        }
    }
    for (size_t i = 0; i + 1 < redis_reply_elements(w); i += 2) {
        struct keys wk;
        size_t wlen;
        const char *wid = el(w, i, &wlen);
        keys_init(&wk, k->prefix, wid);
        long long n = int_reply(s, err, &failed, "HLEN", wk.inflight) +
                      int_reply(s, err, &failed, "LLEN", wk.claim);
        in_flight += n;
        if (a->json) {
            buf_append_str(&wl, i ? "," : "");
            json_write_string(&wl, wid, wlen);
            buf_printf(&wl, ":{\"in_flight\":%lld,\"info\":%s}", n, el(w, i + 1, NULL));
        } else {
            buf_printf(&wl, "  %-40s %lld\n", wid, n);
        }
    }
    if (a->json) {
        buf_printf(&out, "{\"queue\":%lld,\"retry\":%lld,\"dead\":%lld,\"in_flight\":%lld,"
                   "\"parked\":%lld,\"parked_origins\":{%s},\"workers\":{%s},"
                   "\"dedupe\":{\"ids\":%lld,\"approx_bytes\":%lld},\"counters\":{",
                   queue, retry, dead, in_flight, parked, pl.data ? pl.data : "",
                   wl.data ? wl.data : "", seen, seen_bytes);
        for (size_t i = 0; i + 1 < redis_reply_elements(c); i += 2)
            buf_printf(&out, "%s\"%s\":%s", i ? "," : "", el(c, i, NULL), el(c, i + 1, NULL));
        buf_append_str(&out, "}}\n");
    } else {
        buf_printf(&out, "queue      %lld\nretry      %lld\ndead       %lld\n"
                   "in flight  %lld (%zu workers)\n%s", queue, retry, dead, in_flight,
                   redis_reply_elements(w) / 2, wl.data ? wl.data : "");
        buf_printf(&out, "parked     %lld (%zu origins)\n%s", parked,
                   redis_reply_elements(po), pl.data ? pl.data : "");
        buf_printf(&out, "dedupe     %lld ids remembered (about %.1f MB)\n", seen,
                   (double)seen_bytes / 1e6);
        buf_append_str(&out, "counters\n");
        for (size_t i = 0; i + 1 < redis_reply_elements(c); i += 2)
            buf_printf(&out, "  %-16s %s\n", el(c, i, NULL), el(c, i + 1, NULL));
    }
    fputs(out.data, stdout);
    buf_free(&out);
    buf_free(&wl);
    buf_free(&pl);
    redis_reply_free(w);
    redis_reply_free(c);
    redis_reply_free(po);
    return failed;
}

/* ---- batch show ------------------------------------------------------------------- */

/* The batch hash's field f (see EVENT_LUA), or NULL. */
static const char *hfield(const struct redisReply *h, const char *f)
{
    for (size_t i = 0; i + 1 < redis_reply_elements(h); i += 2)
        if (strcmp(el(h, i, NULL), f) == 0)
            return el(h, i + 1, NULL);
    return NULL;
}

static long long hnum(const struct redisReply *h, const char *f)
{
    const char *v = hfield(h, f);
    return v != NULL ? atoll(v) : 0;
}

static void json_member(struct buf *out, const char *sep, const char *name, const char *v)
{
    buf_printf(out, "%s\"%s\":", sep, name);
    if (v != NULL)
        json_write_string(out, v, strlen(v));
    else
        buf_append_str(out, "null");
}

static int batch_show(struct redis_sync *s, const struct keys *k, const struct cli_args *a,
                      struct hk_err *err)
{
    static const char *const times[] = { "createdAt", "startedAt", "completedAt", "failedAt" };
    static const char *const hooks[][2] = { { "onBatchComplete", "on_complete" },
                                            { "onCallComplete", "on_call" },
                                            { "onBatchFailed", "on_failed" } };
    char key[KEYS_MAX + EVENT_ID_MAX + 16], calls[sizeof(key) + 8];
    struct buf out = BUF_INIT;
    int failed = 0;

    if (a->nids != 1) {
        fprintf(stderr, "hookd: batch show needs one batch id\n");
        return 2;
    }
    if (keys_batch(k, a->ids[0], key, sizeof(key)) < 0 ||
        keys_batch_calls(k, a->ids[0], calls, sizeof(calls)) < 0) {
        fprintf(stderr, "hookd: batch id too long\n");
        return 2;
    }
    struct redisReply *h = cmd(s, err, 2, "HGETALL", key);
    long long ttl = int_reply(s, err, &failed, "PTTL", key);
    long long counted = int_reply(s, err, &failed, "SCARD", calls);
    if (h == NULL || failed) {
        redis_reply_free(h);
        return 1;
    }
    if (redis_reply_elements(h) == 0) {
        hk_err_set(err, HK_EINVAL, "no_batch", "no batch %s (never created, or expired after "
                   "batch_ttl)", a->ids[0]);
        redis_reply_free(h);
        return 1;
    }
    long long total = hnum(h, "total"), p = hnum(h, "processed");
    long long ok = hnum(h, "succeeded"), bad = hnum(h, "failed");
    const char *state = hfield(h, "failedAt") ? "failed" : hfield(h, "completedAt") ? "completed"
                        : p > 0 ? "running" : "created";
    if (a->json) {
        json_member(&out, "{", "batchId", a->ids[0]);
        json_member(&out, ",", "agentId", hfield(h, "agentId"));
        json_member(&out, ",", "userId", hfield(h, "userId"));
        json_member(&out, ",", "state", state);
        buf_printf(&out, ",\"statistics\":{\"total\":%lld,\"processed\":%lld,\"succeeded\":%lld,"
                   "\"failed\":%lld,\"percentComplete\":%lld,\"successRate\":%lld}", total, p, ok,
                   bad, event_percent(p, total), event_percent(ok, p));
        for (size_t i = 0; i < 4; i++)
            json_member(&out, i ? "," : ",\"timestamps\":{", times[i], hfield(h, times[i]));
        for (size_t i = 0; i < 3; i++)
            json_member(&out, i ? "," : "},\"webhooks\":{", hooks[i][0], hfield(h, hooks[i][1]));
        json_member(&out, "},", "error", hfield(h, "error"));
        json_member(&out, ",", "code", hfield(h, "code"));
        buf_printf(&out, ",\"own_secret\":%s,\"calls_counted\":%lld,\"expires_in_ms\":%lld}\n",
                   hfield(h, "secret") ? "true" : "false", counted, ttl);
    } else {
        buf_printf(&out, "%-15s %s (%s)\n%-15s %s\n%-15s %s\n", "batch", a->ids[0], state,
                   "agent", hfield(h, "agentId"), "user", hfield(h, "userId"));
        buf_printf(&out, "%-15s %lld of %lld processed (%lld%%): %lld succeeded, %lld failed "
                   "(success rate %lld%%)\n", "calls", p, total, event_percent(p, total), ok, bad,
                   event_percent(ok, p));
        for (size_t i = 0; i < 4; i++)
            if (hfield(h, times[i]) != NULL)
                buf_printf(&out, "%-15s %s\n", times[i], hfield(h, times[i]));
        if (hfield(h, "failedAt") != NULL)
            buf_printf(&out, "%-15s %s (%s)\n", "error", hfield(h, "error"), hfield(h, "code"));
        for (size_t i = 0; i < 3; i++)
            buf_printf(&out, "%-15s %s\n", hooks[i][0],
                       hfield(h, hooks[i][1]) ? hfield(h, hooks[i][1]) : "- (skipped)");
        buf_printf(&out, "%-15s %s\n%-15s %lld s\n", "secret",
                   hfield(h, "secret") ? "its own" : "the configured one", "expires in",
                   ttl / 1000);
    }
    fputs(out.data, stdout);
    buf_free(&out);
    redis_reply_free(h);
    return 0;
}

/* ---- dispatch ---------------------------------------------------------------------- */

typedef int (*cli_fn)(struct redis_sync *s, const struct keys *k, const struct cli_args *a,
                      struct hk_err *err);

static int dlq_replay(struct redis_sync *s, const struct keys *k, const struct cli_args *a,
                      struct hk_err *err)
{
    return dlq_move(s, k, a, 1, err);
}

static int dlq_purge(struct redis_sync *s, const struct keys *k, const struct cli_args *a,
                     struct hk_err *err)
{
    return dlq_move(s, k, a, 0, err);
}

static struct cli_endpoints_opts endpoints_opts(const struct cli_args *a)
{
    return (struct cli_endpoints_opts){ .cfg = a->cfg, .json = a->json, .action = a->action,
                                        .origins = a->ids, .norigins = a->nids };
}

static int endpoints_list(struct redis_sync *s, const struct keys *k, const struct cli_args *a,
                          struct hk_err *err)
{
    struct cli_endpoints_opts o = endpoints_opts(a);

    return cli_endpoints_list(s, k, &o, err);
}

static int endpoints_set(struct redis_sync *s, const struct keys *k, const struct cli_args *a,
                         struct hk_err *err)
{
    struct cli_endpoints_opts o = endpoints_opts(a);

    return cli_endpoints_set(s, k, &o, err);
}

enum ids_rule { IDS_NONE, IDS_REQUIRED, IDS_OR_ALL };

static const struct cli_command {
    const char *command, *action;   /* action NULL: the command takes none */
    cli_fn run;
    enum ids_rule ids;
    const char *what;               /* the ids it needs, for the usage error */
} commands[] = {
    { "stats", NULL, stats, IDS_NONE, NULL },
    { "attempts", NULL, attempts, IDS_REQUIRED, "job ids" },
    { "retry", "list", retry_list, IDS_NONE, NULL },
    { "batch", "show", batch_show, IDS_REQUIRED, "a batch id" },
    { "dlq", "list", dlq_list, IDS_NONE, NULL },
    { "dlq", "show", dlq_show, IDS_REQUIRED,
      "ids (a job id, '-' for entries without one, or a dead_id)" },
    { "endpoints", NULL, endpoints_list, IDS_NONE, NULL },
    { "endpoints", "enable", endpoints_set, IDS_REQUIRED, "an ORIGIN (or a URL)" },
    { "endpoints", "disable", endpoints_set, IDS_REQUIRED, "an ORIGIN (or a URL)" },
    { "dlq", "replay", dlq_replay, IDS_OR_ALL, "--all or job ids" },
    { "dlq", "purge", dlq_purge, IDS_OR_ALL, "--all or job ids" },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* The command a names, or NULL with the usage error said: decided before
 * Redis is reached, so a typo is not reported as Redis being down. */
static const struct cli_command *pick(const struct cli_args *a)
{
    const char *act = a->action ? a->action : "";
    struct buf actions = BUF_INIT;

    for (size_t i = 0; i < NCOMMANDS; i++) {
        const struct cli_command *c = &commands[i];
        if (strcmp(c->command, a->command) != 0)
            continue;
        if (c->action != NULL)
            buf_printf(&actions, "%s%s", actions.len ? ", " : "", c->action);
        if ((c->action == NULL) != (a->action == NULL) ||
            (c->action != NULL && strcmp(c->action, act) != 0))
            continue;
        buf_free(&actions);
        if (c->ids == IDS_NONE && a->nids > 0) {
            fprintf(stderr, "hookd: %s%s%s takes no argument like '%s' (see --help)\n",
                    c->command, c->action ? " " : "", c->action ? c->action : "", a->ids[0]);
            return NULL;
        }
        if (c->ids != IDS_NONE && a->nids == 0 && !(c->ids == IDS_OR_ALL && a->all)) {
            fprintf(stderr, "hookd: %s%s%s needs %s\n", c->command, c->action ? " " : "",
                    c->action ? c->action : "", c->what);
            return NULL;
        }
        return c;
    }
    if (actions.len > 0)
        fprintf(stderr, "hookd: %s %s%s%s: the actions are %s (see --help)\n", a->command,
                a->action ? "has no action '" : "needs an action", act,
                a->action ? "'" : "", actions.data);
    else
        fprintf(stderr, "hookd: %s takes no action; '%s' is not one (see --help)\n",
                a->command, act);
    buf_free(&actions);
    return NULL;
}

int cli_run(struct config *cfg, const struct cli_args *a)
{
    const struct cli_command *c = pick(a);
    struct keys k;
    struct hk_err err = { "", "" };
    struct redis_sync *s;
    int rc;

    if (c == NULL)
        return 2;
    if (cfg->redis == NULL) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/redis.sock", cfg->data_dir);
        redis_addr_free(&cfg->addr);
        cfg->addr.path = xstrdup(path);
    }
    s = redis_sync_connect(&cfg->addr, TIMEOUT_MS, &err);
    if (s == NULL) {
        fprintf(stderr, "hookd: %s%s\n", err.msg,
                cfg->redis ? "" : " (no redis configured: is hookd running with this "
                                  "data_dir? otherwise pass --redis URL)");
        return 1;
    }
    keys_init(&k, cfg->prefix, NULL);
    struct cli_args run = *a;
    run.cfg = cfg;
    rc = c->run(s, &k, &run, &err);
    if (rc == 1)
        fprintf(stderr, "hookd: %s\n", err.msg);
    redis_sync_free(s);
    return rc;
}
