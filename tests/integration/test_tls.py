"""HTTPS receivers with certificates from a CA this test creates: verified
delivery with ca_file or ca_path, refusal without it or with a ca_path of
another CA, refusal on a host-name mismatch, mutual TLS with a client
certificate; max_response_bytes; proxy variables in the environment ignored."""
import json
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SECRET, ConnectionRecorder, Procs, push, wait_for  # noqa: E402


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    """CA, a server certificate for localhost / *.hookd.test / 127.0.0.1, a
    client one."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=hookd test CA", cwd=d)
    for name, ext in (("server", "subjectAltName=DNS:localhost,DNS:*.hookd.test,IP:127.0.0.1\n"
                                 "extendedKeyUsage=serverAuth\n"),
                      ("client", "extendedKeyUsage=clientAuth\n")):
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(ext)
        openssl("req", *ec, "-keyout", name + ".key", "-out", name + ".csr",
                "-subj", "/CN=hookd test " + name, cwd=d)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", name + ".pem", "-days", "2",
                "-extfile", name + ".ext", cwd=d)
    # ca_path directories, hashed as OpenSSL looks certificates up: one with
    # this CA, one with another CA only.
    openssl("req", "-x509", *ec, "-keyout", "other-ca.key", "-out", "other-ca.pem",
            "-days", "2", "-subj", "/CN=hookd other CA", cwd=d)
    for sub, pem in (("ca-dir", "ca.pem"), ("other-ca-dir", "other-ca.pem")):
        os.mkdir(os.path.join(d, sub))
        shutil.copy(os.path.join(d, pem), os.path.join(d, sub))
        openssl("rehash", sub, cwd=d)
    return {k: os.path.join(d, k) for k in ("ca.pem", "server.pem", "server.key",
                                            "client.pem", "client.key", "ca-dir",
                                            "other-ca-dir")}


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
                            max_response_bytes=1000, attempt_log="all")
            default = dict(base, prefix="t2")
            # Every hookd runs with every proxy variable pointing at a port
            # that records connections: it must connect directly.
            proxy = ConnectionRecorder()
            proxy_url = "http://127.0.0.1:%d" % proxy.port
            env = {k: v for k, v in os.environ.items() if k.lower() != "no_proxy"}
            for k in ("http_proxy", "https_proxy", "all_proxy"):
                env[k] = env[k.upper()] = proxy_url
            p.hookd(trusting, name="trusting", env=env)
            p.hookd(default, name="default", env=env)
            p.hookd(dict(base, prefix="t3", ca_path=pki["ca-dir"]), name="ca-path", env=env)
            p.hookd(dict(base, prefix="t4", ca_path=pki["other-ca-dir"]), name="other-ca-path",
                    env=env)
            wait_for(lambda: all(r.hlen("t%d:workers" % i) == 1 for i in (1, 2, 3, 4)), 20,
                     "workers")
            ok = "https://localhost:%d/h" % plain.port
            push(r, "t1:queue", [
                {"id": "verified", "url": ok, "payload": {}},
                {"id": "by-ip", "url": "https://127.0.0.1:%d/h" % plain.port, "payload": {}},
                {"id": "mismatch", "url": "https://wrong.example:%d/h" % plain.port,
                 "payload": {}},
                {"id": "mtls", "url": "https://localhost:%d/h" % mtls.port, "payload": {}},
                # more than socket buffers hold, so a cut leaves bytes unread
                {"id": "big", "url": ok + "?big=16000000", "payload": {}},
            ])
            push(r, "t3:queue", [{"id": "by-ca-path", "url": ok, "payload": {}}])
            push(r, "t4:queue", [{"id": "other-ca-path", "url": ok, "payload": {}}])
            push(r, "t2:queue", [
                {"id": "untrusted", "url": ok, "payload": {}},
                {"id": "no-client-cert", "url": "https://localhost:%d/h" % mtls.port,
                 "payload": {}},
            ])

            def dead(prefix):
                return {json.loads(e)["id"]: json.loads(e)
                        for e in r.lrange(prefix + ":dead", 0, -1)}

            def delivered(prefix):
                return int(r.hget(prefix + ":stats", "delivered") or 0)
            # hookd's own outcome for every job (no retries: one attempt each)
            wait_for(lambda: all(delivered(pf) + len(dead(pf)) == n for pf, n in
                                 (("t1", 5), ("t2", 2), ("t3", 1), ("t4", 1))), 30,
                     "an outcome for every job")
            self.assertEqual(proxy.connections, [], "a proxy from the environment was used")
            proxy.close()
            self.assertLessEqual({"verified", "by-ip", "by-ca-path"},
                                 set(plain.stats()["succeeded"]))
            self.assertIn("mtls", mtls.stats()["succeeded"])
            self.assertEqual(plain.stats()["invalid"], [])
            self.assertEqual(dead("t1")["mismatch"]["reason"], "tls_error")
            self.assertIn("wrong.example", dead("t1")["mismatch"]["error"])
            self.assertEqual(dead("t2")["untrusted"]["reason"], "tls_error")
            self.assertIn(dead("t2")["no-client-cert"]["reason"],
                          ("tls_error", "recv_failed", "send_failed"))
            self.assertNotIn("no-client-cert", mtls.stats()["succeeded"])
            self.assertNotIn("mismatch", plain.stats()["ids"])
            self.assertEqual(set(dead("t1")), {"mismatch"}, "big answer cut, still delivered")
            self.assertEqual(delivered("t1"), 4)
            # the attempt log is written just after the outcomes
            big = wait_for(lambda: [f for _, f in r.xrange("t1:attempts") if f[b"id"] == b"big"],
                           10, "big's attempt logged")
            self.assertEqual([(f[b"status"], f[b"error"]) for f in big], [(b"200", b"")])
            # cut: hookd closed the connection with most of the answer unread
            wait_for(lambda: "big" in plain.stats()["big_reset"], 10,
                     "the receiver to see the big answer cut")
            # ca_path: this CA's directory verifies, another CA's does not
            self.assertEqual((delivered("t3"), set(dead("t3"))), (1, set()))
            self.assertEqual((delivered("t4"), set(dead("t4"))), (0, {"other-ca-path"}))
            self.assertEqual(dead("t4")["other-ca-path"]["reason"], "tls_error")
        finally:
            p.close()

    def test_new_connections_resume_the_session(self):
        """A worker's easy handles share one TLS session cache: a connection
        opened by a handle that never connected to the origin resumes the
        session another handle got, rather than paying a full handshake.
        One new connection at a time: a server may take a TLS 1.3 ticket
        once (RFC 8446 lets it), so connections opened together on one
        ticket need not all resume."""
        p = Procs()
        try:
            pki = make_pki(p.dir)
            port, r = p.redis()
            recv = p.receiver(extra=("--tls-cert", pki["server.pem"],
                                     "--tls-key", pki["server.key"]))
            p.hookd({"redis": "redis://127.0.0.1:%d" % port, "workers": 1, "secret": SECRET,
                     "prefix": "s", "ca_file": pki["ca.pem"], "max_per_host": 2})
            url = "https://127.0.0.1:%d/h" % recv.port

            def delivered():
                return int(r.hget("s:stats", "delivered") or 0)
            push(r, "s:queue", [{"id": "first", "url": url, "payload": {}}])
            wait_for(lambda: delivered() == 1, 30, "the first delivery")
            # two slow answers at once: the warm connection, and one new
            # connection opened by a handle that has not connected before
            push(r, "s:queue", [{"id": "slow-%d" % i, "url": url + "?delay=300", "payload": {}}
                                for i in range(2)])
            wait_for(lambda: delivered() == 3, 30, "the slow deliveries")
            st = recv.stats()
            self.assertEqual((st["tls_connections"], st["tls_resumed"]), (2, 1))
            self.assertEqual(st["invalid"], [])
        finally:
            p.close()

    def test_sessions_of_many_origins_are_kept(self):
        """libcurl's shared session cache holds 8 sessions: a worker talking
        to more origins in turn evicted each one's session before it was
        used again. With a cache per origin hash, 12 origins (names pinned
        to one receiver) each resume on their second connection."""
        p = Procs()
        try:
            pki = make_pki(p.dir)
            port, r = p.redis()
            recv = p.receiver(extra=("--tls-cert", pki["server.pem"],
                                     "--tls-key", pki["server.key"]))
            names = ["o%d.hookd.test" % i for i in range(12)]
            # in the environment: a config file line is read up to 199 bytes
            env = dict(os.environ, HOOKD_RESOLVE=",".join("%s:%d:127.0.0.1" % (n, recv.port)
                                                          for n in names))
            p.hookd({"redis": "redis://127.0.0.1:%d" % port, "workers": 1, "secret": SECRET,
                     "prefix": "m", "ca_file": pki["ca.pem"], "max_per_host": 2}, env=env)

            def delivered():
                return int(r.hget("m:stats", "delivered") or 0)
            push(r, "m:queue", [{"id": "first-%s" % n, "url": "https://%s:%d/h" % (n, recv.port),
                                 "payload": {}} for n in names])
            wait_for(lambda: delivered() == len(names), 30, "a first delivery to each origin")
            # two slow answers per origin at once: its warm connection and
            # one new one, opened by a handle that has not met the origin
            push(r, "m:queue", [{"id": "slow-%s-%d" % (n, i), "url": "https://%s:%d/h?delay=300"
                                 % (n, recv.port), "payload": {}}
                                for n in names for i in range(2)])
            wait_for(lambda: delivered() == 3 * len(names), 30, "the slow deliveries")
            st = recv.stats()
            self.assertEqual((st["tls_connections"], st["tls_resumed"]),
                             (2 * len(names), len(names)))
        finally:
            p.close()

    def test_http2_origin_takes_few_connections(self):
        """An origin that answers over HTTP/2 gets streams on a few
        connections: hookd raises its limit with the connections seen
        answering, doubling them per round trip. Raised to max_per_host x
        100 streams at once, libcurl 7.88 opened a connection for every
        request beyond the first connection's streams: 64 here."""
        p = Procs()
        try:
            pki = make_pki(p.dir)
            port, r = p.redis()
            recv = p.receiver(extra=("--tls-cert", pki["server.pem"],
                                     "--tls-key", pki["server.key"], "--http2"))
            p.hookd({"redis": "redis://127.0.0.1:%d" % port, "workers": 1, "secret": SECRET,
                     "prefix": "c", "ca_file": pki["ca.pem"]})
            url = "https://127.0.0.1:%d/h?delay=300" % recv.port
            n = 400
            push(r, "c:queue", [{"id": "j%d" % i, "url": url, "payload": {}} for i in range(n)])
            wait_for(lambda: int(r.hget("c:stats", "delivered") or 0) == n, 60,
                     "every delivery")
            st = recv.stats()
            self.assertEqual(st["http2"], n)
            self.assertEqual(st["invalid"], [])
            # 400 streams need 4 connections of 100; doubling may open 8
            self.assertLessEqual(st["tls_connections"], 8)
        finally:
            p.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
