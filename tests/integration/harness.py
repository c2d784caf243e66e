"""harness.py -- real processes for hookd's integration tests.

Starts a private redis-server on a free 127.0.0.1 port, real HTTP receivers
(receiver.js under node), and hookd itself, each in a temporary directory,
and stops them all at the end. Waiting is always on a condition with a
deadline (a counter reaching a value), never a bare sleep.
"""
import atexit
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import redis

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "..", "examples")
HOOKD = os.environ.get("HOOKD_BIN", os.path.join(HERE, "..", "..", "build", "hookd"))
# The assembled Lua scripts, byte for byte what hookd sends with EVAL
# (cmake/embed_lua.cmake writes them; tests/CMakeLists.txt sets the variable).
LUA_DIR = os.environ.get("HOOKD_LUA_DIR", os.path.join(HERE, "..", "..", "build", "lua"))
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
# HOOKD_TEST_REDIS_TLS=1: every Redis the harness starts speaks TLS only,
# and every URL and config built with redis_url / redis_config says
# rediss:// with the test CA (tests/CMakeLists.txt: integration_faults_tls,
# integration_hostile_tls). Taken out of the environment here, so the hookd
# processes the tests start do not warn about a HOOKD_ variable they do
# not know.
REDIS_TLS = os.environ.pop("HOOKD_TEST_REDIS_TLS", "") == "1"
# What AddressSanitizer, LeakSanitizer and UBSan print; in a sanitizer build
# any of these in a hookd log fails the test that started that hookd.
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     # valgrind memcheck (tests/integration/valgrind-hookd)
                     "Invalid read", "Invalid write", "Invalid free", "are definitely lost",
                     "are indirectly lost", "Conditional jump or move depends",
                     "Use of uninitialised value", "Syscall param",
                     "exited with status 99")


# For a primary with replicas (and a replica that may be promoted): the
# initial sync starts at once, not after Redis 7's 5 s wait for more
# replicas to share a diskless transfer.
NO_SYNC_DELAY = ("--repl-diskless-sync-delay", "0")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Certs:
    """Certificates for TLS Redis, made with the openssl command: a CA, a
    server certificate it signs for 127.0.0.1 and localhost (subjectAltName;
    no other name), a client certificate it signs, and a second CA that
    signed none of them (the wrong CA). EC keys on prime256v1: the whole set
    takes some 50 ms. Paths are attributes: ca, ca_key, server_cert,
    server_key, client_cert, client_key, other_ca."""

    def __init__(self, d):
        self.dir = d
        self.ca, self.ca_key = self._self_signed("ca", "hookd test CA")
        self.other_ca, _ = self._self_signed("other-ca", "hookd unrelated CA")
        self.server_cert, self.server_key = self._signed(
            "server", "127.0.0.1", "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
            "extendedKeyUsage = serverAuth, clientAuth\n")
        self.client_cert, self.client_key = self._signed(
            "client", "hookd test client", "extendedKeyUsage = clientAuth\n")

    def _path(self, name):
        return os.path.join(self.dir, name)

    def _openssl(self, *args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    def _self_signed(self, name, cn):
        cert, key = self._path(name + ".pem"), self._path(name + ".key")
        self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
                      "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                      "-days", "30", "-subj", "/CN=" + cn)
        return cert, key

    def _signed(self, name, cn, ext):
        cert, key = self._path(name + ".pem"), self._path(name + ".key")
        csr, extfile = self._path(name + ".csr"), self._path(name + ".ext")
        with open(extfile, "w") as f:
            f.write("basicConstraints = critical, CA:FALSE\n" + ext)
        self._openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
                      "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", csr,
                      "-subj", "/CN=" + cn)
        self._openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
                      "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "30",
                      "-extfile", extfile, "-out", cert)
        return cert, key


_certs = None


