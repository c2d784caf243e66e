/* test_job.c -- job decoding (JSON and msgpack), every field, wrong types. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <msgpack.h>

#include "hookd/job.h"

static const struct job_limits limits = JOB_LIMITS_DEFAULT;

/* Decode text; on success return the job, on failure check the code. */
static struct job *ok(const char *text)
{
    struct job *job;
    struct hk_err err = { "", "" };

    if (job_decode(text, strlen(text), &limits, &job, &err) != 0)
        fail_msg("rejected (%s: %s): %s", err.code, err.msg, text);
    return job;
}

static void bad_n(const char *data, size_t len, const char *code)
{
    struct job *job;
    struct hk_err err = { "", "" };

    if (job_decode(data, len, &limits, &job, &err) == 0)
        fail_msg("accepted: %.*s", (int)len, data);
    assert_string_equal(err.code, code);
    job_free(job);
}

static void bad(const char *text, const char *code)
{
    bad_n(text, strlen(text), code);
}

static void test_json_all_fields(void **state)
{
    (void)state;
    struct job *j = ok("{\"id\":\"evt_123\",\"url\":\"https://example.com/hook\","
                       "\"payload\":{\"b\":0.950,\"a\":\"\\u00e9\"},\"event\":\"call.completed\","
                       "\"headers\":{\"X-Tenant\":\"t1\"},\"secret\":\"s3\","
                       "\"timeout_ms\":30000,\"max_attempts\":4,\"extra\":[1,2]}");
    assert_string_equal(j->id, "evt_123");
    assert_string_equal(j->url, "https://example.com/hook");
    assert_string_equal(j->body, "{\"b\":0.95,\"a\":\"\xc3\xa9\"}");
    assert_int_equal(j->body_len, strlen(j->body));
    assert_string_equal(j->event, "call.completed");
    assert_int_equal(j->nheaders, 1);
    assert_string_equal(j->headers[0].name, "X-Tenant");
    assert_string_equal(j->headers[0].value, "t1");
    assert_string_equal(j->secret, "s3");
    assert_int_equal(j->timeout_ms, 30000);
    assert_int_equal(j->max_attempts, 4);
    assert_null(j->content_type);
    job_free(j);
}

static void test_json_minimal_and_defaults(void **state)
{
    (void)state;
    struct job *j = ok("{\"url\":\"http://h/\",\"payload\":null}");
    assert_null(j->id);
    assert_string_equal(j->body, "null");
    assert_int_equal(j->timeout_ms, 0);
    assert_int_equal(j->max_attempts, 0);
    assert_null(j->secret);
    job_ensure_id(j);
    assert_non_null(j->id);
    assert_int_equal(strlen(j->id), 36);
    assert_memory_equal(j->id, "msg_", 4);
    char first[40];
    strcpy(first, j->id);
    job_ensure_id(j);           /* keeps an existing id */
    assert_string_equal(j->id, first);
    job_free(j);

    j = ok("{\"url\":\"http://h/\",\"body\":\"raw  text\",\"content_type\":\"text/plain\"}");
    assert_string_equal(j->body, "raw  text");
    assert_string_equal(j->content_type, "text/plain");
    job_free(j);
}

