/* test_event.c -- Dialgen typed jobs: validation, the rendered call payload,
 * the map handed to the RECORD script, percentages and ISO-8601 parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <msgpack.h>

#include "hookd/event.h"
#include "hookd/job.h"
#include "hookd/timeutil.h"

static const struct job_limits limits = JOB_LIMITS_DEFAULT;

/* Decode a typed job through job_decode, as a worker does. */
static struct job *ok(const char *text)
{
    struct job *job;
    struct hk_err err = { "", "" };

    if (job_decode(text, strlen(text), &limits, &job, &err) != 0)
        fail_msg("rejected (%s: %s): %s", err.code, err.msg, text);
    assert_non_null(job->typed);
    assert_null(job->url);
    return job;
}

static void bad(const char *text, const char *code)
{
    struct job *job;
    struct hk_err err = { "", "" };

    if (job_decode(text, strlen(text), &limits, &job, &err) == 0)
        fail_msg("accepted: %s", text);
    assert_string_equal(err.code, code);
    assert_null(job->typed);
    job_free(job);
}

static void test_batch_create(void **state)
{
    (void)state;
    struct job *job = ok("{\"type\":\"batch.create\",\"id\":\"e1\",\"batchId\":\"batch_123\","
                         "\"agentId\":\"agent_456\",\"userId\":\"user_789\",\"total\":1000,"
                         "\"createdAt\":\"2025-11-15T15:00:00.5+01:00\",\"secret\":\"s3\","
                         "\"options\":{\"webhooks\":{\"onBatchComplete\":\"https://a.example/b\","
                         "\"onCallComplete\":\"http://127.0.0.1:3000/c\",\"onBatchFailed\":null}}}");
    const struct event *ev = job->typed;

    assert_int_equal(ev->type, EVENT_BATCH_CREATE);
    assert_string_equal(job->id, "e1");
    assert_string_equal(ev->batch_id, "batch_123");
    assert_string_equal(ev->agent_id, "agent_456");
    assert_string_equal(ev->user_id, "user_789");
    assert_int_equal(ev->total, 1000);
    assert_int_equal(ev->created_ms, 1763215200500LL);     /* 14:00:00.500Z */
    assert_string_equal(ev->secret, "s3");
    assert_string_equal(ev->url[EVENT_ON_BATCH_COMPLETE], "https://a.example/b");
    assert_string_equal(ev->url[EVENT_ON_CALL_COMPLETE], "http://127.0.0.1:3000/c");
    assert_null(ev->url[EVENT_ON_BATCH_FAILED]);
    job_free(job);

    /* no options, no createdAt, no secret: all optional */
    job = ok("{\"type\":\"batch.create\",\"batchId\":\"b\",\"agentId\":\"a\",\"userId\":\"u\","
             "\"total\":1}");
    assert_int_equal(job->typed->created_ms, -1);
    assert_null(job->typed->secret);
    assert_null(job->id);
    for (int i = 0; i < EVENT_NURL; i++)
        assert_null(job->typed->url[i]);
    job_free(job);
}

static void test_call_payload(void **state)
{
    (void)state;
    /* The payload is {success, callData, metricSchema} in that order, each
     * in JSON.stringify form, whatever the order and spelling pushed. */
    struct job *job = ok("{\"metricSchema\": {\"b\": 1, \"a\": [1.50, 1e21]},"
                         " \"callData\": {\"id\": \"call_1\", \"duration\": 180.0,"
                         " \"summary\": \"\\u00fc\\u2028\"}, \"success\": true,"
                         " \"batchId\": \"b1\", \"type\": \"call.completed\"}");
    const struct event *ev = job->typed;
    const char *want = "{\"success\":true,\"callData\":{\"id\":\"call_1\",\"duration\":180,"
                       "\"summary\":\"\xc3\xbc\xe2\x80\xa8\"},\"metricSchema\":{\"b\":1,"
                       "\"a\":[1.5,1e+21]}}";

    assert_int_equal(ev->type, EVENT_CALL_COMPLETED);
    assert_string_equal(ev->call_id, "call_1");
    assert_int_equal(ev->success, 1);
    assert_int_equal(ev->body_len, strlen(want));
    assert_string_equal(ev->body, want);
    job_free(job);

    /* without metricSchema it is left out, as JSON.stringify does */
    job = ok("{\"type\":\"call.completed\",\"batchId\":\"b1\",\"success\":false,"
             "\"callData\":{\"id\":\"c\"}}");
    assert_string_equal(job->typed->body, "{\"success\":false,\"callData\":{\"id\":\"c\"}}");
    job_free(job);
}

