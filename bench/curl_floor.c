/* curl_floor.c -- the libcurl floor for bench/internet.py (issue 17): the
 * same POSTs hookd makes, with nothing else (no Redis, no signing, no job
 * decoding), driven the way hookd drives libcurl: the multi socket API
 * (CURLMOPT_SOCKETFUNCTION, CURLMOPT_TIMERFUNCTION,
 * curl_multi_socket_action) over a plain epoll loop instead of libuv.
 * Easy handles carry hookd's options (src/http.c) and are recycled: each
 * finished one is removed and added again at once. What this costs in CPU
 * per request is the least a libcurl-based sender can pay; hookd's worker
 * CPU per delivery is compared with it in the same run.
 *
 * curl_multi_perform + curl_multi_poll, which the first cut used, walks
 * every transfer on every call: at 1,000 in flight that cost more than
 * hookd itself, so it was no floor.
 *
 *   curl_floor [--max-host-connections N] [--max-streams N] [--no-share]
 *              [--count-runs] URL|@URL_FILE N IN_FLIGHT BODY_FILE [CA_FILE]
 *
 * Each request is what hookd's http_post makes of a bench job: its URL
 * (request i: line i of URL_FILE, cycling), the body, a header list built
 * for it with the lines hookd sends (fixed values of the same lengths: no
 * signing), user agent, timeout, PIPEWAIT.
 *
 * prints one line of "key value" pairs: "requests N seconds S rate R
 * cpu_us_per_request C failed F connects K peak_rss_kb P private_kb V
 * events E timeouts T" (socket events and timer expiries handed to
 * curl_multi_socket_action), and "runs R" with --count-runs.
 * Exits 0 only when no request failed. Linux only (epoll, /proc). Not a
 * test. */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256

/* What the loop knows about one socket number. */
struct sock {
    int events;                     /* EPOLLIN | EPOLLOUT registered, 0 = none */
    int idle;                       /* libcurl said REMOVE: a kept-alive connection */
};

struct args {
    const char *url, *body_file, *ca;
    const char **urls;              /* URL, or the lines of @FILE: request i goes
                                       to urls[i % nurls] */
    size_t nurls;
    char *body;                     /* the body file's bytes */
    long body_len;
    long total, in_flight;
    long max_host_connections;      /* hookd's max_per_host default */
    long max_streams;               /* 0 = libcurl's default (100) */
    int share;                      /* TLS sessions shared, as hookd (--no-share: not) */
    int count_runs;                 /* diagnostic: count libcurl's transfer runs */
};

struct floor {
    const struct args *args;
    CURLM *multi;
    int epfd;
    long timeout_ms;                /* libcurl's timer: -1 none, else ms from set_ms */
    double set_ms;                  /* monotonic ms when timeout_ms was set */
    struct sock *socks;             /* by fd number */
    size_t nsocks;
    long started, done, failed, total, in_flight;
    long connects;                  /* sum of CURLINFO_NUM_CONNECTS */
    long events;                    /* socket events handed to libcurl */
    long timeouts;                  /* socket_action(CURL_SOCKET_TIMEOUT) calls */
    long runs;                      /* with --count-runs: progress callbacks */
    long private_kb;                /* sampled once at full flight, -1 = not yet */
    double sample_cpu;              /* CPU seconds the sampling itself took */
};

static double now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static double cpu_seconds(void)
{
    struct rusage u;

    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + (double)u.ru_stime.tv_sec +
           u.ru_stime.tv_usec / 1e6;
}

static void *xrealloc(void *p, size_t n)
{
    if ((p = realloc(p, n)) == NULL) {
        perror("realloc");
        exit(2);
    }
    return p;
}

