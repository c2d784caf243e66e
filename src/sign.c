/* sign.c -- HMAC-SHA256 signatures and secrets, on OpenSSL. */
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "hookd/sign.h"

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

/* Keyed HMAC-SHA256 contexts of the last few keys, most recent first. A
 * context re-initialised with its own key (EVP_MAC_init with a NULL key)
 * costs a quarter of HMAC()'s per-call setup, which looks up the digest
 * and the MAC in OpenSSL 3's provider tables each time: with two
 * signatures per webhook that was 7 of about 60 us per delivery. Nearly
 * every job uses the configured secret (and, during a rotation, the
 * previous one), so a handful of entries is enough; a per-job secret only
 * costs a miss. Per process (workers are single-threaded); kept until exit. */
#define KEYED_MAX 4

struct keyed {
    unsigned char key[SIGN_SECRET_MAX];
    size_t len;
    EVP_MAC_CTX *ctx;               /* NULL = free slot */
};

static struct keyed keyed[KEYED_MAX];

static EVP_MAC_CTX *new_ctx(const unsigned char *key, size_t len)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    EVP_MAC_CTX *ctx = hmac_alg() ? EVP_MAC_CTX_new(hmac_alg()) : NULL;

    if (ctx != NULL && EVP_MAC_init(ctx, key, len, params) != 1) {
        EVP_MAC_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

/* A context ready for key: cached (owned by the cache) or, for a key too
 * long to cache, new (*owned set: the caller frees it). */
static EVP_MAC_CTX *keyed_ctx(const unsigned char *key, size_t len, int *owned)
{
    struct keyed hit;
    size_t i;

    *owned = len > SIGN_SECRET_MAX;
    if (*owned)
        return new_ctx(key, len);
    for (i = 0; i < KEYED_MAX && keyed[i].ctx != NULL; i++)
        if (keyed[i].len == len && memcmp(keyed[i].key, key, len) == 0)
            break;
    if (i < KEYED_MAX && keyed[i].ctx != NULL) {
        if (EVP_MAC_init(keyed[i].ctx, NULL, 0, NULL) != 1)
            return NULL;
        hit = keyed[i];
    } else {
        i = KEYED_MAX - 1;          /* the least recently used goes */
        EVP_MAC_CTX_free(keyed[i].ctx);
        keyed[i].ctx = NULL;
        if ((hit.ctx = new_ctx(key, len)) == NULL)
            return NULL;
        memcpy(hit.key, key, len);
        hit.len = len;
    }
    memmove(keyed + 1, keyed, i * sizeof(*keyed));
    keyed[0] = hit;
    return hit.ctx;
}

/* HMAC-SHA256(key, a || b) into mac. Returns 0 or HK_ECRYPTO. */
static int hmac2(const unsigned char *key, size_t keylen, const void *a, size_t alen,
                 const void *b, size_t blen, unsigned char mac[32])
{
    unsigned char out[EVP_MAX_MD_SIZE];
    int owned, rc = HK_ECRYPTO;
    EVP_MAC_CTX *ctx = keyed_ctx(key, keylen, &owned);
    size_t outl = 0;

    if (ctx != NULL && EVP_MAC_update(ctx, a, alen) == 1 && EVP_MAC_update(ctx, b, blen) == 1 &&
        EVP_MAC_final(ctx, out, &outl, sizeof(out)) == 1 && outl == 32) {
        memcpy(mac, out, 32);
        rc = 0;
    }
    if (owned)
        EVP_MAC_CTX_free(ctx);
    return rc;
}

void sign_to_hex(const unsigned char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int sign_hex(const char *secret, size_t secret_len, const char *body, size_t body_len,
             char out[SIGN_HEX_LEN + 1])
{
    unsigned char mac[32];

    if (hmac2((const unsigned char *)secret, secret_len, "", 0, body, body_len, mac) < 0)
        return HK_ECRYPTO;
    sign_to_hex(mac, sizeof(mac), out);
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
    if (n == 0 || n % 4 != 0 || SIGN_BASE64_DECODED_MAX(n) > outsz)
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

int sign_standard(const char *secret, size_t secret_len, const char *id, long long ts,
                  const char *body, size_t body_len, char out[SIGN_V1_LEN + 1])
{
    unsigned char keybuf[SIGN_SECRET_MAX];
    const unsigned char *key = (const unsigned char *)secret;
    size_t keylen = secret_len;
    unsigned char mac[32];
    char prefix[320];
    int plen;

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
    /* HMAC over "<id>.<ts>." then the body, so the body is never copied. */
    if (hmac2(key, keylen, prefix, (size_t)plen, body, body_len, mac) < 0)
        return HK_ECRYPTO;
    memcpy(out, "v1,", 3);
    sign_base64_encode(mac, 32, out + 3);
    return 0;
}

int sign_generate_secret(char *out, size_t outsz)
{
    unsigned char r[32];

    if (outsz < 6 + SIGN_BASE64_LEN(sizeof(r)) + 1 || RAND_bytes(r, sizeof(r)) != 1)
        return HK_ECRYPTO;
    memcpy(out, "whsec_", 6);
    sign_base64_encode(r, sizeof(r), out + 6);
    return 0;
}

int sign_sha256(const void *data, size_t n, unsigned char out[32])
{
    /* Fetched once, for the reason hmac_alg() gives. */
    static EVP_MD *md;
    unsigned int len = 0;

    if (md == NULL)
        md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (md == NULL || EVP_Digest(data, n, out, &len, md, NULL) != 1 || len != 32)
        return HK_ECRYPTO;
    return 0;
}
