/* cli_verify.c -- `hookd verify`: check a captured request's signatures
 * with sign.c, the same code that made them, and explain a failure by
 * trying the forms the body commonly takes on its way to a receiver's
 * check: re-serialised by a JSON parser (json.c reproduces
 * JSON.stringify(JSON.parse(body)) byte for byte), or given a trailing
 * newline by a shell. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "hookd/buf.h"
#include "hookd/cli_verify.h"
#include "hookd/job.h"
#include "hookd/json.h"
#include "hookd/mem.h"
#include "hookd/parse.h"
#include "hookd/sign.h"
#include "hookd/timeutil.h"

#define BODY_MAX (64L << 20)        /* bytes of stdin read at most */
#define EXCERPT 24                  /* bytes shown either side of a difference */

int cli_verify_arg(struct cli_verify_args *a, int argc, char **argv, struct hk_err *err)
{
    int header = strcmp(argv[0], "--header") == 0 || strcmp(argv[0], "-H") == 0;

    if (!header && strcmp(argv[0], "--tolerance") != 0)
        return 0;
    if (argc < 2)
        return hk_err_set(err, HK_ECONFIG, "usage", "%s needs a value", argv[0]);
    if (header) {
        if (strchr(argv[1], ':') == NULL)
            return hk_err_set(err, HK_ECONFIG, "usage", "--header '%s': expected "
                              "'name: value'", argv[1]);
        if (a->nheaders < a->cap)
            a->headers[a->nheaders++] = argv[1];
        return 2;
    }
    if (parse_duration(argv[1], &a->tolerance_ms) < 0 || a->tolerance_ms < 1000 ||
        a->tolerance_ms > 365L * 86400000)
        return hk_err_set(err, HK_ECONFIG, "usage", "--tolerance '%s': expected a duration "
                          "from 1s to 365d (e.g. 5m, 300s)", argv[1]);
    return 2;
}

/* The value of header name (case-insensitive), spaces trimmed, in out
 * (truncated to outsz); NULL when absent. The last one given wins. */
static const char *header(const struct cli_verify_args *a, const char *name, char *out,
                          size_t outsz)
{
    size_t nl = strlen(name);
    const char *found = NULL;

    for (int i = 0; i < a->nheaders; i++) {
        const char *h = a->headers[i];
        if (strncasecmp(h, name, nl) == 0 && h[nl] == ':')
            found = h + nl + 1;
    }
    if (found == NULL)
        return NULL;
    while (*found == ' ' || *found == '\t')
        found++;
    size_t len = strlen(found);
    while (len > 0 && isspace((unsigned char)found[len - 1]))
        len--;
    snprintf(out, outsz, "%.*s", (int)len, found);
    return out;
}

/* The forms of the body a signature is tried against. */
/* TRIMMED before CANON: a body that only gained a newline is explained as
 * that, though JSON.stringify would also drop it. */
enum form { RAW, TRIMMED, CANON, NFORMS };

struct body {
    const char *p[NFORMS];
    size_t len[NFORMS];
    int have[NFORMS];           /* the form exists and differs from RAW */
    int json;                   /* RAW parses as JSON */
    struct buf canon;           /* owned: JSON.stringify(JSON.parse(RAW)) */
};

static void body_init(struct body *b, const char *raw, size_t len)
{
    struct json_doc *doc = json_doc_new();
    struct json_value *v;
    struct hk_err err;

    memset(b, 0, sizeof(*b));
    b->p[RAW] = raw;
    b->len[RAW] = len;
    b->have[RAW] = 1;
    if (json_parse(doc, raw, len, 256, &v, &err) == 0) {
        b->json = 1;
        json_write(&b->canon, v);
        b->p[CANON] = b->canon.data;
        b->len[CANON] = b->canon.len;
        b->have[CANON] = b->canon.len != len || memcmp(b->canon.data, raw, len) != 0;
    }
    json_doc_free(doc);
    size_t t = len;
    if (t > 0 && raw[t - 1] == '\n')
        t -= t > 1 && raw[t - 2] == '\r' ? 2 : 1;
    b->p[TRIMMED] = raw;
    b->len[TRIMMED] = t;
    b->have[TRIMMED] = t != len;
}

