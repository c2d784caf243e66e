/* cli_send.c -- `hookd send URL`: build a job as a producer would, sign it
 * with deliver_headers, POST it with http.c on a loop of its own, print
 * both sides of the exchange. No Redis, no queue, no retry. */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "hookd/buf.h"
#include "hookd/cli_send.h"
#include "hookd/deliver_headers.h"
#include "hookd/http.h"
#include "hookd/job.h"
#include "hookd/json.h"
#include "hookd/mem.h"
#include "hookd/timeutil.h"

#define CAPTURE_BYTES 65536     /* response body printed; the rest is read, not shown */

/* The Dialgen documentation's three payloads, as it prints them; its
 * placeholders ("transcription": [...], "metricSchema": {...}) become a
 * one-line transcript and a one-field schema so the JSON is valid. */
static const struct sample {
    const char *name;
    const char *json;
} samples[] = {
    { "call.completed",
      "{\"success\":true,\"callData\":{\"id\":\"call_123\",\"contactId\":\"contact_456\","
      "\"agentId\":\"agent_789\",\"batchId\":\"batch_abc\",\"status\":\"COMPLETED\","
      "\"startTime\":\"2025-11-15T14:30:00.000Z\",\"endTime\":\"2025-11-15T14:33:00.000Z\","
      "\"duration\":180,\"phoneNumber\":\"+1234567890\",\"contactName\":\"John Doe\","
      "\"transcription\":[{\"speaker\":\"agent\",\"text\":\"Hello, this is Dialgen.\"}],"
      "\"recordingUrl\":\"https://...\",\"summary\":\"Call summary text...\","
      "\"metricJson\":{\"intent\":\"SALES_INQUIRY\",\"sentiment\":\"positive\","
      "\"confidence\":0.95}},\"metricSchema\":{\"intent\":{\"type\":\"string\"}}}" },
    { "batch.completed",
      "{\"event\":\"batch.completed\",\"batchId\":\"batch_123\",\"agentId\":\"agent_456\","
      "\"userId\":\"user_789\",\"statistics\":{\"total\":1000,\"processed\":1000,"
      "\"succeeded\":850,\"failed\":150,\"percentComplete\":100,\"successRate\":85},"
      "\"timestamps\":{\"createdAt\":\"2025-11-15T14:00:00.000Z\","
      "\"startedAt\":\"2025-11-15T14:05:00.000Z\",\"completedAt\":\"2025-11-15T16:30:00.000Z\"}}" },
    { "batch.failed",
      "{\"event\":\"batch.failed\",\"batchId\":\"batch_123\",\"agentId\":\"agent_456\","
      "\"error\":\"Insufficient call minutes\",\"code\":\"INSUFFICIENT_CREDITS\","
      "\"timestamp\":\"2025-11-15T14:05:00.000Z\"}" },
};

static const struct sample *find_sample(const char *name)
{
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
        if (strcmp(samples[i].name, name) == 0)
            return &samples[i];
    return NULL;
}

int cli_send_arg(struct cli_send_args *a, int argc, char **argv, struct hk_err *err)
{
    static const char *const opts[] = { "--event", "--payload", "--sample", "--id" };
    const char **dst[] = { &a->event, &a->payload, &a->sample, &a->id };

    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        if (strcmp(argv[0], opts[i]) != 0)
            continue;
        if (argc < 2)
            return hk_err_set(err, HK_ECONFIG, "usage", "%s needs a value", opts[i]);
        if (i == 2 && find_sample(argv[1]) == NULL)
            return hk_err_set(err, HK_ECONFIG, "usage", "--sample: unknown sample '%s' "
                              "(call.completed, batch.completed or batch.failed)", argv[1]);
        *dst[i] = argv[1];
        return 2;
    }
    if (argv[0][0] != '-' && a->url == NULL) {
        a->url = argv[0];
        return 1;
    }
    return 0;
}

/* The whole of path ("-" = stdin) into out. Returns 0 or -errno. */
static int read_all(const char *path, size_t max, struct buf *out)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    int rc;

    if (f == NULL)
        return -errno;
    rc = buf_read_stream(out, f, max);
    if (f != stdin)
        fclose(f);
    return rc;
}

