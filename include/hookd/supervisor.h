/* supervisor.h -- the parent process: starts the embedded Redis when no
 * `redis` is configured, forks `workers` worker processes and keeps them
 * alive, and stops everything on SIGTERM / SIGINT / SIGQUIT.
 *
 * Like nginx's master it runs no event loop: signals are blocked and taken
 * synchronously with sigtimedwait(), so no handler runs concurrently with
 * anything. When a worker exits, its in-flight jobs are put back on the
 * queue at once (the heartbeat reaper in the workers is the fallback when
 * the supervisor itself is gone). */
#ifndef HOOKD_SUPERVISOR_H
#define HOOKD_SUPERVISOR_H

#include "hookd/config.h"

/* Runs until stopped; returns the process exit code. cfg->addr is filled
 * in for the embedded Redis and cfg->secret resolved. */
int supervisor_run(struct config *cfg);

#endif
