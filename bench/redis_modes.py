#!/usr/bin/python3
"""bench/redis_modes.py -- what the Redis deployment costs hookd (issue 19):
the same drain (bench/lib.py's run_hookd: N jobs of 1 KB to the suite's
nginx, workers=2, max_in_flight=1000, defaults otherwise) against Redis set
up four ways, each case on redis-servers of its own started for the run
(tests/integration/harness.py's Procs: no RDB, no AOF):

  plain     redis:// to a primary alone (the baseline)
  replica   redis:// to a primary with one replica attached (no AOF on
            the replica either), redis_wait_replicas = 0
  wait1     the same primary and replica, redis_wait_replicas = 1: a WAIT 1
            after each RECORD, its outcomes counting once the replica has it
  tls       rediss:// to a TLS-only redis-server (--port 0 --tls-port),
            certificates made for the run with the openssl command
            (harness.certs(): a CA, a server certificate for 127.0.0.1);
            hookd verifies it against redis_ca_file

Cases alternate run by run (the order rotated each round, so that no case
always follows the same one), medians of --runs. Before each run of a case
with a replica, the replica has caught up with the staged jobs (its offset
= the primary's), so loading them is not counted in the drain.

Columns per case: deliveries/s and its ratio to plain; CPU per delivery
(µs) of hookd's workers, of the primary redis-server, their sum, and of the
replica apart; Redis round trips per delivery (EVAL + EVALSHA + BLMOVE +
WAIT, INFO commandstats); WAIT calls per run (cmdstat_wait before and
after: one per RECORD sent, so RECORD+WAIT round trips) and deliveries per
WAIT (outcomes per batch); the CPUs the rest of the machine kept busy
meanwhile (/proc/stat less the processes measured: on a shared machine,
how much of a slow run is someone else's load).

Not a test: nothing asserted.

usage: bench/redis_modes.py [--jobs N] [--runs R] [--cases plain,wait1,...] [--tiny]
       (or bench/run --only redis, through bench/suite.py)
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lib  # noqa: E402
import harness  # noqa: E402  (lib puts tests/integration on the path)

CASES = ["plain", "replica", "wait1", "tls"]
DESCRIBE = {"plain": "redis://, primary alone",
            "replica": "redis://, 1 replica, wait_replicas=0",
            "wait1": "redis://, 1 replica, wait_replicas=1",
            "tls": "rediss://, primary alone"}


def replica_caught_up(primary):
    """True once every replica the primary has acknowledged all it was sent."""
    info = primary.info("replication")
    offset = info["master_repl_offset"]
    links = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
    return bool(links) and all(int(s["offset"]) >= offset for s in links)


class Servers:
    """The redis-servers of the cases, started once: a plain primary, a
    primary with its replica, a TLS-only primary. target(case) is the
    lib.RedisTarget hookd uses in that case, with the settings it adds."""

    def __init__(self, cases):
        self.procs = harness.Procs()
        self.targets = {}
        if "plain" in cases:
            port, r = self.procs.redis(tls=False)
            self.targets["plain"] = lib.RedisTarget(
                r, {"redis": harness.redis_url(port, tls=False)}, [self.procs.last_redis[0].pid])
        if {"replica", "wait1"} & set(cases):
            port, r = self.procs.redis(tls=False, extra=harness.NO_SYNC_DELAY)
            primary = self.procs.last_redis[0].pid
            _, self.replica = self.procs.replica(port, appendonly=False)
            replica = self.procs.last_redis[0].pid
            for case, n in (("replica", 0), ("wait1", 1)):
                self.targets[case] = lib.RedisTarget(
                    r, {"redis": harness.redis_url(port, tls=False),
                        "redis_wait_replicas": n}, [primary], [replica])
        if "tls" in cases:
            port, r = self.procs.redis(tls=True)
            self.targets["tls"] = lib.RedisTarget(
                r, harness.redis_config(port, tls=True), [self.procs.last_redis[0].pid])

    def close(self):
        self.procs.close()


class Modes:
    """The four cases on a lib.Peers (its nginx; each case's Redis from
    Servers). out(name) is where a result file goes; record(...) takes
    (section, name, value, unit, note) rows for the suite's CSV."""

    def __init__(self, peers, out, record, jobs=200000, runs=3, workers=2, in_flight=1000,
                 cases=CASES):
        self.p, self.out, self.record = peers, out, record
        self.jobs, self.runs, self.workers, self.in_flight = jobs, runs, workers, in_flight
        self.cases = list(cases)

    def run(self):
        servers = Servers(self.cases)
        try:
            runs = self.measure(servers)
        finally:
            servers.close()
        self.report(runs)

    def drain(self, servers, case):
        target = servers.targets[case]
        prepare = None
        if target.other_pids:
            prepare = lambda prefix: lib.wait_for(   # noqa: E731
                lambda: replica_caught_up(target.r), 120, "the replica to catch up",
                interval=0.05)
        res = self.p.run_hookd(self.jobs, self.workers, self.in_flight, (), prepare=prepare,
                               server=target)
        if res["dead"]:
            print("warning: %d dead-lettered jobs in a run of %s" % (res["dead"], case),
                  file=sys.stderr)
        return res

    def measure(self, servers):
        runs = {c: [] for c in self.cases}
        print("\n== Redis modes (issue 19): %d jobs per run, workers=%d, max_in_flight=%d, "
              "nginx receiver; cases alternating, medians of %d" % (
                  self.jobs, self.workers, self.in_flight, self.runs), flush=True)
        for i in range(self.runs):
            order = self.cases[i % len(self.cases):] + self.cases[:i % len(self.cases)]
            for case in order:
                res = self.drain(servers, case)
                runs[case].append(res)
                print("  run %d %-8s %8.0f deliveries/s in %.1f s, %.1f µs hookd + %.1f µs "
                      "redis CPU per delivery, %d WAIT; others busy %.2f CPUs" % (
                          i + 1, case, res["rate"], res["seconds"],
                          res["cpu_hookd_per_10k"] * 100, res["cpu_redis_per_10k"] * 100,
                          res["wait_calls"], res["others_cpus"]), flush=True)
        return runs

    def report(self, runs):
        med = {c: {k: statistics.median(x[k] for x in rs) for k in rs[0]}
               for c, rs in runs.items()}
        base = med.get("plain", {}).get("rate")
        # The same ratio round by round (each round runs every case once),
        # median of those: drift between rounds (the machine is shared)
        # cancels out of it, not out of the ratio of medians.
        paired = {c: statistics.median(x["rate"] / p["rate"] for x, p in
                                       zip(runs[c], runs["plain"])) if "plain" in runs
                  else float("nan") for c in self.cases}
        print("%-8s %-38s %12s %7s %7s %9s %9s %9s %9s %7s %10s %9s %7s" % (
            "case", "", "deliveries/s", "/plain", "paired", "hookd us", "redis us", "sum us",
            "replica", "rt/dlv", "WAIT/run", "dlv/WAIT", "others"))
        for c in self.cases:
            m = med[c]
            hk, rd, rp = (m[k] * 100 for k in ("cpu_hookd_per_10k", "cpu_redis_per_10k",
                                               "cpu_replicas_per_10k"))
            ratio = m["rate"] / base if base else float("nan")
            waits = m["wait_calls"]
            print("%-8s %-38s %12.0f %7.2f %7.2f %9.1f %9.1f %9.1f %9s %7.3f %10s %9s %7.2f   "
                  "(runs: %s)" % (
                      c, DESCRIBE[c], m["rate"], ratio, paired[c], hk, rd, hk + rd,
                      "%.1f" % rp if c in ("replica", "wait1") else "-", m["rt_per_delivery"],
                      "%d" % waits if waits else "-",
                      "%.1f" % (m["jobs"] / waits) if waits else "-", m["others_cpus"],
                      ", ".join("%.0f" % x["rate"] for x in runs[c])))
            for k, v, unit in (("rate", m["rate"], "deliveries/s"), ("ratio_to_plain", ratio, ""),
                               ("paired_ratio_to_plain", paired[c], ""),
                               ("cpu_hookd_per_delivery", hk, "us"),
                               ("cpu_redis_per_delivery", rd, "us"),
                               ("cpu_replica_per_delivery", rp, "us"),
                               ("rt_per_delivery", m["rt_per_delivery"], ""),
                               ("wait_calls_per_run", waits, "")):
                self.record("redis", "%s@%s" % (k, c), v, unit, "%d jobs" % self.jobs)
        print("(/plain: ratio of medians; paired: median of the ratios within a round; CPU: "
              "µs per delivery, sum = hookd's workers + the primary redis-server, replica "
              "apart; WAIT/run: WAIT calls in a run = RECORD+WAIT round trips; others: CPUs "
              "the rest of the machine kept busy during the drain)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=200000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--in-flight", type=int, default=1000, help="max_in_flight per worker")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--tiny", action="store_true", help="toy size: 2,000 jobs, 1 run")
    args = ap.parse_args()
    if args.tiny:
        args.jobs, args.runs = 2000, 1
    cases = args.cases.split(",")
    for c in cases:
        if c not in CASES:
            ap.error("unknown case %r (cases: %s)" % (c, ",".join(CASES)))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    rows = []
    out = lambda p: os.path.join(HERE, "results", "%s-%s" % (stamp, p))  # noqa: E731
    with lib.Peers() as peers:
        Modes(peers, out, lambda *row: rows.append(row), args.jobs, args.runs, args.workers,
              args.in_flight, cases).run()
    lib.write_rows(out("redis-modes.csv"), rows)


if __name__ == "__main__":
    main()
