/* test_buf.c -- buf_printf at and across the edge of the room a buffer has:
 * it formats into the room first and again after growing only when the
 * text did not fit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hookd/buf.h"

static void test_printf_fits_and_grows(void **state)
{
    struct buf b = BUF_INIT;
    char big[300];
    (void)state;

    buf_printf(&b, "%s", "");                  /* empty into an empty buffer */
    assert_int_equal(b.len, 0);
    buf_printf(&b, "%d-%s", 7, "x");           /* first allocation */
    assert_string_equal(b.data, "7-x");
    /* exactly the room left, then one byte more than it */
    size_t room = b.cap - b.len - 1;
    memset(big, 'a', room);
    big[room] = '\0';
    buf_printf(&b, "%s", big);
    assert_int_equal(b.len, 3 + room);
    assert_int_equal(b.len, strlen(b.data));
    size_t cap = b.cap;
    buf_printf(&b, "%s", "yz");
    assert_true(b.cap > cap);
    assert_int_equal(b.len, 3 + room + 2);
    assert_memory_equal(b.data + b.len - 3, "ayz", 4);     /* NUL included */
    /* much longer than the room, after a reset that kept the memory */
    buf_reset(&b);
    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    buf_printf(&b, "<%s>", big);
    assert_int_equal(b.len, sizeof(big) + 1);
    assert_int_equal(b.data[0], '<');
    assert_int_equal(b.data[b.len - 1], '>');
    assert_int_equal(b.data[b.len], '\0');
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_printf_fits_and_grows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
