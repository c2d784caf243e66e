"""Every numeric setting at its minimum and at its maximum: a 2,000-job
delivery (mostly healthy jobs, some retried once, some dead at once) with
the conservation checker after it, so each value the config accepts is
shown to work and to lose nothing, or to be refused at start and by
--check-config with the same clear message. The per-job limits
(timeout_ms, max_attempts) are swept the same way. The table it prints
(key, value, jobs, delivered, dead, waiting in P:retry, lost) goes into
the notes.

Real redis-server, a real receiver, real hookd; each case starts its own
hookd on a flushed Redis, the receiver's record reset."""
import json
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conservation  # noqa: E402
from harness import HOOKD, SECRET, Procs, log_of, wait_for  # noqa: E402

# Under the sanitizers (tests/run sets ASAN_OPTIONS for that pass) a
# delivery costs several times as much CPU; 500 jobs still take every path
# (RETRIED retried, DEAD dead, the rest delivered) and keep the suite within
# its time (at 1,000 this file alone took 174 s of that pass).
JOBS = 500 if "ASAN_OPTIONS" in os.environ else 2000
RETRIED = 100           # fail their first attempt (503), delivered on the retry
DEAD = 100              # answered 410 Gone: dead at once
MIB = 1024 * 1024
DAY_MS = 86400000
ROWS = []               # the table, printed at the end
P = None                # the Procs of the module: one redis-server, one receiver


def setUpModule():
    global P
    P = Procs()
    P.redis_port, P.r = P.redis()
    P.rc = P.receiver()


def tearDownModule():
    P.close()
    print("\n| key | value | jobs | delivered | dead | waiting | lost |\n"
          "|---|---|---|---|---|---|---|", file=sys.stderr)
    for row in ROWS:
        print("| %s |" % " | ".join(str(c) for c in row), file=sys.stderr)


def compact(j):
    return json.dumps(j, separators=(",", ":"))


# ---- the jobs of a case: (tag, receiver) -> (jobs, delivered, dead) ---------

def mixed(**extra):
    """JOBS jobs named <tag>-<i>: the first RETRIED fail once, the next DEAD
    get a 410, the rest are healthy; extra keys on every job."""
    def make(tag, rc):
        jobs = []
        for i in range(JOBS):
            q = "?fail_first=1&status=503" if i < RETRIED else \
                "?status=410" if i < RETRIED + DEAD else ""
            jobs.append(dict({"id": "%s-%d" % (tag, i), "url": rc.url + q, "body": "x"},
                             **extra))
        return jobs, JOBS - DEAD, DEAD
    return make


def fail_once_dead(**extra):
    """mixed, where a job that fails once is dead (no retry for it)."""
    def make(tag, rc):
        jobs, _, _ = mixed(**extra)(tag, rc)
        return jobs, JOBS - DEAD - RETRIED, DEAD + RETRIED
    return make


def fail_once_waits(tag, rc):
    """mixed, where a job that fails once waits in P:retry."""
    jobs, _, _ = mixed()(tag, rc)
    return jobs, JOBS - DEAD - RETRIED, DEAD


def small(tag, rc):
    """JOBS jobs of at most 64 bytes, and one a byte over (too_large)."""
    url = "http://127.0.0.1:%d/" % rc.port
    jobs = [{"id": "t%d" % i, "url": url, "body": ""} for i in range(JOBS)]
    over = {"id": "t-over", "url": url, "body": ""}
    over["body"] = "x" * (65 - len(compact(over)))
    assert max(len(compact(j)) for j in jobs) <= 64 and len(compact(over)) == 65
    return jobs + [over], JOBS, 1


def huge(tag, rc):
    """mixed, plus a job of exactly 64 MiB (delivered) and one a byte over
    (too_large)."""
    jobs, delivered, dead = mixed()(tag, rc)
    for name, size in (("big", 64 * MIB), ("over", 64 * MIB + 1)):
        j = {"id": "%s-%s" % (tag, name), "url": rc.url, "body": ""}
        j["body"] = "x" * (size - len(compact(j)))
        assert len(compact(j)) == size
        jobs.append(j)
    return jobs, delivered + 1, dead + 1


def always_failing(tag, rc):
    """mixed with max_attempts 100, 20 of the healthy jobs answered 500
    every time: 100 attempts each, then dead."""
    jobs, delivered, dead = mixed(max_attempts=100)(tag, rc)
    for j in jobs[-20:]:
        j["url"] = rc.url + "?status=500"
    return jobs, delivered - 20, dead + 20


# ---- the cases: key, value, config overrides, jobs, waiting, exact ---------
# exact: delivered and dead must be what the jobs say, and each delivery
# happen once; False where a 1 ms timeout makes an attempt's fate a race
# (the receiver may have answered in time for itself, not for hookd).

