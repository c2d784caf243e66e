/* suggest.c -- edit distance and the closest known name (see suggest.h). */
#include <string.h>

#include "hookd/suggest.h"

static int min3(int a, int b, int c)
{
    int m = a < b ? a : b;
    return m < c ? m : c;
}

/* Three rows of the usual table: the swap of two neighbours looks two rows
 * back. Rows live on the stack, hence SUGGEST_MAX_LEN. */
int suggest_distance(const char *a, const char *b)
{
    int rows[3][SUGGEST_MAX_LEN + 1];
    size_t la = strlen(a), lb = strlen(b);

    if (la > SUGGEST_MAX_LEN || lb > SUGGEST_MAX_LEN)
        return -1;
    for (size_t j = 0; j <= lb; j++)
        rows[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        /* row k lives in rows[k % 3] */
        int *cur = rows[i % 3], *up = rows[(i + 2) % 3], *two = rows[(i + 1) % 3];

        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int cost = a[i - 1] != b[j - 1];
            cur[j] = min3(up[j] + 1, cur[j - 1] + 1, up[j - 1] + cost);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                two[j - 2] + 1 < cur[j])
                cur[j] = two[j - 2] + 1;
        }
    }
    return rows[la % 3][lb];
}

int suggest_limit(size_t len)
{
    size_t third = len / 3;

    return third < 1 ? 1 : third > 2 ? 2 : (int)third;
}

void suggest_init(struct suggest *s, const char *word)
{
    s->word = word;
    s->best = NULL;
    s->distance = -1;
}

void suggest_consider(struct suggest *s, const char *name)
{
    int d = suggest_distance(s->word, name);

    if (d >= 0 && (s->best == NULL || d < s->distance)) {
        s->best = name;
        s->distance = d;
    }
}

const char *suggest_best(const struct suggest *s)
{
    if (s->best == NULL || s->distance > suggest_limit(strlen(s->word)))
        return NULL;
    return s->best;
}
