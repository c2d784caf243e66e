"""The conservation checker (conservation.py) against a real redis-server:
it accepts every form a job takes in Redis, including the ones the real
RECLAIM script writes (marks, a worker_crashed entry whose bytes are kept
aside), and it catches a job removed by hand (lost), copied by hand into a
second place or twice into one (doubled), and ids nobody produced."""
import base64
import json
import os
import subprocess
import sys
import tempfile
import unittest

import msgpack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conservation  # noqa: E402
from conservation import check  # noqa: E402
from harness import Procs, lua_script  # noqa: E402

P = "cv"
URL = "http://a.test/h"


def js(i, **kw):
    return json.dumps(dict(id=i, url=URL, payload={"n": 1}, **kw)).encode()


def mp(i):
    return msgpack.packb({"id": i, "url": URL, "body": b"\x00\xff"}, use_bin_type=True)


def envelope(job, id=None, token="w:1"):
    """As job_envelope_encode (src/job.c) writes it."""
    m = {"_hookd": 1}
    if id is not None:
        m["id"] = id
    m.update(attempts=1, first_ms=1, last_status=500, last_error="HTTP 500", token=token,
             job=job)
    return msgpack.packb(m, use_bin_type=True)


def dead(dead_id, id, **rest):
    e = {"dead_id": dead_id, "id": id, "reason": "http_status", "error": "HTTP 500",
         "gave_up": "max_attempts", "status": 500, "attempts": 3}
    e.update(rest)
    return json.dumps(e, separators=(",", ":")).encode()


