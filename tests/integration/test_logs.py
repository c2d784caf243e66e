"""log_format: text and json logs, and no secret in either.

Two hookd instances share one password-protected redis-server, one logging
text and one json, both at debug (so successful deliveries are logged too).
Each gets a configured secret and secret_previous, jobs signed with their
own secret and secret_previous, jobs that succeed, jobs that fail with a
status and jobs that cannot connect (retried once, then dead-lettered), and
a job whose own secret is malformed (dead-lettered as invalid). A third
hookd is given the right host with a wrong Redis password, so it logs its
connection errors. Afterwards:
- none of the secrets, the Redis password or the wrong password appears
  anywhere in any log;
- every json line is one JSON object with ts, level, worker and msg, and the
  delivery lines carry job, origin, attempt, status and latency_ms (and
  error when they failed), with the values of the attempt they describe;
- every text line has the text layout.
"""
import json
import os
import re
import signal
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Procs, free_port, log_of, push, wait_for  # noqa: E402

import redis  # noqa: E402

SECRET = "whsec_Q29uZmlndXJlZFNlY3JldEZvckxvZ3M="          # ConfiguredSecretForLogs
PREVIOUS = "whsec_UHJldmlvdXNTZWNyZXRGb3JMb2dzISE="        # PreviousSecretForLogs!!
JOB_SECRET = "whsec_Sm9iT3duU2VjcmV0Rm9yTG9ncyEhIQ=="      # JobOwnSecretForLogs!!!
JOB_PREVIOUS = "whsec_Sm9iUHJldmlvdXNTZWNyZXRGb3JMb2c="    # JobPreviousSecretForLog
BAD_JOB_SECRET = "whsec_not*base64*BadJobSecretMarker"
PASSWORD = "RedisPasswordMarker-7f3a9c"
WRONG_PASSWORD = "WrongRedisPasswordMarker-51be"
# Each secret and the part after whsec_ (a logger that strips the prefix
# would still leak), and the decoded key bytes.
FORBIDDEN = [PASSWORD, WRONG_PASSWORD, "ConfiguredSecretForLogs", "PreviousSecretForLogs",
             "JobOwnSecretForLogs", "JobPreviousSecretForLog", "BadJobSecretMarker"]
for s in (SECRET, PREVIOUS, JOB_SECRET, JOB_PREVIOUS, BAD_JOB_SECRET):
    FORBIDDEN += [s, s[len("whsec_"):]]

TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO |WARN |ERROR) \S+ ")
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
N_OK, N_FAIL = 6, 3


def jobs(tag, rx, dead_url):
    out = []
    for i in range(N_OK):
        out.append({"id": "%s-ok-%d" % (tag, i), "url": rx.url, "payload": {"i": i}})
        out.append({"id": "%s-own-%d" % (tag, i), "url": rx.url, "payload": {"i": i},
                    "secret": JOB_SECRET, "secret_previous": JOB_PREVIOUS})
    for i in range(N_FAIL):
        out.append({"id": "%s-500-%d" % (tag, i), "url": rx.url + "?status=500",
                    "payload": {"i": i}, "secret": JOB_SECRET})
        out.append({"id": "%s-refused-%d" % (tag, i), "url": dead_url, "payload": {"i": i}})
    out.append({"id": "%s-badsecret" % tag, "url": rx.url, "payload": {},
                "secret": BAD_JOB_SECRET})
    return out


