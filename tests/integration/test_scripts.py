"""test_scripts.py -- every Redis script of hookd (src/lua/*.lua), as the build
assembled it (build/lua/<name>.lua, byte for byte what the binary sends with
EVAL), against a real redis-server, at its limits. No hookd process runs.

The rule the scripts are held to (queue.h, src/lua/lib/lib.lua): every script
checks every key's type and every argument before its first write, so a
refusal leaves Redis unchanged; and a move is whole: jobs go between P:queue,
P:inflight:<wid>, P:retry, P:parked:<origin> and P:dead (and out of a
P:claim:<wid> an earlier version's worker left, which RECLAIM empties), and
never appear or vanish on the way. For every script this file tries
- each KEY, and each key the script builds inside, holding every wrong type;
- every count at 0, 1, the largest value allowed and one past it, the
  largest values read from the C sources (queue.h, config.c, policy.h,
  keys.h), so the test fails the day C and Lua disagree;
- the same call sent twice (a lost reply, resent);
plus the crash marks RECLAIM writes (marks.lua) and the shebang's behaviour
at maxmemory. Every call is bracketed by a snapshot of the whole keyspace
(type, full value, PTTL of every key), and every move by a count of the jobs
in every place a job can be.

HOOKD_LUA_DIR names the assembled scripts (tests/CMakeLists.txt sets it to
${CMAKE_BINARY_DIR}/lua); by default ../../build/lua from here.
"""
import codecs
import collections
import json
import os
import re
import sys
import time
import unittest

import msgpack
import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Procs  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
LUA_DIR = os.environ.get("HOOKD_LUA_DIR", os.path.join(ROOT, "build", "lua"))


# ---- The C side's limits, read from the sources hookd is built from ----------

def source(rel):
    with open(os.path.join(ROOT, rel)) as f:
        return f.read()


def c_int_defines(rel):
    """Every '#define NAME <integer>' of a C header, as {NAME: value}."""
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"^#define (\w+) (\d+)\b", source(rel), re.M)}


def c_string_define(rel, name):
    """A '#define NAME "..." "..."' (adjacent C string literals) as bytes."""
    m = re.search(r'^#define %s ((?:"(?:[^"\\]|\\.)*"\s*)+)$' % name, source(rel), re.M)
    return b"".join(codecs.escape_decode(s.encode())[0]
                    for s in re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1)))


def c_config_range(name):
    """(lo, hi) of a key in config.c's table; they are constant expressions
    such as 366L * 86400000, 1L << 40 or QUEUE_POISON_MAX."""
    m = re.search(r'\{ "%s", K_\w+, OFF\([\w.]+\), ([^,]+), ([^,]+),' % name,
                  source("src/config.c"))

    def value(expr):
        expr = re.sub(r"\b(\d+)L\b", r"\1", expr)
        expr = re.sub(r"\bQUEUE_\w+\b", lambda n: str(QUEUE[n.group(0)]), expr)
        return eval(expr, {"__builtins__": {}})
    return value(m.group(1)), value(m.group(2))


QUEUE = c_int_defines("include/hookd/queue.h")
FETCH_MAX = QUEUE["QUEUE_FETCH_MAX"]          # also RELEASE's widest range
FETCH_BYTES_MAX = eval(re.search(r"^#define QUEUE_FETCH_BYTES_MAX (\([\d *]+\))",
                                 source("include/hookd/queue.h"), re.M).group(1),
                       {"__builtins__": {}})
PULL_MAX = QUEUE["QUEUE_PULL_MAX"]
RECORD_MAX = QUEUE["QUEUE_RECORD_MAX"]
ACCEPT_MAX = QUEUE["QUEUE_ACCEPT_MAX"]
PROMOTE_MAX = QUEUE["QUEUE_PROMOTE_MAX"]
DLQ_MOVE_MAX = QUEUE["QUEUE_DLQ_MOVE_MAX"]
HEALTH_MAX = QUEUE["QUEUE_HEALTH_MAX"]
THROTTLE_MAX = QUEUE["QUEUE_THROTTLE_MAX"]
THROTTLE_COUNT_MAX = QUEUE["QUEUE_THROTTLE_COUNT_MAX"]
POISON_MIN, POISON_MAX = c_config_range("poison_after")
DEAD_MAX_MIN, DEAD_MAX = c_config_range("dead_max")
TTL_MIN, TTL_MAX = c_config_range("heartbeat_ttl")
WINDOW_MAX = c_config_range("dedupe_window")[1]   # 0 = off: ACCEPT is never called
ORIGIN_MAX = c_int_defines("include/hookd/policy.h")["POLICY_ORIGIN_MAX"] - 1  # a buffer
PREFIX_MAX = c_int_defines("include/hookd/keys.h")["KEYS_PREFIX_MAX"]
WID_MAX = c_int_defines("include/hookd/keys.h")["KEYS_WID_MAX"] - 1  # a buffer, NUL too
INFO_MAX = 1024         # heartbeat.lua's own limit (worker.c sends at most 255 bytes)
DELAY_MAX = 366 * 86400000                      # record.lua's limit on a retry's delay
EVENTS_MIN, EVENTS_MAX = c_config_range("events_max")
BWINDOW_MIN, BWINDOW_MAX = c_config_range("breaker_window")
ACCEPTED = c_string_define("include/hookd/job.h", "JOB_ACCEPTED_MARK")
NOT_REGISTERED = c_string_define("include/hookd/queue.h", "QUEUE_NOT_REGISTERED").decode()
CRASHED = c_string_define("include/hookd/job.h", "JOB_CRASHED_MARK")
assert len(ACCEPTED) == c_int_defines("include/hookd/job.h")["JOB_ACCEPTED_MARK_LEN"]
assert len(CRASHED) == c_int_defines("include/hookd/job.h")["JOB_CRASHED_MARK_LEN"]


# ---- Keys and scripts, as keys.c names them and queue.c calls them ------------

P = "hookd"
WID = "host-a:4242:1700000000000"
NOW = "2025-11-29T23:28:00.000Z"      # RECLAIM's ISO-8601 time for dead entries
TYPES = ("string", "list", "hash", "set", "zset", "stream")


class Keys:
    """The key names keys.c builds (keys.h) for one prefix and worker."""

    def __init__(self, prefix=P, wid=WID):
        self.prefix, self.wid = prefix, wid
        for name in ("queue", "workers", "dead", "stats", "backlog", "retry", "parked", "batch",
                     "seen", "endpoint", "endpoints", "events", "throttled"):
            setattr(self, name, "%s:%s" % (prefix, name))
        self.gen = prefix + ":endpoints:gen"
        self.aside = prefix + ":dead:secrets"
        self.rate, self.throttled = prefix + ":rate", prefix + ":throttled"
        self.claim = "%s:claim:%s" % (prefix, wid)
        self.inflight = "%s:inflight:%s" % (prefix, wid)
        self.hb = "%s:hb:%s" % (prefix, wid)

    def parked_list(self, origin):
        return "%s:%s" % (self.parked, origin)

    def record_key(self, origin):
        """P:endpoint:<origin>: the origin's breaker record (endpoint.lua)."""
        return "%s:%s" % (self.endpoint, origin)

    def batch_key(self, b):
        return "%s:%s" % (self.batch, b)

    def calls_key(self, b):
        return "%s:%s:calls" % (self.batch, b)

    def seen_key(self, key):
        return "%s:%s" % (self.seen, key)

    def rate_key(self, origin):
        return "%s:%s" % (self.rate, origin)


K = Keys()


def flat(pairs):
    return [x for p in pairs for x in p]


class Scripts:
    """The fourteen scripts loaded from the build, each called with the KEYS and
    fixed ARGV queue.c gives it, then the caller's variable tail. A call
    returns the reply, or the redis.ResponseError that was the error reply."""

    NAMES = ("fetch", "record", "accept", "promote", "release", "heartbeat", "reclaim",
             "dlq_move", "dlq_purge_all", "backlog", "health", "endpoints", "endpoint_set",
             "endpoint_counts", "throttle")

    def __init__(self, r):
        self.r = r
        self.text = {}
        for n in self.NAMES:
            with open(os.path.join(LUA_DIR, n + ".lua"), "rb") as f:
                self.text[n] = f.read()

    def eval(self, name, keys, args):
        try:
            return self.r.execute_command("EVAL", self.text[name], len(keys), *keys, *args)
        except redis.ResponseError as e:
            return e

    def fetch(self, base, max, pulls=(), k=K, probe_ms=30000, tail=None):
        return self.eval("fetch", [k.hb, k.queue, k.inflight, k.parked, k.stats, k.backlog,
                                   k.endpoints, k.gen],
                         [base, max, k.endpoint, probe_ms] +
                         (flat(pulls) if tail is None else tail))

    def record(self, groups, dead_max=100000, k=K, wid=None, tail=None):
        head = [dead_max, k.wid if wid is None else wid, k.batch, k.seen]
        return self.eval("record", [k.inflight, k.retry, k.dead, k.stats, k.aside, k.parked,
                                    k.queue], head + (flat(groups) if tail is None else tail))

    def accept(self, pairs, window=86400000, k=K, wid=None):
        return self.eval("accept", [k.inflight, k.stats],
                         [k.seen, k.wid if wid is None else wid, window] + flat(pairs))

    def promote(self, limit, k=K):
        return self.eval("promote", [k.retry, k.queue, k.stats, k.backlog], [limit])

    def release(self, lo, hi, k=K):
        return self.eval("release", [k.inflight, k.queue, k.stats, k.backlog], [lo, hi])

    def heartbeat(self, ttl=30000, info='{"pid":4242,"started":1700000000000}', now=None,
                  k=K, wid=None):
        return self.eval("heartbeat", [k.hb, k.workers],
                         [k.wid if wid is None else wid, ttl, info,
                          ms() if now is None else now])

    def reclaim(self, wid, mode="crashed", poison_after=3, dead_max=100000, now=NOW, prefix=P):
        return self.eval("reclaim", [], [prefix, wid, mode, poison_after, dead_max, now])

    def dlq_move(self, counter, triples, k=K, tail=None):
        return self.eval("dlq_move", [k.dead, k.queue, k.aside, k.stats],
                         [counter] + (flat(triples) if tail is None else tail))

    def dlq_purge_all(self, k=K):
        return self.eval("dlq_purge_all", [k.dead, k.aside, k.stats], [])

    def backlog(self, k=K):
        return self.eval("backlog", [k.queue, k.backlog, k.retry], [])

    def health(self, groups, k=K, ops_url="", tail=None, **settings):
        """HEALTH as queue_health sends it: BREAKER's settings, each one
        overridden by keyword, then groups (see group())."""
        s = dict(BREAKER, **settings)
        return self.eval("health", [k.endpoints, k.gen, k.events, k.queue, k.stats, k.parked],
                         [k.endpoint] + [s[n] for n in BREAKER] + [ops_url] +
                         (flat(groups) if tail is None else tail))

    def endpoints(self, k=K):
        return self.eval("endpoints", [k.endpoints, k.gen], [])

    def endpoint_set(self, action, origin, events_max=10000, ops_url="", window=300000, k=K,
                     origin_json=None, tail=None):
        head = [k.endpoint, action, origin,
                json.dumps(origin) if origin_json is None else origin_json, events_max,
                ops_url, window]
        return self.eval("endpoint_set", [k.endpoints, k.gen, k.events, k.queue, k.stats,
                                          k.parked], head if tail is None else tail)

    def endpoint_counts(self, k=K):
        return self.eval("endpoint_counts", [k.endpoints, k.throttled, k.parked], [])

    def throttle(self, triples, k=K, tail=None):
        return self.eval("throttle", [k.throttled], [k.rate] + (flat(triples) if tail is None
                                                                 else tail))


# HEALTH's settings in ARGV order (queue_health), at config.c's defaults.
BREAKER = collections.OrderedDict([
    ("breaker", 1), ("window", 300000), ("min", 10), ("threshold", 70), ("cooldown", 30000),
    ("cooldown_max", 600000), ("disable_after", 5 * 86400000), ("events_max", 10000)])


def group(origin, ok=0, failed=0, probe="0"):
    """A HEALTH group: origin, the origin as a JSON string, answers that
    were no failure, failures, probe ('0' none, '1' succeeded, '2' failed)."""
    return (origin, json.dumps(origin), str(ok), str(failed), probe)


R = None    # the redis-server of this module (setUpModule)
S = None    # Scripts on it
PROCS = None


def setUpModule():
    global R, S, PROCS
    PROCS = Procs()
    _, R = PROCS.redis()
    S = Scripts(R)


def tearDownModule():
    PROCS.close()


# ---- Redis state: snapshots, jobs, counters --------------------------------

TTL_SLACK = 5000    # ms a key's PTTL may run down between two snapshots


def snapshot():
    """The whole keyspace: {key: (type, full value, PTTL)}."""
    keys = sorted(R.scan_iter(count=1000))
    pipe = R.pipeline(transaction=False)
    for k in keys:
        pipe.type(k)
        pipe.pttl(k)
    meta = pipe.execute()
    read = {"string": lambda k: pipe.get(k), "list": lambda k: pipe.lrange(k, 0, -1),
            "hash": lambda k: pipe.hgetall(k), "set": lambda k: pipe.smembers(k),
            "zset": lambda k: pipe.zrange(k, 0, -1, withscores=True),
            "stream": lambda k: pipe.xrange(k)}
    kept = []
    for k, t in zip(keys, meta[0::2]):
        t = t.decode()
        if t in read:               # 'none': expired since the SCAN
            read[t](k)
            kept.append((k, t))
    ttls = dict(zip(keys, meta[1::2]))
    return {k: (t, v, ttls[k]) for (k, t), v in zip(kept, pipe.execute())}


def short(v, n=120):
    s = repr(v)
    return s if len(s) <= n else s[:n] + "... (%d chars)" % len(s)


def diff(before, after):
    """What differs between two snapshots, one line per key."""
    out = []
    for k in sorted(set(before) | set(after)):
        b, a = before.get(k), after.get(k)
        name = k.decode(errors="replace")
        if b is None:
            out.append("%s appeared: %s %s" % (name, a[0], short(a[1])))
        elif a is None:
            out.append("%s vanished (was %s %s)" % (name, b[0], short(b[1])))
        elif b[:2] != a[:2]:
            out.append("%s changed: %s %s -> %s %s" % (name, b[0], short(b[1]), a[0], short(a[1])))
        elif (b[2] < 0) != (a[2] < 0) or not -250 <= b[2] - a[2] <= TTL_SLACK:
            out.append("%s PTTL changed: %d -> %d" % (name, b[2], a[2]))
    return out


def clobber(key, t):
    """Make key hold a value of type t (whatever it held before is gone)."""
    R.delete(key)
    {"string": lambda: R.set(key, "clobbered"), "list": lambda: R.rpush(key, "clobbered"),
     "hash": lambda: R.hset(key, "clobbered", "1"), "set": lambda: R.sadd(key, "clobbered"),
     "zset": lambda: R.zadd(key, {"clobbered": 1}),
     "stream": lambda: R.xadd(key, {"clobbered": "1"})}[t]()


def unmark(j):
    """Job bytes without hookd's marks (marks.lua): (body, accepted, crashes)."""
    accepted = j.startswith(ACCEPTED)
    if accepted:
        j = j[len(ACCEPTED):]
    m = re.match(re.escape(CRASHED) + rb"(\d+):", j)
    if m:
        return j[m.end():], accepted, int(m.group(1))
    return j, accepted, 0


def typed_keys(pattern, t):
    pipe = R.pipeline(transaction=False)
    keys = list(R.scan_iter(match=pattern, count=1000))
    for k in keys:
        pipe.type(k)
    return [k for k, kt in zip(keys, pipe.execute()) if kt.decode() == t]


def jobs(k=K):
    """The multiset of jobs (marks stripped) in every place a job can be:
    P:queue, every P:claim:<wid>, P:inflight:<wid>, P:parked:<origin>,
    P:retry, and P:dead. A dead entry counts as itself, except one whose job
    RECLAIM kept aside (raw_aside), which counts as that job's bytes: that
    move keeps the job. Keys of the wrong type are no place for a job."""
    lists = typed_keys(k.queue, "list") + typed_keys(k.prefix + ":claim:*", "list") + \
        typed_keys(k.parked + ":*", "list")
    hashes = typed_keys(k.prefix + ":inflight:*", "hash")
    pipe = R.pipeline(transaction=False)
    for key in lists:
        pipe.lrange(key, 0, -1)
    for key in hashes:
        pipe.hvals(key)
    got = pipe.execute()
    c = collections.Counter(unmark(j)[0] for js in got for j in js)
    if typed_keys(k.retry, "zset"):
        c.update(R.zrange(k.retry, 0, -1))
    if typed_keys(k.dead, "list"):
        aside = R.hgetall(k.aside) if typed_keys(k.aside, "hash") else {}
        for e in R.lrange(k.dead, 0, -1):
            c[kept_aside(e, aside) or e] += 1
    return c


def kept_aside(entry, aside):
    """The job bytes RECLAIM kept aside for a worker_crashed entry, or None."""
    try:
        d = json.loads(entry)
    except ValueError:
        return None
    if not isinstance(d, dict) or not d.get("raw_aside"):
        return None
    v = aside.get(d.get("dead_id", "").encode())
    if v is None or not v.startswith(b"\xc1"):
        return None
    return msgpack.unpackb(v[1:], raw=True)[b"raw"]


def stats(k=K):
    return {f.decode(): int(v) for f, v in R.hgetall(k.stats).items()}


def ms():
    return int(time.time() * 1000)


def expire(key):
    """key expires now, as a heartbeat key does heartbeat_ttl after the last
    HEARTBEAT (Redis deletes it when next touched)."""
    R.pexpire(key, 1)
    deadline = time.monotonic() + 5
    while R.exists(key):
        if time.monotonic() > deadline:
            raise AssertionError("%s did not expire" % key)
        time.sleep(0.002)


def lpush_many(key, items, chunk=1000):
    """LPUSH items in order (the first ends rightmost: oldest), pipelined."""
    pipe = R.pipeline(transaction=False)
    for i in range(0, len(items), chunk):
        pipe.lpush(key, *items[i:i + chunk])
    pipe.execute()


def hset_many(key, mapping, chunk=1000):
    items = list(mapping.items())
    pipe = R.pipeline(transaction=False)
    for i in range(0, len(items), chunk):
        pipe.hset(key, mapping=dict(items[i:i + chunk]))
    pipe.execute()


