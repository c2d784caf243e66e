"""conservation.py -- is every job hookd was given in exactly one place?

DESIGN.md's invariant: a job is in exactly one of P:queue, P:claim:<wid>,
P:inflight:<wid>, P:retry, P:parked:<origin>, P:dead, or has left as
delivered (or as a duplicate removed by ACCEPT, or purged by an operator).
This module reads every one of those keys, decodes the id of each element
whatever form it has there, and compares with the ids the caller produced.

    report = check(r, prefix, produced_ids, delivered_counts, trimmed=0)
    report.assert_conserved()       # AssertionError with a readable summary

produced_ids: the ids pushed, an iterable (an id pushed twice is listed
twice: two copies) or a mapping id -> copies. delivered_counts: mapping id
-> successful deliveries, or an iterable of ids (a receiver's log of
webhook-ids, one per delivery), or None.

The forms a job takes in Redis, all decoded here:
  - a producer's job: a JSON object or a msgpack map with an "id" key;
  - the same behind hookd's marks: "\\xc1accepted:" then optionally
    "\\xc1crashed:<n>:" (job.h, src/lua/lib/marks.lua);
  - a retry envelope (P:retry, or promoted back into the lists): a msgpack
    map whose first key is "_hookd", with "id" and the producer's job bytes
    in "job" (job_envelope_encode in src/job.c);
  - a dead-letter entry (P:dead): a JSON object with "id" and the job as
    "job" (object), "raw" (text) or "raw_base64"; or, for a job dead as
    worker_crashed whose id is not printable, "raw_aside": true with the
    bytes in P:dead:secrets under its dead_id ("\\xc1" + msgpack {raw}).

The rule (per id, counting copies; m = copies produced):
  strict (allow_duplicates=False, the default; for a settled run or the
    model test, where "delivered" means recorded delivered): the copies
    found in Redis + delivered + deduped + purged must be exactly m. Fewer
    is lost, more is doubled; an id twice in one list counts twice.
  at-least-once (allow_duplicates=True; a live run with crashes, where a
    job can be delivered and still be requeued, or delivered twice, or a
    run still moving, where a POST has succeeded before its RECORD landed,
    so the job is delivered and still in P:inflight): the
    copies found in Redis + deduped + purged must be at most m (Redis never
    holds more copies than were produced), and with the deliveries at least
    m. Deliveries beyond that are reported as redelivered, not an error.
Dead entries trimmed by dead_max (P:stats dead_trimmed) are gone without a
trace: pass how many copies you expect trimmed and lost must be exactly that
many. deduped and purged may likewise be plain counts instead of mappings;
those counts join trimmed in the number of copies expected missing.
Ids found that were never produced are unknown (an error unless
allow_unknown); elements whose id cannot be read are listed as undecodable
(always an error).

CLI (exit 0 when conserved, 1 with the report otherwise):
  python3 conservation.py --redis URL --prefix P --ids FILE [--delivered FILE]
      [--trimmed N] [--allow-duplicates]
FILE for --ids: one id per line. For --delivered: one webhook-id per line
per delivery, or "id<TAB>count" lines, or a JSON object {id: count}.
"""
import base64
import collections
import collections.abc
import json
import re
import sys

import msgpack

ACCEPTED = b"\xc1accepted:"
CRASHED = b"\xc1crashed:"
ASIDE_TAG = b"\xc1"

# Places in the order they are reported.
REDIS_PLACES = ("queue", "claim", "inflight", "retry", "parked", "dead")
OUT_PLACES = ("delivered", "deduped", "purged")
PLACES = REDIS_PLACES + OUT_PLACES


def unmark(data):
    """data without hookd's marks: (bytes, accepted, crashes)."""
    accepted, crashes = False, 0
    if data.startswith(ACCEPTED):
        accepted, data = True, data[len(ACCEPTED):]
    if data.startswith(CRASHED):
        colon = data.find(b":", len(CRASHED))
        n = data[len(CRASHED):colon] if colon > 0 else b""
        if n.isdigit():
            crashes, data = int(n), data[colon + 1:]
    return data, accepted, crashes


def _text(v):
    if isinstance(v, bytes):
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return v if isinstance(v, str) else None