/* The job a producer would push for these arguments, as JSON in out: the
 * payload parsed here first so that a mistake in it is reported as such.
 * Returns 0 or HK_EINVAL with err set. */
static int job_text(const struct cli_send_args *a, const struct config *cfg, struct buf *out,
                    struct hk_err *err)
{
    /* Neither --sample nor --payload: the call.completed sample, event and all. */
    const struct sample *s = a->sample ? find_sample(a->sample) : a->payload ? NULL : samples;
    const char *event = a->event ? a->event : s ? s->name : NULL;
    struct buf file = BUF_INIT;
    const char *text = s ? s->json : a->payload;
    size_t len = strlen(text);
    struct json_doc *doc = json_doc_new();
    struct json_value *v;
    int rc = 0;

    if (s == NULL && a->payload != NULL && a->payload[0] == '@') {
        int frc = read_all(a->payload + 1, cfg->max_job_bytes, &file);
        if (frc < 0) {
            rc = hk_err_set(err, HK_EINVAL, "usage", "--payload %s: %s", a->payload,
                            frc == -EFBIG ? "larger than max_job_bytes" : strerror(-frc));
            goto out;
        }
        text = file.data ? file.data : "";
        len = file.len;
    }
    if (json_parse(doc, text, len, 64, &v, err) < 0) {
        char msg[sizeof(err->msg)];
        snprintf(msg, sizeof(msg), "%s", err->msg);
        rc = hk_err_set(err, HK_EINVAL, "usage", "--payload is not JSON: %s", msg);
        goto out;
    }
    buf_append_str(out, "{\"url\":");
    json_write_string(out, a->url, strlen(a->url));
    buf_append_str(out, ",\"payload\":");
    json_write(out, v);
    if (event != NULL) {
        buf_append_str(out, ",\"event\":");
        json_write_string(out, event, strlen(event));
    }
    if (a->id != NULL) {
        buf_append_str(out, ",\"id\":");
        json_write_string(out, a->id, strlen(a->id));
    }
    buf_append_char(out, '}');
out:
    json_doc_free(doc);
    buf_free(&file);
    return rc;
}

/* Lines of text, each prefixed (CR and LF dropped). */
static void print_lines(const char *prefix, const char *p, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t len = nl ? (size_t)(nl - p) : n;
        size_t show = len > 0 && p[len - 1] == '\r' ? len - 1 : len;
        if (show > 0)
            printf("%s%.*s\n", prefix, (int)show, p);
        p += nl ? len + 1 : len;
        n -= nl ? len + 1 : len;
    }
}

struct send_state {
    int exit_code;              /* set by on_done */
    int done;
};

static void on_done(const struct http_result *res, void *arg)
{
    struct send_state *st = arg;

    st->done = 1;
    st->exit_code = res->ok ? 0 : 1;
    if (res->headers != NULL)
        print_lines("< ", res->headers, res->headers_len);
    if (res->body_len > 0) {
        printf("<\n");
        fwrite(res->body, 1, res->body_len, stdout);
        printf("%s", res->body[res->body_len - 1] == '\n' ? "" : "\n");
        if (res->body_len == CAPTURE_BYTES)
            printf("(first %d bytes of the response shown)\n", CAPTURE_BYTES);
    }
    if (res->ok)
        printf("delivered: %ld in %ld ms\n", res->status, res->latency_ms);
    else if (res->status > 0 && res->curl_code == 0)
        printf("failed: %ld in %ld ms (not 2xx)\n", res->status, res->latency_ms);
    else
        printf("failed: %s: %s (after %ld ms, status %ld)\n", res->reason, res->error,
               res->latency_ms, res->status);
}

/* POST on a private loop; returns the exit code. The loop must end with
 * every handle closed: a leak is a bug, reported as a failure. */
