/* test_backlog.c -- the oldest ready job's age from sampled counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "hookd/backlog.h"

/* A reading with only producers' jobs: len queued, taken so far, at now. */
static struct backlog_reading left(long long len, long long taken, long long now)
{
    return (struct backlog_reading){ .len = len, .left_taken = taken, .retry_due_ms = -1,
                                     .now_ms = now };
}

static void test_empty_is_zero(void **state)
{
    struct backlog b;
    struct backlog_reading r = left(0, 0, 5000);
    (void)state;
    backlog_init(&b);
    assert_int_equal(backlog_note(&b, &r), 0);
    /* a retry due later is not ready */
    r.retry_due_ms = 9000;
    assert_int_equal(backlog_note(&b, &r), 0);
}

/* Nothing taken: the oldest job is dated by the first reading that saw it,
 * and its age grows with the clock. */
static void test_stuck_queue_grows(void **state)
{
    struct backlog b;
    struct backlog_reading r;
    (void)state;
    backlog_init(&b);
    r = left(5, 0, 1000);
    assert_int_equal(backlog_note(&b, &r), 0);
    r = left(8, 0, 2000);
    assert_int_equal(backlog_note(&b, &r), 1000);
    r = left(8, 0, 61000);
    assert_int_equal(backlog_note(&b, &r), 60000);
}

/* Jobs 1-5 seen at 1 s, 6-10 at 2 s, 11-12 at 3 s. Once five are taken the
 * oldest is job 6, seen first at 2 s; once ten are, job 11, at 3 s. */
static void test_taking_moves_to_younger(void **state)
{
    struct backlog b;
    struct backlog_reading r;
    (void)state;
    backlog_init(&b);
    r = left(5, 0, 1000);
    backlog_note(&b, &r);
    r = left(10, 0, 2000);
    backlog_note(&b, &r);
    r = left(12, 0, 3000);
    assert_int_equal(backlog_note(&b, &r), 2000);
    r = left(7, 5, 4000);
    assert_int_equal(backlog_note(&b, &r), 2000);
    r = left(2, 10, 5000);
    assert_int_equal(backlog_note(&b, &r), 2000);
    r = left(0, 12, 6000);
    assert_int_equal(backlog_note(&b, &r), 0);
}

/* hookd's own pushes at the right end are dated in Redis, and only the
 * part of the front the queue really holds counts. */
static void test_front_and_overdue_retry(void **state)
{
    struct backlog b;
    struct backlog_reading r = { .len = 3, .front = 3, .front_since_ms = 40000,
                                 .retry_due_ms = -1, .now_ms = 100000 };
    (void)state;
    backlog_init(&b);
    assert_int_equal(backlog_note(&b, &r), 60000);
    /* a front count left stale by a hand-made DEL: an empty queue is 0 */
    r.len = 0;
    assert_int_equal(backlog_note(&b, &r), 0);
    /* a retry due 90 s ago and not promoted (no worker running) */
    r.retry_due_ms = 10000;
    assert_int_equal(backlog_note(&b, &r), 90000);
    /* the oldest of the three wins: left jobs seen at 100 s, now 200 s */
    backlog_init(&b);
    r = left(3, 0, 100000);
    backlog_note(&b, &r);
    r = (struct backlog_reading){ .len = 4, .front = 1, .front_since_ms = 150000,
                                  .retry_due_ms = 195000, .now_ms = 200000 };
    assert_int_equal(backlog_note(&b, &r), 100000);
}

/* Counts that go back (jobs removed by hand, P:backlog deleted) restart
 * the dating: never an age from a history that no longer fits. */
static void test_counts_going_back_restart(void **state)
{
    struct backlog b;
    struct backlog_reading r;
    (void)state;
    backlog_init(&b);
    r = left(100, 0, 1000);
    backlog_note(&b, &r);
    r = left(10, 0, 50000);
    assert_int_equal(backlog_note(&b, &r), 0);
    assert_int_equal(b.n, 1);
    r = left(10, 0, 70000);
    assert_int_equal(backlog_note(&b, &r), 20000);
}

/* A backlog that grows for far longer than the history holds: every answer
 * is a lower bound of the true age, short by at most the gap between the
 * samples kept: a second, plus what thinning spread over the span. */
static void test_long_backlog_stays_a_lower_bound(void **state)
{
    enum { SECONDS = 20 * BACKLOG_SAMPLES, RATE = 3 };
    struct backlog b;
    (void)state;
    backlog_init(&b);
    /* RATE jobs arrive each second, at its start; from half-time on, RATE - 1
     * are taken each second, so the oldest moves slower than the clock. */
    long long taken = 0;
    for (long long t = 1; t <= SECONDS; t++) {
        if (t > SECONDS / 2)
            taken += RATE - 1;
        long long arrived = RATE * t;
        struct backlog_reading r = left(arrived - taken, taken, t * 1000 + 500);
        long long age = backlog_note(&b, &r);
        /* job number taken + 1 arrived at the start of second ceil((taken+1)/RATE) */
        long long truth = r.now_ms - ((taken + RATE) / RATE) * 1000;
        assert_true(b.n <= BACKLOG_SAMPLES);
        assert_true(age <= truth);
        assert_true(truth - age <= 1000 + 3 * truth / BACKLOG_SAMPLES);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_is_zero),
        cmocka_unit_test(test_stuck_queue_grows),
        cmocka_unit_test(test_taking_moves_to_younger),
        cmocka_unit_test(test_front_and_overdue_retry),
        cmocka_unit_test(test_counts_going_back_restart),
        cmocka_unit_test(test_long_backlog_stays_a_lower_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
