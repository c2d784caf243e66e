"""hookd endpoints [--json], hookd endpoints enable|disable ORIGIN, and the
hookd_endpoints{state} gauges.

A real redis-server; states seeded with the real scripts (HEALTH as
workers send it, build/lua/health.lua, and ENDPOINT_SET through the CLI
itself); the real hookd binary for the commands; one real hookd with its
metrics process for the gauges. Fast: no deliveries."""
import json
import os
import re
import subprocess
import sys
import time
import unittest
import urllib.request

import msgpack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HOOKD, Procs, free_port, wait_for  # noqa: E402

LUA_DIR = os.environ.get("HOOKD_LUA_DIR") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "build", "lua")
P = "ec"
OPEN = "https://down.example:443"
THROTTLED = "https://busy.example:443"
PARKED = "http://slow.example:8080"


def health(r, origin, ok, failed, probe="0", ops_url=""):
    """HEALTH as a worker sends it (queue_health): breaker on, window 5m,
    min 10, threshold 70, cooldown 30s..10m, disable_after 5d."""
    with open(os.path.join(LUA_DIR, "health.lua")) as f:
        text = f.read()
    keys = [P + ":endpoints", P + ":endpoints:gen", P + ":events", P + ":queue", P + ":stats",
            P + ":parked"]
    args = [P + ":endpoint", 1, 300000, 10, 70, 30000, 600000, 432000000, 10000, ops_url,
            origin, json.dumps(origin), ok, failed, probe]
    return r.eval(text, len(keys), *keys, *args)