/* The slot for fd, the table grown to hold it. */
static struct sock *slot(struct floor *f, curl_socket_t fd)
{
    if ((size_t)fd >= f->nsocks) {
        size_t n = f->nsocks ? f->nsocks : 1024;
        while (n <= (size_t)fd)
            n *= 2;
        f->socks = xrealloc(f->socks, n * sizeof(*f->socks));
        memset(f->socks + f->nsocks, 0, (n - f->nsocks) * sizeof(*f->socks));
        f->nsocks = n;
    }
    return &f->socks[fd];
}

/* Register events for fd, one epoll_ctl, none when they are unchanged. A
 * number whose socket was closed behind our back is out of epoll already
 * (closing the only reference removes it), hence the ADD/MOD fallbacks. */
static int watch(struct floor *f, curl_socket_t fd, int events)
{
    struct sock *s = slot(f, fd);
    struct epoll_event ev = { .events = (uint32_t)events, .data.fd = fd };
    int rc;

    if (events == s->events)
        return 0;
    if (events == 0) {
        epoll_ctl(f->epfd, EPOLL_CTL_DEL, fd, NULL);    /* EBADF: closed already */
        s->events = 0;
        return 0;
    }
    rc = epoll_ctl(f->epfd, s->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
    if (rc < 0 && errno == ENOENT)
        rc = epoll_ctl(f->epfd, EPOLL_CTL_ADD, fd, &ev);
    else if (rc < 0 && errno == EEXIST)
        rc = epoll_ctl(f->epfd, EPOLL_CTL_MOD, fd, &ev);
    s->events = rc == 0 ? events : 0;
    return rc;
}

/* libcurl's socket callback. As in hookd (src/http.c), a kept-alive
 * connection stays registered for reading after libcurl's REMOVE, so a
 * request on a warm connection makes no epoll_ctl: an idle socket that
 * turns readable (the server closed it) is taken out in the loop, and one
 * libcurl closes leaves epoll by itself. on_open_socket forgets what was
 * registered under a number handed out again. */
static int on_socket(CURL *easy, curl_socket_t fd, int action, void *userp, void *socketp)
{
    struct floor *f = userp;
    struct sock *s;
    int events = 0;

    (void)easy, (void)socketp;
    if (fd < 0)
        return -1;
    s = slot(f, fd);
    if (action == CURL_POLL_REMOVE) {
        s->idle = 1;
        return watch(f, fd, EPOLLIN) == 0 ? 0 : watch(f, fd, 0);
    }
    s->idle = 0;
    if (action == CURL_POLL_IN || action == CURL_POLL_INOUT)
        events |= EPOLLIN;
    if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT)
        events |= EPOLLOUT;
    return watch(f, fd, events) == 0 ? 0 : -1;
}

/* libcurl's timer callback: only noted; the loop waits for it in
 * epoll_wait (calling socket_action from here is not allowed). */
static int on_timeout(CURLM *multi, long timeout_ms, void *userp)
{
    struct floor *f = userp;

    (void)multi;
    f->timeout_ms = timeout_ms;
    f->set_ms = now_ms();
    return 0;
}

/* Every connection's socket is made here: a number closed (and so out of
 * epoll) and given to this socket starts with nothing registered. */
static curl_socket_t on_open_socket(void *clientp, curlsocktype purpose,
                                    struct curl_sockaddr *addr)
{
    struct floor *f = clientp;
    curl_socket_t fd = socket(addr->family, addr->socktype, addr->protocol);

    (void)purpose;
    if (fd >= 0)
        *slot(f, fd) = (struct sock){ 0 };
    return fd;
}

/* With --count-runs: libcurl calls this about once each time it runs a
 * transfer (multi_runsingle), which is what a socket event costs per
 * stream; the callback itself adds CPU, so runs are counted apart. */
static int count_run(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                     curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    ((struct floor *)clientp)->runs++;
    return 0;
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p, (void)arg;
    return size * n;
}