static void test_batch_failed(void **state)
{
    (void)state;
    struct job *job = ok("{\"type\":\"batch.failed\",\"batchId\":\"b\","
                         "\"error\":\"Insufficient call minutes\","
                         "\"code\":\"INSUFFICIENT_CREDITS\"}");

    assert_int_equal(job->typed->type, EVENT_BATCH_FAILED);
    assert_string_equal(job->typed->error, "Insufficient call minutes");
    assert_string_equal(job->typed->code, "INSUFFICIENT_CREDITS");
    job_free(job);
}

static void test_invalid(void **state)
{
    (void)state;
    const char *c = "\"type\":\"batch.create\",\"batchId\":\"b\",\"agentId\":\"a\","
                    "\"userId\":\"u\"";
    char text[512];

    bad("{\"type\":\"batch.delete\",\"batchId\":\"b\"}", "invalid_event");
    bad("{\"type\":5,\"batchId\":\"b\"}", "invalid_event");
    bad("{\"type\":\"batch.failed\",\"error\":\"e\",\"code\":\"c\"}", "invalid_event");
    bad("{\"type\":\"batch.failed\",\"batchId\":\"\",\"error\":\"e\",\"code\":\"c\"}",
        "invalid_event");
    bad("{\"type\":\"batch.failed\",\"batchId\":\"a\\tb\",\"error\":\"e\",\"code\":\"c\"}",
        "invalid_event");
    bad("{\"type\":\"batch.failed\",\"batchId\":\"b\",\"code\":\"c\"}", "invalid_event");
    bad("{\"type\":\"batch.failed\",\"batchId\":\"b\",\"error\":\"e\",\"code\":null}",
        "invalid_event");
    const char *totals[] = { "0", "-1", "1.5", "\"10\"", "100000001", "null" };
    for (size_t i = 0; i < sizeof(totals) / sizeof(*totals); i++) {
        snprintf(text, sizeof(text), "{%s,\"total\":%s}", c, totals[i]);
        bad(text, "invalid_event");
    }
    snprintf(text, sizeof(text), "{%s,\"total\":1,\"createdAt\":\"2025-02-29T00:00:00Z\"}", c);
    bad(text, "invalid_event");
    snprintf(text, sizeof(text), "{%s,\"total\":1,\"createdAt\":1731680000000}", c);
    bad(text, "invalid_event");
    snprintf(text, sizeof(text), "{%s,\"total\":1,\"secret\":\"\"}", c);
    bad(text, "invalid_event");
    snprintf(text, sizeof(text), "{%s,\"total\":1,\"options\":{\"webhooks\":[]}}", c);
    bad(text, "invalid_event");
    snprintf(text, sizeof(text),
             "{%s,\"total\":1,\"options\":{\"webhooks\":{\"onCallComplete\":\"ftp://x/\"}}}", c);
    bad(text, "invalid_url");
    snprintf(text, sizeof(text),
             "{%s,\"total\":1,\"options\":{\"webhooks\":{\"onCallComplete\":7}}}", c);
    bad(text, "invalid_event");
    bad("{\"type\":\"batch.create\",\"batchId\":\"b\",\"userId\":\"u\",\"total\":1}",
        "invalid_event");
    bad("{\"type\":\"call.completed\",\"batchId\":\"b\",\"success\":1,\"callData\":{\"id\":\"c\"}}",
        "invalid_event");
    bad("{\"type\":\"call.completed\",\"batchId\":\"b\",\"success\":true,\"callData\":[]}",
        "invalid_event");
    bad("{\"type\":\"call.completed\",\"batchId\":\"b\",\"success\":true,\"callData\":{}}",
        "invalid_event");
    bad("{\"type\":\"call.completed\",\"batchId\":\"b\",\"success\":true,"
        "\"callData\":{\"id\":\"a\\u0000b\"}}", "invalid_event");
    bad("{\"type\":\"batch.failed\",\"batchId\":\"b\",\"error\":\"e\\u0000\",\"code\":\"c\"}",
        "invalid_event");
    /* the job's own id is still checked */
    bad("{\"type\":\"batch.failed\",\"id\":\"\",\"batchId\":\"b\",\"error\":\"e\",\"code\":\"c\"}",
        "invalid_id");
}

