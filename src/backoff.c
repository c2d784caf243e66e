/* backoff.c -- retry decisions and delays, and the crash-restart backoff (see backoff.h). */
#include <stdlib.h>
#include <string.h>

#include "hookd/backoff.h"
#include "hookd/err.h"
#include "hookd/parse.h"

int backoff_retryable(const struct backoff_policy *p, long status, const char *reason)
{
    if (strcmp(reason, "destination_forbidden") == 0 || strcmp(reason, "invalid_secret") == 0)
        return 0;
    if (status == 0)
        return 1;           /* no answer: connection, TLS, timeout */
    if (status == 410)
        return 0;           /* Gone: the receiver asks us to stop */
    if (status == 408 || status == 429)
        return 1;
    if (status >= 400 && status < 500)
        return p->retry_on_4xx;
    return 1;               /* 1xx/3xx (not followed), 5xx */
}

long backoff_delay_ms(const struct backoff_policy *p, int attempts, long status,
                      long retry_after_s, double rnd01)
{
    long delay = 0;

    if (p->nschedule > 0) {
        int i = attempts - 1;
        if (i < 0)
            i = 0;
        if (i >= p->nschedule)
            i = p->nschedule - 1;
        delay = p->schedule_ms[i];
    }
    if (p->jitter > 0)
        delay += (long)((double)delay * p->jitter * (2.0 * rnd01 - 1.0));
    if ((status == 429 || status == 503) && retry_after_s >= 0) {
        long ra = retry_after_s > p->retry_after_max_ms / 1000 ? p->retry_after_max_ms
                                                                : retry_after_s * 1000;
        if (ra > delay)
            delay = ra;
    }
    return delay < 0 ? 0 : delay;
}

long backoff_restart_ms(int failures)
{
    /* 100 << 9 is past the cap already; a larger shift could overflow */
    long delay = 100L << (failures < 9 ? failures : 9);

    return delay > BACKOFF_RESTART_MAX_MS ? BACKOFF_RESTART_MAX_MS : delay;
}

int backoff_parse_schedule(const char *s, struct backoff_policy *p)
{
    long ms_list[BACKOFF_SCHEDULE_MAX];    /* p is changed only when all parse */
    char *copy, *tok, *save = NULL;
    int n = 0, rc = 0;

    if (s[0] == '\0' || strcmp(s, "none") == 0) {
        p->nschedule = 0;
        return 0;
    }
    copy = strdup(s);
    if (copy == NULL)
        return HK_EINVAL;
    for (tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        long ms;
        while (*tok == ' ')
            tok++;
        size_t len = strlen(tok);
        while (len > 0 && tok[len - 1] == ' ')
            tok[--len] = '\0';
        if (n == BACKOFF_SCHEDULE_MAX || parse_duration(tok, &ms) < 0 ||
            ms > 7L * 24 * 3600 * 1000) {
            rc = HK_EINVAL;
            break;
        }
        ms_list[n++] = ms;
    }
    free(copy);
    if (rc == 0 && n == 0)
        rc = HK_EINVAL;
    if (rc == 0) {
        memcpy(p->schedule_ms, ms_list, (size_t)n * sizeof(*ms_list));
        p->nschedule = n;
    }
    return rc;
}
