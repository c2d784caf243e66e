#!/usr/bin/python3
"""bench/throughput.py -- one hookd setting, ad hoc: drain N jobs against the
private nginx of bench/lib.py and print what bench/suite.py prints per run
(deliveries/s, latency, CPU per 10,000 deliveries, peak RSS per worker, Redis
round trips per delivery). For A/B work on one setting; the full comparison
is bench/suite.py.

usage: bench/throughput.py [--jobs N] [--runs R] [--workers W] [--in-flight M ...]
                           [--set KEY=VALUE ...]   (extra hookd settings)
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=100000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--in-flight", type=int, nargs="+", default=[1000])
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()

    with lib.Peers() as peers:
        print("machine: %d CPUs; %d jobs per run, %d runs, workers=%d; settings: %s" % (
            os.cpu_count(), args.jobs, args.runs, args.workers, " ".join(args.set) or "-"))
        print("%-13s %12s %7s %7s %9s %9s %9s %7s %7s" % (
            "max_in_flight", "deliveries/s", "p50 ms", "p99 ms", "hookd cpu", "redis cpu",
            "nginx cpu", "RSS MB", "rt/dlv"))
        for m in args.in_flight:
            runs = [peers.run_hookd(args.jobs, args.workers, m, args.set)
                    for _ in range(args.runs)]
            med = sorted(runs, key=lambda x: x["rate"])[len(runs) // 2]
            if any(x["dead"] for x in runs):
                print("warning: dead-lettered jobs in a run", file=sys.stderr)
            print("%-13d %12.0f %7.0f %7.0f %8.2fs %8.2fs %8.2fs %7.1f %7.3f   (runs: %s)" % (
                m, med["rate"], med["p50"], med["p99"], med["cpu_hookd_per_10k"],
                med["cpu_redis_per_10k"], med["cpu_nginx_per_10k"], med["rss_mb"],
                med["rt_per_delivery"], ", ".join("%.0f" % x["rate"] for x in runs)))
        print("(CPU per 10,000 deliveries; RSS peak per worker)")


if __name__ == "__main__":
    main()