static void test_msgpack_typed(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    struct job *job;
    struct hk_err err = { "", "" };

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
#define STR(s) msgpack_pack_str(&pk, strlen(s)), msgpack_pack_str_body(&pk, s, strlen(s))
    STR("type"); STR("call.completed");
    STR("batchId"); STR("b");
    STR("success"); msgpack_pack_true(&pk);
    STR("callData"); msgpack_pack_map(&pk, 2); STR("id"); STR("c1"); STR("n"); msgpack_pack_int(&pk, 3);
#undef STR
    assert_int_equal(job_decode(sb.data, sb.size, &limits, &job, &err), 0);
    assert_string_equal(job->typed->body, "{\"success\":true,\"callData\":{\"id\":\"c1\",\"n\":3}}");
    job_free(job);
    msgpack_sbuffer_destroy(&sb);
}

/* Unpack event_encode()'s map and check it is well-formed (the declared
 * count matches the entries) and holds the given keys. */
static void check_map(const struct buf *b, const char *const *keys, size_t nkeys)
{
    msgpack_unpacked up;
    size_t off = 0;

    msgpack_unpacked_init(&up);
    assert_int_equal(msgpack_unpack_next(&up, b->data, b->len, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, b->len);
    assert_int_equal(up.data.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(up.data.via.map.size, nkeys);
    for (size_t i = 0; i < nkeys; i++) {
        int found = 0;
        for (uint32_t k = 0; k < up.data.via.map.size; k++) {
            const msgpack_object *key = &up.data.via.map.ptr[k].key;
            const msgpack_object *v = &up.data.via.map.ptr[k].val;
            assert_int_equal(key->type, MSGPACK_OBJECT_STR);
            /* cmsgpack in Redis cannot read bin: strings only */
            assert_int_not_equal(v->type, MSGPACK_OBJECT_BIN);
            found |= key->via.str.size == strlen(keys[i]) &&
                     memcmp(key->via.str.ptr, keys[i], key->via.str.size) == 0;
        }
        if (!found)
            fail_msg("key %s missing", keys[i]);
    }
    msgpack_unpacked_destroy(&up);
}

static void test_encode(void **state)
{
    (void)state;
    struct event_apply ap = { .id = "e1", .now_ms = 1763215200000LL, .batch_ttl_ms = 1000,
                              .dedupe_window_ms = 5, .fallback = 'R', .delay_ms = 250 };
    struct buf b = BUF_INIT;
    struct job *job = ok("{\"type\":\"batch.create\",\"batchId\":\"b\",\"agentId\":\"a\\\"\","
                         "\"userId\":\"u\",\"total\":3,\"secret\":\"s\",\"options\":{\"webhooks\":"
                         "{\"onBatchFailed\":\"http://h/f\",\"onCallComplete\":\"http://h/c\"}}}");
    const char *create[] = { "t", "b", "now", "win", "ttl", "eid", "agent", "user", "total",
                             "created", "jb", "ju", "secret", "on_failed", "on_call" };
    event_encode(job->typed, &ap, &b);
    check_map(&b, create, sizeof(create) / sizeof(*create));
    /* the ids' JSON fragments are escaped here, not in Lua */
    assert_non_null(memmem(b.data, b.len, "\"batchId\":\"b\",\"agentId\":\"a\\\"\"", 27));
    assert_non_null(memmem(b.data, b.len, "2025-11-15T14:00:00.000Z", 24));
    job_free(job);

    buf_reset(&b);
    ap.id = NULL;
    job = ok("{\"type\":\"call.completed\",\"batchId\":\"b\",\"success\":true,"
             "\"callData\":{\"id\":\"c\"}}");
    const char *call[] = { "t", "b", "now", "win", "ttl", "call", "ok", "body", "fb", "delay" };
    event_encode(job->typed, &ap, &b);
    check_map(&b, call, sizeof(call) / sizeof(*call));
    job_free(job);

    buf_reset(&b);
    job = ok("{\"type\":\"batch.failed\",\"batchId\":\"b\",\"error\":\"e\\n\",\"code\":\"C\"}");
    const char *failed[] = { "t", "b", "now", "win", "ttl", "ec", "error", "code", "fb", "delay" };
    event_encode(job->typed, &ap, &b);
    check_map(&b, failed, sizeof(failed) / sizeof(*failed));
    assert_non_null(memmem(b.data, b.len, "\"error\":\"e\\n\",\"code\":\"C\"", 24));
    job_free(job);
    buf_free(&b);
}

static void test_percent(void **state)
{
    (void)state;
    assert_int_equal(event_percent(800, 1000), 80);
    assert_int_equal(event_percent(850, 1000), 85);
    assert_int_equal(event_percent(1000, 1000), 100);
    assert_int_equal(event_percent(1, 200), 1);     /* 0.5 rounds up */
    assert_int_equal(event_percent(1, 201), 0);
    assert_int_equal(event_percent(1, 3), 33);
    assert_int_equal(event_percent(2, 3), 67);
    assert_int_equal(event_percent(1999, 2000), 100);   /* 99.95 */
    assert_int_equal(event_percent(0, 0), 0);
    assert_int_equal(event_percent(0, 7), 0);
}

static void test_parse_iso(void **state)
{
    (void)state;
    int64_t ms;
    char out[TIME_ISO_LEN + 1];

    assert_int_equal(time_parse_iso("1970-01-01T00:00:00Z", 20, &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(time_parse_iso("2025-11-15T14:00:00.000Z", 24, &ms), 0);
    time_format_iso(ms, out);
    assert_string_equal(out, "2025-11-15T14:00:00.000Z");
    assert_int_equal(time_parse_iso("2024-02-29 23:59:59.1239-02:30", 30, &ms), 0);
    time_format_iso(ms, out);
    assert_string_equal(out, "2024-03-01T02:29:59.123Z");
    const char *badv[] = { "2025-11-15", "2025-11-15T14:00:00", "2025-13-01T00:00:00Z",
                           "2025-11-31T00:00:00Z", "2100-02-29T00:00:00Z",
                           "2025-11-15T24:00:00Z", "2025-11-15T14:00:00.Z",
                           "2025-11-15T14:00:00+0100", "2025-11-15T14:00:00Zjunk",
                           "1969-12-31T23:59:59Z", "1970-01-01T00:00:00+00:01",
                           "2025-1x-15T14:00:00Z" };
    for (size_t i = 0; i < sizeof(badv) / sizeof(*badv); i++)
        if (time_parse_iso(badv[i], strlen(badv[i]), &ms) == 0)
            fail_msg("accepted %s", badv[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_create),
        cmocka_unit_test(test_call_payload),
        cmocka_unit_test(test_batch_failed),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_msgpack_typed),
        cmocka_unit_test(test_encode),
        cmocka_unit_test(test_percent),
        cmocka_unit_test(test_parse_iso),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
