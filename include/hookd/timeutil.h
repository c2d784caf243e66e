/* timeutil.h -- wall-clock and monotonic milliseconds, ISO-8601 form. */
#ifndef HOOKD_TIMEUTIL_H
#define HOOKD_TIMEUTIL_H

#include <stdint.h>

#define TIME_ISO_LEN 24   /* "2025-11-15T14:00:00.000Z" without NUL */

int64_t time_now_ms(void);

/* Monotonic milliseconds (intervals only: unaffected by clock changes). */
int64_t time_mono_ms(void);

/* Write "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC, as JavaScript's toISOString). */
void time_format_iso(int64_t ms, char out[TIME_ISO_LEN + 1]);

#endif
