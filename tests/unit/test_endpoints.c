/* test_endpoints.c -- a worker's mirror of breaker states: lines, probe
 * grants, how many parked jobs to ask for. Times are passed in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "hookd/endpoints.h"

#define A "http://a.example:80"
#define B "https://b.example:443"

static int set(struct endpoints *eps, const char *origin, const char *line)
{
    return endpoints_set(eps, origin, strlen(origin), line, strlen(line));
}

static void test_lines(void **state)
{
    enum endpoint_state s;
    int64_t since, due;
    static const char *bad[] = { "", "open", "open 1", "open 1 2 3", "opened 1 2", "open -1 2",
                                 "open 1 x", "open  1 2", "open 99999999999999999999 2",
                                 "half_open 1 2 " };
    (void)state;

    assert_int_equal(endpoints_parse_line("half_open 17 42", 15, &s, &since, &due), 0);
    assert_int_equal(s, ENDPOINT_HALF_OPEN);
    assert_int_equal(since, 17);
    assert_int_equal(due, 42);
    assert_int_equal(endpoints_parse_line("disabled 1 0", 12, &s, &since, &due), 0);
    assert_int_equal(s, ENDPOINT_DISABLED);
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        assert_int_equal(endpoints_parse_line(bad[i], strlen(bad[i]), &s, &since, &due), -1);
}

static void test_states_and_forgetting(void **state)
{
    struct endpoints *eps = endpoints_new();
    (void)state;

    assert_int_equal(endpoints_state(eps, A), ENDPOINT_CLOSED);
    assert_int_equal(set(eps, A, "open 1000 31000"), 0);
    assert_int_equal(set(eps, B, "disabled 1000 0"), 0);
    assert_int_equal(endpoints_state(eps, A), ENDPOINT_OPEN);
    assert_int_equal(endpoints_state(eps, B), ENDPOINT_DISABLED);
    assert_int_equal(endpoints_count(eps), 2);
    /* closed, or a line that is not one, forgets it */
    assert_int_equal(set(eps, A, "closed 2000 0"), 0);
    assert_int_equal(set(eps, B, "garbage"), -1);
    assert_int_equal(endpoints_state(eps, A), ENDPOINT_CLOSED);
    assert_int_equal(endpoints_state(eps, B), ENDPOINT_CLOSED);
    assert_int_equal(endpoints_count(eps), 0);
    set(eps, A, "open 1000 31000");
    endpoints_clear(eps);
    assert_int_equal(endpoints_count(eps), 0);
    endpoints_free(eps);
}

static void test_probe_grant_taken_once_and_expires(void **state)
{
    struct endpoints *eps = endpoints_new();
    (void)state;

    set(eps, A, "open 1000 31000");
    assert_int_equal(endpoints_take_probe(eps, A, 100), 0);
    endpoints_grant_probe(eps, A, strlen(A), 100);
    assert_int_equal(endpoints_take_probe(eps, B, 100), 0);
    assert_int_equal(endpoints_take_probe(eps, A, 100 + ENDPOINTS_GRANT_MS), 1);
    assert_int_equal(endpoints_take_probe(eps, A, 100 + ENDPOINTS_GRANT_MS), 0);
    /* a grant no job took in time is not a probe later */
    endpoints_grant_probe(eps, A, strlen(A), 100);
    assert_int_equal(endpoints_take_probe(eps, A, 101 + ENDPOINTS_GRANT_MS), 0);
    /* a grant survives its origin's state changing (the mirror reloads) */
    endpoints_grant_probe(eps, B, strlen(B), 100);
    endpoints_clear(eps);
    assert_int_equal(endpoints_take_probe(eps, B, 100), 1);
    assert_int_equal(endpoints_count(eps), 0);
    endpoints_free(eps);
}

static void test_pull_room(void **state)
{
    struct endpoints *eps = endpoints_new();
    (void)state;

    /* closed, unknown and disabled: the room as given */
    assert_int_equal(endpoints_pull_room(eps, A, 7, 0), 7);
    set(eps, B, "disabled 1000 0");
    assert_int_equal(endpoints_pull_room(eps, B, 7, 0), 7);
    /* open or half-open: one (the probe, if FETCH finds it due), asked at
     * most once per ENDPOINTS_ASK_MS */
    set(eps, A, "open 1000 31000");
    assert_int_equal(endpoints_pull_room(eps, A, 7, 5000), 1);
    assert_int_equal(endpoints_pull_room(eps, A, 7, 5000 + ENDPOINTS_ASK_MS - 1), 0);
    assert_int_equal(endpoints_pull_room(eps, A, 7, 5000 + ENDPOINTS_ASK_MS), 1);
    /* no room (the origin is stalled): not asked, so not held back later */
    assert_int_equal(endpoints_pull_room(eps, A, 0, 7000), 0);
    assert_int_equal(endpoints_pull_room(eps, A, 7, 7000), 1);
    set(eps, A, "half_open 1000 40000");
    assert_int_equal(endpoints_pull_room(eps, A, 7, 7001), 0);
    assert_int_equal(endpoints_pull_room(eps, A, 7, 7000 + ENDPOINTS_ASK_MS), 1);
    endpoints_free(eps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines),
        cmocka_unit_test(test_states_and_forgetting),
        cmocka_unit_test(test_probe_grant_taken_once_and_expires),
        cmocka_unit_test(test_pull_room),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
