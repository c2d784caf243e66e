"""Destination policy with real sockets: receivers on 127.0.0.1 and ::1,
reached by every spelling that leads there. With deny_private = true every
one is refused (dead, reason destination_forbidden, no retry, and the
receiver never sees a request); without it every one is delivered. Cloud
metadata addresses are refused by default, before any packet is sent. Proxy
variables in hookd's environment are ignored: it connects directly."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SECRET, ConnectionRecorder, Procs, push, wait_for  # noqa: E402


class Ssrf(unittest.TestCase):
    def run_case(self, deny_private):
        p = Procs()
        try:
            port, r = p.redis()
            v4 = p.receiver()
            v6 = p.receiver(extra=("--host", "::1"))
            prefix = "ss%d" % deny_private
            # a name that resolves to loopback through hookd's resolver override
            resolve = "evil.example:%d:127.0.0.1" % v4.port
            # every proxy variable, both cases, points at a port that records
            # connections (a proxy would also hide the destination's address
            # from the policy)
            proxy = ConnectionRecorder()
            env = {k: v for k, v in os.environ.items() if k.lower() != "no_proxy"}
            for k in ("http_proxy", "https_proxy", "all_proxy"):
                env[k] = env[k.upper()] = "http://127.0.0.1:%d" % proxy.port
            p.hookd({"redis": "redis://127.0.0.1:%d" % port, "prefix": prefix, "workers": 1,
                     "secret": SECRET, "deny_private": "true" if deny_private else "false",
                     "resolve": resolve, "retry_schedule": "100ms"}, env=env)
            wait_for(lambda: r.hlen(prefix + ":workers") == 1, 20, "worker")
            urls = {
                "literal": "http://127.0.0.1:%d/h" % v4.port,
                "localhost": "http://localhost:%d/h" % v4.port,
                "decimal": "http://2130706433:%d/h" % v4.port,
                "hex-octal": "http://0x7f.1:%d/h" % v4.port,
                "v4-mapped": "http://[::ffff:127.0.0.1]:%d/h" % v4.port,
                "resolve-override": "http://evil.example:%d/h" % v4.port,
                "ipv6-loopback": "http://[::1]:%d/h" % v6.port,
            }
            push(r, prefix + ":queue", [{"id": k, "url": u, "payload": {"case": k}}
                                        for k, u in urls.items()])
            # metadata: refused in both modes, no traffic can leave loopback
            push(r, prefix + ":queue", [
                {"id": "meta-v4", "url": "http://169.254.169.254/latest/meta-data/",
                 "payload": {}},
                {"id": "meta-v6", "url": "http://[fd00:ec2::254]/", "payload": {}}])

            def dead():
                return {json.loads(e)["id"]: json.loads(e)
                        for e in r.lrange(prefix + ":dead", 0, -1)}
            expect_dead = set(urls) | {"meta-v4", "meta-v6"} if deny_private else \
                {"meta-v4", "meta-v6"}
            wait_for(lambda: set(dead()) >= expect_dead, 30, "expected dead entries")
            # hookd's own outcome for every spelling: delivered or dead
            wait_for(lambda: int(r.hget(prefix + ":stats", "delivered") or 0) +
                     len(set(dead()) & set(urls)) == len(urls), 30,
                     "an outcome for every spelling")
            self.assertEqual(proxy.connections, [], "a proxy from the environment was used")
            proxy.close()
            d = dead()
            for k in expect_dead:
                self.assertEqual(d[k]["reason"], "destination_forbidden", k)
                self.assertEqual(d[k]["attempts"], 1, k)    # never retried
                self.assertEqual(d[k]["gave_up"], "not_retryable", k)
            self.assertIn("169.254.169.254 is", d["meta-v4"]["error"])
            self.assertIn("fd00:ec2::254 is", d["meta-v6"]["error"])
            if deny_private:
                self.assertIn("127.0.0.1 is loopback or private", d["decimal"]["error"])
                self.assertIn("::1 is loopback or private", d["ipv6-loopback"]["error"])
                self.assertEqual(v4.stats()["count"] + v6.stats()["count"], 0)
            else:
                got = set(v4.stats()["succeeded"]) | set(v6.stats()["succeeded"])
                self.assertEqual(got, set(urls))
                self.assertEqual(set(d) & set(urls), set())
        finally:
            p.close()

    def test_refused_with_deny_private(self):
        self.run_case(1)

    def test_delivered_without_deny_private(self):
        self.run_case(0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