CASES = []


def case(key, lo, hi, conf=None, jobs=mixed(), waiting=0, exact=True):
    """key at its minimum lo and its maximum hi; a setting (conf=None adds
    key = value to the config) or a per-job limit (conf given)."""
    for which, value in (("min", lo), ("max", hi)):
        c = dict({key: value} if conf is None else conf)
        CASES.append(("%s_%s" % (key, which), key, value, c, jobs, waiting, exact))


case("workers", 1, 256)
case("max_in_flight", 1, 100000)
case("max_per_host", 1, 100000)
case("fetch_batch", 1, 10000)
case("heartbeat_ttl", "1000ms", "3600000ms")
case("shutdown_timeout", "0ms", "3600000ms")
case("poison_after", 1, 100)
case("dead_max", 1, 1 << 40)
case("retry_jitter", 0, 1)
case("retry_after_max", "0ms", "86400000ms")
case("attempt_log_max", 1, 1 << 40)
case("response_capture_bytes", 0, MIB)
case("max_response_bytes", 0, 1 << 30)
case("batch_ttl", "1000ms", "%dms" % (366 * DAY_MS))
case("unknown_batch_wait", "0ms", "%dms" % DAY_MS)
case("dedupe_window", "0ms", "%dms" % (366 * DAY_MS))
# With as many replicas attached as it waits for (run_case starts them):
# at 16, every RECORD is followed by WAIT 16 and counts once all have it.
case("redis_wait_replicas", 0, 16)
# The breaker's settings, with the breaker on, all at their minimum in one
# case and all at their maximum in another (one case each would add 14
# hookd runs to the suite for what two show). At the minimum it opens on
# the first failure (breaker_min_requests 1, threshold 1 %): the first jobs
# fetched are the RETRIED ones failing once, so it opens, parks, probes
# every 100 ms and closes many times within the case, writing every event
# to a stream capped at 1. At the maximum it never opens (10^6 attempts in
# a window), as a cooldown of a day could not be waited out here: what
# that case shows is that the values are taken and nothing else changes.
BREAKER_MIN = {"breaker": "on", "breaker_window": "1000ms", "breaker_min_requests": 1,
               "breaker_failure_threshold": 1, "breaker_cooldown": "100ms",
               "breaker_cooldown_max": "100ms", "disable_after": "0ms", "events_max": 1}
BREAKER_MAX = {"breaker": "on", "breaker_window": "86400000ms",
               "breaker_min_requests": 1000000, "breaker_failure_threshold": 100,
               "breaker_cooldown": "86400000ms", "breaker_cooldown_max": "86400000ms",
               "disable_after": "%dms" % (366 * DAY_MS), "events_max": 1 << 40}
CASES += [("breaker_min", "breaker_*", "min", BREAKER_MIN, mixed(), 0, True),
          ("breaker_max", "breaker_*", "max", BREAKER_MAX, mixed(), 0, True)]
CASES += [
    ("timeout_min", "timeout", "1ms", {"timeout": "1ms"}, mixed(), 0, False),
    ("timeout_max", "timeout", "600000ms", {"timeout": "600000ms"}, mixed(), 0, True),
    ("max_job_bytes_min", "max_job_bytes", 64, {"max_job_bytes": 64}, small, 0, True),
    ("max_job_bytes_max", "max_job_bytes", 64 * MIB, {"max_job_bytes": 64 * MIB}, huge, 0,
     True),
    ("retry_schedule_shortest", "retry_schedule", "none", {"retry_schedule": "none"},
     fail_once_dead(), 0, True),
    ("retry_schedule_longest", "retry_schedule", "7d x 32",
     {"retry_schedule": ",".join(["7d"] * 32)}, fail_once_waits, RETRIED, True),
    ("job_timeout_ms_min", "job timeout_ms", 1, {}, mixed(timeout_ms=1), 0, False),
    ("job_timeout_ms_max", "job timeout_ms", 600000, {}, mixed(timeout_ms=600000), 0, True),
    ("job_max_attempts_min", "job max_attempts", 1, {}, fail_once_dead(max_attempts=1), 0,
     True),
    ("job_max_attempts_max", "job max_attempts", 100, {"retry_schedule": "5ms"},
     always_failing, 0, True),
]


