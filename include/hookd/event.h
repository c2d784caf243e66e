/* event.h -- Dialgen's typed jobs: batch.create, call.completed, batch.failed.
 *
 * A typed job reports a fact; it is not POSTed anywhere. Applying it is one
 * step of the RECORD script (queue.c), atomic with taking the job out of
 * flight: it registers a batch, or counts a call in the batch's statistics,
 * or marks the batch failed, and pushes onto the queue the plain jobs for
 * the webhooks that fact produces (onCallComplete, onBatchComplete when the
 * last call is counted, onBatchFailed), with the URLs and secret stored
 * with the batch. This module validates typed jobs and encodes what the
 * script needs; what can be rendered outside Redis (a call's payload, JSON
 * fragments of the batch's ids) is rendered here, in the canonical JSON
 * form receivers verify. Pure code: no I/O. */
#ifndef HOOKD_EVENT_H
#define HOOKD_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "hookd/buf.h"
#include "hookd/err.h"
#include "hookd/json.h"

#define EVENT_ID_MAX 100            /* batchId and callData.id, bytes */
#define EVENT_TOTAL_MAX 100000000   /* calls in one batch */

enum event_type { EVENT_BATCH_CREATE = 1, EVENT_CALL_COMPLETED, EVENT_BATCH_FAILED };

/* The batch's webhook kinds, indexes into event.url. */
enum { EVENT_ON_BATCH_COMPLETE, EVENT_ON_CALL_COMPLETE, EVENT_ON_BATCH_FAILED, EVENT_NURL };

struct event {
    enum event_type type;
    char *batch_id;             /* owned */
    /* batch.create */
    char *agent_id, *user_id;   /* owned */
    long long total;
    int64_t created_ms;         /* -1: when the batch is registered */
    char *secret;               /* owned; NULL = the configured secret */
    char *url[EVENT_NURL];      /* owned; NULL = that webhook is not wanted */
    /* call.completed */
    char *call_id;              /* owned; callData.id */
    int success;
    char *body;                 /* owned; the onCallComplete payload */
    size_t body_len;
    /* batch.failed */
    char *error, *code;         /* owned */
};

/* The name of a type ("batch.create", ...). */
const char *event_type_name(enum event_type t);

/* Validate the typed job root (a JSON object; its "type" member is what
 * made it typed). On success *out is a new event the caller frees with
 * event_free. Returns 0 or HK_EINVAL with err->code "invalid_event" (or a
 * URL's reason) and err->msg naming the field. */
int event_decode(const struct json_value *root, struct event **out, struct hk_err *err);

void event_free(struct event *ev);

/* What applying an event depends on besides the event itself. */
struct event_apply {
    const char *id;             /* the job's own id (dedupe key), or NULL */
    int64_t now_ms;             /* wall clock: startedAt, completedAt, timestamp */
    long batch_ttl_ms;
    long dedupe_window_ms;      /* 0 = no dedupe by id */
    /* When the batch is not registered: 'R' = retry the event after
     * delay_ms (the fallback is its retry envelope), 'D' = give up (the
     * fallback is its dead-letter entry). */
    char fallback;
    long delay_ms;
};

/* Append to out the argument of the RECORD script's kind X: a msgpack map
 * (strings only as str, which Redis's cmsgpack decodes; see RECORD_LUA). */
void event_encode(const struct event *ev, const struct event_apply *ap, struct buf *out);

/* Integer percentage of n over d, rounded half up (as JavaScript's
 * Math.round): 0 when d is 0. RECORD_LUA computes the same in Lua. */
long long event_percent(long long n, long long d);

#endif
