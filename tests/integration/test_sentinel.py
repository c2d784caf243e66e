"""Sentinel failover (issue 19 (b)): a primary (appendonly yes, appendfsync
everysec, as production runs), one replica and 3 redis-sentinels; hookd
reaches the primary only through the sentinels (redis-sentinel://). 20,000
jobs; the primary is kill -9ed when about a third are delivered.

The producer pushes through redis.sentinel.Sentinel.master_for, half the
jobs at once, then the rest paced (2,000 jobs a second in chunks of 100), so
it is still pushing when the primary dies and its last pushes are still
queued: they are in the replication window too. A chunk counts as
produced (confirmed) only when its pipeline answered OK and, in the
redis_wait_replicas = 1 case, WAIT 1 then reported a replica holding it: what
a producer can know. A chunk cut by the failover is unconfirmed: it may or
may not be in Redis (the producer would resend it; here it is left out of
the books, and what became of its ids is printed).

Measured per case: the time from the kill to the sentinels' switch
(SENTINEL get-master-addr-by-name naming the replica), to hookd's first
"redis ... connection to ... up" after the kill, and to the first delivery
recorded on the new primary (its P:stats delivered moving). The issue's
bound: hookd follows the new primary within down-after-milliseconds + 5 s of
the kill. Then the run settles on the new primary and conservation.py
counts: jobs, delivered (unique ids at the receiver), dead, lost (confirmed,
never delivered, in no Redis place) and duplicates. With redis_wait_replicas
= 0, jobs lost to the replication window are possible: counted and printed
with their ids, not failed on. With 1 (and the producer's own WAIT 1), none
may be lost.

After the switch a fresh replica of the new primary is started (the lost
node replaced, as an operator would): without one, WAIT 1 could never be
satisfied again.

On one machine the replica is a fraction of a millisecond behind, so the
window would be all but closed, both cases would lose nothing and the test
would show nothing of what WAIT does. So the window is opened to a known
width: the replica's link is cut (its ACL user turned off and its
connection killed) 300 ms before the kill (HOOKD_SENTINEL_LAG_MS; 0 for a
plain kill), and what the primary acknowledged in those 300 ms dies with
it: with redis_wait_replicas = 0, pushes still queued are lost and outcomes
recorded are undone (those jobs are delivered again, or left in a worker's
in-flight record on the new primary, which hookd must then requeue: the run
only settles if it does); with 1, nothing confirmed is lost.

HOOKD_SENTINEL_CONSUMER=hookd-proxy gives hookd a plain redis:// address, a
proxy in this file that forwards each new connection to the primary the
sentinels name (a managed service's primary endpoint): hookd then learns of
the failover only from the connection's loss and the server's new run_id.
HOOKD_SENTINEL_CONSUMER=python runs the same scenario with a Python consumer
(consumer threads below, through master_for) in hookd's place: it proves the
processes, waits, measurement and books without hookd's Sentinel support.
"""
import base64
import collections
import datetime
import hashlib
import hmac
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.request

import redis
from redis.sentinel import Sentinel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conservation  # noqa: E402
from harness import (HOOKD, NO_SYNC_DELAY, SECRET, Procs, free_port, log_of,  # noqa: E402
                     print_table, sentinels_ready, wait_for)

NAME = "mymaster"
DOWN_AFTER_MS = 1000
JOBS = 20000
CHUNK = 100                 # jobs per producer push
PACE = 0.05                 # s between chunks: 2,000 jobs/s ...
UPFRONT = JOBS // 2         # ... after the first half, pushed at once: a
                            # backlog, so that pushes at the kill are queued
CONSUMER = os.environ.get("HOOKD_SENTINEL_CONSUMER", "hookd")
# The replica's lag at the kill (module docstring); HOOKD_SENTINEL_LAG_MS=0
# kills with the replica as it is, a fraction of a millisecond behind.
LAG_MS = int(os.environ.get("HOOKD_SENTINEL_LAG_MS", "300"))
REPL_USER = "replica"
ROWS = []

WAIT_MS = 500               # WAIT's timeout, under the clients' socket_timeout (2 s)
RETRYABLE = (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError, OSError)


def answers(r):
    try:
        return r.ping()
    except RETRYABLE:
        return False


