/* backlog.c -- the oldest ready job's age from sampled counts (backlog.h). */
#include <string.h>

#include "hookd/backlog.h"

void backlog_init(struct backlog *b)
{
    b->n = 0;
}

static long long max_ll(long long a, long long b)
{
    return a > b ? a : b;
}

/* Full: drop the sample whose neighbours are closest in time, so the
 * widest gap (the error of a date) stays within about 2 / BACKLOG_SAMPLES of
 * the span kept. Dropping a sample only makes a later one date a job, so the
 * age stays a lower bound. */
static void thin(struct backlog *b)
{
    int drop = 1;

    for (int i = 2; i < b->n - 1; i++)
        if (b->s[i + 1].at_ms - b->s[i - 1].at_ms < b->s[drop + 1].at_ms - b->s[drop - 1].at_ms)
            drop = i;
    memmove(b->s + drop, b->s + drop + 1, (size_t)(b->n - drop - 1) * sizeof(b->s[0]));
    b->n--;
}

/* Keep the samples still needed to date the queued left arrivals (those
 * numbered from first on) and add this one. */
static void record(struct backlog *b, long long first, long long arrived, long long now)
{
    int keep = 0;

    if (b->n > 0 && arrived < b->s[b->n - 1].arrived)
        b->n = 0;               /* counts went back: start dating afresh */
    while (keep + 1 < b->n && b->s[keep].arrived < first)
        keep++;
    if (keep > 0) {
        memmove(b->s, b->s + keep, (size_t)(b->n - keep) * sizeof(b->s[0]));
        b->n -= keep;
    }
    if (b->n > 0 && arrived == b->s[b->n - 1].arrived)
        return;                 /* nothing arrived: the older sample dates better */
    if (b->n == BACKLOG_SAMPLES)
        thin(b);
    b->s[b->n++] = (struct backlog_sample){ now, arrived };
}

long long backlog_note(struct backlog *b, const struct backlog_reading *r)
{
    long long len = max_ll(r->len, 0);
    long long front = r->front < 0 ? 0 : r->front > len ? len : r->front;
    long long left = len - front, first = r->left_taken + 1, age = 0;

    record(b, first, r->left_taken + left, r->now_ms);
    if (front > 0 && r->front_since_ms > 0)
        age = r->now_ms - r->front_since_ms;
    if (left > 0) {
        int i = 0;
        while (i + 1 < b->n && b->s[i].arrived < first)
            i++;
        age = max_ll(age, r->now_ms - b->s[i].at_ms);
    }
    if (r->retry_due_ms >= 0 && r->retry_due_ms <= r->now_ms)
        age = max_ll(age, r->now_ms - r->retry_due_ms);
    return max_ll(age, 0);
}
