/* redis_tls.c -- OpenSSL sessions over memory BIOs for redis.c (see
 * redis_tls.h). The only file besides sign.c and http.c's libcurl that
 * reaches OpenSSL, and the only one that speaks its TLS API. */
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/mem.h"
#include "hookd/redis_tls.h"

struct redis_tls_ctx {
    SSL_CTX *ssl;
    const char *server_name;    /* borrowed from the options */
    int verify;
};

struct redis_tls {
    SSL *ssl;
    BIO *in;        /* what the socket received, for OpenSSL to read */
    BIO *out;       /* what OpenSSL wrote, for the socket to send */
};

/* OpenSSL's reason for the last failure, or fallback. Clears the queue,
 * so a later failure is not told with this one's words. */
static const char *ssl_reason(const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;

    ERR_clear_error();
    return r ? r : fallback;
}

/* OpenSSL says "system lib" for a file it cannot open; say why. */
static int readable(const char *key, const char *path, struct hk_err *err)
{
    FILE *f = fopen(path, "r");

    if (f == NULL)
        return hk_err_set(err, HK_ECONFIG, "config", "%s '%s': %s", key, path, strerror(errno));
    fclose(f);
    return 0;
}

static int load_identity(SSL_CTX *ssl, const struct redis_tls_opts *o, struct hk_err *err)
{
    if ((o->client_cert == NULL) != (o->client_key == NULL))
        return hk_err_set(err, HK_ECONFIG, "config",
                          "redis_client_cert and redis_client_key go together: set both");
    if (o->client_cert == NULL)
        return 0;
    if (readable("redis_client_cert", o->client_cert, err) < 0 ||
        readable("redis_client_key", o->client_key, err) < 0)
        return HK_ECONFIG;
    if (SSL_CTX_use_certificate_chain_file(ssl, o->client_cert) != 1)
        return hk_err_set(err, HK_ECONFIG, "config", "redis_client_cert '%s': %s",
                          o->client_cert, ssl_reason("cannot be read"));
    if (SSL_CTX_use_PrivateKey_file(ssl, o->client_key, SSL_FILETYPE_PEM) != 1)
        return hk_err_set(err, HK_ECONFIG, "config", "redis_client_key '%s': %s",
                          o->client_key, ssl_reason("cannot be read"));
    if (SSL_CTX_check_private_key(ssl) != 1)
        return hk_err_set(err, HK_ECONFIG, "config",
                          "redis_client_key '%s' is not the key of redis_client_cert '%s'",
                          o->client_key, o->client_cert);
    return 0;
}

int redis_tls_ctx_new(const struct redis_tls_opts *o, struct redis_tls_ctx **out,
                      struct hk_err *err)
{
    SSL_CTX *ssl = SSL_CTX_new(TLS_client_method());
    int rc;

    if (ssl == NULL)
        return hk_err_set(err, HK_ECRYPTO, "tls", "SSL_CTX_new() failed: %s",
                          ssl_reason("out of memory"));
    SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION);
    if (o->ca_file != NULL && (rc = readable("redis_ca_file", o->ca_file, err)) < 0) {
        SSL_CTX_free(ssl);
        return rc;
    }
    if (o->ca_file != NULL ? SSL_CTX_load_verify_locations(ssl, o->ca_file, NULL) != 1
                           : SSL_CTX_set_default_verify_paths(ssl) != 1) {
        rc = hk_err_set(err, HK_ECONFIG, "config", "redis_ca_file '%s': %s",
                        o->ca_file ? o->ca_file : "(default)", ssl_reason("cannot be read"));
        SSL_CTX_free(ssl);
        return rc;
    }
    if ((rc = load_identity(ssl, o, err)) < 0) {
        SSL_CTX_free(ssl);
        return rc;
    }
    SSL_CTX_set_verify(ssl, o->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    *out = xcalloc(1, sizeof(**out));
    (*out)->ssl = ssl;
    (*out)->server_name = o->server_name;
    (*out)->verify = o->verify;
    return 0;
}

void redis_tls_ctx_free(struct redis_tls_ctx *ctx)
{
    if (ctx == NULL)
        return;
    SSL_CTX_free(ctx->ssl);
    free(ctx);
}

