#!/usr/bin/python3
"""bench/throughput.py -- deliveries per second, hookd draining a full queue.

Starts a private redis-server and a private nginx (`return 200`) on free
127.0.0.1 ports, loads N jobs with a ~1 KB JSON payload into a staging list,
starts hookd and waits until its workers are registered, then moves the
whole list onto the queue with one RENAME and measures until `delivered`
reaches N. Reports deliveries/s and the CPU seconds each component used
(hookd workers, redis-server, nginx), read from /proc. Runs each
configuration `--runs` times and prints the median. Not a test: nothing is
asserted about speed.

usage: bench/throughput.py [--jobs N] [--runs R] [--workers W] [--in-flight M ...]
                           [--set KEY=VALUE ...]   (extra hookd settings)
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOOKD = os.environ.get("HOOKD_BIN", os.path.join(ROOT, "build", "hookd"))
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def redis_calls(r):
    """Round trips hookd made: the commands it sends are EVAL (every script)
    and BLMOVE (XADD only for logged attempts: none in this bench). Redis's
    commandstats also count commands run inside scripts; those are not
    round trips and are left out."""
    stats = r.info("commandstats")
    return sum(stats.get("cmdstat_" + c, {}).get("calls", 0)
               for c in ("eval", "evalsha", "blmove"))


def children(pid):
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        return [int(x) for x in out.split()]
    except OSError:
        return []


def wait_for(cond, timeout, what):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise SystemExit("timed out waiting for " + what)
        time.sleep(0.005)


def start_nginx(d, port):
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""
worker_processes 1;
pid %s/nginx.pid;
error_log %s/nginx-error.log;
daemon off;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  client_body_buffer_size 16k;
  client_body_temp_path %s;
  server {
    listen 127.0.0.1:%d;
    location / { return 200 '{"received":true}'; }
  }
}
""" % (d, d, d, port))
    return subprocess.Popen(["nginx", "-c", conf, "-p", d], stderr=subprocess.DEVNULL)


def one_run(args, in_flight, r, rport, nginx_url, nginx_pids, redis_pid, d):
    prefix = "bench%d" % int(time.time() * 1000)
    body = {"success": True, "callData": {"id": "call_x", "duration": 180,
            "summary": "x" * 800, "metricJson": {"confidence": 0.95}}}
    pipe = r.pipeline(transaction=False)
    for i in range(args.jobs):
        body["callData"]["id"] = "call_%d" % i
        pipe.lpush(prefix + ":staging", json.dumps(
            {"id": "b%d" % i, "url": nginx_url, "payload": body}))
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    job_bytes = len(r.lindex(prefix + ":staging", 0))
    conf = os.path.join(d, "hookd.conf")
    with open(conf, "w") as f:
        f.write("redis = redis://127.0.0.1:%d\nprefix = %s\nworkers = %d\n"
                "max_in_flight = %d\nsecret = whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"
                "log_level = warn\n" % (rport, prefix, args.workers, in_flight))
        for kv in args.set:
            f.write(kv.replace("=", " = ", 1) + "\n")
    log = open(os.path.join(d, "hookd.log"), "w")
    h = subprocess.Popen([HOOKD, "-c", conf], stderr=log)
    wait_for(lambda: r.hlen(prefix + ":workers") == args.workers, 20, "workers")
    workers = children(h.pid)
    calls0 = redis_calls(r)
    c0 = (cpu_seconds(workers), cpu_seconds([redis_pid]), cpu_seconds(nginx_pids))
    t0 = time.monotonic()
    r.rename(prefix + ":staging", prefix + ":queue")
    wait_for(lambda: int(r.hget(prefix + ":stats", "delivered") or 0) >= args.jobs, 600,
             "deliveries")
    dt = time.monotonic() - t0
    c1 = (cpu_seconds(workers), cpu_seconds([redis_pid]), cpu_seconds(nginx_pids))
    calls = redis_calls(r) - calls0
    h.send_signal(signal.SIGTERM)
    h.wait(timeout=60)
    dead = r.llen(prefix + ":dead")
    for k in r.scan_iter(prefix + ":*"):
        r.delete(k)
    return {"rate": args.jobs / dt, "seconds": dt, "dead": dead, "job_bytes": job_bytes,
            "calls_per_delivery": calls / args.jobs,
            "cpu_hookd": c1[0] - c0[0], "cpu_redis": c1[1] - c0[1],
            "cpu_nginx": c1[2] - c0[2]}


class Peers:
    """A private redis-server and nginx (`return 200`) on free 127.0.0.1
    ports, in a temp dir; stopped and removed on exit. Shared by the bench
    scripts."""

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="hookd-bench-")
        self.rport, self.nport = free_port(), free_port()
        self.redis_proc = subprocess.Popen(
            ["redis-server", "--port", str(self.rport), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir,
             "--logfile", os.path.join(self.dir, "redis.log")])
        self.nginx_proc = start_nginx(self.dir, self.nport)
        self.r = redis.Redis(host="127.0.0.1", port=self.rport)
        wait_for(lambda: _ping(self.r), 10, "redis")
        wait_for(lambda: _connect(self.nport), 10, "nginx")
        self.url = "http://127.0.0.1:%d/hook" % self.nport
        self.nginx_pids = [self.nginx_proc.pid] + children(self.nginx_proc.pid)
        return self

    def run_hookd(self, args, in_flight):
        return one_run(args, in_flight, self.r, self.rport, self.url, self.nginx_pids,
                       self.redis_proc.pid, self.dir)

    def __exit__(self, *exc):
        self.nginx_proc.send_signal(signal.SIGQUIT)
        self.redis_proc.terminate()
        self.nginx_proc.wait(timeout=10)
        self.redis_proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=100000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--in-flight", type=int, nargs="+", default=[1000])
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()

    with Peers() as peers:
        print("machine: %d CPUs; %d jobs per run, %d runs, workers=%d; receiver: nginx "
              "(1 worker) return 200; settings: %s" % (os.cpu_count(), args.jobs, args.runs,
                                                      args.workers, " ".join(args.set) or "-"))
        print("%-13s %12s %9s %9s %9s %9s %9s" % ("max_in_flight", "deliveries/s", "hookd cpu",
                                                  "redis cpu", "nginx cpu", "wall s",
                                                  "rt/dlv"))
        for m in args.in_flight:
            runs = [peers.run_hookd(args, m) for _ in range(args.runs)]
            med = sorted(runs, key=lambda x: x["rate"])[len(runs) // 2]
            if any(x["dead"] for x in runs):
                print("warning: dead-lettered jobs in a run", file=sys.stderr)
            print("%-13d %12.0f %8.2fs %8.2fs %8.2fs %9.2f %9.3f   (runs: %s; job %d bytes)" % (
                m, med["rate"], med["cpu_hookd"], med["cpu_redis"], med["cpu_nginx"],
                med["seconds"], med["calls_per_delivery"],
                ", ".join("%.0f" % x["rate"] for x in runs), med["job_bytes"]))


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


if __name__ == "__main__":
    main()
