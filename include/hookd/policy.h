/* policy.h -- what hookd agrees to send, and where.
 *
 * Pure checks on a job's URL and headers. They run when a job is decoded, so a
 * job that breaks them is dead-lettered before any connection is made. */
#ifndef HOOKD_POLICY_H
#define HOOKD_POLICY_H

#include <stddef.h>

#include "hookd/err.h"

#define POLICY_URL_MAX 8192

/* 0 when url is an absolute http:// or https:// URL with a host, no
 * user:password part, at most POLICY_URL_MAX bytes, that libcurl parses the
 * same way it will when connecting. Else HK_EINVAL, err->code "invalid_url". */
int policy_check_url(const char *url, size_t len, struct hk_err *err);

/* 0 when name is an HTTP token and value has no CR, LF, NUL or other control
 * byte (HTAB allowed); else HK_EINVAL with err->code "invalid_header". A name
 * hookd sets itself (content-type, host, signatures, webhook-*, ...) gives
 * "reserved_header". */
int policy_check_header(const char *name, size_t name_len, const char *value,
                        size_t value_len, struct hk_err *err);

/* 0 when s can be a header value (see above). */
int policy_check_header_value(const char *s, size_t len);

#endif
