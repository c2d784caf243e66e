"""Idempotent enqueue (dedupe_window): a job whose id was already accepted
is counted as a duplicate and not delivered again, whether the first copy
was delivered, is still in flight, or is waiting for a retry; jobs without
an id are never deduplicated; the window ends; hookd's own requeues (a
killed worker's jobs, a dead letter replayed) are not taken for duplicates.
Real redis-server, real receiver, several workers."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HOOKD, SECRET, Procs, push, wait_for  # noqa: E402


def stats(r):
    return {k.decode(): int(v) for k, v in r.hgetall("hookd:stats").items()}


def seen_key(id, url):
    """The P:seen key of (id, url), as dedupe.h defines it."""
    return "hookd:seen:" + hashlib.sha256(id.encode() + b"\0" + url.encode()).hexdigest()[:32]


class Dedupe(unittest.TestCase):
    def setUp(self):
        self.p = Procs()
        self.port, self.r = self.p.redis()
        self.rc = self.p.receiver()

    def tearDown(self):
        self.p.close()

    def hookd(self, **cfg):
        conf = {"redis": "redis://127.0.0.1:%d" % self.port, "workers": 2, "secret": SECRET,
                "retry_schedule": "300ms"}
        conf.update(cfg)
        h = self.p.hookd(conf)
        wait_for(lambda: self.r.hlen("hookd:workers") == conf["workers"], 20, "workers")
        return h

    def job(self, id, query="", **kw):
        j = {"url": self.rc.url + query, "payload": {"n": 1}}
        if id is not None:
            j["id"] = id
        j.update(kw)
        return j

    def settled(self):
        """Every job pushed has left the queue and the workers."""
        def done():
            if self.r.llen("hookd:queue") or self.r.zcard("hookd:retry"):
                return False
            return all(self.r.hlen(k) == 0 for k in self.r.keys("hookd:inflight:*"))
        wait_for(done, 30, "all jobs settled")

    def test_same_id_delivered_once(self):
        self.hookd()
        push(self.r, "hookd:queue", [self.job("a"), self.job("a"), self.job("b"),
                                     self.job(None), self.job(None), self.job("a")])
        wait_for(lambda: stats(self.r).get("duplicate") == 2, 20, "2 duplicates")
        s = self.rc.wait_count(4)
        self.settled()
        s = self.rc.stats()
        self.assertEqual(s["count"], 4)
        self.assertEqual((s["ids"]["a"], s["ids"]["b"]), (1, 1))
        self.assertEqual(stats(self.r)["delivered"], 4)

    def test_duplicate_of_a_job_in_flight_or_retrying(self):
        """The first copy is still being delivered (slow receiver), or
        failed and waits for its retry: the second is still a duplicate."""
        self.hookd()
        push(self.r, "hookd:queue", [self.job("slow", "?delay=700"),
                                     self.job("flaky", "?fail_first=1")])
        wait_for(lambda: self.rc.stats()["ids"].get("slow") and
                 self.r.zcard("hookd:retry") == 1, 20, "slow in flight, flaky retrying")
        push(self.r, "hookd:queue", [self.job("slow", "?delay=700"),
                                     self.job("flaky", "?fail_first=1")])
        wait_for(lambda: stats(self.r).get("duplicate") == 2, 20, "2 duplicates")
        wait_for(lambda: stats(self.r).get("delivered") == 2, 20, "both delivered")
        self.settled()
        s = self.rc.stats()
        self.assertEqual(s["ids"], {"slow": 1, "flaky": 2})    # flaky: failed attempt + retry
        self.assertEqual((s["succeeded"]["slow"], s["succeeded"]["flaky"]), (1, 1))

    def test_window_ends_and_zero_turns_it_off(self):
        self.hookd(dedupe_window="800ms")
        push(self.r, "hookd:queue", [self.job("w")])
        self.rc.wait_count(1)
        self.assertEqual(self.r.type(seen_key("w", self.rc.url)), b"string")
        wait_for(lambda: not self.r.exists(seen_key("w", self.rc.url)), 10, "window over")
        push(self.r, "hookd:queue", [self.job("w")])
        self.rc.wait_count(2)
        self.assertEqual(stats(self.r).get("duplicate", 0), 0)

    def test_fan_out_to_several_urls(self):
        """One id sent to three endpoints is three deliveries, each carrying
        that id as webhook-id (Standard Webhooks); the same id to the same
        endpoint again is still a duplicate. hookd stats counts the ids
        remembered."""
        self.hookd()
        base = "http://127.0.0.1:%d" % self.rc.port
        urls = [base + "/to/%s" % n for n in "abc"]
        push(self.r, "hookd:queue", [dict(self.job("evt_1"), url=u) for u in urls])
        wait_for(lambda: stats(self.r).get("delivered") == 3, 20, "3 deliveries")
        push(self.r, "hookd:queue", [dict(self.job("evt_1"), url=urls[1])])
        wait_for(lambda: stats(self.r).get("duplicate") == 1, 20, "the repeat counted")
        self.settled()
        s = self.rc.stats()
        self.assertEqual(s["ids"], {"evt_1": 3})
        self.assertEqual(s["paths"], {"/to/a": 1, "/to/b": 1, "/to/c": 1})
        self.assertEqual(sorted(k.decode() for k in self.r.keys("hookd:seen:*")),
                         sorted(seen_key("evt_1", u) for u in urls))
        out = subprocess.run([HOOKD, "stats", "--json", "--redis",
                              "redis://127.0.0.1:%d" % self.port], capture_output=True,
                             text=True, timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)
        d = json.loads(out.stdout)["dedupe"]
        self.assertEqual(d["ids"], 3)
        self.assertGreater(d["approx_bytes"], 0)

    def test_off(self):
        self.hookd(dedupe_window=0)
        push(self.r, "hookd:queue", [self.job("z")] * 3)
        self.rc.wait_count(3)
        self.settled()
        self.assertEqual(self.rc.stats()["ids"], {"z": 3})
        self.assertEqual(self.r.keys("hookd:seen:*"), [])

    def test_requeued_and_replayed_copies_are_not_duplicates(self):
        """Jobs accepted by a worker killed -9 mid-delivery are requeued and
        delivered (not dropped as duplicates of themselves); a dead letter
        replayed by an operator is delivered again."""
        # shutdown_timeout 1s: 20 requests still hang when the test ends, and
        # the stop need not wait the default 30 s for them (it did, now and
        # then, when hookd got its SIGTERM before the receiver was gone).
        self.hookd(workers=1, shutdown_timeout="1s")
        push(self.r, "hookd:queue", [self.job("k%d" % i, "?hang=1", timeout_ms=60000)
                                     for i in range(20)])
        wait_for(lambda: self.rc.stats()["count"] == 20, 20, "20 requests hanging")
        wid, info = next(iter(self.r.hgetall("hookd:workers").items()))
        os.kill(json.loads(info)["pid"], signal.SIGKILL)
        # the respawned worker gets the requeued copies: hanging again, once each
        wait_for(lambda: self.rc.stats()["count"] == 40, 20, "20 requeued copies attempted")
        self.assertEqual(stats(self.r).get("duplicate", 0), 0)
        self.assertEqual(set(self.rc.stats()["ids"].values()), {2})

        push(self.r, "hookd:queue", [self.job("dead", "?status=410")])
        wait_for(lambda: self.r.llen("hookd:dead") == 1, 20, "dead letter")
        out = subprocess.run([HOOKD, "dlq", "replay", "dead", "--redis",
                              "redis://127.0.0.1:%d" % self.port], capture_output=True,
                             text=True, timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)
        wait_for(lambda: self.rc.stats()["ids"].get("dead") == 2, 20, "replayed copy attempted")
        self.assertEqual(stats(self.r).get("duplicate", 0), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
