"""End-to-end delivery with a real redis-server, real receivers and hookd
running two worker processes."""
import base64
import json
import os
import random
import signal
import subprocess
import sys
import unittest

import msgpack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HOOKD, push, SECRET, Procs, free_port, log_of, wait_for  # noqa: E402

PREFIX = "it"
BINARY = b"\xff\xfe\x00 not UTF-8 \x80"     # neither a job nor text


def payload(i, rnd):
    """Varied payloads: the receiver's JSON.stringify check fails on any
    byte hookd does not canonicalise exactly like JavaScript."""
    return {
        "success": rnd.random() < 0.8,
        "callData": {
            "id": "call_%d" % i,
            "duration": rnd.randint(1, 600),
            "summary": rnd.choice(["ok", "caf\u00e9 \u2603", "line\nbreak", "quote\"s",
                                   "\U0001F600 emoji", "tab\there"]),
            "metricJson": {"confidence": rnd.choice([0.95, 0.950, 1e21, 1e-7, 1.0, -0.0,
                                                     123456789.125, 5e-324]),
                           "sentiment": "positive"},
            "10": "integer-like key", "2": "moves first",
        },
        "metricSchema": {"nested": [[1, 2, {"deep": [None, True, False]}]]},
    }


class DeliveryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = Procs()
        cls.redis_port, cls.r = cls.p.redis()
        cls.recv = cls.p.receiver()
        cls.hookd = cls.p.hookd({
            "redis": "redis://127.0.0.1:%d" % cls.redis_port, "prefix": PREFIX, "workers": 2,
            # timeout is the default 30 s: the one receiver answering 10,000
            # jobs on a loaded 2-core machine (or under ASan) can take over 5 s
            # to answer requests it has already recorded, and each such retry
            # is a duplicate the bulk test rightly reports. heartbeat_ttl is
            # 10 s for the same reason: under valgrind on a loaded machine a
            # live worker can go 3 s without a heartbeat, be reaped, and have
            # its jobs delivered twice (the valgrind run once reported
            # duplicates at a load of 17). A killed worker's jobs are requeued
            # by the supervisor at once, not by the heartbeat reaper.
            "secret": SECRET, "timeout": "30s", "heartbeat_ttl": "10s",
        })
        wait_for(lambda: cls.r.hlen(PREFIX + ":workers") == 2, 20, "2 workers registered")

    @classmethod
    def tearDownClass(cls):
        cls.p.close()

    def push(self, jobs):
        push(self.r, PREFIX + ":queue", jobs)

    def ids_with(self, stats, prefix):
        return {k: v for k, v in stats["ids"].items() if k.startswith(prefix)}

    def dead_entries(self):
        return [json.loads(e) for e in self.r.lrange(PREFIX + ":dead", 0, -1)]

    def wait_dead(self, job_id):
        return wait_for(lambda: next((e for e in self.dead_entries() if e["id"] == job_id),
                                     None), 30, "dead entry for " + job_id)

    def stat(self, name):
        return int(self.r.hget(PREFIX + ":stats", name) or 0)

    def test_10000_json_jobs_each_delivered_once_with_valid_signatures(self):
        rnd = random.Random(7)
        before = self.stat("delivered")
        jobs = [{"id": "bulk-%05d" % i, "url": self.recv.url, "payload": payload(i, rnd),
                 "event": "call.completed"} for i in range(10000)]
        for k in range(0, 10000, 1000):
            self.push(jobs[k:k + 1000])
        wait_for(lambda: len(self.ids_with(self.recv.stats(), "bulk-")) == 10000, 300,
                 "10000 distinct bulk deliveries", interval=0.25)
        # Outcomes are recorded asynchronously; wait for the books to close.
        wait_for(lambda: self.stat("delivered") - before >= 10000, 30, "acks recorded")
        s = self.recv.stats()
        got = self.ids_with(s, "bulk-")
        self.assertEqual(len(got), 10000)
        dupes = {k: v for k, v in got.items() if v != 1}
        self.assertEqual(dupes, {}, "delivered more than once")
        bad = [x for x in s["invalid"] if x["id"].startswith("bulk-")]
        self.assertEqual(bad, [], "invalid signatures")
        self.assertEqual(self.stat("delivered") - before, 10000)
        self.assertEqual(self.r.llen(PREFIX + ":queue"), 0)
        self.assertFalse([e for e in self.dead_entries() if e["id"].startswith("bulk-")])
        for wid in self.r.hkeys(PREFIX + ":workers"):
            self.assertEqual(self.r.hlen(PREFIX + ":inflight:" + wid.decode()), 0)
        print("\n10000/10000 delivered exactly once, signatures valid", file=sys.stderr)

    def test_msgpack_jobs(self):
        rnd = random.Random(11)
        jobs = []
        for i in range(300):
            job = {"id": "mp-%d" % i, "url": self.recv.url, "payload": payload(i, rnd)}
            if i % 3 == 0:      # a raw body as msgpack bin, sent byte for byte
                del job["payload"]
                job["body"] = ("plain text %d \u00e9" % i).encode()
                job["content_type"] = "text/plain; charset=utf-8"
            jobs.append(msgpack.packb(job, use_bin_type=True))
        self.push(jobs)
        wait_for(lambda: len(self.ids_with(self.recv.stats(), "mp-")) == 300, 60,
                 "300 msgpack deliveries")
        s = self.recv.stats()
        self.assertEqual(set(self.ids_with(s, "mp-").values()), {1})
        self.assertEqual([x for x in s["invalid"] if x["id"].startswith("mp-")], [])
        self.assertIn("text/plain; charset=utf-8", s["content_types"])

    def test_body_headers_and_event(self):
        body = '{"exact":  "bytes", "kept":1.50}'
        before = self.stat("delivered")
        self.push([{"id": "raw-1", "url": self.recv.url + "?headers=1", "body": body,
                    "event": "batch.completed", "headers": {"X-Keep-Body": "1",
                                                            "X-Tenant": "t1"}}])
        # hookd's own outcome first, so a second delivery would be seen
        wait_for(lambda: self.stat("delivered") > before, 30, "raw-1 delivered")
        s = self.recv.stats()
        h = s["headers"].get("raw-1", {})
        self.assertEqual(h.get("x-tenant"), "t1")
        self.assertEqual(base64.b64decode(s["bodies"].get("raw-1", "")).decode(), body)
        # raw-1 is the only job of this class with that event
        self.assertEqual(s["events"].get("batch.completed", 0), 1)
        self.assertEqual(h.get("x-dialgen-event"), "batch.completed")
        # the version hookd itself reports, not a copy of it
        version = subprocess.run([HOOKD, "--version"], capture_output=True, text=True,
                                 check=True).stdout.split()[-1]
        self.assertEqual(h.get("user-agent"), "hookd/" + version)
        # a body that is not in JSON.stringify form cannot pass the Dialgen
        # check, but the Standard Webhooks signature covers the raw bytes
        self.assertIn({"id": "raw-1", "dialgen": False, "standard": True}, s["invalid"])

    def test_per_job_secret(self):
        other = self.p.receiver(secret="per-job-secret")
        self.push([{"id": "sec-1", "url": other.url, "payload": {"a": 1},
                    "secret": "per-job-secret"}])
        s = other.wait_count(1, timeout=30)
        self.assertEqual((s["valid_dialgen"], s["valid_standard"]), (1, 1))

    def test_closed_port_goes_to_dead_with_reason_and_no_secret(self):
        port = free_port()      # nothing listens there
        before = self.stat("dead")
        self.push([{"id": "closed-1", "url": "http://127.0.0.1:%d/x" % port,
                    "payload": {"n": 1}, "secret": "do-not-leak", "max_attempts": 1}])
        e = self.wait_dead("closed-1")
        self.assertEqual(e["reason"], "connect_failed")
        self.assertEqual(e["attempts"], 1)
        self.assertEqual(e["gave_up"], "attempts_exhausted")
        self.assertEqual(e["job"]["url"], "http://127.0.0.1:%d/x" % port)
        self.assertNotIn("secret", e["job"])
        self.assertNotIn(b"do-not-leak", b"".join(self.r.lrange(PREFIX + ":dead", 0, -1)))
        self.assertNotIn("do-not-leak", log_of(self.hookd))
        wait_for(lambda: self.stat("dead") > before, 10, "dead counted")
        self.assertEqual(self.stat("dead") - before, 1)

    def test_invalid_jobs_go_to_dead_with_reasons(self):
        before = self.stat("invalid")
        cases = [
            (b"garbage", "invalid_format"),
            (json.dumps({"id": "inv-nourl", "payload": 1}).encode(), "missing_url"),
            (json.dumps({"id": "inv-ftp", "url": "ftp://x/", "payload": 1}).encode(),
             "invalid_url"),
            (json.dumps({"id": "inv-nobody", "url": self.recv.url}).encode(), "missing_body"),
            (b'{"id": "inv-trunc", "url": "http://x/"', "invalid_json"),
            (msgpack.packb({"id": "inv-mp", "url": 5, "payload": 1}), "invalid_type"),
            (BINARY, "invalid_format"),
        ]
        self.push([c[0] for c in cases])
        want = len(cases)
        wait_for(lambda: self.stat("invalid") - before >= want, 30, "invalid jobs counted")
        # Input that is no job has no id: its entry is found by the bytes it
        # keeps (raw when UTF-8, else raw_base64).
        reasons = {}
        for e in self.dead_entries():
            key = e["id"] or e.get("raw") or e.get("raw_base64")
            reasons[key] = e["reason"]
        self.assertEqual(reasons["garbage"], "invalid_format")
        self.assertEqual(reasons["inv-nourl"], "missing_url")
        self.assertEqual(reasons["inv-ftp"], "invalid_url")
        self.assertEqual(reasons["inv-nobody"], "missing_body")
        self.assertEqual(reasons["inv-mp"], "invalid_type")
        self.assertEqual(reasons.get('{"id": "inv-trunc", "url": "http://x/"'), "invalid_json")
        self.assertEqual(reasons.get(base64.b64encode(BINARY).decode()), "invalid_format")
        self.assertEqual(self.stat("invalid") - before, want)

    def test_attempt_log_modes_and_no_secret_in_attempts(self):
        """attempt_log: failures (the default), all, off. Each instance gets
        one job delivered and one that fails with a non-UTF-8 answer."""
        answer = b"\xff\xd8 binary answer \x00"
        job_secret = "whsec_" + base64.b64encode(b"attempt-log secret, never logged").decode()
        modes = ("default", "all", "off")
        procs = {}
        for mode in modes:      # all three at once: the test waits once
            conf = {"redis": "redis://127.0.0.1:%d" % self.redis_port, "prefix": "al-" + mode,
                    "workers": 1, "secret": SECRET}
            if mode != "default":
                conf["attempt_log"] = mode
            procs[mode] = self.p.hookd(conf, name="al-" + mode)
            push(self.r, "al-%s:queue" % mode, [
                {"id": "ok", "url": self.recv.url, "payload": {}},
                {"id": "fail", "url": self.recv.url + "?status=500&answer=" +
                 base64.urlsafe_b64encode(answer).decode(), "payload": {},
                 "secret": job_secret, "max_attempts": 1}])
        wait_for(lambda: all(self.r.hmget("al-%s:stats" % m, "delivered", "dead") == [b"1", b"1"]
                             for m in modes), 30, "one delivered and one dead in each")
        # A stopped worker has written all it had (the attempt log goes
        # after the outcomes), so an empty stream is not just a late one.
        for h in procs.values():
            h.send_signal(signal.SIGTERM)
        rows = {}
        for mode, h in procs.items():
            self.assertEqual(h.wait(timeout=30), 0)
            entries = [f for _, f in self.r.xrange("al-%s:attempts" % mode)]
            rows[mode] = {f[b"id"].decode(): f for f in entries}
            stream = b"".join(k + v for f in entries for k, v in f.items())
            for leak in (job_secret.encode(), base64.b64encode(job_secret.encode())):
                self.assertNotIn(leak, stream, mode)
        self.assertEqual(set(rows["default"]), {"fail"})
        self.assertEqual(set(rows["all"]), {"ok", "fail"})
        self.assertEqual(rows["off"], {})
        self.assertEqual(rows["all"]["ok"][b"status"], b"200")
        fail = rows["default"]["fail"]
        self.assertEqual((fail[b"status"], fail[b"attempt"]), (b"500", b"1"))
        self.assertNotIn(b"response", fail)
        self.assertEqual(base64.b64decode(fail[b"response_base64"]), answer)

    def test_worker_killed_is_restarted_and_work_continues(self):
        workers = {k.decode(): json.loads(v) for k, v in
                   self.r.hgetall(PREFIX + ":workers").items()}
        victim_wid, info = sorted(workers.items())[0]
        os.kill(info["pid"], signal.SIGKILL)
        wait_for(lambda: victim_wid.encode() not in self.r.hkeys(PREFIX + ":workers")
                 and self.r.hlen(PREFIX + ":workers") == 2, 20, "replacement worker")
        self.push([{"id": "after-kill-%d" % i, "url": self.recv.url, "payload": {"i": i}}
                   for i in range(100)])
        wait_for(lambda: len(self.ids_with(self.recv.stats(), "after-kill-")) == 100, 30,
                 "deliveries after the restart")
        self.assertIn("killed by signal 9", log_of(self.hookd))


if __name__ == "__main__":
    unittest.main(verbosity=2)
