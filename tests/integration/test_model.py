"""A seeded, randomised model of hookd's workers driving the real Lua scripts
(build/lua/, byte for byte what hookd sends with EVAL) against a real
redis-server, in random interleavings, with replies lost and workers dying.

The model: 4 worker slots, each running one simulated worker at a time (id
"host<slot>:<pid>:<ms>", its own seq counter, its own view of the jobs it
holds, an outbox of outcomes sent without a confirmed reply, ACCEPT pairs
likewise, and the seq ranges of FETCHes whose reply was lost). A worker
dies (its view is discarded) and is reclaimed by its supervisor (RECLAIM
crashed, by wid) or, its host lost, by the reaper (its heartbeat key goes,
RECLAIM with wid ''); it may stop cleanly (RECLAIM clean), or be cut off
long enough to be reaped while it lives and then come back with a stale
view. Each step is one of (weight):

  produce 14   LPUSH 1..5 jobs (none while the queue holds over 60): JSON,
               some msgpack, some with a secret, some with a non-ASCII id;
               ~4% a second copy of a recent job (same id and url: the
               dedupe case); ~3% "poison" (never recorded: its worker dies)
  fetch   14   FETCH max 0..12, sometimes pulling parked origins, by a worker
               that believes itself registered: refused ("not registered",
               Redis unchanged) when its heartbeat key is gone (cut off, or
               reaped meanwhile), and then it registers again with a
               HEARTBEAT, as worker.c does, before it fetches again
  wait     4   the idle worker's wait (queue.c queue_wait): BLMOVE queue queue
               RIGHT RIGHT, which moves nothing; on an empty queue it is left
               blocked on a connection of the worker's slot, and whatever
               next pushes to the queue (LPUSH, RELEASE, RECLAIM, PROMOTE,
               DLQ_MOVE) wakes it, in the same instant, between two steps
  legacy   1   an earlier version's worker, dead and not yet reclaimed, is
               found with jobs its BLMOVE claimed into P:claim:<wid> (LMOVE
               queue -> claim RIGHT LEFT): RECLAIM must requeue them
  accept   9   ACCEPT held jobs not yet checked, plus unanswered pairs
  record  16   RECORD a random subset of held jobs (A 50, R 20, D 6, E 3,
               K 12; I for unchecked jobs), plus the unanswered outbox;
               R carries a real retry envelope, D/I/E a dead entry (JSON,
               dead_id wid:seq, job / raw / raw_base64 forms) and the job's
               secret aside
  promote  4   PROMOTE limit 1..20
  clock    3   the fake clock: some P:retry members become due (their
               score set to a small number); retries are recorded with
               ten-day delays, so Redis's real clock never makes one due
               and the run stays deterministic
  release  4   RELEASE a lost FETCH's seq range (again if that reply is lost)
  dlq      3   DLQ_MOVE replay (job rebuilt as cli.c does: the entry's job,
               its id and kept-aside secrets restored, accepted mark; or the
               kept-aside bytes; or raw bytes) or purge of 1..3 dead entries,
               plus unanswered ones
  purge_all 1  DLQ_PURGE_ALL, when P:dead is full
  heartbeat 3  HEARTBEAT of a live worker
  die      2   a live worker dies (one holding a poison job, mostly): its
               supervisor reclaims it later, or (1 in 3) its host is lost
  reclaim  5   the supervisor's RECLAIM crashed of a dead worker
  reap     2   the reaper: hb keys of lost hosts expire, RECLAIM ''
  stop     1   a clean stop: outbox flushed, lost ranges released, RECLAIM
               clean of its own wid (again while the reply is lost)
  cut      1   a worker is cut off (its hb expires; it does nothing) ...
  heal     2   ... and comes back, reaped meanwhile or not: heartbeat first
               half of the time, else it may fetch before its next heartbeat
               (refused: its heartbeat key is gone)
  health   5   HEALTH of a live worker: random answers and failures for some
               origins (breakers open after 3 attempts at 50 %), and for each
               probe FETCH granted it, its outcome ('1' or '2'); transitions
               counted from the records before and after, a probe's outcome
               must close or reopen a half_open breaker, and P:endpoints must
               agree with the records. FETCH's oracle reads each pulled
               origin's breaker: open or half_open gives nothing before its
               due time and one job, the probe, after (the reply's probes)
  endpoint_set 1  an operator enables or disables an origin (ENDPOINT_SET):
               the reply's states, P:endpoints and the counters checked; a
               lost reply resent changes nothing
  throttle 1   THROTTLE for some origins (it moves no job): slots never
               closer than the interval in force nor over 200 ms ahead, across
               calls and lost replies; then ENDPOINT_COUNTS (read only) must
               agree with P:endpoints, P:throttled and P:parked
  breaker_clock 2  some open or half_open origins come due (their record's
               due written 0), now and then one has failed for a day
               (failing_since 1: disabled at its next failure)
  spawn  (when a slot is empty) a new worker registers (HEARTBEAT)
Every script reply is lost with probability 0.08: the script ran, the
worker does not learn it and acts as hookd does (resends RECORD / ACCEPT /
RELEASE / DLQ_MOVE / RECLAIM, releases a lost FETCH's range).

The oracle predicts each script's effect from reads just before it (whether
FETCH is refused, what it returns and in what order, which outcomes RECORD applies, ACCEPT's
verdicts, what RELEASE / PROMOTE / RECLAIM push and with which marks, what
DLQ_MOVE moves) and compares with the reply and with Redis afterwards; it
learns which jobs were delivered, deduplicated or purged from those
predictions. After every step: conservation.check() (every produced copy in
exactly one place), P:stats equal to the oracle's tally, P:workers equal to
the registered workers, nothing left under a reclaimed worker's keys, every
non-empty parked list in P:parked, P:dead's length and nothing kept aside
without its entry, every live worker's view equal to its in-flight hash, and
a job whose crash count (counted by the oracle, independently of the marks)
reaches poison_after ends in P:dead as worker_crashed; no job under a live
worker that is not in P:workers, and no P:claim:<wid> of a live worker
(this version never writes one). Every 256 steps and in the drain, no job
under a dead worker that no-one will reclaim (Model.orphans: host lost, so
no supervisor, and not in P:workers, so no reaper): that fails the run. At
the end of each seed the model drains: every breaker comes due and each
probe succeeds (so no origin stays stuck open), and everything is promoted,
unparked, delivered or dead, and nothing may be left anywhere.

Settled ids (every copy delivered, deduplicated, purged or trimmed, none
in Redis, none recent) are retired every 256 steps, their dedupe keys
deleted, so a step costs the same at step 200,000 as at step 1; a retired
id found again would be reported as unknown.

HOOKD_MODEL_STEPS (default 10000) steps in all, shared by the seeds;
HOOKD_MODEL_SEED a seed or comma-separated seeds (default 1,2,3: 3,334
steps each, about 20 s in all). A failure
prints the seed, the step and the last steps of the trace, and how to run
that seed alone (the trace depends on the seed only, not on the step count).
"""
import base64
import collections
import hashlib
import json
import os
import random
import re
import sys
import time
import unittest

import msgpack
import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conservation  # noqa: E402
from conservation import unmark  # noqa: E402
from harness import Procs, lua_script  # noqa: E402

P = "md"
SLOTS = 4
POISON_AFTER = 3
LOST = 0.08                     # probability that a script's reply is lost
WINDOW_MS = 86400000            # dedupe_window: no key expires during a run
HB_TTL_MS = 3600000             # heartbeats expire only when the model says so
FAR_MS = 10 * 86400000          # retry delay: never due by Redis's own clock
PROBE_MS = 3600000              # FETCH's probe_ms: a probe is overdue only when the model says
# HEALTH's settings (queue_health's ARGV 2..10): breakers open after 3
# attempts at 50 %, cooldowns of an hour (due only when the model moves a
# record's due into the past), disable_after a day (reached only when the
# model moves failing_since back), no ops webhook (its jobs are no
# producer's).
BREAKER = [1, 300000, 3, 50, 3600000, 4 * 3600000, 86400000, 10000, ""]
BREAKER_MOVES = {("closed", "open"): "breaker_opened", ("open", "closed"): "breaker_closed",
                 ("half_open", "closed"): "breaker_closed"}
EPOCH_MS = 1700000000000
ORIGINS = ["http://a.test:80", "http://b.test:80", "https://c.test:443"]
ACCEPTED = b"\xc1accepted:"
CRASHED = b"\xc1crashed:"
TRACE = int(os.environ.get("HOOKD_MODEL_TRACE", "40"))   # steps shown on a failure
QUEUE_SOFT_MAX = 60             # no producing while the queue is longer
RECENT = 200                    # copies (duplicates) are made of the last RECENT ids
RETIRE_EVERY = 256              # steps between retirements of settled ids
WAIT_TIMEOUT_S = 1.0            # worker.c's BLMOVE timeout


def _queue_h_string(name):
    """A '#define NAME "..."' of include/hookd/queue.h, the text C compares."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "include",
                           "hookd", "queue.h")) as f:
        return re.search(r'^#define %s "([^"\\]*)"$' % name, f.read(), re.M).group(1)


NOT_REGISTERED = _queue_h_string("QUEUE_NOT_REGISTERED")    # FETCH's refusal, exactly
WEIGHTS = [("produce", 14), ("fetch", 14), ("wait", 4), ("accept", 9), ("record", 16),
           ("promote", 4), ("clock", 3), ("release", 4), ("dlq", 3), ("purge_all", 1),
           ("heartbeat", 3), ("legacy", 1),
           ("die", 2), ("reclaim", 5), ("reap", 2), ("stop", 1), ("cut", 1), ("heal", 2),
           ("health", 5), ("breaker_clock", 2), ("endpoint_set", 1), ("throttle", 1)]
KIND_WEIGHTS = [("A", 50), ("R", 20), ("D", 6), ("E", 3), ("K", 12)]
SCRIPTS = ("fetch", "record", "accept", "promote", "release", "heartbeat", "reclaim",
           "dlq_move", "dlq_purge_all", "health", "endpoint_set", "throttle",
           "endpoint_counts")


def mark(body, accepted, crashes):
    """marks.lua's mark()."""
    out = body
    if crashes > 0:
        out = CRASHED + b"%d:" % crashes + out
    return ACCEPTED + out if accepted else out


