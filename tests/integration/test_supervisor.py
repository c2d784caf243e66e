"""The supervisor's own promises, with real processes: its deadlines hold
across wall-clock steps, nothing it does for one child holds up its signal
loop, and a SIGHUP cannot strand jobs under an old prefix.

Faults are injected with real signals (SIGSTOP on redis-server, kill -9 on
workers) and, for the clock, libfaketime (a wall-clock step seen by the
hookd processes only). Every wait is a condition with a deadline; the bounds
are derived in each test from what the code did before, with the margin
stated."""
import datetime
import json
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SECRET, Procs, log_of, push, wait_for  # noqa: E402

FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def children(ppid):
    """{pid: comm} of ppid's live (not zombie) children."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == ppid and fields[0] != "Z":
            out[int(d)] = comm
    return out


def log_times(text, needle):
    """Wall-clock timestamps (unix s) of the log lines containing needle."""
    out = []
    for line in text.splitlines():
        if needle in line:
            stamp = line.split(" ", 1)[0]
            out.append(datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
                       .replace(tzinfo=datetime.timezone.utc).timestamp())
    return out


class Base(unittest.TestCase):
    prefix = "sv"

    def setUp(self):
        self.p = Procs()

    def tearDown(self):
        self.p.close()

    def config(self, **kw):
        cfg = {"redis": "redis://127.0.0.1:%d" % self.port, "prefix": self.prefix,
               "workers": 2, "secret": SECRET, "heartbeat_ttl": "2s", "timeout": "30s",
               "shutdown_timeout": "5s", "retry_schedule": "100ms,200ms,400ms"}
        cfg.update(kw)
        return cfg

    def workers(self, prefix=None):
        return {k.decode(): json.loads(v)
                for k, v in self.r.hgetall((prefix or self.prefix) + ":workers").items()}

    def enqueue(self, n, url, tag, prefix=None):
        ids = ["%s-%04d" % (tag, i) for i in range(n)]
        push(self.r, (prefix or self.prefix) + ":queue",
             [{"id": i, "url": url, "payload": {"i": i}} for i in ids])
        return ids


class WallClockSteps(Base):
    """Deadlines are on the monotonic clock: a step of the wall clock (NTP,
    date -s) neither cuts a drain short nor postpones a respawn."""

    def faked(self):
        """The environment for a hookd whose wall clock the test can step
        by writing self.clock (a libfaketime offset such as "+1d")."""
        self.assertTrue(os.path.exists(FAKETIME), "no libfaketime: deploy/install-deps --test")
        self.clock = os.path.join(self.p.dir, "clock")
        self.step("+0")
        asan = os.environ.get("ASAN_OPTIONS", "")
        return dict(os.environ, LD_PRELOAD=FAKETIME, FAKETIME_TIMESTAMP_FILE=self.clock,
                    FAKETIME_NO_CACHE="1", FAKETIME_DONT_FAKE_MONOTONIC="1",
                    # libfaketime is preloaded ahead of the sanitizer runtime
                    ASAN_OPTIONS=(asan + ":" if asan else "") + "verify_asan_link_order=0")

    def step(self, offset):
        with open(self.clock + ".tmp", "w") as f:
            f.write(offset + "\n")
        os.rename(self.clock + ".tmp", self.clock)

    def test_forward_step_does_not_cut_the_drain(self):
        # Before: kill_at = wall clock + 5 s + shutdown_timeout, so a step of
        # +1 day during the drain sent SIGKILL at the next 200 ms tick and
        # the requests in flight were lost to it.
        self.port, self.r = self.p.redis()
        recv = self.p.receiver()
        h = self.p.hookd(self.config(shutdown_timeout="10s"), env=self.faked())
        wait_for(lambda: len(self.workers()) == 2, 30, "2 workers")
        recv.configure(delay=3000)      # each request is answered after 3 s
        ids = self.enqueue(20, recv.url, "fwd")
        wait_for(lambda: recv.stats()["count"] >= 20, 30, "20 requests in flight")
        h.send_signal(signal.SIGTERM)
        wait_for(lambda: "SIGTERM: stopping" in log_of(h), 10, "the stop begun")
        self.step("+1d")
        self.assertEqual(h.wait(timeout=30), 0)
        log = log_of(h)
        self.assertNotIn("did not stop in time", log)
        self.assertEqual(set(recv.stats()["succeeded"]), set(ids), "the drain finished them")
        # the step did reach the supervisor: its last line is a day ahead
        self.assertGreater(log_times(log, "supervisor stopped")[-1], time.time() + 23 * 3600)

    def test_backward_step_does_not_postpone_a_respawn(self):
        # Before: respawn_at = wall clock + backoff, so a step of -1 h while
        # a crashed worker waited for its restart postponed it by an hour.
        self.port, self.r = self.p.redis()
        ca = os.path.join(self.p.dir, "ca.pem")     # missing: workers exit at start
        h = self.p.hookd(self.config(workers=1, ca_file=ca), env=self.faked())
        wait_for(lambda: "restarting in 1600 ms" in log_of(h), 30,
                 "a worker crash-looping, restart backoff at 1.6 s")
        self.step("-1h")
        with open(ca, "w") as f:
            f.write("# placeholder CA bundle; only its presence matters here\n")
        # 1.6 s of backoff, then a worker start (slow under ASan): 15 s is
        # ample, and far from the hour the step used to add.
        wait_for(lambda: len(self.workers()) == 1, 15, "the worker restarted")
        started = log_times(log_of(h), "started")[-1]
        self.assertLess(started, time.time() - 50 * 60, "the step reached hookd")


if __name__ == "__main__":
    unittest.main(verbosity=2)
