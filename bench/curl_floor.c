/* curl_floor.c -- the libcurl floor for bench/internet.py (issue 17): the
 * same POSTs hookd makes, with nothing else (no Redis, no signing, no job
 * decoding), through one libcurl multi handle driven by curl_multi_poll,
 * keep-alive, HTTP/2 multiplexing and recycled easy handles as hookd has
 * them. What it costs in
 * CPU per request is the least any libcurl-based sender can pay; hookd's
 * worker CPU per delivery is compared with it in the same run.
 *
 *   curl_floor URL N IN_FLIGHT BODY_FILE [CA_FILE]
 *
 * prints one line: "requests N seconds S rate R cpu_us_per_request C
 * failed F". Not a test. */
#define _POSIX_C_SOURCE 200809L
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

struct run {
    CURLM *multi;
    const char *url, *ca;
    char *body;
    long body_len;
    struct curl_slist *headers;
    long started, done, failed, total;
};

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p, (void)arg;
    return size * n;
}

static void start_one(struct run *r)
{
    CURL *e = curl_easy_init();

    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, r->body_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, strncmp(r->url, "https:", 6) == 0 ? 1L : 0L);
    if (r->ca != NULL)
        curl_easy_setopt(e, CURLOPT_CAINFO, r->ca);
    curl_multi_add_handle(r->multi, e);
    r->started++;
}

static double cpu_seconds(void)
{
    struct rusage u;

    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + (double)u.ru_stime.tv_sec +
           u.ru_stime.tv_usec / 1e6;
}

static double now_seconds(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static char *read_file(const char *path, long *len)
{
    FILE *f = fopen(path, "rb");
    char *p;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (*len = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0 || (p = malloc((size_t)*len + 1)) == NULL ||
        fread(p, 1, (size_t)*len, f) != (size_t)*len) {
        perror(path);
        exit(2);
    }
    fclose(f);
    return p;
}

int main(int argc, char **argv)
{
    struct run r = { 0 };
    long in_flight;
    double t0, c0;
    int running = 1;

    if (argc < 5) {
        fprintf(stderr, "usage: curl_floor URL N IN_FLIGHT BODY_FILE [CA_FILE]\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_ALL);
    r.url = argv[1];
    r.total = atol(argv[2]);
    in_flight = atol(argv[3]);
    r.body = read_file(argv[4], &r.body_len);
    r.ca = argc > 5 ? argv[5] : NULL;
    r.headers = curl_slist_append(NULL, "content-type: application/json");
    r.multi = curl_multi_init();
    curl_multi_setopt(r.multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(r.multi, CURLMOPT_MAXCONNECTS, in_flight);
    t0 = now_seconds();
    c0 = cpu_seconds();
    while (r.started < r.total && r.started < in_flight)
        start_one(&r);
    while (running > 0 || r.done < r.total) {
        CURLMsg *m;
        int left;
        curl_multi_perform(r.multi, &running);
        while ((m = curl_multi_info_read(r.multi, &left)) != NULL) {
            long status = 0;
            if (m->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            if (m->data.result != CURLE_OK || status / 100 != 2)
                r.failed++;
            curl_multi_remove_handle(r.multi, m->easy_handle);
            r.done++;
            /* the handle again, options kept, as hookd recycles its own */
            if (r.started < r.total) {
                curl_multi_add_handle(r.multi, m->easy_handle);
                r.started++;
            } else {
                curl_easy_cleanup(m->easy_handle);
            }
        }
        if (r.done >= r.total)
            break;
        curl_multi_poll(r.multi, NULL, 0, 100, NULL);
    }
    double dt = now_seconds() - t0, cpu = cpu_seconds() - c0;
    printf("requests %ld seconds %.3f rate %.0f cpu_us_per_request %.1f failed %ld\n", r.done,
           dt, (double)r.done / dt, cpu * 1e6 / (double)r.done, r.failed);
    curl_multi_cleanup(r.multi);
    curl_slist_free_all(r.headers);
    free(r.body);
    curl_global_cleanup();
    return r.failed > 0;
}