static void test_json_errors(void **state)
{
    (void)state;
    bad("", "invalid_format");
    bad("[1,2]", "invalid_format");
    bad("\"str\"", "invalid_format");
    bad("{\"url\":\"http://h/\",\"payload\":1", "invalid_json");
    bad("{\"url\":\"http://h/\",\"payload\":1}x", "invalid_json");
    bad("{\"url\":\"http://h/\",\"payload\":\"\xff\"}", "invalid_utf8");
    bad("{\"payload\":1}", "missing_url");
    bad("{\"url\":7,\"payload\":1}", "invalid_type");
    bad("{\"url\":\"mailto:a@b\",\"payload\":1}", "invalid_url");
    bad("{\"url\":\"http://h/\"}", "missing_body");
    bad("{\"url\":\"http://h/\",\"payload\":1,\"body\":\"x\"}", "invalid_job");
    bad("{\"url\":\"http://h/\",\"body\":5}", "invalid_type");
    bad("{\"url\":\"http://h/\",\"body\":\"\\ud800\"}", "invalid_utf8");
    bad("{\"url\":\"http://h/\",\"payload\":1,\"id\":5}", "invalid_type");
    bad("{\"url\":\"http://h/\",\"payload\":1,\"id\":\"\"}", "invalid_id");
    bad("{\"url\":\"http://h/\",\"payload\":1,\"id\":\"a\\nb\"}", "invalid_id");
    bad("{\"url\":\"http://h/\",\"payload\":1,\"event\":[]}", "invalid_type");
    bad("{\"url\":\"http://h/\",\"payload\":1,\"event\":\"a\\r\\nX: y\"}", "invalid_header");
    bad("{\"url\":\"http://h/\",\"payload\":1,\"headers\":[]}", "invalid_type");
    bad("{\"url\":\"http://h/\",\"payload\":1,\"headers\":{\"A\":1}}", "invalid_type");
    bad("{\"url\":\"http://h/\",\"payload\":1,\"headers\":{\"A B\":\"1\"}}", "invalid_header");
    bad("{\"url\":\"http://h/\",\"payload\":1,\"headers\":{\"Host\":\"x\"}}", "reserved_header");
    bad("{\"url\":\"http://h/\",\"payload\":1,\"headers\":{\"webhook-id\":\"x\"}}",
        "reserved_header");
    bad("{\"url\":\"http://h/\",\"payload\":1,\"secret\":\"\"}", "invalid_type");
    bad("{\"url\":\"http://h/\",\"payload\":1,\"secret\":1}", "invalid_type");
    bad("{\"url\":\"http://h/\",\"payload\":1,\"timeout_ms\":\"5\"}", "invalid_type");
    bad("{\"url\":\"http://h/\",\"payload\":1,\"timeout_ms\":1.5}", "invalid_type");
    bad("{\"url\":\"http://h/\",\"payload\":1,\"timeout_ms\":0}", "invalid_range");
    bad("{\"url\":\"http://h/\",\"payload\":1,\"timeout_ms\":600001}", "invalid_range");
    bad("{\"url\":\"http://h/\",\"payload\":1,\"max_attempts\":0}", "invalid_range");
    bad("{\"url\":\"http://h/\",\"payload\":1,\"max_attempts\":101}", "invalid_range");
    bad("{\"url\":\"http://h/\",\"payload\":1,\"content_type\":\"\"}", "invalid_header");
}

static void test_error_keeps_id(void **state)
{
    struct job *job;
    struct hk_err err;
    const char *t = "{\"id\":\"evt_9\",\"url\":\"ftp://x/\",\"payload\":1}";
    (void)state;
    assert_int_equal(job_decode(t, strlen(t), &limits, &job, &err), HK_EINVAL);
    assert_string_equal(job->id, "evt_9");
    job_free(job);
}

static void test_too_large(void **state)
{
    struct job_limits small = { 32, 64 };
    struct job *job;
    struct hk_err err;
    const char *t = "{\"url\":\"http://h/\",\"payload\":\"0123456789abcdef\"}";
    (void)state;
    assert_int_equal(job_decode(t, strlen(t), &small, &job, &err), HK_EINVAL);
    assert_string_equal(err.code, "too_large");
    job_free(job);
}

/* ---- msgpack ---- */

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

static void test_msgpack_all_fields(void **state)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    struct job *job;
    struct hk_err err;
    (void)state;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 7);
    pack_str(&pk, "id"); pack_str(&pk, "mp_1");
    pack_str(&pk, "url"); pack_str(&pk, "http://h/x");
    pack_str(&pk, "payload");
    msgpack_pack_map(&pk, 5);
    pack_str(&pk, "f"); msgpack_pack_double(&pk, 0.95);
    pack_str(&pk, "i"); msgpack_pack_int64(&pk, -42);
    pack_str(&pk, "u"); msgpack_pack_uint64(&pk, 18446744073709551615ull);
    msgpack_pack_int(&pk, 7); msgpack_pack_true(&pk);   /* integer key -> "7", first */
    pack_str(&pk, "a"); msgpack_pack_array(&pk, 2); msgpack_pack_nil(&pk);
    msgpack_pack_float(&pk, 1.5f);
    pack_str(&pk, "event"); pack_str(&pk, "call.completed");
    pack_str(&pk, "headers"); msgpack_pack_map(&pk, 1); pack_str(&pk, "X-A"); pack_str(&pk, "b");
    pack_str(&pk, "timeout_ms"); msgpack_pack_int(&pk, 1000);
    pack_str(&pk, "max_attempts"); msgpack_pack_int(&pk, 2);
    assert_int_equal(job_decode(sb.data, sb.size, &limits, &job, &err), 0);
    assert_string_equal(job->id, "mp_1");
    assert_string_equal(job->body,
                        "{\"7\":true,\"f\":0.95,\"i\":-42,\"u\":18446744073709552000,\"a\":[null,1.5]}");
    assert_string_equal(job->event, "call.completed");
    assert_string_equal(job->headers[0].value, "b");
    assert_int_equal(job->timeout_ms, 1000);
    assert_int_equal(job->max_attempts, 2);
    job_free(job);
    msgpack_sbuffer_destroy(&sb);
}

