/* worker.h -- one worker process: a libuv loop that takes jobs from Redis
 * and delivers them, up to max_in_flight at a time.
 *
 * Runs in a child of the supervisor, after fork: the loop, the libcurl
 * multi handle and both Redis connections are created here, never
 * inherited (neither libcurl nor hiredis is fork-safe once used).
 *
 * Signals: SIGTERM / SIGINT drain (stop taking jobs, finish what is in
 * flight for up to shutdown_timeout, requeue the rest); SIGQUIT stops at
 * once (in-flight requests are cut and their jobs requeued). */
#ifndef HOOKD_WORKER_H
#define HOOKD_WORKER_H

#include "hookd/config.h"

#define WORKER_ID_MAX 128

/* Build a worker id unique across hosts: "<host>:<pid>:<start ms>". The
 * supervisor and the child each compute it (same pid, same start_ms taken
 * before fork), so no id has to be passed between them. */
void worker_make_id(char out[WORKER_ID_MAX], int pid, long long start_ms);

struct stats_slot;

/* Run until stopped. Returns the process exit code. stats (stats_shm.h) is
 * this process's slot of the shared counters, written only by it; NULL
 * counts nothing. */
int worker_run(const struct config *cfg, const char *wid, struct stats_slot *stats);

#endif
