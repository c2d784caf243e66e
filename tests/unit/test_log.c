/* test_log.c -- "said once per state change": log_changed and log_recovered,
 * the one helper every layer that retries uses to log an error once while
 * it lasts, and once more when it is over; and log.c's two line formats
 * (text, json), read back from a stderr redirected into a temporary file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

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

static int saved_stderr = -1;
static FILE *capture;

/* Point stderr (fd 2) at a fresh temporary file. */
static int setup(void **state)
{
    (void)state;
    capture = tmpfile();
    if (capture == NULL)
        return -1;
    saved_stderr = dup(STDERR_FILENO);
    dup2(fileno(capture), STDERR_FILENO);
    log_set_level(LOG_DEBUG);
    log_set_process("w1");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    fclose(capture);
    log_set_format(LOG_TEXT);
    return 0;
}

/* Everything written so far, the timestamp cut off (the part after the
 * first `,"level"` for json, after the first space for text). Caller frees. */
static char *written(void)
{
    long n = lseek(STDERR_FILENO, 0, SEEK_END);
    char *buf = calloc(1, (size_t)n + 1);

    assert_int_equal(pread(STDERR_FILENO, buf, (size_t)n, 0), n);
    return buf;
}

static const char *after_ts(const char *line)
{
    const char *p = strstr(line, "\"level\"");

    return p ? p : strchr(line, ' ') + 1;
}

static void test_text_line_keeps_its_layout(void **state)
{
    (void)state;
    log_set_format(LOG_TEXT);
    log_emit(LOG_WARN, "job-1", "attempt %d failed", 2);
    char *s = written();
    assert_string_equal(after_ts(s), "WARN  w1 job=job-1 attempt 2 failed\n");
    assert_int_equal(strlen(s) - strlen(after_ts(s)), strlen("2026-11-30T06:28:18.443Z "));
    free(s);
}

static void test_json_escapes_and_orders_fields(void **state)
{
    struct log_fields f = LOG_FIELDS_INIT;

    (void)state;
    log_set_format(LOG_JSON);
    f.job = "j\"1";
    f.origin = "http://a:80";
    f.attempt = 3;
    f.status = 0;
    f.error = "connect_failed: x";
    f.latency_ms = 12;
    log_emit_fields(LOG_ERROR, &f, "say \"hi\"\n\tback\\slash \x01");
    char *s = written();
    assert_memory_equal(s, "{\"ts\":\"", 7);
    assert_string_equal(after_ts(s),
                        "\"level\":\"error\",\"worker\":\"w1\",\"msg\":\"say \\\"hi\\\"\\n\\tback"
                        "\\\\slash \\u0001\",\"job\":\"j\\\"1\",\"origin\":\"http://a:80\","
                        "\"attempt\":3,\"status\":0,\"error\":\"connect_failed: x\","
                        "\"latency_ms\":12}\n");
    free(s);
}

static void test_json_unknown_fields_are_left_out(void **state)
{
    (void)state;
    log_set_format(LOG_JSON);
    log_emit(LOG_INFO, NULL, "plain");
    log_emit_fields(LOG_DEBUG, NULL, "none");
    char *s = written();
    char *second = strchr(s, '\n') + 1;
    assert_string_equal(strchr(after_ts(s), '\n') + 1, second);
    assert_memory_equal(after_ts(s), "\"level\":\"info\",\"worker\":\"w1\",\"msg\":\"plain\"}\n",
                        strlen("\"level\":\"info\",\"worker\":\"w1\",\"msg\":\"plain\"}\n"));
    assert_string_equal(after_ts(second), "\"level\":\"debug\",\"worker\":\"w1\",\"msg\":\"none\"}\n");
    free(s);
}

static void test_json_replaces_bytes_that_are_not_utf8(void **state)
{
    (void)state;
    log_set_format(LOG_JSON);
    log_emit(LOG_INFO, NULL, "caf\xc3\xa9 \xff\xfe ok");
    char *s = written();
    assert_non_null(strstr(s, "\"msg\":\"caf?? ?? ok\""));
    free(s);
}

/* A message longer than the cap is cut before a character, not inside. */
static void test_long_message_is_cut_at_a_character(void **state)
{
    char msg[4000];

    (void)state;
    log_set_format(LOG_JSON);
    memset(msg, 'a', 1799);
    strcpy(msg + 1799, "\xc3\xa9tail");
    log_emit(LOG_INFO, NULL, "%s", msg);
    char *s = written();
    char *m = strstr(s, "\"msg\":\"") + 7;
    assert_int_equal(strchr(m, '"') - m, 1799);
    free(s);
}

static void test_level_filter_and_format_names(void **state)
{
    enum log_format f;

    (void)state;
    log_set_level(LOG_WARN);
    log_emit(LOG_INFO, NULL, "hidden");
    char *s = written();
    assert_string_equal(s, "");
    free(s);
    assert_int_equal(log_parse_format("json", &f), 0);
    assert_int_equal(f, LOG_JSON);
    assert_int_equal(log_parse_format("text", &f), 0);
    assert_int_equal(f, LOG_TEXT);
    assert_true(log_parse_format("JSON ", &f) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_an_error_is_said_once_while_it_lasts),
        cmocka_unit_test(test_recovery_is_said_once_and_resets),
        cmocka_unit_test(test_long_and_missing_messages),
        cmocka_unit_test_setup_teardown(test_text_line_keeps_its_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_escapes_and_orders_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_unknown_fields_are_left_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_replaces_bytes_that_are_not_utf8, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_long_message_is_cut_at_a_character, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_level_filter_and_format_names, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