def certs():
    """The test run's Certs, made on first use (once per process, in a temp
    dir of their own removed at exit: a Procs' dir goes at its close)."""
    global _certs
    if _certs is None:
        d = tempfile.mkdtemp(prefix="hookd-certs-")
        atexit.register(shutil.rmtree, d, True)
        _certs = Certs(d)
    return _certs


def redis_url(port, password=None, db=None, tls=None, host="127.0.0.1"):
    """The URL of the Redis the harness started on port: rediss:// when tls
    (default: HOOKD_TEST_REDIS_TLS), [:password@], [/db]."""
    tls = REDIS_TLS if tls is None else tls
    return "%s://%s%s:%d%s" % ("rediss" if tls else "redis",
                               ":%s@" % password if password else "", host, port,
                               "/%d" % db if db is not None else "")


def redis_config(port, password=None, db=None, tls=None, **kw):
    """The config keys reaching that Redis: redis = redis_url(...), and with
    TLS redis_ca_file = the test CA; kw (redis_* keys, say) added over them."""
    tls = REDIS_TLS if tls is None else tls
    cfg = {"redis": redis_url(port, password, db, tls)}
    if tls:
        cfg["redis_ca_file"] = certs().ca
    cfg.update(kw)
    return cfg


def redis_args(port, password=None, db=None, tls=None, **kw):
    """redis_config as command-line options, for the CLI commands
    (--redis URL [--redis-ca-file PATH] ...)."""
    args = []
    for k, v in redis_config(port, password, db, tls, **kw).items():
        args += ["--" + k.replace("_", "-"), str(v)]
    return args


