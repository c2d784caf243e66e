/* proc.c -- ending a child process of ours (proc.h). */
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "hookd/proc.h"

#define POLL_MS 10

void proc_stop(pid_t pid, long timeout_ms)
{
    int status;

    kill(pid, SIGTERM);
    for (long waited = 0; waited < timeout_ms; waited += POLL_MS) {
        struct timespec ts = { 0, POLL_MS * 1000000L };
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD))
            return;
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
}
