/* test_log.c -- "said once per state change": log_changed and log_recovered,
 * the one helper every layer that retries uses to log an error once while
 * it lasts, and once more when it is over. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <string.h>

#include "hookd/log.h"

static void test_an_error_is_said_once_while_it_lasts(void **state)
{
    char memo[16] = "";
    (void)state;
    assert_int_equal(log_changed(memo, sizeof(memo), "refused"), 1);
    assert_int_equal(log_changed(memo, sizeof(memo), "refused"), 0);
    assert_int_equal(log_changed(memo, sizeof(memo), "refused"), 0);
    assert_int_equal(log_changed(memo, sizeof(memo), "timed out"), 1);  /* another error */
    assert_int_equal(log_changed(memo, sizeof(memo), "refused"), 1);    /* and back */
    assert_string_equal(memo, "refused");
}

static void test_recovery_is_said_once_and_resets(void **state)
{
    char memo[16] = "";
    (void)state;
    assert_int_equal(log_recovered(memo), 0);           /* nothing was wrong */
    assert_int_equal(log_changed(memo, sizeof(memo), "refused"), 1);
    assert_int_equal(log_recovered(memo), 1);
    assert_int_equal(log_recovered(memo), 0);
    /* The same error after a recovery is news again. */
    assert_int_equal(log_changed(memo, sizeof(memo), "refused"), 1);
}

static void test_long_and_missing_messages(void **state)
{
    char memo[8] = "";
    (void)state;
    /* Compared on what memo keeps: a long message that repeats is not news. */
    assert_int_equal(log_changed(memo, sizeof(memo), "a very long error text"), 1);
    assert_int_equal(log_changed(memo, sizeof(memo), "a very long error text"), 0);
    assert_int_equal(strlen(memo), sizeof(memo) - 1);
    /* NULL counts as "?". */
    assert_int_equal(log_changed(memo, sizeof(memo), NULL), 1);
    assert_int_equal(log_changed(memo, sizeof(memo), "?"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_an_error_is_said_once_while_it_lasts),
        cmocka_unit_test(test_recovery_is_said_once_and_resets),
        cmocka_unit_test(test_long_and_missing_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
