"""hookd with no configuration at all: it starts its own redis-server on
./var/redis.sock, generates a signing secret into ./var/secret, and delivers."""
import json
import os
import signal
import subprocess
import sys
import unittest

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HOOKD, Procs, wait_for  # noqa: E402


class EmbeddedTest(unittest.TestCase):
    def test_no_config_starts_private_redis_and_delivers(self):
        p = Procs()
        try:
            hookd = p.hookd_argv([], env={k: v for k, v in os.environ.items()
                                          if not k.startswith("HOOKD_") or k == "HOOKD_BIN"})
            sock = os.path.join(p.dir, "var", "redis.sock")
            r = redis.Redis(unix_socket_path=sock)
            wait_for(lambda: os.path.exists(sock) and r.hlen("hookd:workers") >= 1, 30,
                     "embedded redis and a registered worker")
            with open(os.path.join(p.dir, "var", "secret")) as f:
                secret = f.read().strip()
            self.assertTrue(secret.startswith("whsec_"))
            self.assertEqual(os.stat(os.path.join(p.dir, "var", "secret")).st_mode & 0o777,
                             0o600)
            recv = p.receiver(secret=secret)
            r.lpush("hookd:queue", json.dumps({"id": "emb-1", "url": recv.url,
                                               "payload": {"hello": "world"}}))
            s = recv.wait_count(1, timeout=30)
            self.assertEqual(s["ids"], {"emb-1": 1})
            self.assertEqual((s["valid_dialgen"], s["valid_standard"]), (1, 1))
            self.assertEqual(r.config_get("appendonly")["appendonly"], "yes")
            self.assertEqual(r.config_get("appendfsync")["appendfsync"], "everysec")

            hookd.send_signal(signal.SIGTERM)
            self.assertEqual(hookd.wait(timeout=60), 0)
            with self.assertRaises(redis.exceptions.ConnectionError):
                redis.Redis(unix_socket_path=sock, socket_timeout=2).ping()
            with open(hookd.log_path) as f:
                text = f.read()
            self.assertIn("listening on unix://", text)
            self.assertIn("generated one into", text)
        finally:
            p.close()

    def test_bad_config_is_a_clear_error(self):
        p = Procs()
        try:
            path = os.path.join(p.dir, "bad.conf")
            with open(path, "w") as f:
                f.write("workers = 2\nmax_in_flite = 10\n")
            res = subprocess.run([HOOKD, "-c", path], capture_output=True, text=True,
                                 timeout=30)
            self.assertEqual(res.returncode, 2)
            self.assertIn("line 2", res.stderr)
            self.assertIn("max_in_flite", res.stderr)
        finally:
            p.close()

    def test_wrapped_config_errors_are_exact(self):
        """A message that wraps another one reads whole (it was once
        formatted into itself and came out garbled)."""
        p = Procs()
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKD_")}
            cases = [
                (["--redis", "foo://bar"], {},
                 "hookd: command line: key 'redis': redis URL must start with redis:// or "
                 "unix://\n"),
                ([], {"HOOKD_WORKERS": "0"},
                 "hookd: environment HOOKD_WORKERS: key 'workers': '0' is not an integer "
                 "in [1, 256]\n"),
            ]
            for args, extra, want in cases:
                res = subprocess.run([HOOKD, *args], capture_output=True, text=True,
                                     timeout=30, cwd=p.dir, env=dict(env, **extra))
                self.assertEqual((res.returncode, res.stderr), (2, want))
        finally:
            p.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