def iso_time(stamp):
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def id_ranges(ids):
    """"p-000007, p-000010..p-000012" for ids "<tag>-<number>"."""
    out = []
    for i in sorted(ids):
        tag, _, n = i.rpartition("-")
        if out and out[-1][0] == tag and out[-1][2] + 1 == int(n):
            out[-1][2] = int(n)
        else:
            out.append([tag, int(n), int(n), len(n)])
    return ", ".join("%s-%0*d" % (t, w, a) + ("..%s-%0*d" % (t, w, b) if b > a else "")
                     for t, a, b, w in out)


class Producer(threading.Thread):
    """Pushes jobs (id, bytes) to P:queue through the sentinels' primary,
    CHUNK at a time every PACE s; wait_replicas: WAIT that many replicas
    after each chunk, retried until they hold it."""

    def __init__(self, sentinel, prefix, jobs, wait_replicas):
        super().__init__(daemon=True)
        self.sentinel, self.key, self.jobs = sentinel, prefix + ":queue", jobs
        self.wait_replicas = wait_replicas
        self.confirmed, self.unconfirmed = [], []
        self.errors = 0
        self.done = threading.Event()

    def run(self):
        r = self.sentinel.master_for(NAME, socket_timeout=2, socket_connect_timeout=0.5)
        try:
            for k in range(0, len(self.jobs), CHUNK):
                chunk = self.jobs[k:k + CHUNK]
                t = time.monotonic()
                try:
                    pipe = r.pipeline(transaction=False)
                    for _, body in chunk:
                        pipe.lpush(self.key, body)
                    pipe.execute()
                    while self.wait_replicas and r.execute_command(
                            "WAIT", self.wait_replicas, WAIT_MS) < self.wait_replicas:
                        pass
                    self.confirmed.extend(i for i, _ in chunk)
                except RETRYABLE:
                    # Cut mid-chunk: some, all or none of it is in Redis.
                    # The next chunk waits for a primary that answers, so
                    # that only chunks really cut are unconfirmed.
                    self.errors += 1
                    self.unconfirmed.extend(i for i, _ in chunk)
                    wait_for(lambda: answers(r), 30, "a primary again", interval=0.05)
                if k >= UPFRONT:
                    time.sleep(max(0.0, PACE - (time.monotonic() - t)))
        finally:
            self.done.set()


class FollowingProxy:
    """127.0.0.1:port forwarding each connection to the primary the
    sentinels name when it arrives: a stand-in for a managed service's
    primary endpoint, which follows a failover by itself: hookd on a plain
    redis:// address meets a failover, lost writes and all."""

    def __init__(self, primary):
        self.primary = primary              # () -> port, or None
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                down, _ = self.sock.accept()
            except OSError:
                return
            port = self.primary()
            try:
                up = socket.create_connection(("127.0.0.1", port), timeout=1)
                up.settimeout(None)
            except (OSError, TypeError):
                down.close()
                continue
            for a, b in ((down, up), (up, down)):
                threading.Thread(target=self.pump, args=(a, b), daemon=True).start()

    @staticmethod
    def pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.sock.close()


def sign(job_id, body):
    """The headers hookd sends, as receiver.js verifies them."""
    ts = str(int(time.time()))
    key = base64.b64decode(SECRET[len("whsec_"):])
    mac = base64.b64encode(hmac.new(key, ("%s.%s." % (job_id, ts)).encode() + body,
                                    hashlib.sha256).digest()).decode()
    return {"content-type": "application/json", "webhook-id": job_id, "webhook-timestamp": ts,
            "webhook-signature": "v1," + mac,
            "x-dialgen-signature": hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()}


