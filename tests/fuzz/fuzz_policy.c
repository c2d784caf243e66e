/* fuzz_policy.c -- libFuzzer target: URL, header and CIDR validation, and
 * the property that an address the destination policy refuses is never
 * connected to.
 *
 * The whole input is a URL, a CIDR list, and a header name and value split at
 * its first NUL. The same bytes, read from the front, also build a policy
 * (deny_private, up to three allow and three deny CIDRs) and an address to
 * connect to, drawn mostly from the ranges the policy names, bare or inside
 * v4-mapped, IPv4-compatible, NAT64, 6to4 or Teredo IPv6. policy_check_addr
 * (what http.c's open-socket callback asks before every connect) must agree
 * with the oracle below; any disagreement aborts. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- the oracle ------------------------------------------------------------
 * Written from the documentation (policy.h, README "Hostile input and hostile
 * destinations"), not from policy.c: plain integer range tests and a
 * bit-by-bit CIDR match, so one mistake cannot hide in both. */

struct addr {
    int family;                 /* AF_INET, AF_INET6, or another (not IP) */
    uint8_t b[16];              /* IPv4 in b[0..3], network order */
};

static uint32_t v4_of(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static int always_refused(const struct addr *a)
{
    if (a->family == AF_INET) {
        uint32_t v = v4_of(a->b);
        return v >> 16 == 0xa9fe            /* 169.254.0.0/16 link-local, metadata */
            || v >> 24 == 0                 /* 0.0.0.0/8 */
            || v >> 28 == 0xe               /* 224.0.0.0/4 multicast */
            || v == 0xffffffff;             /* broadcast */
    }
    static const uint8_t zero[16], ec2[16] = { 0xfd, 0, 0x0e, 0xc2, [14] = 0x02, 0x54 };
    const uint8_t *b = a->b;
    return (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)      /* fe80::/10 */
        || memcmp(b, ec2, 16) == 0                      /* fd00:ec2::254 */
        || memcmp(b, zero, 16) == 0                     /* :: */
        || b[0] == 0xff;                                /* ff00::/8 multicast */
}

static int private_range(const struct addr *a)
{
    if (a->family == AF_INET) {
        uint32_t v = v4_of(a->b);
        return v >> 24 == 127 || v >> 24 == 10
            || v >> 20 == 0xac1             /* 172.16.0.0/12 */
            || v >> 16 == 0xc0a8            /* 192.168.0.0/16 */
            || v >> 22 == 0x191;            /* 100.64.0.0/10 */
    }
    static const uint8_t one[16] = { [15] = 1 };
    return memcmp(a->b, one, 16) == 0 || (a->b[0] & 0xfe) == 0xfc;     /* ::1, fc00::/7 */
}

static int bit(const uint8_t *b, int i)
{
    return b[i / 8] >> (7 - i % 8) & 1;
}

static int in_cidr(const struct policy_net *n, const struct addr *a)
{
    if (n->family != a->family)
        return 0;
    for (int i = 0; i < n->prefix; i++)
        if (bit(n->addr, i) != bit(a->b, i))
            return 0;
    return 1;
}

static int listed(const struct policy_net *v, size_t n, const struct addr *a)
{
    for (size_t i = 0; i < n; i++)
        if (in_cidr(&v[i], a))
            return 1;
    return 0;
}

/* The documented order: deny_cidrs, allow_cidrs, built-in, deny_private. */
static int oracle_refuses_one(const struct policy_dest *d, const struct addr *a)
{
    if (listed(d->deny, d->ndeny, a))
        return 1;
    if (listed(d->allow, d->nallow, a))
        return 0;
    return always_refused(a) || (d->deny_private && private_range(a));
}

/* The IPv4 address an IPv6 address hands traffic to, if any. */
static int oracle_embedded(const struct addr *a, struct addr *v4)
{
    const uint8_t *b = a->b;
    static const uint8_t zero[12], nat64[12] = { 0, 0x64, 0xff, 0x9b };
    int from = -1, invert = 0;

    if (memcmp(b, nat64, 12) == 0)
        from = 12;
    else if (memcmp(b, zero, 12) == 0 && v4_of(b + 12) > 1)   /* not :: or ::1 */
        from = 12;
    else if (b[0] == 0x20 && b[1] == 0x02)                     /* 6to4 */
        from = 2;
    else if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0)   /* Teredo */
        from = 12, invert = 1;
    if (from < 0)
        return 0;
    v4->family = AF_INET;
    for (int i = 0; i < 4; i++)
        v4->b[i] = invert ? (uint8_t)~b[from + i] : b[from + i];
    return 1;
}

