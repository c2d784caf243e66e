/* parse.h -- the value syntaxes hookd's settings share: durations, times
 * and plain integers.
 *
 * A leaf: pure functions over a NUL-terminated string, no allocation, no
 * state, nothing of hookd's but err.h. It exists so that a module needing
 * "30s" (backoff's retry schedule) need not include the whole config. Each
 * function reads the whole string: trailing text is an error, and *out is
 * written only on success. */
#ifndef HOOKD_PARSE_H
#define HOOKD_PARSE_H

#include <stddef.h>

#include "hookd/err.h"

/* Parse "30s", "500ms", "2m", "1h", "7d", "1.5s" or a bare number of
 * seconds into milliseconds (rounded). Spaces may separate number and unit.
 * Returns 0, or HK_EINVAL for a negative, non-numeric or over 1e15 ms value
 * or an unknown unit. */
int parse_duration(const char *s, long *ms);

/* Parse unix seconds (> 0) or "YYYY-MM-DDTHH:MM:SSZ" (UTC; the Z may be
 * left off) into unix seconds. Returns 0 or HK_EINVAL. */
int parse_time(const char *s, long long *out);

/* Parse a decimal integer (sizes, counts, ports). Range checks are the
 * caller's. Returns 0, or HK_EINVAL when empty, not a number, followed by
 * other text, or out of long's range. */
int parse_long(const char *s, long *out);

/* Parse "host:port" or "[ipv6]:port" (a listening address) into host
 * (cap bytes, NUL-terminated, without the brackets) and port (1..65535).
 * Returns 0, or HK_EINVAL when the port is missing or out of range, the
 * host is empty or longer than cap - 1, or an IPv6 address lacks []. */
int parse_host_port(const char *s, char *host, size_t cap, int *port);

#endif
