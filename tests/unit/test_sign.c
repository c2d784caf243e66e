/* test_sign.c -- signatures against vectors computed independently with
 * `openssl dgst` (commands in each comment). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "hookd/sign.h"

static void test_hex_signature(void **state)
{
    char out[SIGN_HEX_LEN + 1];
    (void)state;
    /* printf '%s' '{"a":1}' | openssl dgst -sha256 -hmac test_secret */
    assert_int_equal(sign_hex("test_secret", 11, "{\"a\":1}", 7, out), 0);
    assert_string_equal(out, "4452759cddf445c9ec15e49fdd9559f14997a7a10c2c8dbca45d09b8594c1900");
    /* A whsec_ secret is used as plain bytes here, as the Dialgen sample's
     * crypto.createHmac('sha256', process.env.WEBHOOK_SECRET) does:
     * printf '%s' '{"event":"batch.completed","batchId":"batch_123"}' |
     *   openssl dgst -sha256 -hmac whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw */
    const char *body = "{\"event\":\"batch.completed\",\"batchId\":\"batch_123\"}";
    const char *sec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    assert_int_equal(sign_hex(sec, strlen(sec), body, strlen(body), out), 0);
    assert_string_equal(out, "011375975eddf229bcab706258521b0611478410106c6a22b3c15b1e13acd711");
}

static void test_many_keys(void **state)
{
    /* More keys than sign.c keeps keyed contexts for, in turns, and one
     * too long to cache: each MAC must match the reference, whether its
     * context was cached, evicted or never cached. Expected values:
     * python3 -c "import hmac,hashlib; print(hmac.new(b'k0', b'hello webhook',
     * hashlib.sha256).hexdigest())" (and k1 .. k5, and b'L' * 600). */
    static const char *want[] = {
        "24a0f6f25305c2efe49ab8488adc0b0476697d3b0a19552440ffa7abb6c989aa",
        "c5cb35f56da11b54e5d7387bd6ecbfc2f717e22a35b131e7ad88fc8d29494108",
        "50291884e3f0309e71453492e7cca484a1946c7f9b8ecedafb37e9de380a98d7",
        "1ae9bae33df562695e1de76e54ef49910213f1c82b1d30ff9eaf8b242fa4d86d",
        "8482554279d14897dfb83be136d742d55ffb4615f1aa7638e21a9d6b79ca4c0f",
        "d4320d1a4fbf9a9d2cade66d91523859971f57c61150a02fcac372d509e452b8",
    };
    char out[SIGN_HEX_LEN + 1], key[3], longkey[600];
    (void)state;

    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 6; i++) {
            key[0] = 'k';
            key[1] = (char)('0' + i);
            assert_int_equal(sign_hex(key, 2, "hello webhook", 13, out), 0);
            assert_string_equal(out, want[i]);
        }
        /* the most recent key again: a cache hit */
        assert_int_equal(sign_hex("k5", 2, "hello webhook", 13, out), 0);
        assert_string_equal(out, want[5]);
    }
    memset(longkey, 'L', sizeof(longkey));
    assert_int_equal(sign_hex(longkey, sizeof(longkey), "hello webhook", 13, out), 0);
    assert_string_equal(out, "62100cb651a7d7f9c5a888f4884c1ae58fc8298ec9e16cceb7d003a1b8e1632d");
}

static void test_standard_webhooks_vector(void **state)
{
    char out[SIGN_V1_LEN + 1];
    const char *sec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const char *body = "{\"test\": 2432232314}";
    (void)state;
    /* The Standard Webhooks specification's example, and
     * KEY=$(echo -n MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw | base64 -d | xxd -p -c 100)
     * printf '%s' 'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}' |
     *   openssl dgst -sha256 -mac HMAC -macopt hexkey:$KEY -binary | base64 */
    assert_int_equal(sign_standard(sec, strlen(sec), "msg_p5jXN8AQM9LWM0D4loKWxJek",
                                   1614265330, body, strlen(body), out), 0);
    assert_string_equal(out, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

static void test_standard_raw_secret(void **state)
{
    char out[SIGN_V1_LEN + 1];
    (void)state;
    /* printf '%s' 'evt_1.1700000000.{"a":1}' |
     *   openssl dgst -sha256 -mac HMAC -macopt key:rawsecret -binary | base64 */
    assert_int_equal(sign_standard("rawsecret", 9, "evt_1", 1700000000, "{\"a\":1}", 7, out), 0);
    assert_string_equal(out, "v1,fVflctL2wY4ZDdC9SHCbogO/DBxbI/8clJH1LfTZ5iA=");
}

static void test_bad_whsec_secret(void **state)
{
    char out[SIGN_V1_LEN + 1];
    (void)state;
    assert_int_equal(sign_standard("whsec_not base64!", 17, "id", 1, "x", 1, out), HK_EINVAL);
    assert_int_equal(sign_standard("whsec_abc", 9, "id", 1, "x", 1, out), HK_EINVAL);
}

static void test_base64(void **state)
{
    unsigned char buf[64];
    char enc[64];
    (void)state;
    assert_int_equal(sign_base64_encode((const unsigned char *)"hello", 5, enc), 8);
    assert_string_equal(enc, "aGVsbG8=");
    assert_int_equal(sign_base64_decode("aGVsbG8=", 8, buf, sizeof(buf)), 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(sign_base64_decode("aGVsbA==", 8, buf, sizeof(buf)), 4);
    assert_int_equal(sign_base64_decode("aGVsbG8", 7, buf, sizeof(buf)), HK_EINVAL);
    assert_int_equal(sign_base64_decode("aGV=bG8=", 8, buf, sizeof(buf)), HK_EINVAL);
    assert_int_equal(sign_base64_decode("aGVsb=8=", 8, buf, sizeof(buf)), HK_EINVAL);
    assert_int_equal(sign_base64_decode("", 0, buf, sizeof(buf)), HK_EINVAL);
}

static void test_to_hex(void **state)
{
    const unsigned char in[] = { 0x00, 0x0f, 0xa5, 0xff };
    char out[2 * sizeof(in) + 1];

    (void)state;
    memset(out, 'x', sizeof(out));
    sign_to_hex(in, sizeof(in), out);
    assert_string_equal(out, "000fa5ff");
    sign_to_hex(in, 0, out);
    assert_string_equal(out, "");
}

static void test_generated_secret(void **state)
{
    char a[80], b[80];
    unsigned char key[64];
    (void)state;
    assert_int_equal(sign_generate_secret(a, sizeof(a)), 0);
    assert_int_equal(sign_generate_secret(b, sizeof(b)), 0);
    assert_memory_equal(a, "whsec_", 6);
    assert_int_equal(sign_base64_decode(a + 6, strlen(a) - 6, key, sizeof(key)), 32);
    assert_string_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex_signature),
        cmocka_unit_test(test_many_keys),
        cmocka_unit_test(test_standard_webhooks_vector),
        cmocka_unit_test(test_standard_raw_secret),
        cmocka_unit_test(test_bad_whsec_secret),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_generated_secret),
        cmocka_unit_test(test_to_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
