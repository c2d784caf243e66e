/* err.c -- error codes and their descriptions. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hookd/err.h"

int hk_err_set(struct hk_err *err, int rc, const char *code, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return rc;
    snprintf(err->code, sizeof(err->code), "%s", code);
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return rc;
}

const char *hk_strerror(int rc)
{
    switch (rc) {
    case 0:           return "success";
    case HK_EINVAL:   return "invalid input";
    case HK_EREDIS:   return "redis error";
    case HK_EHTTP:    return "http error";
    case HK_ECRYPTO:  return "crypto error";
    case HK_ECONFIG:  return "configuration error";
    case HK_ESPAWN:   return "cannot spawn process";
    case HK_ETIMEOUT: return "timed out";
    default:
        return rc < 0 && rc > -4096 ? strerror(-rc) : "unknown error";
    }
}
