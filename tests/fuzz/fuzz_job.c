/* fuzz_job.c -- libFuzzer target: job_decode and job_redact on any bytes.
 * Properties: never crash, never leak; a job that decodes has a URL and a
 * body, or is a typed job (with a batch id, and for a call its payload)
 * whose RECORD argument can be encoded; a redaction is a JSON object with
 * no top-level secret keys (a payload may of course carry its own "secret"
 * field deeper down). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/event.h"
#include "hookd/job.h"
#include "hookd/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct job_limits limits = { 1 << 20, 64 };
    struct job *job;
    struct hk_err err;
    struct buf red = BUF_INIT;

    int rc = job_decode((const char *)data, size, &limits, &job, &err);
    if (rc == 0 && job->typed != NULL) {
        struct event_apply ap = { .id = job->id, .now_ms = 1, .batch_ttl_ms = 1,
                                  .fallback = 'R', .delay_ms = 1 };
        struct buf args = BUF_INIT;
        if (job->url != NULL || job->typed->batch_id == NULL ||
            (job->typed->type == EVENT_CALL_COMPLETED && job->typed->body == NULL))
            abort();
        event_encode(job->typed, &ap, &args);
        buf_free(&args);
    } else if (rc == 0 && (job->url == NULL || job->body == NULL)) {
        abort();
    }
    if (job_redact((const char *)data, size, &limits, &red) == 0) {
        struct json_doc *doc = json_doc_new();
        struct json_value *v;
        if (json_parse(doc, red.data, red.len, 64 + 2, &v, NULL) != 0 || v->type != JSON_OBJECT ||
            json_object_get(v, "secret") != NULL || json_object_get(v, "secret_previous") != NULL)
            abort();
        json_doc_free(doc);
    }
    buf_free(&red);
    job_free(job);
    return 0;
}