def _decode(data):
    """A JSON object or msgpack map as a dict (msgpack strings as bytes),
    or None."""
    if data[:1] == b"{":
        try:
            d = json.loads(data)
        except ValueError:
            return None
    else:
        try:
            d = msgpack.unpackb(data, raw=True, strict_map_key=False)
        except Exception:           # msgpack raises a zoo of exceptions
            return None
    return d if isinstance(d, dict) else None


def _get(d, key):
    v = d.get(key)
    return d.get(key.encode()) if v is None else v


def job_id(data):
    """The id of a job as hookd stores it in a list, hash or sorted set:
    marks stripped, a retry envelope opened. None when there is none."""
    if not isinstance(data, bytes):
        data = data.encode("utf-8")
    body, _, _ = unmark(data)
    d = _decode(body)
    if d is None:
        return None
    first = next(iter(d), None)
    if first in ("_hookd", b"_hookd"):
        i = _text(_get(d, "id"))
        if i is not None:
            return i
        inner = _get(d, "job")
        return job_id(inner) if isinstance(inner, (bytes, str)) else None
    return _text(_get(d, "id"))


def aside_raw(value):
    """The job bytes kept aside for a worker_crashed entry, or None."""
    if not value or not value.startswith(ASIDE_TAG):
        return None
    try:
        d = msgpack.unpackb(value[1:], raw=True, strict_map_key=False)
    except Exception:
        return None
    raw = d.get(b"raw") if isinstance(d, dict) else None
    return raw if isinstance(raw, bytes) else None


def dead_entry_id(entry, aside_value=None):
    """The id of a dead-letter entry: its "id", else the id of the job it
    holds ("job", "raw", "raw_base64", or the bytes kept aside, passed as
    aside_value: the P:dead:secrets value under the entry's dead_id)."""
    try:
        e = json.loads(entry)
    except ValueError:
        return None
    if not isinstance(e, dict):
        return None
    if isinstance(e.get("id"), str):
        return e["id"]
    job = e.get("job")
    if isinstance(job, dict) and isinstance(job.get("id"), str):
        return job["id"]
    if isinstance(e.get("raw"), str):
        return job_id(e["raw"].encode("utf-8"))
    if isinstance(e.get("raw_base64"), str):
        try:
            return job_id(base64.b64decode(e["raw_base64"]))
        except ValueError:
            return None
    if e.get("raw_aside") and aside_value is not None:
        raw = aside_raw(aside_value)
        return job_id(raw) if raw is not None else None
    return None


def _needs_aside(entry):
    """The dead_id whose aside value names this entry's job, or None."""
    try:
        e = json.loads(entry)
    except ValueError:
        return None
    if (isinstance(e, dict) and not isinstance(e.get("id"), str) and e.get("raw_aside") and
            isinstance(e.get("dead_id"), str)):
        return e["dead_id"]
    return None


def _counts(v):
    """None, an int, a mapping or an iterable of ids -> (Counter, int)."""
    if v is None:
        return collections.Counter(), 0
    if isinstance(v, int):
        return collections.Counter(), v
    if isinstance(v, collections.abc.Mapping):
        return collections.Counter({k: int(n) for k, n in v.items() if int(n)}), 0
    return collections.Counter(v), 0


def _glob_escape(s):
    return re.sub(r"([*?\[\]\\])", r"\\\1", s)


