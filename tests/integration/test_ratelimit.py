"""Per-origin rate limits across workers and hosts (issue 18, item 4).

Two hookd instances (two supervisors, 2 workers each) on one redis-server
and one prefix, as two hosts would run, deliver to one receiver whose origin
is limited. The receiver records each request's arrival time (receiver.js
times); the test counts arrivals in the 10 s from the first one and slides
a one-second window over them. Jobs are pushed well beyond what the limit
lets through in the window, so the limit is what binds. Afterwards every job
is accounted for (conservation.py)."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import push, SECRET, Procs, wait_for  # noqa: E402
import conservation  # noqa: E402

RATE = 100              # per second
HOLD_S = 10
JOBS = 1100             # more than the window lets through: the limit binds all along


def arrivals(recv):
    """Every delivery's arrival, ms, sorted."""
    return sorted(t for ts in recv.stats()["times"].values() for t in ts)


def figures(times, hold_s):
    """(count in hold_s from the first arrival, the most in any one second)."""
    start = times[0]
    inside = [t for t in times if t < start + hold_s * 1000]
    worst, j = 0, 0
    for i, t in enumerate(inside):
        while inside[j] <= t - 1000:
            j += 1
        worst = max(worst, i - j + 1)
    return len(inside), worst


class RateLimit(unittest.TestCase):
    def setUp(self):
        self.p = Procs()
        self.port, self.r = self.p.redis()
        self.recv = self.p.receiver()
        self.origin = "http://127.0.0.1:%d" % self.recv.port
        self.cfg = {"redis": "redis://127.0.0.1:%d" % self.port, "prefix": "rl",
                    "workers": 2, "secret": SECRET, "max_in_flight": 400,
                    "log_level": os.environ.get("LOGLVL", "info")}

    def tearDown(self):
        self.p.close()

    def start(self, cfg):
        self.p.hookd(cfg, name="a")
        self.p.hookd(cfg, name="b")
        wait_for(lambda: self.r.hlen("rl:workers") == 4, 20, "4 workers registered")

    def drain(self, n):
        """Wait until all n are delivered, then check nothing was lost."""
        st = wait_for(lambda: (lambda s: s if len(s["succeeded"]) >= n else None)(
            self.recv.stats()), 120, "every job delivered")
        wait_for(lambda: int(self.r.hget("rl:stats", "delivered") or 0) >= n, 30,
                 "every delivery recorded")
        report = conservation.check(self.r, "rl", ["j%d" % i for i in range(n)],
                                    st["ids"])
        report.assert_conserved()
        return st

    def test_config_limit_holds_across_two_instances(self):
        self.start(dict(self.cfg, rate_limits="%s=%d/s" % (self.origin, RATE)))
        push(self.r, "rl:queue", [{"id": "j%d" % i, "url": self.recv.url, "payload": {"i": i}}
                                  for i in range(JOBS)])
        time.sleep(HOLD_S + 1.5)
        count, worst = figures(arrivals(self.recv), HOLD_S)
        err = 100.0 * (count - RATE * HOLD_S) / (RATE * HOLD_S)
        print("\n  rate limit %d/s over %d s, 2 instances x 2 workers: %d delivered "
              "(error %+.1f %%), at most %d in any one second" % (RATE, HOLD_S, count, err,
                                                                   worst), file=sys.stderr)
        self.assertLessEqual(abs(err), 5.0)
        self.assertLessEqual(worst, RATE * 1.1)
        self.assertTrue(self.r.exists("rl:rate:" + self.origin))
        st = self.drain(JOBS)
        stats = {k.decode(): int(v) for k, v in self.r.hgetall("rl:stats").items()}
        print("  counters: %s" % stats, file=sys.stderr)
        # Each job delivered once, on its first attempt: waiting for a slot
        # or parked beyond a second of the rate, none used an attempt.
        self.assertEqual(max(st["ids"].values()), 1)
        self.assertEqual((stats.get("delivered"), stats.get("retried", 0),
                          stats.get("dead", 0)), (JOBS, 0, 0))
        self.assertGreater(stats.get("parked", 0), 0, "the limit never made a job park")

    def test_job_rate_limit(self):
        rate, hold = 40, 3
        self.start(self.cfg)
        push(self.r, "rl:queue", [{"id": "j%d" % i, "url": self.recv.url, "payload": {"i": i},
                                   "rate_limit": rate} for i in range(200)])
        time.sleep(hold + 1.5)
        count, worst = figures(arrivals(self.recv), hold)
        err = 100.0 * (count - rate * hold) / (rate * hold)
        print("\n  a job's rate_limit %d/s over %d s: %d delivered (error %+.1f %%), at most %d "
              "in any one second" % (rate, hold, count, err, worst), file=sys.stderr)
        self.assertLessEqual(abs(err), 10.0)
        self.assertLessEqual(worst, rate * 1.1)
        self.drain(200)

    def test_stop_while_jobs_wait(self):
        """SIGTERM while jobs wait for slots (and asks are in flight): hookd
        exits 0, the waiting jobs go back to the queue unattempted, and a
        restart delivers every job exactly once."""
        cfg = dict(self.cfg, rate_limits="%s=20/s" % self.origin)
        self.start(cfg)
        push(self.r, "rl:queue", [{"id": "j%d" % i, "url": self.recv.url, "payload": {"i": i}}
                                  for i in range(100)])
        wait_for(lambda: self.recv.stats()["count"] >= 10, 20, "the first deliveries")
        for h in self.p.procs[-2:]:
            h.terminate()
        for h in self.p.procs[-2:]:
            self.assertEqual(h.wait(timeout=60), 0)
        before = self.recv.stats()["count"]
        self.assertLess(before, 100)
        self.start(cfg)
        st = self.drain(100)
        self.assertEqual(max(st["ids"].values()), 1)
        self.assertEqual(int(self.r.hget("rl:stats", "retried") or 0), 0)


if __name__ == "__main__":
    unittest.main()