class Edges(unittest.TestCase):
    def setUp(self):
        self.r = P.r

    def counters(self):
        return {k.decode(): int(v) for k, v in self.r.hgetall("hookd:stats").items()}

    def detach(self, replicas):
        for proc in replicas:
            proc.terminate()
            proc.wait(timeout=30)
        wait_for(lambda: self.r.info("replication")["connected_slaves"] == 0, 30,
                 "the replicas gone")

    def refused(self, key, value, conf, path):
        """Whether hookd refuses conf; if so, at start and in --check-config
        alike, with one line naming the key (recorded as the row)."""
        check = subprocess.run([HOOKD, "--check-config", "-c", path], capture_output=True,
                               text=True, timeout=30)
        if check.returncode == 0:
            self.assertEqual(check.stdout, "configuration OK\n")
            return False
        start = subprocess.run([HOOKD, "-c", path], capture_output=True, text=True, timeout=30)
        self.assertEqual((check.returncode, start.returncode), (2, 2), start.stderr)
        self.assertEqual(start.stderr, check.stderr)
        self.assertRegex(check.stderr, r"^hookd: %s [^\n]+\n$" % key)
        ROWS.append((key, value, "-", "refused: " + check.stderr.strip()[len("hookd: "):],
                     "", "", ""))
        return True

    def run_case(self, tag, key, value, overrides, make_jobs, waiting, exact):
        conf = {"redis": "redis://127.0.0.1:%d" % P.redis_port, "workers": 1,
                "secret": SECRET, "retry_schedule": "50ms", "attempt_log": "all",
                "log_level": "warn", "breaker": "off"}
        conf.update(overrides)
        path = os.path.join(P.dir, tag + ".conf")
        with open(path, "w") as f:
            f.write("".join("%s = %s\n" % kv for kv in conf.items()))
        if self.refused(key, value, conf, path):
            return
        self.r.flushall()
        rc = P.rc
        rc.configure(reset=1)
        replicas = []
        if key == "redis_wait_replicas":
            # the primary's setting: else each first sync waits 5 s (Redis 7)
            self.r.config_set("repl-diskless-sync-delay", 0)
            for _ in range(value):
                P.replica(P.redis_port, appendonly=False)
                replicas.append(P.last_redis[0])
            self.addCleanup(self.detach, replicas)
        env = None
        if tag == "workers_max" and "ASAN_OPTIONS" in os.environ:
            # LeakSanitizer at the exit of each of 256 workers took most of
            # this file's time under the sanitizers (over 60 s of the stop
            # alone); the workers run the code every other case checks for
            # leaks, so here they are not checked again.
            env = dict(os.environ, ASAN_OPTIONS=os.environ["ASAN_OPTIONS"] + ":detect_leaks=0")
        h = P.hookd_argv(["-c", path], name=tag, env=env)
        try:
            jobs, want_delivered, want_dead = make_jobs(tag, rc)
            wait_for(lambda: self.r.hlen("hookd:workers") == conf["workers"], 60,
                     "%d workers registered" % conf["workers"])
            pipe = self.r.pipeline(transaction=False)
            for j in jobs:
                pipe.lpush("hookd:queue", compact(j))
            pipe.execute()
            started = time.monotonic()

            def settled():
                c, waits = self.counters(), self.r.zcard("hookd:retry")
                done = c.get("delivered", 0) + c.get("dead", 0) + waits == len(jobs)
                return done and waits == waiting and c
            c = wait_for(settled, 180, "%s = %s settled" % (key, value))
            took = time.monotonic() - started
            h.send_signal(signal.SIGTERM)
            # Not a bound on hookd: the supervisor enforces its own
            # (shutdown_timeout, then SIGKILL). 256 workers under ASan each
            # run LeakSanitizer at exit, which took over 60 s on this
            # 2-core machine under load (exit, SIGKILL and 256 reclaims).
            h.wait(timeout=180)
            self.assertEqual(h.returncode, 0, log_of(h)[-2000:])
            delivered = rc.stats()["succeeded"]
        finally:
            # Whatever happened, this case's hookd is gone before the next
            # one starts on the same Redis.
            if h.poll() is None:
                h.kill()
                h.expect_killed = True
            h.wait()
        trimmed = c.get("dead_trimmed", 0)
        report = conservation.check(self.r, "hookd", [j["id"] for j in jobs], delivered,
                                    trimmed=trimmed, allow_duplicates=not exact)
        report.assert_conserved()
        ROWS.append((key, value, len(jobs), c.get("delivered", 0), c.get("dead", 0), waiting,
                     len(report.lost) - trimmed))
        if exact:
            self.assertEqual((c.get("delivered", 0), c.get("dead", 0)),
                             (want_delivered, want_dead))
        print("  %s = %s: %d jobs settled in %.1f s" % (key, value, len(jobs), took),
              file=sys.stderr)


for _tag, *_args in CASES:
    def _test(self, tag=_tag, args=tuple(_args)):
        self.run_case(tag, *args)
    _test.__doc__ = "%s = %s" % (_args[0], _args[1])
    setattr(Edges, "test_" + _tag, _test)


if __name__ == "__main__":
    unittest.main(verbosity=2)
