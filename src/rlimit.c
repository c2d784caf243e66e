/* rlimit.c -- the open-file limit (rlimit.h). */
#include <errno.h>
#include <string.h>
#include <sys/resource.h>

#include "hookd/rlimit.h"

/* Besides one socket per request: Redis connections, libuv's epoll and
 * signal descriptors, logs, libcurl's resolver socket pairs (two per name
 * being looked up, for a moment). */
#define FILES_MARGIN 256

long rlimit_files_needed(int max_in_flight)
{
    return (long)max_in_flight + FILES_MARGIN;
}

static rlim_t files_allowed(void)
{
    struct rlimit rl;

    return getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 0;
}

int rlimit_ensure_files(int max_in_flight, struct hk_err *err)
{
    rlim_t need = (rlim_t)rlimit_files_needed(max_in_flight);
    rlim_t want = need + (rlim_t)max_in_flight;     /* and as many idle connections */
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return hk_err_set(err, HK_ECONFIG, "config", "getrlimit(RLIMIT_NOFILE) failed: %s",
                          strerror(errno));
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
        return 0;
    /* The hard limit first, which needs CAP_SYS_RESOURCE; failing that,
     * the soft limit up to the hard one, which any process may do. */
    struct rlimit raised = { want, want };
    if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want)
        raised.rlim_max = rl.rlim_max;      /* never lowered */
    if (setrlimit(RLIMIT_NOFILE, &raised) < 0 && rl.rlim_max != RLIM_INFINITY) {
        raised.rlim_cur = rl.rlim_max;
        raised.rlim_max = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &raised);
    }
    if (files_allowed() >= need)
        return 0;
    return hk_err_set(err, HK_ECONFIG, "config",
                      "max_in_flight %d needs at least %ld open files per worker, and this "
                      "process may open %llu (ulimit -Hn) without the right to raise it: raise "
                      "it (LimitNOFILE= in hookd.service) or lower max_in_flight",
                      max_in_flight, (long)need, (unsigned long long)files_allowed());
}

int rlimit_idle_connections(int max_in_flight)
{
    rlim_t allowed = files_allowed(), need = (rlim_t)rlimit_files_needed(max_in_flight);

    if (allowed == RLIM_INFINITY || allowed >= need + (rlim_t)max_in_flight)
        return max_in_flight;
    return allowed > need ? (int)(allowed - need) : 1;
}
