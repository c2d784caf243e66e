/* deliver_headers.c -- signing a job and the headers of its POST; shared by
 * the workers and `hookd send`. */
#include <stdio.h>
#include <string.h>

#include "hookd/deliver_headers.h"
#include "hookd/sign.h"

/* One "name: value" line, NUL-terminated, its offset recorded. */
static void add(struct buf *store, size_t *offs, size_t *n, const char *name,
                const char *value)
{
    size_t nlen = strlen(name), vlen = strlen(value);

    offs[(*n)++] = store->len;
    buf_reserve(store, nlen + 2 + vlen + 1);
    buf_append(store, name, nlen);
    buf_append(store, ": ", 2);
    buf_append(store, value, vlen);
    buf_append_char(store, '\0');
}

int deliver_headers_build(const struct job *job, const struct deliver_secrets *sec,
                          long long ts, struct buf *store, size_t offs[DELIVER_HEADERS_MAX],
                          size_t *n, struct hk_err *err)
{
    const char *secret = job->secret ? job->secret : sec->secret;
    char hex[SIGN_HEX_LEN + 1], v1[SIGN_V1_LEN + 1], tsbuf[24];
    char sigs[2 * SIGN_V1_LEN + 2];

    if (sign_hex(secret, strlen(secret), job->body, job->body_len, hex) < 0)
        return hk_err_set(err, HK_ECRYPTO, "sign_failed", "HMAC computation failed");
    /* During a rotation webhook-signature carries one "v1,..." per valid
     * secret, space-separated (Standard Webhooks), so receivers holding
     * either the old or the new secret verify; x-dialgen-signature has room
     * for one and uses the current secret. */
    const char *prev = job->secret_previous;
    long long until = job->secret_previous_until;
    if (prev == NULL && job->secret == NULL) {
        prev = sec->previous;
        until = sec->previous_until;
    }
    if (prev != NULL && until != 0 && ts >= until)
        prev = NULL;
    char v1prev[SIGN_V1_LEN + 1] = "";
    int rc = sign_standard(secret, strlen(secret), job->id, ts, job->body, job->body_len, v1);
    if (rc == 0 && prev != NULL)
        rc = sign_standard(prev, strlen(prev), job->id, ts, job->body, job->body_len, v1prev);
    if (rc == HK_EINVAL)
        return hk_err_set(err, HK_EINVAL, "invalid_secret",
                          "secret starts with whsec_ but is not valid base64");
    if (rc < 0)
        return hk_err_set(err, HK_ECRYPTO, "sign_failed", "HMAC computation failed");
    snprintf(tsbuf, sizeof(tsbuf), "%lld", ts);
    snprintf(sigs, sizeof(sigs), "%s%s%s", v1, v1prev[0] ? " " : "", v1prev);
    *n = 0;
    add(store, offs, n, "content-type", job->content_type ? job->content_type
                                                          : "application/json");
    add(store, offs, n, "x-dialgen-signature", hex);
    add(store, offs, n, "webhook-id", job->id);
    add(store, offs, n, "webhook-timestamp", tsbuf);
    add(store, offs, n, "webhook-signature", sigs);
    if (job->event != NULL)
        add(store, offs, n, "x-dialgen-event", job->event);
    for (size_t i = 0; i < job->nheaders; i++)
        add(store, offs, n, job->headers[i].name, job->headers[i].value);
    return 0;
}
