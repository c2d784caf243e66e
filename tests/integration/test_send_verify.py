"""hookd send and hookd verify, the receiver developer's tools.

send: each --sample, POSTed to the Express example receiver (written as the
Dialgen documentation's samples are), is accepted and processed; an answer
other than 2xx exits 1; usage errors exit 2. No Redis runs in this file:
send needs none.

verify: on requests captured by receiver.js (raw body and headers as they
arrived): the untouched capture verifies; a body re-serialised with other
whitespace, a trailing newline, a tampered header and the secret without its
whsec_ prefix fail, each with its own reason; a tampered body, the wrong
secret and reordered keys fail with the one reason an HMAC allows for them
all; a timestamp outside the tolerance fails, inside a wider --tolerance it
passes. The too-old and
raw-body requests are signed here, in Python, independently of hookd.
"""
import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HOOKD, SANITIZER_MARKERS, SECRET, Procs, wait_for  # noqa: E402

SIGNED_HEADERS = ("x-dialgen-signature", "webhook-id", "webhook-timestamp", "webhook-signature")
NO_MATCH = ("no match: the secret is not the one that signed it, or the body was changed "
            "after signing")
RESERIALISED = ("the body is not the bytes that were signed: it was re-serialised; "
                "JSON.stringify(JSON.parse(body)) does verify")


def hookd(args, stdin=b""):
    """Run hookd; (exit code, stdout, stderr). Fails on a sanitizer report
    and if the secret shows anywhere in the output."""
    p = subprocess.run([HOOKD, *args], input=stdin, capture_output=True, timeout=60)
    out, err = p.stdout.decode(), p.stderr.decode()
    for m in SANITIZER_MARKERS:
        if m in err:
            raise AssertionError("sanitizer report:\n" + err)
    if SECRET[6:] in out or SECRET[6:] in err:
        raise AssertionError("the secret was printed:\n" + out + err)
    return p.returncode, out, err


def sign(body, wid, ts, secret=SECRET):
    """The two signatures as a receiver's own code would compute them."""
    key = base64.b64decode(secret[6:])
    v1 = base64.b64encode(hmac.new(key, b"%s.%d.%s" % (wid.encode(), ts, body),
                                   hashlib.sha256).digest()).decode()
    return {"x-dialgen-signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
            "webhook-id": wid, "webhook-timestamp": str(ts), "webhook-signature": "v1," + v1}


def verify(body, headers, secret=SECRET, extra=()):
    args = ["verify", "--secret", secret, *extra]
    for name, value in headers.items():
        args += ["--header", "%s: %s" % (name, value)]
    return hookd(args, body)


