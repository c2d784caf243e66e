"""Every message about a setting, word for word: the config file's
(unknown key, with a "did you mean" when a key is close; a section header,
on its own line; a syntax error; a file that cannot be opened), each
setter's refusal as the command line and the environment wrap it, the
command line's own (unknown option, with its "did you mean"; a stray
argument; an option without its value), and the warning for a HOOKD_
variable that is no setting. Operators' scripts and these tests match the
text, so a change of wording fails here first.

Each refusal is checked with --check-config and at a real start (exit 2,
the same single line on stderr, nothing on stdout); the warning at a real
start against a real redis-server, where the typo must not take effect.
No Redis is needed for the rest: hookd refuses before it connects."""
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HOOKD, Procs, log_of, wait_for  # noqa: E402

# hookd's environment without HOOKD_* (the harness's HOOKD_BIN and
# HOOKD_LUA_DIR, a developer's HOOKD_REDIS); each case adds its own.
BASE_ENV = {k: v for k, v in os.environ.items() if not k.startswith("HOOKD_")}

LONG = [(["--ops-webhook-url", "http://h/" + "x" * 4088], "key 'ops_webhook_url': a URL of "
         "4097 bytes; at most 4096")]

# Command-line values refused by each kind of key's setter, and the message.
SETTERS = [
    (["--user-agent="], "key 'user_agent': empty value"),
    (["--prefix", "a b"],
     "key 'prefix': 1-64 characters of [A-Za-z0-9:_.-], or such in braces ({name})"),
    (["--prefix", "{a}b"],
     "key 'prefix': 1-64 characters of [A-Za-z0-9:_.-], or such in braces ({name})"),
    (["--redis", "redis-cluster://127.0.0.1:7000/0"],
     "key 'redis': a cluster URL names no database: redis-cluster://host:port,..."),
    (["--redis", "redis-sentinel://127.0.0.1:26379"],
     "key 'redis': sentinel URL needs the primary's name: redis-sentinel://host:port,.../name"),
    (["--secret="], "key 'secret': must be 1..512 bytes"),
    (["--secret", "whsec_!!!"], "key 'secret': text after whsec_ is not valid base64"),
    (["--redis", "foo://bar"],
     "key 'redis': redis URL must start with redis://, rediss://, unix://, redis-sentinel:// "
     "or redis-cluster://"),
    (["--redis", "redis://h:x"], "key 'redis': bad port in redis URL"),
    (["--redis", "unix://rel"], "key 'redis': unix URL needs an absolute path"),
    (["--metrics-listen", "nope"], "key 'metrics_listen': 'nope' is not off, host:port or "
     "[ipv6]:port with a port of 1..65535"),
    (["--ops-webhook-url", "ftp://x"], "key 'ops_webhook_url': 'ftp://x' is not an http(s) "
     "URL: url scheme must be http or https"),
    (["--log-level", "loud"], "key 'log_level': 'loud' is not debug, info, warn or error"),
    (["--log-format", "xml"], "key 'log_format': 'xml' is not text or json"),
    (["--timeout", "0"], "key 'timeout': '0' is not a duration between 1ms and 600s "
     "(e.g. 30s, 500ms)"),
    (["--deny-private", "maybe"], "key 'deny_private': 'maybe' is not true or false"),
    (["--retry-jitter", "2"], "key 'retry_jitter': '2' is not a number between 0 and 1"),
    (["--retry-schedule", "x"], "key 'retry_schedule': 'x' is not a list of up to 32 "
     "durations (e.g. 1s,5s,25s; none for no retries)"),
    (["--attempt-log", "some"], "key 'attempt_log': 'some' is not failures, all or off"),
    (["--secret-previous-until", "soon"], "key 'secret_previous_until': 'soon' is not unix "
     "seconds nor YYYY-MM-DDTHH:MM:SSZ"),
    (["--allow-cidrs", "x"], "key 'allow_cidrs': 'x' is not a list of addresses or CIDRs"),
    (["--resolve", "x"], "key 'resolve': 'x' is not host:port:address[,...]"),
    (["--rate-limits", "http://x:80"],
     "key 'rate_limits': entry 'http://x:80' is not origin=N/s or origin=N/m"),
    (["--rate-limits", "http://x:80=5/s,https://X.example:443=1/s"],
     "key 'rate_limits': entry 'https://X.example:443=1/s': 'https://X.example:443' is not an "
     "origin as hookd writes it (scheme://host:port, lowercase, port included, no path)"),
    (["--rate-limits", "https://x.example=1/s"],
     "key 'rate_limits': entry 'https://x.example=1/s': 'https://x.example' is not an "
     "origin as hookd writes it (scheme://host:port, lowercase, port included, no path)"),
    (["--rate-limits", "http://x:80=0/s"],
     "key 'rate_limits': entry 'http://x:80=0/s': '0/s' is not N/s or N/m with N from 1 to "
     "1000000 per second"),
    (["--rate-limits", "http://x:80=1000001/s"],
     "key 'rate_limits': entry 'http://x:80=1000001/s': '1000001/s' is not N/s or N/m with N "
     "from 1 to 1000000 per second"),
    (["--rate-limits", "http://x:80=60000001/m"],
     "key 'rate_limits': entry 'http://x:80=60000001/m': '60000001/m' is not N/s or N/m with N "
     "from 1 to 1000000 per second"),
    (["--rate-limits", "http://x:80=5/h"],
     "key 'rate_limits': entry 'http://x:80=5/h': '5/h' is not N/s or N/m with N from 1 to "
     "1000000 per second"),
    (["--max-job-bytes", "1"], "key 'max_job_bytes': '1' is not an integer in "
     "[64, 67108864]"),
    (["--workers", "0"], "key 'workers': '0' is not an integer in [1, 256]"),
]

