/* server.c -- a private redis-server for the loop tests (server.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hookd/err.h"
#include "hookd/redis.h"
#include "server.h"

static int free_port(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

void test_server_init(struct test_server *s, const char *name, int tcp, int aof)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "/tmp/%s.XXXXXX", name);
    assert_non_null(mkdtemp(s->dir));
    s->aof = aof;
    if (tcp) {
        int port = free_port();
        snprintf(s->port, sizeof(s->port), "%d", port);
        s->addr.host = "127.0.0.1";
        s->addr.port = port;
    } else {
        snprintf(s->sock, sizeof(s->sock), "%s/redis.sock", s->dir);
        s->addr.path = s->sock;
    }
}

static void exec_server(const struct test_server *s)
{
    const char *argv[] = {
        "redis-server", "--port", s->port[0] ? s->port : "0", "--bind", "127.0.0.1",
        "--dir", s->dir, "--save", "", "--appendonly", s->aof ? "yes" : "no",
        "--appendfsync", "always", "--loglevel", "warning",
        s->sock[0] ? "--unixsocket" : NULL, s->sock, NULL,
    };
    int null = open("/dev/null", O_WRONLY);

    dup2(null, 1);  /* its banner */
    execvp(argv[0], (char *const *)argv);
    _exit(127);
}

/* Up once it answers PING: it accepts connections while it loads its
 * append-only file, but refuses commands with LOADING until done. */
static int answers(const struct test_server *s)
{
    const char *ping = "PING";
    size_t len = 4;
    struct hk_err err;
    struct redis_sync *c = redis_sync_connect(&s->addr, 1000, &err);
    struct redisReply *r;
    int ok;

    if (c == NULL)
        return 0;
    r = redis_sync_command(c, 1, &ping, &len, &err);
    ok = r != NULL && !redis_reply_is_error(r);
    if (r != NULL)
        redis_reply_free(r);
    redis_sync_free(c);
    return ok;
}

void test_server_start(struct test_server *s)
{
    int up = 0;

    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0)
        exec_server(s);
    /* No event to wait on: a process we do not own comes up. Polled every
     * 10 ms, for 5 s at most. */
    for (int i = 0; i < 500 && !up; i++)
        if (!(up = answers(s)))
            usleep(10000);
    assert_true(up);
}

void test_server_kill(struct test_server *s, int sig)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGCONT);
    kill(s->pid, sig);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

void test_server_remove(struct test_server *s)
{
    char cmdline[96];

    test_server_kill(s, SIGTERM);
    snprintf(cmdline, sizeof(cmdline), "rm -rf '%s'", s->dir);
    assert_int_equal(system(cmdline), 0);
}
