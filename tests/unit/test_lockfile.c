/* Unit tests for lockfile.c: the lock is exclusive per open file
 * description (a second lockfile_take in this same process is refused, as
 * a second hookd would be), names the holder's pid, survives a fork child
 * closing its copy, goes with the last copy, and a leftover file with any
 * content blocks nothing. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "hookd/lockfile.h"

struct dir {
    char path[64];
    char file[96];
};

static int setup(void **state)
{
    struct dir *d = calloc(1, sizeof(*d));

    if (d == NULL)
        return -1;
    snprintf(d->path, sizeof(d->path), "/tmp/hookd-lockfile-XXXXXX");
    if (mkdtemp(d->path) == NULL) {
        free(d);
        return -1;
    }
    snprintf(d->file, sizeof(d->file), "%s/%s", d->path, LOCKFILE_NAME);
    *state = d;
    return 0;
}

static int teardown(void **state)
{
    struct dir *d = *state;

    unlink(d->file);
    rmdir(d->path);
    free(d);
    return 0;
}

static void read_file(const char *path, char *out, size_t n)
{
    FILE *f = fopen(path, "r");
    size_t got;

    assert_non_null(f);
    got = fread(out, 1, n - 1, f);
    out[got] = '\0';
    fclose(f);
}

static void test_second_take_is_refused_with_the_holder_named(void **state)
{
    struct dir *d = *state;
    struct hk_err err;
    char text[32], want[512];
    int fd = lockfile_take(d->path, &err);

    assert_true(fd >= 0);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    read_file(d->file, text, sizeof(text));
    snprintf(want, sizeof(want), "%ld\n", (long)getpid());
    assert_string_equal(text, want);

    assert_int_equal(lockfile_take(d->path, &err), -EWOULDBLOCK);
    snprintf(want, sizeof(want), "data_dir %s is in use by hookd pid %ld (lock file %s); "
             "stop it first or choose another data_dir", d->path, (long)getpid(), d->file);
    assert_string_equal(err.msg, want);
    assert_string_equal(err.code, "data_dir_in_use");

    close(fd);
    fd = lockfile_take(d->path, &err);     /* gone with the last copy */
    assert_true(fd >= 0);
    close(fd);
}

/* A forked child closing its copy (what the supervisor's workers do)
 * leaves the parent's lock in place. */
static void test_a_child_closing_its_copy_keeps_the_lock(void **state)
{
    struct dir *d = *state;
    struct hk_err err;
    int status, fd = lockfile_take(d->path, &err);
    pid_t pid;

    assert_true(fd >= 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fd);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(lockfile_take(d->path, &err), -EWOULDBLOCK);
    close(fd);
}

/* A file left by a dead holder, or holding no pid, blocks nothing and is
 * rewritten with ours; while held with no readable pid the message names
 * no one. */
static void test_leftover_content(void **state)
{
    struct dir *d = *state;
    struct hk_err err;
    char text[32], want[512];
    FILE *f = fopen(d->file, "w");
    int fd, other;

    assert_non_null(f);
    fputs("garbage and more garbage than a pid\n", f);
    fclose(f);
    fd = lockfile_take(d->path, &err);
    assert_true(fd >= 0);
    read_file(d->file, text, sizeof(text));
    snprintf(want, sizeof(want), "%ld\n", (long)getpid());
    assert_string_equal(text, want);

    other = open(d->file, O_WRONLY | O_TRUNC);  /* the holder between flock and write */
    assert_true(other >= 0);
    close(other);
    assert_int_equal(lockfile_take(d->path, &err), -EWOULDBLOCK);
    snprintf(want, sizeof(want), "data_dir %s is in use by another hookd (lock file %s); "
             "stop it first or choose another data_dir", d->path, d->file);
    assert_string_equal(err.msg, want);
    close(fd);
}

static void test_a_missing_dir_names_the_call(void **state)
{
    struct hk_err err;
    (void)state;

    assert_int_equal(lockfile_take("/nonexistent-hookd-dir", &err), -ENOENT);
    assert_string_equal(err.msg, "open() of /nonexistent-hookd-dir/hookd.lock failed: "
                                 "No such file or directory");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_second_take_is_refused_with_the_holder_named,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_child_closing_its_copy_keeps_the_lock, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_leftover_content, setup, teardown),
        cmocka_unit_test(test_a_missing_dir_names_the_call),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