def job(n, secret=None, url="https://r.example:443/hook"):
    """A producer's JSON job."""
    j = {"id": "job-%s" % n, "url": url, "payload": {"n": n}}
    if secret:
        j["secret"] = secret
    return json.dumps(j, separators=(",", ":")).encode()


def small(n):
    return b'{"url":"http://r/","payload":%d}' % n


def envelope(n):
    return msgpack.packb({"_hookd": 1, "job": job(n), "id": "job-%s" % n, "attempts": 1,
                          "token": "%s:%s" % (WID, n)})


def entry(n, wid=WID):
    """A dead entry as hookd writes it (starts with its dead_id, dead.lua)."""
    return ('{"dead_id":"%s:%s","id":"job-%s","reason":"http_500"}' % (wid, n, n)).encode()


O1, O2 = "https://o1.example:443", "https://o2.example:443"


# ---- Typed-job maps as event_encode() (event.c) packs them -----------------

def ev_create(b, total=3, eid=None, win=0, ttl=600000, **extra):
    m = {"t": "batch.create", "b": b, "now": NOW, "win": win, "ttl": ttl, "agent": "ag",
         "user": "us", "total": total, "created": NOW,
         "jb": '"batchId":"%s","agentId":"ag"' % b, "ju": '"userId":"us"'}
    if eid:
        m["eid"] = eid
    m.update(extra)
    return msgpack.packb(m)


def ev_call(b, call, eid=None, win=0, **extra):
    m = {"t": "call.completed", "b": b, "now": NOW, "win": win, "ttl": 600000, "call": call,
         "ok": 1, "body": '{"success":true}', "fb": "D", "delay": 0}
    if eid:
        m["eid"] = eid
    m.update(extra)
    return msgpack.packb(m)


def batch(b="B", total=100000):
    """A registered batch whose calls produce onCallComplete webhooks."""
    key = K.batch_key(b)
    R.hset(key, mapping={"batchId": b, "agentId": "ag", "userId": "us", "total": total,
                         "processed": 0, "succeeded": 0, "failed": 0, "createdAt": NOW,
                         "jb": '"batchId":"%s","agentId":"ag"' % b, "ju": '"userId":"us"',
                         "on_call": "https://cb.example:443/call"})
    R.pexpire(key, 600000)


# ---- The test case all script tests share -----------------------------------

class ScriptCase(unittest.TestCase):
    maxDiff = 4000

    def setUp(self):
        R.config_set("maxmemory", 0)
        R.flushall()

    def assert_unchanged(self, before, why="the call changed Redis"):
        d = diff(before, snapshot())
        if d:
            self.fail("%s:\n  %s" % (why, "\n  ".join(d[:25])))

    def assert_refused(self, reply, *words):
        """An error reply from the script itself ('hookd: ...') with words in it."""
        self.assertIsInstance(reply, redis.ResponseError,
                              "expected an error reply, got %s" % short(reply, 400))
        msg = str(reply)
        self.assertTrue(msg.startswith("hookd: "), "not the script's own refusal: " + msg)
        for w in words:
            self.assertIn(w, msg)

    def assert_refused_unchanged(self, call, *words):
        before = snapshot()
        self.assert_refused(call(), *words)
        self.assert_unchanged(before, "a refused call changed Redis")

    def assert_moved(self, before, gone=(), new=(), why=""):
        """Conservation: the jobs now in all places are exactly those before,
        less gone (delivered, applied, dead-lettered by RECORD, trimmed), plus
        new (retry envelopes, dead entries, webhooks generated)."""
        expected = collections.Counter(before)
        expected.subtract(collections.Counter(gone))
        self.assertFalse([j for j, n in expected.items() if n < 0],
                         "test bug: gone holds jobs that were not there")
        expected.update(collections.Counter(new))
        expected = +expected
        after = jobs()
        if after != expected:
            missing, extra = expected - after, after - expected
            self.fail("%sjobs not conserved: %d vanished %s, %d appeared %s" % (
                why + ": " if why else "", sum(missing.values()), short(list(missing)[:3], 400),
                sum(extra.values()), short(list(extra)[:3], 400)))

    def left_behind(self, before, jobs0):
        """What a failed call left changed: keys, and jobs gone from every
        place (for the failure messages of contract violations)."""
        lost = list((jobs0 - jobs()).elements())
        gone = "; jobs gone from every place, no counter added: %s" % short(lost, 300)
        return "changes %s%s" % (diff(before, snapshot())[:5], gone if lost else "")

    def assert_counted(self, before, **delta):
        """P:stats is before plus delta, every other counter unchanged."""
        want = dict(before)
        for f, n in delta.items():
            if n:
                want[f] = want.get(f, 0) + n
        self.assertEqual(stats(), want)

    def check_wrong_types(self, keys, world, call):
        """For each (key, the type it must hold) and every other type: world()
        set up, the key clobbered, call() refused naming the key, Redis
        unchanged."""
        for key, want in keys:
            for t in TYPES:
                if t == want:
                    continue
                with self.subTest(key=key, holds=t):
                    R.flushall()
                    world()
                    clobber(key, t)
                    self.assert_refused_unchanged(
                        call, "key %s holds a %s, not a %s" % (key, t, want))


# ---- FETCH --------------------------------------------------------------------

def register(k=K):
    """The worker registers as worker.c does before its first FETCH (and
    again after FETCH answered QUEUE_NOT_REGISTERED): HEARTBEAT, which sets
    P:hb:<wid> and adds the worker to P:workers."""
    if S.heartbeat(k=k) != 1:
        raise AssertionError("HEARTBEAT refused")


class Fetch(ScriptCase):
    def setUp(self):
        super().setUp()
        register()

    def world(self):
        """The worker registered; five queued jobs, three parked for each of
        two origins, one already in flight, a counter, and a P:claim:<wid>
        list as an earlier version's BLMOVE left it (FETCH no longer reads
        it: RECLAIM empties it)."""
        register()
        lpush_many(K.queue, [job(i) for i in range(1, 6)])
        R.rpush(K.claim, job("claimed"))
        for o in (O1, O2):
            lpush_many(K.parked_list(o), [job("%s-%d" % (o[8:10], i)) for i in range(1, 4)])
        R.zadd(K.parked, {O1: 1, O2: 2})
        R.hset(K.inflight, "1", job("held"))
        R.hset(K.stats, "delivered", 7)

    def test_wrong_type_keys(self):
        """Each of FETCH's eight KEYS (P:hb:<wid> first) holding each wrong
        type: refused naming the key, Redis unchanged (nothing popped,
        nothing filed). A heartbeat key of another type is no registration:
        refused like any wrong-typed key, not taken for 'registered' nor for
        'not registered'."""
        self.check_wrong_types(
            [(K.hb, "string"), (K.queue, "list"), (K.inflight, "hash"), (K.parked, "zset"),
             (K.stats, "hash"), (K.backlog, "hash"), (K.endpoints, "hash"), (K.gen, "string")],
            self.world, lambda: S.fetch(10, 8, [(O1, 2)]))

    def test_wrong_type_parked_list(self):
        """A requested P:parked:<origin> holding another type: that origin is
        in the refused list with the reason, its key untouched and re-scored;
        everything else is fetched whole (the other origin's parked jobs, then
        the queue), nothing lost or doubled; a P:claim:<wid> left by an
        earlier version is not read."""
        bad = K.parked_list(O2)
        for t in TYPES:
            if t == "list":
                continue
            with self.subTest(holds=t):
                R.flushall()
                self.world()
                clobber(bad, t)
                before, jobs0, stats0, t0 = snapshot(), jobs(), stats(), ms()
                out, origins, refused, gen, probes = S.fetch(10, 8, [(O2, 2), (O1, 2)])
                self.assertEqual((gen, probes), (0, []))
                want = [job("o1-1"), job("o1-2")] + [job(i) for i in range(1, 6)]
                self.assertEqual(out, want)
                self.assertEqual(refused[0], O2.encode())
                self.assertIn("key %s holds a %s, not a list" % (bad, t), refused[1].decode())
                after = snapshot()
                self.assertEqual(after[bad.encode()][:2], before[bad.encode()][:2])
                self.assertEqual(after[K.claim.encode()][:2], before[K.claim.encode()][:2])
                self.assertEqual(R.exists(K.queue), 0)
                self.assertGreaterEqual(R.zscore(K.parked, O2), t0, "refused origin re-scored")
                self.assertGreaterEqual(R.zscore(K.parked, O1), t0, "served origin re-scored")
                self.assertEqual(origins, [O1.encode(), O2.encode()])
                inflight = R.hgetall(K.inflight)
                self.assertEqual(inflight, {b"1": job("held"), **{
                    str(10 + i).encode(): j for i, j in enumerate(want, 1)}})
                self.assert_moved(jobs0)
                self.assert_counted(stats0, unparked=2)

    def test_max_at_its_limits(self):
        """max at 0 (nothing moves), 1 (the oldest job), QUEUE_FETCH_MAX (that
        many, filed base+1.. in age order) and one past it (refused, Redis
        unchanged), with QUEUE_FETCH_MAX + 5 jobs queued."""
        n = FETCH_MAX + 5
        lpush_many(K.queue, [small(i) for i in range(n)])
        self.assert_refused_unchanged(lambda: S.fetch(0, FETCH_MAX + 1), "FETCH")
        for bad in ("-1", "1.5", "x", ""):
            self.assert_refused_unchanged(lambda: S.fetch(0, bad), "FETCH")
        before = snapshot()
        self.assertEqual(S.fetch(0, 0), [[], [], [], 0, []])
        self.assert_unchanged(before, "FETCH max 0 changed Redis")

        jobs0 = jobs()
        self.assertEqual(S.fetch(0, 1)[0], [small(0)])
        self.assertEqual(R.hgetall(K.inflight), {b"1": small(0)})
        out = S.fetch(1, FETCH_MAX)[0]
        self.assertEqual(out, [small(i) for i in range(1, FETCH_MAX + 1)])
        inflight = R.hgetall(K.inflight)
        self.assertEqual(len(inflight), FETCH_MAX + 1)
        self.assertEqual(inflight[str(FETCH_MAX + 1).encode()], small(FETCH_MAX))
        self.assertEqual(R.lrange(K.queue, 0, -1),
                         [small(i) for i in range(n - 1, FETCH_MAX, -1)])
        self.assert_moved(jobs0)
        self.assertEqual(stats(), {})

    def test_base_at_its_limits(self):
        """base 0 and 10^15 (seqs stay exact integers) are taken; negative,
        past 10^15 or not a number is refused, Redis unchanged."""
        lpush_many(K.queue, [small(i) for i in range(4)])
        for bad in ("-1", "1000000000000001", "1e3", "x"):
            self.assert_refused_unchanged(lambda: S.fetch(bad, 1), "FETCH")
        S.fetch(0, 1)
        S.fetch(10 ** 15, 2)
        self.assertEqual(R.hgetall(K.inflight), {
            b"1": small(0), b"1000000000000001": small(1), b"1000000000000002": small(2)})

    def test_pulls_at_their_limits(self):
        """Pull pairs at 0, 1, QUEUE_PULL_MAX and one past it (refused); a
        count at 1 and QUEUE_FETCH_MAX (taken, bounded by max), 0 and one past
        (refused); an origin of 1 and ORIGIN_MAX bytes (POLICY_ORIGIN_MAX - 1)
        and one past, or a dangling origin (refused). Origins emptied leave
        P:parked; every pulled job is counted in unparked."""
        origins = ["https://o%02d.example:443" % i for i in range(PULL_MAX + 1)]
        for i, o in enumerate(origins):
            lpush_many(K.parked_list(o), [job("%d-a" % i), job("%d-b" % i)])
            R.zadd(K.parked, {o: i})
        lpush_many(K.queue, [small(i) for i in range(100)])
        long_origin = "h" * ORIGIN_MAX
        R.lpush(K.parked_list(long_origin), job("long"))
        R.zadd(K.parked, {long_origin: 1000})
        jobs0, stats0 = jobs(), stats()

        for pulls, what in (([(o, 1) for o in origins], "one pair too many"),
                            ([(origins[0], 0)], "count 0"),
                            ([(origins[0], FETCH_MAX + 1)], "count past QUEUE_FETCH_MAX"),
                            ([("", 1)], "empty origin"),
                            ([(long_origin + "h", 1)], "origin past ORIGIN_MAX"),
                            ([(origins[0], 1), (origins[1],)], "dangling origin")):
            with self.subTest(what):
                self.assert_refused_unchanged(lambda: S.fetch(0, 10, pulls), "FETCH")

        self.assertEqual(S.fetch(0, 3, [(origins[0], 1)])[0],
                         [job("0-a"), small(0), small(1)])
        self.assertEqual(S.fetch(3, 1, [(origins[0], FETCH_MAX)])[0], [job("0-b")])
        self.assertEqual(S.fetch(4, 1, [(long_origin, 1)])[0], [job("long")])
        out, left, refused, _, _ = S.fetch(5, 2 * PULL_MAX + 3,
                                     [(o, 2) for o in origins[1:PULL_MAX + 1]])
        self.assertEqual(out, flat([(job("%d-a" % i), job("%d-b" % i))
                                    for i in range(1, PULL_MAX + 1)]) +
                         [small(2), small(3), small(4)])
        self.assertEqual((left, refused), ([], []))
        self.assertEqual(R.zcard(K.parked), 0)
        self.assertEqual(len(R.hgetall(K.inflight)), 2 * PULL_MAX + 3 + 5)
        self.assert_moved(jobs0)
        self.assert_counted(stats0, unparked=2 * PULL_MAX + 3)

    def test_reply_lists_at_most_pull_max_origins(self):
        """The reply names at most QUEUE_PULL_MAX parked origins, least
        recently served first."""
        for i in range(PULL_MAX + 5):
            o = "https://p%02d.example:443" % i
            R.lpush(K.parked_list(o), job(i))
            R.zadd(K.parked, {o: 1000 - i})
        left = S.fetch(0, 0)[1]
        self.assertEqual(left, [("https://p%02d.example:443" % i).encode()
                                for i in range(PULL_MAX + 4, 4, -1)])

    def test_bytes_at_their_limit(self):
        """Jobs from the queue come to at most QUEUE_FETCH_BYTES_MAX bytes in
        all (fetch_batch jobs of the largest max_job_bytes would be a reply of
        gigabytes), and at least one: the others stay at the front of the
        queue, in order. (Job bodies are compared by length and head: they
        are tens of MiB.)"""
        half = FETCH_BYTES_MAX // 2
        jobs = [b'{"id":"big%d","url":"http://h/","body":"' % i +
                b"x" * (half - 60) + b'"}' for i in range(3)]
        R.delete(K.queue)
        for j in jobs:
            R.lpush(K.queue, j)             # big0 is the oldest (rightmost)
        heads = lambda js: [(len(j), j[:12]) for j in js]
        self.assertEqual(heads(S.fetch(0, 10)[0]), heads(jobs[:2]))
        self.assertEqual((R.llen(K.queue), R.lindex(K.queue, 0)[:12]), (1, jobs[2][:12]))
        self.assertEqual((R.hlen(K.inflight), R.hstrlen(K.inflight, "1"),
                          R.hstrlen(K.inflight, "2")), (2, len(jobs[0]), len(jobs[1])))
        self.assertEqual(heads(S.fetch(10, 10)[0]), heads(jobs[2:]))
        self.assertEqual(R.llen(K.queue), 0)

    def test_sent_twice_with_two_bases(self):
        """A FETCH whose reply was lost and is sent again (with the next seq
        range, as the worker reserves one per call) is two fetches: the ten
        oldest jobs in flight under seqs 1..10, each once, none lost."""
        lpush_many(K.queue, [small(i) for i in range(12)])
        jobs0 = jobs()
        first, second = S.fetch(0, 5)[0], S.fetch(5, 5)[0]
        self.assertEqual(first + second, [small(i) for i in range(10)])
        self.assertEqual(R.hgetall(K.inflight),
                         {str(i + 1).encode(): small(i) for i in range(10)})
        self.assertEqual(R.lrange(K.queue, 0, -1), [small(11), small(10)])
        self.assert_moved(jobs0)

    def refused_pull(self, spoil, why):
        """O2's breaker record spoiled by spoil(): O2 in the refused list with
        why, its parked list untouched and re-scored; O1's parked jobs and the
        queue fetched whole."""
        R.flushall()
        self.world()
        spoil()
        jobs0, t0 = jobs(), ms()
        out, origins, refused, gen, probes = S.fetch(10, 8, [(O2, 2), (O1, 2)])
        self.assertEqual(out, [job("o1-1"), job("o1-2")] + [job(i) for i in range(1, 6)])
        self.assertEqual((refused[0], gen, probes), (O2.encode(), 0, []))
        self.assertIn(why, refused[1].decode())
        self.assertEqual(R.llen(K.parked_list(O2)), 3)
        self.assertGreaterEqual(R.zscore(K.parked, O2), t0)
        self.assert_moved(jobs0)

    def test_wrong_type_breaker_record(self):
        """A pulled origin's P:endpoint:<origin> holding another type, a
        numeric field holding garbage, or an unknown state: that origin
        refused with the reason, the rest fetched."""
        key = K.record_key(O2)
        for t in TYPES:
            if t != "hash":
                with self.subTest(holds=t):
                    self.refused_pull(lambda: clobber(key, t),
                                      "key %s holds a %s, not a hash" % (key, t))
        for f in EP_NUM:
            for bad in ("x", "-1", "1" * 17):
                with self.subTest(field=f, holds=bad):
                    self.refused_pull(lambda: R.hset(key, f, bad), "field %s of %s" % (f, key))
        with self.subTest(field="state"):
            self.refused_pull(lambda: R.hset(key, "state", "ajar"), "holds state ajar")

    def test_probe_ms_at_its_limits(self):
        """probe_ms 1 and 86400000 taken; 0, one past, not a number refused;
        the endpoint prefix empty or past 256 bytes refused."""
        self.world()
        for bad in (0, 86400001, "x", ""):
            self.assert_refused_unchanged(lambda: S.fetch(10, 1, probe_ms=bad), "FETCH")
        for prefix in ("", "p" * 257):
            k = Keys()
            k.endpoint = prefix
            self.assert_refused_unchanged(lambda: S.fetch(10, 1, k=k), "FETCH")
        self.assertEqual(len(S.fetch(10, 1, probe_ms=1)[0]), 1)
        self.assertEqual(len(S.fetch(11, 1, probe_ms=86400000)[0]), 1)

    def test_open_origin_pulled_twice(self):
        """An open origin named twice in one FETCH's pulls gives one probe,
        not two; a closed one named twice gives both counts, in order."""
        self.world()
        put_record(O1, due=0)
        jobs0 = jobs()
        out, _, _, _, probes = S.fetch(10, 8, [(O1, 2), (O2, 1), (O1, 2), (O2, 1)])
        self.assertEqual(probes, [O1.encode()])
        self.assertEqual(out[:4], [job("o1-1"), job("o2-1"), job("o2-2"), job(1)])
        self.assertEqual(R.llen(K.parked_list(O1)), 2)
        self.assert_moved(jobs0)

    def test_disabled_origin_gives_its_jobs(self):
        """A disabled origin's parked jobs are fetched (the worker dead-letters
        them as endpoint_disabled), no probe."""
        self.world()
        put_record(O1, "disabled", due=0)
        out, _, _, _, probes = S.fetch(10, 2, [(O1, 2)])
        self.assertEqual((out, probes), ([job("o1-1"), job("o1-2")], []))
        self.assertEqual(record(O1)["state"], "disabled")

    def assert_not_registered(self, call):
        """call() refused with exactly QUEUE_NOT_REGISTERED (worker.c compares
        the whole reply with it), Redis unchanged."""
        before = snapshot()
        reply = call()
        self.assertIsInstance(reply, redis.ResponseError,
                              "expected %r, got %s" % (NOT_REGISTERED, short(reply, 400)))
        self.assertEqual(str(reply), NOT_REGISTERED)
        self.assert_unchanged(before, "a FETCH refused as not registered changed Redis")

    def test_not_registered(self):
        """A worker whose P:hb:<wid> does not exist, because it never
        registered or because its heartbeat expired (still in P:workers: no
        reaper has come yet), is refused with exactly QUEUE_NOT_REGISTERED,
        Redis unchanged (nothing popped from the queue or a parked list,
        nothing filed, no origin re-scored, no counter), whatever it asks:
        max 0, 1 or QUEUE_FETCH_MAX, with or without parked pulls."""
        calls = {"max 8, a pull": lambda: S.fetch(10, 8, [(O1, 2)]),
                 "max 0": lambda: S.fetch(10, 0),
                 "max 1, two pulls": lambda: S.fetch(10, 1, [(O1, 1), (O2, 3)]),
                 "QUEUE_FETCH_MAX": lambda: S.fetch(10, FETCH_MAX)}
        for how in ("never registered", "heartbeat expired"):
            for what, call in calls.items():
                with self.subTest(how=how, call=what):
                    R.flushall()
                    self.world()
                    if how == "never registered":
                        R.delete(K.hb, K.workers)
                    else:
                        expire(K.hb)
                        self.assertTrue(R.hexists(K.workers, WID))
                    self.assert_not_registered(call)

    def test_registers_then_fetches(self):
        """What worker.c does on QUEUE_NOT_REGISTERED: HEARTBEAT, then FETCH
        again. The same FETCH that was refused now takes the parked jobs asked
        for, then the queue, filed from base+1, counted."""
        self.world()
        expire(K.hb)
        fetch = lambda: S.fetch(10, 4, [(O1, 2)])
        self.assert_not_registered(fetch)
        jobs0, stats0 = jobs(), stats()
        register()
        self.assertTrue(R.exists(K.hb))
        out = fetch()[0]
        want = [job("o1-1"), job("o1-2"), job(1), job(2)]
        self.assertEqual(out, want)
        self.assertEqual(R.hgetall(K.inflight), {b"1": job("held"), **{
            str(10 + i).encode(): j for i, j in enumerate(want, 1)}})
        self.assert_moved(jobs0)
        self.assert_counted(stats0, unparked=2)

    def test_refused_after_reclaim(self):
        """Once RECLAIM has requeued a worker's jobs and forgotten it (its
        heartbeat key deleted, out of P:workers), its FETCH is refused, Redis
        unchanged, until it registers again: after its own clean stop, its
        supervisor's RECLAIM crashed, or the reaper (its heartbeat expired:
        cut off, not dead). Registered again it fetches; lost after that with
        its host, the reaper finds it and requeues what it fetched: no job is
        left in an in-flight hash no reaper looks at (the model test's
        finding, fetch.lua)."""
        for who in ("clean", "crashed", "reaper"):
            with self.subTest(who):
                R.flushall()
                register()
                lpush_many(K.queue, [small(i) for i in range(10)])
                jobs0 = jobs()
                self.assertEqual(S.fetch(0, 3)[0], [small(0), small(1), small(2)])
                if who == "reaper":
                    expire(K.hb)
                    self.assertEqual(S.reclaim(""), [3, 0, []])
                else:
                    self.assertEqual(S.reclaim(WID, mode=who), [3, 0, []])
                self.assertEqual(R.exists(K.hb, K.inflight), 0)
                self.assertFalse(R.hexists(K.workers, WID))
                self.assert_not_registered(lambda: S.fetch(3, 5))
                self.assert_not_registered(lambda: S.fetch(8, 0))

                register()
                out = S.fetch(8, 2)[0]
                self.assertEqual([unmark(j)[0] for j in out], [small(0), small(1)])
                self.assertEqual(R.hlen(K.inflight), 2)
                expire(K.hb)                    # its host is lost
                self.assertEqual(S.reclaim(""), [2, 0, []])
                self.assertEqual(R.exists(K.hb, K.inflight), 0)
                self.assertEqual(R.hlen(K.workers), 0)
                self.assertEqual(R.llen(K.queue), 10)
                self.assert_moved(jobs0)


