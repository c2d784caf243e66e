/* supervisor.h -- the parent process: starts the embedded Redis when no
 * `redis` is configured, forks `workers` worker processes and keeps them
 * alive, and stops everything on SIGTERM / SIGINT / SIGQUIT.
 *
 * Like nginx's master it runs no event loop: signals are blocked and taken
 * synchronously with sigtimedwait(), so no handler runs concurrently with
 * anything, and it never waits on anything else: when a worker exits, its
 * in-flight jobs are put back on the queue at once by a short-lived helper
 * process, so a slow or paused Redis does not hold up signals or respawns
 * (the heartbeat reaper in the workers is the fallback when the helper
 * fails or the supervisor itself is gone). A worker that keeps dying right after it
 * starts is restarted with exponential backoff (capped), and the supervisor
 * stays up. */
#ifndef HOOKD_SUPERVISOR_H
#define HOOKD_SUPERVISOR_H

#include "hookd/config.h"

/* How SIGHUP reads the settings again: fn fills *out (which the supervisor
 * then owns) from the same file, environment and command line as at start,
 * or returns a negative code with err filled. */
struct supervisor_reload {
    int (*fn)(struct config *out, void *ctx, struct hk_err *err);
    void *ctx;
};

/* Runs until stopped; returns the process exit code. cfg->addr is filled
 * in for the embedded Redis and cfg->secret resolved. reload may be NULL.
 *
 * Signals: SIGTERM/SIGINT drain and stop; SIGQUIT stops at once; SIGHUP
 * reloads (rolling restart of the workers, new ones first; redis,
 * data_dir and prefix keep their running values); SIGTTIN /
 * SIGTTOU add / remove one worker. */
int supervisor_run(struct config *cfg, const struct supervisor_reload *reload);

#endif
