/* timeutil.h -- wall-clock and monotonic milliseconds, ISO-8601 form. */
#ifndef HOOKD_TIMEUTIL_H
#define HOOKD_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

#define TIME_ISO_LEN 24   /* "2025-11-15T14:00:00.000Z" without NUL */

int64_t time_now_ms(void);

/* Monotonic milliseconds (intervals only: unaffected by clock changes). */
int64_t time_mono_ms(void);

/* Write "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC, as JavaScript's toISOString). */
void time_format_iso(int64_t ms, char out[TIME_ISO_LEN + 1]);

/* Parse an ISO-8601 date-time as producers write it:
 * "YYYY-MM-DDTHH:MM:SS[.f...](Z|+HH:MM|-HH:MM)" (a space may stand for the
 * T; fractions beyond milliseconds are truncated). Years 1970-9999. Returns
 * 0 with *ms set (unix milliseconds, UTC), or -1 when s is not that form. */
int time_parse_iso(const char *s, size_t len, int64_t *ms);

#endif
