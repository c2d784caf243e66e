/* embed.c -- start and stop the embedded redis-server. Only the first start
 * waits for it to answer; a restart (embed_spawn) returns once it is forked,
 * because the supervisor's signal loop must not wait on it. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hookd/embed.h"
#include "hookd/log.h"
#include "hookd/proc.h"
#include "hookd/redis.h"

#define READY_TIMEOUT_MS 10000
#define READY_POLL_MS 20

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int embed_spawn(struct embed *e, struct hk_err *err)
{
    sigset_t all;
    pid_t pid;

    unlink(e->socket_path);     /* a dead server's socket would refuse, not be replaced */
    pid = fork();
    if (pid < 0)
        return hk_err_set(err, HK_ESPAWN, "embed", "fork() failed: %s", strerror(errno));
    if (pid == 0) {
        char logfile[PATH_MAX + 16];
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        setsid();
        /* If the supervisor is killed outright, do not linger. SIGTERM lets
         * redis flush its AOF first. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        /* Kept across exec, so the server holds the data_dir lock too
         * (embed.h); every other child of the supervisor closes it. */
        if (e->lock_fd >= 0)
            fcntl(e->lock_fd, F_SETFD, 0);
        snprintf(logfile, sizeof(logfile), "%s/redis.log", e->dir);
        execlp(e->binary, e->binary, "--port", "0", "--unixsocket", e->socket_path,
               "--unixsocketperm", "700", "--dir", e->dir, "--appendonly", "yes",
               "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
               "--logfile", logfile, "--loglevel", "notice", (char *)NULL);
        fprintf(stderr, "hookd: cannot run %s: %s (install it with: apt-get install "
                        "redis-server)\n", e->binary, strerror(errno));
        _exit(127);
    }
    e->pid = pid;
    return 0;
}

/* Poll until the server answers PING, it exits, or READY_TIMEOUT_MS pass. */
static int wait_ready(struct embed *e, struct hk_err *err)
{
    struct redis_addr addr = { .path = e->socket_path };

    for (long waited = 0; waited < READY_TIMEOUT_MS; waited += READY_POLL_MS) {
        int status;
        struct redis_sync *s;
        if (waitpid(e->pid, &status, WNOHANG) == e->pid) {
            e->pid = 0;
            return hk_err_set(err, HK_ESPAWN, "embed",
                              "%s exited with status %d during start-up; see %s/redis.log",
                              e->binary, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                              e->dir);
        }
        s = redis_sync_connect(&addr, 500, NULL);
        if (s != NULL) {
            const char *ping[] = { "PING" };
            struct redisReply *r = redis_sync_command(s, 1, ping, NULL, NULL);
            /* Decided before the free: a freed pointer's value is
             * indeterminate, even only compared. */
            int answered = r != NULL;
            redis_reply_free(r);
            redis_sync_free(s);
            if (answered)
                return 0;
        }
        /* Polling is the only readiness signal redis-server offers without
         * systemd's sd_notify; bounded to READY_TIMEOUT_MS. */
        sleep_ms(READY_POLL_MS);
    }
    embed_stop(e, 1000);
    return hk_err_set(err, HK_ESPAWN, "embed", "%s did not answer within %d ms", e->binary,
                      READY_TIMEOUT_MS);
}

int embed_start(struct embed *e, const char *data_dir, const char *redis_server, int lock_fd,
                struct hk_err *err)
{
    char real[PATH_MAX];
    int rc;

    e->lock_fd = lock_fd;

    if (realpath(data_dir, real) == NULL)
        return hk_err_set(err, HK_ESPAWN, "embed", "data dir %s: %s", data_dir,
                          strerror(errno));
    if (snprintf(e->dir, sizeof(e->dir), "%s", real) >= (int)sizeof(e->dir) ||
        snprintf(e->binary, sizeof(e->binary), "%s", redis_server) >= (int)sizeof(e->binary))
        return hk_err_set(err, HK_ESPAWN, "embed", "path too long: %s", redis_server);
    if (snprintf(e->socket_path, sizeof(e->socket_path), "%s/redis.sock", real) >=
        (int)sizeof(e->socket_path))
        return hk_err_set(err, HK_ESPAWN, "embed",
                          "data dir path too long for a unix socket (max ~95 chars): %s",
                          real);
    if ((rc = embed_spawn(e, err)) < 0)
        return rc;
    return wait_ready(e, err);
}

void embed_stop(struct embed *e, long timeout_ms)
{
    if (e->pid <= 0)
        return;
    proc_stop(e->pid, timeout_ms);
    e->pid = 0;
}
