/* parse.c -- durations, times and integers from text (see parse.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hookd/parse.h"

int parse_duration(const char *s, long *ms)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (end == s || errno != 0 || v < 0 || v != v)
        return HK_EINVAL;
    while (*end == ' ')
        end++;
    if (*end == '\0' || strcmp(end, "s") == 0)
        v *= 1000;
    else if (strcmp(end, "ms") == 0)
        ;
    else if (strcmp(end, "m") == 0)
        v *= 60000;
    else if (strcmp(end, "h") == 0)
        v *= 3600000;
    else if (strcmp(end, "d") == 0)
        v *= 86400000;
    else
        return HK_EINVAL;
    if (v > 1e15)
        return HK_EINVAL;
    *ms = (long)(v + 0.5);
    return 0;
}

int parse_time(const char *s, long long *out)
{
    struct tm tm;
    char *end;

    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end != s && *end == '\0' && errno == 0 && v > 0) {
        *out = v;
        return 0;
    }
    memset(&tm, 0, sizeof(tm));
    end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (end == NULL || (strcmp(end, "Z") != 0 && *end != '\0'))
        return HK_EINVAL;
    *out = (long long)timegm(&tm);
    return 0;
}

int parse_long(const char *s, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0)
        return HK_EINVAL;
    *out = v;
    return 0;
}

int parse_host_port(const char *s, char *host, size_t cap, int *port)
{
    const char *colon, *h = s;
    size_t n;
    long p;

    if (s[0] == '[') {          /* [v6]:port */
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return HK_EINVAL;
        h = s + 1;
        n = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
            return HK_EINVAL;   /* no port, or an IPv6 address without [] */
        n = (size_t)(colon - s);
    }
    if (n == 0 || n >= cap || parse_long(colon + 1, &p) < 0 || p < 1 || p > 65535)
        return HK_EINVAL;
    memcpy(host, h, n);
    host[n] = '\0';
    *port = (int)p;
    return 0;
}
