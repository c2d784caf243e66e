"""hookd at the edges the conservation issue found: settings the config
accepts that used to lose jobs, keys an operator clobbered, and Redis at
maxmemory. Each scenario checks that every job produced is accounted for.
Real redis-server, real receivers, real hookd."""
import os
import re
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HOOKD, SECRET, Procs, log_of, push, wait_for  # noqa: E402


def stats(r, prefix="hookd"):
    """The counters that hold numbers (a test may plant one that does not)."""
    return {k.decode(): int(v) for k, v in r.hgetall(prefix + ":stats").items()
            if v.lstrip(b"-").isdigit()}


def in_flight_ids(r, prefix="hookd"):
    """Every job id in some worker's in-flight hash."""
    found = []
    for key in r.keys(prefix + ":inflight:*"):
        for v in r.hvals(key):
            m = re.search(rb'"id": ?"([^"]+)"', v)
            if m:
                found.append(m.group(1).decode())
    return found


class Limits(unittest.TestCase):
    def setUp(self):
        self.p = Procs()
        self.port, self.r = self.p.redis()
        self.rc = self.p.receiver()
        self.redis_url = "redis://127.0.0.1:%d" % self.port

    def tearDown(self):
        self.p.close()

    def start(self, env=None, **cfg):
        conf = {"redis": self.redis_url, "workers": 1, "secret": SECRET}
        conf.update(cfg)
        h = self.p.hookd(conf, env=dict(os.environ, **(env or {})))
        wait_for(lambda: self.r.hlen("hookd:workers") == conf["workers"], 20, "workers")
        return h

    def test_large_fetch_batch_delivers_everything(self):
        """20,000 jobs, one worker, HOOKD_MAX_IN_FLIGHT=10000 and
        HOOKD_FETCH_BATCH=5000 (settings the config accepts): every job is
        delivered. FETCH used to RPOP 5,000 jobs and then fail in unpack(),
        losing the batch on every try."""
        n = 20000
        push(self.r, "hookd:queue", [{"id": "j%d" % i, "url": self.rc.url, "body": "x"}
                                     for i in range(n)])
        h = self.start(env={"HOOKD_MAX_IN_FLIGHT": "10000", "HOOKD_FETCH_BATCH": "5000"})
        wait_for(lambda: stats(self.r).get("delivered", 0) == n, 120, "%d delivered" % n)
        s = self.rc.stats()
        self.assertEqual(sorted(s["succeeded"]), sorted("j%d" % i for i in range(n)))
        self.assertEqual(self.r.llen("hookd:dead"), 0)
        self.assertNotIn("fetch failed", log_of(h))

    def test_clobbered_parked_list_loses_nothing(self):
        """An operator overwrites the parked list of a saturated origin with a
        string while hookd parks jobs there: each job Redis refuses to park
        stays in flight, one clear line is logged, the other outcomes go
        through, and once the key is deleted the held jobs are parked."""
        hung = self.p.receiver()
        hung.configure(delay=3600000)       # accepts, never answers
        origin = "http://127.0.0.1:%d" % hung.port
        h = self.start(max_per_host=2, timeout="60s")
        push(self.r, "hookd:queue", [{"id": "first%d" % i, "url": hung.url, "body": "x"}
                                     for i in range(2)])
        wait_for(lambda: hung.stats()["count"] == 2, 20, "the hung origin full")
        self.r.set("hookd:parked:" + origin, "oops")
        slow = ["slow%d" % i for i in range(20)]
        push(self.r, "hookd:queue", [{"id": i, "url": hung.url, "body": "x"} for i in slow])
        push(self.r, "hookd:queue", [{"id": "ok%d" % i, "url": self.rc.url, "body": "x"}
                                     for i in range(100)])
        wait_for(lambda: len(self.rc.stats()["succeeded"]) == 100, 30, "healthy jobs delivered")
        # Once the origin is stalled (nothing answered for 1 s) its jobs are
        # parked, which Redis refuses: they stay in flight, said once.
        refused = re.compile(r"Redis refused to record its outcome \(K\): key "
                             r"hookd:parked:\S+ holds a string")
        wait_for(lambda: refused.search(log_of(h)), 20, "the refusal logged")
        wait_for(lambda: stats(self.r).get("parked", 0) == 0 and
                 sorted(set(in_flight_ids(self.r)) - {"first0", "first1"}) == sorted(slow),
                 20, "the refused jobs still in flight")
        self.assertEqual(len(refused.findall(log_of(h))), 1, log_of(h)[-3000:])
        self.assertEqual(self.r.get("hookd:parked:" + origin), b"oops")
        self.assertEqual(stats(self.r)["delivered"], 100)

        self.r.delete("hookd:parked:" + origin)
        wait_for(lambda: self.r.llen("hookd:parked:" + origin) == 20, 20, "held jobs parked")
        self.assertEqual(sorted(in_flight_ids(self.r)), ["first0", "first1"])
        parked = [re.search(rb'"id": ?"([^"]+)"', j).group(1).decode()
                  for j in self.r.lrange("hookd:parked:" + origin, 0, -1)]
        self.assertEqual(sorted(parked), sorted(slow))
        wait_for(lambda: "outcomes Redis refused earlier are recorded now" in log_of(h), 10,
                 "the recovery logged")

    def test_maxmemory_reached_mid_run(self):
        """Redis reaches maxmemory (noeviction) while jobs are in flight:
        every write script is refused whole (#!lua shebang), nothing is
        lost, each part of hookd says so once and once more when it works
        again, and delivery resumes on its own when memory is freed."""
        h = self.start(max_in_flight=50, max_per_host=50)
        # Each delivery takes 500 ms, so that when the first 50 are counted
        # the next 50 are surely still in flight and their outcomes meet
        # the refusal. At 100 ms a slow run (CI under the sanitizers) could
        # have recorded them all, its next jobs held at their dedupe check,
        # and nothing to record was ever refused.
        url = self.rc.url + "?delay=500"
        produced = ["a%d" % i for i in range(400)]
        push(self.r, "hookd:queue", [{"id": i, "url": url, "body": "x"} for i in produced])
        wait_for(lambda: stats(self.r).get("delivered", 0) >= 50, 30, "deliveries under way")

        used = int(self.r.info("memory")["used_memory"])
        self.r.config_set("maxmemory", used + 2 * 1024 * 1024)
        self.r.setrange("ballast", 4 * 1024 * 1024, "x")        # now over the limit
        # Held until PROMOTE (once a second) was refused too, so recording
        # has been refused and retried for a while.
        wait_for(lambda: re.search(r"recording \d+ outcomes failed: OOM", log_of(h)) and
                 "promoting retries failed: OOM" in log_of(h), 20, "hookd refused by Redis")
        # Producers are refused too: those jobs never entered Redis.
        refused = 0
        for i in range(20):
            try:
                self.r.lpush("hookd:queue", '{"id":"late%d","url":"%s","body":"x"}' % (i, url))
                produced.append("late%d" % i)
            except Exception as e:      # redis.exceptions.ResponseError: OOM ...
                self.assertIn("OOM", str(e))
                refused += 1
        self.assertEqual(refused, 20)
        before = stats(self.r).get("delivered", 0)

        self.r.delete("ballast")
        wait_for(lambda: stats(self.r).get("delivered", 0) == len(produced), 60,
                 "every job delivered after memory was freed")
        self.assertGreater(len(produced), before)
        s = self.rc.stats()
        self.assertEqual(sorted(s["succeeded"]), sorted(produced))
        self.assertEqual(set(s["ids"].values()), {1})
        # One line per state change: each part that was refused said so once
        # and once that it works again. Recording is refused for sure (jobs
        # were in flight); fetching stops while it is, so FETCH may never
        # be sent; a PROMOTE or a dedupe check may or may not fall inside.
        pairs = [(r"recording \d+ outcomes failed: OOM", r"recording outcomes works again"),
                 (r"fetch failed: OOM", r"fetching works again"),
                 (r"promoting retries failed: OOM", r"promoting retries works again"),
                 (r"dedupe check of \d+ jobs failed: OOM", r"dedupe checks work again")]
        wait_for(lambda: all(len(re.findall(f, log_of(h))) == len(re.findall(a, log_of(h)))
                             for f, a in pairs), 10, "every part working again, said once")
        log = log_of(h)
        for failed, again in pairs:
            n = len(re.findall(failed, log))
            self.assertLessEqual(n, 1, "%r more than once:\n%s" % (failed, log[-4000:]))
            self.assertEqual(len(re.findall(again, log)), n, "%r:\n%s" % (again, log[-4000:]))
        self.assertEqual(len(re.findall(pairs[0][0], log)), 1)
        self.assertNotIn("heartbeat failed", log)       # allow-oom: workers stay registered

    def test_open_files_limit(self):
        """max_in_flight needs a socket per request: beyond what the process
        may open (here a user without the right to raise its hard limit of
        1,000) it is refused, by --check-config and at start, naming both
        numbers; within it, accepted."""
        # A copy the user can reach whatever directory the tree is in.
        binary = os.path.join(self.p.dir, "hookd-for-nobody")
        shutil.copy(HOOKD, binary)
        os.chmod(self.p.dir, 0o755)

        def run(*args):
            return subprocess.run(["prlimit", "--nofile=1000:1000", "runuser", "-u", "nobody",
                                   "--", binary, "--redis", self.redis_url, *args],
                                  capture_output=True, text=True, timeout=30, cwd="/")
        msg = ("hookd: max_in_flight 800 needs at least 1056 open files per worker, and this "
               "process may open 1000 (ulimit -Hn) without the right to raise it: raise it "
               "(LimitNOFILE= in hookd.service) or lower max_in_flight\n")
        for args in (["--check-config"], ["--data-dir", "/tmp"]):
            out = run("--max-in-flight", "800", *args)
            self.assertEqual((out.returncode, out.stderr), (2, msg))
        out = run("--max-in-flight", "700", "--check-config")
        self.assertEqual((out.returncode, out.stdout), (0, "configuration OK\n"), out.stderr)


