#!/usr/bin/python3
"""bench/ab.py -- two hookd builds, A and B, on the same setting: drain N
jobs with each in turn (A B A B ..., so the machine's drift hits both
alike), and print each side's median and B/A. For "no slower than before"
after a change: build the old commit into another directory and pass both
binaries.

usage: bench/ab.py --a OLD/hookd --b NEW/hookd [--jobs N] [--runs R]
                   [--workers W] [--in-flight M] [--set KEY=VALUE ...]
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

FIGURES = (("rate", "deliveries/s"), ("cpu_hookd_per_10k", "hookd cpu s/10k"),
           ("cpu_redis_per_10k", "redis cpu s/10k"), ("p50", "p50 ms"),
           ("rss_mb", "RSS MB"), ("rt_per_delivery", "rt/dlv"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True, help="the baseline hookd binary")
    ap.add_argument("--b", required=True, help="the hookd binary compared with it")
    ap.add_argument("--jobs", type=int, default=50000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--in-flight", type=int, default=256)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()

    runs = {"a": [], "b": []}
    with lib.Peers() as peers:
        print("machine: %d CPUs; %d jobs per run, %d runs each, alternating; workers=%d "
              "max_in_flight=%d; settings: %s" % (os.cpu_count(), args.jobs, args.runs,
                                                  args.workers, args.in_flight,
                                                  " ".join(args.set) or "-"))
        for i in range(args.runs):
            for side in ("a", "b") if i % 2 == 0 else ("b", "a"):
                res = peers.run_hookd(args.jobs, args.workers, args.in_flight, args.set,
                                      binary=getattr(args, side))
                if res["dead"]:
                    print("warning: dead-lettered jobs in a run of %s" % side, file=sys.stderr)
                runs[side].append(res)
                print("  run %d %s: %.0f deliveries/s, %.2f s hookd cpu per 10k" % (
                    i + 1, side.upper(), res["rate"], res["cpu_hookd_per_10k"]), flush=True)
    print("%-18s %12s %12s %8s" % ("median", "A", "B", "B/A"))
    for key, name in FIGURES:
        a = statistics.median(r[key] for r in runs["a"])
        b = statistics.median(r[key] for r in runs["b"])
        print("%-18s %12.2f %12.2f %8.3f" % (name, a, b, b / a if a else float("nan")))
    spread = {s: (min(r["rate"] for r in runs[s]), max(r["rate"] for r in runs[s]))
              for s in runs}
    print("deliveries/s range: A %.0f..%.0f, B %.0f..%.0f (noise: compare B/A with these)" % (
        spread["a"] + spread["b"]))


if __name__ == "__main__":
    main()