def iso(tick):
    t = EPOCH_MS // 1000 + tick
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def seen_key(id, url):
    """dedupe.h: 32 hex digits of SHA-256(id NUL url)."""
    return hashlib.sha256(id.encode() + b"\0" + url.encode()).hexdigest()[:32]


def decode(body):
    if body[:1] == b"{":
        return json.loads(body)
    return msgpack.unpackb(body, raw=False)


class Job:
    """What a worker (or the oracle) reads from job bytes as stored."""

    def __init__(self, data):
        self.data = data
        self.body, self.accepted, self.crashes = unmark(data)
        d = decode(self.body)
        self.envelope = next(iter(d)) == "_hookd"
        if self.envelope:
            self.raw, self.attempts, self.first_ms = d["job"], d["attempts"], d["first_ms"]
            self.fields = decode(self.raw)
            self.id = d.get("id", self.fields.get("id"))
        else:
            self.raw, self.attempts, self.first_ms = self.body, 0, None
            self.fields = d
            self.id = d.get("id")
        self.url = self.fields["url"]
        self.origin = self.url[:self.url.index("/", 8)]

    @property
    def needs_accept(self):
        """deliver_start: a producer's id, first attempt, not put back by hookd."""
        return self.id is not None and self.attempts == 0 and not self.accepted


class Held:
    __slots__ = ("data", "state", "stale")

    def __init__(self, data, state):
        self.data = data
        self.state = state          # check (needs ACCEPT), checking (sent), ok
        self.stale = False          # reclaimed behind the worker's back


class Worker:
    def __init__(self, slot, pid, tick):
        self.slot = slot
        self.wid = "host%d:%d:%d" % (slot, pid, EPOCH_MS + tick)
        self.seq = 0
        self.held = {}              # seq -> Held
        self.outbox = []            # RECORD groups sent, reply lost
        self.checking = []          # ACCEPT (seq, key) pairs sent, reply lost
        self.releases = []          # [lo, hi] of FETCHes whose reply was lost
        self.waited = False         # a wait (BLMOVE) since the last FETCH
        self.origins = []           # parked origins the last FETCH reported
        self.probes = set()         # origins FETCH granted it a probe for, not reported
        self.state = "live"         # live | cut | dead | gone
        self.host_lost = False      # dead with its supervisor: only the reaper
        self.registered = False     # its first HEARTBEAT reply seen
        self.sup_pending = False    # dead: its supervisor has yet to reclaim it
        self.refused_forgotten = False  # a FETCH refused while the reaper had forgotten it

    def __repr__(self):
        return self.wid


class Failure(AssertionError):
    pass


def wait_args(k, wid):
    """queue.c queue_wait(): the wait's destination and directions (BLMOVE
    P:queue <destination> <from> <to> <timeout>). It moves nothing."""
    return k("queue"), "RIGHT", "RIGHT"


