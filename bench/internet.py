#!/usr/bin/python3
"""bench/internet.py -- hookd against endpoints as webhooks meet them on the
internet, all on 127.0.0.1: nginx over TLS (a CA this script generates),
answering over HTTP/2 or HTTP/1.1 only, each answer delayed with
echo_sleep (Debian's libnginx-mod-http-echo). Against each case, in the
same run and at the same requests in flight, the ceiling: h2load
(nghttp2-client) POSTing the same body to the same nginx; and the floor:
bench/curl_floor.c, the same POSTs through libcurl with nothing else, whose
CPU per request hookd's CPU per delivery is compared with.

First cut (issue 17): one origin per case; the 20-origin Zipf profile and
the BullMQ peer come next. Not a test: nothing asserted.

usage: bench/internet.py [--jobs N] [--runs R] [--cases h2-50ms,...]
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so"
FLOOR = os.path.join(os.path.dirname(os.path.abspath(lib.HOOKD)), "curl_floor")
# name: (HTTP/2 offered, answer delay in seconds)
CASES = {"h2-fast": (True, 0), "h2-50ms": (True, 0.05), "h2-200ms": (True, 0.2),
         "h1-fast": (False, 0), "h1-50ms": (False, 0.05)}

NGINX_CONF = """
load_module %(module)s;
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/nginx-error.log;
daemon off;
events { worker_connections 16384; }
http {
  access_log off;
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
    listen 127.0.0.1:%(port)d ssl%(h2)s backlog=4096;
    location / { echo_read_request_body; %(sleep)secho '{"received":true}'; }
  }
"""


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


class TlsOrigins:
    """A private nginx serving each case on its own port over TLS, with a CA
    made for the run (hookd trusts it through ca_file)."""

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
        self.ports = {name: lib.free_port() for name in cases}
        servers = "".join(SERVER % {"port": self.ports[n], "h2": " http2" if CASES[n][0] else "",
                                    "sleep": "echo_sleep %g; " % CASES[n][1] if CASES[n][1]
                                    else ""} for n in cases)
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF % {"module": ECHO_MODULE, "d": d, "servers": servers})
        self.proc = subprocess.Popen(["nginx", "-c", conf, "-p", d], stderr=subprocess.DEVNULL)
        for port in self.ports.values():
            lib.wait_for(lambda: lib._connect(port), 10, "nginx")
        with open(os.path.join(d, "body"), "w") as f:
            f.write(json.dumps(lib.PAYLOAD))

    def url(self, name):
        return "https://127.0.0.1:%d/hook" % self.ports[name]

    def h2load(self, name, n, in_flight):
        """Requests/s of h2load at in_flight requests: over HTTP/2 as 8
        connections of in_flight/8 streams, over HTTP/1.1 as in_flight
        connections."""
        h2 = CASES[name][0]
        conns = 8 if h2 else in_flight
        argv = ["h2load", "-n", str(n), "-c", str(conns), "-m", str(in_flight // conns),
                "-d", os.path.join(self.dir, "body"), "-H", "content-type: application/json",
                self.url(name)] + ([] if h2 else ["--h1"])
        out = subprocess.run(argv, capture_output=True, text=True, timeout=600).stdout
        m = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
        return float(m.group(1)) if m else float("nan")

    def floor(self, name, n, in_flight):
        """(requests/s, CPU µs per request) of bench/curl_floor.c: the same
        POSTs through libcurl with nothing else, one process."""
        out = subprocess.run([FLOOR, self.url(name), str(n), str(in_flight),
                              os.path.join(self.dir, "body"), self.ca],
                             capture_output=True, text=True, timeout=600).stdout.split()
        f = dict(zip(out[0::2], out[1::2]))
        return float(f.get("rate", "nan")), float(f.get("cpu_us_per_request", "nan"))

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--in-flight", type=int, default=1000, help="max_in_flight per worker")
    ap.add_argument("--cases", default="h2-50ms")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    cases = args.cases.split(",")
    total = args.workers * args.in_flight
    origins = TlsOrigins(cases)
    try:
        with lib.Peers() as peers:
            print("machine: %d CPUs; %d jobs per run, median of %d, alternating with h2load; "
                  "hookd workers=%d max_in_flight=%d (%d in flight), settings: %s" % (
                      os.cpu_count(), args.jobs, args.runs, args.workers, args.in_flight,
                      total, " ".join(args.set) or "defaults"))
            print("%-10s %11s %12s %6s %11s %11s %11s %6s" % (
                "case", "hookd dlv/s", "h2load req/s", "ratio", "floor req/s", "hookd us/dlv",
                "floor us/rq", "cpu x"))
            for name in cases:
                hookd, ceiling, cpu, floor, floor_cpu = [], [], [], [], []
                for _ in range(args.runs):
                    ceiling.append(origins.h2load(name, args.jobs, total))
                    fr, fc = origins.floor(name, args.jobs, args.in_flight)
                    floor.append(fr)
                    floor_cpu.append(fc)
                    res = peers.run_hookd(args.jobs, workers=args.workers,
                                          in_flight=args.in_flight,
                                          settings=["ca_file=" + origins.ca] + args.set,
                                          url_of=lambda i, u=origins.url(name): u,
                                          log_latency=False)
                    hookd.append(res["rate"])
                    cpu.append(res["cpu_hookd_per_10k"])
                h, c = statistics.median(hookd), statistics.median(ceiling)
                us = statistics.median(cpu) * 100       # s per 10k -> µs per delivery
                fus = statistics.median(floor_cpu)
                print("%-10s %11.0f %12.0f %6.2f %11.0f %11.1f %11.1f %6.2f" % (
                    name, h, c, h / c, statistics.median(floor), us, fus, us / fus))
    finally:
        origins.close()


if __name__ == "__main__":
    main()