# The command line's own refusals.
USAGE = [
    (["--wrokers", "3"], "unknown option '--wrokers'; did you mean '--workers'?"),
    (["--max-inflight", "3"], "unknown option '--max-inflight'; did you mean "
     "'--max-in-flight'?"),
    (["--max_inflight=3"], "unknown option '--max_inflight=3'; did you mean "
     "'--max_in_flight'?"),
    (["--bogus", "1"], "unknown option '--bogus' (see --help)"),
    (["--redo", "1"], "unknown option '--redo' (see --help)"),   # 2 from redis: too far
    (["stray"], "unexpected argument 'stray'"),
    (["--=1"], "bad option '--=1'"),
    (["--workers"], "option '--workers' needs a value"),
]

# Settings refused together, once all are read (config_finish, and the
# Redis TLS files loaded at start): the message as is, after "hookd: ".
CROSS = [
    (["--redis", "redis-cluster://127.0.0.1:7000", "--prefix", "p" * 63],
     "key 'prefix': at most 62 characters with Redis Cluster, which puts it in braces"),
    (["--redis", "redis://127.0.0.1:1", "--redis-ca-file", "/x"],
     "key 'redis_ca_file' is set, but redis is not a rediss:// URL"),
    (["--redis-tls-server-name", "x"],
     "key 'redis_tls_server_name' is set, but redis is not a rediss:// URL"),
    (["--redis", "rediss://127.0.0.1:1", "--redis-ca-file", "/nonexistent/ca.pem"],
     "redis_ca_file '/nonexistent/ca.pem': No such file or directory"),
    (["--redis", "rediss://127.0.0.1:1", "--redis-client-cert", "/nonexistent/c.pem"],
     "redis_client_cert and redis_client_key go together: set both"),
    (["--redis", "rediss://127.0.0.1:1", "--redis-client-cert", "/nonexistent/c.pem",
      "--redis-client-key", "/nonexistent/k.pem"],
     "redis_client_cert '/nonexistent/c.pem': No such file or directory"),
]

# Config files (text -> the message after "hookd: <path> ").
FILES = [
    ("max_inflight = 3\n", "line 1: unknown key 'max_inflight'; did you mean 'max_in_flight'?"),
    ("# a comment\nnonsense = 1\n", "line 2: unknown key 'nonsense'"),
    ("Max-Per-Hots = 3\n", "line 1: unknown key 'Max-Per-Hots'; did you mean 'max_per_host'?"),
    ("[hookd]\n", "line 1: sections are not supported ([hookd])"),
    ("[hookd]\nworkers = 2\n", "line 1: sections are not supported ([hookd])"),
    ("\ufeff[hookd]\nworkers = 2\n", "line 1: sections are not supported ([hookd])"),
    ("workers = 2\n\n  [more]\n", "line 3: sections are not supported ([more])"),
    # Debian's libinih reads 199 bytes of a line: longer is refused, not cut
    ("workers = 2\nresolve = %s\n" % ",".join(["a.example:443:127.0.0.1"] * 9),
     "line 2: longer than 199 bytes, the most a line may hold here; set that key with its "
     "--option or HOOKD_ environment variable instead"),
    ("user_agent = %s\nnonsense = 1\n" % ("x" * 186), "line 2: unknown key 'nonsense'"),
    ("workers = 2\nworkers = x\n[hookd]\n", "line 2: key 'workers': 'x' is not an integer "
     "in [1, 256]"),
    ("workers\n", "line 1: syntax error"),
]