class SendVerify(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = Procs()
        cls.express, cls.express_out = cls.p.example_receiver(["node", "express.js"])
        cls.recv = cls.p.receiver()
        cls.base = "http://127.0.0.1:%d" % cls.recv.port

    @classmethod
    def tearDownClass(cls):
        cls.p.close()

    def capture(self, wid, sample="call.completed"):
        """A request sent by hookd send, as receiver.js got it: (body, headers)."""
        rc, out, err = hookd(["send", self.base + "/hook?keep=1&headers=1", "--sample", sample,
                              "--id", wid, "--secret", SECRET])
        self.assertEqual(rc, 0, out + err)
        s = self.recv.stats()
        h = s["headers"][wid]
        return base64.b64decode(s["bodies"][wid]), {k: h[k] for k in SIGNED_HEADERS}

    # ---- send ------------------------------------------------------------------

    def test_samples_accepted_by_the_express_example(self):
        conf = os.path.join(self.p.dir, "send.conf")
        with open(conf, "w") as f:      # the secret from -c, as an operator would
            f.write("secret = %s\nuser_agent = sv-test/1\n" % SECRET)
        rejected = sum("Invalid signature" in l for l in self.express_out)
        cases = [("call.completed", "/webhooks/call-complete", "Call call_123 completed"),
                 ("batch.completed", "/webhooks/batch-complete", "Batch batch_123 completed"),
                 ("batch.failed", "/webhooks/batch-failed",
                  "Batch batch_123 failed: Insufficient call minutes (INSUFFICIENT_CREDITS)")]
        for sample, path, line in cases:
            with self.subTest(sample=sample):
                rc, out, err = hookd(["send", self.express + path, "--sample", sample,
                                      "-c", conf])
                self.assertEqual(rc, 0, out + err)
                self.assertIn("> x-dialgen-event: %s\n" % sample, out)
                self.assertIn("> user-agent: sv-test/1\n", out)
                self.assertIn("< HTTP/1.1 200 OK\n", out)
                self.assertRegex(out, r"< (?i:content-type): application/json")
                self.assertIn('{"received":true}\n', out)
                self.assertRegex(out, r"delivered: 200 in \d+ ms\n$")
                wait_for(lambda: any(line in l for l in self.express_out),
                         10, "the receiver to process " + sample)
        self.assertEqual(sum("Invalid signature" in l for l in self.express_out), rejected)

    def test_payload_is_sent_in_canonical_form(self):
        wid = "sv_payload"
        rc, out, err = hookd(["send", self.base + "/hook?keep=1", "--id", wid, "--event",
                              "x.y", "--secret", SECRET, "--payload", '{"b": 1.50, "a": [1e2]}'])
        self.assertEqual(rc, 0, out + err)
        s = self.recv.stats()
        self.assertEqual(base64.b64decode(s["bodies"][wid]), b'{"b":1.5,"a":[100]}')
        self.assertEqual(s["events"].get("x.y"), 1)
        path = os.path.join(self.p.dir, "payload.json")
        with open(path, "w") as f:
            f.write('{"from": "file"}\n')
        rc, out, err = hookd(["send", self.base + "/hook?keep=1", "--id", wid + "_file",
                              "--secret", SECRET, "--payload", "@" + path])
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(base64.b64decode(self.recv.stats()["bodies"][wid + "_file"]),
                         b'{"from":"file"}')
        # Neither --payload nor --sample: the call.completed sample.
        rc, out, err = hookd(["send", self.base + "/hook?keep=1", "--id", wid + "_default",
                              "--secret", SECRET])
        self.assertEqual(rc, 0, out + err)
        self.assertIn("> x-dialgen-event: call.completed\n", out)
        body = json.loads(base64.b64decode(self.recv.stats()["bodies"][wid + "_default"]))
        self.assertEqual(body["callData"]["id"], "call_123")

    def test_non_2xx_exits_1(self):
        rc, out, err = hookd(["send", self.base + "/hook?status=500", "--secret", SECRET])
        self.assertEqual(rc, 1, out + err)
        self.assertIn("< HTTP/1.1 500 Internal Server Error\n", out)
        self.assertRegex(out, r"failed: 500 in \d+ ms \(not 2xx\)\n$")
        # The Express example rejects a webhook signed with another secret.
        rc, out, err = hookd(["send", self.express + "/webhooks/call-complete", "--secret",
                              "whsec_" + base64.b64encode(b"k" * 24).decode()])
        self.assertEqual(rc, 1, out + err)
        self.assertIn('{"error":"Invalid signature"}', out)
        self.assertRegex(out, r"failed: 401 in")

    def test_no_answer_and_forbidden_destination_exit_1(self):
        rc, out, err = hookd(["send", "http://127.0.0.1:1/hook", "--secret", SECRET])
        self.assertEqual(rc, 1, out + err)
        self.assertRegex(out, r"failed: connect_failed: .*\(after \d+ ms, status 0\)\n$")
        rc, out, err = hookd(["send", self.base + "/hook", "--secret", SECRET,
                              "--deny-private", "true"])
        self.assertEqual(rc, 1, out + err)
        self.assertIn("failed: destination_forbidden: 127.0.0.1", out)

    def test_send_usage_errors_exit_2(self):
        cases = [([], "usage: hookd send URL"),
                 (["http://x/", "--sample", "call.started"], "unknown sample 'call.started'"),
                 (["http://x/", "--sample", "batch.failed", "--payload", "{}"],
                  "--payload or --sample, not both"),
                 (["http://x/", "--payload", "{nope"], "--payload is not JSON"),
                 (["http://x/", "--payload", "@/nonexistent/p.json"],
                  "--payload @/nonexistent/p.json: No such file or directory"),
                 (["ftp://x/", "--sample", "batch.failed"], "invalid_url")]
        for args, msg in cases:
            with self.subTest(args=args):
                rc, out, err = hookd(["send", *args, "--secret", SECRET])
                self.assertEqual(rc, 2, out + err)
                self.assertIn(msg, err)
                self.assertEqual(out, "")
        rc, out, err = hookd(["send", "http://x/", "--data-dir", self.p.dir])
        self.assertEqual(rc, 2, out + err)
        self.assertIn("send needs a secret", err)

    # ---- verify ----------------------------------------------------------------

    def test_untouched_capture_verifies(self):
        body, headers = self.capture("sv_ok")
        rc, out, err = verify(body, headers)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("x-dialgen-signature: ok\n", out)
        self.assertRegex(out, r"webhook-signature: ok \(webhook-id sv_ok, signed \d+ s ago, "
                              r"tolerance 300 s\)\n")
        self.assertTrue(out.endswith("verified\n"), out)
        self.assertNotIn("differs", out)

    def test_tampered_body_fails(self):
        body, headers = self.capture("sv_tamper")
        rc, out, err = verify(body.replace(b'"duration":180', b'"duration":181'), headers)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("x-dialgen-signature: FAIL: " + NO_MATCH, out)
        self.assertIn("webhook-signature: FAIL: " + NO_MATCH, out)
        self.assertTrue(out.endswith("NOT verified\n"), out)

    def test_tampered_header_fails(self):
        body, headers = self.capture("sv_hdr")
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) - 1)
        rc, out, err = verify(body, headers)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("x-dialgen-signature: ok\n", out)
        self.assertIn("webhook-signature: FAIL: the body and the secret are right "
                      "(x-dialgen-signature verifies them): webhook-id or webhook-timestamp is "
                      "not what was signed", out)
        headers = dict(self.capture("sv_hdr2")[1], **{"x-dialgen-signature": "0" * 64})
        rc, out, err = verify(body, headers)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("x-dialgen-signature: FAIL: not the signature of this body with this "
                      "secret, though webhook-signature verifies both", out)

    def test_wrong_secret_fails(self):
        body, headers = self.capture("sv_secret")
        other = "whsec_" + base64.b64encode(b"another secret, 24 bytes").decode()
        rc, out, err = verify(body, headers, secret=other)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("x-dialgen-signature: FAIL: " + NO_MATCH, out)
        self.assertIn("webhook-signature: FAIL: " + NO_MATCH, out)
        # The secret without its whsec_ prefix: a mistake worth naming.
        rc, out, err = verify(body, headers, secret=SECRET[6:])
        self.assertEqual(rc, 1, out + err)
        prefix = 'FAIL: wrong secret: it verifies with "whsec_" in front of the secret given'
        self.assertIn("x-dialgen-signature: " + prefix, out)
        self.assertIn("webhook-signature: " + prefix, out)

    def test_reserialised_body_fails_and_says_where(self):
        body, headers = self.capture("sv_reser")
        # What Python's json.dumps (and many loggers) make of it: ", " and ": ".
        spaced = json.dumps(json.loads(body)).encode()
        rc, out, err = verify(spaced, headers)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("JSON.stringify(JSON.parse(body)) differs from the body at byte 11:\n", out)
        self.assertIn('  body:                              {"success": true, "callData"', out)
        self.assertIn('  JSON.stringify(JSON.parse(body)):  {"success":true,"callData"', out)
        self.assertIn("x-dialgen-signature: FAIL: " + RESERIALISED, out)
        self.assertIn("webhook-signature: FAIL: " + RESERIALISED, out)
        # Key order changed: no parser can bring the signed bytes back.
        reordered = json.dumps(dict(reversed(list(json.loads(body).items()))),
                               separators=(",", ":")).encode()
        rc, out, err = verify(reordered, headers)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("x-dialgen-signature: FAIL: " + NO_MATCH + " (a JSON parser on the way "
                      "may also have reordered keys", out)

    def test_trailing_newline_fails_with_its_reason(self):
        body, headers = self.capture("sv_nl")
        rc, out, err = verify(body + b"\n", headers)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("x-dialgen-signature: FAIL: the body ends with a newline that was not "
                      "signed", out)
        self.assertIn("webhook-signature: FAIL: the body ends with a newline that was not "
                      "signed", out)

    def test_timestamp_outside_the_tolerance(self):
        body = b'{"event":"batch.failed","batchId":"b1"}'
        ts = int(time.time()) - 600
        rc, out, err = verify(body, sign(body, "sv_old", ts))
        self.assertEqual(rc, 1, out + err)
        self.assertIn("x-dialgen-signature: ok\n", out)
        self.assertRegex(out, r"webhook-signature: FAIL: webhook-timestamp %d \(\S+Z\) is "
                              r"60[0-2] s in the past, outside the tolerance of 300 s "
                              r"\(--tolerance\); the signature itself matches" % ts)
        rc, out, err = verify(body, sign(body, "sv_old", ts), extra=["--tolerance", "15m"])
        self.assertEqual(rc, 0, out + err)
        self.assertIn("tolerance 900 s", out)
        rc, out, err = verify(body, sign(body, "sv_new", int(time.time()) + 3600))
        self.assertEqual(rc, 1, out + err)
        self.assertRegex(out, r"is 3[56]\d\d s in the future, outside the tolerance of 300 s")

    def test_raw_body_verifies_with_a_warning_for_json_stringify_receivers(self):
        body = b'{\n  "event": "batch.failed"\n}'
        rc, out, err = verify(body, sign(body, "sv_raw", int(time.time())))
        self.assertEqual(rc, 0, out + err)
        self.assertIn("differs from the body at byte 1:", out)
        self.assertIn("note: the body verifies as received, but a receiver that checks "
                      "x-dialgen-signature over JSON.stringify(req.body)", out)

    def test_verify_without_headers_or_secret(self):
        rc, out, err = verify(b"{}", {})
        self.assertEqual(rc, 1, out + err)
        self.assertIn("NOT verified: no signature headers", out)
        rc, out, err = hookd(["verify", "--header", "webhook-id: x"], b"{}")
        self.assertEqual(rc, 2, out + err)
        self.assertIn("verify needs the secret", err)
        for bad in (["--tolerance", "0s"], ["--header", "no colon"]):
            rc, out, err = hookd(["verify", "--secret", "s", *bad], b"{}")
            self.assertEqual(rc, 2, out + err)


if __name__ == "__main__":
    unittest.main()
