"""The metrics endpoint (metrics_listen): /metrics counts what the workers
did, exactly; promtool accepts the exposition; Debian's real prometheus
scrapes it; /readyz follows Redis; the counters survive a worker's death.

Real redis-server, a real receiver, real hookd (workers = 2) with its
metrics process, and for one test the real prometheus binary."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HOOKD, Procs, free_port, log_of, push, wait_for  # noqa: E402

OK, FIVE_XX, FOUR_XX, HUNG, REFUSED = 40, 5, 3, 2, 2
# Every label the exposition may carry: none takes a URL, origin or id.
LABELS = {"outcome", "result", "le", "queue", "version", "state"}
SAMPLE = re.compile(r'^([a-z_]+)(?:\{([^}]*)\})? (\S+)$')


def get(url, timeout=5):
    """(status, body) of a GET, 503s included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def listening(base):
    try:
        get(base + "/livez", timeout=1)
        return True
    except OSError:
        return False


def parse(text):
    """{(name, ((label, value), ...)): float} of every sample."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


class Metrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = Procs()
        cls.rport, cls.r = cls.p.redis()
        cls.recv = cls.p.receiver()
        cls.mport = free_port()
        cls.base = "http://127.0.0.1:%d" % cls.mport
        cls.h = cls.p.hookd({"redis": "redis://127.0.0.1:%d" % cls.rport, "prefix": "mt",
                             "workers": 2, "retry_schedule": "100ms",
                             "metrics_listen": "127.0.0.1:%d" % cls.mport})
        wait_for(lambda: get(cls.base + "/readyz")[0] == 200 if listening(cls.base) else None,
                 15, "/readyz to say ready")

    @classmethod
    def tearDownClass(cls):
        cls.p.close()


    def scrape(self):
        status, body = get(self.base + "/metrics")
        self.assertEqual(status, 200)
        return body, parse(body)

    def value(self, name, **labels):
        return parse(get(self.base + "/metrics")[1]).get(
            (name, tuple(sorted(labels.items()))))

    def test_1_counts(self):
        """Outcomes, attempts by class and the histogram match what was
        sent, and what the receiver saw."""
        url = self.recv.url
        closed = "http://127.0.0.1:%d/hook" % free_port()
        jobs = [{"id": "ok-%d" % i, "url": url, "body": "x"} for i in range(OK)]
        # 2 attempts each, both 500: retried once, then dead
        jobs += [{"id": "e5-%d" % i, "url": url + "?status=500", "body": "x",
                  "max_attempts": 2} for i in range(FIVE_XX)]
        jobs += [{"id": "e4-%d" % i, "url": url + "?status=404", "body": "x",
                  "max_attempts": 1} for i in range(FOUR_XX)]
        jobs += [{"id": "hang-%d" % i, "url": url + "?hang=1", "body": "x",
                  "max_attempts": 1, "timeout_ms": 300} for i in range(HUNG)]
        jobs += [{"id": "ref-%d" % i, "url": closed, "body": "x", "max_attempts": 1}
                 for i in range(REFUSED)]
        jobs.append(b"this is no job")
        push(self.r, "mt:queue", jobs)
        dead = FIVE_XX + FOUR_XX + HUNG + REFUSED
        wait_for(lambda: self.value("hookd_deliveries_total", outcome="dead") == dead and
                 self.value("hookd_deliveries_total", outcome="delivered") == OK, 30,
                 "every job's outcome in /metrics")
        body, m = self.scrape()
        rec = self.recv.stats()
        out = {k[1][0][1]: v for k, v in m.items() if k[0] == "hookd_deliveries_total"}
        self.assertEqual(out, {"delivered": OK, "retried": FIVE_XX, "dead": dead,
                               "duplicate": 0, "invalid": 1, "parked": 0})
        self.assertEqual(len(rec["succeeded"]), OK)
        self.assertEqual(rec["count"], OK + 2 * FIVE_XX + FOUR_XX + HUNG)
        att = {k[1][0][1]: v for k, v in m.items() if k[0] == "hookd_attempts_total"}
        self.assertEqual(att, {"2xx": OK, "3xx": 0, "4xx": FOUR_XX, "5xx": 2 * FIVE_XX,
                               "timeout": HUNG, "connect_failed": REFUSED, "tls": 0,
                               "forbidden": 0, "other": 0})
        count = m[("hookd_attempt_duration_seconds_count", ())]
        self.assertEqual(count, sum(att.values()))
        self.assertEqual(m[("hookd_attempt_duration_seconds_bucket", (("le", "+Inf"),))], count)
        # the two hung attempts took their 300 ms timeout: above 0.25 s
        self.assertGreaterEqual(count - m[("hookd_attempt_duration_seconds_bucket",
                                           (("le", "0.25"),))], HUNG)
        self.assertGreaterEqual(m[("hookd_attempt_duration_seconds_sum", ())], 0.6)
        wait_for(lambda: self.value("hookd_queue_depth", queue="dead") == dead + 1, 5,
                 "the dead list's depth (its cache is 1 s)")
        m = self.scrape()[1]
        for q in ("ready", "retry", "parked"):
            self.assertEqual(m[("hookd_queue_depth", (("queue", q),))], 0, q)
        self.assertEqual(m[("hookd_backlog_age_seconds", ())], 0)
        self.assertEqual(m[("hookd_in_flight", ())], 0)
        self.assertEqual(m[("hookd_workers", ())], 2)
        self.assertEqual(m[("hookd_redis_up", ())], 1)
        self.assertEqual(m[("hookd_build_info", (("version", "0.1.0"),))], 1)
        labels = {name for (_, ls) in m for name, _ in ls}
        self.assertLessEqual(labels, LABELS)

    def test_2_promtool(self):
        """promtool (Debian's prometheus package) finds nothing to say."""
        body = self.scrape()[0]
        p = subprocess.run(["promtool", "check", "metrics"], input=body, text=True,
                           capture_output=True, timeout=30)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, "", ""))
        for fam in ("deliveries_total", "attempts_total", "attempt_duration_seconds",
                    "queue_depth", "backlog_age_seconds", "in_flight", "workers",
                    "worker_restarts_total", "redis_up", "redis_errors_total", "build_info"):
            self.assertIn("# TYPE hookd_%s " % fam, body)
            self.assertIn("# HELP hookd_%s " % fam, body)

    def test_3_prometheus(self):
        """The real prometheus scrapes hookd; its query API returns the
        receiver's count of deliveries."""
        d = tempfile.mkdtemp(dir=self.p.dir, prefix="prom-")
        port = free_port()
        with open(os.path.join(d, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: hookd\n    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % self.mport)
        log = open(os.path.join(d, "log"), "w")
        self.p.spawn(["prometheus", "--config.file=" + os.path.join(d, "prometheus.yml"),
                      "--storage.tsdb.path=" + os.path.join(d, "tsdb"),
                      "--web.listen-address=127.0.0.1:%d" % port], stdout=log, stderr=log)
        log.close()
        q = urllib.parse.quote('hookd_deliveries_total{outcome="delivered"}')

        def result():
            try:
                s, b = get("http://127.0.0.1:%d/api/v1/query?query=%s" % (port, q), 2)
            except OSError:
                return None
            r = json.loads(b)["data"]["result"] if s == 200 else []
            return r or None
        wait_for(result, 30, "prometheus to have scraped hookd", interval=0.2)
        # deliveries while it scrapes
        push(self.r, "mt:queue", [{"id": "prom-%d" % i, "url": self.recv.url, "body": "x"}
                                  for i in range(30)])
        want = OK + 30
        wait_for(lambda: sum(self.recv.stats()["succeeded"].values()) == want, 30,
                 "the receiver to have the 30 jobs")
        # a scrape a second, but a loaded machine can hold prometheus up
        r = wait_for(lambda: (lambda r: r if r and float(r[0]["value"][1]) == want else None)(
            result()), 60, "prometheus to report %d deliveries" % want, interval=0.2)
        self.assertEqual(len(r), 1)
        self.assertEqual(r[0]["metric"]["job"], "hookd")
        self.assertEqual(r[0]["metric"]["instance"], "127.0.0.1:%d" % self.mport)

    def test_4_ready_follows_redis(self):
        """/readyz is 503 within 5 s of Redis stopping, with a one-line
        reason, and 200 again once it is back; /livez stays 200."""
        self.assertEqual(get(self.base + "/livez")[0], 200)
        self.assertEqual(get(self.base + "/readyz")[0], 200)
        redis_proc = self.p.last_redis[0]
        redis_proc.send_signal(signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            st, body = wait_for(lambda: (lambda sb: sb if sb[0] == 503 else None)(
                get(self.base + "/readyz")), 5, "/readyz to turn 503", interval=0.1)
            self.assertLess(time.monotonic() - t0, 5)
            self.assertTrue(body.startswith("not ready: redis unreachable"), body)
            self.assertEqual(body.count("\n"), 1, body)
            self.assertEqual(get(self.base + "/livez")[0], 200)
            self.assertEqual(self.value("hookd_redis_up"), 0)
        finally:
            redis_proc.send_signal(signal.SIGCONT)
        wait_for(lambda: get(self.base + "/readyz")[0] == 200, 15, "/readyz to be 200 again",
                 interval=0.1)
        self.assertEqual(self.value("hookd_redis_up"), 1)
        self.assertGreaterEqual(self.value("hookd_redis_errors_total"), 1)

    def test_5_workers_killed(self):
        """Workers killed -9 are counted as restarts; the counters they wrote
        stay (Prometheus counters never go down), and their replacements
        add to them. Both are killed: one worker may have taken every job."""
        jobs = [{"url": self.recv.url, "body": "x"} for _ in range(20)]
        start = self.value("hookd_deliveries_total", outcome="delivered")
        push(self.r, "mt:queue", jobs)
        wait_for(lambda: self.value("hookd_deliveries_total", outcome="delivered") ==
                 start + 20, 20, "20 deliveries counted")
        restarts = self.value("hookd_worker_restarts_total")
        ok_attempts = self.value("hookd_attempts_total", result="2xx")
        pids = [json.loads(v)["pid"] for v in self.r.hvals("mt:workers")]
        self.assertEqual(len(pids), 2)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: self.value("hookd_worker_restarts_total") == restarts + 2 and
                 self.value("hookd_workers") == 2, 10, "both workers to be replaced")
        self.assertEqual(self.value("hookd_deliveries_total", outcome="delivered"), start + 20)
        self.assertEqual(self.value("hookd_attempts_total", result="2xx"), ok_attempts)
        wait_for(lambda: get(self.base + "/readyz")[0] == 200, 10, "ready again")
        push(self.r, "mt:queue", jobs)
        wait_for(lambda: self.value("hookd_deliveries_total", outcome="delivered") ==
                 start + 40, 20, "20 more deliveries counted")

    def test_6_port_taken(self):
        """A second hookd on the same metrics port says why it cannot serve
        (and keeps delivering); a malformed address is refused at start."""
        h = self.p.hookd({"redis": "redis://127.0.0.1:%d" % self.rport, "prefix": "mt2",
                          "workers": 1, "metrics_listen": "127.0.0.1:%d" % self.mport},
                         name="second")
        wait_for(lambda: "bind() failed: Address already in use" in log_of(h), 10,
                 "the bind failure in the log")
        self.assertIn("cannot listen on 127.0.0.1:%d for metrics" % self.mport, log_of(h))
        h.send_signal(signal.SIGTERM)
        self.assertEqual(h.wait(30), 0)
        p = subprocess.run([HOOKD, "--check-config", "--metrics-listen", "[::1]9464"],
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("key 'metrics_listen': '[::1]9464' is not off, host:port", p.stderr)

    def test_7_sighup_moves_it(self):
        """SIGHUP with a new metrics_listen moves the endpoint (at once,
        not as a crash); with off, it is gone."""
        old, new = free_port(), free_port()
        conf = {"redis": "redis://127.0.0.1:%d" % self.rport, "prefix": "mt3", "workers": 1,
                "metrics_listen": "127.0.0.1:%d" % old}
        h = self.p.hookd(conf, name="moving")
        wait_for(lambda: self.serves(old), 10, "the first address to serve")
        with open(os.path.join(self.p.dir, "moving.conf"), "w") as f:
            f.write("".join("%s = %s\n" % kv for kv in dict(
                conf, metrics_listen="[::1]:%d" % new).items()))
        h.send_signal(signal.SIGHUP)
        wait_for(lambda: self.serves(new, "[::1]"), 10, "the new address to serve")
        self.assertFalse(self.serves(old))
        self.assertIn("metrics process moving to [::1]:%d" % new, log_of(h))
        self.assertNotIn("metrics process exited", log_of(h))
        with open(os.path.join(self.p.dir, "moving.conf"), "w") as f:
            f.write("".join("%s = %s\n" % kv for kv in dict(
                conf, metrics_listen="off").items()))
        h.send_signal(signal.SIGHUP)
        wait_for(lambda: "metrics_listen is off" in log_of(h), 10, "the endpoint to stop")
        self.assertFalse(self.serves(new, "[::1]"))
        h.send_signal(signal.SIGTERM)
        self.assertEqual(h.wait(30), 0)

    @staticmethod
    def serves(port, host="127.0.0.1"):
        try:
            return get("http://%s:%d/livez" % (host, port), timeout=2)[0] == 200
        except OSError:
            return False



class BacklogAge(unittest.TestCase):
    """hookd_backlog_age_seconds counts from when the oldest ready job
    became due: a producer's job from when it was queued, a retry from its
    due time, not from when it was created. One worker with one slot, held
    by a request its receiver never answers, so nothing is taken."""

    def setUp(self):
        self.p = Procs()
        self.addCleanup(self.p.close)
        rport, self.r = self.p.redis()
        self.recv = self.p.receiver()
        mport = free_port()
        self.base = "http://127.0.0.1:%d" % mport
        self.p.hookd({"redis": "redis://127.0.0.1:%d" % rport, "prefix": "ba", "workers": 1,
                      "max_in_flight": 1, "retry_schedule": "2s",
                      "metrics_listen": "127.0.0.1:%d" % mport})
        wait_for(lambda: get(self.base + "/readyz")[0] == 200 if listening(self.base)
                 else None, 15, "/readyz to say ready")

    def age(self):
        return parse(get(self.base + "/metrics")[1])[("hookd_backlog_age_seconds", ())]

    def in_flight(self):
        return sum(self.r.hlen("ba:inflight:" + w.decode()) for w in self.r.hkeys("ba:workers"))

    def hold_the_slot(self):
        push(self.r, "ba:queue", [{"id": "hang", "url": self.recv.url + "?hang=1",
                                   "body": "x", "max_attempts": 1, "timeout_ms": 20000}])
        wait_for(lambda: self.r.llen("ba:queue") == 0 and self.in_flight() == 1, 10,
                 "the hung request to hold the only slot")

    def test_producer_job_from_when_queued(self):
        self.hold_the_slot()
        self.assertEqual(self.age(), 0)
        queued = time.monotonic()
        push(self.r, "ba:queue", [{"id": "q-%d" % i, "url": self.recv.url, "body": "x"}
                                  for i in range(3)])
        wait_for(lambda: self.age() >= 2.0, 10, "the backlog age to reach 2 s")
        # a lower bound, short by at most the 1 s between two looks
        age, elapsed = self.age(), time.monotonic() - queued
        self.assertLessEqual(age, elapsed + 0.05)
        self.assertGreater(age, elapsed - 1.5)

    def test_retry_from_its_due_time(self):
        created = time.monotonic()
        push(self.r, "ba:queue", [{"id": "r", "url": self.recv.url + "?status=500",
                                   "body": "x", "max_attempts": 2}])
        wait_for(lambda: self.r.zcard("ba:retry") == 1, 10, "the first attempt to fail")
        failed = time.monotonic()
        self.hold_the_slot()
        wait_for(lambda: self.r.llen("ba:queue") == 1, 10, "the retry to come due (2 s)")
        wait_for(lambda: self.age() >= 1.0, 10, "the backlog age to reach 1 s")
        age, now = self.age(), time.monotonic()
        # due 2 s (retry_jitter 0) after the failed attempt, seen failed
        # within a 20 ms poll: the age counts from then, not from when the
        # job was created
        self.assertLessEqual(age, now - failed - 2 + 0.1)
        self.assertGreater(age, now - failed - 2 - 1.5)
        self.assertLess(age, now - created - 1.5)

    def test_retry_due_while_no_worker_ran(self):
        """A retry that came due a minute ago, while no worker ran (hookd
        down): promoted now, it is a minute old, not new."""
        self.hold_the_slot()
        t = self.r.time()
        due = t[0] * 1000 + t[1] // 1000 - 60000
        self.r.zadd("ba:retry", {json.dumps({"id": "late", "url": self.recv.url,
                                             "body": "x"}): due})
        wait_for(lambda: self.r.llen("ba:queue") == 1, 10, "the retry to be promoted")
        wait_for(lambda: self.age() >= 60, 5, "the backlog age to say a minute")
        self.assertLess(self.age(), 63)

if __name__ == "__main__":
    unittest.main()
