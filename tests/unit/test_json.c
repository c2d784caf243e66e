/* test_json.c -- canonical JSON: fixed vectors, rejections, and a
 * differential test against node's JSON.stringify(JSON.parse(text)). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "hookd/json.h"

/* Parse text and return its canonical form (caller frees), or NULL when the
 * parser rejects it; *code receives the reason code. */
static char *canon(const char *text, size_t len, char *code)
{
    struct json_doc *doc = json_doc_new();
    struct json_value *v;
    struct hk_err err = { "", "" };
    struct buf out = BUF_INIT;
    char *res = NULL;

    if (json_parse(doc, text, len, 64, &v, &err) == 0) {
        json_write(&out, v);
        res = buf_steal(&out, NULL);
    } else if (code != NULL) {
        strcpy(code, err.code);
    }
    json_doc_free(doc);
    return res;
}

static void expect(const char *in, const char *want)
{
    char *got = canon(in, strlen(in), NULL);
    if (got == NULL)
        fail_msg("rejected: %s", in);
    assert_string_equal(got, want);
    free(got);
}

static void expect_reject(const char *in, size_t len, const char *code)
{
    char got_code[32] = "";
    char *got = canon(in, len, got_code);
    if (got != NULL)
        fail_msg("accepted %s as %s", in, got);
    assert_string_equal(got_code, code);
}

static void test_numbers(void **state)
{
    (void)state;
    expect("0.950", "0.95");
    expect("1e2", "100");
    expect("-0", "0");
    expect("-0.0", "0");
    expect("1.0", "1");
    expect("1e21", "1e+21");
    expect("1e20", "100000000000000000000");
    expect("123456789012345678901", "123456789012345680000");
    expect("1e-7", "1e-7");
    expect("1e-6", "0.000001");
    expect("0.1", "0.1");
    expect("1e400", "null");
    expect("-1e400", "null");
    expect("1e-400", "0");
    expect("5e-324", "5e-324");
    expect("1.7976931348623157e308", "1.7976931348623157e+308");
    expect("9007199254740993", "9007199254740992");
    expect("-1.5E+3", "-1500");
    expect("2.5e-5", "0.000025");
    expect("12345678.9", "12345678.9");
    expect("[0.3,1e100,-2e-10]", "[0.3,1e+100,-2e-10]");
}

static void test_strings(void **state)
{
    (void)state;
    expect("\"\\u00e9\"", "\"\xc3\xa9\"");
    expect("\"\\/\"", "\"/\"");
    expect("\"a\\\"b\\\\c\"", "\"a\\\"b\\\\c\"");
    expect("\"\\b\\f\\n\\r\\t\"", "\"\\b\\f\\n\\r\\t\"");
    expect("\"\\u0001\\u001F\\u007f\"", "\"\\u0001\\u001f\x7f\"");
    expect("\"\\uD83D\\uDE00\"", "\"\xf0\x9f\x98\x80\"");
    expect("\"\\ud800\"", "\"\\ud800\"");
    expect("\"\\uDC00x\\uD83D\"", "\"\\udc00x\\ud83d\"");
    expect("\"\\u2028\"", "\"\xe2\x80\xa8\"");
    expect("\"\\u0000\"", "\"\\u0000\"");
}

static void test_objects(void **state)
{
    (void)state;
    expect(" { \"b\" : 1 , \"a\" : [ true , false , null ] } ",
           "{\"b\":1,\"a\":[true,false,null]}");
    expect("{\"a\":1,\"b\":2,\"a\":3}", "{\"a\":3,\"b\":2}");
    expect("{\"z\":1,\"10\":2,\"2\":3,\"01\":4,\"-1\":5,\"4294967294\":6,\"4294967295\":7}",
           "{\"2\":3,\"10\":2,\"4294967294\":6,\"z\":1,\"01\":4,\"-1\":5,\"4294967295\":7}");
    expect("{\"__proto__\":{\"x\":1}}", "{\"__proto__\":{\"x\":1}}");
    expect("{}", "{}");
    expect("[]", "[]");
    expect("[[]]", "[[]]");
}

static void test_large_object_duplicates(void **state)
{
    struct buf in = BUF_INIT, want = BUF_INIT;
    (void)state;
    /* 40 keys, each repeated: exercises the sorted (n > 16) path. */
    buf_append_char(&in, '{');
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 40; i++)
            buf_printf(&in, "%s\"k%d\":%d", round || i ? "," : "", i, round * 100 + i);
    buf_append_char(&in, '}');
    buf_append_char(&want, '{');
    for (int i = 0; i < 40; i++)
        buf_printf(&want, "%s\"k%d\":%d", i ? "," : "", i, 100 + i);
    buf_append_char(&want, '}');
    expect(in.data, want.data);
    buf_free(&in);
    buf_free(&want);
}