static void test_msgpack_bin_body_and_errors(void **state)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    struct job *job;
    struct hk_err err;
    (void)state;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    pack_str(&pk, "url"); pack_str(&pk, "http://h/x");
    pack_str(&pk, "body"); msgpack_pack_bin(&pk, 4); msgpack_pack_bin_body(&pk, "\x00\xff\x01z", 4);
    assert_int_equal(job_decode(sb.data, sb.size, &limits, &job, &err), 0);
    assert_int_equal(job->body_len, 4);
    assert_memory_equal(job->body, "\x00\xff\x01z", 4);
    job_free(job);

    /* bin inside a payload has no JSON form */
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_map(&pk, 2);
    pack_str(&pk, "url"); pack_str(&pk, "http://h/x");
    pack_str(&pk, "payload"); msgpack_pack_bin(&pk, 1); msgpack_pack_bin_body(&pk, "x", 1);
    bad_n(sb.data, sb.size, "invalid_type");

    /* truncated and trailing bytes */
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_map(&pk, 2);
    pack_str(&pk, "url"); pack_str(&pk, "http://h/x");
    pack_str(&pk, "payload"); msgpack_pack_int(&pk, 1);
    bad_n(sb.data, sb.size - 1, "invalid_msgpack");
    msgpack_pack_int(&pk, 1);
    bad_n(sb.data, sb.size, "invalid_msgpack");

    /* non-UTF-8 string in the payload */
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_map(&pk, 2);
    pack_str(&pk, "url"); pack_str(&pk, "http://h/x");
    pack_str(&pk, "payload"); msgpack_pack_str(&pk, 1); msgpack_pack_str_body(&pk, "\xff", 1);
    bad_n(sb.data, sb.size, "invalid_utf8");
    msgpack_sbuffer_destroy(&sb);
}

static void test_msgpack_hostile_lengths(void **state)
{
    (void)state;
    /* Declared lengths far beyond the data: must be rejected before any
     * allocation sized from them (msgpack-c would try to allocate GiBs). */
    bad_n("\xdf\x0f\xff\xff\xff", 5, "invalid_msgpack");
    bad_n("\xdf\xff\xff\xff\xff", 5, "invalid_msgpack");
    bad_n("\xde\xff\xff", 3, "invalid_msgpack");
    bad_n("\x81\xa3url\xdd\x0f\xff\xff\xff", 10, "invalid_msgpack");
    bad_n("\x81\xa3url\xdb\xff\xff\xff\xff", 10, "invalid_msgpack");
    bad_n("\x81\xa3url\xc6\x7f\xff\xff\xff", 10, "invalid_msgpack");
    bad_n("\x81\xa3url\xc1", 6, "invalid_msgpack");
    /* nesting: 100 nested fixarrays inside the payload */
    char deep[128];
    memcpy(deep, "\x82\xa3url\xa3x:/\xa7payload", 17);
    memset(deep + 17, 0x91, 100);
    deep[117] = 0x01;
    bad_n(deep, 118, "invalid_msgpack");
}

static void test_redact(void **state)
{
    struct buf out = BUF_INIT;
    const char *t = "{\"id\":\"x\",\"secret\":\"s\",\"url\":\"http://h/\",\"payload\":{\"k\":1.0}}";
    (void)state;
    assert_int_equal(job_redact(t, strlen(t), &limits, &out), 0);
    assert_string_equal(out.data, "{\"id\":\"x\",\"url\":\"http://h/\",\"payload\":{\"k\":1}}");
    buf_free(&out);
    assert_int_equal(job_redact("nope", 4, &limits, &out), HK_EINVAL);
    assert_int_equal(out.len, 0);
}

