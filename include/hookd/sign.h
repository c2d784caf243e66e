/* sign.h -- webhook signatures (the only file that talks to OpenSSL).
 *
 * Two signatures go on every POST:
 *   x-dialgen-signature: lowercase hex HMAC-SHA256(secret, body), keyed with
 *       the secret string's bytes as given (what the Dialgen Node sample does
 *       with crypto.createHmac('sha256', secret));
 *   webhook-signature: "v1," + base64 HMAC-SHA256(key, "<id>.<ts>.<body>")
 *       (Standard Webhooks), where key is the base64-decoded part of a
 *       "whsec_..." secret, or the secret's bytes otherwise. */
#ifndef HOOKD_SIGN_H
#define HOOKD_SIGN_H

#include <stddef.h>

#include "hookd/err.h"

/* Buffer sizes for sign_base64_encode / sign_base64_decode, the one place
 * they are computed: the chars encoding n bytes (4 * ceil(n / 3), without
 * NUL), and the most bytes decoding n chars may write (padding counts). */
#define SIGN_BASE64_LEN(n) (((n) + 2) / 3 * 4)
#define SIGN_BASE64_DECODED_MAX(n) ((n) / 4 * 3)

#define SIGN_HEX_LEN 64           /* chars of a hex SHA-256 MAC, without NUL */
#define SIGN_V1_LEN (3 + SIGN_BASE64_LEN(32))  /* "v1," + base64 MAC, without NUL */
#define SIGN_SECRET_MAX 512

/* out (2 * n + 1 bytes) receives n bytes as lowercase hex and a NUL. */
void sign_to_hex(const unsigned char *in, size_t n, char *out);

/* out receives 64 hex chars and a NUL. Returns 0 or HK_ECRYPTO. */
int sign_hex(const char *secret, size_t secret_len, const char *body, size_t body_len,
             char out[SIGN_HEX_LEN + 1]);

/* out receives "v1,<base64>" and a NUL. Returns 0, HK_EINVAL when a
 * "whsec_" secret is not valid base64, or HK_ECRYPTO. */
int sign_standard(const char *secret, size_t secret_len, const char *id, long long ts,
                  const char *body, size_t body_len, char out[SIGN_V1_LEN + 1]);

/* SHA-256 of the n bytes at data into out. Returns 0 or HK_ECRYPTO. */
int sign_sha256(const void *data, size_t n, unsigned char out[32]);

/* A new "whsec_" + base64(32 random bytes) secret in out (at least 64
 * bytes). Returns 0 or HK_ECRYPTO. */
int sign_generate_secret(char *out, size_t outsz);

/* Standard base64 (with padding). encode: out needs SIGN_BASE64_LEN(n) + 1
 * bytes (it ends with a NUL). decode: outsz at least
 * SIGN_BASE64_DECODED_MAX(n); returns the decoded length, or HK_EINVAL on
 * bad input. */
size_t sign_base64_encode(const unsigned char *in, size_t n, char *out);
int sign_base64_decode(const char *in, size_t n, unsigned char *out, size_t outsz);

#endif
