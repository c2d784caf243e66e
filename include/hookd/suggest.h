/* suggest.h -- "did you mean": the known name closest to a mistyped one.
 *
 * A leaf: pure functions, no allocation, nothing of hookd's. Names are
 * compared byte for byte (callers fold case and '-' first); the distance
 * is Damerau-Levenshtein in its "optimal string alignment" form: an
 * insertion, a deletion, a substitution or a swap of two neighbours each
 * count one, so "wrokers" is 1 from "workers", not 2. Swaps are the most
 * common slip of the fingers, which is why plain Levenshtein is not used. */
#ifndef HOOKD_SUGGEST_H
#define HOOKD_SUGGEST_H

#include <stddef.h>

#define SUGGEST_MAX_LEN 64      /* longer words match nothing */

/* The edit distance between a and b, or -1 when either is longer than
 * SUGGEST_MAX_LEN. */
int suggest_distance(const char *a, const char *b);

/* The most edits a word of len bytes may be from a suggestion: a third of
 * its length, at least 1 and at most 2. Beyond 2 edits the closest name is
 * a guess, not a correction; and the third keeps a short word from being
 * "corrected" into an unrelated name, 2 edits in 4 letters being half the
 * word ("redo" would become "redis"). */
int suggest_limit(size_t len);

/* A search: start with suggest_init, offer each known name with
 * suggest_consider, then suggest_best. The word and the names offered are
 * borrowed: they must outlive the search. */
struct suggest {
    const char *word;       /* the mistyped name */
    const char *best;       /* closest name offered so far, or NULL */
    int distance;           /* its distance from word */
};

void suggest_init(struct suggest *s, const char *word);
void suggest_consider(struct suggest *s, const char *name);

/* The closest name offered, if it is within suggest_limit of the word
 * (the first offered wins a tie), else NULL. */
const char *suggest_best(const struct suggest *s);

#endif
