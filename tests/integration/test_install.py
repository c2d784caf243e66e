"""cmake --install: the binary, the man page, the example config and README,
and the systemd unit with its paths set for the prefix, into a temporary
prefix, and with DESTDIR as packagers use it. Runs the installed binary."""
import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HOOKD  # noqa: E402

BUILD = os.path.dirname(os.path.abspath(HOOKD))


def install(prefix, destdir=None):
    env = dict(os.environ)
    if destdir:
        env["DESTDIR"] = destdir
    res = subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix],
                         capture_output=True, text=True, env=env, timeout=120)
    if res.returncode != 0:
        raise AssertionError("cmake --install failed:\n" + res.stdout + res.stderr)


class Install(unittest.TestCase):
    def check_tree(self, root, prefix):
        """What an install under prefix leaves in root (root == prefix
        unless DESTDIR)."""
        binary = os.path.join(root, "bin", "hookd")
        self.assertTrue(os.access(binary, os.X_OK), binary)
        out = subprocess.run([binary, "--version"], capture_output=True, text=True)
        self.assertEqual(out.stdout, "hookd 0.1.0\n")
        with open(os.path.join(root, "share", "man", "man8", "hookd.8")) as f:
            man = f.read()
        self.assertRegex(man, r'\.TH HOOKD "8" "[^"]+" "hookd 0\.1\.0"')
        # every setting --help lists is in the man page
        keys = re.findall(r"^  ([a-z_0-9]+) ", subprocess.run(
            [binary, "--help"], capture_output=True, text=True).stdout, re.M)
        self.assertGreater(len(keys), 30)
        for k in keys:
            self.assertIn(k, man.replace("\\-", "-"), k)
        doc = os.path.join(root, "share", "doc", "hookd")
        self.assertTrue(os.path.exists(os.path.join(doc, "README.md")))
        example = os.path.join(doc, "hookd.conf.example")
        res = subprocess.run([binary, "-c", example, "--check-config"], capture_output=True,
                             text=True)
        self.assertEqual(res.returncode, 0, res.stderr)
        with open(os.path.join(root, "lib", "systemd", "system", "hookd.service")) as f:
            unit = f.read()
        self.assertIn("\nExecStart=%s/bin/hookd -c /etc/hookd/hookd.conf\n" % prefix, unit)
        self.assertIn("\nDocumentation=file://%s/share/doc/hookd/README.md\n" % prefix, unit)

    def test_prefix(self):
        with tempfile.TemporaryDirectory() as d:
            install(d)
            self.check_tree(d, d)

    def test_destdir(self):
        with tempfile.TemporaryDirectory() as d:
            install("/opt/hookd", destdir=d)
            self.check_tree(os.path.join(d, "opt", "hookd"), "/opt/hookd")


if __name__ == "__main__":
    unittest.main(verbosity=2)