class PyConsumer(threading.Thread):
    """hookd's stand-in for proving the harness: moves jobs from P:queue to
    its own P:claim:<wid> (LMOVE, 50 at a time), POSTs each to its url,
    then acks (LREM, HINCRBY P:stats delivered) and WAITs wait_replicas.
    On every (re)connection it first redelivers what its claim list holds,
    as hookd's reclaim does: at-least-once across the failover."""

    def __init__(self, sentinel, prefix, wid, wait_replicas, stop):
        super().__init__(daemon=True)
        self.sentinel, self.p, self.wid = sentinel, prefix, wid
        self.claim = "%s:claim:%s" % (prefix, wid)
        self.wait_replicas, self.stop = wait_replicas, stop
        self.http = None
        self.errors = collections.Counter()     # by exception type

    def post(self, raw):
        job = json.loads(raw)
        body = json.dumps(job["payload"], separators=(",", ":")).encode()
        url = job["url"].split("/", 3)
        host, port = url[2].split(":")
        for _ in range(3):
            try:
                if self.http is None:
                    self.http = http.client.HTTPConnection(host, int(port), timeout=10)
                self.http.request("POST", "/" + url[3], body, sign(job["id"], body))
                self.http.getresponse().read()
                return
            except (OSError, http.client.HTTPException):
                self.http = None
        raise AssertionError("receiver unreachable")

    def ack(self, r, jobs):
        pipe = r.pipeline(transaction=False)
        for raw in jobs:
            pipe.lrem(self.claim, 1, raw)
        pipe.hincrby(self.p + ":stats", "delivered", len(jobs))
        pipe.execute()
        if self.wait_replicas:
            r.execute_command("WAIT", self.wait_replicas, WAIT_MS)

    def run(self):
        r = self.sentinel.master_for(NAME, socket_timeout=2, socket_connect_timeout=0.5)
        recover = True
        while not self.stop.is_set():
            try:
                if recover:
                    jobs = r.lrange(self.claim, 0, -1)
                    recover = False
                else:
                    pipe = r.pipeline(transaction=False)
                    for _ in range(50):
                        pipe.lmove(self.p + ":queue", self.claim, "RIGHT", "LEFT")
                    jobs = [j for j in pipe.execute() if j is not None]
                if not jobs:
                    time.sleep(0.02)
                    continue
                for raw in jobs:
                    self.post(raw)
                self.ack(r, jobs)
            except RETRYABLE as e:
                self.errors[type(e).__name__] += 1
                recover = True
                time.sleep(0.05)


