/* fuzz_json.c -- libFuzzer target: the JSON parser and canonical writer.
 * Property: canonical output parses again and is a fixed point
 * (JSON.stringify(JSON.parse(x)) applied twice changes nothing). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct json_doc *a = json_doc_new(), *b = json_doc_new();
    struct json_value *v, *w;
    struct buf one = BUF_INIT, two = BUF_INIT;

    if (json_parse(a, (const char *)data, size, 64, &v, NULL) == 0) {
        json_write(&one, v);
        if (json_parse(b, one.data, one.len, 64, &w, NULL) != 0)
            abort();
        json_write(&two, w);
        if (one.len != two.len || memcmp(one.data, two.data, one.len) != 0)
            abort();
    }
    buf_free(&one);
    buf_free(&two);
    json_doc_free(a);
    json_doc_free(b);
    return 0;
}