/* s[0..n) for a terminal: printable ASCII as is, the rest escaped. */
static void print_escaped(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            printf("\\n");
        else if (c == '\\')
            printf("\\\\");
        else if (c >= 0x20 && c < 0x7f)
            putchar(c);
        else
            printf("\\x%02x", c);
    }
}

static void print_excerpt(const char *label, const char *s, size_t n, size_t at)
{
    size_t from = at > EXCERPT ? at - EXCERPT : 0, to = at + EXCERPT < n ? at + EXCERPT : n;

    printf("  %-34s %s", label, from > 0 ? "..." : "");
    print_escaped(s + from, to - from);
    printf("%s\n", to < n ? "..." : "");
}

/* Where the body and its re-serialised form first differ. */
static void print_difference(const struct body *b)
{
    size_t i = 0, n = b->len[RAW] < b->len[CANON] ? b->len[RAW] : b->len[CANON];

    while (i < n && b->p[RAW][i] == b->p[CANON][i])
        i++;
    printf("JSON.stringify(JSON.parse(body)) differs from the body at byte %zu:\n", i);
    print_excerpt("body:", b->p[RAW], b->len[RAW], i);
    print_excerpt("JSON.stringify(JSON.parse(body)):", b->p[CANON], b->len[CANON], i);
}

/* What was received, and the secret to check it with. */
struct ctx {
    const char *secret;
    const char *dsig;           /* x-dialgen-signature, NULL = absent */
    const char *id, *ts, *ssig; /* webhook-id, -timestamp, -signature */
    long long tsv;              /* ts as a number, when it is one */
    struct body body;
    char dbuf[256], idbuf[JOB_ID_MAX + 2], tsbuf[32], sbuf[4096];
};

/* A signature check of one scheme against one form of the body. */
typedef int (*match_fn)(const struct ctx *c, enum form f);

static int dialgen_match(const struct ctx *c, enum form f)
{
    char hex[SIGN_HEX_LEN + 1];

    return sign_hex(c->secret, strlen(c->secret), c->body.p[f], c->body.len[f], hex) == 0 &&
           strcmp(hex, c->dsig) == 0;
}

/* 1 when one of the space-separated signatures in webhook-signature is the
 * "v1," MAC of form f. */
static int standard_match(const struct ctx *c, enum form f)
{
    char v1[SIGN_V1_LEN + 1];
    size_t n = SIGN_V1_LEN;

    if (sign_standard(c->secret, strlen(c->secret), c->id, c->tsv, c->body.p[f],
                      c->body.len[f], v1) < 0)
        return 0;
    for (const char *p = c->ssig; *p != '\0';) {
        size_t len = strcspn(p, " ");
        if (len == n && memcmp(p, v1, n) == 0)
            return 1;
        p += len;
        p += strspn(p, " ");
    }
    return 0;
}

/* The first form of the body the signature matches, or -1. */
static int matching_form(const struct ctx *c, match_fn match)
{
    for (int f = RAW; f < NFORMS; f++)
        if (c->body.have[f] && match(c, (enum form)f))
            return f;
    return -1;
}

/* 1 when match holds for the body as received under the secret with
 * "whsec_" in front: a receiver configured with the base64 part only,
 * where hookd signs with the whole string. */
static int matches_prefixed(struct ctx *c, match_fn match)
{
    char alt[SIGN_SECRET_MAX + 8];
    const char *given = c->secret;
    int ok;

    if (strncmp(given, "whsec_", 6) == 0 || strlen(given) + 7 > sizeof(alt))
        return 0;
    snprintf(alt, sizeof(alt), "whsec_%s", given);
    c->secret = alt;
    ok = match(c, RAW);
    c->secret = given;
    return ok;
}

/* Why a signature of scheme did not match the body as received. form is
 * what matched instead (-1: nothing); other_ok: the other scheme verifies
 * the body as received with this secret. */
