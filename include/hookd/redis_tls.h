/* redis_tls.h -- TLS for hookd's Redis connections, over memory buffers.
 *
 * hiredis 0.14.1 (Debian's) has no TLS, and its I/O cannot be replaced, so
 * redis.c owns the sockets (libuv streams) and uses hiredis only as the
 * protocol codec. This module is the OpenSSL side: a session that takes the
 * bytes the socket received and gives back plaintext, takes plaintext and
 * gives back the bytes to send. It touches no socket and no loop, so the
 * connection code has one path for plain and TLS connections alike. */
#ifndef HOOKD_REDIS_TLS_H
#define HOOKD_REDIS_TLS_H

#include <stddef.h>

#include "hookd/err.h"
#include "hookd/redis_addr.h"

struct redis_tls_ctx;   /* trust and identity, shared by a process's sessions */
struct redis_tls;       /* one connection's session */

/* Load the CA bundle (or OpenSSL's default paths) and the client
 * certificate and key. Returns 0 with *out set (free with
 * redis_tls_ctx_free), or HK_ECONFIG with err saying which file is wrong
 * and why. */
int redis_tls_ctx_new(const struct redis_tls_opts *o, struct redis_tls_ctx **out,
                      struct hk_err *err);
void redis_tls_ctx_free(struct redis_tls_ctx *ctx);

/* A client session to host (the name or address connected to). The name
 * verified and sent as SNI is opts->server_name when set, else host; an IP
 * address is verified against the certificate's IP entries and sent no
 * SNI. Starts the handshake: its first bytes are ready to be taken. The
 * caller frees it with redis_tls_free. */
struct redis_tls *redis_tls_new(struct redis_tls_ctx *ctx, const char *host);
void redis_tls_free(struct redis_tls *t);

/* Bytes received from the socket. */
void redis_tls_put(struct redis_tls *t, const char *p, size_t n);

/* Move the handshake on. Returns 1 when it is complete, 0 when it waits
 * for more bytes, or HK_ECRYPTO with why filled ("TLS handshake:
 * certificate verify failed (hostname mismatch)"). */
int redis_tls_handshake(struct redis_tls *t, char *why, size_t cap);

/* Plaintext received: up to cap bytes into out. Returns the count, 0 when
 * nothing more is ready, or HK_ECRYPTO with why filled (the peer closed,
 * or a TLS error). */
long redis_tls_read(struct redis_tls *t, char *out, size_t cap, char *why, size_t whycap);

/* Plaintext to send (after the handshake). Returns 0 or HK_ECRYPTO. */
int redis_tls_write(struct redis_tls *t, const char *p, size_t n);

/* The bytes to send now, or NULL with *n = 0 when there are none. The
 * caller owns the buffer (free()). */
char *redis_tls_take(struct redis_tls *t, size_t *n);

#endif
