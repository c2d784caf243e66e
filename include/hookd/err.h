/* err.h -- hookd's error codes and the error detail carried for people.
 *
 * Functions return 0 or a negative code: -errno, or one of HK_E* below.
 * The text meant for a log line or a dead-letter entry goes into a
 * caller-supplied struct hk_err; lower layers fill it, the layer that decides
 * a job's fate logs it. */
#ifndef HOOKD_ERR_H
#define HOOKD_ERR_H

#include <stddef.h>

enum {
    HK_EINVAL   = -1000,   /* malformed input (job, config, argument) */
    HK_EREDIS   = -1001,   /* Redis unreachable or returned an error */
    HK_EHTTP    = -1002,   /* libcurl could not start a transfer */
    HK_ECRYPTO  = -1003,   /* OpenSSL failed */
    HK_ECONFIG  = -1004,   /* configuration error */
    HK_ESPAWN   = -1005,   /* fork/exec of a child failed */
    HK_ETIMEOUT = -1006,   /* an operation did not finish in time */
};

struct hk_err {
    char code[32];         /* machine-readable reason, e.g. "invalid_url" */
    char msg[256];         /* human-readable detail */
};

/* Fill err (if non-NULL) and return rc, so callers can write
 * `return hk_err_set(err, HK_EINVAL, "invalid_url", "...%s", x);` */
int hk_err_set(struct hk_err *err, int rc, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Static description of a return code (HK_E* or -errno). */
const char *hk_strerror(int rc);

#endif
