"""Endpoint health (issue 18), end to end: real redis-server, real receivers
(one origin each), real hookd with two workers.

(a) a receiver answers 500 to everything for 20 s, then 200: once the first
    wave of failures has opened the breaker only probes reach it; no job of
    it ends dead; all are delivered after it recovers; the breaker opens and
    closes once each in P:events; a healthy origin served meanwhile keeps at
    least 90 % of its throughput;
(b) disable_after = 3s: its jobs go to dead as endpoint_disabled; after
    `hookd endpoints enable` and `hookd dlq replay --all` they are delivered;
(d) the ops webhook receives endpoint.breaker_opened, signed with the
    signing secret (the receiver verifies both signatures);
(e) kill -9 of every worker while a breaker is half-open (its probe out):
    nothing is lost, and the breaker does not stay open.
The figures (attempts made and saved, the healthy origin's rates) are
printed for the notes."""
import base64
import json
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conservation  # noqa: E402
from harness import HOOKD, SECRET, Procs, push, wait_for  # noqa: E402

PER_HOST = 8            # the healthy origin's pace: 2 workers x 8 / DELAY_MS = 80/s
DELAY_MS = 200
HEALTHY = 2000          # 25 s of it: served before and all through the outage
BASELINE_S = 4          # its rate before the outage is measured over this
FAILING = 300
FAIL_S = 20             # how long the failing receiver answers 500
GRACE_S = 1.0           # the first wave: attempts already admitted when it opened


def origin_of(rc):
    return "http://127.0.0.1:%d" % rc.port