/* The marks hookd puts in front of a job it requeues (job.h): the accepted
 * mark, then the crash count; both read and taken off before decoding. */
static void test_marks(void **state)
{
    static const struct {
        const char *data;
        int accepted, crashes;
    } ok_cases[] = {
        { "{\"url\":\"http://h/\",\"body\":\"\"}", 0, 0 },
        { JOB_ACCEPTED_MARK "{\"url\":\"http://h/\",\"body\":\"\"}", 1, 0 },
        { JOB_CRASHED_MARK "2:{\"url\":\"http://h/\",\"body\":\"\"}", 0, 2 },
        { JOB_ACCEPTED_MARK JOB_CRASHED_MARK "100:{\"url\":\"http://h/\",\"body\":\"\"}",
          1, 100 },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(ok_cases) / sizeof(*ok_cases); i++) {
        struct job *j = ok(ok_cases[i].data);
        assert_int_equal(j->accepted, ok_cases[i].accepted);
        assert_int_equal(j->crashes, ok_cases[i].crashes);
        assert_string_equal(j->raw, "{\"url\":\"http://h/\",\"body\":\"\"}");
        job_free(j);
    }
    /* Not a count (digits only, as marks.lua reads it), or in the wrong
     * order: the bytes are left as they are, and are no job. */
    bad(JOB_CRASHED_MARK "inf:{\"url\":\"http://h/\",\"body\":\"\"}", "invalid_format");
    bad(JOB_CRASHED_MARK ":{\"url\":\"http://h/\",\"body\":\"\"}", "invalid_format");
    bad(JOB_CRASHED_MARK "3{\"url\":\"http://h/\",\"body\":\"\"}", "invalid_format");
    bad(JOB_CRASHED_MARK "1:" JOB_ACCEPTED_MARK "{\"url\":\"http://h/\",\"body\":\"\"}",
        "invalid_format");
    bad(JOB_CRASHED_MARK, "invalid_format");
}

/* What a dead entry keeps aside for replay: the job's own secrets, encoded
 * and read back; the older plain secret; the whole job (reclaim.lua's
 * form: 0xc1 + a msgpack map with raw as a str). */
static void test_aside(void **state)
{
    struct buf out = BUF_INIT;
    struct job_aside a;
    (void)state;

    struct job *j = ok("{\"url\":\"http://h/\",\"body\":\"\",\"secret\":\"s1\","
                       "\"secret_previous\":\"s0\"}");
    assert_int_equal(job_aside_encode(j, &out), 1);
    job_free(j);
    assert_int_equal(job_aside_decode(out.data, out.len, &a), 0);
    assert_string_equal(a.secret, "s1");
    assert_string_equal(a.secret_previous, "s0");
    assert_null(a.raw);
    job_aside_free(&a);
    buf_free(&out);

    j = ok("{\"url\":\"http://h/\",\"body\":\"\"}");
    assert_int_equal(job_aside_encode(j, &out), 0);
    assert_int_equal(out.len, 0);
    job_free(j);

    assert_int_equal(job_aside_decode("plain-secret", 12, &a), 0);
    assert_string_equal(a.secret, "plain-secret");
    assert_null(a.secret_previous);
    job_aside_free(&a);

    static const char raw[] = "\xc1\x81\xa3raw\xa7{\"a\":1}";
    assert_int_equal(job_aside_decode(raw, sizeof(raw) - 1, &a), 0);
    assert_int_equal(a.raw_len, 7);
    assert_memory_equal(a.raw, "{\"a\":1}", 7);
    assert_null(a.secret);
    job_aside_free(&a);

    assert_int_equal(job_aside_decode("\xc1\x93", 2, &a), HK_EINVAL);
    job_aside_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_all_fields),
        cmocka_unit_test(test_json_minimal_and_defaults),
        cmocka_unit_test(test_json_errors),
        cmocka_unit_test(test_error_keeps_id),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_msgpack_all_fields),
        cmocka_unit_test(test_msgpack_bin_body_and_errors),
        cmocka_unit_test(test_msgpack_hostile_lengths),
        cmocka_unit_test(test_redact),
        cmocka_unit_test(test_marks),
        cmocka_unit_test(test_aside),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
