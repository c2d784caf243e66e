/* rlimit.h -- the open-file limit a worker needs for its settings.
 *
 * A worker holds a socket per request in flight, plus its Redis
 * connections, libuv's descriptors and the odd file; libcurl also keeps
 * idle connections for reuse. With fewer files allowed than the requests
 * in flight, requests fail at random with EMFILE once the load is there: a
 * setting accepted and broken. So hookd raises its limit before forking
 * workers (as nginx's worker_rlimit_nofile does), refuses to start, naming
 * both numbers, when it cannot get enough for max_in_flight, and sizes
 * libcurl's idle-connection cache to what is left. */
#ifndef HOOKD_RLIMIT_H
#define HOOKD_RLIMIT_H

#include "hookd/err.h"

/* Files a worker with max_in_flight requests cannot do without. */
long rlimit_files_needed(int max_in_flight);

/* Raise RLIMIT_NOFILE towards what max_in_flight requests and as many idle
 * connections would use (the soft limit to the hard one, and the hard one
 * where the process may). Returns 0 when at least rlimit_files_needed is
 * allowed, else HK_ECONFIG with err saying what to do. The change is the
 * calling process's own (--check-config tries it too, then exits). */
int rlimit_ensure_files(int max_in_flight, struct hk_err *err);

/* How many idle connections a worker may keep, at most max_in_flight, with
 * max_in_flight requests running, within its current limit. */
int rlimit_idle_connections(int max_in_flight);

#endif
