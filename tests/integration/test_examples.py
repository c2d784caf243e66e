"""The examples, unmodified, against a real hookd (workers = 2).

examples/receivers/ (Express and Flask written the way the Dialgen
documentation's samples are, and a Standard Webhooks verifier): every call
and batch webhook verified and processed once, a redelivered webhook
recognised as a duplicate, no signature rejected.

examples/producers/ (redis-cli, redis-py, node-redis): each reports a batch
of 100 calls, and the Express receiver gets all 100 call webhooks and one
batch.completed with the statistics the producer reported."""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import EXAMPLES, push, SECRET, Procs, wait_for  # noqa: E402

CALLS = 50


def call_payload(i):
    """onCallComplete, shaped as the documentation shows it."""
    return {"success": i % 5 != 0,
            "callData": {"id": "call_%d" % i, "contactId": "contact_%d" % i,
                         "agentId": "agent_789", "batchId": "batch_1", "status": "COMPLETED",
                         "startTime": "2025-11-15T14:30:00.000Z",
                         "endTime": "2025-11-15T14:33:00.000Z", "duration": 180,
                         "phoneNumber": "+1234567890", "contactName": "John Doe",
                         "transcription": [{"speaker": "agent", "text": "Hello ü"}],
                         "recordingUrl": "https://example.com/r/%d" % i,
                         "summary": "Call summary text...",
                         "metricJson": {"intent": "SALES_INQUIRY", "sentiment": "positive",
                                        "confidence": 0.95}},
            "metricSchema": {"intent": {"type": "string"}}}


BATCH = {"event": "batch.completed", "batchId": "batch_1", "agentId": "agent_456",
         "userId": "user_789",
         "statistics": {"total": 50, "processed": 50, "succeeded": 40, "failed": 10,
                        "percentComplete": 100, "successRate": 80},
         "timestamps": {"createdAt": "2025-11-15T14:00:00.000Z",
                        "startedAt": "2025-11-15T14:05:00.000Z",
                        "completedAt": "2025-11-15T16:30:00.000Z"}}


