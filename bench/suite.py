#!/usr/bin/python3
"""bench/suite.py -- hookd against its ceiling and a peer, in one run, and
the measurements issue 6 asks for. Run it through bench/run (which installs
what it needs); everything runs on one private redis-server and one private
nginx (bench/lib.py).

Sections, in order:
  hookd      drain --jobs jobs, workers=2, max_in_flight 256 and 1000
             (max_per_host = max_in_flight: one origin here); the best is
             the headline
  sample     a correctness sample: the same jobs to a receiver that checks
             both signatures (tests/integration/receiver.js) instead of nginx
  ceiling    wrk -c64 POSTing the same 1 KB body to the same nginx
  peer       a BullMQ worker doing the same sign-and-POST job
             (bench/peers/bullmq.js), best concurrency of 16, 64, 256
  sweep      workers 1, 2 x max_in_flight 16 .. 4096: CSV + PNG (gnuplot)
  latency    a fixed arrival rate (50% of the headline) for --latency-s
             seconds: enqueue-to-2xx p50 / p99 / max
  memory     1,000 requests held in flight by an endpoint that never answers
             (workers=1, max_in_flight = max_per_host = 1000): the worker's
             RSS, then again with 10 x --jobs more jobs queued
  depth      draining 10 x --jobs queued jobs against --jobs
  retries    fresh deliveries with 10 x --jobs pending retries (due in an
             hour) against none; then promotion of 10 x --jobs due retries
  fairness   10% of jobs to an endpoint that never answers (default
             max_per_host 64, timeout 30 s), 90% to nginx: healthy
             deliveries/s against all-healthy
  dedupe     what dedupe_window costs: on against off
  internet   issue 17's profile (bench/internet.py): nginx over TLS, h2 and
             h1-only origins, 50/200 ms answers, 20 origins with a Zipf
             spread; hookd against h2load, the libcurl floor and BullMQ
             over https, --internet-jobs jobs per run; and its sweep
             (internet-sweep.csv/.png). Needs no other section: with
             --only internet the hookd section is not run
  redis      issue 19's Redis modes (bench/redis_modes.py): the same drain
             against a plain primary, one with a replica
             (redis_wait_replicas 0 and 1) and TLS-only Redis, --redis-jobs
             jobs per run, workers=2, max_in_flight=1000; needs no other
             section either
Medians of --runs runs (the machine is shared and noisy); the compared
configurations alternate run by run. Results are printed and written under
bench/results/ (ignored by git). --tiny is the CI configuration: 2,000 jobs,
one run, every section exercised at toy size so the suite cannot rot.

usage: bench/suite.py [--jobs N] [--runs R] [--internet-jobs N] [--redis-jobs N] [--tiny]
                      [--only SECTION ...]
"""
import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import internet  # noqa: E402
import lib  # noqa: E402
import redis_modes  # noqa: E402

SECTIONS = ["hookd", "sample", "ceiling", "peer", "sweep", "latency", "memory", "depth",
            "retries", "fairness", "dedupe", "internet", "redis"]
# Sections that do not use the hookd section's best setting.
STANDALONE = {"internet", "redis"}


def median_of(runs, key="rate"):
    return statistics.median(x[key] for x in runs)


def alternate(runs, *fns):
    """Call each fn once per round, `runs` rounds: A B A B ... so that drift
    on a shared machine hits every configuration alike."""
    out = [[] for _ in fns]
    for _ in range(runs):
        for i, fn in enumerate(fns):
            out[i].append(fn())
    return out


