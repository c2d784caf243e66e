/* lockfile.c -- the data_dir lock (lockfile.h): flock(2) on a file whose
 * content is only the holder's pid, for the message a second hookd prints.
 *
 * flock, not fcntl(F_SETLK): an fcntl lock belongs to the process and is
 * dropped when it closes *any* descriptor of the file, and a forked child
 * does not inherit it, so it could not be handed to the redis-server as the
 * supervisor does (embed.h). The file is never removed: unlinking a lock file lets a
 * process that opened the old one and one that creates a new one both
 * hold "the" lock. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "hookd/lockfile.h"

/* The pid in the holder's file, or 0 when it cannot be read: the holder
 * may be between its flock() and its write(), or an old hookd's file may
 * hold anything. */
static long holder_pid(int fd)
{
    char text[32];
    ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
    char *end;
    long pid;

    if (n <= 0)
        return 0;
    text[n] = '\0';
    pid = strtol(text, &end, 10);
    return end != text && *end == '\n' && pid > 0 ? pid : 0;
}

static int busy(int fd, const char *dir, const char *path, struct hk_err *err)
{
    long pid = holder_pid(fd);

    close(fd);
    if (pid == 0)
        return hk_err_set(err, -EWOULDBLOCK, "data_dir_in_use",
                          "data_dir %s is in use by another hookd (lock file %s); stop it "
                          "first or choose another data_dir", dir, path);
    /* The lock outlives a supervisor killed outright for as long as its
     * redis-server takes to stop (embed.h): say so rather than name a
     * process that is gone as the one to stop. */
    if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
        return hk_err_set(err, -EWOULDBLOCK, "data_dir_in_use",
                          "data_dir %s is in use by a redis-server or other process left "
                          "behind by hookd pid %ld, which has exited (lock file %s); stop it "
                          "first or choose another data_dir", dir, pid, path);
    return hk_err_set(err, -EWOULDBLOCK, "data_dir_in_use",
                      "data_dir %s is in use by hookd pid %ld (lock file %s); stop it first "
                      "or choose another data_dir", dir, pid, path);
}

int lockfile_take(const char *dir, struct hk_err *err)
{
    char path[PATH_MAX], text[32];
    int fd, n, rc;

    if (snprintf(path, sizeof(path), "%s/%s", dir, LOCKFILE_NAME) >= (int)sizeof(path))
        return hk_err_set(err, -ENAMETOOLONG, "data_dir", "data dir path too long: %s", dir);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return hk_err_set(err, -errno, "data_dir", "open() of %s failed: %s", path,
                          strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        rc = -errno;
        if (rc == -EWOULDBLOCK)
            return busy(fd, dir, path, err);
        close(fd);
        return hk_err_set(err, rc, "data_dir", "flock() of %s failed: %s", path,
                          strerror(-rc));
    }
    /* Ours now: replace whatever pid a dead holder left. */
    n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
    errno = 0;     /* a short pwrite() sets none */
    if (ftruncate(fd, 0) < 0 || pwrite(fd, text, (size_t)n, 0) != n) {
        rc = errno ? -errno : -EIO;
        close(fd);
        return hk_err_set(err, rc, "data_dir", "writing the pid into %s failed: %s", path,
                          strerror(-rc));
    }
    return fd;
}