def free_cluster_port():
    """A port P on 127.0.0.1 with P + 10000 free too: a cluster node's bus
    listens on P + 10000, so P is drawn below the ephemeral range (32768
    up on Linux), where free_port's P + 10000 could pass 65535."""
    for _ in range(200):
        port = random.randrange(20000, 30000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue
    raise AssertionError("no free port pair P, P + 10000 for a cluster node")


def served(r, cond):
    """cond(r), or False while r's server does not accept yet (a unix
    socket's file exists from bind(), before listen()) or is loading."""
    try:
        return cond(r)
    except (redis.ConnectionError, redis.BusyLoadingError):
        return False


def wait_for(cond, timeout, what, interval=0.02):
    """Poll cond() until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(interval)


class Procs:
    """Owns every process and temp dir a test starts."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="hookd-it-")
        self.procs = []

    def spawn(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def redis(self, appendonly=False, port=None, d=None, extra=(), tls=None,
              auth_clients="no", password=None, db=0, appendfsync="always"):
        """Start a redis-server on 127.0.0.1 (port: a free one) and return
        (port, client). tls (default: HOOKD_TEST_REDIS_TLS): TLS only (no
        plain port), certificates from certs(), --tls-auth-clients
        auth_clients (no, optional, yes); the client connects with the test
        CA and the client certificate. password: --requirepass, and the
        client AUTHs; db: the client's database."""
        tls = REDIS_TLS if tls is None else tls
        port = port or free_port()
        d = d or tempfile.mkdtemp(dir=self.dir, prefix="redis-")
        listen = ["--port", str(port)]
        kw = {}
        if tls:
            c = certs()
            listen = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", c.server_cert,
                      "--tls-key-file", c.server_key, "--tls-ca-cert-file", c.ca,
                      "--tls-auth-clients", auth_clients]
            kw = dict(ssl=True, ssl_ca_certs=c.ca, ssl_certfile=c.client_cert,
                      ssl_keyfile=c.client_key)
        if password:
            extra = ("--requirepass", password, *extra)
        p = self.spawn(["redis-server", *listen, "--bind", "127.0.0.1",
                        "--dir", d, "--save", "", "--appendonly",
                        "yes" if appendonly else "no", "--appendfsync", appendfsync,
                        "--logfile", os.path.join(d, "log"), *extra])
        r = redis.Redis(host="127.0.0.1", port=port, password=password, db=db, **kw)
        wait_for(lambda: _ping(r), 10, "redis-server to answer")
        self.last_redis = (p, port, d)
        return port, r

    def replica(self, primary_port, appendonly=True, appendfsync="everysec", extra=()):
        """A redis-server replicating 127.0.0.1:primary_port, returned once
        its initial sync is done (master_link_status up): (port, client)."""
        port, r = self.redis(appendonly=appendonly, appendfsync=appendfsync,
                             extra=("--replicaof", "127.0.0.1", str(primary_port),
                                    *NO_SYNC_DELAY, *extra))
        d = self.last_redis[2]
        try:
            wait_for(lambda: served(r, lambda r: r.info("replication").get("master_link_status")
                                    == "up"), 60, "the replica of %d in sync" % primary_port)
        except AssertionError as e:
            with open(os.path.join(d, "log"), errors="replace") as f:
                raise AssertionError("%s; its log ends:\n%s" % (e, f.read()[-3000:]))
        return port, r

    def sentinel(self, name, primary_port, quorum=2, down_after_ms=1000, failover_timeout_ms=5000):
        """Debian's redis-sentinel monitoring 127.0.0.1:primary_port as name,
        on a free port, its sentinel.conf (which it rewrites) in its own
        temp dir. Returns (port, client) once it answers PING; that it has
        found its peers and the replicas is sentinels_ready()'s to wait for."""
        port = free_port()
        d = tempfile.mkdtemp(dir=self.dir, prefix="sentinel-")
        conf = os.path.join(d, "sentinel.conf")
        with open(conf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n" % (
                port, d, os.path.join(d, "log")))
            f.write("sentinel monitor %s 127.0.0.1 %d %d\n" % (name, primary_port, quorum))
            f.write("sentinel down-after-milliseconds %s %d\n" % (name, down_after_ms))
            f.write("sentinel failover-timeout %s %d\n" % (name, failover_timeout_ms))
            f.write("sentinel parallel-syncs %s 1\n" % name)
        self.spawn(["redis-sentinel", conf])
        r = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
        wait_for(lambda: _ping(r), 10, "redis-sentinel to answer")
        return port, r

    def receiver(self, secret=SECRET, extra=(), port=0):
        p = self.spawn(["node", os.path.join(HERE, "receiver.js"), "--secret", secret,
                        "--port", str(port), *extra], stdout=subprocess.PIPE, text=True)
        line = p.stdout.readline()
        if not line:
            raise AssertionError("receiver did not start")
        info = json.loads(line)
        recv = Receiver(info["port"], info["control"])
        recv.proc = p
        return recv

    def example_receiver(self, argv, env=None):
        """Start one of examples/receivers/ (argv run there, PORT and
        WEBHOOK_SECRET=SECRET set, plus env); returns its base URL and the
        list its stdout lines are appended to as they come."""
        port = free_port()
        env = dict(os.environ, WEBHOOK_SECRET=SECRET, PORT=str(port), **(env or {}))
        err = open(os.path.join(self.dir, "%s-%d.log" % (os.path.basename(argv[-1]), port)), "w")
        proc = self.spawn(argv, cwd=os.path.join(EXAMPLES, "receivers"), env=env, stdout=subprocess.PIPE, stderr=err,
                          text=True)
        err.close()
        lines = []

        def read():
            for line in proc.stdout:
                lines.append(line.rstrip("\n"))
        threading.Thread(target=read, daemon=True).start()
        wait_for(lambda: connectable(port), 20, "receiver listening")
        return "http://127.0.0.1:%d" % port, lines

    def hookd(self, config, name="hookd", env=None, cwd=None):
        path = os.path.join(self.dir, name + ".conf")
        # No metrics endpoint unless the test asks for one: the default
        # port (9464) would be fought over by every hookd a test starts.
        # No circuit breaker unless the test asks for one: these tests send
        # their deliberate failures (retries, timeouts, dead letters) to one
        # receiver, one origin, which the breaker would rightly open for and
        # hold for breaker_cooldown, testing it instead of what they test.
        # test_breaker.py tests it, and test_config_edges.py at every bound.
        config = dict({"metrics_listen": "off", "breaker": "off"}, **config)
        # HOOKD_TEST_REDIS_TLS: the Redis the harness started speaks TLS
        # only; a test that wrote redis:// itself is given rediss:// and the
        # test CA.
        if REDIS_TLS and str(config.get("redis", "")).startswith("redis://"):
            config["redis"] = "rediss://" + config["redis"][len("redis://"):]
            config.setdefault("redis_ca_file", certs().ca)
        with open(path, "w") as f:
            for k, v in config.items():
                f.write("%s = %s\n" % (k, v))
        return self.hookd_argv(["-c", path], name, env=env, cwd=cwd, metrics=True)

    def hookd_argv(self, args, name="hookd", env=None, cwd=None, metrics=False):
        """metrics: the caller chose metrics_listen itself; otherwise it is
        turned off through the environment (see hookd())."""
        if not metrics and "HOOKD_METRICS_LISTEN" not in (env or os.environ):
            env = dict(env or os.environ, HOOKD_METRICS_LISTEN="off")
        log = open(os.path.join(self.dir, name + ".log"), "a")
        # Its own session, so a test can kill the whole instance (supervisor
        # and workers) at once with killpg, as a lost host would.
        p = self.spawn([HOOKD, *args], stderr=log, env=env, cwd=cwd or self.dir,
                       start_new_session=True)
        p.log_path = log.name
        log.close()
        return p

    def redis_cluster(self, primaries=3, replicas_per_primary=1, node_timeout_ms=1000):
        """A Redis Cluster of primaries * (1 + replicas_per_primary)
        redis-server processes on 127.0.0.1, each in its own temp dir with
        its own nodes.conf, made one cluster by redis-cli --cluster create
        and returned (a Cluster) once every node reports cluster_state:ok
        with all 16384 slots assigned and every replica is in sync."""
        n = primaries * (1 + replicas_per_primary)
        nodes = {}
        for _ in range(n):
            port = free_cluster_port()
            d = tempfile.mkdtemp(dir=self.dir, prefix="cluster-")
            p = self.spawn(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                            "--dir", d, "--save", "", "--appendonly", "no",
                            "--cluster-enabled", "yes",
                            "--cluster-config-file", os.path.join(d, "nodes.conf"),
                            "--cluster-node-timeout", str(node_timeout_ms),
                            # a replica's first sync at once, not after
                            # Redis 7's 5 s wait for more replicas to share it
                            "--repl-diskless-sync-delay", "0",
                            "--logfile", os.path.join(d, "log")])
            nodes[port] = (p, d)
        cluster = Cluster(nodes)
        for port in nodes:
            wait_for(lambda: _ping(cluster.node(port)), 10, "cluster node %d to answer" % port)
        create = subprocess.run(
            ["redis-cli", "--cluster", "create",
             *("127.0.0.1:%d" % port for port in nodes),
             "--cluster-replicas", str(replicas_per_primary), "--cluster-yes"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
        if create.returncode != 0:
            raise AssertionError("redis-cli --cluster create failed:\n" + create.stdout)
        cluster.wait_ok(primaries, replicas_per_primary)
        return cluster

    def close(self):
        """Stop everything; raise if a hookd did not exit 0 on SIGTERM or a
        sanitizer reported anything in its log."""
        problems = []
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                problems.append("%s did not stop within 60 s of SIGTERM" % p.args[0])
            if hasattr(p, "log_path"):
                if p.returncode != 0 and not getattr(p, "expect_killed", False):
                    problems.append("hookd exited with %s (log %s)" % (p.returncode,
                                                                      p.log_path))
                text = log_of(p)
                for m in SANITIZER_MARKERS:
                    if m in text:
                        i = text.index(m)
                        problems.append("sanitizer report in %s:\n%s" % (p.log_path,
                                                                           text[i - 200:i + 3000]))
                        break
        if not problems and not os.environ.get("HOOKD_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        if problems:
            raise AssertionError("\n".join(problems))


class ConnectionRecorder:
    """A plain TCP listener on 127.0.0.1 that accepts, records and closes
    every connection: a stand-in for a proxy that must never be used."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections = []       # peer addresses, in order of arrival
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:         # closed
                return
            self.connections.append(peer)
            conn.close()

    def close(self):
        self.sock.close()


def push(r, key, jobs):
    """LPUSH jobs (dicts become JSON, bytes go as they are), pipelined."""
    pipe = r.pipeline(transaction=False)
    for j in jobs:
        pipe.lpush(key, j if isinstance(j, bytes) else json.dumps(j))
    pipe.execute()


def lua_script(name):
    """The text of build/lua/<name>.lua (LUA_DIR), for EVAL."""
    with open(os.path.join(LUA_DIR, name + ".lua")) as f:
        return f.read()


def sentinels_ready(sentinels, name, replicas, timeout=30):
    """Wait until every sentinel (clients) knows all the others (SENTINEL
    sentinels) and the given number of replicas of name (SENTINEL replicas),
    none of them flagged down: the state a failover needs (a quorum of
    sentinels that can elect a leader, and a replica to promote)."""
    def ready():
        for s in sentinels:
            peers = s.execute_command("SENTINEL", "SENTINELS", name)
            reps = s.execute_command("SENTINEL", "REPLICAS", name)
            if len(peers) != len(sentinels) - 1 or len(reps) != replicas:
                return False
            for rep in reps:
                fields = dict(zip(rep[::2], rep[1::2]))
                if fields.get("flags") != "slave" or fields.get("master-link-status") != "ok":
                    return False
        return True
    wait_for(lambda: served(None, lambda _: ready()), timeout,
             "%d sentinels knowing each other and %d replica(s) of %s" % (
                 len(sentinels), replicas, name), interval=0.1)


class Cluster:
    """A Redis Cluster Procs.redis_cluster started. ports: every node's
    port; node(port): a plain client of that node (for keys in its slots,
    and CLUSTER commands); client: a redis.cluster.RedisCluster seeded with
    every node, which follows MOVED itself."""

    SLOTS = 16384

    def __init__(self, nodes):
        self.nodes = nodes          # port -> (Popen, its dir)
        self.ports = list(nodes)
        self.clients = {port: redis.Redis(host="127.0.0.1", port=port) for port in nodes}
        self._client = None

    def node(self, port):
        return self.clients[port]

    @property
    def client(self):
        if self._client is None:
            from redis.cluster import ClusterNode, RedisCluster
            self._client = RedisCluster(
                startup_nodes=[ClusterNode("127.0.0.1", port) for port in self.ports])
        return self._client

    def alive(self):
        return [port for port in self.ports if self.nodes[port][0].poll() is None]

    def seeds(self, ports=None):
        """host:port,host:port,... as a redis-cluster:// URL lists them."""
        return ",".join("127.0.0.1:%d" % port for port in (ports or self.primaries()))

    def keyslot(self, key):
        return self.node(self.alive()[0]).execute_command("CLUSTER", "KEYSLOT", key)

    def slots(self, via=None):
        """CLUSTER SLOTS as [(first, last, primary port)], asked of node via
        (default: the first live node). Its replica lists are left out:
        Redis 7.0 omits a replica there until its replication offset is
        gossiped as non-zero, which on an empty cluster takes until the
        primary's first replication ping (repl-ping-replica-period, 10 s)."""
        r = self.node(via or self.alive()[0])
        return [(int(e[0]), int(e[1]), int(e[2][1]))
                for e in r.execute_command("CLUSTER", "SLOTS")]

    def primaries(self, via=None):
        return sorted({primary for _, _, primary in self.slots(via)})

    def replicas(self, primary):
        """Ports of primary's replicas that are in sync (state=online in its
        INFO replication)."""
        info = self.node(primary).info("replication")
        return sorted(int(v["port"]) for k, v in info.items()
                      if k.startswith("slave") and isinstance(v, dict) and
                      v.get("state") == "online")

    def owner(self, key, via=None):
        """The port of the primary serving key's slot, in via's view."""
        slot = self.keyslot(key)
        for first, last, primary in self.slots(via):
            if first <= slot <= last:
                return primary
        raise AssertionError("slot %d of %r not served" % (slot, key))

    def info(self, port):
        text = self.node(port).execute_command("CLUSTER", "INFO")
        if isinstance(text, bytes):
            text = text.decode()
        return dict(line.split(":", 1) for line in text.split() if ":" in line)

    def state_ok(self, port, primaries):
        """port's view: cluster_state ok, every slot assigned and ok, and
        exactly `primaries` primaries serving them."""
        i = self.info(port)
        return (i.get("cluster_state") == "ok" and
                int(i.get("cluster_slots_assigned", 0)) == self.SLOTS and
                int(i.get("cluster_slots_ok", 0)) == self.SLOTS and
                len(self.primaries(port)) == primaries)

    def wait_ok(self, primaries, replicas_per_primary=0, timeout=30):
        """Wait until every live node sees a healthy cluster of `primaries`
        primaries and each of them has replicas_per_primary replicas in sync
        (so a failover has a replica to promote). Returns the primaries."""
        def ready():
            ports = self.alive()
            if not all(self.state_ok(p, primaries) for p in ports):
                return None
            found = self.primaries(ports[0])
            if any(len(self.replicas(p)) < replicas_per_primary for p in found):
                return None
            return found
        return wait_for(lambda: served(None, lambda _: ready()), timeout,
                        "the cluster: state ok, %d slots served by %d primaries with %d "
                        "replica(s) each in sync" % (self.SLOTS, primaries, replicas_per_primary),
                        interval=0.05)

    def wait_served(self, key, port, timeout=30):
        """Wait until every live node sees the primary on port serving key's
        slot (after a failover the nodes learn it by gossip, one by one)."""
        slot = self.keyslot(key)

        def ready():
            for via in self.alive():
                if self.info(via).get("cluster_state") != "ok" or not any(
                        first <= slot <= last and primary == port
                        for first, last, primary in self.slots(via)):
                    return False
            return True
        wait_for(lambda: served(None, lambda _: ready()), timeout,
                 "every node to see %d serving slot %d" % (port, slot), interval=0.02)

    def kill(self, port):
        """kill -9 the node on port (a lost host)."""
        p = self.nodes[port][0]
        p.kill()
        p.wait()


def connectable(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _ping(r):
    try:
        return r.ping()
    except redis.exceptions.ConnectionError:
        return False


class Receiver:
    def __init__(self, port, control):
        self.port = port
        self.control = control
        self.url = "http://127.0.0.1:%d/hook" % port

    def stats(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/__stats" % self.control) as r:
            return json.load(r)

    def configure(self, **params):
        """delay=MS ('' = per request), down=1 / down=0, release=1."""
        q = "&".join("%s=%s" % kv for kv in params.items())
        urllib.request.urlopen("http://127.0.0.1:%d/__config?%s" % (self.control, q)).read()

    def wait_count(self, n, timeout=120):
        return wait_for(lambda: (lambda s: s if s["count"] >= n else None)(self.stats()),
                        timeout, "%d deliveries" % n, interval=0.1)


def print_table(columns, row_format, rows):
    """A markdown table on stderr (the figures the notes quote): columns
    names the heading, row_format is each row's "| %s | %d ... |"."""
    if not rows:
        return
    print("\n| %s |\n|%s" % (" | ".join(columns), "---|" * len(columns)), file=sys.stderr)
    for row in rows:
        print(row_format % tuple(row), file=sys.stderr)


def log_of(p):
    """p's log; bytes that are not UTF-8 (a log line printing freed memory,
    say) shown as \\x escapes, so the test fails on what the log says
    instead of in reading it."""
    with open(p.log_path, errors="backslashreplace") as f:
        return f.read()
