/* sign.c -- HMAC-SHA256 signatures and secrets, on OpenSSL. */
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "hookd/sign.h"

int sign_hex(const char *secret, size_t secret_len, const char *body, size_t body_len,
             char out[SIGN_HEX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;

    if (HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)body, body_len,
             mac, &maclen) == NULL || maclen != 32)
        return HK_ECRYPTO;
    for (unsigned int i = 0; i < 32; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[SIGN_HEX_LEN] = '\0';
    return 0;
}

size_t sign_base64_encode(const unsigned char *in, size_t n, char *out)
{
    return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

int sign_base64_decode(const char *in, size_t n, unsigned char *out, size_t outsz)
{
    size_t pad = 0;
    int len;

    /* EVP_DecodeBlock skips white space and counts padding as zero bytes:
     * check the alphabet and strip the padding ourselves. */
    if (n == 0 || n % 4 != 0 || (n / 4) * 3 > outsz)
        return HK_EINVAL;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '+' || c == '/' || (c == '=' && i >= n - 2);
        if (!ok)
            return HK_EINVAL;
    }
    if (in[n - 1] == '=')
        pad++;
    if (in[n - 2] == '=')
        pad++;
    if (pad == 1 && in[n - 2] == '=')
        return HK_EINVAL;
    len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
    if (len < 0)
        return HK_EINVAL;
    return len - (int)pad;
}

/* The HMAC implementation, fetched once per process: EVP_MAC_fetch walks
 * OpenSSL's provider tables and is too slow for every webhook. Kept until
 * exit on purpose. */
static EVP_MAC *hmac_alg(void)
{
    static EVP_MAC *alg;

    if (alg == NULL)
        alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
    return alg;
}

int sign_standard(const char *secret, size_t secret_len, const char *id, long long ts,
                  const char *body, size_t body_len, char out[SIGN_V1_LEN + 1])
{
    unsigned char keybuf[SIGN_SECRET_MAX];
    const unsigned char *key = (const unsigned char *)secret;
    size_t keylen = secret_len;
    unsigned char mac[EVP_MAX_MD_SIZE];
    char prefix[320];
    int plen, rc = HK_ECRYPTO;

    if (secret_len > 6 && memcmp(secret, "whsec_", 6) == 0) {
        int n = sign_base64_decode(secret + 6, secret_len - 6, keybuf, sizeof(keybuf));
        if (n <= 0)
            return HK_EINVAL;
        key = keybuf;
        keylen = (size_t)n;
    }
    plen = snprintf(prefix, sizeof(prefix), "%s.%lld.", id, ts);
    if (plen < 0 || (size_t)plen >= sizeof(prefix))
        return HK_EINVAL;
    /* Incremental HMAC over "<id>.<ts>." then the body, so the body is
     * never copied. */
    EVP_MAC_CTX *ctx = hmac_alg() ? EVP_MAC_CTX_new(hmac_alg()) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    size_t outl = 0;
    if (ctx != NULL && EVP_MAC_init(ctx, key, keylen, params) == 1 &&
        EVP_MAC_update(ctx, (const unsigned char *)prefix, (size_t)plen) == 1 &&
        EVP_MAC_update(ctx, (const unsigned char *)body, body_len) == 1 &&
        EVP_MAC_final(ctx, mac, &outl, sizeof(mac)) == 1 && outl == 32) {
        memcpy(out, "v1,", 3);
        sign_base64_encode(mac, 32, out + 3);
        rc = 0;
    }
    EVP_MAC_CTX_free(ctx);
    return rc;
}

int sign_generate_secret(char *out, size_t outsz)
{
    unsigned char r[32];

    if (outsz < 6 + 45 || RAND_bytes(r, sizeof(r)) != 1)
        return HK_ECRYPTO;
    memcpy(out, "whsec_", 6);
    sign_base64_encode(r, sizeof(r), out + 6);
    return 0;
}