class Report:
    """What check() found.
    places     place -> copies of produced ids found there (PLACES)
    where      id -> list of "place" or "place:key-suffix", every copy found
    lost       ids missing (one entry per missing copy), sorted
    doubled    id -> where, for ids with more copies than produced
    unknown    (where, id) of ids found that were never produced
    undecodable (where, first bytes) of elements with no readable id
    redelivered id -> deliveries beyond the produced copies
               (allow_duplicates only)
    expected_missing  copies the caller said are gone without a trace
               (trimmed + count-only deduped/purged)
    errors     keys of the wrong type, and the like"""

    def __init__(self, allow_duplicates, allow_unknown, expected_missing, produced):
        self.allow_duplicates = allow_duplicates
        self.allow_unknown = allow_unknown
        self.expected_missing = expected_missing
        self.produced = produced
        self.places = {p: 0 for p in PLACES}
        self.where = collections.defaultdict(list)
        self.lost = []
        self.doubled = {}
        self.unknown = []
        self.undecodable = []
        self.redelivered = {}
        self.errors = []

    @property
    def ok(self):
        return (not self.doubled and len(self.lost) == self.expected_missing and
                not self.undecodable and not self.errors and
                (self.allow_unknown or not self.unknown))

    def summary(self, limit=20):
        lines = ["%d ids (%d copies) produced; %s" % (
            len(self.produced), sum(self.produced.values()),
            ", ".join("%s %d" % (p, n) for p, n in self.places.items() if n) or "none found")]
        if self.expected_missing or self.lost:
            lines.append("lost %d (expected missing: %d)%s" % (
                len(self.lost), self.expected_missing,
                ": " + ", ".join(map(repr, self.lost[:limit])) if self.lost and
                len(self.lost) != self.expected_missing else ""))
        for i, (k, v) in enumerate(sorted(self.doubled.items())):
            if i == limit:
                lines.append("... %d more doubled" % (len(self.doubled) - limit))
                break
            lines.append("doubled %r (produced %d): %s" % (k, self.produced[k], ", ".join(v)))
        if self.unknown:
            lines.append("unknown %d: %s" % (len(self.unknown), ", ".join(
                "%r in %s" % (i, w) for w, i in self.unknown[:limit])))
        if self.undecodable:
            lines.append("undecodable %d: %s" % (len(self.undecodable), ", ".join(
                "%s %r" % (w, b) for w, b in self.undecodable[:limit])))
        if self.redelivered:
            lines.append("redelivered (at-least-once) %d ids, %d extra deliveries" % (
                len(self.redelivered), sum(self.redelivered.values())))
        lines.extend("error: " + e for e in self.errors)
        return "\n".join(lines)

    def assert_conserved(self):
        if not self.ok:
            raise AssertionError("jobs not conserved:\n" + self.summary())

    def __repr__(self):
        return "<Report %s>" % ("ok" if self.ok else "NOT CONSERVED") + "\n" + self.summary()


class Checker:
    """check() with a cache of decoded elements, for a caller that checks
    the same Redis many times (the model test checks after every step)."""

    def __init__(self, cache_max=200000):
        self.cache = {}             # (element bytes) -> id, for list/hash/zset elements
        self.dead_cache = {}        # dead entry bytes -> (id, dead_id if the id is aside)
        self.cache_max = cache_max

    def _job_id(self, data):
        i = self.cache.get(data, self)
        if i is self:
            if len(self.cache) >= self.cache_max:
                self.cache.clear()
            i = self.cache[data] = job_id(data)
        return i

    def _dead(self, entry):
        v = self.dead_cache.get(entry)
        if v is None:
            if len(self.dead_cache) >= self.cache_max:
                self.dead_cache.clear()
            d = _needs_aside(entry)
            v = self.dead_cache[entry] = (None if d else dead_entry_id(entry), d)
        return v

    def read(self, r, prefix):
        """Everything in the places under prefix: ([(place, key suffix,
        element)], {dead_id: aside value} for the entries that need it,
        [errors])."""
        p = prefix + ":"
        out, errors = [], []
        # One round trip for the shared keys and the first SCAN of each
        # per-worker / per-origin pattern ("P:parked:*" does not match the
        # zset P:parked itself); more only for a large key space.
        pats = [(place, _glob_escape(p + place + ":") + "*") for place in
                ("claim", "inflight", "parked")]
        pipe = r.pipeline(transaction=False)
        pipe.lrange(p + "queue", 0, -1)
        pipe.zrange(p + "retry", 0, -1)
        pipe.lrange(p + "dead", 0, -1)
        for _, pat in pats:
            pipe.scan(0, match=pat, count=10000)
        res = pipe.execute(raise_on_error=False)
        for place, v in zip(("queue", "retry", "dead"), res):
            if isinstance(v, Exception):
                errors.append("%s%s: %s" % (p, place, v))
            else:
                out.extend((place, "", e) for e in v)
        keys = []
        for (place, pat), (cursor, found) in zip(pats, res[3:]):
            found = set(found)
            while cursor:
                cursor, more = r.scan(cursor, match=pat, count=10000)
                found.update(more)
            keys.extend((place, k) for k in sorted(found))
        pipe = r.pipeline(transaction=False)
        for place, k in keys:
            if place == "inflight":
                pipe.hvals(k)
            else:
                pipe.lrange(k, 0, -1)
        for (place, k), v in zip(keys, pipe.execute(raise_on_error=False) if keys else []):
            name = k.decode("utf-8", "replace")
            if isinstance(v, Exception):
                errors.append("%s: %s" % (name, v))
            else:
                suffix = name[len(p) + len(place) + 1:]
                out.extend((place, suffix, e) for e in v)
        want = sorted({d for place, _, e in out if place == "dead" for d in [self._dead(e)[1]]
                       if d})
        asides = dict(zip(want, r.hmget(p + "dead:secrets", want))) if want else {}
        return out, asides, errors

    def check(self, r, prefix, produced_ids, delivered_counts=None, trimmed=0, deduped=None,
              purged=None, allow_duplicates=False, allow_unknown=False):
        produced, _ = _counts(produced_ids)
        delivered, _ = _counts(delivered_counts)
        dedup, dedup_n = _counts(deduped)
        purge, purge_n = _counts(purged)
        rep = Report(allow_duplicates, allow_unknown, trimmed + dedup_n + purge_n, produced)
        elements, asides, rep.errors = self.read(r, prefix)
        held = collections.Counter()        # copies in Redis, deduped, purged
        for place, suffix, e in elements:
            if place == "dead":
                i, d = self._dead(e)
                if d:
                    i = dead_entry_id(e, asides.get(d))
            else:
                i = self._job_id(e)
            w = place + (":" + suffix if suffix else "")
            if i is None:
                rep.undecodable.append((w, e[:60]))
                continue
            if i not in produced:
                rep.unknown.append((w, i))
                continue
            held[i] += 1
            rep.places[place] += 1
            rep.where[i].append(w)
        for place, c in (("deduped", dedup), ("purged", purge), ("delivered", delivered)):
            for i, n in sorted(c.items()):
                if i not in produced:
                    rep.unknown.append((place, i))
                    continue
                rep.places[place] += n
                rep.where[i].extend([place] * n)
                if place != "delivered":
                    held[i] += n
        for i, m in produced.items():
            h, d = held[i], delivered[i]
            if allow_duplicates:
                if h > m:
                    rep.doubled[i] = rep.where[i]
                rep.lost.extend([i] * max(0, m - h - d))
                if h + d > m and d:
                    rep.redelivered[i] = min(d, h + d - m)
            else:
                if h + d > m:
                    rep.doubled[i] = rep.where[i]
                rep.lost.extend([i] * max(0, m - h - d))
        rep.lost.sort()
        return rep


