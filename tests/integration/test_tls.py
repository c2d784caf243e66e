"""HTTPS receivers with certificates from a CA this test creates: verified
delivery with ca_file, refusal without it, refusal on a host-name mismatch,
mutual TLS with a client certificate; and max_response_bytes."""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SECRET, Procs, push, wait_for  # noqa: E402


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    """CA, a server certificate for localhost / 127.0.0.1, a client one."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=hookd test CA", cwd=d)
    for name, ext in (("server", "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                 "extendedKeyUsage=serverAuth\n"),
                      ("client", "extendedKeyUsage=clientAuth\n")):
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(ext)
        openssl("req", *ec, "-keyout", name + ".key", "-out", name + ".csr",
                "-subj", "/CN=hookd test " + name, cwd=d)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", name + ".pem", "-days", "2",
                "-extfile", name + ".ext", cwd=d)
    return {k: os.path.join(d, k) for k in ("ca.pem", "server.pem", "server.key",
                                            "client.pem", "client.key")}


class Tls(unittest.TestCase):
    def test_tls_verification_and_mutual_tls(self):
        p = Procs()
        try:
            pki = make_pki(p.dir)
            port, r = p.redis()
            srv = ("--tls-cert", pki["server.pem"], "--tls-key", pki["server.key"])
            plain = p.receiver(extra=srv)
            mtls = p.receiver(extra=srv + ("--client-ca", pki["ca.pem"]))
            base = {"redis": "redis://127.0.0.1:%d" % port, "workers": 1, "secret": SECRET,
                    "retry_schedule": "none",
                    "resolve": "wrong.example:%d:127.0.0.1" % plain.port}
            trusting = dict(base, prefix="t1", ca_file=pki["ca.pem"],
                            client_cert=pki["client.pem"], client_key=pki["client.key"],
                            max_response_bytes=1000)
            default = dict(base, prefix="t2")
            p.hookd(trusting, name="trusting")
            p.hookd(default, name="default")
            wait_for(lambda: r.hlen("t1:workers") == 1 and r.hlen("t2:workers") == 1, 20,
                     "workers")
            ok = "https://localhost:%d/h" % plain.port
            push(r, "t1:queue", [
                {"id": "verified", "url": ok, "payload": {}},
                {"id": "by-ip", "url": "https://127.0.0.1:%d/h" % plain.port, "payload": {}},
                {"id": "mismatch", "url": "https://wrong.example:%d/h" % plain.port,
                 "payload": {}},
                {"id": "mtls", "url": "https://localhost:%d/h" % mtls.port, "payload": {}},
                {"id": "big", "url": ok + "?big=1000000", "payload": {}},
            ])
            push(r, "t2:queue", [
                {"id": "untrusted", "url": ok, "payload": {}},
                {"id": "no-client-cert", "url": "https://localhost:%d/h" % mtls.port,
                 "payload": {}},
            ])

            def dead(prefix):
                return {json.loads(e)["id"]: json.loads(e)
                        for e in r.lrange(prefix + ":dead", 0, -1)}
            wait_for(lambda: {"verified", "by-ip", "big"} <= set(plain.stats()["succeeded"])
                     and "mtls" in mtls.stats()["succeeded"], 30, "trusted deliveries")
            wait_for(lambda: "mismatch" in dead("t1") and
                     {"untrusted", "no-client-cert"} <= set(dead("t2")), 30, "refusals")
            self.assertEqual(plain.stats()["invalid"], [])
            self.assertEqual(dead("t1")["mismatch"]["reason"], "tls_error")
            self.assertIn("wrong.example", dead("t1")["mismatch"]["error"])
            self.assertEqual(dead("t2")["untrusted"]["reason"], "tls_error")
            self.assertIn(dead("t2")["no-client-cert"]["reason"],
                          ("tls_error", "recv_failed", "send_failed"))
            self.assertNotIn("no-client-cert", mtls.stats()["succeeded"])
            self.assertNotIn("mismatch", plain.stats()["ids"])
            self.assertEqual(set(dead("t1")), {"mismatch"}, "big answer cut, still delivered")
        finally:
            p.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
