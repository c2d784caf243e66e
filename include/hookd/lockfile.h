/* lockfile.h -- one hookd per data_dir.
 *
 * With the embedded Redis, data_dir holds a redis-server's unix socket and
 * AOF. A second hookd there would start a second redis-server on the same
 * socket and AOF, and on its way out remove the socket the first one's
 * workers use. The supervisor takes an flock(2) on <data_dir>/hookd.lock
 * before starting its redis-server and keeps it until that server has
 * stopped; a second hookd finds it taken and exits before touching either.
 *
 * The kernel drops an flock with the last descriptor of its open file
 * description, so a hookd killed with SIGKILL leaves a file but no lock:
 * the pid written into the file is only there to name the holder. */
#ifndef HOOKD_LOCKFILE_H
#define HOOKD_LOCKFILE_H

#include "hookd/err.h"

#define LOCKFILE_NAME "hookd.lock"

/* Lock <dir>/hookd.lock (created 0600 if missing) without waiting, and write
 * the calling process's pid into it. Returns the descriptor (>= 0, opened
 * O_CLOEXEC), which holds the lock: the caller owns it, and the lock lasts
 * until every copy of it (fork() makes copies) is closed. Returns
 * -EWOULDBLOCK when another process holds it, with err naming that
 * process's pid, dir and the file; or another -errno from open(),
 * ftruncate() or write(), with err naming the call. */
int lockfile_take(const char *dir, struct hk_err *err);

#endif