# ---- HEALTH, ENDPOINTS, and FETCH's probes -------------------------------------

EP_NUM = ("since", "due", "cooldown", "win_start", "cur_n", "cur_f", "prev_n", "prev_f",
          "failing_since", "attempts", "failures", "trips", "rate")
# HEALTH's settings and their ranges: config.c's table, which queue_health
# sends as they are (breaker a bool: 0 or 1).
SETTING_RANGE = {"breaker": (0, 1), "window": c_config_range("breaker_window"),
                 "min": c_config_range("breaker_min_requests"),
                 "threshold": c_config_range("breaker_failure_threshold"),
                 "cooldown": c_config_range("breaker_cooldown"),
                 "cooldown_max": c_config_range("breaker_cooldown_max"),
                 "disable_after": c_config_range("disable_after"),
                 "events_max": c_config_range("events_max")}
OPS_URL = "https://ops.example:443/hooks"
URL_MAX = 4096          # endpoint.lua's EP_URL_MAX (ops_webhook_url)
O3 = "http://o3.example:80"


def record(origin):
    """origin's breaker record as {field: str}."""
    return {f.decode(): v.decode() for f, v in R.hgetall(K.record_key(origin)).items()}


def put_record(origin, state="open", **fields):
    """A breaker record written as HEALTH would leave it, fields overridden."""
    now = ms()
    rec = {"state": state, "reason": "test", "since": now, "due": now + 30000,
           "cooldown": 30000, "win_start": now, "cur_n": 10, "cur_f": 10, "prev_n": 0,
           "prev_f": 0, "failing_since": now, "attempts": 10, "failures": 10, "trips": 1,
           "rate": 1000}
    rec.update(fields)
    R.hset(K.record_key(origin), mapping=rec)
    if state != "closed":
        R.hset(K.endpoints, origin, "%s %d %d" % (state, rec["since"], rec["due"]))


def events():
    """P:events as [{field: str}]."""
    return [{f.decode(): v.decode() for f, v in e.items()} for _, e in R.xrange(K.events)]


def ops_jobs():
    """The ops webhook jobs HEALTH pushed onto P:queue, as dicts, body parsed."""
    out = []
    for j in R.lrange(K.queue, 0, -1):
        try:
            m = msgpack.unpackb(j)
        except ValueError:
            continue
        if isinstance(m, dict) and str(m.get("id", "")).startswith("evt_"):
            m["body"] = json.loads(m["body"])
            out.append(m)
    return out


def line(reply, origin):
    """origin's line in a HEALTH reply (its origin, line pairs)."""
    pairs = reply[1]
    return dict(zip(pairs[0::2], pairs[1::2]))[origin.encode()].decode()


class Health(ScriptCase):
    def world(self):
        """O1 closed with some attempts, O2 open with parked jobs, O3 no
        record; an ops job already queued; counters."""
        S.health([group(O1, ok=3, failed=1)])
        put_record(O2)
        lpush_many(K.parked_list(O2), [job("p1"), job("p2")])
        R.zadd(K.parked, {O2: 5})
        R.lpush(K.queue, job("q"))
        R.hset(K.stats, "breaker_opened", 1)

    def call(self):
        return S.health([group(O1, failed=20), group(O2, ok=1, probe="1"), group(O3, failed=3)],
                        ops_url=OPS_URL)

    def test_wrong_type_keys(self):
        """Each of HEALTH's six KEYS holding each wrong type: refused naming
        the key, Redis unchanged (no record counted, no event)."""
        self.check_wrong_types(
            [(K.endpoints, "hash"), (K.gen, "string"), (K.events, "stream"), (K.queue, "list"),
             (K.stats, "hash"), (K.parked, "zset")], self.world, self.call)

    def test_gen_and_counters_not_numbers(self):
        """P:endpoints:gen, or a counter HEALTH increments, holding a
        non-integer: refused before any write, Redis unchanged."""
        for key, field, bad in ((K.gen, None, "x"), (K.gen, None, "-1"),
                                (K.gen, None, "1" * 17)) + tuple(
                (K.stats, f, "x") for f in ("breaker_opened", "breaker_closed",
                                            "endpoints_disabled", "endpoints_enabled")):
            with self.subTest(key=key, field=field, holds=bad):
                R.flushall()
                self.world()
                if field:
                    R.hset(key, field, bad)
                else:
                    R.set(key, bad)
                self.assert_refused_unchanged(self.call, "not a whole number")

    def refused_record(self, spoil, why):
        """The world with O2's record spoiled by spoil(): O2 in the refused
        list with why, its record untouched; O1 and O3 counted whole."""
        R.flushall()
        self.world()
        spoil()
        before = snapshot()
        reply = self.call()
        self.assertNotIsInstance(reply, redis.ResponseError, str(reply))
        self.assertEqual(reply[2][0::2], [O2.encode()])
        self.assertIn(why, reply[2][1].decode())
        self.assertEqual(reply[1][0::2], [O1.encode(), O3.encode()])
        key = K.record_key(O2).encode()
        after = snapshot()
        self.assertEqual(after.get(key, (None, None))[:2], before.get(key, (None, None))[:2])
        self.assertEqual(after[K.parked.encode()], before[K.parked.encode()], "O2 not re-scored")
        self.assertEqual(R.hget(K.endpoints, O2), before[K.endpoints.encode()][1][O2.encode()])
        self.assertEqual(record(O1)["state"], "open")
        self.assertEqual(record(O3)["attempts"], "3")
        self.assertEqual([e["origin"] for e in events()], [O1])

    def test_wrong_type_record(self):
        """P:endpoint:<origin> holding each wrong type: that origin refused
        with the reason, the others counted."""
        for t in TYPES:
            if t != "hash":
                with self.subTest(holds=t):
                    self.refused_record(lambda: clobber(K.record_key(O2), t),
                                        "key %s holds a %s, not a hash" % (K.record_key(O2), t))

    def test_record_fields_not_numbers(self):
        """Each numeric field of a record holding 'x', '-1', '1.5', '' or 17
        digits, or state holding an unknown word: that origin refused, its
        record unchanged; the others counted."""
        for f in EP_NUM:
            for bad in ("x", "-1", "1.5", "", "1" * 17):
                with self.subTest(field=f, holds=bad):
                    self.refused_record(lambda: R.hset(K.record_key(O2), f, bad),
                                        "field %s of %s" % (f, K.record_key(O2)))
        with self.subTest(field="state"):
            self.refused_record(lambda: R.hset(K.record_key(O2), "state", "ajar"),
                                "holds state ajar")

    def test_groups_at_their_limits(self):
        """0 groups (nothing written), 1, QUEUE_HEALTH_MAX (each origin
        counted, its line in the reply) and one past (refused); a dangling
        group, or a group with a bad field, refused, Redis unchanged."""
        self.world()
        before = snapshot()
        self.assertEqual(S.health([]), [0, [], []])
        self.assert_unchanged(before, "HEALTH of no group changed Redis")
        origins = ["https://h%03d.example:443" % i for i in range(HEALTH_MAX + 1)]
        self.assert_refused_unchanged(lambda: S.health([group(o, 1) for o in origins]),
                                      "HEALTH")
        long_origin = "h" * ORIGIN_MAX
        for groups, what in (
                ([group(O1, 1)][0][:4], "dangling group"),
                (group(O1, 1) + group(O3, 1)[:3], "dangling group after a whole one"),
                (("", '""', "1", "0", "0"), "empty origin"),
                ((long_origin + "h", json.dumps(long_origin + "h"), "1", "0", "0"),
                 "origin past ORIGIN_MAX"),
                ((O1, O1, "1", "0", "0"), "origin JSON not a string"),
                ((O1, json.dumps(O1), "-1", "0", "0"), "ok negative"),
                ((O1, json.dumps(O1), "1000000001", "0", "0"), "ok past 1e9"),
                ((O1, json.dumps(O1), "0", "x", "0"), "failed not a number"),
                ((O1, json.dumps(O1), "0", "1000000001", "0"), "failed past 1e9"),
                ((O1, json.dumps(O1), "1", "0", "3"), "probe 3"),
                ((O1, json.dumps(O1), "1", "0", ""), "probe empty")):
            with self.subTest(what):
                self.assert_refused_unchanged(lambda: S.health([], tail=list(groups)), "HEALTH")
        reply = S.health([group(long_origin, 0, 1000000000)])
        self.assertEqual(line(reply, long_origin), "open %s %s" % (
            record(long_origin)["since"], record(long_origin)["due"]))
        reply = S.health([group(origins[0], failed=1)])
        self.assertEqual(reply[1], [origins[0].encode(), b"closed 0 0"])
        reply = S.health([group(o, 1, 1) for o in origins[:HEALTH_MAX]])
        self.assertEqual(reply[1][0::2], [o.encode() for o in origins[:HEALTH_MAX]])
        self.assertEqual(record(origins[0])["attempts"], "3")
        self.assertEqual(record(origins[HEALTH_MAX - 1])["attempts"], "2")

    def test_settings_at_their_limits(self):
        """Each setting at its minimum and maximum (config.c's range) is
        taken; one below, one past, or not a number is refused, Redis
        unchanged; ops_url up to 4096 bytes."""
        self.world()
        for name, (lo, hi) in SETTING_RANGE.items():
            for bad in (lo - 1, hi + 1, "x", "1.5", ""):
                with self.subTest(name, value=bad):
                    self.assert_refused_unchanged(
                        lambda: S.health([group(O1, 1)], **{name: bad}), "HEALTH")
            for good in (lo, hi):
                with self.subTest(name, value=good):
                    reply = S.health([group(O1, 1)], **{name: good})
                    self.assertNotIsInstance(reply, redis.ResponseError, str(reply))
        self.assert_refused_unchanged(
            lambda: S.health([group(O1, 1)], ops_url="h" * (URL_MAX + 1)), "HEALTH")
        long_url = "https://ops.example:443/" + "x" * (URL_MAX - 24)
        self.assertEqual(len(long_url), URL_MAX)
        S.health([group(O3, failed=10)], ops_url=long_url)
        self.assertEqual([j["url"] for j in ops_jobs()], [long_url])

    def open(self, origin, **settings):
        """origin's breaker opened by HEALTH (min failures at once)."""
        n = settings.get("min", BREAKER["min"])
        reply = S.health([group(origin, failed=n)], **settings)
        self.assertTrue(line(reply, origin).startswith("open "), reply)
        return reply

    def test_opens_at_min_and_threshold(self):
        """closed -> open at exactly min attempts and threshold percent, not
        one attempt or one percent below: event, ops job (msgpack on P:queue:
        url, event, a body that is JSON naming the origin), P:endpoints line,
        gen, P:parked re-scored to due for an origin with parked jobs (and
        not added for one without), breaker_opened counted."""
        a, b, c, d, e = ("https://%s.example:443" % n for n in "abcde")
        R.lpush(K.parked_list(a), job("pa"))
        R.zadd(K.parked, {a: 1})
        t0 = ms()
        reply = S.health([group(a, 3, 7), group(b, 4, 6), group(c, failed=9),
                          group(d, 31, 69)], ops_url=OPS_URL)
        self.assertEqual(reply[1][1::2][1:], [b"closed 0 0"] * 3)
        self.assertEqual(reply[0], 1)
        self.assertEqual(R.get(K.gen), b"1")
        rec = record(a)
        since, due = int(rec["since"]), int(rec["due"])
        self.assertTrue(t0 <= since <= ms())
        self.assertEqual(due, since + BREAKER["cooldown"])
        self.assertEqual((rec["state"], rec["trips"], rec["rate"], rec["cooldown"]),
                         ("open", "1", "700", str(BREAKER["cooldown"])))
        self.assertEqual(line(reply, a), "open %d %d" % (since, due))
        self.assertEqual(R.hgetall(K.endpoints), {a.encode(): b"open %d %d" % (since, due)})
        self.assertEqual(R.zscore(K.parked, a), due)
        self.assertEqual(R.pttl(K.record_key(a)), -1, "an open record persists")
        self.assertGreater(R.pttl(K.record_key(b)), 0, "a closed record expires")
        ev = events()
        self.assertEqual(len(ev), 1)
        self.assertEqual((ev[0]["event"], ev[0]["origin"], ev[0]["failure_rate"], ev[0]["at"]),
                         ("endpoint.breaker_opened", a, "0.7", str(since)))
        self.assertIn("70% of 10 attempts", ev[0]["reason"])
        (oj,) = ops_jobs()
        self.assertEqual((oj["url"], oj["event"], oj["body"]["type"], oj["body"]["data"]),
                         (OPS_URL, "endpoint.breaker_opened", "endpoint.breaker_opened",
                          {"origin": a, "reason": ev[0]["reason"], "failure_rate": 0.7}))
        self.assertEqual(oj["body"]["timestamp"], since)
        self.assertEqual(oj["id"], "evt_" + R.xrange(K.events)[0][0].decode())
        self.assertEqual(stats(), {"breaker_opened": 1})
        # one more failure opens c (10 attempts); 70 % of 100 opens e.
        reply = S.health([group(c, failed=1), group(e, 30, 70)])
        self.assertEqual([l.split()[0] for l in reply[1][1::2]], [b"open", b"open"])
        self.assertEqual(R.zscore(K.parked, c), None)
        self.assertEqual(stats(), {"breaker_opened": 3})
        self.assertEqual((reply[0], len(events())), (3, 3))

    def test_no_event_without_ops_url_nor_breaker(self):
        """Without an ops URL the event is only in P:events; with the
        breaker off nothing opens."""
        self.open(O1)
        self.assertEqual((len(events()), ops_jobs()), (1, []))
        reply = S.health([group(O2, failed=100)], breaker=0)
        self.assertEqual(line(reply, O2), "closed 0 0")
        self.assertEqual(len(events()), 1)

    def test_sent_twice(self):
        """HEALTH resent (its reply lost) counts the attempts again, by
        design, but moves no state twice: one breaker_opened event, one
        trip, one P:endpoints change."""
        g = [group(O1, failed=10), group(O2, ok=5)]
        first = S.health(g, ops_url=OPS_URL)
        snap = record(O1)
        second = S.health(g, ops_url=OPS_URL)
        self.assertEqual(first[1], second[1])
        self.assertEqual((first[0], second[0]), (1, 1))
        rec = record(O1)
        self.assertEqual((rec["attempts"], rec["failures"], rec["cur_n"]), ("20", "20", "20"))
        self.assertEqual(record(O2)["attempts"], "10")
        self.assertEqual({f: rec[f] for f in ("state", "since", "due", "trips")},
                         {f: snap[f] for f in ("state", "since", "due", "trips")})
        self.assertEqual((len(events()), len(ops_jobs())), (1, 1))
        self.assertEqual(stats(), {"breaker_opened": 1})

    def test_one_origin_twice_in_a_call(self):
        """An origin named in two groups of one call is counted for both,
        and opens once."""
        reply = S.health([group(O1, failed=6), group(O1, failed=6)])
        self.assertNotIsInstance(reply, redis.ResponseError, str(reply))
        rec = record(O1)
        self.assertEqual((rec["attempts"], rec["state"], rec["trips"]), ("12", "open", "1"))
        self.assertEqual((len(events()), stats()), (1, {"breaker_opened": 1}))

    def test_probe_cycle(self):
        """open -> (FETCH before due: nothing, re-scored to due) -> due
        (written into the past) -> FETCH: one job, the probe, half_open with
        due now + probe_ms -> FETCH again: nothing -> probe failed: open,
        cooldown doubled, capped at cooldown_max, no second breaker_opened
        -> half_open again -> probe succeeded: closed, breaker_closed, the
        line gone from P:endpoints, parked jobs re-scored to now."""
        settings = {"cooldown": 30000, "cooldown_max": 100000}
        register()
        lpush_many(K.parked_list(O1), [job("p%d" % i) for i in range(5)])
        R.zadd(K.parked, {O1: 1})
        self.open(O1, **settings)
        due = int(record(O1)["due"])
        jobs0, gen = jobs(), int(R.get(K.gen))
        out, origins, refused, g, probes = S.fetch(0, 10, [(O1, 5)], probe_ms=7000)
        self.assertEqual((out, origins, refused, g, probes), ([], [O1.encode()], [], gen, []))
        self.assertEqual(R.zscore(K.parked, O1), due)
        self.assertEqual(record(O1)["state"], "open")

        base = 10
        for cooldown in (60000, 100000, 100000):
            R.hset(K.record_key(O1), "due", 0)
            t0 = ms()
            out, _, _, g, probes = S.fetch(base, 10, [(O1, 5)], probe_ms=7000)
            self.assertEqual((len(out), probes, g), (1, [O1.encode()], gen + 1))
            rec = record(O1)
            self.assertEqual(rec["state"], "half_open")
            self.assertTrue(t0 + 7000 <= int(rec["due"]) <= ms() + 7000)
            self.assertEqual(R.hget(K.endpoints, O1).decode(),
                             "half_open %s %s" % (rec["since"], rec["due"]))
            self.assertEqual(S.fetch(base + 1, 10, [(O1, 5)], probe_ms=7000)[::4], [[], []])
            base += 2
            reply = S.health([group(O1, probe="2")], **settings)
            rec = record(O1)
            self.assertEqual((rec["state"], rec["cooldown"]), ("open", str(cooldown)))
            self.assertTrue(t0 <= int(rec["due"]) - cooldown <= ms())
            self.assertEqual(line(reply, O1), "open %s %s" % (rec["since"], rec["due"]))
            self.assertEqual(R.zscore(K.parked, O1), int(rec["due"]))
            self.assertEqual(reply[0], gen + 2)
            gen += 2
        self.assertEqual(len(events()), 1, "a failed probe is no second breaker_opened")

        R.hset(K.record_key(O1), "due", 0)
        S.fetch(base, 10, [(O1, 5)])
        t0 = ms()
        reply = S.health([group(O1, probe="1")], **settings)
        self.assertEqual(line(reply, O1), "closed 0 0")
        self.assertFalse(R.hexists(K.endpoints, O1))
        self.assertGreaterEqual(R.zscore(K.parked, O1), t0)
        self.assertEqual([e["event"] for e in events()],
                         ["endpoint.breaker_opened", "endpoint.breaker_closed"])
        self.assertEqual(stats(), {"breaker_opened": 1, "breaker_closed": 1, "unparked": 4})
        self.assertGreater(R.pttl(K.record_key(O1)), 0)
        self.assert_moved(jobs0)
        # closed: the next FETCH takes the origin's parked jobs at its pace.
        self.assertEqual(len(S.fetch(40, 10, [(O1, 5)])[0]), 1)

    def test_overdue_probe_granted_again(self):
        """A half_open origin whose probe never reported (its worker killed)
        gives another once the probe is overdue, not before."""
        register()
        lpush_many(K.parked_list(O1), [job(i) for i in range(3)])
        R.zadd(K.parked, {O1: 1})
        put_record(O1, "half_open", due=ms() + 60000)
        self.assertEqual(S.fetch(0, 5, [(O1, 3)])[::4], [[], []])
        R.hset(K.record_key(O1), "due", 0)
        self.assertEqual(S.fetch(5, 5, [(O1, 3)])[::4], [[job(0)], [O1.encode()]])

    def test_breaker_off_success_closes(self):
        """With the breaker turned off, an answer that is no failure (or a
        probe that succeeded) closes an open or half_open record
        (breaker_closed); a failure does not."""
        for state in ("open", "half_open"):
            with self.subTest(state):
                R.flushall()
                put_record(O1, state)
                reply = S.health([group(O1, failed=3)], breaker=0)
                self.assertEqual(line(reply, O1).split()[0], state)
                reply = S.health([group(O1, ok=1)], breaker=0)
                self.assertEqual(line(reply, O1), "closed 0 0")
                self.assertFalse(R.hexists(K.endpoints, O1))
                self.assertEqual([e["event"] for e in events()], ["endpoint.breaker_closed"])
                self.assertEqual(stats(), {"breaker_closed": 1})
        with self.subTest("a probe succeeded, breaker turned off meanwhile"):
            # FETCH does not know the setting: it holds an open origin's
            # parked jobs back and grants probes until the record closes.
            R.flushall()
            put_record(O1, "half_open")
            reply = S.health([group(O1, probe="1")], breaker=0)
            self.assertEqual(line(reply, O1), "closed 0 0")

    def test_disable_after(self):
        """Failing since disable_after ago: disabled (event, line, counter,
        parked jobs re-scored to now); an answer that is no failure in the
        same group clears failing_since instead; disable_after 0 never."""
        day = 86400000
        for state in ("closed", "open", "half_open"):
            with self.subTest(state):
                R.flushall()
                for o in (O1, O2, O3):
                    put_record(o, state, failing_since=ms() - 5 * day, cur_n=0, cur_f=0)
                R.lpush(K.parked_list(O1), job(1))
                R.zadd(K.parked, {O1: 1})
                t0 = ms()
                reply = S.health([group(O1, failed=1), group(O2, ok=1, failed=1)],
                                 ops_url=OPS_URL)
                self.assertEqual(line(reply, O1).split()[0], "disabled")
                self.assertNotEqual(line(reply, O2).split()[0], "disabled")
                self.assertEqual(record(O2)["failing_since"], "0")
                self.assertEqual(R.hget(K.endpoints, O1).split()[0], b"disabled")
                self.assertGreaterEqual(R.zscore(K.parked, O1), t0)
                self.assertEqual([(e["event"], e["origin"]) for e in events()],
                                 [("endpoint.disabled", O1)])
                self.assertEqual([j["event"] for j in ops_jobs()], ["endpoint.disabled"])
                self.assertEqual(stats()["endpoints_disabled"], 1)
                self.assertEqual(R.pttl(K.record_key(O1)), -1)
                reply = S.health([group(O3, failed=1)], disable_after=0)
                self.assertEqual(line(reply, O3).split()[0], state)
                reply = S.health([group(O1, ok=1)])
                self.assertEqual(line(reply, O1).split()[0], "disabled", "stays disabled")

    def test_opened_and_disabled_in_one_call(self):
        """A closed origin failing for disable_after whose call also crosses
        the threshold: both transitions are events, in order, each with its
        own reason, and both counted."""
        put_record(O1, "closed", failing_since=ms() - 6 * 86400000, cur_n=0, cur_f=0)
        reply = S.health([group(O1, failed=20)], ops_url=OPS_URL)
        self.assertEqual(line(reply, O1).split()[0], "disabled")
        evs = events()
        self.assertEqual([e["event"] for e in evs],
                         ["endpoint.breaker_opened", "endpoint.disabled"])
        self.assertIn("attempts failed", evs[0]["reason"])
        self.assertIn("disable_after", evs[1]["reason"])
        self.assertEqual([j["event"] for j in reversed(ops_jobs())],
                         ["endpoint.breaker_opened", "endpoint.disabled"])
        self.assertEqual((stats()["breaker_opened"], stats()["endpoints_disabled"]), (1, 1))


