/* deliver_headers.h -- the headers hookd puts on every webhook POST.
 *
 * One function builds them, so the workers (deliver.c) and `hookd send`
 * (cli_send.c) sign in exactly the same way: content-type,
 * x-dialgen-signature, webhook-id, webhook-timestamp, webhook-signature
 * (one "v1,..." per valid secret during a rotation), x-dialgen-event, then
 * the job's own headers. Pure: no I/O, the clock is an argument. */
#ifndef HOOKD_DELIVER_HEADERS_H
#define HOOKD_DELIVER_HEADERS_H

#include <stddef.h>

#include "hookd/buf.h"
#include "hookd/err.h"
#include "hookd/job.h"

/* Room for the headers hookd sets itself (six today) and the job's own, of
 * which job.c admits at most JOB_HEADERS_MAX. */
#define DELIVER_OWN_HEADERS_MAX 8
#define DELIVER_HEADERS_MAX (DELIVER_OWN_HEADERS_MAX + JOB_HEADERS_MAX)

/* The configured secrets; a job's own secret (job->secret) overrides them.
 * Strings borrowed. */
struct deliver_secrets {
    const char *secret;             /* default signing secret */
    const char *previous;           /* the secret rotated out, or NULL */
    long long previous_until;       /* unix seconds it stays valid; 0 = forever */
};

/* Sign job->body at unix time ts and append the headers to store, each
 * "name: value" and NUL-terminated; offs receives each one's offset in
 * store (store->data may move while it grows, so offsets, not pointers)
 * and *n their count. Returns 0; HK_EINVAL (err->code "invalid_secret")
 * when a "whsec_" secret is not valid base64; HK_ECRYPTO ("sign_failed").
 * job->id must be set (job_ensure_id). */
int deliver_headers_build(const struct job *job, const struct deliver_secrets *sec,
                          long long ts, struct buf *store, size_t offs[DELIVER_HEADERS_MAX],
                          size_t *n, struct hk_err *err);

#endif