/* Sum of the "Private_*" lines of smaps_rollup, in kB; -1 when unreadable. */
static long private_kb(void)
{
    FILE *fp = fopen("/proc/self/smaps_rollup", "r");
    char line[256];
    long sum = -1, kb;

    if (fp == NULL)
        return -1;
    while (fgets(line, sizeof(line), fp) != NULL)
        if ((sscanf(line, "Private_Clean: %ld kB", &kb) == 1 ||
             sscanf(line, "Private_Dirty: %ld kB", &kb) == 1))
            sum = (sum < 0 ? 0 : sum) + kb;
    fclose(fp);
    return sum;
}

/* VmHWM (peak resident set) in kB; -1 when unreadable. */
static long peak_rss_kb(void)
{
    FILE *fp = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;

    if (fp == NULL)
        return -1;
    while (fgets(line, sizeof(line), fp) != NULL)
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            break;
    fclose(fp);
    return kb;
}

/* Private memory is sampled once, the first time the requests running are
 * back at IN_FLIGHT after half of N are done: every connection and stream
 * is open then, and the run is in its steady state, not ramping up or
 * draining. Reading smaps_rollup walks the page tables; that CPU is kept
 * out of cpu_us_per_request. */
static void maybe_sample(struct floor *f)
{
    if (f->private_kb >= 0 || f->done < f->total / 2 || f->started - f->done < f->in_flight)
        return;
    double c0 = cpu_seconds();
    f->private_kb = private_kb();
    f->sample_cpu += cpu_seconds() - c0;
    if (f->private_kb < 0)
        f->private_kb = 0;          /* unreadable: reported as 0, sampled once */
}

static int start(struct floor *f, const struct args *a, CURL *e);
static void end(CURL *e);

/* Count what finished and add each handle again, options kept, as hookd
 * recycles its own. */
static void check_done(struct floor *f)
{
    CURLMsg *m;
    int left;

    while ((m = curl_multi_info_read(f->multi, &left)) != NULL) {
        CURL *e = m->easy_handle;
        long status = 0, conns = 0;
        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &conns);
        if (m->data.result != CURLE_OK || status / 100 != 2)
            f->failed++;
        f->connects += conns;
        curl_multi_remove_handle(f->multi, e);
        end(e);
        f->done++;
        if (f->started >= f->total || start(f, f->args, e) < 0)
            curl_easy_cleanup(e);
    }
    maybe_sample(f);
}

/* Poll until every request is done. The epoll timeout is libcurl's timer:
 * when it is due, socket_action(CURL_SOCKET_TIMEOUT). */
static void run(struct floor *f)
{
    struct epoll_event ev[MAX_EVENTS];
    int running;

    while (f->done < f->total) {
        int wait = -1, n;
        if (f->timeout_ms >= 0) {
            double left = f->set_ms + (double)f->timeout_ms - now_ms();
            wait = left <= 0 ? 0 : (int)left + 1;
        }
        if (f->started == f->done)
            break;              /* nothing running and nothing to start: adds failed */
        n = epoll_wait(f->epfd, ev, MAX_EVENTS, wait);
        if (n < 0 && errno != EINTR) {
            perror("epoll_wait");
            exit(2);
        }
        for (int i = 0; i < n; i++) {
            curl_socket_t fd = ev[i].data.fd;
            struct sock *s = slot(f, fd);
            int flags = 0;
            if (s->idle) {
                watch(f, fd, 0);    /* closed by the server while kept alive */
                continue;
            }
            if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                flags |= CURL_CSELECT_IN;
            if (ev[i].events & EPOLLOUT)
                flags |= CURL_CSELECT_OUT;
            if (ev[i].events & EPOLLERR)
                flags |= CURL_CSELECT_ERR;
            curl_multi_socket_action(f->multi, fd, flags, &running);
            f->events++;
        }
        if (f->timeout_ms >= 0 && now_ms() >= f->set_ms + (double)f->timeout_ms) {
            f->timeout_ms = -1;     /* libcurl sets it again if it wants */
            curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
            f->timeouts++;
        }
        check_done(f);
    }
}