class Endpoints(ScriptCase):
    def test_wrong_type_keys(self):
        self.check_wrong_types([(K.endpoints, "hash"), (K.gen, "string")],
                               lambda: put_record(O1), S.endpoints)

    def test_gen_not_a_number(self):
        for bad in ("x", "-1", "1" * 17):
            with self.subTest(bad):
                R.flushall()
                R.set(K.gen, bad)
                self.assert_refused_unchanged(S.endpoints, "not a whole number")

    def test_reads_gen_and_lines(self):
        """ENDPOINTS returns the generation and every line, as HEALTH left
        them; 0 and nothing before any."""
        self.assertEqual(S.endpoints(), [0, []])
        S.health([group(O1, failed=10), group(O2, failed=10), group(O3, ok=10)])
        gen, pairs = S.endpoints()
        self.assertEqual(gen, 2)
        self.assertEqual(dict(zip(pairs[0::2], pairs[1::2])),
                         {o.encode(): ("open %s %s" % (record(o)["since"], record(o)["due"])
                                       ).encode() for o in (O1, O2)})


# ---- RECORD -------------------------------------------------------------------

# What each applied outcome adds to P:stats (X: a call.completed of a batch
# with an onCallComplete URL, so one webhook generated).
RECORD_COUNTERS = {"A": {"delivered": 1}, "R": {"failed_attempts": 1, "retried": 1},
                   "D": {"dead": 1, "failed_attempts": 1}, "I": {"dead": 1, "invalid": 1},
                   "E": {"dead": 1}, "K": {"parked": 1}, "X": {"events": 1, "generated": 1}}


def outcome(kind, seq):
    """A valid RECORD group of kind for seq."""
    s = str(seq)
    return {"A": ("A", s, "", ""), "R": ("R", s, envelope(seq), "1000"),
            "D": ("D", s, entry(seq), "secret-%s" % seq), "I": ("I", s, entry(seq), ""),
            "E": ("E", s, entry(seq), ""), "K": ("K", s, O1, ""),
            "X": ("X", s, ev_call("B", "call-%s" % seq), entry(seq))}[kind]


def mixed(seqs):
    """Groups cycling through every kind."""
    return [outcome("ARDIEKX"[i % 7], s) for i, s in enumerate(seqs)]


