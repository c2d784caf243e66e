#!/usr/bin/python3
"""bench/internet.py -- hookd against endpoints as webhooks meet them on the
internet (issue 17), all on 127.0.0.1: one private nginx over TLS (a CA
this script generates), some origins offering HTTP/2, others HTTP/1.1
only, each answer delayed with echo_sleep (Debian's
libnginx-mod-http-echo).

Cases:
  http-fast, h2-fast, h1-fast, h2-50ms, h2-200ms, h1-50ms
              one origin (plain http, or TLS offering h2, or TLS h1 only),
              answering at once or after the delay
  zipf-50ms, zipf-200ms
              ORIGINS (20) origins on their own ports, even ranks offering
              HTTP/2, odd ranks HTTP/1.1 only; jobs assigned to ranks with
              Zipf weights 1/k^1.1 from a fixed seed: the big customer
              (rank 1, HTTP/2) gets about 31%, the tail 1% each

Contenders per case, alternating run by run, medians of --runs:
  hookd       workers x max_in_flight, default settings otherwise (plus
              ca_file and --set)
  h2load      (nghttp2-client) the same body to the same nginx at the same
              total in flight, over HTTP/2 (8 connections) when the origin
              offers it and over HTTP/1.1 (--h1, one connection per request
              in flight; plain http for http-fast); for a zipf case against
              the big customer's origin
  floor       bench/curl_floor.c: the same POSTs through libcurl with
              nothing else, one process at max_in_flight (one worker's
              share); for a zipf case against the big customer's origin
and once per case, best of its concurrencies (64, 256, 1024):
  bullmq      bench/peers/bullmq.js over https, each job to the same origin
              as hookd's job of the same number

Columns: deliveries/s; p50/p99 of enqueue-to-2xx minus the injected delay
(nginx logs `$http_x_enq $msec $connection $ssl_session_reused` for every
request; enqueue is the job's x-enq, or the contender's start when later or
absent: every job is queued before the clock starts); CPU per delivery of
the workers (hookd), or of the process (h2load, bullmq's drain, the
floor's own getrusage); peak RSS (VmHWM / ru_maxrss) and peak private
memory (Private_Clean + Private_Dirty, sampled every 0.2 s) per worker or
process; new connections per 1,000 deliveries (distinct $connection serials
in the run's log lines; over TLS each is a handshake, and the share
resumed is the share with $ssl_session_reused = r).

A sweep then drains each case with workers=2 and max_in_flight 100, 250,
500, 1000 (one run per point): CSV + PNG (gnuplot), deliveries/s and p99
overhead against total in flight, one line per case.

Not a test: nothing asserted.

usage: bench/internet.py [--jobs N] [--runs R] [--cases h2-50ms,...] [--tiny]
       (or bench/run --only internet, through bench/suite.py)
"""
import argparse
import csv
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so"
FLOOR = os.path.join(os.path.dirname(os.path.abspath(lib.HOOKD)), "curl_floor")
ORIGINS = 20            # zipf cases: origins, each on its own port
ZIPF_S = 1.1            # weight of rank k is 1/k^s
MAX_PER_HOST = 64       # hookd's default max_per_host: its requests per HTTP/1.1 origin
SEED = 17               # the job -> origin assignment is the same every run
# name: (kind, answer delay in seconds); kind "http" (plain), "h2" (TLS,
# HTTP/2 offered), "h1" (TLS, HTTP/1.1 only), "zipf" (ORIGINS mixed)
CASES = {"http-fast": ("http", 0), "h2-fast": ("h2", 0), "h1-fast": ("h1", 0),
         "h2-50ms": ("h2", 0.05), "h2-200ms": ("h2", 0.2), "h1-50ms": ("h1", 0.05),
         "zipf-50ms": ("zipf", 0.05), "zipf-200ms": ("zipf", 0.2)}
DEFAULT_CASES = "http-fast,h2-fast,h2-50ms,zipf-50ms,zipf-200ms"
TINY_CASES = "h2-50ms,zipf-50ms"

NGINX_CONF = """
load_module %(module)s;
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/nginx-error.log;
daemon off;
events { worker_connections 16384; }
http {
  log_format inet '$http_x_enq $msec $connection $ssl_session_reused';
  access_log %(d)s/inet.log inet buffer=256k flush=100ms;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  http2_max_concurrent_streams 256;
  client_body_buffer_size 16k;
  client_body_temp_path %(d)s;
  ssl_certificate %(d)s/server.pem;
  ssl_certificate_key %(d)s/server.key;
  ssl_session_cache shared:bench:10m;
%(servers)s
}
"""

