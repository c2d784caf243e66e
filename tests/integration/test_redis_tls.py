"""hookd to Redis over TLS (rediss://): a redis-server with a TLS port and
no plain one, certificates the test run makes with openssl (harness.certs:
a CA, a server certificate for 127.0.0.1 and localhost, a client
certificate, an unrelated CA).

- 5,000 jobs pushed over TLS, delivered by 2 workers over rediss://, the
  books balanced by the conservation checker; `hookd -c FILE stats` too.
- Refused, with the reason in the log once per connection and in the CLI's
  message, nothing delivered: the wrong CA ("certificate verify failed"),
  the wrong name ("hostname mismatch": the certificate names 127.0.0.1 and
  localhost, redis_tls_server_name asks for another), no client
  certificate where Redis asks for one (--tls-auth-clients yes: "tlsv13
  alert certificate required").
- Accepted: the client certificate given; redis_tls_verify = off with the
  wrong CA.

A refusal is a negative result: after the first failure is logged, the
test gives each connection REFUSED_WINDOW to try again (100 ms doubling:
several attempts) and checks they were refused again without a second
line, and nothing was delivered."""
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conservation  # noqa: E402
from harness import (HOOKD, SECRET, Procs, certs, log_of, print_table, push,  # noqa: E402
                     redis_config, wait_for)

PREFIX = "tl"
ROWS = []
REFUSED_WINDOW = 1.5        # s after the first refusal: a few more attempts, all silent
# "<time> <LEVEL> <worker id> redis <fetch|ack> connection to <addr> <what>"
CONN_LINE = re.compile(r"^\S+ +\S+ +(\S+) redis (fetch|ack) connection to (\S+) (.*)$")


def conn_lines(text):
    """(worker, connection, addr, what) of each Redis connection state line."""
    return [m.groups() for m in map(CONN_LINE.match, text.splitlines()) if m]