class Record(ScriptCase):
    def world(self, n=9):
        """Jobs in flight under seqs 1..n (two carrying marks), a registered
        batch B, one older dead entry."""
        hset_many(K.inflight, {str(i): job(i) for i in range(1, n + 1)})
        R.hset(K.inflight, "2", ACCEPTED + job(2))
        R.hset(K.inflight, "6", CRASHED + b"2:" + job(6))
        batch("B")
        R.lpush(K.dead, entry("old", "gone-worker"))
        R.hset(K.stats, "delivered", 40)

    def assert_recorded(self, groups, reply, before, jobs0, stats0, refused=()):
        """RECORD's reply and effect, whole: each group whose seq was in
        flight (and is not refused) moved its job as its kind says, refused
        ones left their job in flight untouched, counters exact, jobs
        conserved."""
        inflight0 = before[K.inflight.encode()][1]
        queue0 = collections.Counter(before.get(K.queue.encode(), ("list", [], -1))[1])
        refused = [str(s) for s in refused]
        applied, seen_seqs = [], set()
        for g in groups:
            if g[1] in seen_seqs or g[1] in refused or g[1].encode() not in inflight0:
                continue
            seen_seqs.add(g[1])
            applied.append(g)
        self.assertEqual(reply[0], len(applied), "applied count")
        self.assertEqual([s.decode() for s in reply[1][0::2]], refused, "refused seqs")
        inflight = R.hgetall(K.inflight)
        for s in refused:
            self.assertEqual(inflight[s.encode()], inflight0[s.encode()], "refused job kept")
        gone, new, delta = [], [], collections.Counter()
        for kind, seq, a, b in applied:
            self.assertNotIn(seq.encode(), inflight, "applied job left flight")
            body, _, crashes = unmark(inflight0[seq.encode()])
            delta.update(RECORD_COUNTERS[kind])
            if kind != "K":
                gone.append(body)
            if kind in "RDIE":
                new.append(a)
            if kind == "R":
                self.assertIsNotNone(R.zscore(K.retry, a))
            if kind in "DIE" and b:
                self.assertEqual(R.hget(K.aside, "%s:%s" % (WID, seq)), b.encode())
            if kind == "K":
                marked = ACCEPTED + (CRASHED + b"%d:" % crashes if crashes else b"") + body
                self.assertIn(marked, R.lrange(K.parked_list(a), 0, -1))
                self.assertIsNotNone(R.zscore(K.parked, a))
        generated = list((collections.Counter(R.lrange(K.queue, 0, -1)) - queue0).elements())
        self.assertEqual(sorted(msgpack.unpackb(g)["id"] for g in generated),
                         sorted("call.completed:B:" + msgpack.unpackb(g[2])["call"]
                                for g in applied if g[0] == "X"))
        self.assert_moved(jobs0, gone, new + generated)
        self.assert_counted(stats0, **delta)

    def test_wrong_type_keys(self):
        """Each of RECORD's seven KEYS holding each wrong type: refused naming
        the key, Redis unchanged (no outcome applied)."""
        self.check_wrong_types(
            [(K.inflight, "hash"), (K.retry, "zset"), (K.dead, "list"), (K.stats, "hash"),
             (K.aside, "hash"), (K.parked, "zset"), (K.queue, "list")],
            self.world, lambda: S.record(mixed(range(1, 8))))

    def refused_one(self, bad_key, t, bad_group, reason, setup=None):
        """RECORD of a mix with bad_group (seq 5) whose key bad_key holds
        type t: only that outcome refused, with reason; its job still in
        flight and its key untouched; the rest applied whole."""
        R.flushall()
        self.world()
        if setup:
            setup()
        clobber(bad_key, t)
        groups = [outcome("A", 1), outcome("R", 2), outcome("D", 3), outcome("K", 4),
                  bad_group, outcome("X", 7), outcome("I", 8), outcome("K", 6)]
        before, jobs0, stats0 = snapshot(), jobs(), stats()
        reply = S.record(groups)
        self.assert_recorded(groups, reply, before, jobs0, stats0, refused=[5])
        self.assertIn(reason, reply[1][1].decode())
        self.assertEqual(snapshot()[bad_key.encode()][:2], before[bad_key.encode()][:2])

    def test_wrong_type_parked_list(self):
        """K whose P:parked:<origin> holds another type: refused with the
        reason, job left in flight, the other outcomes applied whole."""
        bad = K.parked_list(O2)
        for t in TYPES:
            if t != "list":
                with self.subTest(holds=t):
                    self.refused_one(bad, t, ("K", "5", O2, ""),
                                     "key %s holds a %s, not a list" % (bad, t))

    def test_wrong_type_batch_keys(self):
        """X whose P:batch:<id> (hash), P:batch:<id>:calls (set) or
        P:seen:<id> (string) holds another type, or whose batch hash has no
        whole number in a counter: refused with the reason, job left in
        flight, the other outcomes applied whole."""
        cases = [(K.batch_key("B2"), "hash", ev_call("B2", "c"), None),
                 (K.calls_key("B6"), "set", ev_call("B6", "c"), lambda: batch("B6")),
                 (K.seen_key("E1"), "string", ev_call("B", "c", eid="E1", win=60000), None),
                 (K.seen_key("E2"), "string", ev_create("B3", eid="E2", win=60000), None)]
        for key, want, ev, setup in cases:
            for t in TYPES:
                if t != want:
                    with self.subTest(key=key, holds=t):
                        self.refused_one(key, t, ("X", "5", ev, entry(5)),
                                         "key %s holds a %s, not a %s" % (key, t, want), setup)
        with self.subTest("batch counter not a whole number"):
            R.flushall()
            self.world()
            batch("B4")
            R.hset(K.batch_key("B4"), "processed", "x")
            groups = [outcome("A", 1), ("X", "5", ev_call("B4", "c"), entry(5))]
            before, jobs0, stats0 = snapshot(), jobs(), stats()
            reply = S.record(groups)
            self.assert_recorded(groups, reply, before, jobs0, stats0, refused=[5])
            self.assertIn("no whole number in processed", reply[1][1].decode())

    def test_groups_at_their_limits(self):
        """0 groups (nothing changes), 1, QUEUE_RECORD_MAX of every kind mixed
        (all applied whole: counters, conservation) and one past it (refused,
        Redis unchanged)."""
        self.world(RECORD_MAX + 1)
        self.assert_refused_unchanged(lambda: S.record(mixed(range(1, RECORD_MAX + 2))),
                                      "RECORD", str(RECORD_MAX))
        before = snapshot()
        self.assertEqual(S.record([]), [0, []])
        self.assert_unchanged(before, "RECORD of 0 groups changed Redis")
        for groups in ([outcome("A", 1)], mixed(range(2, RECORD_MAX + 2))):
            before, jobs0, stats0 = snapshot(), jobs(), stats()
            self.assert_recorded(groups, S.record(groups), before, jobs0, stats0)
        self.assertEqual(R.hlen(K.inflight), 0)

    def test_dead_max_at_its_limits(self):
        """dead_max 1 (P:dead trimmed to the newest entry, the trimmed
        entries' secrets dropped, counted in dead_trimmed) and 2^40 (nothing
        trimmed) are taken; 0 and 2^40 + 1 are refused, Redis unchanged."""
        self.world()
        for n in range(3):
            R.lpush(K.dead, entry("t%d" % n, "w0"))
            R.hset(K.aside, "w0:t%d" % n, "s")
        for bad in (DEAD_MAX_MIN - 1, DEAD_MAX + 1, "x", "-1"):
            self.assert_refused_unchanged(lambda: S.record([outcome("D", 3)], dead_max=bad),
                                          "dead_max")
        stats0, jobs0 = stats(), jobs()
        trimmed = R.lrange(K.dead, 0, -1)
        self.assertEqual(S.record([outcome("D", 3)], dead_max=DEAD_MAX_MIN), [1, []])
        self.assertEqual(R.lrange(K.dead, 0, -1), [entry(3)])
        self.assertEqual(R.hgetall(K.aside), {("%s:3" % WID).encode(): b"secret-3"})
        self.assert_counted(stats0, dead=1, failed_attempts=1, dead_trimmed=len(trimmed))
        self.assert_moved(jobs0, [job(3)] + trimmed, [entry(3)])
        self.assertEqual(S.record([outcome("E", 4), outcome("I", 5)], dead_max=DEAD_MAX), [2, []])
        self.assertEqual(R.llen(K.dead), 3)

    def test_arguments_at_their_limits(self):
        """A retry delay of 0 and 366 days, an origin of ORIGIN_MAX bytes and
        a wid of KEYS_WID_MAX - 1 are taken; one past each, an empty origin or wid, an
        unknown kind, a bad seq, an empty dead entry, a tail not in groups of
        four, or missing prefixes are refused, Redis unchanged."""
        self.world()
        bad = [([("R", "1", envelope(1), str(DELAY_MAX + 1))], {}),
               ([("R", "1", envelope(1), "-1")], {}),
               ([("R", "1", "", "0")], {}),
               ([("K", "1", "o" * (ORIGIN_MAX + 1), "")], {}),
               ([("K", "1", "", "")], {}),
               ([outcome("A", 1)], {"wid": "w" * (WID_MAX + 1)}),
               ([outcome("A", 1)], {"wid": ""}),
               ([("Z", "1", "", "")], {}), ([("AA", "1", "", "")], {}),
               ([("A", "x", "", "")], {}), ([("A", "", "", "")], {}),
               ([("A", "1" * 21, "", "")], {}),
               ([("D", "1", "", "")], {}), ([("I", "1", "", "")], {}),
               ([("E", "1", "", "")], {}),
               ([], {"tail": ["A", "1", ""]})]
        for groups, kw in bad:
            with self.subTest(groups=short(groups, 80), **{k: short(v, 40) for k, v in kw.items()}):
                self.assert_refused_unchanged(lambda: S.record(groups, **kw), "RECORD")
        self.assert_refused_unchanged(
            lambda: S.eval("record", [K.inflight, K.retry, K.dead, K.stats, K.aside, K.parked,
                                      K.queue], [100, WID]), "RECORD")
        t0 = ms()
        self.assertEqual(S.record([("R", "1", envelope(1), "0"),
                                   ("R", "2", envelope(2), str(DELAY_MAX))]), [2, []])
        self.assertLessEqual(R.zscore(K.retry, envelope(1)), ms())
        self.assertGreaterEqual(R.zscore(K.retry, envelope(2)), t0 + DELAY_MAX)
        long_origin = "o" * ORIGIN_MAX
        self.assertEqual(S.record([("K", "3", long_origin, "")]), [1, []])
        self.assertEqual(R.lrange(K.parked_list(long_origin), 0, -1), [ACCEPTED + job(3)])
        self.assertEqual(S.record([outcome("D", 4)], wid="w" * WID_MAX), [1, []])
        self.assertEqual(R.hget(K.aside, "w" * WID_MAX + ":4"), b"secret-4")

    def test_sent_twice(self):
        """A mixed RECORD sent again (its reply lost): the second call
        applies nothing (reply {0, {}}) and changes nothing."""
        self.world()
        groups = mixed(range(1, 10))
        before, jobs0, stats0 = snapshot(), jobs(), stats()
        self.assert_recorded(groups, S.record(groups), before, jobs0, stats0)
        before = snapshot()
        self.assertEqual(S.record(groups), [0, []])
        self.assert_unchanged(before, "RECORD sent twice changed Redis")

    def test_typed_event_arguments_checked_before_writes(self):
        """X maps whose batch_ttl or dedupe window is out of range (C sends at
        most 366 days) or whose optional batch fields are not strings must be
        refused (per outcome or whole) before any write: never an error after
        the moves started. Contract violation while this fails."""
        cases = {"batch_ttl 2^62 (PEXPIRE fails, event.lua:94)":
                 ev_create("B9", ttl=2 ** 62),
                 "dedupe window 2^62 (SET PX fails, event.lua:141)":
                 ev_create("B9", eid="E9", win=2 ** 62),
                 "secret a map (HSET fails, event.lua:92)":
                 ev_create("B9", secret={"x": 1}),
                 "on_call a boolean (HSET fails, event.lua:92)":
                 ev_create("B9", on_call=True)}
        for what, ev in cases.items():
            with self.subTest(what):
                R.flushall()
                self.world()
                groups = [outcome("A", 1), ("X", "2", ev, entry(2))]
                before, jobs0 = snapshot(), jobs()
                reply = S.record(groups)
                if isinstance(reply, redis.ResponseError):
                    self.assertTrue(str(reply).startswith("hookd: "),
                                    "CONTRACT VIOLATION record.lua: %s: a write came before a "
                                    "check that can fail: %s; %s" % (
                                        what, reply, self.left_behind(before, jobs0)))
                    self.assert_unchanged(before, "refused RECORD changed Redis")
                else:
                    self.assertEqual(reply[0], 1, what)
                    self.assertEqual(reply[1][0], b"2")

    def test_batch_id_collision_within_one_call(self):
        """batch.create of batch 'B:calls' (a valid batchId: event.c allows
        ':') and a call.completed of batch 'B' in the same RECORD: the first
        makes P:batch:B:calls a hash, the second's SADD then fails. The plan
        checked both keys before either write, so the script must foresee
        it; else the call.completed job is taken out of flight and lost.
        Contract violation while this fails."""
        self.world()
        groups = [("X", "1", ev_create("B:calls"), entry(1)),
                  ("X", "2", ev_call("B", "c2"), entry(2))]
        before, jobs0 = snapshot(), jobs()
        reply = S.record(groups)
        if isinstance(reply, redis.ResponseError):
            self.assertTrue(str(reply).startswith("hookd: "),
                            "CONTRACT VIOLATION record.lua (event.lua:111, SADD): a RECORD "
                            "holding batch.create 'B:calls' and call.completed 'B' failed "
                            "halfway: %s; %s" % (reply, self.left_behind(before, jobs0)))
            self.assert_unchanged(before, "refused RECORD changed Redis")
        else:
            self.assertIn(b"2", reply[1][0::2], "call.completed of B must be refused")

    def test_typed_event_fields_agree_with_c(self):
        """event.c accepts agentId and userId up to 1024 bytes; event.lua must
        apply such a batch.create, not refuse it forever (the worker would
        hold and resend it indefinitely). Contract violation while this
        fails."""
        self.world()
        ev = msgpack.packb({**msgpack.unpackb(ev_create("B5")), "agent": "a" * 1024,
                            "user": "u" * 1024})
        reply = S.record([("X", "1", ev, entry(1))])
        self.assertEqual(reply, [1, []], "CONTRACT VIOLATION event.lua:34 (is_str(ev.agent, "
                         "EVENT_ID_MAX = 256)) refuses what event.c:83-85 accepts (1024 "
                         "bytes): %r" % (reply,))


# ---- ACCEPT -------------------------------------------------------------------

def dkey(n):
    """A dedupe key: 32 hex digits, as dedupe_key() makes them."""
    return "%032x" % n


class Accept(ScriptCase):
    def world(self, n=6):
        hset_many(K.inflight, {str(i): job(i) for i in range(1, n + 1)})
        R.set(K.seen_key(dkey(999)), "other-worker:7", px=600000)
        R.hset(K.stats, "delivered", 3)

    def test_wrong_type_keys(self):
        """Each of ACCEPT's two KEYS holding each wrong type: refused naming
        the key, Redis unchanged."""
        self.check_wrong_types([(K.inflight, "hash"), (K.stats, "hash")], self.world,
                               lambda: S.accept([("1", dkey(1)), ("2", dkey(999))]))

    def test_wrong_type_seen_key(self):
        """A P:seen:<key> holding another type: verdict 3 for that pair, its
        job stays in flight, its key untouched; the other pairs are judged
        whole (0 new, 1 duplicate removed and counted, 2 not in flight)."""
        bad = K.seen_key(dkey(5))
        for t in TYPES:
            if t == "string":
                continue
            with self.subTest(holds=t):
                R.flushall()
                self.world()
                clobber(bad, t)
                before, jobs0, stats0 = snapshot(), jobs(), stats()
                reply = S.accept([("1", dkey(1)), ("5", dkey(5)), ("2", dkey(999)),
                                  ("77", dkey(77))])
                self.assertNotIsInstance(
                    reply, redis.ResponseError,
                    "CONTRACT VIOLATION accept.lua:45: 'wrong_type(key, \'string\') and false "
                    "or key' is always key (Lua: x and false or y == y), so a wrong-typed "
                    "P:seen key is never flagged (verdict 3); GET (accept.lua:55) then fails "
                    "after the earlier pairs' SET: %s; Redis changed: %s" % (
                        reply, diff(before, snapshot())[:3]))
                self.assertEqual(reply, [0, 3, 1, 2])
                self.assertEqual(snapshot()[bad.encode()][:2], before[bad.encode()][:2])
                self.assertEqual(R.hget(K.inflight, "5"), job(5))
                self.assertIsNone(R.hget(K.inflight, "2"))
                self.assertEqual(R.get(K.seen_key(dkey(1))), ("%s:1" % WID).encode())
                self.assertFalse(R.exists(K.seen_key(dkey(77))))
                self.assert_moved(jobs0, [job(2)])
                self.assert_counted(stats0, duplicate=1)

    def test_pairs_at_their_limits(self):
        """0 pairs (reply empty, nothing changes), 1, QUEUE_ACCEPT_MAX (a third
        new, a third duplicates, a third not in flight: each judged, counted,
        conserved) and one past it (refused, Redis unchanged)."""
        self.world(ACCEPT_MAX + 1)
        third = ACCEPT_MAX // 3
        for i in range(third):
            R.set(K.seen_key(dkey(10000 + i)), "other:%d" % i)
        pairs = [("%d" % (i + 2), dkey(i + 2)) for i in range(ACCEPT_MAX - 2 * third)] + \
            [("%d" % (i + 200), dkey(10000 + i)) for i in range(third)] + \
            [("%d" % (i + 5000), dkey(20000 + i)) for i in range(third)]
        self.assertEqual(len(pairs), ACCEPT_MAX)
        self.assert_refused_unchanged(lambda: S.accept(pairs + [("1", dkey(1))]),
                                      "ACCEPT", str(ACCEPT_MAX))
        before = snapshot()
        self.assertEqual(S.accept([]), [])
        self.assert_unchanged(before, "ACCEPT of 0 pairs changed Redis")
        self.assertEqual(S.accept([("1", dkey(1))]), [0])
        jobs0, stats0 = jobs(), stats()
        reply = S.accept(pairs)
        self.assertEqual(reply, [0] * (ACCEPT_MAX - 2 * third) + [1] * third + [2] * third)
        self.assert_moved(jobs0, [job(i + 200) for i in range(third)])
        self.assert_counted(stats0, duplicate=third)
        self.assertFalse(R.exists(K.seen_key(dkey(20000))))

    def test_window_and_arguments_at_their_limits(self):
        """A window of 1 ms and of dedupe_window's largest value (366 days) is
        taken (the key's PTTL is the window); 0 and one past are refused, as
        are a key of 0 or 65 bytes (64 taken), a wid of 0 or KEYS_WID_MAX bytes (KEYS_WID_MAX - 1
        taken), a bad seq and an odd tail; Redis unchanged."""
        self.world()
        for kw, pairs in (({"window": 0}, [("1", dkey(1))]),
                          ({"window": WINDOW_MAX + 1}, [("1", dkey(1))]),
                          ({"window": "x"}, [("1", dkey(1))]),
                          ({}, [("1", "k" * 65)]), ({}, [("1", "")]),
                          ({}, [("x", dkey(1))]), ({}, [("1",)]),
                          ({"wid": ""}, [("1", dkey(1))]),
                          ({"wid": "w" * (WID_MAX + 1)}, [("1", dkey(1))])):
            with self.subTest(**{k: short(v, 40) for k, v in kw.items()}, pairs=short(pairs, 60)):
                self.assert_refused_unchanged(lambda: S.accept(pairs, **kw), "ACCEPT")
        self.assertEqual(S.accept([("1", dkey(1))], window=1), [0])
        self.assertIn(R.get(K.seen_key(dkey(1))), (None, ("%s:1" % WID).encode()))
        self.assertEqual(S.accept([("2", dkey(2))], window=WINDOW_MAX), [0])
        self.assertGreater(R.pttl(K.seen_key(dkey(2))), WINDOW_MAX - TTL_SLACK)
        self.assertEqual(S.accept([("3", "k" * 64)]), [0])
        self.assertEqual(S.accept([("4", dkey(4))], wid="w" * WID_MAX), [0])
        self.assertEqual(R.get(K.seen_key(dkey(4))), ("w" * WID_MAX + ":4").encode())

    def test_sent_twice(self):
        """ACCEPT sent again after a lost reply: a new id is answered new
        again (the key holds this very <wid>:<seq>), a duplicate is answered
        'gone' (already removed), and nothing changes: no second count, no
        refreshed window."""
        self.world()
        pairs = [("1", dkey(1)), ("2", dkey(999)), ("99", dkey(99))]
        self.assertEqual(S.accept(pairs), [0, 1, 2])
        before = snapshot()
        self.assertEqual(S.accept(pairs), [0, 2, 2])
        self.assert_unchanged(before, "ACCEPT sent twice changed Redis")



# ---- THROTTLE -----------------------------------------------------------------

HORIZON_US = 200000             # throttle.lua: slots granted at most this far ahead
INTERVAL_MAX = 60000000         # 1/m, config.c's slowest rate
ORIGIN = "http://a.example:80"


