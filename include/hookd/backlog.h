/* backlog.h -- the age of the oldest ready job (hookd_backlog_age_seconds),
 * measured from when it became due, from readings of BACKLOG (queue.h)
 * taken about once a second by the metrics process.
 *
 * A producer's job carries no time and hookd does not rewrite it, so its
 * arrival is dated by sampling: each reading gives the running count of
 * jobs that ever arrived at the queue's left end (src/lua/lib/backlog.lua),
 * and the oldest one still queued is the (left_taken + 1)th. The first
 * sample whose count reached it bounds its arrival from above, so the age
 * reported is a lower bound, short by at most the gap between two samples.
 * Jobs hookd itself put back at the right end (due retries, jobs given
 * back) are dated in Redis; a retry due but not yet promoted counts from
 * its due time.
 *
 * Pure: times are passed in. The history is per process: after a restart,
 * or when the counts go backwards (jobs removed by hand, P:backlog
 * deleted), left arrivals are dated from the first reading after it. */
#ifndef HOOKD_BACKLOG_H
#define HOOKD_BACKLOG_H

#include <stdint.h>

#define BACKLOG_SAMPLES 512         /* history kept; thinned evenly when full */

/* One reading, as BACKLOG returns it; times in ms on Redis's clock. */
struct backlog_reading {
    long long len;              /* LLEN P:queue */
    long long front;            /* hookd's own pushes at the right end, not taken yet */
    long long front_since_ms;   /* when the oldest of those became due */
    long long left_taken;       /* left arrivals taken, ever */
    long long retry_due_ms;     /* the earliest retry's due time, -1 when none */
    long long now_ms;
};

struct backlog_sample {
    long long at_ms;            /* by this time ... */
    long long arrived;          /* ... this many left arrivals had happened */
};

struct backlog {
    struct backlog_sample s[BACKLOG_SAMPLES]; /* oldest first, arrived increasing */
    int n;
};

void backlog_init(struct backlog *b);

/* Note a reading; return the age in ms of the oldest ready job (0 when
 * nothing is ready). */
long long backlog_note(struct backlog *b, const struct backlog_reading *r);

#endif
