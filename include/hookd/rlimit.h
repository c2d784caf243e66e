/* rlimit.h -- the open-file limit a worker needs for its settings.
 *
 * A worker holds a socket per request in flight and libcurl keeps up to
 * max_in_flight idle connections (http.c), plus its Redis connections,
 * libuv's descriptors and a resolver socket pair per name being looked up.
 * With fewer files allowed than that, requests fail at random with EMFILE
 * once the load is there: a setting accepted and broken. So hookd raises
 * its limit to what its settings need before forking workers (as nginx's
 * worker_rlimit_nofile does), and refuses to start, naming both numbers,
 * when it may not. */
#ifndef HOOKD_RLIMIT_H
#define HOOKD_RLIMIT_H

#include "hookd/err.h"

/* Files a worker with max_in_flight requests may need open at once. */
long rlimit_files_needed(int max_in_flight);

/* Make RLIMIT_NOFILE at least rlimit_files_needed(max_in_flight): raise the
 * soft limit, and the hard one where the process may (root). apply = 0
 * only checks that it could (for --check-config). Returns 0, or
 * HK_ECONFIG with err saying what to do. */
int rlimit_ensure_files(int max_in_flight, int apply, struct hk_err *err);

#endif