class Refusals(unittest.TestCase):
    def setUp(self):
        self.p = Procs()
        self.addCleanup(self.p.close)

    def refused(self, args, env, want, command=()):
        """args refused with exactly want, by --check-config and at start
        (of command, e.g. dlq list, when given)."""
        for mode in (["--check-config"], []):
            res = subprocess.run([HOOKD, *command, *mode, *args], capture_output=True, text=True,
                                 timeout=30, cwd=self.p.dir, env=dict(BASE_ENV, **env))
            self.assertEqual((res.returncode, res.stdout, res.stderr), (2, "", want + "\n"),
                             "%s %s" % (mode, args))

    def test_setters_on_the_command_line(self):
        for args, msg in SETTERS:
            with self.subTest(args=args):
                self.refused(args, {}, "hookd: command line: " + msg)

    def test_setters_in_the_environment(self):
        for args, msg in SETTERS:
            name = "HOOKD_" + args[0][2:].split("=")[0].replace("-", "_").upper()
            value = args[1] if len(args) > 1 else args[0].split("=", 1)[1]
            with self.subTest(name=name):
                self.refused([], {name: value}, "hookd: environment %s: %s" % (name, msg))

    def test_settings_refused_together(self):
        for args, msg in CROSS:
            with self.subTest(args=args):
                self.refused(args, {}, "hookd: " + msg)

    def test_long_values(self):
        """Values too long for a file's line (libinih's 199 bytes; that
        refusal is test_files'), refused from the command line and the
        environment without echoing them."""
        for args, msg in LONG:
            with self.subTest(args=args[0]):
                self.refused(args, {}, "hookd: command line: " + msg)
                name = "HOOKD_" + args[0][2:].replace("-", "_").upper()
                self.refused([], {name: args[1]}, "hookd: environment %s: %s" % (name, msg))

    def test_setters_in_the_file(self):
        for args, msg in SETTERS:
            key = args[0][2:].split("=")[0]
            value = args[1] if len(args) > 1 else args[0].split("=", 1)[1]
            path = os.path.join(self.p.dir, "c.conf")
            with open(path, "w") as f:
                f.write("# hookd\n%s = %s\n" % (key, value))
            with self.subTest(key=key):
                self.refused(["-c", path], {}, "hookd: %s line 2: %s" % (path, msg))

    def test_command_line(self):
        for args, msg in USAGE:
            with self.subTest(args=args):
                self.refused(args, {}, "hookd: " + msg)
        self.refused(["--limit", "0"], {}, "hookd: --limit needs a positive number",
                     command=["dlq", "list"])

    def test_operator_commands(self):
        """Usage errors of the operator commands, said before Redis is
        reached (here there is none: once they said 'cannot connect')."""
        cases = [
            (["dlq"], "dlq needs an action: the actions are list, show, replay, purge "
                      "(see --help)"),
            (["dlq", "frob"], "dlq has no action 'frob': the actions are list, show, replay, "
                              "purge (see --help)"),
            (["retry"], "retry needs an action: the actions are list (see --help)"),
            (["dlq", "show"], "dlq show needs ids (a job id, '-' for entries without one, or "
                              "a dead_id)"),
            (["dlq", "replay"], "dlq replay needs --all or job ids"),
            (["dlq", "purge"], "dlq purge needs --all or job ids"),
            (["attempts"], "attempts needs job ids"),
            (["batch", "show"], "batch show needs a batch id"),
            (["stats", "x"], "stats takes no argument like 'x' (see --help)"),
            (["dlq", "list", "y"], "dlq list takes no argument like 'y' (see --help)"),
        ]
        for command, msg in cases:
            with self.subTest(command=command):
                res = subprocess.run([HOOKD, *command, "--redis", "redis://127.0.0.1:1"],
                                     capture_output=True, text=True, timeout=30,
                                     cwd=self.p.dir, env=BASE_ENV)
                self.assertEqual((res.returncode, res.stdout, res.stderr),
                                 (2, "", "hookd: " + msg + "\n"))

    def test_files(self):
        path = os.path.join(self.p.dir, "c.conf")
        for text, msg in FILES:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            with self.subTest(text=text):
                self.refused(["-c", path], {}, "hookd: %s %s" % (path, msg))
        missing = os.path.join(self.p.dir, "none.conf")
        self.refused(["-c", missing], {},
                     "hookd: %s: cannot open: No such file or directory" % missing)

    def test_a_file_without_sections_passes(self):
        path = os.path.join(self.p.dir, "c.conf")
        with open(path, "w") as f:
            f.write("; no header\nworkers = 2\n  # indented comment\nmax_in_flight = 3\n")
        res = subprocess.run([HOOKD, "--check-config", "-c", path], capture_output=True,
                             text=True, timeout=30, env=BASE_ENV)
        self.assertEqual((res.returncode, res.stdout, res.stderr),
                         (0, "configuration OK\n", ""))