static int oracle_refuses(const struct policy_dest *d, const struct addr *a)
{
    static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };
    struct addr v4 = { 0 };

    if (a->family != AF_INET && a->family != AF_INET6)
        return 1;
    if (a->family == AF_INET6 && memcmp(a->b, mapped, 12) == 0) {
        v4.family = AF_INET;                    /* the kernel connects over IPv4 */
        memcpy(v4.b, a->b + 12, 4);
        return oracle_refuses_one(d, &v4);
    }
    if (oracle_refuses_one(d, a))
        return 1;
    return a->family == AF_INET6 && oracle_embedded(a, &v4) && oracle_refuses_one(d, &v4);
}

/* ---- building cases from the input ------------------------------------- */

struct reader {
    const uint8_t *p;
    size_t n;
};

static uint8_t next(struct reader *r)
{
    if (r->n == 0)
        return 0;
    r->n--;
    return *r->p++;
}

/* Prefixes the policy names, and wider ones around them so both sides of
 * each boundary come up; the bits after the prefix come from the input. */
static const struct { uint8_t b[4]; int bits; } v4_seeds[] = {
    { { 127 }, 8 }, { { 10 }, 8 }, { { 172 }, 8 }, { { 192, 168 }, 16 }, { { 192 }, 8 },
    { { 100 }, 8 }, { { 169, 254, 169, 254 }, 32 }, { { 169 }, 8 }, { { 0 }, 8 },
    { { 224 }, 3 }, { { 255, 255, 255 }, 24 }, { { 93, 184, 216, 34 }, 32 }, { { 0 }, 0 },
};
static const struct { uint8_t b[16]; int bits; } v6_seeds[] = {      /* whole bytes */
    { { 0xfe }, 8 }, { { 0xfd }, 8 }, { { 0xfc }, 8 }, { { 0xff }, 8 }, { { [15] = 1 }, 120 },
    { { 0 }, 128 }, { { 0xfd, 0, 0x0e, 0xc2, [14] = 0x02, 0x54 }, 120 }, { { 0 }, 96 },
    { { 0, 0x64, 0xff, 0x9b }, 88 }, { { 0x20, 0x01 }, 24 }, { { 0x26, 0x06 }, 16 },
    { { 0 }, 0 },
};

static void gen_v4(struct reader *r, uint8_t *out)
{
    uint8_t k = next(r);
    int i = k % (sizeof(v4_seeds) / sizeof(*v4_seeds));
    memcpy(out, v4_seeds[i].b, 4);
    for (int j = v4_seeds[i].bits / 8; j < 4; j++) {
        uint8_t keep = j * 8 < v4_seeds[i].bits ? (uint8_t)(0xff << (8 - v4_seeds[i].bits % 8)) : 0;
        out[j] = (uint8_t)((out[j] & keep) | (next(r) & ~keep));
    }
}

static void gen_addr(struct reader *r, struct addr *a)
{
    uint8_t kind = next(r);
    memset(a, 0, sizeof(*a));
    a->family = AF_INET6;
    switch (kind % 9) {
    case 0:
        a->family = AF_INET;
        gen_v4(r, a->b);
        break;
    case 1:                                     /* ::ffff:a.b.c.d */
        a->b[10] = a->b[11] = 0xff;
        gen_v4(r, a->b + 12);
        break;
    case 2:                                     /* ::a.b.c.d */
        gen_v4(r, a->b + 12);
        break;
    case 3:                                     /* NAT64 64:ff9b::a.b.c.d */
        a->b[1] = 0x64, a->b[2] = 0xff, a->b[3] = 0x9b;
        gen_v4(r, a->b + 12);
        break;
    case 4:                                     /* 6to4 2002:a.b.c.d::/48 */
        a->b[0] = 0x20, a->b[1] = 0x02;
        gen_v4(r, a->b + 2);
        for (int i = 6; i < 16; i++)
            a->b[i] = next(r);
        break;
    case 5:                                     /* Teredo, client inverted */
        a->b[0] = 0x20, a->b[1] = 0x01;
        for (int i = 4; i < 12; i++)
            a->b[i] = next(r);
        gen_v4(r, a->b + 12);
        for (int i = 12; i < 16; i++)
            a->b[i] = (uint8_t)~a->b[i];
        break;
    case 6: {
        int i = next(r) % (sizeof(v6_seeds) / sizeof(*v6_seeds));
        memcpy(a->b, v6_seeds[i].b, 16);
        for (int j = v6_seeds[i].bits / 8; j < 16; j++)
            a->b[j] = next(r);
        break;
    }
    case 7:
        for (int i = 0; i < 16; i++)
            a->b[i] = next(r);
        break;
    default:
        a->family = AF_UNIX;
    }
}