static char *read_file(const char *path, long *len)
{
    FILE *fp = fopen(path, "rb");
    char *p;

    if (fp == NULL || fseek(fp, 0, SEEK_END) != 0 || (*len = ftell(fp)) < 0 ||
        fseek(fp, 0, SEEK_SET) != 0 || (p = malloc((size_t)*len + 1)) == NULL ||
        fread(p, 1, (size_t)*len, fp) != (size_t)*len) {
        perror(path);
        exit(2);
    }
    fclose(fp);
    return p;
}


static int usage(void)
{
    fprintf(stderr, "usage: curl_floor [--max-host-connections N] [--max-streams N] [--no-share]\n"
                    "                  [--count-runs]\n"
                    "                  URL|@URL_FILE N IN_FLIGHT BODY_FILE [CA_FILE]\n");
    return 2;
}

static int parse_args(int argc, char **argv, struct args *a)
{
    int i = 1;

    *a = (struct args){ .max_host_connections = 64, .share = 1 };
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--no-share") == 0)
            a->share = 0;
        else if (strcmp(argv[i], "--count-runs") == 0)
            a->count_runs = 1;
        else if (strcmp(argv[i], "--max-host-connections") == 0 && i + 1 < argc)
            a->max_host_connections = atol(argv[++i]);
        else if (strcmp(argv[i], "--max-streams") == 0 && i + 1 < argc)
            a->max_streams = atol(argv[++i]);
        else
            return -1;
    }
    if (argc - i < 4)
        return -1;
    a->url = argv[i];
    a->total = atol(argv[i + 1]);
    a->in_flight = atol(argv[i + 2]);
    a->body_file = argv[i + 3];
    a->ca = argc - i > 4 ? argv[i + 4] : NULL;
    return a->total > 0 && a->in_flight > 0 ? 0 : -1;
}

/* An easy handle with the options src/http.c's new_easy sets once (less
 * hookd's own callbacks). */
static CURL *new_easy(struct floor *f, const struct args *a, CURLSH *share)
{
    CURL *e = curl_easy_init();

    if (e == NULL)
        return NULL;
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 1024L);
    curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, f);
    if (a->ca != NULL)
        curl_easy_setopt(e, CURLOPT_CAINFO, a->ca);
    if (share != NULL)
        curl_easy_setopt(e, CURLOPT_SHARE, share);
    if (a->count_runs) {
        curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, count_run);
        curl_easy_setopt(e, CURLOPT_XFERINFODATA, f);
    }
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    return e;
}

/* The header lines hookd sends with a bench job (src/deliver_headers.c),
 * with fixed values of the same lengths: the same bytes on the wire, no
 * signing. */
static const char *const job_headers[] = {
    "content-type: application/json",
    "x-dialgen-signature: 5d1c2a0bb0c7e3e4f0a6d8f1b2c3d4e5f60718293a4b5c6d7e8f901a2b3c4d5e",
    "webhook-id: msg_2b9QxLzmYcVn4RtU8sEwKjHf",
    "webhook-timestamp: 1796000000",
    "webhook-signature: v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDDSWBjjs=",
    "x-enq: 1796000000000",
    "Expect:",
};

/* Start request number f->started on e with what src/http.c's http_post
 * sets per request: URL, body, a header list built for it, user agent,
 * timeout, PIPEWAIT. The list is freed when the request ends. */
static int start(struct floor *f, const struct args *a, CURL *e)
{
    const char *url = a->urls[f->started % a->nurls];
    struct curl_slist *h = NULL;

    for (size_t i = 0; i < sizeof(job_headers) / sizeof(job_headers[0]); i++)
        h = curl_slist_append(h, job_headers[i]);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, a->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)a->body_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_PRIVATE, h);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "hookd/0.1.0");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
    /* Only TLS learns by ALPN that a server multiplexes (see http_post). */
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, strncmp(url, "https:", 6) == 0 ? 1L : 0L);
    if (h == NULL || curl_multi_add_handle(f->multi, e) != CURLM_OK) {
        curl_slist_free_all(h);
        return -1;
    }
    f->started++;
    return 0;
}

