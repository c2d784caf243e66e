/* test_suggest.c -- edit distance and "did you mean". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "hookd/suggest.h"

static void test_distance(void **state)
{
    (void)state;
    assert_int_equal(suggest_distance("", ""), 0);
    assert_int_equal(suggest_distance("workers", "workers"), 0);
    assert_int_equal(suggest_distance("", "abc"), 3);
    assert_int_equal(suggest_distance("abc", ""), 3);
    assert_int_equal(suggest_distance("wrokers", "workers"), 1);     /* swap */
    assert_int_equal(suggest_distance("max_inflight", "max_in_flight"), 1); /* insert */
    assert_int_equal(suggest_distance("workerss", "workers"), 1);    /* delete */
    assert_int_equal(suggest_distance("wirkers", "workers"), 1);     /* substitute */
    assert_int_equal(suggest_distance("kitten", "sitting"), 3);
    assert_int_equal(suggest_distance("ca", "abc"), 3);     /* OSA: no edit of a swapped pair */
    assert_int_equal(suggest_distance("ab", "ba"), 1);
    assert_int_equal(suggest_distance("abcdef", "badcfe"), 3);
    /* symmetric */
    assert_int_equal(suggest_distance("timeout", "timeot"), suggest_distance("timeot", "timeout"));
}

static void test_too_long(void **state)
{
    char longer[SUGGEST_MAX_LEN + 2], longest[SUGGEST_MAX_LEN + 1];

    (void)state;
    memset(longer, 'a', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    memset(longest, 'a', sizeof(longest) - 1);
    longest[sizeof(longest) - 1] = '\0';
    assert_int_equal(suggest_distance(longer, "a"), -1);
    assert_int_equal(suggest_distance("a", longer), -1);
    assert_int_equal(suggest_distance(longest, longest), 0);
    assert_int_equal(suggest_distance(longest, "a"), SUGGEST_MAX_LEN - 1);
}

static void test_limit(void **state)
{
    (void)state;
    assert_int_equal(suggest_limit(0), 1);
    assert_int_equal(suggest_limit(3), 1);
    assert_int_equal(suggest_limit(5), 1);
    assert_int_equal(suggest_limit(6), 2);
    assert_int_equal(suggest_limit(40), 2);
}

static const char *best_of(const char *word, const char *const *names, size_t n)
{
    static struct suggest s;

    suggest_init(&s, word);
    for (size_t i = 0; i < n; i++)
        suggest_consider(&s, names[i]);
    return suggest_best(&s);
}

static void test_best(void **state)
{
    static const char *const names[] = { "redis", "workers", "max_in_flight", "max_per_host",
                                         "timeout", "prefix", "secret" };
    size_t n = sizeof(names) / sizeof(*names);

    (void)state;
    assert_string_equal(best_of("wrokers", names, n), "workers");
    assert_string_equal(best_of("max_inflight", names, n), "max_in_flight");
    assert_string_equal(best_of("max_per_hots", names, n), "max_per_host");
    assert_string_equal(best_of("rdis", names, n), "redis");
    assert_string_equal(best_of("timout", names, n), "timeout");
    assert_null(best_of("redo", names, n));         /* 2 edits in 4 letters: too far */
    assert_null(best_of("json", names, n));
    assert_null(best_of("redis_url", names, n));    /* 4 from redis */
    assert_null(best_of("wrkrs", names, n));        /* 2 edits in 5 letters */
    assert_null(best_of("anything", names, 0));
    /* a tie goes to the name offered first */
    static const char *const twins[] = { "abcx", "abcy" };
    assert_string_equal(best_of("abcz", twins, 2), "abcx");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distance),
        cmocka_unit_test(test_too_long),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_best),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