class Model:
    def __init__(self, r, seed, scripts, dead_max=None, wait=wait_args):
        self.r = r
        self.wait = wait            # the wait's command (a mutant may change it)
        self.wait_conns = [None] * SLOTS    # per slot: a connection for blocked waits
        self.blocked = [None] * SLOTS       # per slot: the worker whose wait is blocked
        self.seed = seed
        self.rng = random.Random(seed)
        self.rate_slots = {}            # origin -> the last THROTTLE slot granted (us)
        self.scripts = scripts
        self.dead_max = dead_max or self.rng.randint(8, 40)
        self.checker = conservation.Checker()
        self.tick = 0
        self.step_no = 0
        self.trace = collections.deque(maxlen=TRACE)
        self.njobs = 0
        self.pids = 1000
        self.workers = []           # every worker ever, in creation order
        self.by_wid = {}
        self.lost_hosts = []        # dead workers whose host is lost, not yet reclaimed
        self.slots = [None] * SLOTS
        self.produced = collections.Counter()
        self.arrived = 0            # left arrivals P:backlog implied at the last check
        self.backlog_skewed = False     # a legacy take since the queue last ran empty
        self.meta = {}              # id -> {"poison": bool, "url": url}
        self.bytes_of = {}          # id -> the producer's bytes, for the last RECENT ids
        self.ids = []               # the last RECENT ids produced, oldest first
        self.retired = {}           # id -> copies, for ids settled and no longer checked
        self.places = {}            # the last check's count per place
        self.delivered = collections.Counter()
        self.deduped = collections.Counter()
        self.purged = collections.Counter()
        self.stats = collections.Counter()
        self.dead_len = 0
        self.trimmed = 0
        self.registered = []        # wids expected in P:workers, in order
        self.buried = []            # wids reclaimed for good: their keys must stay gone
        self.buried_set = set()
        self.crashes = collections.Counter()    # id -> crashed reclaims (ids with one copy)
        self.dlq_pending = []       # (counter, [triples]) sent, reply lost
        self.counts = collections.Counter()     # steps run per kind
        self.lost_replies = 0
        self.refused = 0            # FETCHes refused as not registered
        self.forgotten = 0          # ... of them by a worker the reaper had forgotten
        self.stranding = 0          # ... which then died with its host (the old finding)
        self.woken = 0              # blocked waits woken by a push
        self.probes = 0             # probes FETCH granted

    # ---- plumbing -------------------------------------------------------

    def k(self, *parts):
        return ":".join((P,) + parts)

    def eval(self, name, keys, args):
        return self.r.eval(self.scripts[name], len(keys), *keys, *args)

    def lose(self):
        if self.rng.random() < LOST:
            self.lost_replies += 1
            return True
        return False

    def note(self, text):
        self.trace.append("step %d: %s" % (self.step_no, text))

    def expect(self, cond, what, *args):
        if not cond:
            raise Failure(what % args if args else what)

    def live(self, pred=None):
        return [w for w in self.slots if w is not None and w.state == "live" and
                (pred is None or pred(w))]

    def inflight(self, w):
        return self.k("inflight", w.wid)

    def time_ms(self):
        s, us = self.r.time()
        return s * 1000 + us // 1000

    def queue_tail(self, n):
        return self.r.lrange(self.k("queue"), -n, -1) if n else []

    def account_trim(self, added):
        self.dead_len += added
        if added and self.dead_len > self.dead_max:
            t = min(self.dead_len - self.dead_max, 2000)
            self.dead_len -= t
            self.trimmed += t
            self.stats["dead_trimmed"] += t

    # ---- steps ----------------------------------------------------------

    def step_produce(self):
        if self.places.get("queue", 0) > QUEUE_SOFT_MAX:
            return self.note("produce: the queue is long enough")
        n = self.rng.randint(1, 5)
        jobs, ids = [], []
        for _ in range(n):
            if self.ids and self.rng.random() < 0.04:
                id = self.rng.choice(self.ids)
                data = self.bytes_of[id]
                ids.append(id + "(copy)")
            else:
                self.njobs += 1
                id = "j%d" % self.njobs
                if self.rng.random() < 0.05:
                    id += "-\u00e9"     # not printable ASCII: RECLAIM's entry shows no id
                url = self.rng.choice(ORIGINS) + "/hook"
                poison = self.rng.random() < 0.03
                job = {"id": id, "url": url}
                if self.rng.random() < 0.2:
                    job["secret"] = "whsec_%d" % self.njobs
                if self.rng.random() < 0.15:
                    job["body"] = b"\x00\xff" + str(self.njobs).encode()
                    data = msgpack.packb(job, use_bin_type=True)
                else:
                    job["payload"] = {"n": self.njobs, "poison": poison}
                    data = json.dumps(job).encode()
                self.meta[id] = {"poison": poison, "url": url}
                self.bytes_of[id] = data
                self.ids.append(id)
                if len(self.ids) > RECENT:
                    del self.bytes_of[self.ids.pop(0)]
                ids.append(id + ("(poison)" if poison else ""))
            self.produced[id] += 1
            jobs.append(data)
        self.r.lpush(self.k("queue"), *jobs)
        self.note("produce %s" % " ".join(ids))

    def step_fetch(self, w=None, n=None, pull=None):
        w = w or self.rng.choice(self.live(lambda w: w.registered) or [None])
        if w is None:
            return self.note("fetch: no registered live worker")
        n = self.rng.randint(0, 12) if n is None else n
        pulls = []
        if w.origins and (pull or (pull is None and self.rng.random() < 0.3)):
            for o in sorted(w.origins):
                if pull or self.rng.random() < 0.6:
                    pulls.append((o, self.rng.randint(1, 6) if not pull else 10000))
        base = w.seq
        w.seq += n
        w.waited = False
        args = [base, n, self.k("endpoint"), PROBE_MS]
        for o, c in pulls:
            args += [o, c]
        keys = [self.k("hb", w.wid), self.k("queue"), self.inflight(w), self.k("parked"),
                self.k("stats"), self.k("backlog"), self.k("endpoints"),
                self.k("endpoints", "gen")]
        # Predict: refused if the worker's heartbeat key is gone; else parked
        # first, then the queue, each RPOP.
        # An origin whose breaker is open or half_open gives one job (the
        # probe) once due, none before.
        pipe = self.r.pipeline(transaction=True)
        pipe.exists(self.k("hb", w.wid))
        for o, _ in pulls:
            pipe.lrange(self.k("parked", o), 0, -1)
        for o, _ in pulls:
            pipe.hmget(self.k("endpoint", o), "state", "due")
        pipe.lrange(self.k("queue"), -n, -1) if n else pipe.echo("")
        pipe.time()
        res = pipe.execute()
        if not res[0]:
            return self.fetch_refused(w, base, n, pulls, keys, args)
        now = res[-1][0] * 1000 + res[-1][1] // 1000
        res = res[1:-1]
        lists = {}
        want, unparked, probes = [], 0, []
        for (o, c), lst, (state, due) in zip(pulls, res, res[len(pulls):]):
            lst = lists.setdefault(o, list(lst))
            if state in (b"open", b"half_open"):
                if now < int(due) - 1000:   # Redis's clock may pass due meanwhile
                    c = 0
                elif now < int(due) + 1000:
                    raise Failure("the model sets due well away from now")
                else:
                    c = 1
            take = min(c, n - len(want), len(lst))
            if state in (b"open", b"half_open") and take:
                probes.append(o)
            for _ in range(take):
                want.append(lst.pop())
            unparked += take
        queue = list(res[-1]) if n else []
        while queue and len(want) < n:
            want.append(queue.pop())
        try:
            reply = self.eval("fetch", keys, args)
        except redis.ResponseError as e:
            raise Failure("FETCH by %s refused (%s), its heartbeat key there" % (w, e)) from e
        self.expect(reply[0] == want, "FETCH returned %r, expected %r", reply[0], want)
        self.expect(reply[2] == [], "FETCH refused %r", reply[2])
        self.expect([o.decode() for o in reply[4]] == probes, "FETCH granted probes %r, "
                    "expected %r", reply[4], probes)
        for o in probes:
            state = self.r.hget(self.k("endpoint", o), "state")
            self.expect(state == b"half_open", "%s probed but its breaker %r", o, state)
        self.stats["unparked"] += unparked
        got = self.r.hmget(self.inflight(w), [base + i + 1 for i in range(len(want))]) \
            if want else []
        self.expect(got == want, "FETCH filed %r under seqs %d.., expected %r", got, base + 1,
                    want)
        for o, _ in pulls:
            if not lists[o]:
                self.expect(self.r.zscore(self.k("parked"), o) is None,
                            "FETCH emptied parked:%s but left it in P:parked", o)
        lost = self.lose()
        if lost:
            if n:
                w.releases.append([base + 1, base + n])
        else:
            for i, data in enumerate(reply[0]):
                job = Job(data)
                w.held[base + i + 1] = Held(data, "check" if job.needs_accept else "ok")
            w.origins = [o.decode() for o in reply[1]]
            w.probes.update(probes)
        self.probes += len(probes)
        self.note("%s fetch base %d max %d pulls %r -> %d jobs (%d unparked, probes %r)%s" % (
            w, base, n, pulls, len(want), unparked, probes, " REPLY LOST" if lost else ""))

    def dump(self, keys):
        """Every key's serialized value (DUMP: type and contents, zset scores
        too), None for a missing key."""
        pipe = self.r.pipeline(transaction=False)
        for key in keys:
            pipe.dump(key)
        return pipe.execute()

    def fetch_refused(self, w, base, n, pulls, keys, args):
        """FETCH by a worker whose heartbeat key is gone (cut off past
        heartbeat_ttl, reaped meanwhile or not): refused with exactly
        QUEUE_NOT_REGISTERED, Redis unchanged. The worker registers again
        (worker.c on_fetch_reply: registered = 0, HEARTBEAT) and fetches
        only once that HEARTBEAT's reply is in; a lost reply is a lost fetch
        to it (its range released later, which moves nothing)."""
        watched = keys + [self.k("claim", w.wid), self.k("workers")] + \
            [self.k("parked", o) for o, _ in pulls]
        before = self.dump(watched)
        try:
            reply = self.eval("fetch", keys, args)
        except redis.ResponseError as e:
            reply = e
        self.expect(isinstance(reply, redis.ResponseError) and str(reply) == NOT_REGISTERED,
                    "FETCH by %s, whose heartbeat key is gone, answered %r; expected the "
                    "error %r", w, reply, NOT_REGISTERED)
        after = self.dump(watched)
        changed = [key for key, b, a in zip(watched, before, after) if b != a]
        self.expect(not changed, "FETCH refused as not registered changed %r", changed)
        self.refused += 1
        if w.wid not in self.registered:
            self.forgotten += 1
            w.refused_forgotten = True
        if self.lose():
            if n:
                w.releases.append([base + 1, base + n])
            return self.note("%s fetch base %d max %d pulls %r -> not registered REPLY LOST" % (
                w, base, n, pulls))
        w.registered = False
        lost = self.heartbeat(w)
        self.note("%s fetch base %d max %d pulls %r -> not registered; registers again%s" % (
            w, base, n, pulls, " (HEARTBEAT REPLY LOST)" if lost else ""))

    def step_wait(self):
        """An idle worker waits for a job (worker.c maybe_fetch after a FETCH
        found the queue empty; queue.c queue_wait): BLMOVE from the queue to
        itself, which moves nothing. With jobs queued it answers at once, the
        oldest, the queue as it was; on an empty queue it blocks, on the
        worker slot's own connection, until a push wakes it (Model.unblock),
        which happens inside whichever later step pushes to the queue, and
        must change nothing there either (every check after that step)."""
        w = self.rng.choice(self.live(lambda w: w.registered and not w.waited) or [None])
        if w is None:
            return self.note("wait: no idle worker")
        w.waited = True
        dest, src_end, dest_end = self.wait(self.k, w.wid)
        queue = self.r.lrange(self.k("queue"), 0, -1)
        cmd = ("BLMOVE", self.k("queue"), dest, src_end, dest_end, WAIT_TIMEOUT_S)
        if queue:
            got = self.r.execute_command(*cmd)
            after = self.r.lrange(self.k("queue"), 0, -1)
            self.expect(got == queue[-1] and after == queue, "the wait (%s) answered %r and "
                        "left the queue %r; expected the oldest job %r, the queue as it was "
                        "(%r)", " ".join(map(str, cmd)), got, after, queue[-1], queue)
            return self.note("%s waits: %d queued, answered at once" % (w, len(queue)))
        self.unblock(w.slot, close=True)
        conn = self.wait_conns[w.slot]
        if conn is None:
            kw = self.r.connection_pool.connection_kwargs
            conn = self.wait_conns[w.slot] = redis.Connection(host=kw["host"], port=kw["port"])
        conn.send_command(*cmd)
        self.blocked[w.slot] = w
        self.note("%s waits, blocked: the queue is empty" % w)

    def unblock(self, slot, close=False):
        """The slot's blocked wait: its reply read if it came (a push woke
        it, or WAIT_TIMEOUT_S passed); else, with close (its worker dies or
        stops, or waits again), its connection dropped, which ends it."""
        w = self.blocked[slot]
        if w is None:
            return
        conn = self.wait_conns[slot]
        if conn.can_read(timeout=0):
            got = conn.read_response()
            self.blocked[slot] = None
            self.woken += got is not None
            self.note("%s's wait answered: %s" % (w, "woken by a push" if got is not None
                                                  else "timed out"))
        elif close:
            conn.disconnect()
            self.blocked[slot] = None

    def close(self):
        for slot, conn in enumerate(self.wait_conns):
            if conn is not None:
                conn.disconnect()
            self.blocked[slot] = None

    def step_legacy(self):
        """An earlier version's worker waited with BLMOVE queue -> P:claim:<wid>
        and its next FETCH took the claimed job; one that died in between
        left it there, and this version's RECLAIM (its supervisor's, or the
        reaper's) must requeue it. Planted on a dead worker whose reclaim is
        still to come (not on one the reaper has forgotten: that was the old
        version's own way to strand a job)."""
        ws = [w for w in self.workers if w.state == "dead" and w.wid not in self.buried_set and
              (w.sup_pending or w.wid in self.registered)]
        w = self.rng.choice(ws or [None])
        if w is None:
            return self.note("legacy: no dead worker still to be reclaimed")
        tail = self.queue_tail(self.rng.randint(1, 2))
        got = [self.r.lmove(self.k("queue"), self.k("claim", w.wid), "RIGHT", "LEFT")
               for _ in tail]
        self.expect(got == tail[::-1], "LMOVE queue -> claim moved %r, expected %r", got,
                    tail[::-1])
        self.note("%s, dead, was an earlier version's worker: %d jobs in P:claim:%s" % (
            w, len(got), w.wid))
        self.backlog_skewed = True      # jobs taken without FETCH's bookkeeping

    def step_accept(self, w=None, everything=False):
        w = w or self.rng.choice(self.live(lambda w: w.checking or any(
            h.state == "check" for h in w.held.values())) or [None])
        if w is None:
            return self.note("accept: nothing to check")
        pairs = list(w.checking)
        for seq in sorted(w.held):
            h = w.held[seq]
            if h.state == "check" and (everything or self.rng.random() < 0.7):
                j = Job(h.data)
                pairs.append((seq, seen_key(j.id, j.url)))
                h.state = "checking"
        if not pairs:
            return self.note("%s accept: nothing chosen" % w)
        # Predict from the in-flight hash and the seen keys.
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(self.inflight(w))
        for _, key in pairs:
            pipe.get(self.k("seen", key))
        res = pipe.execute()
        fl = {int(s): v for s, v in res[0].items()}
        seen = {}
        for (_, key), v in zip(pairs, res[1:]):
            seen.setdefault(key, v.decode() if v is not None else None)
        want, dups = [], []
        for seq, key in pairs:
            me = "%s:%d" % (w.wid, seq)
            if seq not in fl:
                want.append(2)
            elif seen[key] is None or seen[key] == me:
                seen[key] = me
                want.append(0)
            else:
                want.append(1)
                dups.append(Job(fl.pop(seq)).id)
        args = [self.k("seen"), w.wid, WINDOW_MS]
        for seq, key in pairs:
            args += [seq, key]
        reply = self.eval("accept", [self.inflight(w), self.k("stats")], args)
        self.expect(reply == want, "ACCEPT answered %r, expected %r for %r", reply, want, pairs)
        for id in dups:
            self.deduped[id] += 1
        self.stats["duplicate"] += len(dups)
        lost = self.lose()
        if lost:
            w.checking = pairs
        else:
            w.checking = []
            for (seq, _), v in zip(pairs, reply):
                if seq not in w.held:
                    continue
                if v == 0:
                    w.held[seq].state = "ok"
                else:
                    del w.held[seq]
        self.note("%s accept %s -> %s%s" % (w, [s for s, _ in pairs], reply,
                                            " REPLY LOST" if lost else ""))

    def outcome(self, w, seq, h, kind):
        """A RECORD group for the held job, built as deliver.c does."""
        j = Job(h.data)
        did = "%s:%d" % (w.wid, seq)
        if kind == "A":
            return ["A", seq, "", ""]
        if kind == "K":
            return ["K", seq, j.origin, ""]
        if kind == "R":
            env = {"_hookd": 1}
            if j.id is not None:
                env["id"] = j.id
            env.update(attempts=j.attempts + 1, first_ms=j.first_ms or EPOCH_MS + self.tick,
                       last_status=503, last_error="HTTP 503", token=did, job=j.raw)
            return ["R", seq, msgpack.packb(env, use_bin_type=True),
                    FAR_MS + self.rng.randint(0, 1000)]
        reason = {"D": "http_status", "I": "invalid_job", "E": "sign_failed"}[kind]
        e = {"dead_id": did, "id": j.id, "reason": reason, "error": "model " + reason,
             "gave_up": {"D": "max_attempts", "I": "invalid", "E": "error"}[kind],
             "status": 500 if kind == "D" else 0,
             "attempts": 0 if kind == "I" else j.attempts + 1,
             "first_attempt_at": iso(self.tick), "last_attempt_at": iso(self.tick),
             "dead_at": iso(self.tick), "worker": w.wid}
        redacted = {}
        for key, v in j.fields.items():
            if key in ("secret", "secret_previous"):
                continue
            if isinstance(v, bytes):
                try:
                    redacted[key] = v.decode()
                except UnicodeDecodeError:
                    redacted[key + "_base64"] = base64.b64encode(v).decode()
            else:
                redacted[key] = v
        form = self.rng.random() if kind == "I" else 0
        if form < 0.6:
            e["job"] = redacted
        elif j.raw[:1] == b"{":             # bytes kept as text (no job at all)
            e["job"], e["raw"] = None, j.raw.decode()
        else:
            e["job"], e["raw_base64"] = None, base64.b64encode(j.raw).decode()
        if kind == "I" and e.get("job") is None and self.rng.random() < 0.5:
            e["id"] = None                  # the id could not be read
        aside = b""
        if "secret" in j.fields:
            aside = b"\xc1" + msgpack.packb({"secret": j.fields["secret"]}, use_bin_type=True)
        return [kind, seq, json.dumps(e, separators=(",", ":")).encode(), aside]

    def pick_kind(self, h):
        if h.state == "check":
            return "I" if self.rng.random() < 0.15 else None
        if h.state != "ok":
            return None
        poison = self.meta.get(Job(h.data).id, {}).get("poison")
        kinds, weights = zip(*KIND_WEIGHTS)
        kind = self.rng.choices(kinds, weights)[0]
        if poison and kind != "K":
            return None             # a poison job takes its worker down instead
        return kind

    def step_record(self, w=None, everything=False):
        w = w or self.rng.choice(self.live(lambda w: w.outbox or w.held) or [None])
        if w is None:
            return self.note("record: nothing held")
        groups = list(w.outbox)
        for seq in sorted(w.held):
            if not everything and self.rng.random() < 0.5:
                continue
            h = w.held[seq]
            if everything:              # the drain: all delivered, bar poison
                poison = self.meta.get(Job(h.data).id, {}).get("poison")
                kind = "A" if h.state == "ok" and not poison else None
            else:
                kind = self.pick_kind(h)
            if kind is None:
                continue
            groups.append(self.outcome(w, seq, w.held.pop(seq), kind))
        if not groups:
            return self.note("%s record: nothing chosen" % w)
        self.record(w, groups)

    def record(self, w, groups):
        pipe = self.r.pipeline(transaction=False)
        pipe.hmget(self.inflight(w), [g[1] for g in groups])
        pipe.time()
        present, t = pipe.execute()
        t0 = t[0] * 1000 + t[1] // 1000
        applied, gone = [], set()
        for g, v in zip(groups, present):
            if v is not None and g[1] not in gone:
                gone.add(g[1])
                applied.append((g, v))
        args = [self.dead_max, w.wid, self.k("batch"), self.k("seen")]
        for g in groups:
            args += g
        reply = self.eval("record", [self.inflight(w), self.k("retry"), self.k("dead"),
                                     self.k("stats"), self.k("dead:secrets"), self.k("parked"),
                                     self.k("queue")], args)
        t1 = self.time_ms()
        self.expect(reply == [len(applied), []], "RECORD answered %r, expected [%d, []]", reply,
                    len(applied))
        parked = collections.defaultdict(list)
        entries, retries = [], []
        for g, v in applied:
            kind, j = g[0], Job(v)
            if kind == "A":
                self.delivered[j.id] += 1
                self.stats["delivered"] += 1
            elif kind == "R":
                self.stats["failed_attempts"] += 1
                self.stats["retried"] += 1
                retries.append(g)
                if self.produced[j.id] == 1:
                    self.crashes[j.id] = 0      # the envelope holds the bare job
            elif kind == "K":
                self.stats["parked"] += 1
                parked[g[2]].append(mark(j.body, True, j.crashes))
            else:
                self.stats["dead"] += 1
                self.stats["failed_attempts"] += kind == "D"
                self.stats["invalid"] += kind == "I"
                entries.append(g)
        self.account_trim(len(entries))
        # Where the applied outcomes went, with what bytes.
        pipe = self.r.pipeline(transaction=False)
        for g in retries:
            pipe.zscore(self.k("retry"), g[2])
        for o, pushed in parked.items():
            pipe.lrange(self.k("parked", o), 0, len(pushed) - 1)
            pipe.zscore(self.k("parked"), o)
        pipe.lrange(self.k("dead"), 0, len(entries) - 1)
        pipe.hmget(self.k("dead:secrets"), [g[2] and json.loads(g[2])["dead_id"]
                                            for g in entries] or ["-"])
        res = pipe.execute()
        for g, score in zip(retries, res):
            self.expect(score is not None and t0 + g[3] <= score <= t1 + g[3],
                        "RECORD R: score %r not now + %d (now %d..%d)", score, g[3], t0, t1)
        i = len(retries)
        for o, pushed in parked.items():
            self.expect(res[i] == pushed[::-1], "RECORD K pushed %r onto parked:%s, expected %r",
                        res[i], o, pushed[::-1])
            self.expect(res[i + 1] is not None, "RECORD K: %s not in P:parked", o)
            i += 2
        kept = min(len(entries), self.dead_max)
        self.expect(res[i][:kept] == [g[2] for g in entries][::-1][:kept],
                    "RECORD D/I/E: P:dead starts %r, expected %r", res[i][:kept],
                    [g[2] for g in entries][::-1][:kept])
        if len(entries) <= self.dead_max:
            self.expect([v or b"" for v in res[i + 1]][:len(entries)] == [g[3] for g in entries],
                        "RECORD D/I/E: aside values %r, expected %r", res[i + 1],
                        [g[3] for g in entries])
        lost = self.lose()
        w.outbox = groups if lost else []
        self.note("%s record %s -> %r%s" % (w, " ".join("%s:%s" % (g[0], g[1]) for g in groups),
                                           reply, " REPLY LOST" if lost else ""))

    def step_promote(self, limit=None):
        limit = limit or self.rng.randint(1, 20)
        pipe = self.r.pipeline(transaction=False)
        pipe.zrange(self.k("retry"), 0, -1, withscores=True)
        pipe.time()
        members, t = pipe.execute()
        now = t[0] * 1000 + t[1] // 1000
        due = [m for m, s in members if s <= now][:limit]
        reply = self.eval("promote", [self.k("retry"), self.k("queue"), self.k("stats"),
                                      self.k("backlog")],
                          [limit])
        self.expect(reply[0] == len(due), "PROMOTE moved %r, expected %d", reply[0], len(due))
        tail = self.queue_tail(len(due))
        self.expect(tail == due[::-1], "PROMOTE: queue ends %r, expected %r (earliest "
                    "rightmost)", tail, due[::-1])
        rest = members[len(due):]
        self.expect((reply[1] == -1) == (not rest), "PROMOTE: next due %r with %d left",
                    reply[1], len(rest))
        self.stats["promoted"] += len(due)
        self.lose()                 # nothing to redo: the next PROMOTE just runs
        self.note("promote limit %d -> %r" % (limit, reply))

    def step_clock(self, all=False):
        members = sorted(self.r.zrange(self.k("retry"), 0, -1))
        chosen = [m for m in members if all or self.rng.random() < 0.5]
        if chosen:
            self.r.zadd(self.k("retry"), {m: self.tick * 100 + i for i, m in enumerate(chosen)},
                        xx=True)
        self.note("clock: %d of %d retries due" % (len(chosen), len(members)))

    def step_health(self, w=None, closing=False):
        """A worker's HEALTH batch: random answers and failures for some
        origins, and the outcome of each probe it was granted ('1' or '2';
        all '1' when closing). Transitions counted from the records before
        and after (a lost reply changes nothing here: the records say)."""
        w = w or self.rng.choice(self.live(lambda w: w.registered) or [None])
        if w is None:
            return self.note("health: no registered live worker")
        groups = []
        for o in ORIGINS:
            probe = "0"
            if o in w.probes:
                probe = "1" if closing or self.rng.random() < 0.5 else "2"
            elif closing or self.rng.random() < 0.4:
                continue
            ok, failed = (0, 0) if closing else (self.rng.choice((0, 0, 1, 2)),
                                                 self.rng.randint(0, 4))
            groups += [o, json.dumps(o), str(ok), str(failed), probe]
        w.probes = set()
        if not groups:
            return self.note("%s health: nothing to report" % w)
        origins = groups[0::5]
        states = lambda: [v or b"closed" for v in self.r.eval(
            "local o = {} for i, k in ipairs(KEYS) do o[i] = redis.call('HGET', k, 'state') "
            "or false end return o", len(origins), *[self.k("endpoint", o) for o in origins])]
        before = states()
        try:
            reply = self.eval("health", [self.k("endpoints"), self.k("endpoints", "gen"),
                                         self.k("events"), self.k("queue"), self.k("stats"),
                                         self.k("parked")],
                              [self.k("endpoint")] + BREAKER + groups)
        except redis.ResponseError as e:
            raise Failure("HEALTH refused: %s" % e) from e
        self.expect(reply[2] == [], "HEALTH refused records %r", reply[2])
        after = states()
        moves = []
        for o, probe, b, a in zip(origins, groups[4::5], before, after):
            b, a = b.decode(), a.decode()
            if b == "half_open" and probe != "0" and a != "disabled":
                self.expect(a == ("closed" if probe == "1" else "open"), "HEALTH: %s's probe "
                            "%s left its breaker %s", o, "succeeded" if probe == "1" else
                            "failed", a)
            if b != a:
                moves.append("%s %s->%s" % (o, b, a))
                if a == "disabled":
                    self.stats["endpoints_disabled"] += 1
                elif (b, a) in BREAKER_MOVES:
                    self.stats[BREAKER_MOVES[b, a]] += 1
                else:
                    self.expect((b, a) == ("half_open", "open"), "HEALTH moved %s %s -> %s",
                                o, b, a)
        lines = self.r.hgetall(self.k("endpoints"))
        for o, a in zip(origins, after):
            line = lines.get(o.encode(), b"closed").split()[0]
            self.expect(line == a, "%s's line in P:endpoints says %r, its record %r", o, line, a)
        lost = self.lose()
        self.note("%s health %r -> %s%s" % (w, [tuple(groups[i:i + 5:2]) for i in
                                                 range(0, len(groups), 5)],
                                             ", ".join(moves) or "no move",
                                             " REPLY LOST" if lost else ""))

    def step_breaker_clock(self, all=False):
        """The fake clock for breakers: some open or half_open origins come
        due (their record's due set to 0, as if the cooldown or the probe's
        time had passed); now and then one has been failing for a day."""
        moved = []
        for o in ORIGINS:
            key = self.k("endpoint", o)
            state, since = self.r.hmget(key, "state", "failing_since")
            if state in (b"open", b"half_open") and (all or self.rng.random() < 0.5):
                self.r.hset(key, "due", 0)
                moved.append(o)
            if not all and since and int(since) and self.rng.random() < 0.05:
                self.r.hset(key, "failing_since", 1)
                moved.append(o + " failing")
        self.note("breaker clock: %r" % moved)

    def step_endpoint_set(self):
        """An operator's hookd endpoints enable|disable of a random origin
        (ENDPOINT_SET): the reply names the states before and after, the
        record and P:endpoints agree, a change is counted; a lost reply is
        sent again (the operator reruns it) and changes nothing more."""
        o, action = self.rng.choice(ORIGINS), self.rng.choice(("enable", "disable"))
        before = (self.r.hget(self.k("endpoint", o), "state") or b"none").decode()
        call = lambda: self.eval("endpoint_set", [  # noqa: E731
            self.k("endpoints"), self.k("endpoints", "gen"), self.k("events"), self.k("queue"),
            self.k("stats"), self.k("parked")],
            [self.k("endpoint"), action, o, json.dumps(o), "10000", "", "300000"])
        try:
            prev, cur = [v.decode() for v in call()]
        except redis.ResponseError as e:
            raise Failure("ENDPOINT_SET refused: %s" % e) from e
        want = "disabled" if action == "disable" else \
            ("closed" if before not in ("closed", "none") else before)
        self.expect((prev, cur) == (before, want), "ENDPOINT_SET %s %s: %r -> %r, expected "
                    "%r -> %r", action, o, prev, cur, before, want)
        if cur != prev:
            self.stats["endpoints_enabled" if action == "enable" else "endpoints_disabled"] += 1
        line = self.r.hget(self.k("endpoints"), o)
        self.expect((line.split()[0].decode() if line else "closed") ==
                    (cur if cur != "none" else "closed"),
                    "%s's line in P:endpoints %r after %s", o, line, action)
        lost = self.lose()
        if lost:
            again = [v.decode() for v in call()]
            self.expect(again == [cur, cur], "ENDPOINT_SET sent twice moved %s: %r", o, again)
        self.note("endpoint_set %s %s: %s -> %s%s" % (action, o, prev, cur,
                                                      " REPLY LOST, resent" if lost else ""))

    def redis_us(self):
        t = self.r.time()
        return t[0] * 1000000 + t[1]

    def step_throttle(self):
        """THROTTLE for some origins at random rates and counts: it moves no
        job, so conservation is not at stake; what is checked is the
        limiter's own promise, across calls and lost replies: each origin's
        slots, taken in the order granted, are never closer than the
        interval in force (the largest asked within 5 minutes) and never
        more than 200 ms ahead of Redis's clock. Then ENDPOINT_COUNTS, read
        only, must agree with P:endpoints, P:throttled and P:parked."""
        triples = []
        for o in self.rng.sample(ORIGINS, self.rng.randint(1, len(ORIGINS))):
            triples += [o, str(self.rng.choice((1000, 10000, 100000))),
                        str(self.rng.randint(1, 30))]
        before = self.redis_us()
        try:
            reply = self.eval("throttle", [self.k("throttled")], [self.k("rate")] + triples)
        except redis.ResponseError as e:
            raise Failure("THROTTLE refused: %s" % e) from e
        after = self.redis_us()
        slots = self.rate_slots
        for i, (status, granted, delay, interval, _retry) in enumerate(reply):
            o, asked, count = triples[3 * i], int(triples[3 * i + 1]), int(triples[3 * i + 2])
            self.expect(status == 0 and 0 <= granted <= count and interval >= asked,
                        "THROTTLE %s: status %d, %d of %d granted, interval %d (asked %d)",
                        o, status, granted, count, interval, asked)
            if granted == 0:
                continue
            first = before + delay
            self.expect(delay + (granted - 1) * interval < 200000 + (after - before),
                        "THROTTLE %s: slots up to %d us ahead", o, delay + (granted - 1) *
                        interval)
            # The slot is in [before, after] + delay on Redis's clock; the
            # last one granted no earlier than recorded. Closer than the
            # interval in force then is a violation whatever the clocks.
            last, then = slots.get(o, (None, 0))
            self.expect(last is None or after + delay >= last + then,
                        "THROTTLE %s: a slot %d us after the last one granted, interval %d",
                        o, after + delay - (last or 0), then)
            slots[o] = (first + (granted - 1) * interval, interval)
        if self.lose():
            self.note("throttle %r (REPLY LOST: those slots go unused)" % triples)
        else:
            self.note("throttle %r -> %r" % (triples, reply))
        self.check_endpoint_counts()

    def check_endpoint_counts(self):
        got = self.eval("endpoint_counts", [self.k("endpoints"), self.k("throttled"),
                                            self.k("parked")], [])
        states = collections.Counter(v.split()[0].decode() for v in
                                     self.r.hvals(self.k("endpoints")))
        now_ms = self.redis_us() // 1000
        throttled = self.r.zcount(self.k("throttled"), now_ms, "+inf")
        want = [states["open"], states["half_open"], states["disabled"]]
        self.expect(got[:3] == want and got[4] == self.r.zcard(self.k("parked")) and
                    got[5] == 1 and abs(got[3] - throttled) <= 1,
                    "ENDPOINT_COUNTS %r, P:endpoints says %r, throttled %d", got, want,
                    throttled)

    def step_release(self, w=None):
        w = w or self.rng.choice(self.live(lambda w: w.releases) or [None])
        if w is None:
            return self.note("release: no lost fetch")
        lo, hi = w.releases[0]
        seqs = list(range(hi, lo - 1, -1))
        got = self.r.hmget(self.inflight(w), seqs)
        want = [v for v in got if v is not None]
        reply = self.eval("release", [self.inflight(w), self.k("queue"), self.k("stats"),
                                      self.k("backlog")],
                          [lo, hi])
        self.expect(reply == len(want), "RELEASE moved %r, expected %d", reply, len(want))
        tail = self.queue_tail(len(want))
        self.expect(tail == want, "RELEASE: queue ends %r, expected %r", tail, want)
        self.stats["requeued"] += len(want)
        lost = self.lose()
        if not lost:
            w.releases.pop(0)
        self.note("%s release %d..%d -> %r%s" % (w, lo, hi, reply, " REPLY LOST" if lost else ""))

    def rebuild(self, entry, asides):
        """cli.c rebuild_job()."""
        e = json.loads(entry)
        aside = asides.get(e["dead_id"])
        if e.get("raw_aside"):
            return ACCEPTED + conservation.aside_raw(aside)
        job = e.get("job")
        if isinstance(job, dict):
            o = dict(job)
            if "id" not in o and e.get("id"):
                o["id"] = e["id"]
            if aside:
                o.update(msgpack.unpackb(aside[1:], raw=False))
            return ACCEPTED + json.dumps(o, separators=(",", ":")).encode()
        if e.get("raw") is not None:
            return e["raw"].encode()
        return base64.b64decode(e["raw_base64"])

    def step_dlq(self):
        if self.dlq_pending and self.rng.random() < 0.7:
            counter, triples = self.dlq_pending.pop(0)
            again = True
        else:
            entries = self.r.lrange(self.k("dead"), 0, -1)
            if not entries:
                return self.note("dlq: nothing dead")
            counter = "replayed" if self.rng.random() < 0.75 else "purged"
            chosen = self.rng.sample(entries, min(len(entries), self.rng.randint(1, 3)))
            dids = [json.loads(e)["dead_id"] for e in chosen]
            asides = dict(zip(dids, self.r.hmget(self.k("dead:secrets"), dids)))
            triples = [(e, self.rebuild(e, asides) if counter == "replayed" else b"", d)
                       for e, d in zip(chosen, dids)]
            again = False
        self.dlq_move(counter, triples, again)

    def dlq_move(self, counter, triples, again):
        entries = collections.Counter(self.r.lrange(self.k("dead"), 0, -1))
        dids = [t[2] for t in triples]
        asides = dict(zip(dids, self.r.hmget(self.k("dead:secrets"), dids)))
        moved = []
        for t in triples:
            if entries[t[0]]:
                entries[t[0]] -= 1
                moved.append(t)
        ids = [conservation.dead_entry_id(t[0], asides.get(t[2])) for t in moved]
        args = [counter]
        for t in triples:
            args += t
        reply = self.eval("dlq_move", [self.k("dead"), self.k("queue"), self.k("dead:secrets"),
                                       self.k("stats")], args)
        self.expect(reply == len(moved), "DLQ_MOVE moved %r, expected %d", reply, len(moved))
        pipe = self.r.pipeline(transaction=False)
        pipe.lrange(self.k("queue"), 0, len(moved) - 1)
        pipe.hmget(self.k("dead:secrets"), dids)
        head, left = pipe.execute()
        if counter == "replayed":
            pushed = [t[1] for t in moved][::-1]
            self.expect(head[:len(moved)] == pushed, "DLQ_MOVE: queue starts %r, expected %r",
                        head, pushed)
            for id in ids:
                if self.produced[id] == 1:
                    self.crashes[id] = 0
        else:
            for id in ids:
                self.purged[id] += 1
        self.expect(left == [None] * len(dids), "DLQ_MOVE left aside values %r", left)
        self.stats[counter] += len(moved)
        self.dead_len -= len(moved)
        lost = self.lose()
        if lost:
            self.dlq_pending.append((counter, triples))
        self.note("dlq %s %s%s -> %r%s" % (counter, ids, " (again)" if again else "", reply,
                                          " REPLY LOST" if lost else ""))

    def step_purge_all(self):
        """hookd dlq purge --all (a lost reply: the operator runs it again),
        only on a full dead list, so that trimming is exercised too."""
        if self.dead_len < self.dead_max:
            return self.note("dlq purge --all: the dead list is not full")
        pipe = self.r.pipeline(transaction=False)
        pipe.lrange(self.k("dead"), 0, -1)
        pipe.hgetall(self.k("dead:secrets"))
        entries, asides = pipe.execute()
        ids = [conservation.dead_entry_id(e, asides.get(json.loads(e)["dead_id"].encode()))
               for e in entries]
        reply = self.eval("dlq_purge_all", [self.k("dead"), self.k("dead:secrets"),
                                            self.k("stats")], [])
        self.expect(reply == len(entries), "DLQ_PURGE_ALL answered %r, expected %d", reply,
                    len(entries))
        self.expect(not self.r.exists(self.k("dead"), self.k("dead:secrets")),
                    "DLQ_PURGE_ALL left P:dead or P:dead:secrets")
        for id in ids:
            self.purged[id] += 1
        self.stats["purged"] += len(entries)
        self.dead_len = 0
        self.note("dlq purge --all -> %r%s" % (reply, " REPLY LOST" if self.lose() else ""))

    def heartbeat(self, w):
        reply = self.eval("heartbeat", [self.k("hb", w.wid), self.k("workers")],
                          [w.wid, HB_TTL_MS, '{"pid":%d}' % w.slot, EPOCH_MS + self.tick])
        self.expect(reply == 1, "HEARTBEAT answered %r", reply)
        if w.wid not in self.registered:
            self.registered.append(w.wid)
        lost = self.lose()
        if not lost:
            w.registered = True
        return lost

    def step_heartbeat(self):
        w = self.rng.choice(self.live() or [None])
        if w is None:
            return self.note("heartbeat: no live worker")
        lost = self.heartbeat(w)
        self.note("%s heartbeat%s" % (w, " REPLY LOST" if lost else ""))

    def step_spawn(self, slot):
        self.pids += 1
        w = Worker(slot, self.pids, self.tick)
        self.workers.append(w)
        self.by_wid[w.wid] = w
        self.slots[slot] = w
        lost = self.heartbeat(w)
        self.note("spawn %s in slot %d%s" % (w, slot, " REPLY LOST" if lost else ""))

    def step_die(self):
        live = self.live() + [w for w in self.slots if w is not None and w.state == "cut"]
        if not live:
            return self.note("die: no worker")
        poisoned = [w for w in live if any(
            self.meta.get(Job(h.data).id, {}).get("poison") for h in w.held.values())]
        w = self.rng.choice(poisoned if poisoned and self.rng.random() < 0.7 else live)
        self.kill(w, self.rng.random() < 1 / 3)

    def kill(self, w, host_lost):
        """w dies: everything it knew is gone; its supervisor will reclaim
        it, or with its host lost only the reaper can."""
        self.unblock(w.slot, close=True)
        self.stranding += host_lost and w.refused_forgotten
        w.state = "dead"
        w.host_lost = host_lost
        w.sup_pending = not host_lost
        if host_lost:
            self.lost_hosts.append(w)
        w.held, w.outbox, w.checking, w.releases = {}, [], [], []
        w.probes = set()
        self.slots[w.slot] = None
        self.note("%s dies (%s)" % (w, "host lost: reaper" if host_lost else "supervisor"))

    def plan_reclaim(self, wids, crashed):
        """What RECLAIM will requeue and dead-letter for these workers."""
        pipe = self.r.pipeline(transaction=False)
        for wid in wids:
            pipe.lrange(self.k("claim", wid), 0, -1)
            pipe.hgetall(self.k("inflight", wid))
        res = pipe.execute()
        requeue, dead = [], []
        for i, wid in enumerate(wids):
            requeue += res[2 * i]
            for seq, data in sorted(res[2 * i + 1].items(), key=lambda kv: int(kv[0])):
                j = Job(data)
                n = j.crashes + (1 if crashed else 0)
                if crashed and self.produced[j.id] == 1:
                    self.crashes[j.id] += 1
                    self.expect(self.crashes[j.id] == n, "job %s crashed %d times, its mark "
                                "says %d", j.id, self.crashes[j.id], n)
                if crashed and n >= POISON_AFTER:
                    dead.append(("%s:%s" % (wid, seq.decode()), j))
                    if self.produced[j.id] == 1:
                        self.crashes[j.id] = 0
                else:
                    requeue.append(mark(j.body, True, n))
        return requeue, dead

    def reclaim(self, wid, crashed):
        """RECLAIM one worker ('' = the reaper); returns whether the reply was lost."""
        if wid:
            wids = [wid]
        else:
            keys = self.r.hkeys(self.k("workers"))
            wids = [k.decode() for k in keys if not self.r.exists(self.k("hb", k.decode()))]
        requeue, dead = self.plan_reclaim(wids, crashed)
        reply = self.eval("reclaim", [], [P, wid, "crashed" if crashed else "clean",
                                          POISON_AFTER, self.dead_max, iso(self.tick)])
        self.expect(reply == [len(requeue), len(dead), []], "RECLAIM %r answered %r, expected "
                    "[%d, %d, []]", wid, reply, len(requeue), len(dead))
        tail = self.queue_tail(len(requeue))
        self.expect(sorted(tail) == sorted(requeue), "RECLAIM: queue ends %r, expected (in any "
                    "order) %r", tail, requeue)
        self.stats["requeued"] += len(requeue)
        self.stats["dead"] += len(dead)
        self.stats["worker_crashed"] += len(dead)
        self.account_trim(len(dead))
        kept = min(len(dead), self.dead_max)
        if kept:
            # The newest entries are these (in no particular order), unless
            # more died than dead_max keeps.
            expected = dict(dead)
            pipe = self.r.pipeline(transaction=False)
            pipe.lrange(self.k("dead"), 0, kept - 1)
            pipe.hgetall(self.k("dead:secrets"))
            entries, asides = pipe.execute()
            found = set()
            for e in entries:
                e = json.loads(e)
                did, j = e["dead_id"], expected.get(e["dead_id"])
                self.expect(j is not None, "RECLAIM: %r at the head of P:dead", e)
                a = asides.get(did.encode())
                # The entry shows the id and url when printable. Redis's
                # cmsgpack cannot read msgpack bin (0xc4..0xc6), so for a
                # retry envelope (its job is bin) or a msgpack job with a bin
                # value they are null today: allowed here, reported.
                printable = all(" " <= c <= "~" for c in j.id)
                readable = j.body[:1] == b"{"
                self.expect(e["reason"] == "worker_crashed" and e["raw_aside"] and
                            e["id"] in ((j.id,) if printable and readable else
                                        (j.id, None) if printable else (None,)) and
                            e["url"] in ((j.url,) if readable else (j.url, None)) and
                            conservation.aside_raw(a) == j.body,
                            "RECLAIM poison entry %r (aside %r) for %s %r", e, a, did, j.data)
                found.add(did)
            self.expect(len(found) == kept, "RECLAIM: %d poison entries, expected %d",
                        len(found), kept)
        for x in wids:
            if x in self.registered:
                self.registered.remove(x)
        for w in map(self.by_wid.get, wids):
            if w.state in ("dead", "gone"):
                if w.wid not in self.buried_set:
                    self.buried.append(w.wid)
                    self.buried_set.add(w.wid)
                if w in self.lost_hosts:
                    self.lost_hosts.remove(w)
            else:
                for h in w.held.values():
                    h.stale = True
        self.note("reclaim %r %s -> %r" % (wid or "(reaper: %s)" % ",".join(wids),
                                           "crashed" if crashed else "clean", reply))
        return self.lose()

    def step_reclaim(self, w=None):
        """The supervisor, for a worker that died (maybe reaped already)."""
        w = w or self.rng.choice([w for w in self.workers if w.sup_pending] or [None])
        if w is None:
            return self.note("reclaim: no dead worker")
        w.sup_pending = self.reclaim(w.wid, True)
        if w.sup_pending:
            self.trace[-1] += " REPLY LOST"

    def step_reap(self):
        """The reaper, after the heartbeats of the lost hosts expired."""
        for w in self.lost_hosts:
            self.r.delete(self.k("hb", w.wid))
        self.reclaim("", True)

    def step_stop(self, w=None):
        w = w or self.rng.choice(self.live() or [None])
        if w is None:
            return self.note("stop: no live worker")
        self.note("%s stops" % w)
        while w.outbox:
            self.record(w, w.outbox)
        while w.releases:
            self.step_release(w)
        w.checking = []                 # cancelled; those jobs stay in flight
        self.unblock(w.slot, close=True)
        w.state = "gone"
        self.slots[w.slot] = None
        while self.reclaim(w.wid, False):
            self.trace[-1] += " REPLY LOST"

    def step_cut(self):
        w = self.rng.choice(self.live(lambda w: w.registered) or [None])
        if w is None:
            return self.note("cut: no worker")
        w.state = "cut"
        self.r.delete(self.k("hb", w.wid))      # its heartbeat expires meanwhile
        self.note("%s cut off" % w)

    def step_heal(self):
        ws = [w for w in self.slots if w is not None and w.state == "cut"]
        if not ws:
            return self.note("heal: nobody cut off")
        w = self.rng.choice(ws)
        w.state = "live"
        if self.rng.random() < 0.5:
            lost = self.heartbeat(w)
            return self.note("%s back, heartbeat first%s" % (w, " REPLY LOST" if lost else ""))
        self.note("%s back, heartbeat later" % w)

    # ---- invariants -----------------------------------------------------

    def check(self):
        rep = self.checker.check(self.r, P, self.produced, self.delivered, trimmed=self.trimmed,
                                 deduped=self.deduped, purged=self.purged)
        if not rep.ok:
            back = sorted(set(i for _, i in rep.unknown) & set(self.retired))
            raise Failure("jobs not conserved:\n" + rep.summary() + (
                "\n(found again after all their copies had left: %r)" % back if back else ""))
        self.places = rep.places
        if self.step_no % RETIRE_EVERY == 0:
            self.retire(rep)
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(self.k("stats"))
        pipe.hkeys(self.k("workers"))
        pipe.lrange(self.k("dead"), 0, -1)
        pipe.hkeys(self.k("dead:secrets"))
        pipe.zrange(self.k("parked"), 0, -1)
        for o in ORIGINS:
            pipe.llen(self.k("parked", o))
        # The recently reclaimed every step, all of them now and then.
        recent = self.buried if self.step_no % 500 == 0 else self.buried[-8:]
        buried = [self.k(kind, wid) for wid in recent for kind in ("inflight", "claim", "hb")]
        pipe.exists(*buried) if buried else pipe.echo("0")
        views = [w for w in self.slots if w is not None and w.state in ("live", "cut")]
        for w in views:
            pipe.hgetall(self.inflight(w))
            pipe.llen(self.k("claim", w.wid))
        res = pipe.execute()
        stats = {k.decode(): int(v) for k, v in res[0].items()}
        want = {k: v for k, v in self.stats.items() if v}
        if stats != want:
            diff = {k: (stats.get(k), want.get(k)) for k in sorted(set(stats) | set(want))
                    if stats.get(k) != want.get(k)}
            raise Failure("P:stats differ from the model (redis, model): %r" % diff)
        workers = sorted(k.decode() for k in res[1])
        self.expect(workers == sorted(self.registered), "P:workers %r, expected %r", workers,
                    sorted(self.registered))
        self.expect(len(res[2]) == self.dead_len, "P:dead holds %d, expected %d", len(res[2]),
                    self.dead_len)
        dids = {json.loads(e)["dead_id"].encode() for e in res[2]}
        orphans = sorted(set(res[3]) - dids)
        self.expect(not orphans, "kept aside without a dead entry: %r", orphans)
        parked = set(o.decode() for o in res[4])
        for o, n in zip(ORIGINS, res[5:5 + len(ORIGINS)]):
            self.expect(not n or o in parked, "parked:%s holds %d jobs but is not in P:parked",
                        o, n)
        i = 5 + len(ORIGINS)
        if int(res[i]):
            raise Failure("a reclaimed worker's keys are back: %r" % [
                k for k in buried if self.r.exists(k)])
        for w, fl, claimed in zip(views, res[i + 1::2], res[i + 2::2]):
            self.expect(not claimed, "%s (this version) has %d jobs in P:claim:%s", w, claimed,
                        w.wid)
            # FETCH files jobs only for a worker whose heartbeat key exists,
            # so registered: if it is lost with its host, the reaper finds it.
            self.expect(not fl or w.wid in self.registered, "%s holds %d jobs in flight but "
                        "is not in P:workers: lost with its host now, no reaper would find "
                        "them", w, len(fl))
            fl = {int(s): v for s, v in fl.items()}
            for seq, h in w.held.items():
                if h.stale or h.state == "checking":
                    continue
                self.expect(fl.get(seq) == h.data, "%s holds seq %d as %r, in flight: %r", w, seq,
                            h.data, fl.get(seq))
            for seq in fl:
                self.expect(seq in w.held or any(lo <= seq <= hi for lo, hi in w.releases),
                            "%s: seq %d in flight unknown to the worker", w, seq)
        self.check_backlog()
        if self.step_no % RETIRE_EVERY == 0:
            self.orphans()

    def check_backlog(self):
        """P:backlog (backlog.lua): hookd's own pushes not yet taken are in
        the queue (front <= LLEN), and the left arrivals it implies,
        left_taken + LLEN - front, never go down. A legacy step takes jobs
        behind its back, as an operator's LREM would: the counts are skewed
        until the queue next runs empty, and only then exact again."""
        pipe = self.r.pipeline(transaction=True)
        pipe.hgetall(self.k("backlog"))
        pipe.llen(self.k("queue"))
        b, n = pipe.execute()
        front, taken = int(b.get(b"front", 0)), int(b.get(b"left_taken", 0))
        arrived = taken + n - front
        if self.backlog_skewed:
            self.backlog_skewed = n > 0 or front > 0
            self.arrived = arrived
            return
        self.expect(0 <= front <= n, "P:backlog front %d, queue %d", front, n)
        self.expect(arrived >= self.arrived, "left arrivals %d after %d", arrived, self.arrived)
        self.arrived = arrived

    # ---- running --------------------------------------------------------

    def step(self):
        self.step_no += 1
        self.tick += 1
        empty = [i for i, w in enumerate(self.slots) if w is None]
        if empty and self.rng.random() < 0.5:
            kind = "spawn"
            self.step_spawn(self.rng.choice(empty))
        else:
            names, weights = zip(*WEIGHTS)
            kind = self.rng.choices(names, weights)[0]
            getattr(self, "step_" + kind)()
        self.counts[kind] += 1
        for slot in range(SLOTS):
            self.unblock(slot)
        self.check()

    def drain(self):
        """Settle everything: no lost replies, every dead worker reclaimed,
        every retry due, every parked job pulled, every job recorded."""
        global LOST
        saved, LOST = LOST, 0.0
        try:
            self.note("drain")
            for w in self.slots:
                if w is not None and w.state == "cut":
                    w.state = "live"
            for i, w in enumerate(self.slots):
                if w is None:
                    self.step_spawn(i)
            for w in self.live():
                self.heartbeat(w)
                while w.outbox:
                    self.record(w, w.outbox)
                while w.releases:
                    self.step_release(w)
            while self.dlq_pending:
                self.dlq_move(*self.dlq_pending.pop(0), True)
            for n in range(2000):
                self.step_no += 1
                self.tick += 1
                for w in self.workers:
                    if w.sup_pending:
                        self.step_reclaim(w)
                self.step_reap()
                self.step_clock(all=True)
                self.step_breaker_clock(all=True)
                self.step_promote(4000)
                for slot in range(SLOTS):
                    w = self.slots[slot]
                    if w is None:
                        self.step_spawn(slot)
                        continue
                    self.step_fetch(w, 12, pull=True)
                    if w.probes:
                        self.step_health(w, closing=True)
                    if w.checking or any(h.state == "check" for h in w.held.values()):
                        self.step_accept(w, everything=True)
                    if w.held:
                        self.step_record(w, everything=True)
                    if any(self.meta.get(Job(h.data).id, {}).get("poison")
                           for h in w.held.values()):
                        self.kill(w, False)
                self.check()
                self.orphans()
                left = self.left()
                if not left:
                    return n
            raise Failure("not settled after 2000 drain rounds: %r" % self.left())
        finally:
            LOST = saved

    def retire(self, rep):
        """Stop checking ids long settled: every copy delivered, deduped,
        purged or trimmed, none in Redis, not among the last RECENT ids (so
        no copy of it will be made). The window of their dedupe keys ends
        (deleted), which keeps the key space small. A retired id found
        again in Redis is reported as unknown, so nothing is lost by it."""
        recent = set(self.ids)
        seen = []
        for i in list(self.produced):
            if i in recent or any(not w.startswith(conservation.OUT_PLACES) for w in rep.where[i]):
                continue
            m = self.produced.pop(i)
            out = self.delivered.pop(i, 0) + self.deduped.pop(i, 0) + self.purged.pop(i, 0)
            self.trimmed -= m - out
            self.retired[i] = m
            self.crashes.pop(i, None)
            seen.append(self.k("seen", seen_key(i, self.meta.pop(i)["url"])))
        for k in range(0, len(seen), 1000):
            self.r.delete(*seen[k:k + 1000])

    def orphans(self):
        """Dead workers nobody will reclaim: host lost, so no supervisor,
        and not in P:workers, so the reaper does not look at them. A job
        under one would never move again: that fails the run. (The model
        found such jobs while FETCH took jobs for any worker: one cut off
        past heartbeat_ttl, reaped, back and fetching before its next
        heartbeat, then lost with its host. FETCH now refuses a worker whose
        heartbeat key is gone.) Those left with nothing are forgotten here
        as the reaper forgot them, their keys watched like a reclaimed
        worker's."""
        for w in list(self.lost_hosts):
            if w.wid in self.registered:
                continue
            pipe = self.r.pipeline(transaction=False)
            pipe.hlen(self.inflight(w))
            pipe.llen(self.k("claim", w.wid))
            n = sum(pipe.execute())
            self.expect(not n, "%d jobs stranded under %s: dead (host lost, so no supervisor) "
                        "and not in P:workers (so no reaper)", n, w.wid)
            self.lost_hosts.remove(w)
            if w.wid not in self.buried_set:
                self.buried.append(w.wid)
                self.buried_set.add(w.wid)

    def left(self):
        """Jobs still anywhere but delivered / dead / gone."""
        rep = self.checker.check(self.r, P, self.produced, self.delivered, trimmed=self.trimmed,
                                 deduped=self.deduped, purged=self.purged)
        return {p: n for p, n in rep.places.items()
                if n and p not in ("dead", "delivered", "deduped", "purged")}