/* The header list of a request that ended. */
static void end(CURL *e)
{
    struct curl_slist *h = NULL;

    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&h);
    curl_slist_free_all(h);
}

static CURLM *new_multi(struct floor *f, const struct args *a)
{
    CURLM *m = curl_multi_init();

    if (m == NULL)
        return NULL;
    curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(m, CURLMOPT_SOCKETDATA, f);
    curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_timeout);
    curl_multi_setopt(m, CURLMOPT_TIMERDATA, f);
    curl_multi_setopt(m, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    /* hookd keeps one idle connection per in-flight slot (rlimit.h) */
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, a->in_flight);
    if (a->max_host_connections > 0)
        curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, a->max_host_connections);
    if (a->max_streams > 0)
        curl_multi_setopt(m, CURLMOPT_MAX_CONCURRENT_STREAMS, a->max_streams);
    return m;
}

/* a->urls: the URL argument, or with "@FILE" the file's non-empty lines. */
static int load_urls(struct args *a)
{
    if (a->url[0] != '@') {
        a->urls = &a->url;
        a->nurls = 1;
        return 0;
    }
    long len;
    char *text = read_file(a->url + 1, &len), *save = NULL;      /* kept to the end */
    text[len] = '\0';
    for (char *t = strtok_r(text, "\n", &save); t; t = strtok_r(NULL, "\n", &save)) {
        a->urls = xrealloc(a->urls, (a->nurls + 1) * sizeof(*a->urls));
        a->urls[a->nurls++] = t;
    }
    return a->nurls > 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    struct floor f = { .timeout_ms = -1, .private_kb = -1 };
    CURLSH *share = NULL;
    struct args a;
    int rc = 2;

    if (parse_args(argc, argv, &a) < 0 || load_urls(&a) < 0)
        return usage();
    a.body = read_file(a.body_file, &a.body_len);
    if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
        goto out_free_body;
    if (a.share) {
        share = curl_share_init();
        curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    }
    f.args = &a;
    f.total = a.total;
    f.in_flight = a.in_flight;
    if ((f.epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        perror("epoll_create1");
        goto out_cleanup_curl;
    }
    if ((f.multi = new_multi(&f, &a)) == NULL)
        goto out_close_epoll;

    double t0 = now_ms(), c0 = cpu_seconds();
    while (f.started < f.total && f.started < f.in_flight) {
        CURL *e = new_easy(&f, &a, share);
        if (e == NULL || start(&f, &a, e) < 0) {
            fprintf(stderr, "curl_floor: starting request %ld failed\n", f.started + 1);
            curl_easy_cleanup(e);
            break;
        }
    }
    run(&f);
    double dt = (now_ms() - t0) / 1e3, cpu = cpu_seconds() - c0 - f.sample_cpu;
    long lost = f.total - f.done;   /* never started: as failed */

    printf("requests %ld seconds %.3f rate %.0f cpu_us_per_request %.1f failed %ld "
           "connects %ld peak_rss_kb %ld private_kb %ld events %ld timeouts %ld",
           f.done, dt, (double)f.done / dt, f.done ? cpu * 1e6 / (double)f.done : 0.0,
           f.failed + lost, f.connects, peak_rss_kb(), f.private_kb, f.events, f.timeouts);
    if (a.count_runs)
        printf(" runs %ld", f.runs);
    printf("\n");
    rc = f.failed + lost > 0;
    curl_multi_cleanup(f.multi);
out_close_epoll:
    close(f.epfd);
out_cleanup_curl:
    curl_share_cleanup(share);
    curl_global_cleanup();
out_free_body:
    free(a.body);
    free(f.socks);
    return rc;
}
