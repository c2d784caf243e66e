/* server.h -- a private redis-server for the loop tests.
 *
 * Each loop test needs a real redis-server it can kill, stop and start
 * again: this starts one in a temporary directory, on a unix socket or on
 * a free 127.0.0.1 port (the same one at every start, so a client
 * reconnects to it), and removes it with its files at the end. Failures
 * are cmocka assertions. */
#ifndef HOOKD_TESTS_SERVER_H
#define HOOKD_TESTS_SERVER_H

#include <sys/types.h>

#include "hookd/redis_addr.h"

struct test_server {
    char dir[64];               /* made by mkdtemp, removed by test_server_remove */
    char sock[128];             /* the unix socket, "" on TCP */
    char port[16];              /* the TCP port, "" on a unix socket */
    int aof;                    /* append-only file, fsync at every write */
    pid_t pid;                  /* 0 while not running */
    struct redis_addr addr;     /* where it listens; points into this struct */
};

/* A temporary directory named after the test, and an address: a free
 * 127.0.0.1 port when tcp, else a socket in the directory. With aof, a
 * server killed and started again holds every write it acknowledged. */
void test_server_init(struct test_server *s, const char *name, int tcp, int aof);

/* Start redis-server and return once it answers PING (not LOADING). */
void test_server_start(struct test_server *s);

/* Send sig (after a SIGCONT, in case a test left it stopped) and reap it. */
void test_server_kill(struct test_server *s, int sig);

/* Stop it if running (SIGTERM) and remove the directory with its files. */
void test_server_remove(struct test_server *s);

#endif