static void explain(const char *scheme, int form, int other_ok, struct ctx *c, match_fn match)
{
    if (form == CANON)
        printf("%s: FAIL: the body is not the bytes that were signed: it was re-serialised; "
               "JSON.stringify(JSON.parse(body)) does verify\n", scheme);
    else if (form == TRIMMED)
        printf("%s: FAIL: the body ends with a newline that was not signed (echo and "
               "here-documents add one); the body without it verifies\n", scheme);
    else if (other_ok && strcmp(scheme, "x-dialgen-signature") == 0)
        printf("%s: FAIL: not the signature of this body with this secret, though "
               "webhook-signature verifies both: the header was changed, or belongs to "
               "another request\n", scheme);
    else if (other_ok)
        printf("%s: FAIL: the body and the secret are right (x-dialgen-signature verifies "
               "them): webhook-id or webhook-timestamp is not what was signed, or the "
               "signature belongs to another request\n", scheme);
    else if (matches_prefixed(c, match))
        printf("%s: FAIL: wrong secret: it verifies with \"whsec_\" in front of the secret "
               "given; the secret is the whole string, prefix included\n", scheme);
    else
        printf("%s: FAIL: no match: the secret is not the one that signed it, or the body "
               "was changed after signing%s\n", scheme, c->body.json
               ? " (a JSON parser on the way may also have reordered keys or rewritten "
                 "numbers: check the raw bytes received)" : "");
}

/* x-dialgen-signature: 1 verified, 0 failed, -1 absent. */
static int check_dialgen(struct ctx *c, int standard_ok)
{
    size_t n = c->dsig ? strlen(c->dsig) : 0;

    if (c->dsig == NULL) {
        printf("x-dialgen-signature: not present\n");
        return -1;
    }
    if (n != SIGN_HEX_LEN || strspn(c->dsig, "0123456789abcdef") != n) {
        printf("x-dialgen-signature: FAIL: malformed: expected 64 lowercase hex digits (the "
               "Dialgen sample compares with ===)\n");
        return 0;
    }
    if (dialgen_match(c, RAW)) {
        printf("x-dialgen-signature: ok\n");
        return 1;
    }
    explain("x-dialgen-signature", matching_form(c, dialgen_match), standard_ok, c,
            dialgen_match);
    return 0;
}

/* The Standard Webhooks headers are all there and readable; else says
 * what is wrong and returns 0. */
static int standard_formed(struct ctx *c)
{
    char *end;

    if (c->id == NULL || c->ts == NULL || c->ssig == NULL) {
        printf("webhook-signature: FAIL: incomplete: %s%s%s missing (Standard Webhooks needs "
               "webhook-id, webhook-timestamp and webhook-signature)\n",
               c->id ? "" : "webhook-id ", c->ts ? "" : "webhook-timestamp ",
               c->ssig ? "" : "webhook-signature ");
        return 0;
    }
    if (strlen(c->id) > JOB_ID_MAX) {
        printf("webhook-signature: FAIL: webhook-id is longer than %d bytes\n", JOB_ID_MAX);
        return 0;
    }
    c->tsv = strtoll(c->ts, &end, 10);
    if (end == c->ts || *end != '\0' || c->tsv <= 0) {
        printf("webhook-signature: FAIL: webhook-timestamp '%s' is not unix seconds\n", c->ts);
        return 0;
    }
    if (strstr(c->ssig, "v1,") == NULL) {
        printf("webhook-signature: FAIL: malformed: no \"v1,<base64>\" signature in it\n");
        return 0;
    }
    return 1;
}

