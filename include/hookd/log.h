/* log.h -- one line per event on stderr.
 *
 * Two formats (log_format):
 * - text: `<ISO-8601 UTC ms> <LEVEL> <process> [job=<id>] <message>`;
 * - json: one JSON object per line, `{"ts","level","worker","msg"}` plus,
 *   when the line is about a delivery, whichever of `job`, `origin`,
 *   `attempt`, `status`, `error`, `latency_ms` its struct log_fields knows.
 * <process> ("worker" in json) is "supervisor", "reclaim" or the worker id.
 * Lines are written with a single write(2) so lines from several workers
 * sharing stderr never interleave. The logger is process-wide state (level,
 * format and process name), set once at start-up (again on SIGHUP) and once
 * more in each worker after fork.
 *
 * Nothing here redacts: callers never pass a secret or a Redis URL (the
 * fields below have no place for one, and messages name jobs by id and URL,
 * never by their signing material). */
#ifndef HOOKD_LOG_H
#define HOOKD_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_TEXT, LOG_JSON };

/* What a line about one delivery attempt says beyond its message, as
 * separate JSON members (text lines ignore all but job, which the message
 * already spells out). Unknown fields: NULL strings, attempt 0, status and
 * latency_ms -1; start from LOG_FIELDS_INIT. Strings are borrowed. */
struct log_fields {
    const char *job;        /* job id */
    const char *origin;     /* scheme://host:port the attempt went to */
    int attempt;            /* 1-based */
    long status;            /* HTTP status, 0 = no response */
    const char *error;      /* why the attempt failed; NULL on success */
    long latency_ms;
};
#define LOG_FIELDS_INIT { NULL, NULL, 0, -1, NULL, -1 }

void log_set_level(enum log_level level);
void log_set_process(const char *name);            /* copied */
int log_parse_level(const char *s, enum log_level *out); /* 0 or HK_EINVAL */
void log_set_format(enum log_format format);
int log_parse_format(const char *s, enum log_format *out); /* 0 or HK_EINVAL */
int log_enabled(enum log_level level);

/* job_id may be NULL for events that concern no job. */
void log_emit(enum log_level level, const char *job_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The same, with a delivery's fields (f may be NULL: no fields). */
void log_emit_fields(enum log_level level, const struct log_fields *f, const char *fmt, ...)
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
