#!/usr/bin/python3
"""bench/retries.py -- how punctual retries are under light load.

M jobs at a light, steady rate to a receiver that fails each job's first
attempt; with retry_schedule = 300ms, reports how late each second attempt
arrives compared with first attempt + 300 ms (p50, p99, max), as seen by the
receiver. (Promotion speed is measured by bench/suite.py's retries section.)

usage: bench/retries.py [--jobs M] [--rate R]
"""
import argparse
import json
import os
import sys
import time


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import SECRET, Procs, wait_for  # noqa: E402


def punctuality(p, args):
    port, r = p.redis()
    recv = p.receiver()
    prefix = "bl"
    p.hookd({"redis": "redis://127.0.0.1:%d" % port, "prefix": prefix, "workers": 2,
             "secret": SECRET, "retry_schedule": "300ms", "log_level": "error"},
            name="punctual")
    wait_for(lambda: r.hlen(prefix + ":workers") == 2, 20, "workers")
    for i in range(args.jobs):
        r.lpush(prefix + ":queue", json.dumps({"id": "l%d" % i, "url": recv.url + "?fail_first=1",
                                                "payload": {"i": i}}))
        time.sleep(1.0 / args.rate)      # the arrival rate being measured, not a wait
    wait_for(lambda: len(recv.stats()["succeeded"]) >= args.jobs, 60, "all delivered")
    times = recv.stats()["times"]
    late = sorted(t[1] - t[0] - 300 for t in times.values())
    q = lambda f: late[min(len(late) - 1, int(f * len(late)))]
    print("retry punctuality: %d retries due 300 ms after the first attempt, at %d jobs/s: "
          "late by p50 %d ms, p99 %d ms, max %d ms" % (len(late), args.rate, q(0.5), q(0.99),
                                                        late[-1]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--rate", type=int, default=200)
    args = ap.parse_args()
    p = Procs()
    try:
        punctuality(p, args)
    finally:
        p.close()


if __name__ == "__main__":
    main()