class Breaker(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = Procs()
        cls.port, cls.r = cls.p.redis()

    @classmethod
    def tearDownClass(cls):
        cls.p.close()

    def start(self, prefix, **conf):
        cfg = {"redis": "redis://127.0.0.1:%d" % self.port, "prefix": prefix, "workers": 2,
               "secret": SECRET, "max_per_host": PER_HOST, "log_level": "info",
               "breaker": "on"}
        cfg.update(conf)
        h = self.p.hookd(cfg, name=prefix)
        wait_for(lambda: self.r.hlen(prefix + ":workers") == 2, 30, "workers registered")
        return h

    def events(self, prefix, origin=None):
        out = []
        for _id, f in self.r.xrange(prefix + ":events"):
            f = {k.decode(): v.decode() for k, v in f.items()}
            if origin is None or f["origin"] == origin:
                out.append(f)
        return out

    def state(self, prefix, origin):
        s = self.r.hget("%s:endpoint:%s" % (prefix, origin), "state")
        return s.decode() if s else "closed"

    def dead(self, prefix):
        return [json.loads(e) for e in self.r.lrange(prefix + ":dead", 0, -1)]

    def test_a_breaker_and_d_ops_webhook(self):
        bad, good, ops = self.p.receiver(), self.p.receiver(), self.p.receiver()
        good.configure(delay=DELAY_MS)
        bad.configure(status=500)
        pre, o = "brk", origin_of(bad)
        self.start(pre, breaker_cooldown="2s", breaker_cooldown_max="4s",
                   ops_webhook_url=ops.url + "?keep=1")
        # The healthy origin is served all along, at its own pace (PER_HOST
        # requests per worker, DELAY_MS each): its rate before the outage is
        # compared with its rate while the other origin fails.
        push(self.r, pre + ":queue",
             [{"id": "g%d" % i, "url": good.url, "body": "x"} for i in range(HEALTHY)])
        t_first = wait_for(lambda: (lambda t: min(t) / 1000 if t else None)(
            [x for ts in good.stats()["times"].values() for x in ts]), 20, "first delivery")
        time.sleep(max(0, t_first + 1 + BASELINE_S - time.time()))

        t0 = time.time()
        push(self.r, pre + ":queue",
             [{"id": "f%d" % i, "url": bad.url, "body": "x"} for i in range(FAILING)])
        opened = wait_for(lambda: [e for e in self.events(pre, o)
                                   if e["event"] == "endpoint.breaker_opened"], 20,
                          "breaker opened")[0]
        t_open = int(opened["at"]) / 1000
        time.sleep(max(0, t0 + FAIL_S - time.time()))   # the outage lasts FAIL_S
        t_up = time.time()
        bad.configure(status="")
        wait_for(lambda: len(bad.stats()["succeeded"]) == FAILING, 60,
                 "every job of the failing origin delivered", interval=0.1)
        wait_for(lambda: len(good.stats()["succeeded"]) == HEALTHY, 60,
                 "every healthy job delivered", interval=0.1)

        times = [t / 1000 for ts in bad.stats()["times"].values() for t in ts]
        first_wave = sum(1 for t in times if t <= t_open + GRACE_S)
        while_open = sum(1 for t in times if t_open + GRACE_S < t < t_up)
        good_times = [t / 1000 for ts in good.stats()["times"].values() for t in ts]

        def rate(lo, hi):
            return sum(1 for t in good_times if lo <= t < hi) / (hi - lo)
        before = rate(t_first + 1, t_first + 1 + BASELINE_S)
        during = rate(t_open + GRACE_S, t_up)
        print("\n  (a) %d attempts before the breaker opened (+%.1f s), %d while open "
              "(probes; %d jobs x up to 4 attempts without it), %d after; healthy origin "
              "%.1f/s before, %.1f/s during the outage (%.2f)"
              % (first_wave, GRACE_S, while_open, FAILING, len(times) - first_wave - while_open,
                 before, during, during / before), file=sys.stderr)
        self.assertLess(while_open, 10)
        self.assertGreaterEqual(during / before, 0.9)
        self.assertEqual([d["id"] for d in self.dead(pre)], [])
        wait_for(lambda: self.state(pre, o) == "closed", 10, "breaker closed")
        kinds = [e["event"] for e in self.events(pre, o)]
        self.assertEqual(kinds, ["endpoint.breaker_opened", "endpoint.breaker_closed"])
        report = conservation.check(self.r, pre, ["f%d" % i for i in range(FAILING)] +
                                    ["g%d" % i for i in range(HEALTHY)] +
                                    [k for k in ops.stats()["ids"]],
                                    {**bad.stats()["succeeded"], **good.stats()["succeeded"],
                                     **ops.stats()["succeeded"]})
        report.assert_conserved()

        # (d) the ops webhook: signed under the secret, the event for o.
        st = wait_for(lambda: (lambda s: s if s["events"].get("endpoint.breaker_closed")
                               else None)(ops.stats()), 20, "ops webhook events")
        self.assertEqual(st["invalid"], [])
        self.assertEqual(st["valid_dialgen"], st["count"])
        self.assertEqual(st["valid_standard"], st["count"])
        bodies = [json.loads(base64.b64decode(b)) for b in st["bodies"].values()]
        opened_body = [b for b in bodies if b["type"] == "endpoint.breaker_opened"]
        self.assertEqual(len(opened_body), 1)
        self.assertEqual(opened_body[0]["data"]["origin"], o)
        self.assertGreaterEqual(opened_body[0]["data"]["failure_rate"], 0.7)

    def test_b_auto_disable_then_enable_and_replay(self):
        bad = self.p.receiver()
        bad.configure(status=500)
        pre, o, n = "dis", origin_of(bad), 50
        h = self.start(pre, breaker_cooldown="1s", disable_after="3s",
                       retry_schedule=",".join(["1s"] * 20))
        push(self.r, pre + ":queue", [{"id": "d%d" % i, "url": bad.url, "body": "x"} for i in range(n)])
        dead = wait_for(lambda: (lambda d: d if len(d) == n else None)(self.dead(pre)), 60,
                        "every job dead", interval=0.1)
        self.assertEqual({d["reason"] for d in dead}, {"endpoint_disabled"})
        self.assertEqual(self.state(pre, o), "disabled")
        self.assertIn("endpoint.disabled", [e["event"] for e in self.events(pre, o)])
        attempts = bad.stats()["count"]

        bad.configure(status="")
        conf = os.path.join(self.p.dir, pre + ".conf")
        out = subprocess.run([HOOKD, "-c", conf, "endpoints", "enable", o],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(self.state(pre, o), "closed")
        out = subprocess.run([HOOKD, "-c", conf, "dlq", "replay", "--all"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        wait_for(lambda: len(bad.stats()["succeeded"]) == n, 30, "replayed jobs delivered")
        print("\n  (b) %d jobs dead as endpoint_disabled after %d attempts; all delivered "
              "after enable + replay" % (n, attempts), file=sys.stderr)
        self.assertEqual(self.dead(pre), [])
        h.send_signal(signal.SIGTERM)
        h.wait(timeout=60)

    def test_e_kill_workers_while_half_open(self):
        bad = self.p.receiver()
        pre, o, n = "kil", origin_of(bad), 100
        bad.configure(status=500)
        self.start(pre, breaker_cooldown="1s", breaker_cooldown_max="2s", timeout="3s")
        push(self.r, pre + ":queue", [{"id": "k%d" % i, "url": bad.url, "body": "x"} for i in range(n)])
        wait_for(lambda: self.state(pre, o) == "open", 20, "breaker open")
        bad.configure(delay=2500)       # the probe stays out 2.5 s
        wait_for(lambda: self.state(pre, o) == "half_open", 20, "breaker half-open")
        pids = [json.loads(v)["pid"] for v in self.r.hvals(pre + ":workers")]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        bad.configure(status="", delay="")
        bad.configure(release=1)
        wait_for(lambda: len(bad.stats()["succeeded"]) == n, 60,
                 "every job delivered after the kill", interval=0.1)
        wait_for(lambda: self.state(pre, o) == "closed", 20, "breaker closed")
        print("\n  (e) workers %s killed while half-open; %d jobs delivered, breaker "
              "closed" % (pids, n), file=sys.stderr)
        report = conservation.check(self.r, pre, ["k%d" % i for i in range(n)],
                                    bad.stats()["succeeded"], allow_duplicates=True)
        report.assert_conserved()


if __name__ == "__main__":
    unittest.main(verbosity=2)
