"""hookd on a Redis Cluster (issue 19 (c)): a local cluster of 3 primaries,
each with a replica (harness Procs.redis_cluster), two prefixes whose hash
tags {A} and {B} live on different primaries, one hookd instance per
prefix with every primary as a seed (redis-cluster://), one receiver.

20,000 jobs under each prefix are delivered, and conservation holds for
each prefix on the node serving it. Then the primary holding A is lost
(kill -9, or CLUSTER FAILOVER on its replica while jobs are moving); once
its replica serves the slot, 2,000 more jobs under A are pushed and all of
them are delivered: hookd resumes on the new primary. B's instance goes on
through it (2,000 more under B at the same time). Test 3 kills A's primary
while 10,000 jobs are moving: none lost, the duplicates (claims and
outcomes the replica never got) counted. The times reported: from the
fault to the replica's promotion (CLUSTER SLOTS on the replica names it),
to hookd's two connections to it (its log lines naming the new node) and
to the first delivery under A after those.

HOOKD_CLUSTER_JOBS sets the jobs per prefix (default 20000).
"""
import datetime
import json
import os
import re
import signal
import string
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conservation  # noqa: E402
from harness import SECRET, Procs, log_of, print_table, push, wait_for  # noqa: E402

JOBS = int(os.environ.get("HOOKD_CLUSTER_JOBS", "20000"))
AFTER = 2000                # jobs pushed under each prefix after the failover
ROWS = []                   # the table, printed at the end
UP = re.compile(r"^(\S+) .*redis (fetch|ack) connection to redis-cluster://\S+ "
                r"\(slot (\d+) at 127\.0\.0\.1:(\d+)\) up", re.M)


def iso_time(stamp):
    """Unix seconds of hookd's "2025-11-15T14:00:00.000Z"."""
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


