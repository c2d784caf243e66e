/* log.c -- line-oriented logging to stderr, as text or JSON (see log.h).
 * JSON strings go through json.c's writer, the one escaper hookd has. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "hookd/buf.h"
#include "hookd/err.h"
#include "hookd/json.h"
#include "hookd/log.h"
#include "hookd/mem.h"

static enum log_level min_level = LOG_INFO;
static enum log_format format = LOG_TEXT;
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

void log_set_format(enum log_format f)
{
    format = f;
}

int log_parse_format(const char *s, enum log_format *out)
{
    if (strcmp(s, "text") == 0)
        *out = LOG_TEXT;
    else if (strcmp(s, "json") == 0)
        *out = LOG_JSON;
    else
        return HK_EINVAL;
    return 0;
}

int log_enabled(enum log_level level)
{
    return level >= min_level;
}

/* Messages are cut to this many bytes (at a character boundary), so a
 * line stays one write(2) below PIPE_BUF however the message was built. */
#define MSG_MAX 1800

/* Room for a message: MSG_MAX bytes, the NUL, and the rest of a
 * character the cut would split, so the cut can see where it ends. */
#define MSG_ROOM (MSG_MAX + 4)

/* fmt formatted into msg (MSG_ROOM bytes); returns its length. A cut
 * never leaves half a UTF-8 character behind (a json line would carry it). */
static size_t format_message(char *msg, const char *fmt, va_list ap)
{
    int w = vsnprintf(msg, MSG_ROOM, fmt, ap);
    size_t n = w < 0 ? 0 : (size_t)w;

    if (n > MSG_MAX) {
        n = MSG_MAX;
        /* msg[n] is the first byte cut off: while it continues a character,
         * that character started before the cut and goes too. */
        while (n > 0 && ((unsigned char)msg[n] & 0xC0) == 0x80)
            n--;
        msg[n] = '\0';
    }
    return n;
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" into out (32 bytes). */
static void timestamp(char *out)
{
    struct timespec ts;
    struct tm tm;
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

static void write_line(const char *p, size_t n)
{
    /* One write per line; a short write to a pipe of < PIPE_BUF is atomic. */
    if (write(STDERR_FILENO, p, n) < 0) {
        /* Nowhere left to report it. */
    }
}

static void emit_text(enum log_level level, const char *job, const char *ts, const char *msg)
{
    char line[2048];
    int w = snprintf(line, sizeof(line), "%s %-5s %s %s%s%s%s", ts, level_names[level],
                     process, job ? "job=" : "", job ? job : "", job ? " " : "", msg);
    size_t n = w < 0 ? 0 : (size_t)w;

    if (n >= sizeof(line) - 1)
        n = sizeof(line) - 2;   /* truncated: keep the newline */
    line[n++] = '\n';
    write_line(line, n);
}

/* A JSON string member. Text that is not UTF-8 (a peer's error message
 * quoting raw bytes) has its non-ASCII bytes shown as '?', so every line
 * stays valid JSON. */
static void put_string(struct buf *out, const char *key, const char *s)
{
    size_t len = strlen(s);

    buf_printf(out, ",\"%s\":", key);
    if (json_utf8_valid(s, len)) {
        json_write_string(out, s, len);
        return;
    }
    char *ascii = xstrdup(s);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)ascii[i] >= 0x80)
            ascii[i] = '?';
    json_write_string(out, ascii, len);
    free(ascii);
}

static void emit_json(enum log_level level, const struct log_fields *f, const char *ts,
                      const char *msg)
{
    static const char *lower[] = { "debug", "info", "warn", "error" };
    struct buf line = BUF_INIT;

    buf_printf(&line, "{\"ts\":\"%s\",\"level\":\"%s\"", ts, lower[level]);
    put_string(&line, "worker", process);
    put_string(&line, "msg", msg);
    if (f->job != NULL)
        put_string(&line, "job", f->job);
    if (f->origin != NULL)
        put_string(&line, "origin", f->origin);
    if (f->attempt > 0)
        buf_printf(&line, ",\"attempt\":%d", f->attempt);
    if (f->status >= 0)
        buf_printf(&line, ",\"status\":%ld", f->status);
    if (f->error != NULL)
        put_string(&line, "error", f->error);
    if (f->latency_ms >= 0)
        buf_printf(&line, ",\"latency_ms\":%ld", f->latency_ms);
    buf_append_str(&line, "}\n");
    write_line(line.data, line.len);
    buf_free(&line);
}

static void emit(enum log_level level, const struct log_fields *f, const char *fmt, va_list ap)
{
    static const struct log_fields none = LOG_FIELDS_INIT;
    char msg[MSG_ROOM], ts[32];

    if (level < min_level)
        return;
    timestamp(ts);
    format_message(msg, fmt, ap);
    if (format == LOG_JSON)
        emit_json(level, f ? f : &none, ts, msg);
    else
        emit_text(level, f ? f->job : NULL, ts, msg);
}

void log_emit(enum log_level level, const char *job_id, const char *fmt, ...)
{
    struct log_fields f = LOG_FIELDS_INIT;
    va_list ap;

    f.job = job_id;
    va_start(ap, fmt);
    emit(level, &f, fmt, ap);
    va_end(ap);
}

void log_emit_fields(enum log_level level, const struct log_fields *f, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    emit(level, f, fmt, ap);
    va_end(ap);
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
