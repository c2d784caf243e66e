"""Poison jobs are quarantined: a job in flight in a worker that dies has
its crash count raised by the reclaim, and once poison_after workers died
with it (default 3) it is dead-lettered as worker_crashed instead of being
requeued into the next worker. No crash switch in hookd: the test kills
-9, three times, whichever worker holds the chosen job in its in-flight
hash, while healthy jobs keep being delivered. Real redis-server, real
receiver, the real supervisor restarting the workers."""
import json
import os
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HOOKD, SECRET, Procs, push, wait_for  # noqa: E402

JOB_SECRET = "poison-secret-never-in-the-dead-list"


def holder(r, job_id):
    """(wid, pid) of the worker whose in-flight hash holds job_id, or None."""
    for key in r.keys("hookd:inflight:*"):
        if any(b'"%s"' % job_id.encode() in v for v in r.hvals(key)):
            wid = key.decode()[len("hookd:inflight:"):]
            info = r.hget("hookd:workers", wid)
            if info is not None:
                return wid, json.loads(info)["pid"]
    return None


class Poison(unittest.TestCase):
    def setUp(self):
        self.p = Procs()
        self.port, self.r = self.p.redis()
        self.rc = self.p.receiver()
        self.url = "redis://127.0.0.1:%d" % self.port

    def tearDown(self):
        self.p.close()

    def test_killed_three_times_is_dead_as_worker_crashed(self):
        # shutdown_timeout 1s: the replayed job hangs at the receiver, and the
        # stop at the end need not wait the default 30 s for it.
        self.p.hookd({"redis": self.url, "workers": 2, "secret": SECRET,
                      "shutdown_timeout": "1s"})
        wait_for(lambda: self.r.hlen("hookd:workers") == 2, 20, "workers")
        # The chosen job hangs at the receiver, so it stays in flight.
        push(self.r, "hookd:queue", [{"id": "poison", "url": self.rc.url + "?hang=1",
                                      "payload": {"p": 1}, "timeout_ms": 600000,
                                      "secret": JOB_SECRET}])
        healthy = 0
        for crash in (1, 2, 3):
            wid, pid = wait_for(lambda: holder(self.r, "poison"), 20,
                                "the poison job in flight (crash %d)" % crash)
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: not self.r.exists("hookd:inflight:" + wid), 20,
                     "worker %s reclaimed" % wid)
            # Healthy jobs go through between the crashes.
            push(self.r, "hookd:queue", [{"id": "h%d" % (healthy + i), "url": self.rc.url,
                                          "payload": {"i": i}} for i in range(50)])
            healthy += 50
            # hookd's own count, not only the receiver's: a worker killed
            # after the receiver answered but before the outcome reached
            # Redis has its jobs requeued and sent again (at least once).
            wait_for(lambda: len(self.rc.stats()["succeeded"]) == healthy and
                     int(self.r.hget("hookd:stats", "delivered") or 0) == healthy, 20,
                     "%d healthy jobs delivered and recorded" % healthy)

        dead = wait_for(lambda: self.r.lrange("hookd:dead", 0, -1), 20, "a dead letter")
        self.assertEqual(len(dead), 1)
        entry = json.loads(dead[0])
        self.assertEqual((entry["id"], entry["reason"], entry["gave_up"], entry["crashes"]),
                         ("poison", "worker_crashed", "worker_crashed", 3))
        self.assertEqual(entry["url"], self.rc.url + "?hang=1")
        self.assertIsNone(entry["job"])
        self.assertTrue(entry["raw_aside"])
        self.assertNotIn(JOB_SECRET.encode(), dead[0])
        # Nowhere else: not queued, not in flight, not parked, not retried.
        self.assertEqual(self.r.llen("hookd:queue"), 0)
        self.assertEqual(self.r.zcard("hookd:retry"), 0)
        self.assertIsNone(holder(self.r, "poison"))
        stats = {k.decode(): int(v) for k, v in self.r.hgetall("hookd:stats").items()}
        self.assertEqual((stats["worker_crashed"], stats["dead"]), (1, 1))
        # Every healthy job was delivered once; the poison job reached the
        # receiver at most once per worker that died with it (a worker may
        # die after taking it and before sending it).
        s = self.rc.stats()
        self.assertEqual(sorted(s["succeeded"]), sorted("h%d" % i for i in range(healthy)))
        self.assertEqual(set(s["succeeded"].values()), {1})
        self.assertLessEqual(s["ids"].get("poison", 0), 3)

        # An operator can replay it: its own secret comes back with it
        # (kept aside), its crash count starts again.
        out = subprocess.run([HOOKD, "dlq", "replay", "poison", "--redis", self.url],
                             capture_output=True, text=True, timeout=10)
        self.assertEqual((out.returncode, out.stdout.strip()), (0, "replayed 1 dead entries"),
                         out.stderr)
        wid, pid = wait_for(lambda: holder(self.r, "poison"), 20, "the replayed job in flight")
        job = next(v for v in self.r.hvals("hookd:inflight:" + wid) if b"poison" in v)
        self.assertTrue(job.startswith(b"\xc1accepted:{"), job[:40])
        self.assertIn(JOB_SECRET.encode(), job)
        self.assertEqual(self.r.hlen("hookd:dead:secrets"), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
