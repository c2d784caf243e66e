"""Hostile input: every kind of bad job, mixed among 10,000 good ones.
Every good job is delivered, every bad one dead-lettered with the expected
reason code and counted as invalid, and no worker restarts. Also: Redis
keys clobbered with the wrong type give a clear error, not a crash loop."""
import json
import os
import random
import subprocess
import sys
import unittest

import msgpack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (HOOKD, SECRET, Procs, log_of, push, redis_args, redis_config,  # noqa: E402
                     wait_for)

PREFIX = "ho"
MAX_JOB = 65536


def bad_inputs(url):
    """(bytes, expected reason code, label)"""
    def j(**kw):
        return json.dumps(kw).encode()
    deep = b'{"url":"' + url.encode() + b'","payload":' + b"[" * 100 + b"]" * 100 + b"}"
    return [
        (b"not json at all", "invalid_format", "text"),
        (b"\x00\x01\x02", "invalid_format", "binary"),
        (b"[1,2,3]", "invalid_format", "array"),
        (b"\x82\xa3url", "invalid_msgpack", "truncated msgpack"),
        (b"\xdf\xff\xff\xff\xff", "invalid_msgpack", "msgpack huge map header"),
        (msgpack.packb({"url": url, "payload": b"\x00"}, use_bin_type=True), "invalid_type",
         "msgpack bin payload"),
        (b'{"url":"' + url.encode() + b'","payload":1', "invalid_json", "truncated json"),
        (b'{"url":"' + url.encode() + b'","payload":1} x', "invalid_json", "trailing bytes"),
        (b'{"url":"' + url.encode() + b'","payload":"\xff\xfe"}', "invalid_utf8", "bad utf-8"),
        (deep, "too_deep", "nesting"),
        (j(payload=1), "missing_url", "no url"),
        (j(url=5, payload=1), "invalid_type", "url not a string"),
        (j(url="not a url", payload=1), "invalid_url", "unparsable url"),
        (j(url="ftp://h/x", payload=1), "invalid_url", "ftp scheme"),
        (j(url="file:///etc/passwd", payload=1), "invalid_url", "file scheme"),
        (j(url="http://user:pw@127.0.0.1/", payload=1), "invalid_url", "credentials"),
        (j(url="http://127.0.0.1/" + "a" * 9000, payload=1), "invalid_url", "url > 8 KiB"),
        (j(url=url, payload=1, headers={"X-A": "v\r\nX-Evil: 1"}), "invalid_header", "CRLF"),
        (j(url=url, payload=1, headers={"X-A": "a\u0000b"}), "invalid_header", "NUL"),
        (j(url=url, payload=1, headers={"Bad Name": "v"}), "invalid_header", "not a token"),
        (j(url=url, payload=1, headers={"Content-Type": "text/evil"}), "reserved_header",
         "content-type"),
        (j(url=url, payload=1, headers={"Host": "evil"}), "reserved_header", "host"),
        (j(url=url, payload=1, headers={"Content-Length": "1"}), "reserved_header",
         "content-length"),
        (j(url=url, payload=1, headers={"X-Dialgen-Signature": "x"}), "reserved_header",
         "signature"),
        (j(url=url, payload=1, headers={"webhook-id": "x"}), "reserved_header", "webhook-*"),
        (j(url=url, payload=1, headers=["X-A", "v"]), "invalid_type", "headers array"),
        (j(url=url, payload=1, headers={"X-A": 1}), "invalid_type", "header value number"),
        (j(url=url, payload=1, id=5), "invalid_type", "id number"),
        (j(url=url, payload=1, id=""), "invalid_id", "empty id"),
        (j(url=url, payload=1, event="a\nb"), "invalid_header", "event newline"),
        (j(url=url, payload=1, max_attempts=0), "invalid_range", "max_attempts 0"),
        (j(url=url, payload=1, max_attempts=1000), "invalid_range", "max_attempts 1000"),
        (j(url=url, payload=1, timeout_ms=-1), "invalid_range", "timeout_ms -1"),
        (j(url=url, payload=1, timeout_ms="5"), "invalid_type", "timeout_ms string"),
        (j(url=url, payload=1, body="x"), "invalid_job", "payload and body"),
        (j(url=url), "missing_body", "no body"),
        (j(url=url, body=7), "invalid_type", "body number"),
        (j(url=url, payload="x" * (MAX_JOB + 10)), "too_large", "over max_job_bytes"),
    ]


