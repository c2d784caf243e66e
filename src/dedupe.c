/* dedupe.c -- batched ACCEPT checks for idempotent enqueue (dedupe.h). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/dedupe.h"
#include "hookd/log.h"
#include "hookd/mem.h"
#include "hookd/sign.h"

#define RETRY_PAUSE_MS 1000     /* after an error reply, before asking again */
#define SEND_MAX QUEUE_ACCEPT_MAX /* checks per script call */

static struct dedupe_req *req_of(struct coalesce_item *it)
{
    return (struct dedupe_req *)((char *)it - offsetof(struct dedupe_req, link));
}

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
    sign_to_hex(md, DEDUPE_KEY_LEN / 2, out);
}

/* The queue.h call for the checks from first on: at most SEND_MAX. */
static int send_checks(void *arg, struct coalesce_item *first, size_t *n, redis_reply_cb cb,
                       void *cbarg)
{
    struct dedupe *d = arg;
    const char *args[2 * SEND_MAX];
    char seqs[SEND_MAX][24];
    size_t k = 0;

    for (struct coalesce_item *it = first; it != NULL && k < SEND_MAX; it = it->next, k++) {
        struct dedupe_req *r = req_of(it);
        snprintf(seqs[k], sizeof(seqs[k]), "%llu", (unsigned long long)r->seq);
        args[2 * k] = seqs[k];
        args[2 * k + 1] = r->key;
    }
    *n = k;
    return queue_accept(d->conn, d->keys, d->window_ms, args, 2 * k, cb, cbarg);
}

static enum coalesce_verdict on_checked(void *arg, struct redisReply *reply,
                                        struct coalesce_item *first, size_t n)
{
    static const enum dedupe_verdict verdicts[] = { DEDUPE_NEW, DEDUPE_DUPLICATE,
                                                    DEDUPE_GONE, DEDUPE_UNCHECKED };
    struct dedupe *d = arg;

    if (redis_reply_is_error(reply) || redis_reply_elements(reply) != n) {
        /* Lost reply or script error: ACCEPT may or may not have run; it
         * is idempotent per seq, so ask again. Logged once per distinct
         * error, not once a second while it lasts. */
        const char *msg = redis_reply_str(reply, NULL);
        if (reply != NULL &&
            log_changed(d->last_error, sizeof(d->last_error), msg ? msg : "bad reply"))
            log_error("dedupe check of %zu jobs failed: %s; retrying every %d ms", n,
                      msg ? msg : "bad reply", RETRY_PAUSE_MS);
        return COALESCE_RETRY;
    }
    if (log_recovered(d->last_error))
        log_info("dedupe checks work again");
    for (size_t i = 0; first != NULL; i++) {
        struct dedupe_req *r = req_of(first);
        long long v = redis_reply_integer(redis_reply_element(reply, i));
        first = first->next;
        r->link.next = NULL;
        r->cb(r, v >= 0 && v <= 3 ? verdicts[v] : DEDUPE_GONE);
    }
    return COALESCE_DONE;
}

static void cancel_chain(void *arg, struct coalesce_item *it)
{
    (void)arg;
    while (it != NULL) {
        struct dedupe_req *r = req_of(it);
        it = it->next;
        r->cb(r, DEDUPE_CANCELLED);
    }
}

static const struct coalesce_ops check_ops = {
    .send = send_checks, .reply = on_checked, .drop = cancel_chain,
};

void dedupe_init(struct dedupe *d, uv_loop_t *loop, struct redis_conn *conn,
                 const struct keys *keys, long window_ms)
{
    memset(d, 0, sizeof(*d));
    d->conn = conn;
    d->keys = keys;
    d->window_ms = window_ms;
    coalesce_init(&d->checks, loop, conn, &check_ops, d, RETRY_PAUSE_MS);
}

void dedupe_flush(struct dedupe *d)
{
    coalesce_flush(&d->checks);
}

void dedupe_check(struct dedupe *d, struct dedupe_req *req)
{
    coalesce_add(&d->checks, &req->link);
}

void dedupe_close(struct dedupe *d)
{
    cancel_chain(d, coalesce_close(&d->checks));
}
