/* dedupe.c -- batched ACCEPT checks for idempotent enqueue (dedupe.h). */
#include <stdlib.h>
#include <string.h>

#include "hookd/dedupe.h"
#include "hookd/log.h"
#include "hookd/mem.h"
#include "hookd/sign.h"

#define RETRY_PAUSE_MS 1000     /* after an error reply, before asking again */
#define SEND_MAX QUEUE_ACCEPT_MAX /* checks per script call */

struct sent {
    struct dedupe *d;
    struct dedupe_req *head;    /* the checks of this call, in order */
    size_t n;                   /* how many */
};

void dedupe_key(const char *id, const char *url, char out[DEDUPE_KEY_LEN + 1])
{
    size_t ilen = strlen(id), ulen = strlen(url);
    char *both = xmalloc(ilen + 1 + ulen);
    unsigned char md[32];

    /* NUL between: no id may contain one (job.c), so no two pairs join
     * into the same bytes. */
    memcpy(both, id, ilen + 1);
    memcpy(both + ilen + 1, url, ulen);
    if (sign_sha256(both, ilen + 1 + ulen, md) < 0)
        abort();    /* OpenSSL without SHA-256 cannot sign either */
    free(both);
    for (int i = 0; i < DEDUPE_KEY_LEN / 2; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void on_timer(uv_timer_t *t)
{
    struct dedupe *d = t->data;

    d->scheduled = 0;
    dedupe_flush(d);
}

static void schedule(struct dedupe *d, uint64_t delay_ms)
{
    if (d->scheduled && delay_ms == 0)
        return;
    d->scheduled = 1;
    uv_timer_start(&d->timer, on_timer, delay_ms, 0);
}

void dedupe_init(struct dedupe *d, uv_loop_t *loop, struct redis_conn *conn,
                 const struct keys *keys, long window_ms)
{
    memset(d, 0, sizeof(*d));
    d->conn = conn;
    d->keys = keys;
    d->window_ms = window_ms;
    uv_timer_init(loop, &d->timer);
    d->timer.data = d;
}

/* Put a chain back in front of the queue (a failed call), order kept. */
static void requeue(struct dedupe *d, struct dedupe_req *chain)
{
    struct dedupe_req *last = chain;

    while (last->next != NULL)
        last = last->next;
    last->next = d->head;
    d->head = chain;
    if (d->tail == NULL)
        d->tail = last;
}

static void cancel_chain(struct dedupe_req *r)
{
    while (r != NULL) {
        struct dedupe_req *next = r->next;
        r->cb(r, DEDUPE_CANCELLED);
        r = next;
    }
}

static void on_reply(struct redis_conn *c, struct redisReply *reply, void *arg)
{
    struct sent *s = arg;
    struct dedupe *d = s->d;
    struct dedupe_req *r = s->head;
    size_t n = s->n;

    (void)c;
    free(s);
    if (d->closing) {
        cancel_chain(r);
        return;
    }
    if (redis_reply_is_error(reply) || redis_reply_elements(reply) != n) {
        /* Lost reply or script error: ACCEPT may or may not have run; it
         * is idempotent per seq, so ask again. Logged once per distinct
         * error, not once a second while it lasts. */
        const char *msg = redis_reply_str(reply, NULL);
        if (reply != NULL &&
            log_changed(d->last_error, sizeof(d->last_error), msg ? msg : "bad reply"))
            log_error("dedupe check of %zu jobs failed: %s; retrying every %d ms", n,
                      msg ? msg : "bad reply", RETRY_PAUSE_MS);
        requeue(d, r);
        schedule(d, reply != NULL ? RETRY_PAUSE_MS : 0);
        return;
    }
    if (d->last_error[0] != '\0') {
        log_info("dedupe checks work again");
        d->last_error[0] = '\0';
    }
    for (size_t i = 0; r != NULL; i++) {
        static const enum dedupe_verdict verdicts[] = { DEDUPE_NEW, DEDUPE_DUPLICATE,
                                                        DEDUPE_GONE, DEDUPE_UNCHECKED };
        struct dedupe_req *next = r->next;
        long long v = redis_reply_integer(redis_reply_element(reply, i));
        r->next = NULL;
        r->cb(r, v >= 0 && v <= 3 ? verdicts[v] : DEDUPE_GONE);
        r = next;
    }
}

void dedupe_flush(struct dedupe *d)
{
    const char *args[2 * SEND_MAX];
    char seqs[SEND_MAX][24];

    while (d->head != NULL && d->conn->up && !d->closing) {
        struct dedupe_req *r = d->head, *last = NULL;
        size_t n = 0;
        for (; r != NULL && n < SEND_MAX; last = r, r = r->next, n++) {
            snprintf(seqs[n], sizeof(seqs[n]), "%llu", (unsigned long long)r->seq);
            args[2 * n] = seqs[n];
            args[2 * n + 1] = r->key;
        }
        struct sent *s = xmalloc(sizeof(*s));
        s->d = d;
        s->head = d->head;
        s->n = n;
        if (queue_accept(d->conn, d->keys, d->window_ms, args, 2 * n, on_reply, s) < 0) {
            free(s);
            return;     /* the connection's up-callback flushes again */
        }
        last->next = NULL;
        d->head = r;
        if (r == NULL)
            d->tail = NULL;
    }
}

void dedupe_check(struct dedupe *d, struct dedupe_req *req)
{
    req->next = NULL;
    if (d->tail != NULL)
        d->tail->next = req;
    else
        d->head = req;
    d->tail = req;
    schedule(d, 0);
}

void dedupe_close(struct dedupe *d)
{
    struct dedupe_req *queued = d->head;

    d->closing = 1;
    d->head = d->tail = NULL;
    cancel_chain(queued);
    uv_close((uv_handle_t *)&d->timer, NULL);
}