class EnvironmentWarnings(unittest.TestCase):
    """A HOOKD_ variable that is no setting is named on stderr, not obeyed
    and not fatal; the test tools' own variables are not."""

    def check(self, env):
        res = subprocess.run([HOOKD, "--check-config"], capture_output=True, text=True,
                             timeout=30, env=dict(BASE_ENV, **env))
        self.assertEqual((res.returncode, res.stdout), (0, "configuration OK\n"), res.stderr)
        return res.stderr

    def test_exact_warnings(self):
        cases = [
            ({"HOOKD_WROKERS": "3"}, "hookd: warning: unknown environment variable "
             "HOOKD_WROKERS ignored; did you mean HOOKD_WORKERS?\n"),
            ({"HOOKD_MAX_INFLIGHT": "3"}, "hookd: warning: unknown environment variable "
             "HOOKD_MAX_INFLIGHT ignored; did you mean HOOKD_MAX_IN_FLIGHT?\n"),
            ({"HOOKD_workers": "3"}, "hookd: warning: unknown environment variable "
             "HOOKD_workers ignored; did you mean HOOKD_WORKERS?\n"),
            ({"HOOKD_REDIS_URL": "redis://x"}, "hookd: warning: unknown environment "
             "variable HOOKD_REDIS_URL ignored\n"),
        ]
        for env, want in cases:
            with self.subTest(env=env):
                self.assertEqual(self.check(env), want)

    def test_tools_variables_are_quiet(self):
        env = {name: "x" for name in ("HOOKD_BIN", "HOOKD_REAL_BIN", "HOOKD_LUA_DIR",
                                      "HOOKD_KEEP", "HOOKD_MODEL_SEED", "HOOKD_MODEL_STEPS",
                                      "HOOKD_MODEL_TRACE")}
        env["HOOKD_WORKERS"] = "2"
        self.assertEqual(self.check(env), "")

    def test_at_start_the_typo_is_not_obeyed(self):
        """A real start: one warning line, once, first; the misspelled
        setting does not take effect (1 worker, not 3)."""
        p = Procs()
        self.addCleanup(p.close)
        port, _ = p.redis()
        h = p.hookd({"redis": "redis://127.0.0.1:%d" % port, "workers": 1},
                    env=dict(BASE_ENV, HOOKD_WROKERS="3"))
        started = re.compile(r" worker \S+ started$", re.M)
        wait_for(lambda: started.search(log_of(h)), 30, "a worker started")
        h.terminate()
        self.assertEqual(h.wait(timeout=60), 0, log_of(h)[-2000:])
        lines = log_of(h).splitlines()
        self.assertEqual(lines[0], "hookd: warning: unknown environment variable "
                         "HOOKD_WROKERS ignored; did you mean HOOKD_WORKERS?")
        self.assertEqual(sum("warning" in line for line in lines), 1, lines)
        self.assertEqual(len(started.findall(log_of(h))), 1, lines)


if __name__ == "__main__":
    unittest.main()
