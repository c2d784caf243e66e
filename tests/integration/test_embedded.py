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
from harness import HOOKD, SECRET, Procs, log_of, served, wait_for  # noqa: E402


class EmbeddedTest(unittest.TestCase):
    def test_no_config_starts_private_redis_and_delivers(self):
        p = Procs()
        try:
            hookd = p.hookd_argv([], env={k: v for k, v in os.environ.items()
                                          if not k.startswith("HOOKD_") or k == "HOOKD_BIN"})
            sock = os.path.join(p.dir, "var", "redis.sock")
            r = redis.Redis(unix_socket_path=sock)
            wait_for(lambda: served(r, lambda r: r.hlen("hookd:workers") >= 1), 30,
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
            # A clean start, one delivery and a clean stop: nothing failed, so
            # nothing is logged as an error (the BLMOVE the stop cuts short
            # once was: "BLMOVE failed: ?").
            self.assertEqual([l for l in text.splitlines() if " ERROR " in l], [])
        finally:
            p.close()

    def test_a_dead_embedded_redis_is_restarted(self):
        """README: the embedded redis-server, if it dies, is started again,
        and the workers find it on their own: the worker that finds the new
        server is replaced by a fresh one, which delivers the next job."""
        p = Procs()
        try:
            hookd = p.hookd_argv(["--workers", "1", "--secret", SECRET], env=clean_env())
            r = redis.Redis(unix_socket_path=os.path.join(p.dir, "var", "redis.sock"))
            server = wait_for(lambda: _server_pid(r), 30, "the embedded redis")
            recv = p.receiver()
            for i, kill in ((1, True), (2, False)):
                r.lpush("hookd:queue", json.dumps({"id": "er-%d" % i, "url": recv.url,
                                                   "payload": {}}))
                wait_for(lambda: recv.stats()["succeeded"].get("er-%d" % i), 30,
                         "er-%d delivered" % i)
                if kill:
                    os.kill(server, signal.SIGKILL)
                    wait_for(lambda: _server_pid(r) not in (None, server), 30,
                             "a new redis-server")
                    # The worker that finds it drains and is replaced (see
                    # below): wait for the fresh one, which delivers er-2.
                    wait_for(lambda: log_of(hookd).count("started: max_in_flight") == 2, 30,
                             "the worker replaced")
            hookd.send_signal(signal.SIGTERM)
            self.assertEqual(hookd.wait(timeout=60), 0)
            log = log_of(hookd)
            self.assertIn("embedded redis-server restarted", log)
            # The new server (its run_id) may have lost the last second of
            # writes (appendfsync everysec): the worker drains, requeues its
            # in-flight record and is replaced, once (DESIGN "Another server").
            self.assertEqual(log.count("is another server than before"), 1)
            self.assertEqual(log.count("started: max_in_flight"), 2, "one replacement")
        finally:
            p.close()

    def test_one_hookd_per_data_dir(self):
        """README, data_dir: a second hookd on a data_dir in use exits at
        once, naming the running one, without touching its socket; the CLI
        commands still reach the running one. The lock lasts as long as the
        embedded redis-server (a killed supervisor's server still owns the
        AOF), and a lock file left by killed processes does not block a
        restart."""
        p = Procs()
        stopped = None      # a redis-server of ours held stopped, not a child of ours
        try:
            env = clean_env(HOOKD_METRICS_LISTEN="off")
            argv = ["--workers", "1", "--secret", SECRET]
            first = p.hookd_argv(argv, env=env)
            sock = os.path.join(p.dir, "var", "redis.sock")
            lock = os.path.join(p.dir, "var", "hookd.lock")
            r = redis.Redis(unix_socket_path=sock)
            server = wait_for(lambda: _server_pid(r), 30, "the embedded redis")
            wait_for(lambda: r.hlen("hookd:workers") == 1, 30, "a registered worker")
            inode = os.stat(sock).st_ino

            tail = " (lock file ./var/hookd.lock); stop it first or choose another data_dir"
            self.assertEqual(self._refused(p, argv, env),
                             "data_dir ./var is in use by hookd pid %d%s" % (first.pid, tail))
            self.assertEqual((os.stat(sock).st_ino, _server_pid(r)), (inode, server),
                             "the running one's socket and redis-server untouched")
            recv = p.receiver()
            r.lpush("hookd:queue", json.dumps({"id": "lock-1", "url": recv.url, "payload": {}}))
            self.assertEqual(recv.wait_count(1, timeout=30)["ids"], {"lock-1": 1})
            res = subprocess.run([HOOKD, "stats", "--json"], capture_output=True, text=True,
                                 timeout=30, cwd=p.dir, env=env)
            self.assertEqual(res.returncode, 0, res.stderr)
            self.assertEqual(json.loads(res.stdout)["queue"], 0)

            # A supervisor killed outright: its redis-server (held stopped
            # here, so it cannot act on the SIGTERM its parent's death sends
            # it) still holds the lock.
            os.kill(server, signal.SIGSTOP)
            stopped = server
            first.expect_killed = True
            first.kill()
            first.wait(timeout=30)
            self.assertEqual(self._refused(p, argv, env),
                             "data_dir ./var is in use by a redis-server or other process left "
                             "behind by hookd pid %d, which has exited%s" % (first.pid, tail))
            os.kill(server, signal.SIGKILL)
            stopped = None
            wait_for(lambda: _gone(server), 30, "the old redis-server gone")
            with open(lock) as f:
                self.assertEqual(f.read(), "%d\n" % first.pid, "the stale lock file is still there")

            third = p.hookd_argv(argv, env=env, name="third")
            wait_for(lambda: _server_pid(r) not in (None, server), 30, "a new redis-server")
            r.lpush("hookd:queue", json.dumps({"id": "lock-2", "url": recv.url, "payload": {}}))
            wait_for(lambda: recv.stats()["succeeded"].get("lock-2"), 30, "lock-2 delivered")
            with open(lock) as f:
                self.assertEqual(f.read(), "%d\n" % third.pid)
            third.send_signal(signal.SIGTERM)
            self.assertEqual(third.wait(timeout=60), 0)
        finally:
            if stopped is not None:
                os.kill(stopped, signal.SIGKILL)
            p.close()

    def _refused(self, p, argv, env):
        """Run a hookd expected to refuse to start: it must exit 1 within
        20 s with one ERROR line and no other; returns that line's message."""
        proc = subprocess.Popen([HOOKD, *argv], cwd=p.dir, env=env, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            self.fail("a second hookd on the same data_dir kept running")
        self.assertEqual(proc.returncode, 1, err)
        errors = [l.split(" ", 1)[1] for l in err.splitlines() if " ERROR " in l]
        self.assertEqual(len(errors), 1, err)
        self.assertTrue(errors[0].startswith("ERROR supervisor "), err)
        return errors[0][len("ERROR supervisor "):]

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
                 "hookd: command line: key 'redis': redis URL must start with redis://, "
                 "rediss://, unix://, redis-sentinel:// or redis-cluster://\n"),
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


def _server_pid(r):
    """The pid of the redis-server r reaches, None while there is none or
    while it is still loading its AOF (INFO answers then, but LPUSH is
    refused with LOADING)."""
    try:
        info = r.info()
    except redis.exceptions.ConnectionError:
        return None
    return None if info.get("loading") else info["process_id"]


def _gone(pid):
    """pid has exited (a zombie holds no descriptors, so counts as gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def clean_env(**extra):
    """The environment without HOOKD_* settings (HOOKD_BIN aside), plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKD_")}
    env.update(extra)
    return env


class SettingsTest(unittest.TestCase):
    """README, Running it: defaults < the config file < HOOKD_<KEY> < the
    command line (--KEY VALUE, --KEY=VALUE, dashes or underscores), and
    --check-config."""

    def setUp(self):
        self.p = Procs()
        self.port, self.r = self.p.redis()
        self.conf = os.path.join(self.p.dir, "p.conf")
        with open(self.conf, "w") as f:
            f.write("redis = redis://127.0.0.1:%d\nprefix = pfile\nworkers = 1\n" % self.port)

    def tearDown(self):
        self.p.close()

    def test_each_level_overrides_the_one_below(self):
        """The same key, prefix, at each level; the effective one is read
        back through `hookd stats --json`, which reports the depth of
        <prefix>:queue, a different depth for each prefix."""
        for n, prefix in enumerate(("hookd", "pfile", "penv", "pcli"), 1):
            self.r.lpush(prefix + ":queue", *["x"] * n)

        def depth(args, **env):
            res = subprocess.run([HOOKD, "stats", "--json", *args], capture_output=True,
                                 text=True, timeout=30, cwd=self.p.dir,
                                 env=clean_env(HOOKD_REDIS="redis://127.0.0.1:%d" % self.port,
                                               **env))
            self.assertEqual(res.returncode, 0, res.stderr)
            return json.loads(res.stdout)["queue"]
        self.assertEqual(depth([]), 1, "default prefix")
        self.assertEqual(depth(["-c", self.conf]), 2, "the file over the default")
        self.assertEqual(depth(["-c", self.conf], HOOKD_PREFIX="penv"), 3,
                         "the environment over the file")
        self.assertEqual(depth(["-c", self.conf, "--prefix", "pcli"], HOOKD_PREFIX="penv"), 4,
                         "--KEY VALUE over the environment")
        self.assertEqual(depth(["-c", self.conf, "--prefix=pcli"], HOOKD_PREFIX="penv"), 4,
                         "--KEY=VALUE over the environment")

    def test_the_daemon_runs_with_the_effective_settings(self):
        """hookd itself: workers from the environment over the file's,
        prefix and max_in_flight from the command line."""
        h = self.p.hookd_argv(["-c", self.conf, "--prefix", "pcli", "--max-in-flight=64"],
                              env=clean_env(HOOKD_WORKERS="2", HOOKD_PREFIX="penv"))
        wait_for(lambda: self.r.hlen("pcli:workers") == 2, 30, "2 workers under pcli")
        self.assertEqual([json.loads(v)["max_in_flight"]
                          for v in self.r.hvals("pcli:workers")], [64, 64])
        self.assertEqual(self.r.keys("pfile:*") + self.r.keys("penv:*"), [])
        h.send_signal(signal.SIGTERM)
        self.assertEqual(h.wait(timeout=60), 0)

    def test_check_config(self):
        """A good config: exit 0, "configuration OK", nothing started (no
        key written to its Redis). A bad one: exit 2, file, line and key
        named on stderr."""
        res = subprocess.run([HOOKD, "--check-config", "-c", self.conf], capture_output=True,
                             text=True, timeout=30, cwd=self.p.dir, env=clean_env())
        self.assertEqual((res.returncode, res.stdout), (0, "configuration OK\n"), res.stderr)
        self.assertEqual(self.r.keys("*"), [])
        with open(self.conf, "a") as f:
            f.write("max_in_flight = lots\n")
        res = subprocess.run([HOOKD, "--check-config", "-c", self.conf], capture_output=True,
                             text=True, timeout=30, cwd=self.p.dir, env=clean_env())
        self.assertEqual((res.returncode, res.stdout), (2, ""))
        self.assertIn("%s line 4: key 'max_in_flight'" % self.conf, res.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