class Hostile(unittest.TestCase):
    def test_bad_jobs_among_10000_good(self):
        p = Procs()
        try:
            port, r = p.redis()
            recv = p.receiver()
            h = p.hookd(dict(redis_config(port), prefix=PREFIX, workers=2, secret=SECRET,
                             max_job_bytes=MAX_JOB, max_in_flight=200))
            wait_for(lambda: r.hlen(PREFIX + ":workers") == 2, 20, "workers")
            wids = set(r.hkeys(PREFIX + ":workers"))
            bad = bad_inputs(recv.url)
            good = [json.dumps({"id": "good-%05d" % i, "url": recv.url,
                                "payload": {"i": i}}).encode() for i in range(10000)]
            mixed = good + [b[0] for b in bad]
            random.Random(5).shuffle(mixed)
            push(r, PREFIX + ":queue", mixed)
            wait_for(lambda: len(recv.stats()["succeeded"]) >= 10000 and
                     r.llen(PREFIX + ":dead") >= len(bad), 120, "good delivered, bad dead",
                     interval=0.25)
            s = recv.stats()
            self.assertEqual(len(s["succeeded"]), 10000)
            self.assertEqual(s["invalid"], [])
            entries = [json.loads(e) for e in r.lrange(PREFIX + ":dead", 0, -1)]
            self.assertEqual(len(entries), len(bad))
            got = sorted(e["reason"] for e in entries)
            self.assertEqual(got, sorted(b[1] for b in bad))
            for e in entries:
                self.assertEqual(e["gave_up"], "invalid")
                self.assertTrue(e["error"])
            self.assertEqual(int(r.hget(PREFIX + ":stats", "invalid")), len(bad))
            self.assertEqual(set(r.hkeys(PREFIX + ":workers")), wids, "no worker restarted")
            log = log_of(h)
            self.assertNotIn("killed by signal", log)
            self.assertNotIn("exited with status", log)
            print("\n%d bad inputs dead-lettered with the expected reason, 10000 good "
                  "delivered, no restart" % len(bad), file=sys.stderr)
        finally:
            p.close()

    def test_clobbered_keys_give_a_clear_error(self):
        p = Procs()
        try:
            port, r = p.redis()
            recv = p.receiver()
            h = p.hookd(dict(redis_config(port), prefix=PREFIX, workers=1, secret=SECRET))
            wait_for(lambda: r.hlen(PREFIX + ":workers") == 1, 20, "worker")
            r.set(PREFIX + ":queue", "oops")
            r.set(PREFIX + ":retry", "oops")
            wait_for(lambda: "holds a string, not a list" in log_of(h), 10, "clear error")
            wait_for(lambda: "holds a string, not a zset" in log_of(h), 10, "clear error")
            r.delete(PREFIX + ":queue", PREFIX + ":retry")
            push(r, PREFIX + ":queue", [{"id": "after", "url": recv.url, "payload": {}}])
            recv.wait_count(1, timeout=30)
            log = log_of(h)
            # Each layer that meets the clobbered key says so once, not once a
            # second: the fetch always, the promoter and the reaper only when
            # their timers fall inside the window (each with its own text).
            said = [l.split(" ", 1)[-1] for l in log.splitlines() if "not a list" in l]
            self.assertEqual(sum("fetch failed" in l for l in said), 1, said)
            self.assertEqual(len(said), len(set(said)), "logged once, not in a loop: %r" % said)
            self.assertIn("fetching works again", log)
            self.assertIsNone(h.poll())
        finally:
            p.close()

    def test_redis_password_and_database(self):
        """redis://:password@host:port/db, for the daemon and the commands,
        and neither password nor secret ever printed."""
        p = Procs()
        try:
            port, r = p.redis(password="s3cret-pw", db=3)
            recv = p.receiver()
            conf = redis_config(port, password="s3cret-pw", db=3)
            h = p.hookd(dict(conf, prefix=PREFIX, workers=1, secret=SECRET))
            wait_for(lambda: r.hlen(PREFIX + ":workers") == 1, 20, "worker registered in db 3")
            push(r, PREFIX + ":queue", [{"id": "pw", "url": recv.url, "payload": {}}])
            recv.wait_count(1, timeout=30)
            res = subprocess.run([HOOKD, "stats", "--json", *redis_args(port, "s3cret-pw", 3),
                                  "--prefix", PREFIX],
                                 capture_output=True, text=True, timeout=30)
            self.assertEqual(res.returncode, 0, res.stderr)
            self.assertEqual(json.loads(res.stdout)["queue"], 0)
            bad = subprocess.run([HOOKD, "stats", *redis_args(port, "wrong", 3)],
                                 capture_output=True, text=True, timeout=30)
            self.assertEqual(bad.returncode, 1)
            self.assertIn("AUTH", bad.stderr)
            for text in (log_of(h), res.stdout, bad.stderr):
                self.assertNotIn("s3cret-pw", text)
                self.assertNotIn(SECRET, text)
        finally:
            p.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
