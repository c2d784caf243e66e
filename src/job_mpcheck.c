/* job_mpcheck.c -- one concern: walking msgpack bytes to prove them
 * well-formed and bounded before msgpack-c unpacks them. Knows nothing of
 * jobs; used wherever the job codec hands bytes to msgpack_unpack_next. */
#include <stddef.h>
#include <stdint.h>

#include "job_internal.h"

/* Walk the msgpack bytes once before msgpack-c sees them. Written by hand
 * because msgpack-c's unpacker allocates every array and map from its
 * declared length before reading the elements: a 5-byte map32 header that
 * claims 2^32 entries makes it ask for hundreds of GiB. Here each declared
 * count must fit in the bytes that remain (every element takes at least
 * one), nesting is bounded, and the total work is linear in len. Returns
 * the size of the value at p, or -1 when it is malformed. */
long job_mp_check(const unsigned char *p, size_t len, int depth, int max_depth)
{
    static const unsigned char fixed[32] = {
        /* 0xc0 .. 0xdf: total size of fixed-size types, 0 = special */
        1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 5, 9, 2, 3, 5, 9,
        2, 3, 5, 9, 3, 4, 6, 10, 18, 0, 0, 0, 0, 0, 0, 0,
    };
    uint64_t n = 0, head, elems = 0;
    unsigned char c;

    if (len == 0 || depth > max_depth)
        return -1;
    c = p[0];
    if (c <= 0x7f || c >= 0xe0)
        return 1;
    if (c >= 0xa0 && c <= 0xbf) {
        n = c & 0x1f;
        return 1 + n <= len ? (long)(1 + n) : -1;
    }
    if (c >= 0x80 && c <= 0x9f) {
        head = 1;
        elems = (c & 0x0f) * (c < 0x90 ? 2u : 1u);
    } else if (fixed[c - 0xc0] != 0) {
        return fixed[c - 0xc0] <= len ? fixed[c - 0xc0] : -1;
    } else {
        /* length-prefixed: str/bin/ext 8/16/32, array/map 16/32 */
        static const unsigned char lenbytes[32] = {
            [0x04] = 1, [0x05] = 2, [0x06] = 4, [0x07] = 1, [0x08] = 2, [0x09] = 4,
            [0x19] = 1, [0x1a] = 2, [0x1b] = 4, [0x1c] = 2, [0x1d] = 4, [0x1e] = 2, [0x1f] = 4,
        };
        unsigned lb = lenbytes[c - 0xc0];
        if (lb == 0 || len < 1 + (size_t)lb)
            return -1;      /* 0xc1 (never used) or truncated */
        for (unsigned i = 0; i < lb; i++)
            n = (n << 8) | p[1 + i];
        head = 1 + lb;
        if (c >= 0xdc) {
            elems = c >= 0xde ? 2 * n : n;
        } else {
            head += (c >= 0xc7 && c <= 0xc9);   /* ext type byte */
            return head + n <= len ? (long)(head + n) : -1;
        }
    }
    if (elems > len - head)
        return -1;
    size_t off = head;
    for (uint64_t i = 0; i < elems; i++) {
        long k = job_mp_check(p + off, len - off, depth + 1, max_depth);
        if (k < 0)
            return -1;
        off += (size_t)k;
    }
    return (long)off;
}