class LostFetch(unittest.TestCase):
    """A fetch whose reply is lost is given back with RELEASE once the
    worker reconnects; a RELEASE that Redis refuses is tried again after a
    pause, said once, not resent in a tight loop."""

    def setUp(self):
        self.p = Procs()
        # DEBUG SLEEP holds Redis still long enough for the worker's
        # watchdog to cut a fetch whose reply then never comes.
        self.port, self.r = self.p.redis(extra=("--enable-debug-command", "yes"))
        self.rc = self.p.receiver()

    def tearDown(self):
        self.p.close()

    def evals(self):
        return int(self.r.info("commandstats").get("cmdstat_eval", {}).get("calls", 0))

    def test_refused_release_is_paused_not_looped(self):
        # RELEASE counts in requeued; a counter that is no number makes Redis
        # refuse it (and nothing else the worker sends uses that counter).
        self.r.hset("hookd:stats", "requeued", "oops")
        # One job per FETCH, answered at once, so slots are always free and
        # the fetch connection always has a FETCH outstanding, or sends one
        # into the sleep below. (Answers after 200 ms, 1,000 at a time, let
        # a fast FETCH use up every slot: nothing was then outstanding or
        # sent during the sleep, no reply was lost, and the test failed.)
        h = self.p.hookd({"redis": "redis://127.0.0.1:%d" % self.port, "workers": 1,
                          "secret": SECRET, "max_in_flight": 1000, "max_per_host": 1000,
                          "fetch_batch": 1})
        wait_for(lambda: self.r.hlen("hookd:workers") == 1, 20, "worker")
        n = 20000
        push(self.r, "hookd:queue", [{"id": "j%d" % i, "url": self.rc.url, "body": "x"}
                                     for i in range(n)])
        wait_for(lambda: stats(self.r).get("delivered", 0) > 1000, 30, "deliveries under way")
        # Redis sleeps with that FETCH outstanding; the worker's watchdog
        # (6 s) cuts the connection, so its reply is lost.
        self.r.execute_command("DEBUG", "SLEEP", "7")
        refusal = "requeueing the jobs of a lost fetch failed: hookd: field requeued"
        wait_for(lambda: refusal in log_of(h), 30, "the refused RELEASE logged")
        calls = self.evals()
        wait_for(lambda: log_of(h).count("retrying every 1000 ms") and
                 self.evals() > calls, 10, "scripts still running")
        start, calls = time.monotonic(), self.evals()
        time.sleep(2)       # a rate over a span of time: there is no event to wait on
        rate = (self.evals() - calls) / (time.monotonic() - start)
        # A paused RELEASE, a heartbeat, a PROMOTE: a few calls a second.
        # Resent at once it ran thousands of times a second.
        self.assertLess(rate, 50, "EVAL calls per second while RELEASE is refused")
        self.assertEqual(log_of(h).count(refusal), 1)

        self.r.hdel("hookd:stats", "requeued")
        wait_for(lambda: stats(self.r).get("delivered", 0) >= n, 60, "every job delivered")
        wait_for(lambda: "fetching works again" in log_of(h), 10, "recovery logged")
        self.assertGreater(stats(self.r).get("requeued", 0), 0)
        self.assertEqual(sorted(self.rc.stats()["succeeded"]), sorted("j%d" % i for i in range(n)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
