"""Attempts cut by a 1 ms timeout, queued ahead of healthy jobs, on one
worker: the worker survives (libcurl closes the sockets of cut connection
attempts and of its threaded resolver without its close-socket callback, so
http.c must stop watching them in time), every cut job ends dead with reason
"timeout" or, when the receiver happened to answer within 1 ms, delivered,
and every healthy job behind them is delivered.

Real redis-server, real node receiver on 127.0.0.1, hookd as shipped. Run
twice: with an IP literal in the URL, and with a host name that libcurl
resolves through its threaded resolver (a socketpair per lookup)."""
import json
import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SECRET, Procs, log_of, push, wait_for  # noqa: E402

PREFIX = "to"
CUT = 200           # jobs with timeout_ms 1
HEALTHY = 1000      # default timeout, behind them in the queue


def resolver_name():
    """A name for 127.0.0.1 that libcurl must look up with getaddrinfo():
    not an IP literal, and not "localhost", which libcurl 7.88 answers
    itself without the resolver. The machine's own host name qualifies when
    /etc/hosts (or DNS) maps it to 127.0.0.1. None when no such name."""
    name = socket.gethostname()
    if not name or name.lower().startswith("localhost"):
        return None
    try:
        addrs = {a[4][0] for a in socket.getaddrinfo(name, 80, socket.AF_INET,
                                                     socket.SOCK_STREAM)}
    except socket.gaierror:
        return None
    return name if "127.0.0.1" in addrs else None


class CutAttempts(unittest.TestCase):
    def run_scenario(self, host):
        p = Procs()
        try:
            port, r = p.redis()
            recv = p.receiver()
            h = p.hookd({"redis": "redis://127.0.0.1:%d" % port, "prefix": PREFIX,
                         "workers": 1, "secret": SECRET, "retry_schedule": "none",
                         "attempt_log": "all"})
            wait_for(lambda: r.hlen(PREFIX + ":workers") == 1, 20, "worker registered")
            workers = r.hgetall(PREFIX + ":workers")
            url = "http://%s:%d/hook" % (host, recv.port)
            cut = ["cut-%03d" % i for i in range(CUT)]
            ok = ["ok-%04d" % i for i in range(HEALTHY)]
            # LPUSH, workers take from the right: the cut jobs go first.
            push(r, PREFIX + ":queue",
                 [{"id": i, "url": url, "payload": {"i": i}, "timeout_ms": 1} for i in cut])
            push(r, PREFIX + ":queue", [{"id": i, "url": url, "payload": {"i": i}} for i in ok])

            def settled():
                log = log_of(h)
                if "killed by signal" in log or "exited with status" in log:
                    raise AssertionError("a worker died:\n" + log[-3000:])
                s = r.hgetall(PREFIX + ":stats")
                done = int(s.get(b"delivered", 0)) + r.llen(PREFIX + ":dead")
                return done >= CUT + HEALTHY
            wait_for(settled, 120, "all %d jobs delivered or dead" % (CUT + HEALTHY),
                     interval=0.1)

            log = log_of(h)
            self.assertNotIn("killed by signal", log)
            self.assertNotIn("exited with status", log)
            self.assertEqual(r.hgetall(PREFIX + ":workers"), workers,
                             "the same worker (same pid) throughout")

            dead = [json.loads(e) for e in r.lrange(PREFIX + ":dead", 0, -1)]
            dead_ids = [e["id"] for e in dead]
            self.assertEqual(len(dead_ids), len(set(dead_ids)), "each dead entry once")
            for e in dead:
                self.assertIn(e["id"], cut, "only cut jobs end dead")
                self.assertEqual(e["reason"], "timeout", e)
            # The attempt log (attempt_log = all) holds every attempt's
            # outcome, so each cut job is accounted for by its own id.
            attempts = {}
            for _, f in r.xrange(PREFIX + ":attempts"):
                attempts.setdefault(f[b"id"].decode(), []).append(f)
            delivered_cut = []
            for i in cut:
                rows = attempts.get(i, [])
                self.assertEqual(len(rows), 1, "%s: one attempt, no retry" % i)
                if i in dead_ids:
                    self.assertTrue(rows[0][b"error"].startswith(b"timeout"), rows[0])
                else:
                    self.assertEqual(rows[0][b"status"], b"200", "%s lost: %r" % (i, rows[0]))
                    delivered_cut.append(i)
            stats = r.hgetall(PREFIX + ":stats")
            self.assertEqual(int(stats[b"delivered"]), HEALTHY + len(delivered_cut))
            self.assertEqual(int(stats.get(b"requeued", 0)), 0, "nothing reclaimed")
            seen = recv.stats()
            self.assertEqual(seen["invalid"], [])
            for i in ok:
                self.assertGreaterEqual(seen["ids"].get(i, 0), 1, "%s not received" % i)
                self.assertEqual(len(attempts.get(i, [])), 1, "%s: one attempt" % i)
                self.assertEqual(attempts[i][0][b"status"], b"200")
            print("\n%s: %d cut jobs dead (timeout), %d answered within 1 ms, %d healthy "
                  "delivered, one worker throughout" % (host, len(dead_ids),
                                                        len(delivered_cut), HEALTHY),
                  file=sys.stderr)
        finally:
            p.close()

    def test_ip_literal(self):
        self.run_scenario("127.0.0.1")

    def test_threaded_resolver(self):
        name = resolver_name()
        if name is None:
            self.skipTest("no host name other than localhost resolves to 127.0.0.1 here")
        self.run_scenario(name)


if __name__ == "__main__":
    unittest.main(verbosity=2)