class Examples(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = Procs()
        cls.port, cls.r = cls.p.redis()
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        cls.p.close()

    def receiver(self, argv):
        return self.p.example_receiver(argv)

    def deliver(self, base):
        """50 call webhooks, one of them pushed twice, and a batch webhook,
        through a hookd of its own; returns its prefix."""
        Examples.n += 1
        prefix = "ex%d" % self.n
        # dedupe_window = 0: hookd delivers the repeated call_0 again, so the
        # receiver's own idempotency is what is exercised.
        h = self.p.hookd({"redis": "redis://127.0.0.1:%d" % self.port, "prefix": prefix,
                          "workers": 2, "secret": SECRET, "dedupe_window": 0}, name=prefix)
        wait_for(lambda: self.r.hlen(prefix + ":workers") == 2, 20, "workers")
        call = base + "/webhooks/call-complete"
        jobs = [{"id": "call_%d" % i, "url": call, "event": "call.completed",
                 "payload": call_payload(i)} for i in range(CALLS)]
        jobs.append(jobs[0])        # the platform sent it twice
        jobs.append({"id": "batch_1:completed", "url": base + "/webhooks/batch-complete",
                     "event": "batch.completed", "payload": BATCH})
        push(self.r, prefix + ":queue", jobs)
        wait_for(lambda: int(self.r.hget(prefix + ":stats", "delivered") or 0) == CALLS + 2,
                 60, "all delivered")
        h.terminate()
        h.wait(timeout=30)
        self.assertEqual(self.r.llen(prefix + ":dead"), 0)
        return prefix

    def check_dialgen_receiver(self, lines):
        want = ["Call call_%d completed" % i for i in range(CALLS)]
        wait_for(lambda: sum(1 for l in lines if l.startswith("Call ")) == CALLS and
                 any(l.startswith("Batch ") for l in lines) and
                 any(l.startswith("Duplicate") for l in lines), 20,
                 "receiver processed all", interval=0.05)
        calls = sorted(l.split(" (")[0] for l in lines if l.startswith("Call "))
        self.assertEqual(calls, sorted(want))
        # the callData reached the receiver's processing intact
        self.assertTrue(any(l.startswith("Call call_1 completed (success=") and
                            l.endswith("duration 180s)") for l in lines))
        self.assertEqual([l for l in lines if l.startswith("Duplicate")],
                         ["Duplicate call call_0"])
        self.assertEqual([l for l in lines if l.startswith("Batch ")],
                         ["Batch batch_1 completed: success rate 80%"])
        self.assertEqual([l for l in lines if "Invalid" in l], [])

    def test_express(self):
        base, lines = self.receiver(["node", "express.js"])
        self.deliver(base)
        self.check_dialgen_receiver(lines)

    def test_flask(self):
        base, lines = self.receiver(["/usr/bin/python3", "flask_receiver.py"])
        self.deliver(base)
        self.check_dialgen_receiver(lines)

    def test_standard_webhooks(self):
        base, lines = self.receiver(["node", "standard.js"])
        self.deliver(base)
        wait_for(lambda: sum(1 for l in lines if l.startswith("Verified ")) == CALLS + 1 and
                 any(l.startswith("Duplicate") for l in lines), 20, "receiver verified all")
        verified = sorted(l.split()[1] for l in lines if l.startswith("Verified "))
        self.assertEqual(verified, sorted(["call_%d" % i for i in range(CALLS)] +
                                          ["batch_1:completed"]))
        self.assertEqual([l for l in lines if l.startswith("Duplicate")], ["Duplicate call_0"])
        self.assertIn("Verified batch_1:completed batch.completed batch_1", lines)
        self.assertEqual([l for l in lines if "Invalid" in l], [])


class Producers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = Procs()
        cls.port, cls.r = cls.p.redis()
        cls.base, cls.lines = cls.p.example_receiver(["node", "express.js"])
        cls.p.hookd({"redis": "redis://127.0.0.1:%d" % cls.port, "workers": 2,
                     "secret": SECRET})
        wait_for(lambda: cls.r.hlen("hookd:workers") == 2, 20, "workers")

    @classmethod
    def tearDownClass(cls):
        cls.p.close()

    def produce(self, argv, batch):
        env = dict(os.environ, REDIS_URL="redis://127.0.0.1:%d" % self.port,
                   WEBHOOK_BASE=self.base, BATCH_ID=batch)
        out = subprocess.run(argv, cwd=os.path.join(EXAMPLES, "producers"), env=env,
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), "batch %s: created with 100 contacts, reported "
                         "100 calls (80 succeeded, 20 failed)" % batch)
        want = ('Statistics %s {"total":100,"processed":100,"succeeded":80,"failed":20,'
                '"percentComplete":100,"successRate":80}' % batch)
        wait_for(lambda: want in self.lines, 60, "batch.completed of " + batch, interval=0.05)
        wait_for(lambda: len([l for l in self.lines
                              if l.startswith("Call %s_call_" % batch)]) == 100, 20,
                 "100 call webhooks of " + batch, interval=0.05)
        calls = [l.split(" ")[1] for l in self.lines if l.startswith("Call %s_call_" % batch)]
        self.assertEqual(sorted(calls), sorted("%s_call_%d" % (batch, i) for i in range(1, 101)))
        self.assertEqual(self.lines.count(want), 1)
        self.assertEqual([l for l in self.lines if "Invalid" in l], [])

    def test_shell(self):
        self.produce(["sh", "produce.sh"], "batch_sh")

    def test_python(self):
        self.produce(["/usr/bin/python3", "produce.py"], "batch_py")

    def test_node(self):
        self.produce(["node", "produce.js"], "batch_js")


if __name__ == "__main__":
    unittest.main(verbosity=2)