/* webhook-signature: 1 verified, 0 failed, -1 absent. */
static int check_standard(struct ctx *c, int dialgen_ok, long tolerance_ms)
{
    if (c->id == NULL && c->ts == NULL && c->ssig == NULL) {
        printf("webhook-signature: not present\n");
        return -1;
    }
    if (!standard_formed(c))
        return 0;
    long long age = (long long)(time_now_ms() / 1000) - c->tsv;
    long long tol = tolerance_ms / 1000;
    int form = matching_form(c, standard_match);
    int in_time = age <= tol && -age <= tol;
    char at[TIME_ISO_LEN + 1];

    if (!in_time) {
        time_format_iso(c->tsv * 1000, at);
        printf("webhook-signature: FAIL: webhook-timestamp %lld (%s) is %lld s in the %s, "
               "outside the tolerance of %lld s (--tolerance); %s\n", c->tsv, at,
               age < 0 ? -age : age, age < 0 ? "future" : "past", tol,
               form == RAW ? "the signature itself matches: a replay, an old capture, or a "
                             "clock off" : "the signature does not match either");
    }
    if (form == RAW) {
        if (in_time)
            printf("webhook-signature: ok (webhook-id %s, signed %lld s ago, tolerance %lld "
                   "s)\n", c->id, age, tol);
        return in_time;
    }
    explain("webhook-signature", form, dialgen_ok, c, standard_match);
    return 0;
}

/* Both checks, each scheme's verdict on the body as received helping to
 * explain the other's failure. Returns the exit code. */
static int report(struct ctx *c, long tolerance_ms)
{
    const struct body *b = &c->body;
    char *end = NULL;

    c->tsv = c->ts ? strtoll(c->ts, &end, 10) : 0;
    int d_raw = c->dsig != NULL && dialgen_match(c, RAW);
    int s_raw = c->id && c->ts && c->ssig && c->tsv > 0 && standard_match(c, RAW);

    printf("body: %zu bytes%s\n", b->len[RAW], b->json ? ", JSON" : "");
    if (b->have[CANON])
        print_difference(b);
    int d = check_dialgen(c, s_raw);
    int s = check_standard(c, d_raw, tolerance_ms);
    if (d < 0 && s < 0) {
        printf("NOT verified: no signature headers; pass the request's headers with "
               "--header 'name: value'\n");
        return 1;
    }
    if (d == 1 && b->have[CANON])
        printf("note: the body verifies as received, but a receiver that checks "
               "x-dialgen-signature over JSON.stringify(req.body), as the Dialgen Node sample "
               "does, will reject it: it is not in that form (see above)\n");
    if (d != 0 && s != 0) {
        printf("verified\n");
        return 0;
    }
    printf("NOT verified\n");
    return 1;
}

int cli_verify_run(const struct config *cfg, const struct cli_verify_args *a)
{
    struct ctx *c = xcalloc(1, sizeof(*c));    /* freed below; ~5 KiB */
    struct buf in = BUF_INIT;
    char probe[SIGN_V1_LEN + 1];
    int rc = 2;

    if (cfg->secret == NULL) {
        fprintf(stderr, "hookd: verify needs the secret: --secret S (or secret in the config, "
                "or HOOKD_SECRET)\n");
        goto out;
    }
    c->secret = cfg->secret;
    if (sign_standard(c->secret, strlen(c->secret), "x", 1, "", 0, probe) == HK_EINVAL) {
        fprintf(stderr, "hookd: the secret starts with whsec_ but is not valid base64\n");
        goto out;
    }
    if (isatty(STDIN_FILENO))
        fprintf(stderr, "hookd: reading the body from stdin (end it with Ctrl-D)\n");
    if (buf_read_stream(&in, stdin, (size_t)BODY_MAX) < 0) {
        fprintf(stderr, "hookd: cannot read the body from stdin (at most %ld bytes)\n",
                BODY_MAX);
        goto out;
    }
    c->dsig = header(a, "x-dialgen-signature", c->dbuf, sizeof(c->dbuf));
    c->id = header(a, "webhook-id", c->idbuf, sizeof(c->idbuf));
    c->ts = header(a, "webhook-timestamp", c->tsbuf, sizeof(c->tsbuf));
    c->ssig = header(a, "webhook-signature", c->sbuf, sizeof(c->sbuf));
    body_init(&c->body, in.data ? in.data : "", in.len);
    rc = report(c, a->tolerance_ms);
    buf_free(&c->body.canon);
out:
    buf_free(&in);
    free(c);
    return rc;
}
