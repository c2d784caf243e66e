/* fuzz_policy.c -- libFuzzer target: URL, header and CIDR validation.
 * The input is split at its first NUL: header name, then value. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
    return 0;
}
