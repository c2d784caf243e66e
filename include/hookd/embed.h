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
    char socket_path[108];      /* sun_path limit */
    char dir[4096];             /* absolute data dir */
    char binary[4096];
};

/* Start redis-server and wait (up to 10 s) until it answers PING: at first
 * start a server that cannot run is a clear error, not a worker crash loop.
 * Fills e (paths, pid). Returns 0 or HK_ESPAWN with err naming the cause. */
int embed_start(struct embed *e, const char *data_dir, const char *redis_server,
                struct hk_err *err);

/* Start it again with the paths embed_start() filled in, without waiting:
 * returns once it is forked (e->pid set), or HK_ESPAWN if fork() failed. A
 * server that then cannot run shows as its exit; clients reconnect on their
 * own once it answers. */
int embed_spawn(struct embed *e, struct hk_err *err);

/* SIGTERM (redis flushes its AOF), wait up to timeout_ms, then SIGKILL. */
void embed_stop(struct embed *e, long timeout_ms);

#endif
