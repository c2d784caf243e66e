"""The README as a new user follows it. Its quick start's last step
(./build/hookd, on its embedded Redis), then the blocks of "Sending a
webhook", run as written and in order: the receiver block, then the shell,
Python and Node snippets. Each snippet must end in a delivery that the
Express receiver verified (x-dialgen-signature) and processed.

It runs in a scratch directory laid out like a clone: build/hookd (a link
to the binary under test) and a copy of examples/receivers/. The
snippets deliver to 127.0.0.1:3000, as written, so that port must be free.
Also: every relative link in the project's Markdown points into the
repository."""
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import EXAMPLES, HOOKD, Procs, log_of, served, wait_for  # noqa: E402

REPO = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
README = os.path.join(REPO, "README.md")
PORT = 3000     # the snippets' URLs


def section(text, title):
    """The README's text under a heading, up to the next heading of any level."""
    start = text.index("\n" + title + "\n")
    m = re.compile(r"\n#{1,3} ").search(text, start + len(title) + 2)
    return text[start:m.start() if m else len(text)]


def blocks(text):
    return re.findall(r"```(\w*)\n(.*?)```", text, re.S)


def port_free(port):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


class Readme(unittest.TestCase):
    def setUp(self):
        with open(README) as f:
            self.text = f.read()
        self.p = Procs()
        self.addCleanup(self.p.close)
        self.dir = tempfile.mkdtemp(dir=self.p.dir, prefix="clone-")
        os.mkdir(os.path.join(self.dir, "build"))
        os.symlink(os.path.realpath(HOOKD), os.path.join(self.dir, "build", "hookd"))
        # A copy, not a link: npm, run by the receiver block, writes
        # package-lock.json with paths seen through a link.
        shutil.copytree(os.path.join(EXAMPLES, "receivers"),
                        os.path.join(self.dir, "examples", "receivers"), symlinks=True)

    def run_block(self, argv, what, **kw):
        res = subprocess.run(argv, cwd=self.dir, capture_output=True, text=True, timeout=60,
                             **kw)
        self.assertEqual(res.returncode, 0, "%s failed:\n%s%s" % (what, res.stdout, res.stderr))

    def test_sending_a_webhook(self):
        self.assertTrue(port_free(PORT), "127.0.0.1:%d is taken: the README's snippets deliver "
                        "there" % PORT)
        quick = blocks(section(self.text, "## Quick start (fresh Debian bookworm)"))[0][1]
        self.assertTrue(quick.strip().endswith("&& ./build/hookd"), quick)
        log = open(os.path.join(self.dir, "hookd.log"), "w")
        h = self.p.spawn(["./build/hookd"], cwd=self.dir, stderr=log, start_new_session=True)
        h.log_path = log.name
        log.close()
        sock = os.path.join(self.dir, "var", "redis.sock")
        wait_for(lambda: os.path.exists(sock) and os.path.exists(
            os.path.join(self.dir, "var", "secret")), 30, "hookd's embedded Redis and secret")
        r = redis.Redis(unix_socket_path=sock)
        self.addCleanup(r.close)
        wait_for(lambda: served(r, lambda r: r.hlen("hookd:workers") > 0), 30,
                 "a worker registered")

        got = blocks(section(self.text, "## Sending a webhook"))
        self.assertEqual([lang for lang, _ in got], ["sh", "sh", "python", "js"], got)
        (_, receiver), (_, shell), (_, python), (_, node) = got
        out = []
        rx = self.p.spawn(["bash", "-c", receiver], cwd=self.dir, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.addCleanup(lambda: os.killpg(rx.pid, signal.SIGTERM) if rx.poll() is None
                        else None)

        def read():
            for line in rx.stdout:
                out.append(line.rstrip("\n"))
        threading.Thread(target=read, daemon=True).start()
        wait_for(lambda: "listening on %d" % PORT in out or rx.poll() is not None, 120,
                 "the receiver block to listen")
        self.assertIsNone(rx.poll(), "\n".join(out))

        calls = []
        for lang, code, call, duration in (("sh", shell, "call_123", 180),
                                           ("python", python, "call_124", 42),
                                           ("js", node, "call_125", 7)):
            if lang == "sh":
                self.run_block(["bash", "-e", "-c", code], "the shell snippet")
            elif lang == "python":
                self.run_block(["/usr/bin/python3", "-c", code], "the Python snippet")
            else:
                # as a file, as the README says; the redis package from
                # examples/producers stands in for `npm install redis`
                with open(os.path.join(self.dir, "push.js"), "w") as f:
                    f.write(code)
                env = dict(os.environ, NODE_PATH=os.path.join(EXAMPLES, "producers",
                                                              "node_modules"))
                self.run_block(["node", "push.js"], "the Node snippet (exits by itself)",
                               env=env)
            calls.append("Call %s completed (success=true, duration %ds)" % (call, duration))
            wait_for(lambda: calls[-1] in out, 30, "the receiver to print %r" % calls[-1])
        self.assertEqual([ln for ln in out if ln.startswith("Call ")], calls)
        self.assertNotIn("Invalid signature", out)
        self.assertNotIn("ERROR", log_of(h))

    def test_links_stay_in_the_repository(self):
        """Every relative Markdown link resolves to a file of the repository;
        nothing points to ../ outside it (the README once linked the Dialgen
        documentation at ../shared/spec/)."""
        files = [README] + glob.glob(os.path.join(REPO, "docs", "*.md")) + \
            glob.glob(os.path.join(REPO, "bench", "*.md")) + \
            glob.glob(os.path.join(REPO, "examples", "*", "*.md"))
        checked = 0
        for path in files:
            with open(path) as f:
                text = f.read()
            self.assertNotIn("../shared", text, path)
            for target in re.findall(r"\]\(([^)\s]+)\)", text):
                if re.match(r"[a-z]+://|#|mailto:", target):
                    continue
                full = os.path.realpath(os.path.join(os.path.dirname(path),
                                                     target.split("#")[0]))
                self.assertTrue(full.startswith(REPO + os.sep) and os.path.exists(full),
                                "%s links %s, not a file of the repository" % (path, target))
                checked += 1
        self.assertGreater(checked, 5)


if __name__ == "__main__":
    unittest.main(verbosity=2)