def check(r, prefix, produced_ids, delivered_counts=None, trimmed=0, deduped=None,
          purged=None, allow_duplicates=False, allow_unknown=False):
    """Read every place a job can be under prefix and compare with the ids
    produced (module docstring: the forms and the rule). Returns a Report;
    report.assert_conserved() raises AssertionError with a summary."""
    return Checker().check(r, prefix, produced_ids, delivered_counts, trimmed, deduped, purged,
                           allow_duplicates, allow_unknown)


def _read_delivered(path):
    with open(path) as f:
        text = f.read()
    if text.lstrip().startswith("{"):
        return {k: int(v) for k, v in json.loads(text).items()}
    c = collections.Counter()
    for line in text.splitlines():
        if not line.strip():
            continue
        i, _, n = line.partition("\t")
        c[i] += int(n) if n.strip() else 1
    return c


def main(argv=None):
    import argparse

    import redis

    ap = argparse.ArgumentParser(description="Is every produced job in exactly one place?")
    ap.add_argument("--redis", required=True, help="redis://host:port[/db]")
    ap.add_argument("--prefix", default="hookd")
    ap.add_argument("--ids", required=True, help="file: one produced id per line")
    ap.add_argument("--delivered", help="file: webhook-ids delivered (module docstring)")
    ap.add_argument("--trimmed", type=int, default=0, help="copies expected trimmed from P:dead")
    ap.add_argument("--allow-duplicates", action="store_true",
                    help="at-least-once: a delivered id may be delivered again or be elsewhere")
    ap.add_argument("--allow-unknown", action="store_true")
    a = ap.parse_args(argv)
    with open(a.ids) as f:
        ids = [line.rstrip("\n") for line in f if line.strip()]
    delivered = _read_delivered(a.delivered) if a.delivered else None
    rep = check(redis.Redis.from_url(a.redis), a.prefix, ids, delivered, a.trimmed,
                allow_duplicates=a.allow_duplicates, allow_unknown=a.allow_unknown)
    print(("conserved\n" if rep.ok else "NOT CONSERVED\n") + rep.summary())
    return 0 if rep.ok else 1


if __name__ == "__main__":
    sys.exit(main())