static void test_rejections(void **state)
{
    (void)state;
    expect_reject("{\"a\":1", 6, "invalid_json");
    expect_reject("{\"a\":1} x", 9, "invalid_json");
    expect_reject("{\"a\":1,}", 8, "invalid_json");
    expect_reject("[1,]", 4, "invalid_json");
    expect_reject("01", 2, "invalid_json");
    expect_reject("1.", 2, "invalid_json");
    expect_reject(".5", 2, "invalid_json");
    expect_reject("+1", 2, "invalid_json");
    expect_reject("NaN", 3, "invalid_json");
    expect_reject("'a'", 3, "invalid_json");
    expect_reject("\"a\nb\"", 5, "invalid_json");
    expect_reject("\"\\x\"", 4, "invalid_json");
    expect_reject("\"\\u12\"", 6, "invalid_json");
    expect_reject("\"\xff\"", 3, "invalid_utf8");
    expect_reject("\"\xc0\xaf\"", 4, "invalid_utf8");          /* overlong */
    expect_reject("\"\xed\xa0\x80\"", 5, "invalid_utf8");      /* raw surrogate */
    expect_reject("\xef\xbb\xbf{}", 5, "invalid_json");        /* BOM */
    expect_reject("", 0, "invalid_json");
    expect_reject("{\"a\":1}\0", 8, "invalid_json");
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    expect_reject(deep, 200, "too_deep");
}

/* ---- differential test against node ------------------------------------- */

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static void gen_ws(struct buf *b)
{
    static const char *ws[] = { "", "", "", " ", "\n", "\t", "\r\n  " };
    buf_append_str(b, ws[rnd(7)]);
}

static void gen_number(struct buf *b)
{
    static const char *tricky[] = {
        "0.95", "0.950", "1e21", "1e-7", "-0", "1.0", "1E2", "1e400", "-1e400", "5e-324",
        "1e-400", "123456789012345678901234567890", "0.1", "2.5e-5", "9007199254740993",
        "1.7976931348623157e308", "2.2250738585072014e-308", "4294967295", "1e-6", "1e+21",
        "100000000000000000000", "0.30000000000000004", "1.2e-7", "-0.0", "0", "7e22",
        "5e-7", "1.5e300", "999999999999999999999", "0.000001234", "123.456e-2",
    };
    char tmp[64];

    switch (rnd(5)) {
    case 0:
        buf_append_str(b, tricky[rnd(sizeof(tricky) / sizeof(*tricky))]);
        break;
    case 1: { /* random bit pattern, printed with 17 digits */
        uint64_t bits = ((uint64_t)rnd(0xFFFFFFFFu) << 32) | rnd(0xFFFFFFFFu);
        double d;
        memcpy(&d, &bits, sizeof(d));
        if (d != d || d - d != 0)
            d = 1.5;
        snprintf(tmp, sizeof(tmp), "%.17g", d);
        buf_append_str(b, tmp);
        break;
    }
    case 2: /* integer */
        snprintf(tmp, sizeof(tmp), "%s%u", rnd(3) ? "" : "-", rnd(2000000000));
        buf_append_str(b, tmp);
        break;
    default: { /* mantissa digits, fraction, exponent */
        if (rnd(4) == 0)
            buf_append_char(b, '-');
        int n = 1 + (int)rnd(20);
        buf_append_char(b, (char)('1' + rnd(9)));
        for (int i = 1; i < n; i++)
            buf_append_char(b, (char)('0' + rnd(10)));
        if (rnd(2)) {
            buf_append_char(b, '.');
            n = 1 + (int)rnd(20);
            for (int i = 0; i < n; i++)
                buf_append_char(b, (char)('0' + rnd(10)));
        }
        if (rnd(2)) {
            snprintf(tmp, sizeof(tmp), "%c%s%u", rnd(2) ? 'e' : 'E',
                     rnd(3) == 0 ? "-" : rnd(2) ? "+" : "", rnd(330));
            buf_append_str(b, tmp);
        }
    }
    }
}

static void gen_string(struct buf *b, int keyish)
{
    static const char *pieces[] = {
        "a", "b", "hello", " ", "\\n", "\\\"", "\\\\", "\\/", "\\u00e9", "\\u00E9",
        "\xc3\xa9", "\xe4\xb8\xad", "\xf0\x9f\x98\x80", "\\uD83D\\uDE00", "\\ud800",
        "\\uDC00", "\\u0001", "\\u001f", "\x7f", "\\u007F", "\\b", "\\f", "\\t", "\\r",
        "\\u2028", "\\uFFFF", "\xef\xbf\xbf", "\\u0000", "<", "'", "call_123",
    };
    static const char *keys[] = {
        "0", "1", "2", "10", "01", "-1", "1.5", "4294967294", "4294967295", "id",
        "callData", "a", "b", "__proto__", "", "99", "007",
    };

    buf_append_char(b, '"');
    if (keyish && rnd(2)) {
        buf_append_str(b, keys[rnd(sizeof(keys) / sizeof(*keys))]);
    } else {
        int n = (int)rnd(6);
        for (int i = 0; i < n; i++)
            buf_append_str(b, pieces[rnd(sizeof(pieces) / sizeof(*pieces))]);
    }
    buf_append_char(b, '"');
}