class EndpointsCli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = Procs()
        cls.rport, cls.r = cls.p.redis()
        cls.url = "redis://127.0.0.1:%d" % cls.rport

    @classmethod
    def tearDownClass(cls):
        cls.p.close()

    def setUp(self):
        self.r.flushall()

    def hookd(self, *args, ops_url=None):
        argv = [HOOKD, *args, "--redis", self.url, "--prefix", P]
        if ops_url:
            argv += ["--ops_webhook_url", ops_url]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=20,
                           env=dict(os.environ, COLUMNS="200"))
        return p.returncode, p.stdout, p.stderr

    def seed(self):
        """OPEN: its breaker opened by 12 failures; THROTTLED: in P:throttled
        for another minute; PARKED: two parked jobs."""
        health(self.r, OPEN, 0, 12)
        now = int(time.time() * 1000)
        self.r.zadd(P + ":throttled", {THROTTLED: now + 60000, "https://past.example:443": 1})
        self.r.lpush(P + ":parked:" + PARKED, "j1", "j2")
        self.r.zadd(P + ":parked", {PARKED: now})

    def events(self):
        return [{f.decode(): v.decode() for f, v in e[1].items()}
                for e in self.r.xrange(P + ":events")]

    def test_empty(self):
        rc, out, err = self.hookd("endpoints")
        self.assertEqual((rc, err), (0, ""))
        self.assertEqual(out.splitlines(), [out.splitlines()[0]])
        self.assertTrue(out.startswith("ORIGIN"))
        self.assertEqual(self.hookd("endpoints", "--json")[:2], (0, "[]\n"))

    def test_list(self):
        self.seed()
        rc, out, err = self.hookd("endpoints")
        self.assertEqual(rc, 0, err)
        rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
        self.assertEqual(set(rows), {OPEN, THROTTLED, PARKED})
        self.assertEqual(rows[OPEN][1:5], ["open", "100%", "12", "12"])
        self.assertRegex(rows[OPEN][6], r"^\d{4}-\d\d-\d\dT")      # since
        self.assertRegex(rows[OPEN][7], r"^\d{4}-\d\d-\d\dT")      # next probe
        self.assertIn("100% of 12 attempts failed", out)
        self.assertEqual(rows[THROTTLED][1], "throttled")
        self.assertEqual(rows[PARKED][1:6], ["parked", "0%", "0", "0", "2"])
        rc, out, _ = self.hookd("endpoints", "--json")
        got = {e["origin"]: e for e in json.loads(out)}
        self.assertEqual(set(got), {OPEN, THROTTLED, PARKED})
        for e in got.values():
            self.assertEqual(list(e), ["origin", "state", "breaker", "throttled",
                                       "throttled_until", "parked", "failure_rate", "attempts",
                                       "failures", "since", "next_probe", "reason"])
        self.assertEqual((got[OPEN]["state"], got[OPEN]["failure_rate"], got[OPEN]["attempts"]),
                         ("open", 1.0, 12))
        self.assertIsNotNone(got[OPEN]["next_probe"])
        self.assertEqual((got[THROTTLED]["state"], got[THROTTLED]["throttled"]),
                         ("throttled", True))
        self.assertIsNotNone(got[THROTTLED]["throttled_until"])
        self.assertEqual((got[PARKED]["state"], got[PARKED]["parked"]), ("parked", 2))

    def test_disable_enable(self):
        self.seed()
        rc, out, err = self.hookd("endpoints", "disable", "https://DOWN.example/some/path?q=1")
        self.assertEqual((rc, out, err), (0, OPEN + ": disabled (was open)\n", ""))
        rc, out, _ = self.hookd("endpoints", "--json")
        self.assertEqual({e["origin"]: e["state"] for e in json.loads(out)}[OPEN], "disabled")
        rc, out, err = self.hookd("endpoints", "disable", OPEN)
        self.assertEqual(rc, 1)
        self.assertIn("is disabled already; nothing to disable", err)
        rc, out, err = self.hookd("endpoints", "enable", OPEN, "--json")
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out), {"origin": OPEN, "previous": "disabled",
                                           "state": "closed", "changed": True})
        self.assertEqual([(e["event"], e["origin"]) for e in self.events()],
                         [("endpoint.breaker_opened", OPEN), ("endpoint.disabled", OPEN),
                          ("endpoint.enabled", OPEN)])
        st = {k.decode(): int(v) for k, v in self.r.hgetall(P + ":stats").items()}
        self.assertEqual((st["endpoints_disabled"], st["endpoints_enabled"]), (1, 1))
        rc, out, _ = self.hookd("endpoints")
        self.assertNotIn(OPEN, out)
        rc, _, err = self.hookd("endpoints", "enable", OPEN)
        self.assertEqual(rc, 1)
        self.assertIn("is closed already; nothing to enable", err)

    def test_ops_job(self):
        rc, _, err = self.hookd("endpoints", "disable", PARKED, ops_url="https://ops.example/h")
        self.assertEqual(rc, 0, err)
        jobs = self.r.lrange(P + ":queue", 0, -1)
        self.assertEqual(len(jobs), 1)
        j = msgpack.unpackb(jobs[0], raw=False)
        self.assertEqual((j["url"], j["event"]), ("https://ops.example/h", "endpoint.disabled"))
        self.assertEqual(json.loads(j["body"])["data"]["origin"], PARKED)

    def test_refusals(self):
        rc, _, err = self.hookd("endpoints", "enable", "https://never.example")
        self.assertEqual(rc, 1)
        self.assertIn("https://never.example:443: no record of it", err)
        for bad in ("down.example", "ftp://down.example", "https://u:p@down.example", ""):
            with self.subTest(bad=bad):
                rc, _, err = self.hookd("endpoints", "disable", bad)
                self.assertEqual(rc, 2)
                self.assertIn("is not an origin", err)
        rc, _, err = self.hookd("endpoints", "disable")
        self.assertEqual((rc, err), (2, "hookd: endpoints disable needs an ORIGIN (or a URL)\n"))
        rc, _, err = self.hookd("endpoints", "disable", OPEN, PARKED)
        self.assertEqual(rc, 2)
        self.assertIn("takes one ORIGIN", err)
        rc, _, err = self.hookd("endpoints", "reset", OPEN)
        self.assertEqual(rc, 2)
        self.assertIn("the actions are enable, disable", err)
        self.assertEqual(self.r.dbsize(), 0, "a refusal wrote to Redis")

    def test_gauges(self):
        self.seed()
        self.hookd("endpoints", "disable", "http://gone.example")
        mport = free_port()
        h = self.p.hookd({"redis": self.url, "prefix": P, "workers": 1,
                          "metrics_listen": "127.0.0.1:%d" % mport})
        want = {"open": 1, "half_open": 0, "disabled": 1, "throttled": 1}
        got = {}

        def scraped():
            # The worker takes PARKED's two jobs (not jobs: dead as invalid)
            # and FETCH drops the origin from P:parked: the gauge follows it.
            want["parked"] = self.r.zcard(P + ":parked")
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport,
                                            timeout=2) as resp:
                    text = resp.read().decode()
            except OSError:
                return False
            got.clear()
            for m in re.finditer(r'^hookd_endpoints\{state="(\w+)"\} (\d+)$', text, re.M):
                got[m.group(1)] = int(m.group(2))
            return got == want and self.r.zcard(P + ":parked") == want["parked"]
        try:
            wait_for(scraped, 15, "hookd_endpoints gauges %s (last %s)" % (want, got))
        except AssertionError:
            with open(h.log_path) as f:
                raise AssertionError("got %s; hookd's log:\n%s" % (got, f.read()[-3000:]))
        finally:
            h.terminate()
            h.wait(timeout=15)


if __name__ == "__main__":
    unittest.main(verbosity=2)
