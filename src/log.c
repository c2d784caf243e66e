/* log.c -- line-oriented logging to stderr (see log.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "hookd/err.h"
#include "hookd/log.h"

static enum log_level min_level = LOG_INFO;
static char process[96] = "hookd";

static const char *level_names[] = { "DEBUG", "INFO", "WARN", "ERROR" };

void log_set_level(enum log_level level)
{
    min_level = level;
}

void log_set_process(const char *name)
{
    snprintf(process, sizeof(process), "%s", name);
}

int log_parse_level(const char *s, enum log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = LOG_WARN;
        return 0;
    }
    return HK_EINVAL;
}

int log_enabled(enum log_level level)
{
    return level >= min_level;
}

void log_emit(enum log_level level, const char *job_id, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int w;
    va_list ap;

    if (level < min_level)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    w = snprintf(line + n, sizeof(line) - n, ".%03ldZ %-5s %s ", ts.tv_nsec / 1000000,
                 level_names[level], process);
    n += w > 0 ? (size_t)w : 0;
    if (job_id != NULL && n < sizeof(line)) {
        w = snprintf(line + n, sizeof(line) - n, "job=%s ", job_id);
        n += w > 0 ? (size_t)w : 0;
    }
    if (n < sizeof(line)) {
        va_start(ap, fmt);
        w = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        va_end(ap);
        n += w > 0 ? (size_t)w : 0;
    }
    if (n >= sizeof(line) - 1)
        n = sizeof(line) - 2;   /* truncated: keep the newline */
    line[n++] = '\n';
    /* One write per line; a short write to a pipe of < PIPE_BUF is atomic. */
    if (write(STDERR_FILENO, line, n) < 0) {
        /* Nowhere left to report it. */
    }
}

int log_changed(char *memo, size_t cap, const char *msg)
{
    if (msg == NULL)
        msg = "?";
    if (strncmp(memo, msg, cap - 1) == 0)
        return 0;
    snprintf(memo, cap, "%s", msg);
    return 1;
}

int log_recovered(char *memo)
{
    if (memo[0] == '\0')
        return 0;
    memo[0] = '\0';
    return 1;
}