class Checker(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = Procs()
        cls.port, cls.r = cls.p.redis()

    @classmethod
    def tearDownClass(cls):
        cls.p.close()

    def setUp(self):
        self.r.flushall()
        self.ids = []

    def fill(self):
        """One job in every place, in every form; returns delivered, deduped
        and purged as check() takes them."""
        r, q = self.r, P + ":queue"
        self.ids = ["q-json", "q-mp", "q-acc", "q-crash", "q-env", "claim", "inflight-a",
                    "inflight-b", "retry-id", "retry-inner", "parked", "d-id", "d-job",
                    "d-raw", "d-b64", "delivered", "dup", "purged"]
        r.lpush(q, js("q-json"), mp("q-mp"), b"\xc1accepted:" + js("q-acc"),
                b"\xc1accepted:\xc1crashed:2:" + mp("q-crash"),
                b"\xc1accepted:" + envelope(js("q-env"), "q-env"))
        r.lpush(P + ":claim:h:1:2", js("claim"))
        r.hset(P + ":inflight:h:1:2", mapping={"7": js("inflight-a"),
                                               "8": envelope(mp("inflight-b"), "inflight-b")})
        r.zadd(P + ":retry", {envelope(js("retry-id"), "retry-id"): 10,
                              envelope(js("retry-inner"), None, "w:2"): 20})
        r.lpush(P + ":parked:http://a.test:80", b"\xc1accepted:" + js("parked"))
        r.zadd(P + ":parked", {"http://a.test:80": 1})
        r.lpush(P + ":dead",
                dead("w:1", "d-id", job={"id": "d-id", "url": URL}),
                dead("w:2", None, job={"id": "d-job", "url": URL}),
                # bytes that are no job: the entry keeps them as text, with
                # whatever id could be read
                dead("w:3", "d-raw", job=None, raw=js("d-raw").decode() + " trailing"),
                dead("w:4", None, job=None, raw_base64=base64.b64encode(mp("d-b64")).decode()))
        # Two copies of "dup" produced: one delivered, one removed by ACCEPT.
        self.ids.append("dup")
        return {"delivered": 1, "dup": 1}, {"dup": 1}, {"purged": 1}

    def test_every_form_accepted(self):
        delivered, deduped, purged = self.fill()
        rep = check(self.r, P, self.ids, delivered, deduped=deduped, purged=purged)
        rep.assert_conserved()
        self.assertEqual(rep.places, {"queue": 5, "claim": 1, "inflight": 2, "retry": 2,
                                      "parked": 1, "dead": 4, "delivered": 2, "deduped": 1,
                                      "purged": 1})
        self.assertEqual(rep.where["inflight-b"], ["inflight:h:1:2"])
        self.assertEqual(rep.where["dup"], ["deduped", "delivered"])

    def test_raw_forms_decoded(self):
        """An entry without an id: the id is read from raw / raw_base64."""
        self.r.lpush(P + ":dead", dead("w:3", None, job=None, raw=js("d-raw").decode()),
                     dead("w:4", None, job=None,
                          raw_base64=base64.b64encode(mp("d-b64")).decode()))
        check(self.r, P, ["d-raw", "d-b64"]).assert_conserved()

    def test_real_reclaim_forms(self):
        """RECLAIM (build/lua) requeues with marks and dead-letters a job
        at poison_after with its bytes aside; a non-ASCII id is not in the
        entry, so the checker reads it from P:dead:secrets."""
        ids = ["plain", "poison-\u00e9", "env"]
        self.r.hset(P + ":inflight:h:1:2", mapping={
            "1": js("plain"), "2": b"\xc1accepted:\xc1crashed:1:" + js("poison-\u00e9"),
            "3": envelope(mp("env"), "env")})
        self.r.hset(P + ":workers", "h:1:2", "{}")
        reply = self.r.eval(lua_script("reclaim"), 0, P, "h:1:2", "crashed", 2, 100,
                            "2024-01-01T00:00:00Z")
        self.assertEqual(reply[:2], [2, 1])
        entry = json.loads(self.r.lindex(P + ":dead", 0))
        self.assertEqual((entry["id"], entry["raw_aside"]), (None, True))
        self.assertTrue(all(j.startswith(b"\xc1accepted:\xc1crashed:1:")
                            for j in self.r.lrange(P + ":queue", 0, -1)))
        rep = check(self.r, P, ids)
        rep.assert_conserved()
        self.assertEqual((rep.places["queue"], rep.places["dead"]), (2, 1))
        # Without its aside value the entry has no readable id.
        self.r.delete(P + ":dead:secrets")
        rep = check(self.r, P, ids)
        self.assertFalse(rep.ok)
        self.assertEqual(rep.lost, ["poison-\u00e9"])
        self.assertEqual(len(rep.undecodable), 1)

    def test_lost(self):
        delivered, deduped, purged = self.fill()
        self.r.hdel(P + ":inflight:h:1:2", "7")
        rep = check(self.r, P, self.ids, delivered, deduped=deduped, purged=purged)
        self.assertEqual(rep.lost, ["inflight-a"])
        with self.assertRaisesRegex(AssertionError, "lost 1 .*'inflight-a'"):
            rep.assert_conserved()
        # A delivery the caller forgot is lost too.
        self.assertEqual(check(self.r, P, ["x"], {}).lost, ["x"])

    def test_trimmed(self):
        delivered, deduped, purged = self.fill()
        self.r.rpop(P + ":dead")                 # the oldest entry, as dead_max trims
        args = (self.r, P, self.ids, delivered)
        check(*args, trimmed=1, deduped=deduped, purged=purged).assert_conserved()
        self.assertFalse(check(*args, deduped=deduped, purged=purged).ok)
        self.assertFalse(check(*args, trimmed=2, deduped=deduped, purged=purged).ok)
        # count-only deduped / purged join the expected missing
        check(*args, trimmed=1, deduped=1, purged=1).assert_conserved()

    def test_doubled(self):
        delivered, deduped, purged = self.fill()
        # copied into a second place
        self.r.rpush(P + ":queue", self.r.hget(P + ":inflight:h:1:2", "7"))
        rep = check(self.r, P, self.ids, delivered, deduped=deduped, purged=purged)
        self.assertEqual(list(rep.doubled), ["inflight-a"])
        self.assertEqual(sorted(rep.doubled["inflight-a"]), ["inflight:h:1:2", "queue"])
        with self.assertRaisesRegex(AssertionError, "doubled 'inflight-a'"):
            rep.assert_conserved()
        # twice in one place, one copy marked
        self.r.flushall()
        self.r.lpush(P + ":queue", js("a"), b"\xc1accepted:" + js("a"))
        self.assertEqual(list(check(self.r, P, ["a"]).doubled), ["a"])
        # in Redis and delivered
        self.assertEqual(list(check(self.r, P, ["a", "a"], {"a": 1}).doubled), ["a"])

    def test_allow_duplicates(self):
        """At-least-once: delivered and requeued, or delivered twice, is
        fine; two copies in Redis of one produced job is not."""
        self.r.lpush(P + ":queue", js("a"))
        self.assertFalse(check(self.r, P, ["a", "b"], {"a": 1, "b": 2}).ok)
        rep = check(self.r, P, ["a", "b"], {"a": 1, "b": 2}, allow_duplicates=True)
        rep.assert_conserved()
        self.assertEqual(rep.redelivered, {"a": 1, "b": 1})
        self.assertEqual(check(self.r, P, ["a", "b"], {"a": 1}, allow_duplicates=True).lost,
                         ["b"])
        self.r.lpush(P + ":queue", js("a"))
        self.assertEqual(list(check(self.r, P, ["a"], allow_duplicates=True).doubled), ["a"])

    def test_unknown_and_undecodable(self):
        self.r.lpush(P + ":queue", js("a"), js("stranger"), b"not a job")
        rep = check(self.r, P, ["a"])
        self.assertEqual(rep.unknown, [("queue", "stranger")])
        self.assertEqual(rep.undecodable, [("queue", b"not a job")])
        with self.assertRaisesRegex(AssertionError, "unknown 1.*\n.*undecodable 1"):
            rep.assert_conserved()
        self.assertIn(("delivered", "b"), check(self.r, P, ["a"], {"b": 1}).unknown)

    def test_wrong_type(self):
        self.r.set(P + ":inflight:h:1:2", "x")
        self.assertRegex(check(self.r, P, []).summary(), "error: cv:inflight:h:1:2: WRONGTYPE")

    def test_cli(self):
        self.r.lpush(P + ":queue", js("a"))
        with tempfile.TemporaryDirectory() as d:
            ids, dl = os.path.join(d, "ids"), os.path.join(d, "delivered")
            with open(ids, "w") as f:
                f.write("a\nb\nc\n")
            with open(dl, "w") as f:
                f.write("b\nc\t2\n")
            argv = [sys.executable, conservation.__file__, "--redis",
                    "redis://127.0.0.1:%d" % self.port, "--prefix", P, "--ids", ids,
                    "--delivered", dl]
            res = subprocess.run(argv, capture_output=True, text=True)
            self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
            self.assertIn("doubled 'c'", res.stdout)
            res = subprocess.run(argv + ["--allow-duplicates"], capture_output=True, text=True)
            self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
            self.assertIn("conserved", res.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