def run(r, seed, steps, scripts, wait=wait_args):
    """Run one seed for steps steps, then drain; raise Failure with the
    seed, the step and the trace."""
    r.flushall()
    m = Model(r, seed, scripts, wait=wait)
    draining = False
    try:
        while m.step_no < steps:
            m.step()
        draining = True
        m.drain()
    except Exception as e:
        m.close()
        at = "in the drain after step %d" % steps if draining else "at step %d" % m.step_no
        raise Failure("model failed: seed %d, %s (dead_max %d): %s: %s\nreproduce: "
                      "HOOKD_MODEL_SEED=%d HOOKD_MODEL_STEPS=%d /usr/bin/python3 %s\n"
                      "(HOOKD_MODEL_TRACE=n shows the last n steps)\nlast %d steps:\n%s" % (
                          seed, at, m.dead_max, type(e).__name__, e, seed,
                          steps if draining else m.step_no, os.path.abspath(__file__),
                          len(m.trace), "\n".join(m.trace))) from e
    m.close()
    return m


def seeds_and_steps():
    steps = int(os.environ.get("HOOKD_MODEL_STEPS", "10000"))
    seeds = [int(s) for s in os.environ.get("HOOKD_MODEL_SEED", "1,2,3").split(",") if s]
    return seeds, steps


class ModelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = Procs()
        cls.port, cls.r = cls.p.redis()
        cls.scripts = {name: lua_script(name) for name in SCRIPTS}

    @classmethod
    def tearDownClass(cls):
        cls.p.close()

    def test_model(self):
        seeds, steps = seeds_and_steps()
        each = -(-steps // len(seeds))
        for seed in seeds:
            with self.subTest(seed=seed):
                t = time.monotonic()
                m = run(self.r, seed, each, self.scripts)
                st = m.stats
                print("seed %d: %d steps + drain in %.1f s (dead_max %d): %d jobs, %d "
                      "delivered, %d dead-lettered (%d as worker_crashed), %d trimmed, %d "
                      "duplicates removed, %d replayed, %d purged, %d replies lost, %d workers, "
                      "%d fetches refused as not registered (%d by a worker the reaper had "
                      "forgotten, %d of which then lost its host), %d blocked waits woken, "
                      "breakers opened %d, closed %d, disabled %d, %d probes; "
                      "steps %s" % (seed, each, time.monotonic() - t, m.dead_max,
                                    sum(m.produced.values()) + sum(m.retired.values()),
                                    st["delivered"], st["dead"], st["worker_crashed"],
                                    st["dead_trimmed"], st["duplicate"], st["replayed"],
                                    st["purged"], m.lost_replies, len(m.workers), m.refused,
                                    m.forgotten, m.stranding, m.woken, st["breaker_opened"],
                                    st["breaker_closed"], st["endpoints_disabled"], m.probes,
                                    dict(sorted(m.counts.items()))), file=sys.stderr)
                self.assertTrue(st["breaker_opened"] and st["breaker_closed"] and m.probes,
                                "no breaker opened and closed by a probe: the run covers none")

    def mutant(self, name, old, new, steps=3000, wait=wait_args):
        """The model must catch a script that loses or doubles a job (or a
        wait that moves one)."""
        scripts = dict(self.scripts)
        if name:
            self.assertIn(old, scripts[name])
            scripts[name] = scripts[name].replace(old, new)
        with self.assertRaises(Failure) as cm:
            run(self.r, 7, steps, scripts, wait=wait)
        return str(cm.exception)

    def test_catches_record_losing_a_retry(self):
        msg = self.mutant("record", "redis.call('ZADD', retry, now() + extra[i], a)", "")
        self.assertRegex(msg, r"seed 7, at step \d+ .*RECORD R: score None(.|\n)*"
                              r"reproduce: HOOKD_MODEL_SEED=7 HOOKD_MODEL_STEPS=\d+"
                              r"(.|\n)*last \d+ steps:\nstep ")

    def test_catches_fetch_ignoring_the_breaker(self):
        """FETCH that takes an open origin's jobs before its due time, or
        more than the one probe once due, or HEALTH that never closes a
        breaker (the drain then finds parked jobs it cannot get out)."""
        self.assertRegex(self.mutant("fetch", "if served >= rec.due then", "if true then"),
                         "FETCH (returned|granted probes)")
        self.assertRegex(self.mutant("fetch", "p.count, p.probe = 1, true", "p.probe = true"),
                         "FETCH returned")
        self.assertRegex(self.mutant("health", "if p.probe == '1' then",
                                     "if p.probe == '1' and false then"),
                         "HEALTH: .* probe succeeded left its breaker open")

    def test_catches_release_doubling(self):
        """Caught by the conservation check: the job is in the queue and
        still in flight."""
        self.assertIn("doubled", self.mutant("release", "call_chunked('HDEL', inflight, seqs)",
                                             ""))

    def test_catches_promote_doubling(self):
        self.assertIn("doubled", self.mutant("promote", "call_chunked('RPUSH', queue, rev)",
                                             "call_chunked('RPUSH', queue, rev) "
                                             "call_chunked('RPUSH', queue, rev)"))

    def test_catches_reclaim_without_marks(self):
        self.assertIn("RECLAIM: queue ends",
                      self.mutant("reclaim", "mark(body, true, crashes)", "body"))

    def test_catches_reclaim_forgetting_claimed_jobs(self):
        """RECLAIM must still requeue what an earlier version's worker left in
        its P:claim:<wid> (the legacy step plants it)."""
        self.assertRegex(self.mutant(
            "reclaim", "ipairs(redis.call('LRANGE', w.claim, 0, -1))", "ipairs({})"),
            r"RECLAIM '.*' answered \[")

    def test_catches_fetch_for_a_forgotten_worker(self):
        """FETCH as it was: jobs for a worker whose heartbeat key is gone."""
        self.assertIn("whose heartbeat key is gone", self.mutant(
            "fetch", "if redis.call('EXISTS', hb) == 0 then", "if false then"))

    def test_catches_a_wait_that_claims(self):
        """The wait as it was, BLMOVE queue -> P:claim:<wid> RIGHT LEFT: a job
        moved where this version's FETCH never looks."""
        msg = self.mutant(None, None, None, wait=lambda k, wid: (k("claim", wid), "RIGHT",
                                                                 "LEFT"))
        self.assertRegex(msg, r"the wait \(BLMOVE .*\) answered|jobs in P:claim:")

    def test_catches_a_wait_that_rotates(self):
        """BLMOVE queue queue RIGHT LEFT would rotate the queue (the oldest job
        made the newest), caught whether it answers at once or is woken."""
        msg = self.mutant(None, None, None, wait=lambda k, wid: (k("queue"), "RIGHT", "LEFT"))
        self.assertRegex(msg, r"the wait \(BLMOVE .*\) answered|queue ends")

    def reaped_worker_fetching_before_its_heartbeat(self, scripts):
        """The model's finding, step by step (seed 1 found it at step 1,700 of
        1,792 with the earlier FETCH): a worker cut off past heartbeat_ttl
        is reaped, comes back and fetches before its next heartbeat, then
        dies with its host."""
        global LOST
        saved, LOST = LOST, 0.0
        self.r.flushall()
        m = Model(self.r, 1, scripts)
        try:
            m.step_spawn(0)
            w = m.slots[0]
            for _ in range(4):
                m.step_produce()
            m.step_fetch(w, 5)
            m.step_cut()                        # its heartbeat expires
            m.step_reap()                       # requeued, forgotten
            self.assertNotIn(w.wid, m.registered)
            w.state = "live"                    # back, heartbeat later
            m.check()
            m.step_fetch(w, 5)
            m.check()
            m.step_fetch(w, 5)
            m.check()
            m.kill(w, True)                     # lost with its host
            m.check()
            m.orphans()
            self.assertGreater(self.r.hlen(m.inflight(w)), 0)
            self.assertIn(w.wid, m.registered)  # so the reaper will find them
            m.step_reap()
            m.check()
            self.assertIn(w.wid, m.buried_set)
            self.assertEqual(self.r.exists(m.inflight(w)), 0)
            m.drain()
        finally:
            LOST = saved
            m.close()
        return m

    def test_reaped_worker_fetching_before_its_heartbeat(self):
        """Its FETCH is refused (not registered), it registers again and
        fetches, and when it is lost with its host the reaper finds it:
        nothing stranded, everything delivered in the drain."""
        m = self.reaped_worker_fetching_before_its_heartbeat(self.scripts)
        self.assertEqual((m.refused, m.forgotten, m.stranding), (1, 1, 1))
        with self.assertRaisesRegex(Failure, "whose heartbeat key is gone"):
            scripts = dict(self.scripts)
            scripts["fetch"] = scripts["fetch"].replace(
                "if redis.call('EXISTS', hb) == 0 then", "if false then")
            self.reaped_worker_fetching_before_its_heartbeat(scripts)

    def test_orphans_fail_the_run(self):
        """A job under a dead worker whose host is lost and that is not in
        P:workers fails the run (there is no setting to tolerate it)."""
        self.r.flushall()
        m = Model(self.r, 7, self.scripts)
        w = Worker(0, 1, 0)
        m.workers.append(w)
        m.by_wid[w.wid] = w
        w.state, w.host_lost = "dead", True
        m.lost_hosts.append(w)
        self.r.hset(m.inflight(w), "1", b'{"id":"j1","url":"http://a.test:80/hook"}')
        with self.assertRaisesRegex(Failure, "1 jobs stranded under %s" % w.wid):
            m.orphans()
        self.r.delete(m.inflight(w))
        m.orphans()
        self.assertEqual(m.lost_hosts, [])
        self.assertIn(w.wid, m.buried_set)


if __name__ == "__main__":
    unittest.main(verbosity=2)
