/* policy.h -- what hookd agrees to send, and where.
 *
 * Pure checks on a job's URL and headers. They run when a job is decoded, so a
 * job that breaks them is dead-lettered before any connection is made. */
#ifndef HOOKD_POLICY_H
#define HOOKD_POLICY_H

#include <stddef.h>
#include <sys/socket.h>

#include "hookd/err.h"

#define POLICY_URL_MAX 8192
#define POLICY_ORIGIN_MAX 300       /* "https://" + 253-byte host + ":65535" and room */

/* 0 when url is an absolute http:// or https:// URL with a host, no
 * user:password part, at most POLICY_URL_MAX bytes, that libcurl parses the
 * same way it will when connecting. Else HK_EINVAL, err->code "invalid_url".
 * When origin is not NULL it receives "scheme://host:port" (lowercase, port
 * always written), what connections are pooled and limited by. */
int policy_check_url(const char *url, size_t len, char *origin, size_t origin_cap,
                     struct hk_err *err);

/* 0 when name is an HTTP token and value has no CR, LF, NUL or other control
 * byte (HTAB allowed); else HK_EINVAL with err->code "invalid_header". A name
 * hookd sets itself (content-type, host, signatures, webhook-*, ...) gives
 * "reserved_header". */
int policy_check_header(const char *name, size_t name_len, const char *value,
                        size_t value_len, struct hk_err *err);

/* 0 when s can be a header value (see above). */
int policy_check_header_value(const char *s, size_t len);

/* ---- destinations ----------------------------------------------------------
 * Checked on the address a connection is actually about to be made to (the
 * HTTP layer calls policy_check_addr from libcurl's open-socket callback),
 * never on the host name, so names that resolve to a forbidden address, DNS
 * rebinding, numeric IPv4 spellings and IPv4-mapped IPv6 are all caught.
 *
 * Order: deny_cidrs refuse; else allow_cidrs permit; else the built-in deny
 * list refuses (link-local and cloud metadata 169.254.0.0/16, fe80::/10,
 * fd00:ec2::254; 0.0.0.0/8, ::; multicast; broadcast); else, with
 * deny_private, loopback and private ranges refuse (127.0.0.0/8, ::1,
 * 10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7); else permitted.
 * ::ffff:a.b.c.d is judged as a.b.c.d. An IPv6 address that carries an IPv4
 * address a translator or relay delivers to (NAT64 64:ff9b::/96, 6to4
 * 2002::/16, Teredo 2001::/32, IPv4-compatible ::/96 but :: and ::1) is
 * refused when either it or that IPv4 address is refused. */
struct policy_net {
    int family;                 /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    int prefix;                 /* bits */
};

struct policy_dest {
    int deny_private;
    struct policy_net *allow;   /* owned */
    size_t nallow;
    struct policy_net *deny;    /* owned */
    size_t ndeny;
};

/* Parse "10.0.0.0/8, fd00::/8, 192.0.2.7" (a bare address is /32 or /128)
 * into a new array (caller frees). Returns 0 or HK_EINVAL. */
int policy_parse_cidrs(const char *list, struct policy_net **out, size_t *n);

/* 0 when sa may be connected to; else HK_EINVAL with why filled with the
 * address and the rule ("127.0.0.1 is loopback/private (deny_private)"). */
int policy_check_addr(const struct policy_dest *d, const struct sockaddr *sa, char *why,
                      size_t whylen);

#endif
