/* buf.h -- a growable byte buffer.
 *
 * The buffer owns `data`; buf_free releases it. `data` is always
 * NUL-terminated after any append, so text can be used as a C string. */
#ifndef HOOKD_BUF_H
#define HOOKD_BUF_H

#include <stddef.h>
#include <stdio.h>

struct buf {
    char *data;     /* owned; NULL until the first append */
    size_t len;     /* bytes used, excluding the terminating NUL */
    size_t cap;     /* bytes allocated */
};

#define BUF_INIT { NULL, 0, 0 }

void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *data, size_t len);
void buf_append_str(struct buf *b, const char *s);
void buf_append_char(struct buf *b, char c);
/* No argument may point into b: the text is written into b's free room as
 * it is formatted. */
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_reset(struct buf *b);            /* len = 0, memory kept */
void buf_free(struct buf *b);
/* Append everything f holds, up to max bytes. Returns 0, -EIO on a read
 * error, or -EFBIG when f holds more than max (what was read stays). */
int buf_read_stream(struct buf *b, FILE *f, size_t max);

/* Hand the bytes to the caller (who frees them); the buffer is left empty. */
char *buf_steal(struct buf *b, size_t *len);

#endif