/* A CIDR near the address, or anywhere: a net drawn at random would almost
 * never contain the address, and then allow and deny would never be tried. */
/* A CIDR around the address or the IPv4 address inside it, or anywhere: a
 * net drawn at random would almost never hold the address, and then allow
 * and deny would never be tried. */
static void gen_net(struct reader *r, const struct addr *a, struct policy_net *n)
{
    static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };
    uint8_t how = next(r);
    struct addr x = *a;

    if (how % 3 == 0) {
        gen_addr(r, &x);
    } else if (how % 3 == 1 && a->family == AF_INET6) {
        if (memcmp(a->b, mapped, 12) == 0) {
            memset(&x, 0, sizeof(x));
            x.family = AF_INET;
            memcpy(x.b, a->b + 12, 4);
        } else {
            oracle_embedded(a, &x);
        }
    }
    if (x.family != AF_INET && x.family != AF_INET6)
        x.family = AF_INET;
    n->family = x.family;
    memcpy(n->addr, x.b, 16);
    n->prefix = next(r) % (x.family == AF_INET ? 33 : 129);
}

static void check_addr(const uint8_t *data, size_t size)
{
    struct reader r = { data, size };
    struct policy_net allow[3], deny[3];
    struct policy_dest d = { .allow = allow, .deny = deny };
    struct addr a;
    uint8_t flags = next(&r);
    char why[256], text[INET6_ADDRSTRLEN] = "(not IP)";
    int rc;

    d.deny_private = flags & 1;
    d.nallow = (flags >> 1) % 4;
    d.ndeny = (flags >> 3) % 4;
    gen_addr(&r, &a);
    for (size_t i = 0; i < d.nallow; i++)
        gen_net(&r, &a, &allow[i]);
    for (size_t i = 0; i < d.ndeny; i++)
        gen_net(&r, &a, &deny[i]);

    /* exactly the size the kernel would hand over, so a read past it shows */
    if (a.family == AF_INET) {
        struct sockaddr_in s = { .sin_family = AF_INET };
        memcpy(&s.sin_addr, a.b, 4);
        rc = policy_check_addr(&d, (struct sockaddr *)&s, why, sizeof(why));
    } else if (a.family == AF_INET6) {
        struct sockaddr_in6 s = { .sin6_family = AF_INET6 };
        memcpy(&s.sin6_addr, a.b, 16);
        rc = policy_check_addr(&d, (struct sockaddr *)&s, why, sizeof(why));
    } else {
        struct sockaddr s = { .sa_family = (sa_family_t)a.family };
        rc = policy_check_addr(&d, &s, why, sizeof(why));
    }
    if (a.family == AF_INET || a.family == AF_INET6)
        inet_ntop(a.family, a.b, text, sizeof(text));
    if (oracle_refuses(&d, &a) && rc == 0) {
        fprintf(stderr, "PROPERTY: refused address %s permitted (deny_private=%d, "
                "%zu allow, %zu deny)\n", text, d.deny_private, d.nallow, d.ndeny);
        abort();
    }
    if (!oracle_refuses(&d, &a) && rc != 0) {
        fprintf(stderr, "PROPERTY: permitted address %s refused: %s (deny_private=%d, "
                "%zu allow, %zu deny)\n", text, why, d.deny_private, d.nallow, d.ndeny);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    struct policy_net *nets = NULL;
    size_t n = 0;

    memcpy(s, data, size);
    s[size] = '\0';
    char origin[POLICY_ORIGIN_MAX];
    policy_check_url(s, size, origin, sizeof(origin), NULL);
    const char *nul = memchr(data, '\0', size);
    size_t nlen = nul ? (size_t)(nul - (const char *)data) : size;
    policy_check_header((const char *)data, nlen, nul ? nul + 1 : "",
                        nul ? size - nlen - 1 : 0, NULL);
    if (policy_parse_cidrs(s, &nets, &n) == 0)
        free(nets);
    free(s);
    check_addr(data, size);
    return 0;
}
