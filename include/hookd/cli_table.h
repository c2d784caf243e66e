/* cli_table.h -- what the command-line tables share (dlq list, attempts,
 * endpoints): the width to fit and the last column cut to it. */
#ifndef HOOKD_CLI_TABLE_H
#define HOOKD_CLI_TABLE_H

#include <stddef.h>

#include "hookd/buf.h"

/* Columns for the last column's text: the terminal's width when stdout is
 * one, else $COLUMNS, else SIZE_MAX (no limit: a pipe gets whole lines). */
size_t table_columns(void);

/* The last column of a line of `columns` whose first `used` bytes are
 * written: text (len bytes), control bytes as spaces, whole if it fits (or
 * columns is SIZE_MAX), else cut and ended with "...", or left out when
 * not even that fits. */
void table_append_cut(struct buf *out, size_t used, size_t columns, const char *text,
                      size_t len);

#endif
