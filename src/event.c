/* event.c -- validation and encoding of Dialgen's typed jobs (event.h). */
#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/event.h"
#include "hookd/mem.h"
#include "hookd/policy.h"
#include "hookd/timeutil.h"

const char *event_type_name(enum event_type t)
{
    switch (t) {
    case EVENT_BATCH_CREATE: return "batch.create";
    case EVENT_CALL_COMPLETED: return "call.completed";
    case EVENT_BATCH_FAILED: return "batch.failed";
    }
    return "?";
}

void event_free(struct event *ev)
{
    if (ev == NULL)
        return;
    free(ev->batch_id);
    free(ev->agent_id);
    free(ev->user_id);
    free(ev->secret);
    for (int i = 0; i < EVENT_NURL; i++)
        free(ev->url[i]);
    free(ev->call_id);
    free(ev->body);
    free(ev->error);
    free(ev->code);
    free(ev);
}

static int bad(struct hk_err *err, const char *type, const char *what)
{
    return hk_err_set(err, HK_EINVAL, "invalid_event", "%s: %s", type, what);
}

/* A string member, copied to *out; max_len 0 = any length. NULL members
 * are an error when required, else leave *out NULL. */
static int get_string(const struct json_value *obj, const char *key, int required,
                      size_t max_len, char **out)
{
    const struct json_value *v = json_object_get(obj, key);

    if (v == NULL)
        return required ? -1 : 0;
    /* No NUL inside: these become C strings, which would cut them short. */
    if (v->type != JSON_STRING || !json_utf8_valid(v->u.string.ptr, v->u.string.len) ||
        memchr(v->u.string.ptr, '\0', v->u.string.len) != NULL ||
        (required && v->u.string.len == 0) || (max_len && v->u.string.len > max_len))
        return -1;
    *out = xstrndup(v->u.string.ptr, v->u.string.len);
    return 0;
}

/* An id that becomes part of a webhook-id header and a Redis key. */
static int get_id(const struct json_value *obj, const char *key, char **out)
{
    const struct json_value *v = json_object_get(obj, key);

    /* Checked over its whole length: a NUL inside must not cut it short. */
    if (v == NULL || v->type != JSON_STRING ||
        policy_check_header_value(v->u.string.ptr, v->u.string.len) < 0 ||
        memchr(v->u.string.ptr, '\t', v->u.string.len) != NULL)
        return -1;
    return get_string(obj, key, 1, EVENT_ID_MAX, out);
}

static int decode_create(struct event *ev, const struct json_value *root, struct hk_err *err)
{
    static const char *const names[EVENT_NURL] = { "onBatchComplete", "onCallComplete",
                                                   "onBatchFailed" };
    const char *t = "batch.create";
    const struct json_value *v;
    struct hk_err url_err;
    int rc;

    if (get_string(root, "agentId", 1, 1024, &ev->agent_id) < 0)
        return bad(err, t, "agentId must be a non-empty string");
    if (get_string(root, "userId", 1, 1024, &ev->user_id) < 0)
        return bad(err, t, "userId must be a non-empty string");
    v = json_object_get(root, "total");
    if (v == NULL || v->type != JSON_NUMBER || v->u.number != floor(v->u.number) ||
        v->u.number < 1 || v->u.number > EVENT_TOTAL_MAX)
        return bad(err, t, "total must be an integer from 1 to 100000000");
    ev->total = (long long)v->u.number;
    ev->created_ms = -1;
    v = json_object_get(root, "createdAt");
    if (v != NULL && !(v->type == JSON_STRING &&
                       time_parse_iso(v->u.string.ptr, v->u.string.len, &ev->created_ms) == 0))
        return bad(err, t, "createdAt must be an ISO-8601 date-time with a zone "
                           "(2025-11-15T14:00:00.000Z)");
    if (get_string(root, "secret", 0, 0, &ev->secret) < 0 ||
        (ev->secret != NULL && ev->secret[0] == '\0'))
        return bad(err, t, "secret must be a non-empty string");
    const struct json_value *opt = json_object_get(root, "options");
    const struct json_value *hooks = opt ? json_object_get(opt, "webhooks") : NULL;
    if ((opt != NULL && opt->type != JSON_OBJECT) || (hooks != NULL && hooks->type != JSON_OBJECT))
        return bad(err, t, "options.webhooks must be an object");
    for (int i = 0; hooks != NULL && i < EVENT_NURL; i++) {
        v = json_object_get(hooks, names[i]);
        if (v == NULL || v->type == JSON_NULL)
            continue;   /* that webhook is not wanted */
        char origin[POLICY_ORIGIN_MAX];
        if (v->type != JSON_STRING)
            return bad(err, t, "options.webhooks values must be URL strings");
        if ((rc = policy_check_url(v->u.string.ptr, v->u.string.len, origin, sizeof(origin),
                                   &url_err)) < 0)
            /* policy's message says "url"; name the field that holds it */
            return hk_err_set(err, rc, url_err.code, "%s: options.webhooks.%s: %s", t,
                              names[i], url_err.msg);
        ev->url[i] = xstrndup(v->u.string.ptr, v->u.string.len);
    }
    return 0;
}

