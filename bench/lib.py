"""bench/lib.py -- what every hookd benchmark shares.

Peers: a private redis-server and a private nginx (`return 200`, 1 worker)
on free 127.0.0.1 ports, in a temp dir, stopped and removed on exit. nginx
logs, for every request carrying an `x-enq` header (hookd's bench jobs set
it to their enqueue time in ms), that time and its own time at the answer:
enqueue-to-2xx latency without a receiver of our own in the path.

Peers.run_hookd(...) is one measured drain: N jobs are loaded into a
staging list (multi-value LPUSH, pipelined), hookd is started and waits
until its workers are registered, then one RENAME makes them the queue and
the clock runs until `delivered` reaches the target. It reports
deliveries/s, latency percentiles, CPU seconds per component (from /proc),
peak RSS per worker (VmHWM), peak private memory per worker (sampled every
0.2 s during the drain) and Redis round trips per delivery (EVAL +
BLMOVE + WAIT calls from INFO commandstats). By default hookd talks to the
Peers' own redis-server; a RedisTarget points a drain at another one (a
primary with replicas, a TLS-only server: bench/redis_modes.py). Not a
test: nothing is asserted.
"""
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402
from harness import SECRET, free_port  # noqa: E402

HOOKD = os.environ.get("HOOKD_BIN", os.path.join(ROOT, "build", "hookd"))
TICK = os.sysconf("SC_CLK_TCK")
# The ~1 KB payload every bench job carries (the same body wrk and the
# BullMQ peer POST).
PAYLOAD = {"success": True, "callData": {"id": "call_x", "duration": 180,
                                         "summary": "x" * 800,
                                         "metricJson": {"confidence": 0.95}}}


def write_rows(path, rows):
    """The figures as CSV rows (section, name, value, unit, note); says where."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["section", "name", "value", "unit", "note"])
        w.writerows(rows)
    print("written: %s" % os.path.relpath(path))


def wait_for(cond, timeout, what, interval=0.005):
    """The test harness's wait_for, polling finer by default: drain times
    are read from when it returns."""
    return harness.wait_for(cond, timeout, what, interval)


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])   # utime + stime
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / TICK


def machine_busy_seconds():
    """CPU seconds the whole machine has spent busy (all CPUs, /proc/stat:
    everything but idle and iowait): with the processes measured subtracted,
    what others ran at the same time on a shared machine."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICK


def peak_rss_mb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except FileNotFoundError:
        pass
    return 0.0


def rss_mb(pid):
    """{"rss": resident MB, "private": MB not shared with other processes}."""
    out = {"rss": 0.0, "private": 0.0}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k == "Rss":
                out["rss"] = int(v.split()[0]) / 1024.0
            elif k in ("Private_Clean", "Private_Dirty"):
                out["private"] += int(v.split()[0]) / 1024.0
    return out


class MemSampler:
    """Samples the private memory (Private_Clean + Private_Dirty of
    /proc/PID/smaps_rollup) of some processes every `interval` seconds on a
    thread of its own, the first time one interval after it starts (not on a
    process still starting), keeping each one's largest; `stop()` returns the
    largest of them in MB, nan when no sample was taken (a process that ran
    for less than one interval). A process that is gone is skipped."""

    def __init__(self, pids, interval=0.2):
        self.pids = list(pids)
        self.interval = interval
        self.peak = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.wait(self.interval):
            for pid in self.pids:
                try:
                    self.peak[pid] = max(self.peak.get(pid, 0.0), rss_mb(pid)["private"])
                except (FileNotFoundError, ProcessLookupError, ValueError):
                    pass

    def stop(self):
        self.done.set()
        self.thread.join()
        return max(self.peak.values(), default=float("nan"))


def run_measured(argv, timeout=900, env=None):
    """Run argv to completion, sampling its private memory (MemSampler).
    Returns (stdout, CPU seconds, peak RSS MB from wait4's ru_maxrss,
    peak private MB, start time in ms since the epoch)."""
    t0_ms = time.time() * 1000
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         env=env)
    sampler = MemSampler([p.pid])
    timer = threading.Timer(timeout, p.kill)
    timer.start()
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    timer.cancel()
    p.returncode = os.waitstatus_to_exitcode(status)
    private = sampler.stop()
    return out, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0, private, t0_ms


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def redis_calls(r, commands=("eval", "evalsha", "blmove", "wait")):
    """Round trips hookd made: it sends EVAL (every script), BLMOVE and,
    with redis_wait_replicas, WAIT after each RECORD (XADD only for logged
    attempts: none here). commandstats also counts commands run inside
    scripts; those are not round trips and are left out."""
    stats = r.info("commandstats")
    return sum(stats.get("cmdstat_" + c, {}).get("calls", 0) for c in commands)


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def job_json(i, url, enq_ms):
    """One bench job; enq_ms goes into x-enq for the latency log."""
    body = dict(PAYLOAD, callData=dict(PAYLOAD["callData"], id="call_%d" % i))
    return json.dumps({"id": "b%d" % i, "url": url, "payload": body,
                       "headers": {"x-enq": str(enq_ms)}})


