/* http.h -- POST requests through one libcurl multi handle on a libuv loop.
 *
 * The only file that drives libcurl transfers. Thousands of requests share
 * one CURLM: its connection cache gives keep-alive reuse, and HTTP/2 is used
 * (multiplexed) where the server offers it. No threads, no blocking calls,
 * except libcurl's own threaded DNS resolver. */
#ifndef HOOKD_HTTP_H
#define HOOKD_HTTP_H

#include <stddef.h>
#include <uv.h>

struct http_client;

struct http_result {
    int ok;                     /* 1 when a 2xx status was received */
    long status;                /* HTTP status, 0 when none was received */
    int curl_code;              /* CURLE_* (0 = transfer completed) */
    int aborted;                /* cut by http_client_close: no outcome */
    const char *error;          /* curl's message, "" when none; borrowed */
    const char *reason;         /* machine-readable class: "ok", "http_status",
                                   "timeout", "connect_failed", "dns_failed",
                                   "tls_error", "send_failed", "recv_failed",
                                   "http_error", "destination_forbidden" */
    long latency_ms;            /* request start to completion */
    long retry_after_s;         /* Retry-After in seconds, -1 when absent */
    long h2_conn;               /* the answer came over HTTP/2: its connection's
                                   local port (names it among the origin's);
                                   0: it did not */
    const char *body;           /* first bytes of the response; borrowed */
    size_t body_len;
    const char *headers;        /* with capture_headers: the final response's
                                   status and header lines as received (CRLF
                                   ends each), else NULL; borrowed */
    size_t headers_len;
};

/* cb runs exactly once per successful http_post, with a result borrowed for
 * the call. */
typedef void (*http_done_cb)(const struct http_result *res, void *arg);

struct http_request_spec {
    const char *url;            /* borrowed until cb */
    const char *origin;         /* "scheme://host:port" of url as policy_check_url
                                   writes it (picks the TLS session cache);
                                   NULL: the first cache */
    const char *body;           /* borrowed until cb (not copied) */
    size_t body_len;
    const char *const *headers; /* "name: value" strings, copied */
    size_t nheaders;
    const char *user_agent;     /* copied */
    long timeout_ms;
};

struct policy_dest;

struct http_options {
    size_t capture_bytes;       /* response bytes kept for the result */
    const char *ca_file;        /* borrowed; NULL = libcurl's default */
    const char *ca_path;        /* borrowed; NULL = libcurl's default */
    const char *client_cert;    /* borrowed; PEM, NULL = none */
    const char *client_key;     /* borrowed; PEM */
    size_t max_response_bytes;  /* cut answers longer than this (0 = no cap) */
    const struct policy_dest *dest;  /* borrowed; checked on every connect */
    const char *resolve;        /* borrowed; "host:port:addr,..." or NULL */
    int max_host_connections;   /* per origin; 0 = unlimited */
    int max_connections;        /* idle connections kept; 0 = libcurl's default */
    int capture_headers;        /* keep the response's header lines for the
                                   result (hookd send; up to 16 KiB) */
};

/* New client on loop. Caller frees with http_client_close; cb of requests
 * still running then fires with curl_code CURLE_ABORTED_BY_CALLBACK. */
struct http_client *http_client_new(uv_loop_t *loop, const struct http_options *opt);

/* Start a POST. Returns 0 (cb fires later) or HK_EHTTP (cb never fires). */
int http_post(struct http_client *c, const struct http_request_spec *spec, http_done_cb cb,
              void *arg);

/* Requests currently running. */
size_t http_running(const struct http_client *c);

/* Abort everything, close the loop handles; the client is freed once they
 * are closed (the caller keeps running the loop). */
void http_client_close(struct http_client *c);

#endif