class RedisTls(unittest.TestCase):
    def setUp(self):
        self.p = Procs()
        self.t0 = time.monotonic()
        self.running = []       # the hookd processes that must stay up

    def wait(self, cond, timeout, what, interval=0.05):
        """wait_for, failing at once with its log when a hookd exits (a
        setting refused, say) instead of at the deadline."""
        def check():
            for h in self.running:
                if h.poll() is not None:
                    raise AssertionError("hookd exited with %s while waiting for %s:\n%s"
                                         % (h.returncode, what, log_of(h)[-3000:]))
            return cond()
        return wait_for(check, timeout, what, interval)

    def tearDown(self):
        self.p.close()

    def start(self, auth_clients="no"):
        self.port, self.r = self.p.redis(tls=True, auth_clients=auth_clients)
        self.recv = self.p.receiver()

    def hookd(self, name="hookd", **kw):
        cfg = redis_config(self.port, tls=True)
        cfg.update(prefix=PREFIX, workers=2, secret=SECRET, max_in_flight=200)
        cfg.update(kw)
        h = self.p.hookd(cfg, name=name)
        self.running.append(h)
        return h

    def stats(self, name="hookd"):
        """`hookd -c <name>.conf stats`: the CLI with the daemon's config."""
        return subprocess.run([HOOKD, "-c", os.path.join(self.p.dir, name + ".conf"), "stats"],
                              capture_output=True, text=True, timeout=30)

    def enqueue(self, n, tag):
        ids = ["%s-%05d" % (tag, i) for i in range(n)]
        push(self.r, PREFIX + ":queue",
             [{"id": i, "url": self.recv.url, "payload": {"i": i}} for i in ids])
        return ids

    def delivered(self, ids):
        return len(set(ids) & set(self.recv.stats()["succeeded"]))

    def books(self, name, ids):
        """Wait for every job delivered; conservation checked; a row."""
        self.wait(lambda: self.delivered(ids) >= len(ids), 120, "%d delivered" % len(ids),
                 interval=0.1)
        succeeded = self.recv.stats()["succeeded"]
        report = conservation.check(self.r, PREFIX, ids, succeeded, allow_duplicates=True)
        dupes = sum(succeeded[i] - 1 for i in ids if i in succeeded)
        row = (name, len(ids), self.delivered(ids), report.places["dead"], len(report.lost),
               dupes, time.monotonic() - self.t0)
        ROWS.append(row)
        print("\n| %s | %d | %d | %d | %d | %d | %.1f s |" % row, file=sys.stderr)
        report.assert_conserved()
        self.assertEqual(dupes, 0, "duplicates with no fault injected")

    def refused(self, h, needle, ids):
        """h's connections fail with needle in the reason, each logged once,
        none ever up; ids still queued, nothing delivered."""
        self.wait(lambda: len({(w, c) for w, c, _, what in conn_lines(log_of(h))
                              if needle in what}) >= 4, 20,
                 "both connections of both workers refused (%s)" % needle)
        time.sleep(REFUSED_WINDOW)      # the retries, silent (see the docstring)
        lines = conn_lines(log_of(h))
        pairs = {(w, c) for w, c, _, _ in lines}
        self.assertEqual(len(pairs), 4, lines)
        for pair in pairs:
            said = [(addr, what) for w, c, addr, what in lines if (w, c) == pair]
            self.assertEqual(len(said), 1, "logged once per connection: %r" % said)
            addr, what = said[0]
            self.assertEqual(addr, "rediss://127.0.0.1:%d/0" % self.port)
            self.assertTrue(what.startswith("failed: ") or what.startswith("lost ("), what)
            self.assertIn(needle, what)
        self.assertEqual(self.delivered(ids), 0)
        self.assertEqual(self.r.llen(PREFIX + ":queue"), len(ids))
        self.assertEqual(self.r.hlen(PREFIX + ":workers"), 0, "no worker registered")
        self.assertIsNone(h.poll(), "hookd stays up, trying again")

    def cli_refused(self, needle):
        res = self.stats()
        self.assertNotEqual(res.returncode, 0, res.stdout)
        self.assertIn("cannot connect to redis at rediss://127.0.0.1:%d" % self.port, res.stderr)
        self.assertIn(needle, res.stderr)

    def test_1_5000_jobs_over_rediss(self):
        self.start()
        h = self.hookd()
        self.wait(lambda: self.r.hlen(PREFIX + ":workers") == 2, 20, "2 workers registered")
        ids = self.enqueue(5000, "j")
        self.books("5,000 jobs over rediss://, 2 workers", ids)
        self.assertIn("connection to rediss://127.0.0.1:%d/0 up" % self.port, log_of(h))
        res = self.stats()
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertRegex(res.stdout, r"queue +0\b")

    def test_2_wrong_ca_refused(self):
        self.start()
        ids = self.enqueue(10, "ca")
        h = self.hookd(redis_ca_file=certs().other_ca)
        self.refused(h, "certificate verify failed", ids)
        self.cli_refused("certificate verify failed")

    def test_3_wrong_name_refused(self):
        # The server's certificate names 127.0.0.1 and localhost only.
        self.start()
        ids = self.enqueue(10, "name")
        h = self.hookd(redis_tls_server_name="some.other.name")
        self.refused(h, "hostname mismatch", ids)
        self.cli_refused("hostname mismatch")

    def test_4_client_certificate(self):
        self.start(auth_clients="yes")
        ids = self.enqueue(100, "cc")
        # Without one: refused. Under TLS 1.3 the server's alert comes after
        # the client has sent its Finished; hookd reads it before it counts
        # the connection up, so it is a failed attempt like the others.
        h = self.hookd(name="no-cert")
        self.refused(h, "certificate required", ids)
        res = self.stats("no-cert")
        self.assertNotEqual(res.returncode, 0, res.stdout)
        self.assertIn("certificate required", res.stderr)
        self.running.remove(h)
        h.terminate()
        self.assertEqual(h.wait(timeout=30), 0)
        # With one: delivered.
        c = certs()
        self.hookd(name="cert", redis_client_cert=c.client_cert, redis_client_key=c.client_key)
        self.books("client certificate required and given", ids)
        res = self.stats("cert")
        self.assertEqual(res.returncode, 0, res.stderr)

    def test_5_verify_off_accepts_the_wrong_ca(self):
        # redis_tls_verify = off: for test rigs only (encrypted, but anyone
        # on the path can pose as Redis).
        self.start()
        self.hookd(redis_ca_file=certs().other_ca, redis_tls_verify="off")
        ids = self.enqueue(100, "off")
        self.books("redis_tls_verify = off, wrong CA", ids)
        res = self.stats()
        self.assertEqual(res.returncode, 0, res.stderr)


def tearDownModule():
    print_table(("scenario", "jobs", "delivered", "dead", "lost", "duplicates", "wall"),
                '| %s | %d | %d | %d | %d | %d | %.1f s |', ROWS)


if __name__ == "__main__":
    unittest.main(verbosity=2)
