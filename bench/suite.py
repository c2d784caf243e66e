#!/usr/bin/python3
"""bench/suite.py -- hookd against its ceiling and a peer, in one run.

On one private redis-server and one private nginx (`return 200`):
  ceiling  wrk POSTing the same 1 KB body with keep-alive (no queue, no signing)
  peer     a BullMQ worker doing the same job (bench/peers/bullmq.js), at its
           best concurrency among 16, 64, 256
  hookd    draining N queued jobs (bench/throughput.py's measurement)
Prints one table with hookd/ceiling and hookd/peer, and writes it as CSV
under bench/results/ (ignored by git). Medians of --runs runs each.

usage: bench/suite.py [--jobs N] [--runs R] [--in-flight M ...]
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import throughput  # noqa: E402


def wrk_rate(url, seconds):
    out = subprocess.run(["wrk", "-t1", "-c64", "-d%ds" % seconds, "-s",
                          os.path.join(HERE, "post.lua"), url],
                         capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def peer_rate(rport, url, jobs, concurrency):
    out = subprocess.run(["node", os.path.join(HERE, "peers", "bullmq.js"), "--redis-port",
                          str(rport), "--url", url, "--jobs", str(jobs), "--concurrency",
                          str(concurrency)], capture_output=True, text=True, check=True,
                         timeout=600).stdout
    return json.loads(out)["rate"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=100000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--in-flight", type=int, nargs="+", default=[256, 1000])
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    args.set = []

    with throughput.Peers() as peers:
        hookd = {m: statistics.median(peers.run_hookd(args, m)["rate"]
                                      for _ in range(args.runs))
                 for m in args.in_flight}
        best_m = max(hookd, key=hookd.get)
        wall = max(3, int(args.jobs / hookd[best_m] + 0.5))
        ceiling = statistics.median(wrk_rate(peers.url, wall) for _ in range(args.runs))
        peer_jobs = max(2000, args.jobs // 10)
        peer = {c: statistics.median(peer_rate(peers.rport, peers.url, peer_jobs, c)
                                     for _ in range(args.runs)) for c in (16, 64, 256)}
    best_c = max(peer, key=peer.get)
    bullmq = subprocess.run(["node", "-e", "console.log(require('%s/peers/node_modules/"
                             "bullmq/package.json').version)" % HERE],
                            capture_output=True, text=True).stdout.strip()

    print("machine: %d CPUs (shared by hookd, redis-server, nginx and the load generator); "
          "%d jobs, 1 KB bodies, medians of %d runs" % (os.cpu_count(), args.jobs, args.runs))
    print("%-44s %14s %10s" % ("", "deliveries/s", "hookd / x"))
    print("%-44s %14.0f %10s" % ("hookd, workers=%d, max_in_flight=%d" % (args.workers, best_m),
                                 hookd[best_m], "1.00"))
    for m in sorted(hookd):
        if m != best_m:
            print("%-44s %14.0f" % ("hookd, max_in_flight=%d" % m, hookd[m]))
    print("%-44s %14.0f %10.2f" % ("ceiling: wrk -c64 POST, same body and nginx", ceiling,
                                   hookd[best_m] / ceiling))
    print("%-44s %14.0f %10.2f" % ("peer: BullMQ %s, concurrency %d" % (bullmq, best_c),
                                   peer[best_c], hookd[best_m] / peer[best_c]))
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", "suite-%d.csv" % int(time.time()))
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["system", "concurrency", "deliveries_per_s"])
        w.writerows([("hookd", best_m, hookd[best_m]), ("wrk", 64, ceiling),
                     ("bullmq", best_c, peer[best_c])])
    print("written: %s" % os.path.relpath(path))

if __name__ == "__main__":
    main()
