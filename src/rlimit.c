/* rlimit.c -- the open-file limit (rlimit.h). */
#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "hookd/rlimit.h"

/* Per request: its socket, and while its name resolves libcurl's socket
 * pair; then a margin for Redis, libuv, logs and the odd file. */
#define FILES_PER_REQUEST 3
#define FILES_MARGIN 256

long rlimit_files_needed(int max_in_flight)
{
    return (long)max_in_flight * FILES_PER_REQUEST + FILES_MARGIN;
}

int rlimit_ensure_files(int max_in_flight, int apply, struct hk_err *err)
{
    long need = rlimit_files_needed(max_in_flight);
    struct rlimit rl, want;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return hk_err_set(err, HK_ECONFIG, "config", "getrlimit(RLIMIT_NOFILE) failed: %s",
                          strerror(errno));
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= (rlim_t)need)
        return 0;
    want.rlim_cur = (rlim_t)need;
    want.rlim_max = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want.rlim_cur
                        ? rl.rlim_max : want.rlim_cur;
    /* Raising the hard limit needs CAP_SYS_RESOURCE (root, in practice):
     * a check can only guess; applying tells. */
    if (!apply ? want.rlim_max == rl.rlim_max || geteuid() == 0
               : setrlimit(RLIMIT_NOFILE, &want) == 0)
        return 0;
    return hk_err_set(err, HK_ECONFIG, "config",
                      "max_in_flight %d needs up to %ld open files per worker, and this process "
                      "may open %llu (ulimit -Hn) without the right to raise it: raise it "
                      "(LimitNOFILE= in hookd.service) or lower max_in_flight",
                      max_in_flight, need, (unsigned long long)rl.rlim_max);
}