class Cluster(unittest.TestCase):

    def setUp(self):
        self.p = Procs()
        # Not tearDown: that is skipped when setUp fails, which would leave
        # six redis-servers running.
        self.addCleanup(self.p.close)
        self.c = self.p.redis_cluster(primaries=3, replicas_per_primary=1)
        self.recv = self.p.receiver()
        self.a, self.b = self.two_prefixes()
        self.seeds = self.c.seeds()             # the 3 primaries at the start
        self.hookd = {p: self.p.hookd(self.config(p), name="hookd-" + p)
                      for p in (self.a, self.b)}
        # Cleanups run last-added first: hookd stops while the cluster is
        # still up (Procs.close would stop the nodes at the same time, and
        # the requeue of a stopping worker's jobs would find no Redis).
        self.addCleanup(self.stop_hookd)

    def stop_hookd(self):
        for h in self.hookd.values():
            if h.poll() is None:
                h.send_signal(signal.SIGTERM)
        for h in self.hookd.values():
            h.wait(timeout=60)

    def two_prefixes(self):
        """"a" and the first of "b", "c", ... whose {prefix} hashes to a slot
        another primary serves."""
        first = self.c.owner("{a}")
        for name in string.ascii_lowercase[1:]:
            if self.c.owner("{%s}" % name) != first:
                return "a", name
        raise AssertionError("every one-letter hash tag on one primary")

    def config(self, prefix):
        return {"redis": "redis-cluster://" + self.seeds, "prefix": prefix, "workers": 2,
                "secret": SECRET, "heartbeat_ttl": "2s", "max_in_flight": 200,
                "retry_schedule": "100ms,200ms,400ms,800ms",
                # Not 10 s: on a loaded 2-core machine the receiver can
                # answer that late, and a timed-out POST it counted as
                # delivered is sent again (a duplicate with no Redis fault).
                "timeout": "30s",
                "shutdown_timeout": "5s"}

    def node(self, prefix):
        """A plain client of the primary serving {prefix} now."""
        return self.c.node(self.c.owner("{%s}" % prefix))

    def enqueue(self, prefix, first, n):
        ids = ["%s-%06d" % (prefix, i) for i in range(first, first + n)]
        jobs = [{"id": i, "url": self.recv.url, "payload": {"i": i}} for i in ids]
        r = self.node(prefix)
        for k in range(0, n, 5000):
            push(r, "{%s}:queue" % prefix, jobs[k:k + 5000])
        return ids

    def dead_ids(self, prefix):
        return {json.loads(e)["id"] for e in self.node(prefix).lrange("{%s}:dead" % prefix, 0, -1)}

    def settle(self, batches, timeout=120, counted=False):
        """Wait until every id of every (prefix, ids) is delivered or dead.
        counted: first wait on hookd's counters (P:stats delivered + dead
        reaching len(ids): only right when nothing else was pushed under P
        and no failover lost increments), which costs the receiver nothing:
        its /__stats answer is every delivery's record, tens of MB at
        40,000, and serializing it holds node's only thread."""
        if counted:
            for p, ids in batches:
                wait_for(lambda: self.running() or self.stat(p, "delivered") +
                         self.stat(p, "dead") >= len(ids), timeout,
                         "{%s}:stats delivered + dead to reach %d" % (p, len(ids)), interval=0.2)

        def done():
            self.running()
            got = set(self.recv.stats()["succeeded"])
            return all(set(ids) <= got | self.dead_ids(p) for p, ids in batches)
        wait_for(done, timeout, "every job delivered or dead", interval=1)

    def running(self):
        """Fail at once, with its log, if a hookd has exited."""
        for p, h in self.hookd.items():
            if h.poll() is not None:
                raise AssertionError("hookd for {%s} exited with %s:\n%s" % (
                    p, h.returncode, log_of(h)[-2000:]))

    def stat(self, prefix, name):
        return int(self.node(prefix).hget("{%s}:stats" % prefix, name) or 0)

    def books(self, case, prefix, ids, recover=None, after_failover=False):
        """The row for ids under prefix, and the checks: none lost; each
        delivered once (before a failover: hookd's counters agree with the
        receiver, conservation strict); after one, duplicates are reported
        and conservation is checked at-least-once."""
        s = self.recv.stats()
        want = set(ids)
        delivered = want & set(s["succeeded"])
        dead = want & self.dead_ids(prefix)
        lost = want - delivered - dead
        dupes = sum(s["succeeded"][i] - 1 for i in delivered)
        counts = {i: s["succeeded"][i] for i in delivered}
        if not after_failover:
            # Outcomes may still be on their way to Redis when the receiver
            # has them all: wait for hookd's totals before the strict check.
            wait_for(lambda: self.stat(prefix, "delivered") + self.stat(prefix, "dead") >=
                     len(ids), 30, "{%s}:stats delivered + dead to reach %d" % (prefix, len(ids)),
                     interval=0.1)
            self.assertEqual((self.stat(prefix, "delivered"), self.stat(prefix, "dead")),
                             (len(delivered), len(dead)),
                             "{%s}:stats delivered/dead disagree with the receiver" % prefix)
        else:
            # In flight at the failover: RECORDs may still be settling.
            wait_for(lambda: not self.in_flight(prefix), 30,
                     "nothing left in flight under {%s}" % prefix, interval=0.1)
        report = conservation.check(self.node(prefix), "{%s}" % prefix, ids, counts,
                                    allow_duplicates=after_failover)
        row = (case, "{%s}" % prefix, len(ids), len(delivered), len(dead), len(report.lost), dupes,
               "%.2f" % recover if recover is not None else "-")
        ROWS.append(row)
        print("\n| %s | %s | %d | %d | %d | %d | %d | %s |" % row, file=sys.stderr)
        report.assert_conserved()
        self.assertEqual(lost, set(), "jobs lost")
        self.assertEqual(delivered & dead, set())
        if not after_failover:
            self.assertEqual(dupes, 0, "duplicates with no fault; hookd's log says:\n" + "\n".join(
                line for line in log_of(self.hookd[prefix]).splitlines()
                if " INFO " not in line)[-3000:])
        return report

    def in_flight(self, prefix):
        r = self.node(prefix)
        return any(r.hlen(k) for k in r.scan_iter("{%s}:inflight:*" % prefix, count=1000))

    def ups(self, prefix):
        """(unix time, fetch|ack, slot, port) of each "... up" line in the
        log of prefix's hookd."""
        return [(iso_time(t), kind, int(slot), int(port))
                for t, kind, slot, port in UP.findall(log_of(self.hookd[prefix]))]

    def first_phase(self):
        """JOBS under each prefix, all delivered, each instance connected to
        the primary serving its prefix's slot."""
        owners = {p: self.c.owner("{%s}" % p) for p in (self.a, self.b)}
        self.assertNotEqual(owners[self.a], owners[self.b], "the two prefixes on one primary")
        ids = {p: self.enqueue(p, 0, JOBS) for p in (self.a, self.b)}
        self.settle(list(ids.items()), counted=True)
        for p in (self.a, self.b):
            self.books("%d jobs each, two primaries" % JOBS, p, ids[p])
            slot = self.c.keyslot("{%s}" % p)
            ups = {(kind, s, port) for _, kind, s, port in self.ups(p)}
            self.assertIn(("fetch", slot, owners[p]), ups, "fetch connection to the slot's primary")
            self.assertIn(("ack", slot, owners[p]), ups, "ack connection to the slot's primary")
        return owners

    def resumes(self, case, old, replica, t0, fault):
        """After the fault (its name, for the report) at t0 (unix time)
        moved A's slot from old to replica: wait for the promotion, push AFTER more under each prefix,
        all delivered; the times from t0 to the promotion, to hookd's
        connections to the new primary and to its first delivery there."""
        wait_for(lambda: self.c.owner("{%s}" % self.a, via=replica) == replica, 30,
                 "the replica %d to serve {%s}'s slot" % (replica, self.a), interval=0.02)
        promoted = time.time() - t0
        self.c.wait_served("{%s}" % self.a, replica)    # every live node agrees
        self.assertNotIn(old, self.c.primaries(replica), "the old primary still serves slots")
        more = {p: self.enqueue(p, JOBS, AFTER) for p in (self.a, self.b)}
        self.settle(list(more.items()))
        slot = self.c.keyslot("{%s}" % self.a)
        ups = [(t, kind) for t, kind, s, port in self.ups(self.a) if s == slot and port == replica]
        kinds = {kind for _, kind in ups}
        self.assertEqual(kinds, {"fetch", "ack"}, "hookd's connections to the new primary")
        reconnected = max(min(t for t, k in ups if k == kind) for kind in kinds) - t0
        # The first delivery of a job under A once both connections to the
        # new primary were up (with CLUSTER FAILOVER mid-run, jobs fetched
        # before it may still be delivered in between).
        times = self.recv.stats()["times"]
        first = min(t / 1000 for i, ts in times.items() if i.startswith(self.a + "-")
                    for t in ts if t / 1000 >= t0 + reconnected) - t0
        print("\n%s: replica promoted %.2f s after the %s, hookd connected to it after %.2f s, "
              "first delivery after %.2f s" % (case, promoted, fault, reconnected, first),
              file=sys.stderr)
        ROWS.append(("%s: promoted / hookd up / first delivery" % case, "", 0, 0, 0, 0, 0,
                     "%.2f / %.2f / %.2f" % (promoted, reconnected, first)))
        self.books(case, self.a, more[self.a], first, after_failover=True)
        self.books(case + " (the other prefix)", self.b, more[self.b], after_failover=True)
        self.assertIsNone(self.hookd[self.a].poll(), "A's hookd is still running")
        self.assertIsNone(self.hookd[self.b].poll(), "B's hookd is still running")

    def test_1_two_prefixes_then_kill_the_primary_of_one(self):
        owners = self.first_phase()
        old = owners[self.a]
        replica = self.c.replicas(old)[0]
        t0 = time.time()
        self.c.kill(old)
        self.resumes("kill -9 of {%s}'s primary" % self.a, old, replica, t0, "kill")

    def test_2_manual_failover_while_delivering(self):
        # No 20,000 here: test 1 has them; this one is about the switch.
        old = self.c.owner("{%s}" % self.a)
        replica = self.c.replicas(old)[0]
        ids = self.enqueue(self.a, 100000, 5000)    # ids apart from resumes' ones
        wait_for(lambda: self.running() or self.recv.stats()["count"] >= 1000, 60,
                 "1000 deliveries", interval=0.1)
        t0 = time.time()
        # CLUSTER FAILOVER: the replica catches up with its primary, which
        # stops taking writes meanwhile, then takes over: nothing acked is
        # lost, unlike kill -9.
        self.c.node(replica).execute_command("CLUSTER", "FAILOVER")
        self.resumes("CLUSTER FAILOVER of {%s}'s primary mid-run" % self.a, old, replica, t0,
                     "CLUSTER FAILOVER")
        self.settle([(self.a, ids)])
        self.books("the 5000 moving at the CLUSTER FAILOVER", self.a, ids, after_failover=True)

    def test_3_kill_the_primary_while_delivering(self):
        # The kill -9 of test 1 with jobs moving: what the old primary
        # acknowledged but had not yet sent to its replica (claims, RECORDs)
        # is gone, so jobs come back and are delivered again; none may be
        # lost (they were all pushed, and replicated, before the kill).
        old = self.c.owner("{%s}" % self.a)
        replica = self.c.replicas(old)[0]
        ids = self.enqueue(self.a, 200000, 10000)
        wait_for(lambda: self.running() or self.recv.stats()["count"] >= 3000, 60,
                 "3000 deliveries", interval=0.1)
        t0 = time.time()
        self.c.kill(old)
        self.resumes("kill -9 of {%s}'s primary mid-run" % self.a, old, replica, t0, "kill")
        self.settle([(self.a, ids)])
        self.books("the 10000 moving at the kill -9", self.a, ids, after_failover=True)


def tearDownModule():
    print_table(("case", "prefix", "jobs", "delivered", "dead", "lost", "duplicates", "recover s"),
                '| %s | %s | %d | %d | %d | %d | %d | %s |', ROWS)


if __name__ == "__main__":
    unittest.main(verbosity=2)