SERVER = """  server {
    listen 127.0.0.1:%(port)d%(tls)s backlog=4096;
    location / { echo_read_request_body; %(sleep)secho '{"received":true}'; }
  }
"""


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def zipf_ranks(n, origins=ORIGINS, s=ZIPF_S, seed=SEED):
    """Origin rank (0 = the big customer) of each of n jobs: Zipf weights,
    drawn from a fixed seed, so every contender and every run sends job i
    to the same origin."""
    weights = [1 / (k + 1) ** s for k in range(origins)]
    return random.Random(seed).choices(range(origins), weights=weights, k=n)


def kv_floats(text):
    """key value key value ... -> {key: float}; what does not parse is left out."""
    words, out = text.split(), {}
    for k, v in zip(words[0::2], words[1::2]):
        try:
            out[k] = float(v)
        except ValueError:
            pass
    return out


class TlsOrigins:
    """A private nginx serving every origin of the chosen cases on its own
    port (TLS with a CA made for the run, or plain http for http-*), logging
    every request to one log."""

    def __init__(self, cases):
        self.dir = tempfile.mkdtemp(prefix="hookd-internet-")
        d = self.dir
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
                "-out", "ca.pem", "-days", "2", "-subj", "/CN=hookd bench CA", cwd=d)
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
                "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)
        with open(os.path.join(d, "ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\n")
        openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext",
                cwd=d)
        self.ca = os.path.join(d, "ca.pem")
        self.log = os.path.join(d, "inet.log")
        self.origins = {}       # case -> [(kind, port)], rank order
        servers = []
        for name in cases:
            kind, delay = CASES[name]
            kinds = ["h2" if k % 2 == 0 else "h1" for k in range(ORIGINS)] \
                if kind == "zipf" else [kind]
            self.origins[name] = [(k, lib.free_port()) for k in kinds]
            for k, port in self.origins[name]:
                servers.append(SERVER % {
                    "port": port, "tls": {"http": "", "h1": " ssl", "h2": " ssl http2"}[k],
                    "sleep": "echo_sleep %g; " % delay if delay else ""})
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF % {"module": ECHO_MODULE, "d": d, "servers": "".join(servers)})
        self.proc = subprocess.Popen(["nginx", "-c", conf, "-p", d], stderr=subprocess.DEVNULL)
        for ports in self.origins.values():
            for _, port in ports:
                lib.wait_for(lambda p=port: lib._connect(p), 10, "nginx")
        self.body = os.path.join(d, "body")
        with open(self.body, "w") as f:
            f.write(json.dumps(lib.PAYLOAD))

    def url(self, name, rank=0):
        kind, port = self.origins[name][rank]
        return "%s://127.0.0.1:%d/hook" % ("http" if kind == "http" else "https", port)

    def url_of(self, name, n):
        """url_of(i) for n jobs of case name."""
        if CASES[name][0] != "zipf":
            return lambda i, u=self.url(name): u
        urls = [self.url(name, k) for k in range(ORIGINS)]
        ranks = zipf_ranks(n)
        return lambda i: urls[ranks[i]]

    def offers_h2(self, name):
        return self.origins[name][0][0] == "h2"

    def log_offset(self):
        return os.path.getsize(self.log) if os.path.exists(self.log) else 0

    def log_stats(self, offset, count, t0_ms, delay_s):
        """Latency overheads and connections of the (about) count requests
        logged after offset: waits up to 5 s for nginx's buffered log to
        reach count lines, then takes what is there."""
        deadline = time.monotonic() + 5
        while True:
            with open(self.log) as f:
                f.seek(offset)
                lines = f.read().splitlines()
            if len(lines) >= count or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        lat, conns = [], {}
        for line in lines:
            enq, at, conn, reused = line.split()
            enq_ms = int(enq) if enq.isdigit() else 0
            lat.append(float(at) * 1000 - max(enq_ms, t0_ms) - delay_s * 1000)
            conns.setdefault(conn, reused)
        lat.sort()
        tls = [r for r in conns.values() if r in ("r", ".")]
        return {"p50": lib.percentile(lat, 0.5), "p99": lib.percentile(lat, 0.99),
                "conn_per_1k": 1000.0 * len(conns) / max(1, len(lines)),
                # nan over plain http: $ssl_session_reused is empty, logged "-"
                "resumed": (sum(1 for r in tls if r == "r") / len(tls)
                            if tls else float("nan"))}

    def measured(self, name, argv, n, env=None):
        """Run a load generator to completion; (stdout, CPU s, peak RSS MB,
        peak private MB, log stats of its requests)."""
        off = self.log_offset()
        out, cpu, rss, private, t0_ms = lib.run_measured(argv, env=env)
        return out, cpu, rss, private, self.log_stats(off, n, t0_ms, CASES[name][1])

    def h2load(self, name, n, in_flight, h1):
        """h2load at in_flight requests: over HTTP/2 as 8 connections of
        in_flight/8 streams, over HTTP/1.1 (h1) as in_flight connections
        (at most n: h2load wants a request for every connection)."""
        conns = min(in_flight, n) if h1 else 8
        argv = ["h2load", "-n", str(n), "-c", str(conns), "-m", str(in_flight // conns),
                "-d", self.body, "-H", "content-type: application/json",
                self.url(name)] + (["--h1"] if h1 else [])
        out, cpu, rss, private, st = self.measured(name, argv, n)
        m = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
        return dict(st, rate=float(m.group(1)) if m else float("nan"),
                    cpu_us=cpu * 1e6 / n, rss_mb=rss, private_mb=private)

    def urls_file(self, name, n):
        """A file of n jobs' URLs, line i the origin of job i (the same for
        every contender)."""
        urls = os.path.join(self.dir, "urls-%s-%d" % (name, n))
        if not os.path.exists(urls):
            url_of = self.url_of(name, n)
            with open(urls, "w") as f:
                f.write("\n".join(url_of(i) for i in range(n)))
        return urls

    def floor(self, name, n, in_flight):
        """bench/curl_floor.c, each request to its job's origin, at the
        requests hookd keeps in libcurl: in_flight, but an HTTP/1.1-only
        origin MAX_PER_HOST (hookd holds the rest in hosts.c; libcurl's own
        queue behind its connection cap costs more than hookd's). Its own
        CPU and memory figures when it prints them, else ours."""
        if CASES[name][0] != "zipf" and not self.offers_h2(name):
            in_flight = min(in_flight, MAX_PER_HOST)
        argv = [FLOOR, "@" + self.urls_file(name, n), str(n), str(in_flight), self.body,
                self.ca]
        out, cpu, rss, private, st = self.measured(name, argv, n)
        f = kv_floats(out)
        nan = float("nan")
        return dict(st, rate=f.get("rate", nan),
                    cpu_us=f.get("cpu_us_per_request", cpu * 1e6 / n),
                    rss_mb=f["peak_rss_kb"] / 1024 if "peak_rss_kb" in f else rss,
                    private_mb=(f["private_kb"] / 1024 if f["private_kb"] >= 0 else nan)
                    if "private_kb" in f else private)

    def bullmq(self, name, rport, n, concurrency):
        urls = self.urls_file(name, n)
        argv = ["node", os.path.join(HERE, "peers", "bullmq.js"), "--redis-port", str(rport),
                "--urls-file", urls, "--jobs", str(n), "--concurrency", str(concurrency),
                "--ca", self.ca]
        out, _, _, private, st = self.measured(name, argv, n)
        res = json.loads(out)
        # rss: node's own maxRSS (ours is the same process; either will do)
        return dict(st, rate=res["rate"], cpu_us=res["cpu_s"] * 1e6 / n,
                    rss_mb=res["maxrss_kb"] / 1024, private_mb=private)

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def hookd_run(peers, origins, name, jobs, workers, in_flight, settings):
    off = origins.log_offset()
    res = peers.run_hookd(jobs, workers=workers, in_flight=in_flight,
                          settings=["ca_file=" + origins.ca] + list(settings),
                          url_of=origins.url_of(name, jobs), log_latency=False)
    st = origins.log_stats(off, jobs, res["t0_ms"], CASES[name][1])
    return dict(st, rate=res["rate"], cpu_us=res["cpu_hookd_per_10k"] * 100,
                rss_mb=res["rss_mb"], private_mb=res["private_mb"])


KEYS = ("rate", "p50", "p99", "cpu_us", "rss_mb", "private_mb", "conn_per_1k", "resumed")


def median_row(runs):
    return {k: statistics.median(r[k] for r in runs) for k in KEYS}


class Profile:
    """The internet profile on a lib.Peers (its Redis; hookd's jobs go to
    TlsOrigins' nginx). out(name) is where a result file goes; record(...)
    takes (section, name, value, unit, note) rows for the suite's CSV."""

    def __init__(self, peers, out, record, jobs=10000, runs=3, workers=2, in_flight=1000,
                 cases=DEFAULT_CASES, tiny=False, settings=(), only=None):
        self.p, self.out, self.record = peers, out, record
        self.only = set(only or ("hookd", "floor", "h2load", "bullmq", "sweep"))
        self.jobs, self.runs, self.workers, self.in_flight = jobs, runs, workers, in_flight
        self.cases = cases.split(",")
        self.tiny = tiny
        self.settings = list(settings)
        self.sweep_points = [100, 500] if tiny else [100, 250, 500, 1000]
        self.bullmq_c = [64, 1024] if tiny else [64, 256, 1024]
        self.bullmq_jobs = jobs if tiny else max(2000, jobs // 4)

    def run(self):
        o = TlsOrigins(self.cases)
        try:
            self.table(o)
            if "sweep" in self.only:
                self.sweep(o)
        finally:
            o.close()

    def contenders(self, o, name):
        total = self.workers * self.in_flight
        n = self.jobs
        out = [("hookd", lambda: hookd_run(self.p, o, name, n, self.workers, self.in_flight,
                                           self.settings))]
        if o.offers_h2(name):
            out.append(("h2load h2", lambda: o.h2load(name, n, total, h1=False)))
        out.append(("h2load h1", lambda: o.h2load(name, n, total, h1=True)))
        out.append(("floor", lambda: o.floor(name, n, self.in_flight)))
        return [c for c in out if c[0].split()[0] in self.only]

    def table(self, o):
        total = self.workers * self.in_flight
        share = zipf_ranks(100000).count(0) / 1000.0
        print("\n== internet profile (issue 17): nginx on 127.0.0.1, TLS with a CA of the run; "
              "%d jobs of 1 KB per run, medians of %d, alternating; hookd workers=%d "
              "max_in_flight=%d (%d in flight), settings: %s; zipf: %d origins (even ranks h2, "
              "odd h1 only), weights 1/k^%g, the big customer (h2) %.0f%% of jobs; h2load in a "
              "zipf case: the big customer's origin, the floor: every job's; BullMQ: %d jobs, best of "
              "concurrency %s" % (
                  self.jobs, self.runs, self.workers, self.in_flight, total,
                  " ".join(self.settings) or "defaults", ORIGINS, ZIPF_S, share,
                  self.bullmq_jobs, ", ".join(map(str, self.bullmq_c))))
        print("%-10s %-15s %9s %8s %8s %8s %7s %8s %8s %8s %7s" % (
            "case", "contender", "dlv/s", "p50+ ms", "p99+ ms", "cpu us", "RSS MB",
            "priv MB", "conn/1k", "resumed", "hookd/"))
        for name in self.cases:
            cont = self.contenders(o, name)
            runs = [[] for _ in cont]
            for _ in range(self.runs):
                for i, (_, fn) in enumerate(cont):
                    runs[i].append(fn())
            rows = [(label, median_row(rs)) for (label, _), rs in zip(cont, runs)]
            best = None
            for c in self.bullmq_c if "bullmq" in self.only else ():
                res = o.bullmq(name, self.p.rport, self.bullmq_jobs, c)
                self.put(name, "bullmq c%d" % c, res)
                if best is None or res["rate"] > best[1]["rate"]:
                    best = ("bullmq c%d" % c, res)
            if best is not None:
                rows.append(("best " + best[0], best[1]))
            hookd_rate = rows[0][1]["rate"] if cont[0][0] == "hookd" else float("nan")
            for label, m in rows:
                print("%-10s %-15s %9.0f %8.1f %8.1f %8.1f %7.1f %8.1f %8.2f %7.0f%% %7.2f" % (
                    name, label, m["rate"], m["p50"], m["p99"], m["cpu_us"], m["rss_mb"],
                    m["private_mb"], m["conn_per_1k"], 100 * m["resumed"],
                    hookd_rate / m["rate"] if m["rate"] else float("nan")))
                self.put(name, label, m)
            sys.stdout.flush()
        print("(p50+/p99+: enqueue-to-2xx minus the injected delay, ms; cpu us: CPU µs per "
              "delivery of hookd's workers, of the h2load/node process, the floor's own; "
              "RSS/priv: peak RSS and peak private memory per worker or process; conn/1k: new "
              "connections per 1,000 deliveries (TLS handshakes except http-*), resumed: "
              "share of them resuming a TLS session; hookd/: hookd's deliveries/s over the "
              "row's)")

    def put(self, case, label, m):
        for k in KEYS:
            self.record("internet", "%s/%s/%s" % (case, label.replace(" ", "_"), k), m[k],
                        "", "")

    def sweep(self, o):
        jobs = self.jobs if self.tiny else max(2000, self.jobs // 2)
        points = [(name, m) for m in self.sweep_points for name in self.cases]
        csv_path = self.out("internet-sweep.csv")
        print("\n== internet sweep: hookd, workers=%d, %d jobs per point, one run each" % (
            self.workers, jobs))
        print("%-10s %-13s %9s %8s %8s" % ("case", "max_in_flight", "dlv/s", "p50+ ms",
                                           "p99+ ms"))
        res = {}
        for name, m in points:      # cases alternate at each point: drift hits all alike
            r = res[name, m] = hookd_run(self.p, o, name, jobs, self.workers, m,
                                         self.settings)
            print("%-10s %-13d %9.0f %8.1f %8.1f" % (name, m, r["rate"], r["p50"], r["p99"]))
            sys.stdout.flush()
        with open(csv_path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["case", "workers", "max_in_flight", "in_flight", "deliveries_per_s",
                        "p50_overhead_ms", "p99_overhead_ms", "cpu_us_per_delivery",
                        "rss_mb", "private_mb", "conn_per_1k"])
            for name in self.cases:     # one case's rows together: one line each in gnuplot
                for m in self.sweep_points:
                    r = res[name, m]
                    w.writerow([name, self.workers, m, self.workers * m] +
                               [round(r[k], 2) for k in ("rate", "p50", "p99", "cpu_us",
                                                         "rss_mb", "private_mb",
                                                         "conn_per_1k")])
        png = self.out("internet-sweep.png")
        lines = lambda col: ", \\\n     ".join(  # noqa: E731
            "'%s' using 4:(strcol(1) eq '%s' ? $%d : 1/0) with linespoints title '%s'" % (
                csv_path, name, col, name) for name in self.cases)
        plot = """
set terminal pngcairo size 1000,460 font ",10"
set output '%(png)s'
set datafile separator ','
set logscale x 2
set offsets graph 0.05, graph 0.05, graph 0.05, 0
set key below
set multiplot layout 1,2 title "hookd, internet profile: %(jobs)d jobs of 1 KB (TLS but http-fast), workers=%(w)d, %(cpus)d CPUs shared"
set xlabel 'requests in flight (workers x max\\_in\\_flight)'
set ylabel 'deliveries/s'
set yrange [0:*]
plot %(rate)s
set ylabel 'p99 enqueue-to-2xx minus delay (ms)'
plot %(p99)s
unset multiplot
""" % {"png": png, "jobs": jobs, "w": self.workers, "cpus": os.cpu_count(),
       "rate": lines(5), "p99": lines(7)}
        subprocess.run(["gnuplot"], input=plot, text=True, check=True)
        print("written: %s, %s" % (os.path.relpath(csv_path), os.path.relpath(png)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--in-flight", type=int, default=1000, help="max_in_flight per worker")
    ap.add_argument("--cases", default=None, help="default: " + DEFAULT_CASES)
    ap.add_argument("--tiny", action="store_true", help="toy size: 1,000 jobs, 1 run")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--only", default=None, metavar="hookd,floor,h2load,bullmq,sweep",
                    help="run these parts only (A/B work); default: all")
    args = ap.parse_args()
    if args.tiny:
        args.jobs, args.runs = 1000, 1
    cases = args.cases or (TINY_CASES if args.tiny else DEFAULT_CASES)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    rows = []
    out = lambda p: os.path.join(HERE, "results", "%s-%s" % (stamp, p))  # noqa: E731
    with lib.Peers() as peers:
        Profile(peers, out, lambda *row: rows.append(row), args.jobs, args.runs, args.workers,
                args.in_flight, cases, args.tiny, args.set,
                args.only.split(",") if args.only else None).run()
    lib.write_rows(out("internet.csv"), rows)     # the table, as suite.csv rows


if __name__ == "__main__":
    main()