class Failover(unittest.TestCase):
    prefix = "sn"

    def setUp(self):
        self.p = Procs()
        self.stop = threading.Event()
        self.h = None

    def tearDown(self):
        self.stop.set()
        # hookd first, while the sentinels still answer: its reclaim at
        # exit finds the primary through them.
        if self.h is not None and self.h.poll() is None:
            self.h.send_signal(signal.SIGTERM)
            self.h.wait(timeout=60)
        self.p.close()

    def start_redis(self):
        self.port, self.r = self.p.redis(appendonly=True, appendfsync="everysec",
                                          extra=NO_SYNC_DELAY)
        self.primary = self.p.last_redis[0]
        # The replica logs in as its own user, so that the test can cut the
        # link alone (LAG_MS); everyone else is the default user.
        self.r.execute_command("ACL", "SETUSER", REPL_USER, "on", ">" + REPL_USER, "+@all", "~*")
        self.rport, self.rr = self.p.replica(self.port, extra=(
            "--masteruser", REPL_USER, "--masterauth", REPL_USER))
        ss = [self.p.sentinel(NAME, self.port, down_after_ms=DOWN_AFTER_MS) for _ in range(3)]
        self.sports = [port for port, _ in ss]
        self.sentinels = [s for _, s in ss]
        sentinels_ready(self.sentinels, NAME, replicas=1)
        self.sentinel = Sentinel([("127.0.0.1", port) for port in self.sports],
                                 socket_timeout=0.5, socket_connect_timeout=0.5)

    def master_addr(self):
        try:
            host, port = self.sentinels[0].execute_command(
                "SENTINEL", "GET-MASTER-ADDR-BY-NAME", NAME)
            return int(port)
        except RETRYABLE:
            return None

    def start_consumer(self, wait_replicas):
        if CONSUMER == "python":
            self.consumers = [PyConsumer(self.sentinel, self.prefix, "py-%d" % w, wait_replicas,
                                         self.stop) for w in range(2)]
            for c in self.consumers:
                c.start()
            return None
        url = "redis-sentinel://%s/%s" % (
            ",".join("127.0.0.1:%d" % port for port in self.sports), NAME)
        cfg = {"redis": url, "prefix": self.prefix, "workers": 2, "secret": SECRET,
               "redis_wait_replicas": wait_replicas, "heartbeat_ttl": "2s",
               "max_in_flight": 200, "retry_schedule": "100ms,200ms,400ms,800ms",
               "timeout": "10s", "shutdown_timeout": "5s"}
        if CONSUMER == "hookd":
            # the metrics process follows the sentinels too (checked after)
            self.metrics_port = free_port()
            cfg["metrics_listen"] = "127.0.0.1:%d" % self.metrics_port
        if CONSUMER == "hookd-proxy":
            proxy = FollowingProxy(self.master_addr)
            self.addCleanup(proxy.close)
            cfg["redis"] = "redis://127.0.0.1:%d" % proxy.port
        h = self.h = self.p.hookd(cfg)

        def workers():
            if h.poll() is not None:
                raise AssertionError("hookd exited with %s:\n%s" % (h.returncode, log_of(h)))
            return self.r.hlen(self.prefix + ":workers") == 2
        wait_for(workers, 20, "2 hookd workers")
        return h

    def delivered(self):
        return self.recv.stats()["succeeded"]

    def held(self, r):
        """Jobs still moving on r: queue, claims, in flight, retry."""
        n = r.llen(self.prefix + ":queue") + r.zcard(self.prefix + ":retry")
        for k in r.scan_iter(self.prefix + ":claim:*"):
            n += r.llen(k)
        for k in r.scan_iter(self.prefix + ":inflight:*"):
            n += r.hlen(k)
        return n

    def failover_case(self, wait_replicas):
        self.start_redis()
        self.recv = self.p.receiver()
        h = self.start_consumer(wait_replicas)
        jobs = [("%s-w%d-%06d" % (self.prefix, wait_replicas, i),
                 json.dumps({"id": "%s-w%d-%06d" % (self.prefix, wait_replicas, i),
                             "url": self.recv.url, "payload": {"i": i}}).encode())
                for i in range(JOBS)]
        producer = Producer(self.sentinel, self.prefix, jobs, wait_replicas)
        t0 = time.monotonic()
        producer.start()
        wait_for(lambda: len(self.delivered()) >= JOBS // 3, 60, "a third delivered",
                 interval=0.05)
        if LAG_MS:
            # A replication window of known width: the replica's link is cut
            # and its login refused for the last LAG_MS before the kill, so
            # what the primary acknowledges then never reaches it.
            self.r.execute_command("ACL", "SETUSER", REPL_USER, "off")
            self.r.execute_command("CLIENT", "KILL", "USER", REPL_USER)
            time.sleep(LAG_MS / 1000)
        pushed_at_kill, delivered_at_kill = len(producer.confirmed), len(self.delivered())
        kill_wall, kill = time.time(), time.monotonic()
        self.primary.send_signal(signal.SIGKILL)
        self.primary.wait()
        # What the replica had from the old primary once it has seen the
        # link go (nothing more can come; nothing of its own yet, read-only
        # until promoted): the first delivery recorded on the new primary
        # moves P:stats delivered past it.
        wait_for(lambda: self.rr.info("replication")["master_link_status"] == "down", 10,
                 "the replica to see its primary gone", interval=0.005)
        base = int(self.rr.hget(self.prefix + ":stats", "delivered") or 0)

        # The switch: a sentinel names the replica.
        wait_for(lambda: self.master_addr() == self.rport, 30, "the switch to the replica",
                 interval=0.01)
        switch = time.monotonic() - kill
        wait_for(lambda: int(self.rr.hget(self.prefix + ":stats", "delivered") or 0) > base,
                 30, "a delivery recorded on the new primary", interval=0.01)
        recorded = time.monotonic() - kill
        # The lost node replaced: WAIT N needs a replica again.
        self.p.replica(self.rport)
        up = None
        if h is not None:
            ups = [iso_time(line.split(" ", 1)[0]) for line in log_of(h).splitlines()
                   if re.search(r"redis (fetch|ack) connection to .+ up$", line)]
            after = [t for t in ups if t > kill_wall]
            up = min(after) - kill_wall if after else None

        producer.join(timeout=120)
        self.assertTrue(producer.done.is_set(), "the producer finished")
        try:
            wait_for(lambda: self.held(self.rr) == 0, 60, "the run settled on the new primary",
                     interval=0.2)
        except AssertionError as e:
            # Where the jobs are left (a worker's in-flight record the new
            # primary still holds, for jobs recorded only on the old one?)
            repl = self.rr.info("replication")
            raise AssertionError("%s\n%s\nnew primary: %s, %s replica(s): %s" % (
                e, conservation.check(self.rr, self.prefix, producer.confirmed,
                                      self.delivered(), allow_duplicates=True,
                                      allow_unknown=True).summary(),
                repl.get("role"), repl.get("connected_slaves"), repl.get("slave0")))
        finally:
            if CONSUMER == "python":
                print("\nconsumer errors: %s" % [dict(c.errors) for c in self.consumers],
                      file=sys.stderr)
        took = time.monotonic() - t0
        self.stop.set()
        if h is not None:
            self.assertIsNone(h.poll(), "hookd stayed up")
        if CONSUMER == "hookd":
            self.others_follow()

        succeeded = self.delivered()
        confirmed = set(producer.confirmed)
        rep = conservation.check(self.rr, self.prefix, producer.confirmed,
                                 {i: n for i, n in succeeded.items() if i in confirmed},
                                 allow_duplicates=True, allow_unknown=True)
        dupes = sum(n - 1 for i, n in succeeded.items() if i in confirmed)
        dead = rep.places["dead"]
        case = "redis_wait_replicas = %d (%s%s)" % (
            wait_replicas, CONSUMER, ", replica %d ms behind" % LAG_MS if LAG_MS else "")
        row = (case, len(confirmed), len(confirmed & set(succeeded)), dead, len(rep.lost), dupes,
               switch, recorded)
        ROWS.append(row)
        unconf = producer.unconfirmed
        print("\n%s: %.1f s; kill after %d confirmed pushes, %d delivered; switch %.2f s, "
              "connection up %s, first delivery recorded on the new primary %.2f s after the "
              "kill; unconfirmed pushes %d (%d delivered, %d in Redis); %s" % (
                  case, took, pushed_at_kill, delivered_at_kill, switch,
                  "%.2f s" % up if up is not None else "-", recorded, len(unconf),
                  len(set(unconf) & set(succeeded)),
                  sum(1 for w, _ in rep.unknown if w != "delivered"), rep.summary()),
              file=sys.stderr)
        if rep.lost:
            print("lost ids: %s" % id_ranges(rep.lost), file=sys.stderr)
        self.assertEqual((rep.doubled, rep.undecodable, rep.errors), ({}, [], []), rep.summary())
        self.assertEqual([x for x in self.recv.stats()["invalid"]], [], "invalid signatures")
        bound = DOWN_AFTER_MS / 1000 + 5
        self.assertLessEqual(recorded, bound, "followed the new primary within "
                             "down-after-milliseconds + 5 s of the kill")
        if up is not None:
            self.assertLessEqual(up, bound, "connection up within down-after + 5 s")
        if wait_replicas >= 1:
            self.assertEqual(rep.lost, [], "confirmed jobs lost with WAIT 1")
        return rep

    def others_follow(self):
        """The commands and the metrics process find the new primary too:
        stats reads its counters, /readyz says ready."""
        conf = os.path.join(self.p.dir, "hookd.conf")
        res = subprocess.run([HOOKD, "-c", conf, "stats", "--json"], capture_output=True,
                             text=True, timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(json.loads(res.stdout)["queue"], 0)
        readyz = "http://127.0.0.1:%d/readyz" % self.metrics_port

        def ready():
            try:
                return urllib.request.urlopen(readyz, timeout=5).status == 200
            except OSError:
                return False
        wait_for(ready, 15, "/readyz on the new primary")

    def test_wait_replicas_0(self):
        self.failover_case(0)

    def test_wait_replicas_1(self):
        self.failover_case(1)


def tearDownModule():
    print_table(("case", "jobs", "delivered", "dead", "lost", "duplicates", "switch", "resumed"),
                '| %s | %d | %d | %d | %d | %d | %.2f s | %.2f s |', ROWS)


if __name__ == "__main__":
    unittest.main(verbosity=2)