def wrk_rate(url, seconds):
    out = subprocess.run(["wrk", "-t1", "-c64", "-d%ds" % seconds, "-s",
                          os.path.join(HERE, "post.lua"), url],
                         capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def peer_rate(rport, url, jobs, concurrency):
    out = subprocess.run(["node", os.path.join(HERE, "peers", "bullmq.js"), "--redis-port",
                          str(rport), "--url", url, "--jobs", str(jobs), "--concurrency",
                          str(concurrency)], capture_output=True, text=True, check=True,
                         timeout=900).stdout
    return json.loads(out)["rate"]


def envelopes(r, key, n, url, score):
    """n retry envelopes (hookd's msgpack form) in sorted set key at score."""
    pipe = r.pipeline(transaction=False)
    for start in range(0, n, 500):
        members = {}
        for i in range(start, min(n, start + 500)):
            job = lib.job_json(i, url, 1).encode()
            members[msgpack.packb({"_hookd": 1, "id": "p%d" % i, "attempts": 1,
                                   "first_ms": 1, "last_status": 500, "last_error": "bench",
                                   "token": "t%d" % i, "job": job}, use_bin_type=True)] = score
        pipe.zadd(key, members)
        if (start // 500) % 20 == 19:
            pipe.execute()
    pipe.execute()


class Suite:
    def __init__(self, args, peers):
        self.a = args
        self.p = peers
        self.rows = []          # (section, name, value, unit, note) for the CSV
        self.stamp = time.strftime("%Y%m%d-%H%M%S")
        os.makedirs(os.path.join(HERE, "results"), exist_ok=True)

    def out(self, path):
        return os.path.join(HERE, "results", "%s-%s" % (self.stamp, path))

    def record(self, section, name, value, unit, note=""):
        self.rows.append((section, name, value, unit, note))

    def hookd(self, jobs=None, workers=2, in_flight=1000, per_host=None, **kw):
        settings = list(kw.pop("settings", ()))
        settings.append("max_per_host=%d" % (per_host or in_flight))
        return self.p.run_hookd(jobs or self.a.jobs, workers, in_flight, settings, **kw)

    # ---- sections -----------------------------------------------------------

    def run_hookd(self):
        mfs = [256, 1000]
        runs = alternate(self.a.runs, *[lambda m=m: self.hookd(in_flight=m) for m in mfs])
        self.headline = {}
        print("\n== hookd: %d jobs, 1 KB payload, workers=2, nginx receiver (medians of %d)"
              % (self.a.jobs, self.a.runs))
        print("%-13s %12s %8s %8s %8s %9s %9s %9s %8s %7s" % (
            "max_in_flight", "deliveries/s", "p50 ms", "p99 ms", "max ms", "hookd cpu",
            "redis cpu", "nginx cpu", "RSS MB", "rt/dlv"))
        for m, rs in zip(mfs, runs):
            med = {k: median_of(rs, k) for k in rs[0]}
            self.headline[m] = med
            print("%-13d %12.0f %8.0f %8.0f %8.0f %8.2fs %8.2fs %8.2fs %8.1f %7.3f   (runs: %s)"
                  % (m, med["rate"], med["p50"], med["p99"], med["max"],
                     med["cpu_hookd_per_10k"], med["cpu_redis_per_10k"],
                     med["cpu_nginx_per_10k"], med["rss_mb"], med["rt_per_delivery"],
                     ", ".join("%.0f" % x["rate"] for x in rs)))
            for k in ("rate", "p50", "p99", "max", "cpu_hookd_per_10k", "cpu_redis_per_10k",
                      "cpu_nginx_per_10k", "rss_mb", "rt_per_delivery"):
                self.record("hookd", "%s@in_flight=%d" % (k, m), med[k], "")
        print("(CPU: seconds per 10,000 deliveries; RSS: peak per worker; rt/dlv: Redis "
              "round trips per delivery; latency: from the RENAME that enqueues all jobs)")
        self.best_m = max(self.headline, key=lambda m: self.headline[m]["rate"])
        self.best = self.headline[self.best_m]["rate"]

    def run_sample(self):
        n = min(self.a.jobs, 5000)
        recv = subprocess.Popen(["node", os.path.join(lib.ROOT, "tests", "integration",
                                                       "receiver.js"), "--secret", lib.SECRET],
                                stdout=subprocess.PIPE, text=True)
        try:
            info = json.loads(recv.stdout.readline())
            url = "http://127.0.0.1:%d/hook" % info["port"]
            stats_url = "http://127.0.0.1:%d/__stats" % info["control"]
            res = self.p.run_hookd(n, 2, self.best_m, ["max_per_host=%d" % self.best_m],
                                   url_of=lambda i: url, log_latency=False)
            with urllib.request.urlopen(stats_url) as f:
                st = json.load(f)
        finally:
            recv.terminate()
            recv.wait()
        ok = (st["count"] == n and st["valid_dialgen"] == n and st["valid_standard"] == n
              and len(st["ids"]) == n)
        print("\n== correctness sample: %d jobs to a verifying receiver at %.0f/s: %d received, "
              "%d x-dialgen-signature valid, %d webhook-signature valid, %d distinct ids: %s"
              % (n, res["rate"], st["count"], st["valid_dialgen"], st["valid_standard"],
                 len(st["ids"]), "OK" if ok else "MISMATCH"))
        self.record("sample", "signatures_valid", st["valid_dialgen"], "of %d" % n)
        if not ok:
            raise SystemExit("correctness sample failed")

    def run_ceiling(self):
        wall = max(3, int(self.a.jobs / self.best + 0.5))
        rates = [wrk_rate(self.p.url, wall) for _ in range(self.a.runs)]
        self.ceiling = statistics.median(rates)
        self.record("ceiling", "wrk_c64", self.ceiling, "req/s", "%d s runs" % wall)

    def run_peer(self):
        jobs = max(2000, self.a.jobs // 10)
        conc = [64] if self.a.tiny else [16, 64, 256]
        peer = {c: statistics.median(peer_rate(self.p.rport, self.p.url, jobs, c)
                                     for _ in range(self.a.runs)) for c in conc}
        self.peer_c = max(peer, key=peer.get)
        self.peer = peer[self.peer_c]
        for c, v in peer.items():
            self.record("peer", "bullmq_c%d" % c, v, "deliveries/s", "%d jobs" % jobs)
        self.bullmq = subprocess.run(
            ["node", "-e", "console.log(require('%s/peers/node_modules/bullmq/package.json')"
             ".version)" % HERE], capture_output=True, text=True).stdout.strip()

    def summary(self):
        if not hasattr(self, "best"):
            return
        print("\n== one run, one machine: %d CPUs shared by hookd, redis-server, nginx and the "
              "load generators" % os.cpu_count())
        print("%-48s %14s %12s" % ("", "deliveries/s", "hookd / it"))
        print("%-48s %14.0f %12s" % ("hookd, workers=2, max_in_flight=%d" % self.best_m,
                                     self.best, "1.00"))
        if hasattr(self, "ceiling"):
            print("%-48s %14.0f %12.2f" % ("ceiling: wrk -c64 POST, same body and nginx",
                                           self.ceiling, self.best / self.ceiling))
            self.record("ratio", "hookd/ceiling", self.best / self.ceiling, "")
        if hasattr(self, "peer"):
            print("%-48s %14.0f %12.2f" % ("peer: BullMQ %s, concurrency %d" % (
                self.bullmq, self.peer_c), self.peer, self.best / self.peer))
            self.record("ratio", "hookd/bullmq", self.best / self.peer, "")

    def run_sweep(self):
        workers = [1, 2]
        mfs = [16, 256] if self.a.tiny else [16, 64, 256, 1024, 4096]
        jobs = self.a.jobs if self.a.tiny else max(self.a.jobs // 2, 2000)
        points = [(w, m) for w in workers for m in mfs]
        runs = alternate(self.a.runs, *[lambda w=w, m=m: self.hookd(jobs, w, m)
                                        for w, m in points])
        csv_path = self.out("sweep.csv")
        print("\n== sweep: %d jobs per point, medians of %d" % (jobs, self.a.runs))
        print("%-8s %-13s %12s %8s %8s" % ("workers", "max_in_flight", "deliveries/s",
                                            "p99 ms", "RSS MB"))
        with open(csv_path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["workers", "max_in_flight", "deliveries_per_s", "p50_ms", "p99_ms",
                        "rss_mb", "cpu_hookd_per_10k"])
            for (wk, m), rs in zip(points, runs):
                row = [wk, m] + [round(median_of(rs, k), 2) for k in
                                 ("rate", "p50", "p99", "rss_mb", "cpu_hookd_per_10k")]
                w.writerow(row)
                print("%-8d %-13d %12.0f %8.0f %8.1f" % (wk, m, row[2], row[4], row[5]))
        png = self.out("sweep.png")
        plot = """
set terminal pngcairo size 1000,420 font ",10"
set output '%(png)s'
set datafile separator ','
set key autotitle columnhead
set logscale x 2
set multiplot layout 1,2 title "hookd sweep: %(jobs)d jobs of 1 KB to nginx, %(cpus)d CPUs shared"
set xlabel 'max\\_in\\_flight (per worker)'
set ylabel 'deliveries/s'
set yrange [0:*]
plot '%(csv)s' using 2:($1==1?$3:1/0) with linespoints title 'workers=1', \\
     '%(csv)s' using 2:($1==2?$3:1/0) with linespoints title 'workers=2'
set ylabel 'p99 enqueue-to-2xx (ms)'
plot '%(csv)s' using 2:($1==1?$5:1/0) with linespoints title 'workers=1', \\
     '%(csv)s' using 2:($1==2?$5:1/0) with linespoints title 'workers=2'
unset multiplot
""" % {"png": png, "csv": csv_path, "jobs": jobs, "cpus": os.cpu_count()}
        subprocess.run(["gnuplot"], input=plot, text=True, check=True)
        print("written: %s, %s" % (os.path.relpath(csv_path), os.path.relpath(png)))

    def run_latency(self):
        rate = max(100, int(self.best * 0.5))
        seconds = self.a.latency_s
        res = [self.latency_once(rate, seconds) for _ in range(self.a.runs)]
        med = {k: statistics.median(x[k] for x in res) for k in res[0]}
        print("\n== latency at a fixed %d jobs/s (50%% of %.0f) for %d s, workers=2, "
              "max_in_flight=%d: enqueue-to-2xx p50 %.1f ms, p99 %.1f ms, max %.1f ms "
              "(medians of %d; runs p99: %s)" % (
                  rate, self.best, seconds, self.best_m, med["p50"], med["p99"], med["max"],
                  self.a.runs, ", ".join("%.0f" % x["p99"] for x in res)))
        for k in ("p50", "p99", "max"):
            self.record("latency", k, med[k], "ms", "%d jobs/s" % rate)

    def latency_once(self, rate, seconds):
        """hookd idles on an empty queue; a producer pushes rate jobs/s in
        1 ms ticks, each stamped with its push time."""
        r, p = self.p.r, self.p
        prefix = "lat%d" % int(time.time() * 1000)
        h = p.start_hookd(prefix, {"workers": 2, "max_in_flight": self.best_m,
                                   "max_per_host": self.best_m})
        off = p.log_offset()
        total = int(rate * seconds)
        tick = 0.001
        sent, start = 0, time.monotonic()
        while sent < total:
            due = min(total, int((time.monotonic() - start) * rate) + 1)
            if due > sent:
                now_ms = int(time.time() * 1000)
                r.lpush(prefix + ":queue", *[lib.job_json(i, p.url, now_ms)
                                              for i in range(sent, due)])
                sent = due
            time.sleep(tick)    # pacing the producer, not waiting for hookd
        lib.wait_for(lambda: int(r.hget(prefix + ":stats", "delivered") or 0) >= total, 120,
                     "latency-mode deliveries")
        h.terminate()
        h.wait(timeout=60)
        lat = p.latencies(off, total, 0)
        p.clean(prefix)
        return {"p50": lib.percentile(lat, 0.5), "p99": lib.percentile(lat, 0.99),
                "max": lat[-1]}

    def run_memory(self):
        r, p = self.p.r, self.p
        n_flight = 200 if self.a.tiny else 1000
        hang = p.hang_url()
        port = hang.rsplit(":", 1)[1].split("/")[0]
        prefix = "mem%d" % int(time.time() * 1000)
        h = p.start_hookd(prefix, {"workers": 1, "max_in_flight": n_flight,
                                   "max_per_host": n_flight, "timeout": "300s",
                                   "shutdown_timeout": "2s"})
        wpid = lib.children(h.pid)[0]
        idle = lib.rss_mb(wpid)

        def established():
            out = subprocess.run(["ss", "-Htn", "state", "established", "dport", "=",
                                  ":" + port], capture_output=True, text=True).stdout
            return len(out.splitlines()) >= n_flight
        lib.load(r, prefix + ":queue", n_flight, lambda i: hang)
        lib.wait_for(established, 60, "%d connections in flight" % n_flight, interval=0.05)
        busy = lib.rss_mb(wpid)
        lib.load(r, prefix + ":queue", self.a.jobs * 10, lambda i: hang)
        deep = lib.rss_mb(wpid)
        h.terminate()
        h.wait(timeout=60)
        p.clean(prefix)
        print("\n== memory of one worker: idle RSS %.1f MB; %d requests in flight (1 KB "
              "payloads, endpoint never answers): RSS %.1f MB (private %.1f MB, the rest "
              "shared library pages); with %d more jobs queued: RSS %.1f MB" % (
                  idle["rss"], n_flight, busy["rss"], busy["private"], self.a.jobs * 10,
                  deep["rss"]))
        self.record("memory", "rss_idle", idle["rss"], "MB")
        self.record("memory", "rss_%d_in_flight" % n_flight, busy["rss"], "MB")
        self.record("memory", "private_%d_in_flight" % n_flight, busy["private"], "MB")
        self.record("memory", "rss_%d_in_flight_deep_queue" % n_flight, deep["rss"], "MB")

    def run_depth(self):
        small, big = self.a.jobs, self.a.jobs * 10
        runs_small, runs_big = alternate(self.a.runs if not self.a.tiny else 1,
                                         lambda: self.hookd(small, in_flight=self.best_m),
                                         lambda: self.hookd(big, in_flight=self.best_m))
        rs, rb = median_of(runs_small), median_of(runs_big)
        print("\n== depth: %d queued jobs drain at %.0f/s, %d at %.0f/s: ratio %.2f "
              "(runs: %s | %s)" % (small, rs, big, rb, rb / rs,
                                   ", ".join("%.0f" % x["rate"] for x in runs_small),
                                   ", ".join("%.0f" % x["rate"] for x in runs_big)))
        self.record("depth", "rate_%d" % small, rs, "deliveries/s")
        self.record("depth", "rate_%d" % big, rb, "deliveries/s")
        self.record("depth", "ratio", rb / rs, "")

    def run_retries(self):
        r, n = self.p.r, self.a.jobs * 10
        envelopes(r, "bench:pending-template", n, self.p.url, int(time.time() * 1000) + 3600e3)

        def with_pending(prefix):
            r.copy("bench:pending-template", prefix + ":retry")
        base, pending = alternate(self.a.runs if not self.a.tiny else 1,
                                  lambda: self.hookd(in_flight=self.best_m),
                                  lambda: self.hookd(in_flight=self.best_m,
                                                     prepare=with_pending))
        b, pnd = median_of(base), median_of(pending)
        print("\n== pending retries: %d fresh jobs at %.0f/s with none pending, %.0f/s with "
              "%d pending (due in an hour): %+.1f%%" % (
                  self.a.jobs, b, pnd, n, 100 * (pnd / b - 1)))
        self.record("retries", "fresh_rate_no_pending", b, "deliveries/s")
        self.record("retries", "fresh_rate_%d_pending" % n, pnd, "deliveries/s")
        # promotion: every pending entry falls due at once
        rates = []
        for _ in range(self.a.runs if not self.a.tiny else 1):
            rates.append(self.promotion(n))
        pr = statistics.median(rates)
        print("== promotion: %d retries falling due at once leave the sorted set at %.0f/s "
              "(runs: %s)" % (n, pr, ", ".join("%.0f" % x for x in rates)))
        self.record("retries", "promotion_rate", pr, "entries/s", "%d due" % n)
        r.unlink("bench:pending-template")

    def promotion(self, n):
        r, p = self.p.r, self.p
        prefix = "prom%d" % int(time.time() * 1000)
        # all due: scores set to 0 server-side
        r.zunionstore(prefix + ":staging", {"bench:pending-template": 0})
        h = p.start_hookd(prefix, {"workers": 2, "shutdown_timeout": "3s"})
        t0 = time.monotonic()
        r.rename(prefix + ":staging", prefix + ":retry")
        lib.wait_for(lambda: r.zcard(prefix + ":retry") == 0, 600, "retry set drained",
                     interval=0.002)
        dt = time.monotonic() - t0
        h.terminate()
        h.wait(timeout=60)
        p.clean(prefix)
        return n / dt

    def run_fairness(self):
        hang = self.p.hang_url()
        n = self.a.jobs
        healthy = lambda i: i % 10 != 0      # noqa: E731
        url_of = lambda i: self.p.url if healthy(i) else hang   # noqa: E731
        n_ok = sum(1 for i in range(n) if healthy(i))
        # default max_per_host (64) and timeout (30 s): the shipped behaviour;
        # both runs deliver n_ok jobs to nginx
        allok, mixed = alternate(
            self.a.runs,
            lambda: self.p.run_hookd(n_ok, 2, 1000, ()),
            lambda: self.p.run_hookd(n, 2, 1000, (), url_of=url_of, healthy=healthy))
        a, m = median_of(allok), median_of(mixed)
        print("\n== fairness: %d jobs, workers=2, max_in_flight=1000, max_per_host=64; "
              "healthy deliveries/s all healthy %.0f, with 10%% to a hung endpoint %.0f: "
              "%.0f%% (runs: %s | %s)" % (n, a, m, 100 * m / a,
                                          ", ".join("%.0f" % x["rate"] for x in allok),
                                          ", ".join("%.0f" % x["rate"] for x in mixed)))
        self.record("fairness", "healthy_rate_all_healthy", a, "deliveries/s")
        self.record("fairness", "healthy_rate_10pct_hung", m, "deliveries/s")
        self.record("fairness", "ratio", m / a, "")

    def run_dedupe(self):
        """What dedupe_window (on by default: every bench job has an id)
        costs: the same jobs with it on and off, alternating; and the Redis
        memory one remembered id takes."""
        on, off = alternate(self.a.runs,
                            lambda: self.hookd(in_flight=self.best_m),
                            lambda: self.hookd(in_flight=self.best_m,
                                               settings=["dedupe_window=0"]))
        mon, moff = ({k: median_of(rs, k) for k in rs[0]} for rs in (on, off))
        r, n = self.p.r, 10000
        before = r.info("memory")["used_memory"]
        r.eval("for i = 1, tonumber(ARGV[1]) do redis.call('SET', 'dd:seen:b' .. i, "
               "'vm:12345:1795751106855:' .. i, 'PX', 86400000) end", 0, n)
        per_id = (r.info("memory")["used_memory"] - before) / n
        self.p.clean("dd")
        print("\n== dedupe_window: deliveries/s on %.0f, off %.0f (%+.1f%%); Redis CPU per "
              "10k %.2fs vs %.2fs; round trips per delivery %.3f vs %.3f; %.0f bytes of Redis "
              "memory per remembered id (runs: %s | %s)" % (
                  mon["rate"], moff["rate"], 100 * (mon["rate"] / moff["rate"] - 1),
                  mon["cpu_redis_per_10k"], moff["cpu_redis_per_10k"],
                  mon["rt_per_delivery"], moff["rt_per_delivery"], per_id,
                  ", ".join("%.0f" % x["rate"] for x in on),
                  ", ".join("%.0f" % x["rate"] for x in off)))
        self.record("dedupe", "rate_on", mon["rate"], "deliveries/s")
        self.record("dedupe", "rate_off", moff["rate"], "deliveries/s")
        self.record("dedupe", "redis_cpu_per_10k_on", mon["cpu_redis_per_10k"], "s")
        self.record("dedupe", "redis_cpu_per_10k_off", moff["cpu_redis_per_10k"], "s")
        self.record("dedupe", "bytes_per_id", per_id, "bytes")

    def run_internet(self):
        tiny = self.a.tiny
        internet.Profile(self.p, self.out, self.record,
                         jobs=1000 if tiny else self.a.internet_jobs, runs=self.a.runs,
                         cases=internet.TINY_CASES if tiny else internet.DEFAULT_CASES,
                         tiny=tiny).run()

    def run_redis(self):
        redis_modes.Modes(self.p, self.out, self.record,
                          jobs=2000 if self.a.tiny else self.a.redis_jobs, runs=self.a.runs).run()

    def write_csv(self):
        print()
        lib.write_rows(self.out("suite.csv"), self.rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=100000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--latency-s", type=int, default=10)
    ap.add_argument("--internet-jobs", type=int, default=10000,
                    help="jobs per run of the internet section")
    ap.add_argument("--redis-jobs", type=int, default=200000,
                    help="jobs per run of the redis section")
    ap.add_argument("--tiny", action="store_true", help="CI: every section at toy size")
    ap.add_argument("--only", nargs="+", choices=SECTIONS, default=SECTIONS)
    args = ap.parse_args()
    if args.tiny:
        args.jobs, args.runs, args.latency_s = 2000, 1, 2

    with lib.Peers() as peers:
        s = Suite(args, peers)
        print("machine: %d CPUs, %s; %s" % (
            os.cpu_count(), os.uname().release,
            subprocess.run([lib.HOOKD, "--version"], capture_output=True,
                           text=True).stdout.strip()))
        if set(args.only) - STANDALONE:
            s.run_hookd()   # every other section but internet uses its best setting
        for name in args.only:
            if name != "hookd":
                getattr(s, "run_" + name)()
        s.summary()
        s.write_csv()


if __name__ == "__main__":
    main()
