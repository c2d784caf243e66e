/* cli_send.h -- `hookd send URL`: one webhook now, no queue, no Redis.
 *
 * Signed by deliver_headers and POSTed by http.c on a private libuv loop,
 * with the workers' settings (secret and its rotation, user_agent, timeout,
 * TLS files, the destination policy, resolve), so a receiver sees exactly
 * what a worker would send. Prints the request's headers, the status, the
 * latency, the response's headers and body. */
#ifndef HOOKD_CLI_SEND_H
#define HOOKD_CLI_SEND_H

#include "hookd/config.h"
#include "hookd/err.h"

struct cli_send_args {
    const char *url;            /* borrowed (argv) */
    const char *event;          /* --event; NULL = the sample's name, or none */
    const char *payload;        /* --payload JSON or @FILE; borrowed */
    const char *sample;         /* --sample NAME; borrowed */
    const char *id;             /* --id; NULL = a new msg_... id */
};

/* Take argv[0] (and its value, argv[1]) if it is one of send's own
 * arguments. Returns how many were taken (0: not ours, the caller treats
 * it as a setting), or HK_ECONFIG with err->msg for a usage error. */
int cli_send_arg(struct cli_send_args *a, int argc, char **argv, struct hk_err *err);

/* Send it; returns the exit code: 0 on a 2xx, 1 on any other answer or
 * none, 2 on a usage error (cfg's secret may be filled from data_dir). */
int cli_send_run(struct config *cfg, const struct cli_send_args *a);

#endif
