/* cli_table.c -- the terminal width and the cut last column of the
 * command-line tables (cli_table.h). */
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "hookd/cli_table.h"

size_t table_columns(void)
{
    struct winsize ws;
    const char *env = getenv("COLUMNS");

    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    if (env != NULL && atoi(env) > 0)
        return (size_t)atoi(env);
    return SIZE_MAX;
}

void table_append_cut(struct buf *out, size_t used, size_t columns, const char *text,
                      size_t len)
{
    size_t room = used < columns ? columns - used : 0;
    int cut = columns != SIZE_MAX && len > room;
    size_t n = !cut ? len : room > 3 ? room - 3 : 0;

    for (size_t i = 0; i < n; i++)
        buf_append_char(out, (unsigned char)text[i] < 0x20 ? ' ' : text[i]);
    if (cut && room > 3)
        buf_append_str(out, "...");
}
