/* proc.h -- ending a child process of ours.
 *
 * The supervisor stops two kinds of children outside its signal loop, at
 * the end: the embedded redis-server (embed.c) and the metrics process.
 * Both get the same treatment, so it is written once. */
#ifndef HOOKD_PROC_H
#define HOOKD_PROC_H

#include <sys/types.h>

/* SIGTERM pid, wait up to timeout_ms for it to exit (reaping it), then
 * SIGKILL and reap it. Blocks, polling every 10 ms: for a shutdown path
 * that has nothing else to do, never for an event loop. A pid already
 * reaped elsewhere returns at once. */
void proc_stop(pid_t pid, long timeout_ms);

#endif
