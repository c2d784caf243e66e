/* log.h -- one line per event on stderr.
 *
 * Format: `<ISO-8601 UTC ms> <LEVEL> <process> [job=<id>] <message>`, where
 * <process> is "supervisor" or the worker id. Lines are written with a single
 * write(2) so lines from several workers sharing stderr never interleave.
 * The logger is process-wide state (level and process name), set once at
 * start-up and once more in each worker after fork. */
#ifndef HOOKD_LOG_H
#define HOOKD_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level level);
void log_set_process(const char *name);            /* copied */
int log_parse_level(const char *s, enum log_level *out); /* 0 or HK_EINVAL */
int log_enabled(enum log_level level);

/* job_id may be NULL for events that concern no job. */
void log_emit(enum log_level level, const char *job_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Errors that last are said once per state change, not once per retry:
 * memo (cap bytes, "" when things work) holds the last one said. Returns 1
 * when msg differs from it (NULL counts as "?"), and remembers msg; a msg
 * longer than memo holds is compared on what memo keeps of it. */
int log_changed(char *memo, size_t cap, const char *msg);

/* The other half: returns 1 when memo held an error (said with
 * log_changed), and empties it, so the caller says once that things work
 * again and a recurrence is said anew. */
int log_recovered(char *memo);

#define log_debug(...) log_emit(LOG_DEBUG, NULL, __VA_ARGS__)
#define log_info(...)  log_emit(LOG_INFO, NULL, __VA_ARGS__)
#define log_warn(...)  log_emit(LOG_WARN, NULL, __VA_ARGS__)
#define log_error(...) log_emit(LOG_ERROR, NULL, __VA_ARGS__)

#endif
