/* cli_verify.h -- `hookd verify`: does a received request verify, and if
 * not, why.
 *
 * Reads the body from stdin and the request's headers from --header
 * arguments, and checks x-dialgen-signature (hex HMAC-SHA256 of the body,
 * keyed with the secret string) and the Standard Webhooks headers
 * (webhook-id, webhook-timestamp within --tolerance, webhook-signature).
 * When a check fails it says why: a signature that matches the body
 * re-serialised by JSON.stringify(JSON.parse(body)) (with where the two
 * differ), or the body without the trailing newline a shell adds, or, the
 * other scheme verifying, a header changed after signing; else the wrong
 * secret or a body changed after signing. */
#ifndef HOOKD_CLI_VERIFY_H
#define HOOKD_CLI_VERIFY_H

#include "hookd/config.h"
#include "hookd/err.h"

#define CLI_VERIFY_TOLERANCE_MS 300000  /* Standard Webhooks' 5 minutes */

struct cli_verify_args {
    const char **headers;       /* "name: value" as given; borrowed (argv) */
    int nheaders;
    int cap;                    /* room in headers */
    long tolerance_ms;          /* --tolerance; webhook-timestamp this far from now */
};

/* Take argv[0] (and its value) if it is one of verify's own arguments.
 * Returns how many were taken (0: not ours), or HK_ECONFIG with err->msg. */
int cli_verify_arg(struct cli_verify_args *a, int argc, char **argv, struct hk_err *err);

/* Check the body on stdin; returns the exit code: 0 when every signature
 * present verifies (at least one must be), 1 when not, 2 on a usage error. */
int cli_verify_run(const struct config *cfg, const struct cli_verify_args *a);

#endif
