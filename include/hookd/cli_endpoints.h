/* cli_endpoints.h -- hookd endpoints [--json] | enable ORIGIN | disable ORIGIN.
 *
 * The list reads P:endpoints, P:parked, P:throttled and each origin's
 * record (keys.h); enable and disable run ENDPOINT_SET (queue.h). Each
 * returns the exit code: 0 ok; 1 failed or nothing changed, with err
 * filled for the caller to print; 2 usage, said on stderr already. */
#ifndef HOOKD_CLI_ENDPOINTS_H
#define HOOKD_CLI_ENDPOINTS_H

#include "hookd/config.h"
#include "hookd/err.h"
#include "hookd/keys.h"
#include "hookd/redis.h"

struct cli_endpoints_opts {
    const struct config *cfg;   /* breaker_window_ms, events_max, ops_webhook_url */
    int json;                   /* --json */
    const char *action;         /* NULL (list), "enable" or "disable" */
    const char **origins;       /* the ORIGIN named (exactly one for enable/disable) */
    int norigins;
};

int cli_endpoints_list(struct redis_sync *s, const struct keys *k,
                       const struct cli_endpoints_opts *o, struct hk_err *err);
int cli_endpoints_set(struct redis_sync *s, const struct keys *k,
                      const struct cli_endpoints_opts *o, struct hk_err *err);

#endif