static int post(const struct config *cfg, const struct job *job, const char *const *hdrs,
                size_t n)
{
    struct http_options hopt = {
        .capture_bytes = CAPTURE_BYTES, .ca_file = cfg->ca_file, .ca_path = cfg->ca_path,
        .client_cert = cfg->client_cert, .client_key = cfg->client_key,
        .max_response_bytes = cfg->max_response_bytes, .dest = &cfg->dest,
        .resolve = cfg->resolve, .capture_headers = 1,
    };
    struct http_request_spec spec = {
        .url = job->url, .origin = job->origin, .body = job->body, .body_len = job->body_len, .headers = hdrs,
        .nheaders = n, .user_agent = cfg->user_agent, .timeout_ms = cfg->timeout_ms,
    };
    struct send_state st = { 1, 0 };
    uv_loop_t loop;
    struct http_client *http;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "hookd: curl_global_init() failed\n");
        return 1;
    }
    uv_loop_init(&loop);
    http = http_client_new(&loop, &hopt);
    if (http == NULL) {
        fprintf(stderr, "hookd: curl_multi_init() failed\n");
    } else {
        if (http_post(http, &spec, on_done, &st) < 0)
            fprintf(stderr, "hookd: could not start the request\n");
        else    /* until the answer: a kept-alive socket would hold the loop open */
            while (!st.done && uv_run(&loop, UV_RUN_ONCE) != 0)
                ;
        http_client_close(http);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    if (uv_loop_close(&loop) != 0) {
        fprintf(stderr, "hookd: handles left open on the send loop\n");
        st.exit_code = 1;
    }
    curl_global_cleanup();
    return st.exit_code;
}

/* No secret configured: the one the daemon generated in data_dir, if any
 * (never a new one: send must not create files). Returns 0 or -1. */
static int find_secret(struct config *cfg)
{
    char path[4096];
    struct hk_err err = { "", "" };
    int created;

    if (cfg->secret != NULL)
        return 0;
    snprintf(path, sizeof(path), "%s/secret", cfg->data_dir);
    if (access(path, F_OK) == 0 && config_resolve_secret(cfg, &created, &err) == 0)
        return 0;
    fprintf(stderr, "hookd: send needs a secret: --secret S, secret in the config or "
            "HOOKD_SECRET (%s%s)\n", err.msg[0] ? err.msg : "no ", err.msg[0] ? "" : path);
    return -1;
}

int cli_send_run(struct config *cfg, const struct cli_send_args *a)
{
    struct job_limits limits = { cfg->max_job_bytes, 64 };
    struct hk_err err = { "", "" };
    struct buf text = BUF_INIT, store = BUF_INIT;
    size_t offs[DELIVER_HEADERS_MAX], n = 0;
    const char *hdrs[DELIVER_HEADERS_MAX];
    struct job *job = NULL;
    int rc = 2;

    if (a->url == NULL) {
        fprintf(stderr, "hookd: usage: hookd send URL [--event NAME] [--payload JSON | "
                "--payload @FILE | --sample NAME] [--secret S] [--id ID]\n");
        return 2;
    }
    if (a->payload != NULL && a->sample != NULL) {
        fprintf(stderr, "hookd: send takes --payload or --sample, not both\n");
        return 2;
    }
    if (find_secret(cfg) < 0)
        return 2;
    if (job_text(a, cfg, &text, &err) < 0 ||
        job_decode(text.data, text.len, &limits, &job, &err) < 0) {
        fprintf(stderr, "hookd: %s%s%s\n", strcmp(err.code, "usage") ? err.code : "",
                strcmp(err.code, "usage") ? ": " : "", err.msg);
        goto out;
    }
    job_ensure_id(job);
    if (deliver_headers_build(job, &(struct deliver_secrets){ cfg->secret,
                              cfg->secret_previous, cfg->secret_previous_until },
                              (long long)(time_now_ms() / 1000), &store, offs, &n, &err) < 0) {
        fprintf(stderr, "hookd: %s: %s\n", err.code, err.msg);
        goto out;
    }
    printf("> POST %s\n> user-agent: %s\n", job->url, cfg->user_agent);
    for (size_t i = 0; i < n; i++) {
        hdrs[i] = store.data + offs[i];
        printf("> %s\n", hdrs[i]);
    }
    printf(">\n%.*s\n", (int)job->body_len, job->body);
    fflush(stdout);
    rc = post(cfg, job, hdrs, n);
out:
    job_free(job);
    buf_free(&text);
    buf_free(&store);
    return rc;
}