/* The name the certificate must carry: a DNS name (also sent as SNI) or an
 * IP address, which RFC 6066 forbids as SNI. */
static void set_peer_name(SSL *ssl, const struct redis_tls_ctx *ctx, const char *host)
{
    const char *name = ctx->server_name ? ctx->server_name : host;
    unsigned char ip[16];
    int is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;

    if (!is_ip)
        SSL_set_tlsext_host_name(ssl, name);
    if (!ctx->verify)
        return;
    if (is_ip)
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
    else
        SSL_set1_host(ssl, name);
}

struct redis_tls *redis_tls_new(struct redis_tls_ctx *ctx, const char *host)
{
    struct redis_tls *t = xcalloc(1, sizeof(*t));

    t->ssl = SSL_new(ctx->ssl);
    t->in = BIO_new(BIO_s_mem());
    t->out = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->in == NULL || t->out == NULL)
        mem_oom(sizeof(*t));
    /* An empty input BIO says "retry", not "end of file". */
    BIO_set_mem_eof_return(t->in, -1);
    SSL_set_bio(t->ssl, t->in, t->out);     /* the SSL owns both now */
    SSL_set_connect_state(t->ssl);
    set_peer_name(t->ssl, ctx, host);
    SSL_do_handshake(t->ssl);               /* writes the ClientHello */
    return t;
}

void redis_tls_free(struct redis_tls *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl);
    free(t);
}

void redis_tls_put(struct redis_tls *t, const char *p, size_t n)
{
    if (BIO_write(t->in, p, (int)n) != (int)n)
        mem_oom(n);     /* a memory BIO fails only to allocate */
}

/* why for a failed SSL call that returned rc. */
static void say_failure(struct redis_tls *t, int rc, const char *what, char *why, size_t cap)
{
    int e = SSL_get_error(t->ssl, rc);
    long v = SSL_get_verify_result(t->ssl);

    if (e == SSL_ERROR_ZERO_RETURN)
        snprintf(why, cap, "%s: the server closed the TLS session", what);
    else if (v != X509_V_OK)
        snprintf(why, cap, "%s: certificate verify failed (%s)", what,
                 X509_verify_cert_error_string(v));
    else
        snprintf(why, cap, "%s: %s", what, ssl_reason("TLS failure"));
    ERR_clear_error();
}

int redis_tls_handshake(struct redis_tls *t, char *why, size_t cap)
{
    int rc = SSL_do_handshake(t->ssl);

    if (rc == 1)
        return 1;
    if (SSL_get_error(t->ssl, rc) == SSL_ERROR_WANT_READ)
        return 0;
    say_failure(t, rc, "TLS handshake", why, cap);
    return HK_ECRYPTO;
}

long redis_tls_read(struct redis_tls *t, char *out, size_t cap, char *why, size_t whycap)
{
    int rc = SSL_read(t->ssl, out, cap > (size_t)INT32_MAX ? INT32_MAX : (int)cap);

    if (rc > 0)
        return rc;
    if (SSL_get_error(t->ssl, rc) == SSL_ERROR_WANT_READ)
        return 0;
    say_failure(t, rc, "TLS", why, whycap);
    return HK_ECRYPTO;
}

int redis_tls_write(struct redis_tls *t, const char *p, size_t n)
{
    while (n > 0) {
        int chunk = n > (size_t)INT32_MAX ? INT32_MAX : (int)n;
        int rc = SSL_write(t->ssl, p, chunk);
        if (rc <= 0) {
            ERR_clear_error();
            return HK_ECRYPTO;
        }
        p += rc;
        n -= (size_t)rc;
    }
    return 0;
}

char *redis_tls_take(struct redis_tls *t, size_t *n)
{
    size_t avail = BIO_ctrl_pending(t->out);
    char *buf;

    *n = 0;
    if (avail == 0)
        return NULL;
    buf = xmalloc(avail);
    if (BIO_read(t->out, buf, (int)avail) != (int)avail)
        mem_oom(avail);
    *n = avail;
    return buf;
}