def load(r, key, n, url_of, chunk=500):
    """LPUSH n jobs onto key, many values per command, pipelined. Their
    x-enq is the time of loading (never 0: nginx logs only non-zero)."""
    enq_ms = int(time.time() * 1000)
    pipe = r.pipeline(transaction=False)
    for start in range(0, n, chunk):
        pipe.lpush(key, *[job_json(i, url_of(i), enq_ms) for i in range(start, min(n, start + chunk))])
        if (start // chunk) % 20 == 19:
            pipe.execute()
    pipe.execute()


def _ping(r):
    try:
        return r.ping()
    except redis.exceptions.ConnectionError:
        return False


def _connect(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


NGINX_CONF = """
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/nginx-error.log;
daemon off;
events { worker_connections 16384; }
http {
  log_format enq '$http_x_enq $msec';
  access_log %(d)s/enq.log enq buffer=256k flush=100ms if=$http_x_enq;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  client_body_buffer_size 16k;
  client_body_temp_path %(d)s;
  server {
    listen 127.0.0.1:%(port)d backlog=4096;
    location / { return 200 '{"received":true}'; }
  }
}
"""


class RedisTarget:
    """A redis-server hookd is pointed at: r, a client for it; conf, the
    hookd settings reaching it (redis = URL, redis_ca_file ...); pids, the
    processes whose CPU counts as Redis's (the primary); other_pids, more
    processes measured apart (its replicas)."""

    def __init__(self, r, conf, pids, other_pids=()):
        self.r = r
        self.conf = dict(conf)
        self.pids = list(pids)
        self.other_pids = list(other_pids)


class Peers:
    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="hookd-bench-")
        self.rport, self.nport = free_port(), free_port()
        self.redis_proc = subprocess.Popen(
            ["redis-server", "--port", str(self.rport), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir,
             "--logfile", os.path.join(self.dir, "redis.log")])
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF % {"d": self.dir, "port": self.nport})
        self.nginx_proc = subprocess.Popen(["nginx", "-c", conf, "-p", self.dir],
                                           stderr=subprocess.DEVNULL)
        self.r = redis.Redis(host="127.0.0.1", port=self.rport)
        self.target = RedisTarget(self.r, {"redis": "redis://127.0.0.1:%d" % self.rport},
                                  [self.redis_proc.pid])
        wait_for(lambda: _ping(self.r), 10, "redis")
        wait_for(lambda: _connect(self.nport), 10, "nginx")
        self.url = "http://127.0.0.1:%d/hook" % self.nport
        self.nginx_pids = [self.nginx_proc.pid] + children(self.nginx_proc.pid)
        self.enq_log = os.path.join(self.dir, "enq.log")
        self.hang = None
        return self

    def hang_url(self):
        """An endpoint that accepts connections and never answers (a listening
        socket nobody accepts on: the kernel completes the handshakes)."""
        if self.hang is None:
            self.hang = socket.socket()
            self.hang.bind(("127.0.0.1", 0))
            self.hang.listen(4096)
        return "http://127.0.0.1:%d/hook" % self.hang.getsockname()[1]

    def log_offset(self):
        return os.path.getsize(self.enq_log) if os.path.exists(self.enq_log) else 0

    def latencies(self, offset, count, t0_ms):
        """Enqueue-to-2xx latencies (ms) of the next count log lines after
        offset; a job enqueued before t0_ms (staged before the clock
        started) counts from t0_ms."""
        def lines():
            if not os.path.exists(self.enq_log):
                return None
            with open(self.enq_log) as f:
                f.seek(offset)
                got = f.read().splitlines()
            return got if len(got) >= count else None
        got = wait_for(lines, 30, "nginx's latency log", interval=0.05)
        out = []
        for line in got:
            enq, at = line.split()
            out.append(float(at) * 1000 - max(int(enq), t0_ms))
        out.sort()
        return out

    def run_hookd(self, jobs, workers=2, in_flight=1000, settings=(), url_of=None,
                  healthy=None, prepare=None, log_latency=True, binary=None, server=None):
        """One measured drain of `jobs` jobs (see the module comment).
        url_of(i) picks each job's URL (default: nginx); healthy(i) says
        which ones the clock waits for (default: all); prepare(prefix) runs
        before hookd starts (e.g. to fill its retry set); log_latency=False
        when the jobs do not go to this nginx; binary: another hookd build
        (default: HOOKD_BIN or build/hookd); server: the RedisTarget hookd
        uses (default: the Peers' redis-server)."""
        server = server or self.target
        r = server.r
        url_of = url_of or (lambda i: self.url)
        target = jobs if healthy is None else sum(1 for i in range(jobs) if healthy(i))
        prefix = "bench%d" % int(time.time() * 1000)
        load(r, prefix + ":staging", jobs, url_of)
        if prepare is not None:
            prepare(prefix)
        conf = {"workers": workers, "max_in_flight": in_flight, "shutdown_timeout": "3s"}
        conf.update(kv.split("=", 1) for kv in settings)
        h = self.start_hookd(prefix, conf, binary, server)
        pids = children(h.pid)
        calls0, waits0 = redis_calls(r), redis_calls(r, ("wait",))
        c0 = (cpu_seconds(pids), cpu_seconds(server.pids), cpu_seconds(self.nginx_pids),
              cpu_seconds(server.other_pids), machine_busy_seconds())
        off = self.log_offset()
        sampler = MemSampler(pids)
        t0_ms = time.time() * 1000
        t0 = time.monotonic()
        r.rename(prefix + ":staging", prefix + ":queue")
        wait_for(lambda: int(r.hget(prefix + ":stats", "delivered") or 0) >= target, 1800,
                 "deliveries")
        dt = time.monotonic() - t0
        private = sampler.stop()
        c1 = (cpu_seconds(pids), cpu_seconds(server.pids), cpu_seconds(self.nginx_pids),
              cpu_seconds(server.other_pids), machine_busy_seconds())
        calls, waits = redis_calls(r) - calls0, redis_calls(r, ("wait",)) - waits0
        rss = [peak_rss_mb(p) for p in pids]
        h.send_signal(signal.SIGTERM)
        h.wait(timeout=60)
        lat = self.latencies(off, target, t0_ms) if log_latency else []
        res = {"rate": target / dt, "seconds": dt, "jobs": target,
               "dead": r.llen(prefix + ":dead"),
               "rt_per_delivery": calls / target, "wait_calls": waits,
               "cpu_hookd_per_10k": (c1[0] - c0[0]) * 10000 / target,
               "cpu_redis_per_10k": (c1[1] - c0[1]) * 10000 / target,
               "cpu_nginx_per_10k": (c1[2] - c0[2]) * 10000 / target,
               "cpu_replicas_per_10k": (c1[3] - c0[3]) * 10000 / target,
               # CPUs' worth the rest of the machine kept busy during the drain
               # (this script's polling included: small)
               "others_cpus": (c1[4] - c0[4] - sum(b - a for a, b in zip(c0[:4], c1[:4])))
               / dt,
               "rss_mb": max(rss) if rss else 0.0, "private_mb": private, "t0_ms": t0_ms,
               "p50": percentile(lat, 0.5), "p99": percentile(lat, 0.99),
               "max": lat[-1] if lat else float("nan")}
        self.clean(prefix, r)
        return res

    def start_hookd(self, prefix, settings, binary=None, server=None):
        """Start hookd on this Redis (or server's, a RedisTarget) with key
        prefix and settings (a dict: workers, max_in_flight, ...); return
        once its workers registered."""
        server = server or self.target
        conf = os.path.join(self.dir, prefix + ".conf")
        with open(conf, "w") as f:
            f.write("prefix = %s\nsecret = %s\nlog_level = warn\n" % (prefix, SECRET))
            for k, v in list(server.conf.items()) + list(settings.items()):
                f.write("%s = %s\n" % (k, v))
        with open(os.path.join(self.dir, "hookd.log"), "a") as log:
            h = subprocess.Popen([binary or HOOKD, "-c", conf], stderr=log)
        workers = int(settings.get("workers", 1))
        wait_for(lambda: server.r.hlen(prefix + ":workers") == workers, 20, "workers")
        return h

    def clean(self, prefix, r=None):
        r = r or self.r
        for k in r.scan_iter(prefix + ":*", count=1000):
            r.unlink(k)

    def __exit__(self, *exc):
        if self.hang is not None:
            self.hang.close()
        self.nginx_proc.send_signal(signal.SIGQUIT)
        self.redis_proc.terminate()
        self.nginx_proc.wait(timeout=10)
        self.redis_proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)
