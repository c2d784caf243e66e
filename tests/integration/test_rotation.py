"""Secret rotation, checked with the standardwebhooks npm verifier: while
secret_previous is valid, a receiver holding only the old secret and one
holding only the new secret both verify webhook-signature; after
secret_previous_until only the new one does. x-dialgen-signature always uses
the current secret."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Procs, push, wait_for  # noqa: E402

OLD = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NEW = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"


class Rotation(unittest.TestCase):
    def test_old_and_new_secret_both_verify_until_the_deadline(self):
        p = Procs()
        try:
            port, r = p.redis()
            old_rx = p.receiver(secret=NEW, extra=("--sw-secret", OLD))
            new_rx = p.receiver(secret=NEW, extra=("--sw-secret", NEW))
            future = int(time.time()) + 3600
            past = int(time.time()) - 10
            base = {"redis": "redis://127.0.0.1:%d" % port, "workers": 1, "secret": NEW,
                    "secret_previous": OLD}
            p.hookd(dict(base, prefix="rot", secret_previous_until=future), name="rotating")
            p.hookd(dict(base, prefix="done", secret_previous_until=past), name="rotated")
            wait_for(lambda: r.hlen("rot:workers") == 1 and r.hlen("done:workers") == 1, 20,
                     "workers")
            for rx in (old_rx, new_rx):
                push(r, "rot:queue", [{"id": "during-%d-%d" % (rx.port, i), "url": rx.url,
                                       "payload": {"i": i}}
                                      for i in range(20)])
                push(r, "done:queue", [{"id": "after-%d-%d" % (rx.port, i), "url": rx.url,
                                        "payload": {"i": i}}
                                       for i in range(20)])
            # per-job rotation: a job's own secret_previous, no deadline
            push(r, "done:queue", [{"id": "job-%d" % i, "url": old_rx.url, "payload": {},
                                    "secret": NEW, "secret_previous": OLD} for i in range(5)])
            so = old_rx.wait_count(45, timeout=30)
            sn = new_rx.wait_count(40, timeout=30)
            # during the rotation: both verify all 20
            # after it: the new-secret receiver verifies its 20, the old one none
            self.assertEqual((sn["sw_valid"], sn["sw_invalid"]), (40, 0))
            self.assertEqual((so["sw_valid"], so["sw_invalid"]), (20 + 5, 20))
            # x-dialgen-signature is over the current (new) secret everywhere
            self.assertEqual(so["valid_dialgen"], 45)
            self.assertEqual(sn["valid_dialgen"], 40)
        finally:
            p.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