static void gen_value(struct buf *b, int depth)
{
    uint32_t kind = depth > 5 ? rnd(5) : rnd(8);

    gen_ws(b);
    switch (kind) {
    case 0: gen_number(b); break;
    case 1: gen_string(b, 0); break;
    case 2: buf_append_str(b, rnd(2) ? "true" : "false"); break;
    case 3: buf_append_str(b, "null"); break;
    case 4: gen_number(b); break;
    case 5:
    case 6: {
        int n = (int)rnd(7);
        buf_append_char(b, '{');
        for (int i = 0; i < n; i++) {
            if (i)
                buf_append_char(b, ',');
            gen_ws(b);
            gen_string(b, 1);
            gen_ws(b);
            buf_append_char(b, ':');
            gen_value(b, depth + 1);
        }
        gen_ws(b);
        buf_append_char(b, '}');
        break;
    }
    default: {
        int n = (int)rnd(6);
        buf_append_char(b, '[');
        for (int i = 0; i < n; i++) {
            if (i)
                buf_append_char(b, ',');
            gen_value(b, depth + 1);
        }
        gen_ws(b);
        buf_append_char(b, ']');
    }
    }
    gen_ws(b);
}

#define DIFF_CASES 5000

static void test_differential_node(void **state)
{
    char in_path[] = "/tmp/hookd-json-in-XXXXXX";
    char out_path[] = "/tmp/hookd-json-out-XXXXXX";
    struct buf all = BUF_INIT, cmd = BUF_INIT;
    size_t *offs = calloc(DIFF_CASES + 1, sizeof(size_t));
    int fd_in = mkstemp(in_path), fd_out = mkstemp(out_path);
    (void)state;

    assert_true(fd_in >= 0 && fd_out >= 0);
    for (int i = 0; i < DIFF_CASES; i++) {
        offs[i] = all.len;
        if (i % 50 == 0) {       /* a deep but legal nest now and then */
            int d = 1 + (int)rnd(60);
            for (int j = 0; j < d; j++)
                buf_append_str(&all, rnd(2) ? "[" : "{\"k\":");
            buf_append_str(&all, "[]");
            all.len -= 2;
            gen_number(&all);
            /* close in reverse: re-scan what we opened */
            for (size_t j = all.len; j-- > offs[i];) {
                if (all.data[j] == '[')
                    buf_append_char(&all, ']');
                else if (all.data[j] == '{')
                    buf_append_char(&all, '}');
            }
        } else {
            gen_value(&all, 0);
        }
        buf_append_char(&all, '\0');
    }
    offs[DIFF_CASES] = all.len;
    assert_int_equal(write(fd_in, all.data, all.len), (ssize_t)all.len);
    close(fd_in);
    close(fd_out);

    buf_printf(&cmd,
               "node -e 'const fs=require(\"fs\");"
               "const parts=fs.readFileSync(0,\"utf8\").split(\"\\0\");parts.pop();"
               "process.stdout.write(parts.map(t=>JSON.stringify(JSON.parse(t))).join(\"\\0\")+\"\\0\")'"
               " < %s > %s", in_path, out_path);
    int rc = system(cmd.data);
    if (rc != 0)
        fail_msg("node failed (exit %d): is nodejs installed?", rc);

    FILE *f = fopen(out_path, "rb");
    assert_non_null(f);
    struct buf node = BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&node, chunk, n);
    fclose(f);

    size_t pos = 0, checked = 0;
    for (int i = 0; i < DIFF_CASES; i++) {
        const char *text = all.data + offs[i];
        size_t len = offs[i + 1] - offs[i] - 1;
        const char *want = node.data + pos;
        size_t want_len = strlen(want);
        char *got = canon(text, len, NULL);
        if (got == NULL)
            fail_msg("case %d rejected by hookd, accepted by node: %s", i, text);
        if (strcmp(got, want) != 0)
            fail_msg("case %d differs\n input: %s\n node:  %s\n hookd: %s", i, text, want, got);
        free(got);
        pos += want_len + 1;
        checked++;
    }
    assert_int_equal(checked, DIFF_CASES);
    assert_int_equal(pos, node.len);
    print_message("%zu payloads byte-identical to node's JSON.stringify\n", checked);
    unlink(in_path);
    unlink(out_path);
    buf_free(&all);
    buf_free(&cmd);
    buf_free(&node);
    free(offs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_objects),
        cmocka_unit_test(test_large_object_duplicates),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_differential_node),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