static int decode_call(struct event *ev, const struct json_value *root, struct hk_err *err)
{
    const char *t = "call.completed";
    const struct json_value *ok = json_object_get(root, "success");
    const struct json_value *data = json_object_get(root, "callData");
    const struct json_value *schema = json_object_get(root, "metricSchema");
    struct buf b = BUF_INIT;

    if (ok == NULL || (ok->type != JSON_TRUE && ok->type != JSON_FALSE))
        return bad(err, t, "success must be true or false");
    if (data == NULL || data->type != JSON_OBJECT)
        return bad(err, t, "callData must be an object");
    if (get_id(data, "id", &ev->call_id) < 0)
        return bad(err, t, "callData.id must be 1-100 bytes without control characters");
    ev->success = ok->type == JSON_TRUE;
    /* The payload as the documentation shows it; a missing metricSchema
     * is left out, as JSON.stringify leaves out an undefined member. */
    buf_append_str(&b, ev->success ? "{\"success\":true,\"callData\":"
                                   : "{\"success\":false,\"callData\":");
    json_write(&b, data);
    if (schema != NULL) {
        buf_append_str(&b, ",\"metricSchema\":");
        json_write(&b, schema);
    }
    buf_append_char(&b, '}');
    ev->body = buf_steal(&b, &ev->body_len);
    return 0;
}

static int decode_failed(struct event *ev, const struct json_value *root, struct hk_err *err)
{
    if (get_string(root, "error", 0, 4096, &ev->error) < 0 || ev->error == NULL)
        return bad(err, "batch.failed", "error must be a string");
    if (get_string(root, "code", 0, 256, &ev->code) < 0 || ev->code == NULL)
        return bad(err, "batch.failed", "code must be a string");
    return 0;
}

int event_decode(const struct json_value *root, struct event **out, struct hk_err *err)
{
    struct event *ev = xcalloc(1, sizeof(*ev));
    const struct json_value *type = json_object_get(root, "type");
    int rc;

    *out = NULL;
    if (type == NULL || type->type != JSON_STRING) {
        rc = hk_err_set(err, HK_EINVAL, "invalid_event", "type must be a string");
        goto out_free;
    }
    for (ev->type = EVENT_BATCH_CREATE; ev->type <= EVENT_BATCH_FAILED; ev->type++)
        if (strcmp(type->u.string.ptr, event_type_name(ev->type)) == 0)
            break;
    if (ev->type > EVENT_BATCH_FAILED) {
        rc = hk_err_set(err, HK_EINVAL, "invalid_event", "unknown type (batch.create, "
                        "call.completed or batch.failed)");
        goto out_free;
    }
    if (get_id(root, "batchId", &ev->batch_id) < 0) {
        rc = bad(err, event_type_name(ev->type),
                 "batchId must be 1-100 bytes without control characters");
        goto out_free;
    }
    /* P:batch:<id>:calls is batch <id>'s set of counted calls: a batch
     * whose own id ends in ":calls" would take that key's name. */
    size_t blen = strlen(ev->batch_id);
    if (blen >= 6 && strcmp(ev->batch_id + blen - 6, ":calls") == 0) {
        rc = bad(err, event_type_name(ev->type), "batchId must not end in \":calls\"");
        goto out_free;
    }
    rc = ev->type == EVENT_BATCH_CREATE ? decode_create(ev, root, err)
         : ev->type == EVENT_CALL_COMPLETED ? decode_call(ev, root, err)
         : decode_failed(ev, root, err);
    if (rc == 0) {
        *out = ev;
        return 0;
    }
out_free:
    event_free(ev);
    return rc;
}

long long event_percent(long long n, long long d)
{
    return d > 0 ? (200 * n + d) / (2 * d) : 0;
}