class Logs(unittest.TestCase):
    def test_text_and_json_logs_carry_no_secret(self):
        p = Procs()
        try:
            port, r0 = p.redis()
            r0.config_set("requirepass", PASSWORD)
            r = redis.Redis(host="127.0.0.1", port=port, password=PASSWORD)
            rx = p.receiver()
            dead_url = "http://127.0.0.1:%d/nobody" % free_port()
            base = {"redis": "redis://:%s@127.0.0.1:%d" % (PASSWORD, port), "workers": 1,
                    "secret": SECRET, "secret_previous": PREVIOUS, "log_level": "debug",
                    "retry_schedule": "50ms", "timeout": "5s"}
            hk = {fmt: p.hookd(dict(base, prefix=fmt, log_format=fmt), name=fmt)
                  for fmt in ("text", "json")}
            wrong = p.hookd(dict(base, prefix="wrong", log_format="json",
                                 redis="redis://:%s@127.0.0.1:%d" % (WRONG_PASSWORD, port)),
                            name="wrong")
            wait_for(lambda: r.hlen("text:workers") == 1 and r.hlen("json:workers") == 1, 20,
                     "workers")
            for fmt in hk:
                push(r, fmt + ":queue", jobs(fmt, rx, dead_url))
            ndead = 2 * N_FAIL + 1
            wait_for(lambda: all(r.llen(f + ":dead") == ndead for f in hk), 30,
                     "%d dead letters per instance" % ndead)
            rx.wait_count(2 * 2 * N_OK + 2 * 2 * N_FAIL, timeout=30)
            wait_for(lambda: "WRONGPASS" in log_of(wrong), 20, "the wrong password refused")
            for proc in list(hk.values()) + [wrong]:
                proc.send_signal(signal.SIGTERM)
                self.assertEqual(proc.wait(timeout=30), 0)

            for proc in list(hk.values()) + [wrong]:
                text = log_of(proc)
                for s in FORBIDDEN:
                    leaks = [line for line in text.splitlines() if s in line]
                    self.assertEqual(leaks, [], "%s leaked into %s" % (s, proc.log_path))
            self.check_text(log_of(hk["text"]))
            self.check_json(log_of(hk["json"]), rx)
            for line in log_of(wrong).splitlines():
                self.assertEqual(set(json.loads(line)) >= {"ts", "level", "worker", "msg"},
                                 True, line)
        finally:
            p.close()

    def test_log_deliveries(self):
        """log_deliveries = true: every success is an info line; by default
        none is at info level."""
        p = Procs()
        try:
            port, r = p.redis()
            rx = p.receiver()
            base = {"redis": "redis://127.0.0.1:%d" % port, "workers": 1, "secret": SECRET,
                    "log_level": "info", "log_format": "json"}
            hk = {on: p.hookd(dict(base, prefix="ld%d" % on, log_deliveries=str(on).lower()),
                              name="ld%d" % on) for on in (True, False)}
            for on in hk:
                push(r, "ld%d:queue" % on, [{"id": "ld%d-%d" % (on, i), "url": rx.url,
                                             "payload": {}} for i in range(3)])
            rx.wait_count(6, timeout=30)
            for proc in hk.values():
                proc.send_signal(signal.SIGTERM)
                self.assertEqual(proc.wait(timeout=30), 0)
            for on, proc in hk.items():
                lines = [json.loads(ln) for ln in log_of(proc).splitlines()]
                got = sorted((o["level"], o["job"], o["status"]) for o in lines
                             if o["msg"].startswith("delivered to %s: 200 in " % rx.url))
                want = [("info", "ld1-%d" % i, 200) for i in range(3)] if on else []
                self.assertEqual(got, want)
        finally:
            p.close()

    def check_text(self, text):
        lines = text.splitlines()
        self.assertGreater(len(lines), 10)
        for line in lines:
            self.assertRegex(line, TEXT_LINE)
        self.assertTrue(any("job=text-ok-0 delivered to" in line for line in lines), text)

    def check_json(self, text, rx):
        lines = [json.loads(line) for line in text.splitlines()]
        for o in lines:
            self.assertIsInstance(o, dict)
            for k in ("ts", "level", "worker", "msg"):
                self.assertIn(k, o, o)
            self.assertRegex(o["ts"], TS)
            self.assertIn(o["level"], ("debug", "info", "warn", "error"))
        self.assertIn("supervisor", {o["worker"] for o in lines})
        origin = "http://127.0.0.1:%d" % rx.port
        delivered = {o["job"]: o for o in lines if o["msg"].startswith("delivered")}
        self.assertEqual(len(delivered), 2 * N_OK, delivered.keys())
        for o in delivered.values():
            self.assertEqual((o["origin"], o["attempt"], o["status"]), (origin, 1, 200), o)
            self.assertIsInstance(o["latency_ms"], int)
            self.assertNotIn("error", o)
            self.assertNotEqual(o["worker"], "supervisor")
        failed = [o for o in lines if o["msg"].startswith("attempt ")]
        by_job = {}
        for o in failed:
            by_job.setdefault(o["job"], []).append(o)
        self.assertEqual(len(by_job), 2 * N_FAIL, by_job.keys())
        for job, seen in by_job.items():
            self.assertEqual([o["attempt"] for o in seen], [1, 2], seen)
            for o in seen:
                self.assertIsInstance(o["latency_ms"], int)
                self.assertTrue(o["error"], o)
                if "-500-" in job:
                    self.assertEqual((o["origin"], o["status"]), (origin, 500), o)
                else:
                    self.assertEqual(o["status"], 0, o)
                    self.assertIn("connect", o["error"], o)
        bad = [o for o in lines if o.get("job") == "json-badsecret"]
        self.assertEqual([(o["attempt"], o["error"]) for o in bad], [(1, "invalid_secret")], bad)


if __name__ == "__main__":
    unittest.main(verbosity=2)
