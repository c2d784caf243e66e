/* cli.h -- operator commands: hookd dlq | retry | stats | batch | attempts |
 * endpoints (cli_endpoints.c).
 *
 * They take the same settings as the daemon (-c, --redis, --prefix,
 * HOOKD_*), talk to Redis with a blocking client, print for people by
 * default and JSON with --json. With no redis configured they use the
 * embedded one at <data_dir>/redis.sock. */
#ifndef HOOKD_CLI_H
#define HOOKD_CLI_H

#include "hookd/config.h"

struct cli_args {
    const char *command;        /* "dlq", "retry", "stats", "batch", "attempts" */
    const char *action;         /* "list", "replay", "purge", "show", or NULL */
    const char **ids;           /* job (or batch) ids named on the command line */
    int nids;
    int all;                    /* --all */
    int json;                   /* --json */
    long limit;                 /* --limit, default 20 */
    const struct config *cfg;   /* the settings; filled in by cli_run */
};

/* 1 when word names a subcommand. */
int cli_is_command(const char *word);

/* Run it; returns the process exit code (0 ok, 1 failure, 2 usage). */
int cli_run(struct config *cfg, const struct cli_args *args);

#endif