/* ---- encoding for RECORD_LUA --------------------------------------------- */

static int sbuf_write(void *data, const char *p, size_t len)
{
    buf_append(data, p, len);
    return 0;
}

static void pack_kv(msgpack_packer *pk, const char *k, const char *v, size_t vlen)
{
    msgpack_pack_str(pk, strlen(k));
    msgpack_pack_str_body(pk, k, strlen(k));
    msgpack_pack_str(pk, vlen);
    msgpack_pack_str_body(pk, v, vlen);
}

static void pack_ks(msgpack_packer *pk, const char *k, const char *v)
{
    pack_kv(pk, k, v, strlen(v));
}

static void pack_ki(msgpack_packer *pk, const char *k, long long v)
{
    msgpack_pack_str(pk, strlen(k));
    msgpack_pack_str_body(pk, k, strlen(k));
    msgpack_pack_long_long(pk, v);
}

/* `"name":"value"` fragments, so the script builds payloads by joining
 * strings and never escapes JSON itself. */
static void fragment(struct buf *b, const char *name, const char *value)
{
    buf_printf(b, "%s\"%s\":", b->len ? "," : "", name);
    json_write_string(b, value, strlen(value));
}

void event_encode(const struct event *ev, const struct event_apply *ap, struct buf *out)
{
    static const char *const url_keys[EVENT_NURL] = { "on_complete", "on_call", "on_failed" };
    char now[TIME_ISO_LEN + 1], created[TIME_ISO_LEN + 1];
    struct buf f1 = BUF_INIT, f2 = BUF_INIT;
    msgpack_packer pk;
    size_t n = 5;

    /* Count the map's entries first: msgpack maps are length-prefixed. */
    if (ap->id != NULL)
        n++;
    if (ev->type == EVENT_BATCH_CREATE) {
        n += 6 + (ev->secret != NULL);
        for (int i = 0; i < EVENT_NURL; i++)
            n += ev->url[i] != NULL;
    } else {
        n += 5;     /* call: call, ok, body, fb, delay; failed: ec, error, code, fb, delay */
    }
    time_format_iso(ap->now_ms, now);
    msgpack_packer_init(&pk, out, sbuf_write);
    msgpack_pack_map(&pk, n);
    pack_ks(&pk, "t", event_type_name(ev->type));
    pack_ks(&pk, "b", ev->batch_id);
    pack_ks(&pk, "now", now);
    pack_ki(&pk, "win", ap->dedupe_window_ms);
    pack_ki(&pk, "ttl", ap->batch_ttl_ms);
    if (ap->id != NULL)
        pack_ks(&pk, "eid", ap->id);
    switch (ev->type) {
    case EVENT_BATCH_CREATE:
        time_format_iso(ev->created_ms >= 0 ? ev->created_ms : ap->now_ms, created);
        fragment(&f1, "batchId", ev->batch_id);
        fragment(&f1, "agentId", ev->agent_id);
        fragment(&f2, "userId", ev->user_id);
        pack_ks(&pk, "agent", ev->agent_id);
        pack_ks(&pk, "user", ev->user_id);
        pack_ki(&pk, "total", ev->total);
        pack_ks(&pk, "created", created);
        pack_kv(&pk, "jb", f1.data, f1.len);
        pack_kv(&pk, "ju", f2.data, f2.len);
        if (ev->secret != NULL)
            pack_ks(&pk, "secret", ev->secret);
        for (int i = 0; i < EVENT_NURL; i++)
            if (ev->url[i] != NULL)
                pack_ks(&pk, url_keys[i], ev->url[i]);
        break;
    case EVENT_CALL_COMPLETED:
        pack_ks(&pk, "call", ev->call_id);
        pack_ki(&pk, "ok", ev->success);
        pack_kv(&pk, "body", ev->body, ev->body_len);
        pack_ks(&pk, "fb", ap->fallback == 'R' ? "R" : "D");
        pack_ki(&pk, "delay", ap->delay_ms);
        break;
    case EVENT_BATCH_FAILED:
        fragment(&f1, "error", ev->error);
        fragment(&f1, "code", ev->code);
        pack_kv(&pk, "ec", f1.data, f1.len);
        pack_ks(&pk, "error", ev->error);
        pack_ks(&pk, "code", ev->code);
        pack_ks(&pk, "fb", ap->fallback == 'R' ? "R" : "D");
        pack_ki(&pk, "delay", ap->delay_ms);
        break;
    }
    buf_free(&f1);
    buf_free(&f2);
}