class Throttle(ScriptCase):
    def world(self):
        R.zadd(K.throttled, {"http://old.example:80": 1})
        R.hset(K.rate_key("http://b.example:80"), mapping={"tat": 1, "interval": 5000,
                                                             "until": 1})

    def test_wrong_type_keys(self):
        """P:throttled holding each wrong type: refused naming it, Redis
        unchanged."""
        self.check_wrong_types([(K.throttled, "zset")], self.world,
                               lambda: S.throttle([(ORIGIN, 10000, 3)]))

    def test_clobbered_rate_record(self):
        """A P:rate:<origin> of another type, or a hash with a field that is
        no whole number: status 1 for it, nothing written for it, the other
        origins of the call served."""
        bad = K.rate_key("http://bad.example:80")
        for t in TYPES + ("tat=x", "interval=0", "until=-"):
            with self.subTest(holds=t):
                R.flushall()
                self.world()
                if "=" in t:
                    f, v = t.split("=")
                    R.hset(bad, mapping={"tat": 1, "interval": 5000, "until": 1, f: v})
                elif t != "hash":
                    clobber(bad, t)
                else:
                    continue
                before = snapshot()[bad.encode()]
                reply = S.throttle([(ORIGIN, 10000, 2), ("http://bad.example:80", 10000, 2)])
                self.assertNotIsInstance(reply, redis.ResponseError)
                self.assertEqual(reply[0][:2], [0, 2])
                self.assertEqual(reply[1][:2], [1, 0])
                self.assertEqual(snapshot()[bad.encode()][:2], before[:2])

    def test_triples_at_their_limits(self):
        """1 and QUEUE_THROTTLE_MAX origins served, 0 and one past refused;
        interval 1 and 60,000,000 us taken, 0 and one past refused; count 1
        and QUEUE_THROTTLE_COUNT_MAX taken, 0 and one past refused; an
        origin of 1 and 299 bytes taken, 0 and 300 refused; a tail that is
        no whole number of triples refused. Refusals leave Redis unchanged."""
        self.world()
        many = [("http://o%d.example:80" % i, 10000, 1) for i in range(THROTTLE_MAX)]
        for label, tail in (("none", []), ("one past", flat(many + [(ORIGIN, 1, 1)])),
                            ("interval 0", [ORIGIN, 0, 1]),
                            ("interval past", [ORIGIN, INTERVAL_MAX + 1, 1]),
                            ("count 0", [ORIGIN, 1, 0]),
                            ("count past", [ORIGIN, 1, THROTTLE_COUNT_MAX + 1]),
                            ("origin empty", ["", 1, 1]), ("origin 300", ["o" * 300, 1, 1]),
                            ("interval x", [ORIGIN, "x", 1]), ("pair", [ORIGIN, 1])):
            with self.subTest(label):
                self.assert_refused_unchanged(lambda: S.throttle(None, tail=tail), "THROTTLE")
        reply = S.throttle(many)
        self.assertEqual([a[:3] for a in reply], [[0, 1, 0]] * THROTTLE_MAX)
        self.assertEqual(S.throttle([("o", 1, 1)])[0][:2], [0, 1])
        self.assertEqual(S.throttle([("o" * 299, INTERVAL_MAX, 1)])[0][:2], [0, 1])
        reply = S.throttle([("http://c.example:80", 1, THROTTLE_COUNT_MAX)])[0]
        self.assertEqual(reply[:2], [0, THROTTLE_COUNT_MAX])    # 10,000 us of slots
        self.assertGreater(R.pttl(K.rate_key("o" * 299)), 60000)

    def test_slots_spaced_within_the_horizon(self):
        """100 slots at 10 ms: 20 granted (200 ms ahead), the first now, the
        interval the one asked for; the origin is scored in P:throttled at
        the end of its slots, and asked to come back once less than half
        the horizon of slots is left."""
        reply = S.throttle([(ORIGIN, 10000, 100)])[0]
        self.assertEqual(reply[:2], [0, HORIZON_US // 10000])
        self.assertEqual((reply[2], reply[3]), (0, 10000))
        self.assertLessEqual(abs(reply[4] - HORIZON_US // 2), 2000)
        score = R.zscore(K.throttled, ORIGIN)
        self.assertIsNotNone(score)
        self.assertLessEqual(abs(score - (ms() + HORIZON_US // 1000)), 50)

    def test_lowest_rate_wins_until_forgotten(self):
        """An origin asked for at 20 ms and then at 10 ms keeps 20 ms; once
        the 20 ms limit has lapsed (its 'until'), 10 ms is used."""
        S.throttle([(ORIGIN, 20000, 1)])
        self.assertEqual(S.throttle([(ORIGIN, 10000, 1)])[0][3], 20000)
        R.hset(K.rate_key(ORIGIN), "until", 1)
        self.assertEqual(S.throttle([(ORIGIN, 10000, 1)])[0][3], 10000)

    def test_sent_twice(self):
        """THROTTLE sent again (a lost reply): new slots after the first
        call's, never the same ones; the record's tat moves on by both."""
        first = S.throttle([(ORIGIN, 10000, 5), (ORIGIN, 10000, 1)])
        self.assertEqual([a[:2] for a in first], [[0, 5], [0, 1]])
        self.assertGreaterEqual(first[1][2], 50000 - 5000)
        again = S.throttle([(ORIGIN, 10000, 5)])[0]
        self.assertEqual(again[:2], [0, 5])
        self.assertGreaterEqual(again[2], 60000 - 20000)

# ---- PROMOTE ------------------------------------------------------------------

class Promote(ScriptCase):
    DUE = PROMOTE_MAX + 5

    def world(self):
        """PROMOTE_MAX + 5 due retry envelopes (due long ago, in order) and
        three due in an hour."""
        pipe = R.pipeline(transaction=False)
        items = {envelope(i): 1000 + i for i in range(self.DUE)}
        items.update({envelope("later-%d" % i): ms() + 3600000 for i in range(3)})
        keys = list(items)
        for i in range(0, len(keys), 1000):
            pipe.zadd(K.retry, {k: items[k] for k in keys[i:i + 1000]})
        pipe.execute()
        R.rpush(K.queue, job("queued"))

    def test_wrong_type_keys(self):
        """Each of PROMOTE's four KEYS holding each wrong type: refused
        naming the key, Redis unchanged."""
        self.check_wrong_types([(K.retry, "zset"), (K.queue, "list"), (K.stats, "hash"),
                                (K.backlog, "hash")],
                               lambda: R.zadd(K.retry, {envelope(1): 1}), lambda: S.promote(10))

    def test_limit_at_its_limits(self):
        """limit 0 and QUEUE_PROMOTE_MAX + 1 refused (Redis unchanged); 1 moves
        the earliest; QUEUE_PROMOTE_MAX moves that many, to the right end of
        the queue, earliest rightmost; the reply's wait is 0 while due entries
        remain, then the time to the next one."""
        self.world()
        for bad in (0, PROMOTE_MAX + 1, -1, "x"):
            self.assert_refused_unchanged(lambda: S.promote(bad), "PROMOTE")
        jobs0, stats0 = jobs(), stats()
        self.assertEqual(S.promote(1), [1, 0])
        self.assertEqual(R.lrange(K.queue, 0, -1), [job("queued"), envelope(0)])
        self.assertEqual(S.promote(PROMOTE_MAX), [PROMOTE_MAX, 0])
        q = R.lrange(K.queue, 0, -1)
        self.assertEqual(q[2:], [envelope(i) for i in range(PROMOTE_MAX, 0, -1)])
        moved, wait = S.promote(PROMOTE_MAX)
        self.assertEqual(moved, self.DUE - 1 - PROMOTE_MAX)
        self.assertTrue(3600000 - TTL_SLACK < wait <= 3600000, wait)
        self.assertEqual(R.zcard(K.retry), 3)
        self.assert_moved(jobs0)
        self.assert_counted(stats0, promoted=self.DUE)

    def test_sent_twice(self):
        """PROMOTE again once nothing is due: moves nothing, changes nothing."""
        self.world()
        S.promote(PROMOTE_MAX)
        S.promote(PROMOTE_MAX)
        before = snapshot()
        self.assertEqual(S.promote(PROMOTE_MAX)[0], 0)
        self.assert_unchanged(before, "PROMOTE with nothing due changed Redis")


# ---- RELEASE ------------------------------------------------------------------

class Release(ScriptCase):
    def world(self):
        """QUEUE_FETCH_MAX + 1 jobs in flight under seqs 1..QUEUE_FETCH_MAX + 1."""
        hset_many(K.inflight, {str(i): small(i) for i in range(1, FETCH_MAX + 2)})
        R.rpush(K.queue, job("queued"))

    def test_wrong_type_keys(self):
        """Each of RELEASE's four KEYS holding each wrong type: refused
        naming the key, Redis unchanged."""
        self.check_wrong_types([(K.inflight, "hash"), (K.queue, "list"), (K.stats, "hash"),
                                (K.backlog, "hash")],
                               lambda: R.hset(K.inflight, "1", job(1)),
                               lambda: S.release(1, 3))

    def test_range_at_its_limits(self):
        """A range of 1 seq and of QUEUE_FETCH_MAX seqs (one fetch) gives back
        every job in it still in flight, to the right end of the queue,
        oldest rightmost; QUEUE_FETCH_MAX + 1 seqs, lo > hi, lo 0 or a
        non-number is refused, Redis unchanged."""
        self.world()
        for lo, hi in ((1, FETCH_MAX + 1), (5, 4), (0, 1), ("x", 1), (1, "1e3")):
            self.assert_refused_unchanged(lambda: S.release(lo, hi), "RELEASE")
        jobs0, stats0 = jobs(), stats()
        self.assertEqual(S.release(1, 1), 1)
        self.assertEqual(S.release(1, FETCH_MAX), FETCH_MAX - 1)
        self.assertEqual(S.release(FETCH_MAX, FETCH_MAX + FETCH_MAX - 1), 1)
        q = R.lrange(K.queue, 0, -1)
        self.assertEqual(q, [job("queued"), small(1)] +
                         [small(i) for i in range(FETCH_MAX, 1, -1)] + [small(FETCH_MAX + 1)])
        self.assertEqual(R.hlen(K.inflight), 0)
        self.assert_moved(jobs0)
        self.assert_counted(stats0, requeued=FETCH_MAX + 1)

    def test_sent_twice(self):
        """RELEASE of the same range again gives back nothing, changes nothing."""
        self.world()
        self.assertEqual(S.release(10, 20), 11)
        before = snapshot()
        self.assertEqual(S.release(10, 20), 0)
        self.assert_unchanged(before, "RELEASE sent twice changed Redis")


# ---- HEARTBEAT ----------------------------------------------------------------

class Heartbeat(ScriptCase):
    def test_wrong_type_keys(self):
        """Each of HEARTBEAT's two KEYS holding each wrong type: refused
        naming the key, Redis unchanged."""
        self.check_wrong_types([(K.hb, "string"), (K.workers, "hash")],
                               lambda: R.hset(K.workers, "other", "{}"),
                               lambda: S.heartbeat())

    def test_arguments_at_their_limits(self):
        """ttl at heartbeat_ttl's bounds in config.c (1000 and 3600000 taken,
        999 and 3600001 refused), info of 1024 bytes taken and 1025 refused, a
        wid of KEYS_WID_MAX - 1 taken and 0 or KEYS_WID_MAX refused, a bad time refused; refusals
        leave Redis unchanged, a heartbeat sets hb (its PTTL the ttl) before
        registering."""
        for kw in ({"ttl": TTL_MIN - 1}, {"ttl": TTL_MAX + 1}, {"ttl": "x"},
                   {"info": "i" * (INFO_MAX + 1)}, {"wid": ""}, {"wid": "w" * (WID_MAX + 1)},
                   {"now": "x"}, {"now": "-1"}):
            with self.subTest(**{k: short(v, 40) for k, v in kw.items()}):
                self.assert_refused_unchanged(lambda: S.heartbeat(**kw), "HEARTBEAT")
        for ttl in (TTL_MIN, TTL_MAX):
            self.assertEqual(S.heartbeat(ttl=ttl, now=1234), 1)
            self.assertEqual(R.get(K.hb), b"1234")
            self.assertTrue(ttl - TTL_SLACK < R.pttl(K.hb) <= ttl)
        self.assertEqual(S.heartbeat(info="i" * INFO_MAX), 1)
        self.assertEqual(R.hget(K.workers, WID), b"i" * INFO_MAX)
        wid = "w" * WID_MAX
        self.assertEqual(S.heartbeat(k=Keys(wid=wid), wid=wid), 1)
        self.assertTrue(R.exists(Keys(wid=wid).hb))

    def test_sent_twice(self):
        """The same heartbeat twice leaves the same state (hb, its PTTL
        renewed, the registration)."""
        S.heartbeat(now=5)
        before = snapshot()
        self.assertEqual(S.heartbeat(now=5), 1)
        self.assert_unchanged(before, "HEARTBEAT sent twice changed Redis")


# ---- RECLAIM ------------------------------------------------------------------

W1, W2, W3 = "host-a:1:1", "host-b:2:2", "host-c:3:3"


def worker(wid, claimed=(), inflight=None, alive=False):
    """A registered worker with claimed jobs (the first claimed oldest) and
    jobs in flight; alive: its heartbeat key is there."""
    k = Keys(wid=wid)
    R.hset(K.workers, wid, '{"pid":1}')
    if claimed:
        lpush_many(k.claim, list(claimed))
    if inflight:
        hset_many(k.inflight, inflight)
    if alive:
        R.set(k.hb, ms(), px=60000)
    return k


class Reclaim(ScriptCase):
    def world(self):
        """W1 died (registered, no heartbeat) holding two claimed jobs and
        three in flight (seqs 1, 2, 10), W2 alive, one queued job."""
        worker(W1, [job("c1"), job("c2")], {"1": job(1), "2": job(2), "10": job(10)})
        worker(W2, [], {"1": job("w2")}, alive=True)
        R.rpush(K.queue, job("queued"))
        R.hset(K.stats, "delivered", 1)

    def test_wrong_type_shared_keys(self):
        """Each shared key RECLAIM builds from the prefix (queue, workers,
        stats, dead, dead secrets, backlog) holding each wrong type, for one
        worker and for the reaper: refused naming the key, Redis unchanged."""
        shared = [(K.queue, "list"), (K.workers, "hash"), (K.stats, "hash"), (K.dead, "list"),
                  (K.aside, "hash"), (K.backlog, "hash")]
        for wid in (W1, ""):
            with self.subTest(wid=wid or "(reaper)"):
                self.check_wrong_types(shared, self.world,
                                       lambda: S.reclaim(wid, poison_after=1))

    def test_wrong_type_worker_keys(self):
        """The one worker's P:claim:<wid> or P:inflight:<wid> holding another
        type: refused naming the key, Redis unchanged."""
        k = Keys(wid=W1)
        self.check_wrong_types([(k.claim, "list"), (k.inflight, "hash")], self.world,
                               lambda: S.reclaim(W1, poison_after=1))

    def test_reaper_skips_a_wrong_typed_worker(self):
        """Reaping with W1's claim or inflight key of another type: W1 is in
        the skipped list with the reason and left alone (registered, keys
        untouched), W3 (also dead) is reclaimed whole, W2 (alive) untouched."""
        for part in ("claim", "inflight"):
            for t in TYPES:
                if t == {"claim": "list", "inflight": "hash"}[part]:
                    continue
                with self.subTest(key=part, holds=t):
                    R.flushall()
                    self.world()
                    worker(W3, [job("c3")], {"5": job(5)})
                    bad = getattr(Keys(wid=W1), part)
                    clobber(bad, t)
                    before, jobs0, stats0 = snapshot(), jobs(), stats()
                    requeued, dead, skipped = S.reclaim("", mode="crashed", poison_after=3)
                    self.assertEqual((requeued, dead), (2, 0))
                    self.assertEqual(len(skipped), 1)
                    self.assertTrue(skipped[0].decode().startswith(W1 + ": key " + bad))
                    after = snapshot()
                    for key in (bad, getattr(Keys(wid=W1), {"claim": "inflight",
                                                            "inflight": "claim"}[part]),
                                Keys(wid=W2).inflight, Keys(wid=W2).hb):
                        key = key.encode()
                        self.assertEqual(after.get(key, (None,) * 3)[:2],
                                         before.get(key, (None,) * 3)[:2])
                    self.assertEqual(set(R.hkeys(K.workers)), {W1.encode(), W2.encode()})
                    self.assertEqual(R.lrange(K.queue, 0, -1)[-2:],
                                     [job("c3"), ACCEPTED + CRASHED + b"1:" + job(5)])
                    self.assert_moved(jobs0)
                    self.assert_counted(stats0, requeued=2)

    def test_hb_key_of_wrong_type_one_worker(self):
        """P:hb:<wid> is one of the worker's keys (a string, per the
        contract): holding another type, RECLAIM of that worker must refuse
        naming it, Redis unchanged (not DEL it). Contract violation while
        this fails."""
        hb = Keys(wid=W1).hb
        self.world()
        clobber(hb, "list")
        before = snapshot()
        reply = S.reclaim(W1)
        after = snapshot()
        self.assertIsInstance(reply, redis.ResponseError,
                              "CONTRACT VIOLATION reclaim.lua:85 checks claim and inflight but "
                              "not P:hb:<wid>; RECLAIM %s with a list at %s answered %r and "
                              "deleted it: %s" % (W1, hb, reply, diff(before, after)[:4]))

    def test_hb_key_of_wrong_type_reaper(self):
        """The reaper finding W1 registered with a P:hb:<wid> of another type
        must list it as skipped with the reason, not take it for alive
        forever. Contract violation while this fails."""
        self.world()
        clobber(Keys(wid=W1).hb, "list")
        requeued, dead, skipped = S.reclaim("")
        self.assertTrue(any(s.decode().startswith(W1 + ": ") for s in skipped),
                        "CONTRACT VIOLATION reclaim.lua:121: EXISTS on a wrong-typed "
                        "P:hb:<wid> takes the worker for alive: never reaped, never listed in "
                        "skipped (reply %r)" % ([requeued, dead, skipped],))

    def test_poison_after_at_its_limits(self):
        """poison_after 0 and QUEUE_POISON_MAX + 1 refused (Redis unchanged);
        1: every crashed job goes to P:dead (claimed ones are requeued as
        they are, never started); QUEUE_POISON_MAX: a job at 99 crashes goes
        dead, one at 98 is requeued carrying 99."""
        self.world()
        for bad in (POISON_MIN - 1, POISON_MAX + 1, "x"):
            self.assert_refused_unchanged(lambda: S.reclaim(W1, poison_after=bad), "RECLAIM")
        jobs0, stats0 = jobs(), stats()
        self.assertEqual(S.reclaim(W1, poison_after=POISON_MIN), [2, 3, []])
        self.assertEqual(R.lrange(K.queue, 0, -1), [job("queued"), job("c2"), job("c1")])
        self.assertEqual(R.llen(K.dead), 3)
        self.assert_moved(jobs0)
        self.assert_counted(stats0, requeued=2, dead=3, worker_crashed=3)

        worker(W3, [], {"1": CRASHED + b"%d:" % (POISON_MAX - 1) + job("old"),
                             "2": CRASHED + b"%d:" % (POISON_MAX - 2) + job("younger")})
        jobs0 = jobs()
        self.assertEqual(S.reclaim(W3, poison_after=POISON_MAX), [1, 1, []])
        self.assertEqual(R.lindex(K.queue, -1),
                         ACCEPTED + CRASHED + b"%d:" % (POISON_MAX - 1) + job("younger"))
        d = json.loads(R.lindex(K.dead, 0))
        self.assertEqual((d["id"], d["crashes"]), ("job-old", POISON_MAX))
        self.assert_moved(jobs0)

    def test_arguments_at_their_limits(self):
        """A prefix of 1 and KEYS_PREFIX_MAX bytes, a time of 40 bytes and a
        wid of KEYS_WID_MAX - 1 are taken; an empty or longer prefix, a 41-byte time, a
        129-byte wid, an unknown mode, dead_max 0 or 2^40 + 1 are refused,
        Redis unchanged."""
        self.world()
        for kw in ({"prefix": ""}, {"prefix": "p" * (PREFIX_MAX + 1)}, {"now": "t" * 41},
                   {"mode": "dirty"}, {"mode": ""}, {"dead_max": DEAD_MAX_MIN - 1},
                   {"dead_max": DEAD_MAX + 1}):
            with self.subTest(**{k: short(v, 40) for k, v in kw.items()}):
                self.assert_refused_unchanged(lambda: S.reclaim(W1, **kw), "RECLAIM")
        self.assert_refused_unchanged(lambda: S.reclaim("w" * (WID_MAX + 1)), "RECLAIM")
        self.assertEqual(S.reclaim(W1, now="t" * 40, dead_max=DEAD_MAX), [5, 0, []])
        long_p = "p" * PREFIX_MAX
        k = Keys(prefix=long_p, wid="w" * WID_MAX)
        R.hset(k.inflight, "1", job(1))
        self.assertEqual(S.reclaim("w" * WID_MAX, prefix=long_p), [1, 0, []])
        self.assertEqual(R.lrange(k.queue, 0, -1), [ACCEPTED + CRASHED + b"1:" + job(1)])

    def test_worker_holding_many_jobs(self):
        """A worker holding 20,000 jobs in flight and 3 claimed: all requeued
        in one call (claimed ones, then in-flight ones in seq order, lowest
        rightmost), its keys deleted, unregistered, counted."""
        n = 20000
        worker(W1, [job("c%d" % i) for i in range(3)],
                    {str(i): small(i) for i in range(1, n + 1)})
        jobs0, stats0 = jobs(), stats()
        self.assertEqual(S.reclaim(W1, mode="clean"), [n + 3, 0, []])
        q = R.lrange(K.queue, 0, -1)
        self.assertEqual(q[:3], [job("c2"), job("c1"), job("c0")])
        self.assertEqual(q[3:], [ACCEPTED + small(i) for i in range(n, 0, -1)])
        k = Keys(wid=W1)
        self.assertEqual(R.exists(k.claim, k.inflight, k.hb), 0)
        self.assertFalse(R.hexists(K.workers, W1))
        self.assert_moved(jobs0)
        self.assert_counted(stats0, requeued=n + 3)

    def test_sent_twice(self):
        """RECLAIM of a worker already reclaimed, and a second reaping, move
        nothing and change nothing."""
        self.world()
        self.assertEqual(S.reclaim(W1), [5, 0, []])
        before = snapshot()
        self.assertEqual(S.reclaim(W1), [0, 0, []])
        self.assert_unchanged(before, "RECLAIM sent twice changed Redis")
        worker(W3, [job("c3")], {"1": job(3)})
        self.assertEqual(S.reclaim(""), [2, 0, []])
        before = snapshot()
        self.assertEqual(S.reclaim(""), [0, 0, []])
        self.assert_unchanged(before, "a second reaping changed Redis")


# ---- P:backlog and BACKLOG (backlog.lua) -------------------------------------

class Backlog(ScriptCase):
    def reading(self):
        """BACKLOG's reply as a dict; its clock checked against ours."""
        r = S.backlog()
        self.assertNotIsInstance(r, redis.ResponseError)
        names = ("len", "front", "front_since", "left_taken", "retry_due", "now")
        d = dict(zip(names, r))
        self.assertLess(abs(d["now"] - ms()), 5000)
        return d

    def assert_reading(self, **want):
        got = self.reading()
        self.assertEqual({k: got[k] for k in want}, want)
        return got

    def test_wrong_type_keys(self):
        """Each of BACKLOG's three KEYS holding each wrong type: refused
        naming the key, Redis unchanged (it writes nothing anyway)."""
        self.check_wrong_types([(K.queue, "list"), (K.backlog, "hash"), (K.retry, "zset")],
                               lambda: R.lpush(K.queue, job(1)), S.backlog)

    def test_both_ends_counted(self):
        """Producers' jobs at the left, hookd's pushes at the right: FETCH
        takes hookd's first and counts only the left ones it took in
        left_taken; front_since is the due time of the oldest of hookd's
        pushes (a retry's score; now for a job given back); a queue run
        empty resets the front. Through it all, left_taken + LLEN - front
        is the number of left arrivals."""
        register()
        self.assert_reading(len=0, front=0, front_since=0, left_taken=0, retry_due=-1)
        lpush_many(K.queue, [job("p%d" % i) for i in range(5)])
        R.zadd(K.retry, {envelope(1): 1000, envelope(2): 1001, envelope(3): ms() + 3600000})
        r = self.reading()
        self.assertEqual((r["len"], r["front"], r["retry_due"]), (5, 0, 1000))
        self.assertEqual(S.promote(10)[0], 2)
        self.assert_reading(len=7, front=2, front_since=1000, left_taken=0)
        # takes the two retries, then the oldest producer job
        out = S.fetch(0, 3)[0]
        self.assertEqual(out, [envelope(1), envelope(2), job("p0")])
        self.assert_reading(len=4, front=0, front_since=1000, left_taken=1)
        # the fetch's reply lost: RELEASE puts all three back at the right
        t0 = ms()
        self.assertEqual(S.release(1, 3), 3)
        r = self.assert_reading(len=7, front=3, left_taken=1)
        self.assertTrue(t0 - 5 <= r["front_since"] <= ms() + 5, (t0, r))
        # a second release on top keeps the bottom's date
        R.hset(K.inflight, "9", job("x"))
        self.assertEqual(S.release(9, 9), 1)
        self.assert_reading(len=8, front=4, front_since=r["front_since"], left_taken=1)
        # two more producer jobs; everything taken: the queue ran empty
        lpush_many(K.queue, [job("p5"), job("p6")])
        self.assertEqual(len(S.fetch(10, 100)[0]), 10)
        self.assert_reading(len=0, front=0, left_taken=1 + 6)
        # a fetch of an empty queue writes nothing
        before = snapshot()
        self.assertEqual(S.fetch(20, 5)[0], [])
        self.assert_unchanged(before, "a FETCH of an empty queue changed Redis")

    def test_reclaim_pushes_to_the_front(self):
        """RECLAIM's requeued jobs count in the front, from now; jobs it
        dead-letters do not."""
        worker(W1, [job("c1")], {"1": job(1), "2": job(2)})
        R.lpush(K.queue, job("queued"))
        t0 = ms()
        self.assertEqual(S.reclaim(W1)[:2], [3, 0])
        r = self.assert_reading(len=4, front=3, left_taken=0)
        self.assertTrue(t0 - 5 <= r["front_since"] <= ms() + 5, (t0, r))
        worker(W2, [], {"1": job(3)})
        self.assertEqual(S.reclaim(W2, poison_after=1)[:2], [0, 1])
        self.assert_reading(len=4, front=3, front_since=r["front_since"])

    def test_front_partly_taken(self):
        """A FETCH smaller than the front takes from it alone."""
        register()
        R.lpush(K.queue, job("p"))
        R.zadd(K.retry, {envelope(i): 1000 + i for i in range(5)})
        S.promote(10)
        S.fetch(0, 2)
        self.assert_reading(len=4, front=3, front_since=1000, left_taken=0)

    def test_fetch_bytes_cap_counts_net(self):
        """FETCH puts back what passes QUEUE_FETCH_BYTES_MAX: only the jobs
        it kept count as taken."""
        register()
        half = FETCH_BYTES_MAX // 2
        lpush_many(K.queue, [b"a" * half, b"b" * half, b"c" * half])
        self.assertEqual(len(S.fetch(0, 3)[0]), 2)
        self.assert_reading(len=1, front=0, left_taken=2)


# ---- The marks (marks.lua, job.h) ---------------------------------------------

class Marks(ScriptCase):
    SECRET = "whsec_TOPSECRETTOPSECRETTOPSECRET"

    def test_crashed_mode_counts_and_poisons(self):
        """RECLAIM 'crashed' adds one to each in-flight job's crash count
        (claimed jobs are never marked); at poison_after the job goes to P:dead
        as worker_crashed: a valid JSON entry naming the job's id and url
        when printable (null otherwise), no trace of its secret anywhere in
        P:dead, its bytes kept in P:dead:secrets under the entry's dead_id
        as 0xc1 + msgpack {raw: bytes}. Jobs: JSON, msgpack, a retry envelope
        holding its job as a msgpack str (the bin hookd writes is
        test_poisoned_retry_envelope_names_its_job), unprintable id and url,
        bytes that are no job at all."""
        msgpack_job = msgpack.packb({"id": "mp-1", "url": "https://m.example/x",
                                     "payload": 1, "secret": self.SECRET})
        env = msgpack.packb({"_hookd": 1, "id": "env-1", "attempts": 4,
                             "job": job("inner", self.SECRET).decode()})
        odd_url = json.dumps({"id": "odd\u0001", "url": "https://x/\u0001",
                              "secret": self.SECRET}).encode()
        garbage = b"\x00\xffnot a job " + self.SECRET.encode()
        inflight = {"1": CRASHED + b"1:" + job("json", self.SECRET),
                    "2": ACCEPTED + CRASHED + b"1:" + msgpack_job,
                    "3": CRASHED + b"1:" + env, "4": CRASHED + b"1:" + odd_url,
                    "5": CRASHED + b"1:" + garbage, "6": ACCEPTED + job("fresh")}
        worker(W1, [job("claimed")], inflight)
        jobs0, stats0 = jobs(), stats()
        self.assertEqual(S.reclaim(W1, poison_after=2), [2, 5, []])
        self.assertEqual(R.lrange(K.queue, 0, -1),
                         [job("claimed"), ACCEPTED + CRASHED + b"1:" + job("fresh")])
        self.assert_moved(jobs0)
        self.assert_counted(stats0, requeued=2, dead=5, worker_crashed=5)
        want = {"1": ("job-json", "https://r.example:443/hook", 0),
                "2": ("mp-1", "https://m.example/x", 0),
                "3": ("env-1", "https://r.example:443/hook", 4),
                "4": (None, None, 0), "5": (None, None, 0)}
        aside = R.hgetall(K.aside)
        for e in R.lrange(K.dead, 0, -1):
            self.assertNotIn(self.SECRET.encode(), e)
            d = json.loads(e)
            seq = d["dead_id"].rsplit(":", 1)[1]
            self.assertEqual(d["dead_id"], "%s:%s" % (W1, seq))
            self.assertEqual((d["id"], d["url"], d["attempts"]), want[seq])
            self.assertEqual((d["reason"], d["crashes"], d["worker"], d["dead_at"]),
                             ("worker_crashed", 2, W1, NOW))
            kept = aside[d["dead_id"].encode()]
            self.assertEqual(kept[:1], b"\xc1")
            self.assertEqual(msgpack.unpackb(kept[1:], raw=True),
                             {b"raw": unmark(inflight[seq])[0]})

    def test_poisoned_retry_envelope_names_its_job(self):
        """A retry envelope as job_envelope_encode() (job.c) writes it, its
        producer's job in a msgpack bin, and a msgpack job whose body is a bin
        (job.h allows it): poisoned, their entries must still name the id and
        url (plain text), and the envelope's attempts. Contract violation
        while this fails: Redis 7.0's cmsgpack cannot read bin (0xc4..0xc6),
        so describe() (reclaim.lua:66) gets nothing."""
        env = msgpack.packb({"_hookd": 1, "id": "env-1", "attempts": 4, "first_ms": 1,
                             "last_status": 500, "last_error": "http_500",
                             "token": WID + ":9", "job": job("inner", self.SECRET)})
        bin_body = msgpack.packb({"id": "mp-bin", "url": "https://m.example/y",
                                  "body": b"\x00\x01", "secret": self.SECRET})
        worker(W1, [], {"1": CRASHED + b"1:" + env, "2": CRASHED + b"1:" + bin_body})
        self.assertEqual(S.reclaim(W1, poison_after=2), [0, 2, []])
        got = {}
        for e in R.lrange(K.dead, 0, -1):
            self.assertNotIn(self.SECRET.encode(), e)
            d = json.loads(e)
            got[d["dead_id"]] = (d["id"], d["url"], d["attempts"])
        self.assertEqual(got, {W1 + ":1": ("env-1", "https://r.example:443/hook", 4),
                               W1 + ":2": ("mp-bin", "https://m.example/y", 0)},
                         "CONTRACT VIOLATION reclaim.lua:62-78 (describe): the worker_crashed "
                         "entries of a retry envelope and of a msgpack job with a bin lack "
                         "their id and url")

    def test_crash_count_in_entry_is_a_number(self):
        """A job whose crash mark was forged by a producer (0xc1 'crashed:inf:')
        must still give a valid JSON entry. Contract violation while this
        fails: reclaim.lua:103 writes Lua's tostring of the count."""
        worker(W1, [], {"1": CRASHED + b"inf:" + job(1),
                                      "2": CRASHED + b"nan:" + job(2)})
        S.reclaim(W1, poison_after=1)
        for e in R.lrange(K.dead, 0, -1):
            try:
                json.loads(e, parse_constant=lambda c: self.fail("not JSON: " + c))
            except ValueError as err:
                self.fail("CONTRACT VIOLATION reclaim.lua:103 (marks.lua:20 tonumber): a "
                          "forged crash count makes an invalid JSON entry (%s): %s" % (err, e))

    def test_clean_mode_never_counts(self):
        """RECLAIM 'clean' (the worker handed its jobs back) requeues every
        job, even at poison_after 1, with its crash count as it was and the
        accepted mark added once."""
        worker(W1, [], {"1": job(1), "2": CRASHED + b"7:" + job(2),
                                      "3": ACCEPTED + CRASHED + b"3:" + job(3)})
        jobs0 = jobs()
        self.assertEqual(S.reclaim(W1, mode="clean", poison_after=1), [3, 0, []])
        self.assertEqual(R.lrange(K.queue, 0, -1), [
            ACCEPTED + CRASHED + b"3:" + job(3), ACCEPTED + CRASHED + b"7:" + job(2),
            ACCEPTED + job(1)])
        self.assertFalse(R.exists(K.dead))
        self.assert_moved(jobs0)

    def test_park_keeps_the_crash_mark(self):
        """RECORD K parks a job marked accepted, its crash count kept (a job
        parked between two crashes still reaches poison_after)."""
        hset_many(K.inflight, {"1": CRASHED + b"2:" + job(1),
                               "2": ACCEPTED + CRASHED + b"1:" + job(2), "3": job(3)})
        self.assertEqual(S.record([("K", s, O1, "") for s in "123"]), [3, []])
        self.assertEqual(R.lrange(K.parked_list(O1), 0, -1), [
            ACCEPTED + job(3), ACCEPTED + CRASHED + b"1:" + job(2),
            ACCEPTED + CRASHED + b"2:" + job(1)])


# ---- DLQ_MOVE, DLQ_PURGE_ALL --------------------------------------------------

class Dlq(ScriptCase):
    N = DLQ_MOVE_MAX + 5

    def world(self):
        """N dead entries (oldest rightmost), each with a secret kept aside."""
        lpush_many(K.dead, [entry(i) for i in range(self.N)])
        hset_many(K.aside, {"%s:%d" % (WID, i): "s%d" % i for i in range(self.N)})
        R.hset(K.stats, "dead", self.N)

    def triple(self, i, replay=True):
        return (entry(i), job(i) if replay else b"", "%s:%d" % (WID, i))

    def test_wrong_type_keys(self):
        """Each of DLQ_MOVE's four KEYS holding each wrong type: refused
        naming the key, Redis unchanged."""
        self.check_wrong_types([(K.dead, "list"), (K.queue, "list"), (K.aside, "hash"),
                                (K.stats, "hash")], self.world,
                               lambda: S.dlq_move("replayed", [self.triple(0)]))

    def test_triples_at_their_limits(self):
        """0 triples (0, nothing changes), 1, QUEUE_DLQ_MOVE_MAX (each entry
        removed, its job queued or not, its secret dropped, counted) and one
        past it refused; so are an unknown counter and a tail not in triples;
        Redis unchanged."""
        self.world()
        self.assert_refused_unchanged(
            lambda: S.dlq_move("replayed", [self.triple(i) for i in range(DLQ_MOVE_MAX + 1)]),
            "DLQ_MOVE", str(DLQ_MOVE_MAX))
        self.assert_refused_unchanged(lambda: S.dlq_move("deleted", [self.triple(0)]), "DLQ_MOVE")
        self.assert_refused_unchanged(lambda: S.dlq_move("purged", [], tail=[entry(0), b""]),
                                      "DLQ_MOVE")
        before = snapshot()
        self.assertEqual(S.dlq_move("replayed", []), 0)
        self.assert_unchanged(before, "DLQ_MOVE of 0 triples changed Redis")
        jobs0, stats0 = jobs(), stats()
        self.assertEqual(S.dlq_move("replayed", [self.triple(0)]), 1)
        self.assertEqual(S.dlq_move("replayed",
                                    [self.triple(i) for i in range(1, DLQ_MOVE_MAX + 1)]),
                         DLQ_MOVE_MAX)
        self.assertEqual(S.dlq_move("purged", [self.triple(i, False)
                                               for i in range(DLQ_MOVE_MAX + 1, self.N)]),
                         self.N - DLQ_MOVE_MAX - 1)
        self.assertEqual(R.lrange(K.queue, 0, -1), [job(i) for i in range(DLQ_MOVE_MAX, -1, -1)])
        self.assertFalse(R.exists(K.dead, K.aside))
        self.assert_moved(jobs0, [entry(i) for i in range(self.N)],
                          [job(i) for i in range(DLQ_MOVE_MAX + 1)])
        self.assert_counted(stats0, replayed=DLQ_MOVE_MAX + 1, purged=self.N - DLQ_MOVE_MAX - 1)

    def test_sent_twice(self):
        """DLQ_MOVE of the same triples again (an interrupted run resumed)
        finds their entries gone: 0 moved, nothing changes."""
        self.world()
        triples = [self.triple(i) for i in range(3)]
        self.assertEqual(S.dlq_move("replayed", triples), 3)
        before = snapshot()
        self.assertEqual(S.dlq_move("replayed", triples), 0)
        self.assert_unchanged(before, "DLQ_MOVE sent twice changed Redis")

    def test_purge_all(self):
        """DLQ_PURGE_ALL: each of its three KEYS of the wrong type refused,
        Redis unchanged; otherwise both keys deleted and counted once; again,
        0 and nothing changes."""
        self.check_wrong_types([(K.dead, "list"), (K.aside, "hash"), (K.stats, "hash")],
                               self.world, S.dlq_purge_all)
        R.flushall()
        self.world()
        stats0 = stats()
        self.assertEqual(S.dlq_purge_all(), self.N)
        self.assertFalse(R.exists(K.dead, K.aside))
        self.assert_counted(stats0, purged=self.N)
        before = snapshot()
        self.assertEqual(S.dlq_purge_all(), 0)
        self.assert_unchanged(before, "DLQ_PURGE_ALL sent twice changed Redis")


# ---- The counters: P:stats fields that are not integers ----------------------

class Counters(ScriptCase):
    def test_non_integer_counter_refused_before_writes(self):
        """A P:stats field a script increments, or a P:backlog field one
        keeps (backlog.lua), holding a non-integer makes HINCRBY fail; that
        must be found before the first write (refused, Redis unchanged)
        rather than after the move. Contract violation while this fails
        (FETCH even loses the jobs it popped: its HINCRBY unparked comes
        before the HSET into inflight, fetch.lua:78)."""
        def fetch_world():
            register()
            R.lpush(K.parked_list(O1), job("p"))
            R.zadd(K.parked, {O1: 1})
            R.lpush(K.queue, job("q"))

        def one_worker():
            R.hset(Keys(wid=W1).inflight, "1", job(1))
            R.hset(K.workers, W1, "{}")
        # script, counter, world, call, (jobs gone, jobs new) of the whole move
        cases = [
            ("fetch", "unparked", fetch_world, lambda: S.fetch(0, 5, [(O1, 1)]), ((), ())),
            ("fetch", "backlog.left_taken", fetch_world, lambda: S.fetch(0, 5), ((), ())),
            ("promote", "backlog.front", lambda: R.zadd(K.retry, {envelope(1): 1}),
             lambda: S.promote(5), ((), ())),
            ("release", "backlog.front_since", lambda: R.hset(K.inflight, "1", job(1)),
             lambda: S.release(1, 1), ((), ())),
            ("reclaim", "backlog.front", one_worker, lambda: S.reclaim(W1), ((), ())),
            ("backlog", "backlog.left_taken", lambda: R.lpush(K.queue, job(1)), S.backlog,
             ((), ())),
            ("record", "delivered", lambda: R.hset(K.inflight, "1", job(1)),
             lambda: S.record([outcome("A", 1)]), ([job(1)], ())),
            ("accept", "duplicate",
             lambda: (R.hset(K.inflight, "1", job(1)), R.set(K.seen_key(dkey(1)), "x")),
             lambda: S.accept([("1", dkey(1))]), ([job(1)], ())),
            ("promote", "promoted", lambda: R.zadd(K.retry, {envelope(1): 1}),
             lambda: S.promote(5), ((), ())),
            ("release", "requeued", lambda: R.hset(K.inflight, "1", job(1)),
             lambda: S.release(1, 1), ((), ())),
            ("reclaim", "requeued", one_worker, lambda: S.reclaim(W1), ((), ())),
            ("dlq_move", "replayed", lambda: R.lpush(K.dead, entry(1)),
             lambda: S.dlq_move("replayed", [(entry(1), job(1), "")]), ([entry(1)], [job(1)])),
            ("dlq_purge_all", "purged", lambda: R.lpush(K.dead, entry(1)), S.dlq_purge_all,
             ([entry(1)], ()))]
        for name, field, world, call, (gone, new) in cases:
            with self.subTest(name, field=field):
                R.flushall()
                world()
                key, field = (K.backlog, field[8:]) if field.startswith("backlog.") else \
                    (K.stats, field)
                R.hset(key, field, "not-a-number")
                before, jobs0 = snapshot(), jobs()
                reply = call()
                if not isinstance(reply, redis.ResponseError):
                    self.fail("%s counted into a non-integer %s and answered %r" %
                              (name, field, reply))
                whole = collections.Counter(jobs0)
                whole.subtract(gone)
                whole.update(new)
                now = jobs()
                state = ("Redis unchanged" if not diff(before, snapshot()) else
                         "the move happened whole, the reply says it failed" if now == +whole
                         else "JOBS LOST: %s" % short(list((jobs0 - now).elements()), 200))
                self.assertTrue(str(reply).startswith("hookd: "),
                                "CONTRACT VIOLATION %s.lua: HINCRBY %s failed after the writes "
                                "(%s); %s; changes: %s" % (name, field, reply, state,
                                                           diff(before, snapshot())[:4]))
                self.assert_unchanged(before)


# ---- The shebang at maxmemory -------------------------------------------------

class Maxmemory(ScriptCase):
    def world(self):
        """Work for every script: queued jobs, jobs in flight, due retries,
        dead entries, a dead worker."""
        lpush_many(K.queue, [job(i) for i in range(5)])
        hset_many(K.inflight, {str(i): job(i) for i in range(1, 6)})
        R.zadd(K.retry, {envelope(1): 1})
        lpush_many(K.dead, [entry(i) for i in range(3)])
        R.hset(K.aside, "%s:1" % WID, "s")
        worker(W1, [job("c")], {"1": job("w1")})
        register()

    def tearDown(self):
        R.config_set("maxmemory", 0)

    def test_write_scripts_refused_whole(self):
        """With maxmemory below used memory (noeviction), every write script
        is refused with Redis's OOM error before it runs, Redis unchanged;
        HEARTBEAT and DLQ_PURGE_ALL (flags=allow-oom) and the read-only
        ENDPOINTS (flags=no-writes) still run."""
        self.world()
        R.config_set("maxmemory-policy", "noeviction")
        R.config_set("maxmemory", max(1, R.info("memory")["used_memory"] // 2))
        calls = {"fetch": lambda: S.fetch(10, 3), "record": lambda: S.record([outcome("A", 1)]),
                 "accept": lambda: S.accept([("2", dkey(2))]), "promote": lambda: S.promote(5),
                 "release": lambda: S.release(1, 5), "reclaim": lambda: S.reclaim(W1),
                 "dlq_move": lambda: S.dlq_move("purged", [(entry(0), b"", "")]),
                 "health": lambda: S.health([group(O1, failed=20)])}
        for name, call in calls.items():
            with self.subTest(name):
                before = snapshot()
                reply = call()
                self.assertIsInstance(reply, redis.ResponseError, "%s ran at maxmemory" % name)
                self.assertIn("OOM", str(reply))
                self.assert_unchanged(before, "%s refused at maxmemory changed Redis" % name)
        self.assertEqual(S.heartbeat(now=77), 1)
        self.assertEqual(R.get(K.hb), b"77")
        self.assertEqual(S.dlq_purge_all(), 3)
        self.assertFalse(R.exists(K.dead, K.aside))
        self.assertEqual(S.endpoints(), [0, []])


# ---- ENDPOINT_SET -------------------------------------------------------------

EP_ORIGIN = "https://ep.example:443"


def ep_record(origin=EP_ORIGIN, state="open", **fields):
    """An origin's breaker record and its P:endpoints line, as HEALTH leaves
    them, with a parked job."""
    now = ms()
    rec = {"state": state, "reason": "90% of 20 attempts failed within 300 s", "since": now,
           "due": now + 30000 if state == "open" else 0, "cooldown": 30000,
           "win_start": now - 1000, "cur_n": 20, "cur_f": 18, "prev_n": 0, "prev_f": 0,
           "failing_since": now - 5000, "attempts": 20, "failures": 18, "trips": 1,
           "rate": 900}
    rec.update(fields)
    R.hset(K.record_key(origin), mapping=rec)
    if state != "closed":
        R.hset(K.endpoints, origin, "%s %d %d" % (state, rec["since"], rec["due"]))
    R.set(K.gen, 3)
    R.lpush(K.parked_list(origin), job(1))
    R.zadd(K.parked, {origin: rec["due"] or now})
    return rec


class EndpointSet(ScriptCase):
    KEYS = ((K.endpoints, "hash"), (K.gen, "string"), (K.events, "stream"), (K.queue, "list"),
            (K.stats, "hash"), (K.parked, "zset"), (K.record_key(EP_ORIGIN), "hash"))

    def test_wrong_type_keys(self):
        for action in ("disable", "enable"):
            self.check_wrong_types(self.KEYS, ep_record,
                                   lambda: S.endpoint_set(action, EP_ORIGIN))

    def test_malformed_values_refused(self):
        for what, spoil, words in (
                ("gen", lambda: R.set(K.gen, "x1"), ("not a whole number",)),
                ("counter", lambda: R.hset(K.stats, "endpoints_disabled", "1.5"),
                 ("endpoints_disabled",)),
                ("state", lambda: R.hset(K.record_key(EP_ORIGIN), "state", "ajar"),
                 ("holds state ajar",)),
                ("field", lambda: R.hset(K.record_key(EP_ORIGIN), "due", "-1"),
                 ("field due",))):
            with self.subTest(what):
                R.flushall()
                ep_record()
                spoil()
                self.assert_refused_unchanged(lambda: S.endpoint_set("disable", EP_ORIGIN),
                                              *words)

    def test_arguments_at_their_limits(self):
        ok = (dict(origin="o"), dict(origin="h" * ORIGIN_MAX), dict(events_max=EVENTS_MIN),
              dict(events_max=EVENTS_MAX), dict(window=BWINDOW_MIN), dict(window=BWINDOW_MAX),
              dict(ops_url="https://ops.example/" + "x" * (URL_MAX - 20)))
        bad = (dict(origin=""), dict(origin="h" * (ORIGIN_MAX + 1)),
               dict(events_max=EVENTS_MIN - 1), dict(events_max=EVENTS_MAX + 1),
               dict(window=BWINDOW_MIN - 1), dict(window=BWINDOW_MAX + 1),
               dict(ops_url="https://ops.example/" + "x" * (URL_MAX + 1 - 20)),
               dict(origin_json="ep"), dict(action="close"))
        for kw in ok:
            with self.subTest(ok=short(kw, 60)):
                R.flushall()
                kw = dict(kw)
                origin = kw.pop("origin", EP_ORIGIN)
                self.assertEqual(S.endpoint_set("disable", origin, **kw),
                                 [b"none", b"disabled"])
        for kw in bad:
            with self.subTest(bad=short(kw, 60)):
                R.flushall()
                ep_record()
                kw = dict(kw)
                origin, action = kw.pop("origin", EP_ORIGIN), kw.pop("action", "disable")
                self.assert_refused_unchanged(lambda: S.endpoint_set(action, origin, **kw),
                                              "ENDPOINT_SET")
        ep_record()
        for tail in ([], [K.endpoint, "disable", EP_ORIGIN, json.dumps(EP_ORIGIN), 1, ""],
                     [K.endpoint, "disable", EP_ORIGIN, json.dumps(EP_ORIGIN), 1, "", 1000, 1]):
            with self.subTest(args=len(tail)):
                self.assert_refused_unchanged(
                    lambda: S.endpoint_set("disable", EP_ORIGIN, tail=tail), "ENDPOINT_SET")

    def test_disable_then_enable(self):
        rec = ep_record()
        st0 = stats()
        self.assertEqual(S.endpoint_set("disable", EP_ORIGIN), [b"open", b"disabled"])
        h = {f.decode(): v.decode() for f, v in R.hgetall(K.record_key(EP_ORIGIN)).items()}
        self.assertEqual((h["state"], h["reason"], h["due"]),
                         ("disabled", "disabled by operator", "0"))
        self.assertEqual(h["cur_n"], "20", "disable keeps the counts")
        self.assertEqual(R.pttl(K.record_key(EP_ORIGIN)), -1)
        self.assertTrue(R.hget(K.endpoints, EP_ORIGIN).startswith(b"disabled "))
        self.assertEqual(R.get(K.gen), b"4")
        self.assertLessEqual(abs(R.zscore(K.parked, EP_ORIGIN) - ms()), 5000)
        self.assert_counted(st0, endpoints_disabled=1)
        ev = events()
        self.assertEqual([(e["event"], e["origin"], e["reason"], e["failure_rate"]) for e in ev],
                         [("endpoint.disabled", EP_ORIGIN, "disabled by operator", "0.9")])
        self.assertEqual(R.llen(K.queue), 0, "no ops URL, no job")

        self.assertEqual(S.endpoint_set("enable", EP_ORIGIN), [b"disabled", b"closed"])
        h = {f.decode(): v.decode() for f, v in R.hgetall(K.record_key(EP_ORIGIN)).items()}
        for f in ("due", "cooldown", "win_start", "cur_n", "cur_f", "prev_n", "prev_f",
                  "failing_since"):
            self.assertEqual(h[f], "0", f)
        self.assertEqual((h["state"], h["reason"], h["trips"]),
                         ("closed", "enabled by operator", str(rec["trips"])))
        self.assertTrue(2 * 300000 < R.pttl(K.record_key(EP_ORIGIN)) <= 2 * 300000 + 1000)
        self.assertFalse(R.hexists(K.endpoints, EP_ORIGIN))
        self.assertEqual(R.get(K.gen), b"5")
        self.assert_counted(st0, endpoints_disabled=1, endpoints_enabled=1)
        self.assertEqual([e["event"] for e in events()], ["endpoint.disabled", "endpoint.enabled"])
        self.assertEqual(R.llen(K.parked_list(EP_ORIGIN)), 1, "parked jobs stay parked")

    def test_ops_job_pushed(self):
        ep_record(state="half_open")
        origin_json = json.dumps(EP_ORIGIN).replace("/", "\\/")     # as C may escape it
        self.assertEqual(S.endpoint_set("disable", EP_ORIGIN, ops_url="https://ops.example/h",
                                        origin_json=origin_json), [b"half_open", b"disabled"])
        self.assertEqual(R.llen(K.queue), 1)
        j = msgpack.unpackb(R.lindex(K.queue, 0), raw=False)
        self.assertEqual((j["url"], j["event"]), ("https://ops.example/h", "endpoint.disabled"))
        body = json.loads(j["body"])
        self.assertEqual((body["type"], body["data"]["origin"], body["data"]["reason"]),
                         ("endpoint.disabled", EP_ORIGIN, "disabled by operator"))
        self.assertEqual(j["id"], "evt_" + body["id"])

    def test_not_parked_not_added(self):
        """ZADD XX: an origin without parked jobs is not made one."""
        S.endpoint_set("disable", EP_ORIGIN)
        self.assertEqual(R.zcard(K.parked), 0)
        self.assertEqual(S.endpoint_set("enable", EP_ORIGIN), [b"disabled", b"closed"])
        self.assertEqual(R.zcard(K.parked), 0)

    def test_sent_twice(self):
        """The second of two equal calls changes nothing and says so."""
        for action, state in (("disable", "disabled"), ("enable", "closed")):
            with self.subTest(action):
                R.flushall()
                ep_record()
                first = S.endpoint_set(action, EP_ORIGIN)
                self.assertEqual(first, [b"open", state.encode()])
                before = snapshot()
                self.assertEqual(S.endpoint_set(action, EP_ORIGIN), [state.encode()] * 2)
                self.assert_unchanged(before, "a repeated call changed Redis")

    def test_enable_unknown_or_closed(self):
        before = snapshot()
        self.assertEqual(S.endpoint_set("enable", EP_ORIGIN), [b"none", b"none"])
        self.assert_unchanged(before)
        ep_record(state="closed")
        before = snapshot()
        self.assertEqual(S.endpoint_set("enable", EP_ORIGIN), [b"closed", b"closed"])
        self.assert_unchanged(before)


# ---- ENDPOINT_COUNTS ----------------------------------------------------------

class EndpointCounts(ScriptCase):
    KEYS = ((K.endpoints, "hash"), (K.throttled, "zset"), (K.parked, "zset"))

    def world(self):
        R.hset(K.endpoints, mapping={"a": "open 1 2", "b": "open 1 2", "c": "half_open 1 2",
                                     "d": "disabled 1 0", "e": "garbage", "f": ""})
        now = ms()
        R.zadd(K.throttled, {"a": now + 60000, "g": now + 60000, "h": now - 1000})
        R.zadd(K.parked, {"a": 1, "x": 2, "y": 3})

    def test_wrong_type_keys(self):
        self.check_wrong_types(self.KEYS, self.world, S.endpoint_counts)

    def test_counts(self):
        self.assertEqual(S.endpoint_counts(), [0, 0, 0, 0, 0, 1])
        self.world()
        before = snapshot()
        self.assertEqual(S.endpoint_counts(), [2, 1, 1, 2, 3, 1])
        self.assertEqual(S.endpoint_counts(), [2, 1, 1, 2, 3, 1])
        self.assert_unchanged(before)

    def test_entries_at_their_limit(self):
        """10,000 entries are counted whole; one more, about 10,000 of them."""
        hset_many(K.endpoints, {"o%d" % i: "open 1 2" for i in range(10000)})
        self.assertEqual(S.endpoint_counts(), [10000, 0, 0, 0, 0, 1])
        R.hset(K.endpoints, "one more", "disabled 1 0")
        r = S.endpoint_counts()
        self.assertEqual(r[5], 0)
        self.assertTrue(10000 <= r[0] + r[2] <= 11000, r)


# ---- The limits themselves ----------------------------------------------------

class Limits(unittest.TestCase):
    def test_each_script_names_the_limit_c_uses(self):
        """Each script's own constant (the assembled text) is the C one, so a
        limit changed on one side only fails here even before the boundary
        tests run."""
        text = {n: S.text[n].decode() for n in Scripts.NAMES}
        for name, pattern, value in (
                ("fetch", r"FETCH_MAX, PULL_MAX, ORIGIN_MAX = (\d+), (\d+), (\d+)",
                 (FETCH_MAX, PULL_MAX, ORIGIN_MAX)),
                ("record", r"RECORD_MAX, ORIGIN_MAX, DELAY_MAX = (\d+), (\d+)",
                 (RECORD_MAX, ORIGIN_MAX)),
                ("accept", r"ACCEPT_MAX, DAY = (\d+)", (ACCEPT_MAX,)),
                ("promote", r"PROMOTE_MAX = (\d+)", (PROMOTE_MAX,)),
                ("release", r"FETCH_MAX = (\d+)", (FETCH_MAX,)),
                ("dlq_move", r"MOVE_MAX = (\d+)", (DLQ_MOVE_MAX,)),
                ("reclaim", r"int_arg\(ARGV\[4\], (\d+), (\d+)\)", (POISON_MIN, POISON_MAX)),
                ("health", r"GROUPS_MAX = (\d+)", (HEALTH_MAX,)),
                ("endpoint_set", r"EP_ORIGIN_MAX, EP_URL_MAX = (\d+), (\d+)",
                 (QUEUE["QUEUE_ORIGIN_MAX"], URL_MAX)),
                ("endpoint_set", r"int_arg\(ARGV\[7\], (\d+), (\d+)\)",
                 (BWINDOW_MIN, BWINDOW_MAX))):
            with self.subTest(name):
                m = re.search(pattern, text[name])
                self.assertIsNotNone(m, "%s.lua no longer matches %s" % (name, pattern))
                self.assertEqual(tuple(int(g) for g in m.groups()), value)
        self.assertTrue(all(t.startswith("#!lua") for t in text.values()))
        self.assertTrue(text["heartbeat"].startswith("#!lua flags=allow-oom\n"))
        self.assertTrue(text["dlq_purge_all"].startswith("#!lua flags=allow-oom\n"))
        self.assertTrue(text["endpoints"].startswith("#!lua flags=no-writes\n"))
        self.assertTrue(text["endpoint_counts"].startswith("#!lua flags=no-writes\n"))
        self.assertEqual(ORIGIN_MAX, QUEUE["QUEUE_ORIGIN_MAX"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
