/* embed.h -- the private redis-server hookd starts when no `redis` is
 * configured, so a first run needs nothing else installed or running.
 *
 * It listens only on <data_dir>/redis.sock (no TCP port), keeps an AOF with
 * appendfsync everysec in <data_dir>, logs to <data_dir>/redis.log, and runs
 * in its own session so a Ctrl-C meant for hookd does not stop it before
 * the workers have recorded their last outcomes. */
#ifndef HOOKD_EMBED_H
#define HOOKD_EMBED_H

#include <sys/types.h>

#include "hookd/err.h"

struct embed {
    pid_t pid;                  /* 0 when not running */
    int lock_fd;                /* the data_dir lock the server holds too, -1 for none */
    char socket_path[108];      /* sun_path limit */
    char dir[4096];             /* absolute data dir */
    char binary[4096];
};

/* Start redis-server and wait (up to 10 s) until it answers PING: at first
 * start a server that cannot run is a clear error, not a worker crash loop.
 * Fills e (paths, pid). Returns 0 or HK_ESPAWN with err naming the cause.
 *
 * lock_fd (lockfile.h, or -1) is handed to every server started, across
 * exec: the lock then lasts until the server is gone as well as the
 * supervisor. A supervisor killed outright leaves its redis-server to stop
 * on its own (SIGTERM on parent death, the AOF flushed first), or, if it
 * died before that was armed, running on the socket and AOF; either way
 * that server still owns data_dir, and a new hookd starting a second one
 * on them meanwhile is the clash the lock exists to prevent. The caller
 * keeps ownership of lock_fd; a server keeps its copy until it exits. */
int embed_start(struct embed *e, const char *data_dir, const char *redis_server, int lock_fd,
                struct hk_err *err);

/* Start it again with the paths embed_start() filled in, without waiting:
 * returns once it is forked (e->pid set), or HK_ESPAWN if fork() failed. A
 * server that then cannot run shows as its exit; clients reconnect on their
 * own once it answers. */
int embed_spawn(struct embed *e, struct hk_err *err);

/* SIGTERM (redis flushes its AOF), wait up to timeout_ms, then SIGKILL. */
void embed_stop(struct embed *e, long timeout_ms);

#endif
