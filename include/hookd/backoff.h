/* backoff.h -- the retry policy: which failed attempts are retried, and
 * when; and the wait before restarting a process that keeps crashing.
 * Pure functions; the randomness for jitter is passed in. */
#ifndef HOOKD_BACKOFF_H
#define HOOKD_BACKOFF_H

#define BACKOFF_SCHEDULE_MAX 32

struct backoff_policy {
    long schedule_ms[BACKOFF_SCHEDULE_MAX]; /* delay before retry 1, 2, ... */
    int nschedule;                          /* retries by default */
    double jitter;                          /* 0..1: delay spread +-jitter */
    long retry_after_max_ms;                /* cap on a Retry-After header */
    int retry_on_4xx;                       /* retry 4xx other than 410 */
};

/* 1 when a failed attempt may be retried: connection errors, timeouts, TLS
 * errors, 3xx, 5xx, 408 and 429 always; other 4xx when retry_on_4xx; never
 * 410 Gone, nor a reason listed as final ("destination_forbidden",
 * "invalid_secret"). status 0 = no HTTP answer. */
int backoff_retryable(const struct backoff_policy *p, long status, const char *reason);

/* Delay in ms before the next attempt, after `attempts` attempts (>= 1)
 * failed. The schedule's last entry repeats when a job allows more attempts
 * than the schedule has entries. rnd01 in [0, 1) drives the jitter.
 * retry_after_s (-1 when absent) from a 429 or 503 pushes the delay later,
 * capped at retry_after_max_ms; it never makes it earlier. */
long backoff_delay_ms(const struct backoff_policy *p, int attempts, long status,
                      long retry_after_s, double rnd01);

/* The wait before restarting a process (a worker, the embedded
 * redis-server) that died right after starting, when `failures` such deaths
 * came before this one in a row: 100 ms doubling, capped at
 * BACKOFF_RESTART_MAX_MS, so a process that cannot start does not spin.
 * Any failures >= 0. */
#define BACKOFF_RESTART_MAX_MS 30000
long backoff_restart_ms(int failures);

/* Parse "1s,5s,25s" (durations as parse_duration reads them; "" or "none" = no
 * retries). Returns 0 or HK_EINVAL. */
int backoff_parse_schedule(const char *s, struct backoff_policy *p);

#endif
