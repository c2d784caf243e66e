"""deploy/: the container image, compose file and Kubernetes manifests.

Docker and Kubernetes do not run here, so this checks what can be checked
without them:
- every manifest and the compose file parse (python3-yaml), and refer to
  each other consistently (names, labels, Secret keys, kustomization);
- the probes ask /livez and /readyz on the port HOOKD_METRICS_LISTEN
  opens, which is the container port;
- every HOOKD_* variable names a key `hookd --help` lists, and hookd
  accepts the ConfigMap's config and the image's own (--check-config, with
  the Secret's values in the environment);
- the grace periods outlast shutdown_timeout and hookd's own 5 s SIGKILL
  margin;
- the KEDA ScaledObject watches the ready list, <prefix>:queue;
- the Dockerfile: multi-stage, runtime on debian:bookworm-slim, a non-root
  USER, STOPSIGNAL SIGTERM;
- the image's ENTRYPOINT + CMD (binary and config mapped back to this
  build and this repository) run as PID 1 of a new PID namespace against a
  local redis-server: a job is delivered, an orphan re-parented to it is
  reaped, and SIGTERM makes it exit 0.

Keys the manifests may name before this hookd has them: PENDING_KEYS. Each
is checked like any other key as soon as `hookd --help` lists it.
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HOOKD, SANITIZER_MARKERS, SECRET, Procs, push, wait_for  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
K8S = os.path.join(DEPLOY, "kubernetes")
# None now: metrics_listen, the one there was, is a key of this hookd.
PENDING_KEYS = set()
# hookd SIGKILLs workers still running shutdown_timeout + this after SIGTERM.
KILL_MARGIN_S = 5


def hookd_keys():
    out = subprocess.run([HOOKD, "--help"], capture_output=True, text=True, check=True).stdout
    keys, in_keys = set(), False
    for line in out.splitlines():
        if line.rstrip().endswith("Keys:"):
            in_keys = True
        elif in_keys and line.startswith("  "):
            keys.add(line.split()[0])
    assert len(keys) > 20, "no keys parsed from hookd --help"
    return keys


def duration_s(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", text.strip())
    assert m, "not a duration: %r" % text
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def ini(text):
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and line[0] not in ";#":
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def manifests():
    """{kind: [doc, ...]} of every YAML document under deploy/kubernetes."""
    docs = {}
    for name in sorted(os.listdir(K8S)):
        if name.endswith(".yaml"):
            with open(os.path.join(K8S, name)) as f:
                for d in yaml.safe_load_all(f):
                    if d is not None:
                        d["__file__"] = name
                        docs.setdefault(d["kind"], []).append(d)
    return docs


def dockerfile():
    """[(instruction, argument)] of deploy/Dockerfile, continuations joined."""
    with open(os.path.join(DEPLOY, "Dockerfile")) as f:
        text = re.sub(r"\\\n", " ", f.read())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instr, _, arg = line.partition(" ")
            out.append((instr.upper(), arg.strip()))
    return out


def final_stage(instrs):
    last = max(i for i, (instr, _) in enumerate(instrs) if instr == "FROM")
    return instrs[last:]


def check_env_keys(tc, names, where, keys):
    for name in names:
        if not name.startswith("HOOKD_"):
            continue
        key = name[len("HOOKD_"):].lower()
        tc.assertTrue(key in keys or key in PENDING_KEYS,
                      "%s: %s is not a hookd setting (hookd --help)" % (where, name))


def check_config(tc, text, env, what):
    with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
        f.write(text)
        f.flush()
        keys = hookd_keys()
        pending = [k for k in ini(text) if k not in keys and k in PENDING_KEYS]
        tc.assertEqual(pending, [], "%s: put pending keys in the environment, not the file"
                       % what)
        clean = {k: v for k, v in os.environ.items() if not k.startswith("HOOKD_")}
        r = subprocess.run([HOOKD, "-c", f.name, "--check-config"], capture_output=True,
                           text=True, env=dict(clean, **env))
        tc.assertEqual((r.returncode, r.stdout.strip()), (0, "configuration OK"),
                       "%s: %s" % (what, r.stderr))


class Manifests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.docs = manifests()
        cls.keys = hookd_keys()
        cls.config = cls.docs["ConfigMap"][0]["data"]["hookd.conf"]
        cls.secret = cls.docs["Secret"][0]["stringData"]
        cls.deploy = cls.docs["Deployment"][0]
        cls.pod = cls.deploy["spec"]["template"]["spec"]
        cls.container = cls.pod["containers"][0]
        cls.env = {e["name"]: e for e in cls.container["env"]}

    def test_every_manifest_parses_and_kustomization_lists_them(self):
        for kind in ("ConfigMap", "Secret", "Deployment", "PodDisruptionBudget",
                     "ScaledObject", "TriggerAuthentication", "Kustomization"):
            self.assertEqual(len(self.docs.get(kind, [])), 1, kind)
        files = {d["__file__"] for ds in self.docs.values() for d in ds}
        listed = set(self.docs["Kustomization"][0]["resources"])
        self.assertEqual(listed, files - {"kustomization.yaml"})

    def test_probes_ask_the_metrics_port(self):
        listen = self.env["HOOKD_METRICS_LISTEN"]["value"]
        host, port = listen.rsplit(":", 1)
        self.assertEqual(host, "0.0.0.0")
        self.assertEqual([p["containerPort"] for p in self.container["ports"]], [int(port)])
        for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
            get = self.container[probe]["httpGet"]
            self.assertEqual((get["path"], get["port"]), (path, int(port)), probe)

    def test_env_keys_are_hookd_settings_and_refer_to_the_secret(self):
        check_env_keys(self, self.env, "deployment.yaml", self.keys)
        for e in self.env.values():
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                self.assertEqual(ref["name"], self.docs["Secret"][0]["metadata"]["name"])
                self.assertIn(ref["key"], self.secret)
        self.assertEqual(self.env["HOOKD_SECRET"]["valueFrom"]["secretKeyRef"]["key"],
                         "signing-secret")

    def test_configmap_is_a_config_hookd_accepts(self):
        vol = {v["name"]: v for v in self.pod["volumes"]}
        mount = {m["name"]: m for m in self.container["volumeMounts"]}
        self.assertEqual(vol["config"]["configMap"]["name"],
                         self.docs["ConfigMap"][0]["metadata"]["name"])
        self.assertEqual(mount["config"]["mountPath"], "/etc/hookd")
        self.assertEqual(mount["data"]["mountPath"], ini(self.config)["data_dir"])
        check_config(self, self.config, {"HOOKD_SECRET": self.secret["signing-secret"],
                                         "HOOKD_REDIS": self.secret["redis-url"]},
                     "configmap.yaml")

    def test_grace_period_outlasts_the_drain(self):
        drain = duration_s(ini(self.config)["shutdown_timeout"]) + KILL_MARGIN_S
        self.assertGreater(self.pod["terminationGracePeriodSeconds"], drain)
        self.assertEqual(self.pod["securityContext"]["runAsNonRoot"], True)

    def test_pdb_selects_the_pods(self):
        pdb = self.docs["PodDisruptionBudget"][0]["spec"]
        self.assertEqual(pdb["selector"]["matchLabels"], self.deploy["spec"]["selector"]
                         ["matchLabels"])
        labels = self.deploy["spec"]["template"]["metadata"]["labels"]
        self.assertLessEqual(pdb["selector"]["matchLabels"].items(), labels.items())

    def test_keda_watches_the_ready_list(self):
        so = self.docs["ScaledObject"][0]["spec"]
        self.assertEqual(so["scaleTargetRef"]["name"], self.deploy["metadata"]["name"])
        # No pod, no PROMOTE: retries would never reach the list KEDA watches.
        self.assertGreaterEqual(so["minReplicaCount"], 1)
        (trig,) = so["triggers"]
        self.assertEqual(trig["type"], "redis")
        meta = trig["metadata"]
        self.assertEqual(meta["listName"], ini(self.config)["prefix"] + ":queue")
        self.assertGreater(int(meta["listLength"]), 0)
        self.assertGreaterEqual(int(meta["activationListLength"]), 0)
        redis_host = re.match(r"redis://(?:[^@]*@)?([^/]+)", self.secret["redis-url"]).group(1)
        self.assertEqual(meta["address"], redis_host)
        auth = self.docs["TriggerAuthentication"][0]
        self.assertEqual(trig["authenticationRef"]["name"], auth["metadata"]["name"])
        (ref,) = auth["spec"]["secretTargetRef"]
        self.assertEqual((ref["parameter"], ref["name"]), ("password", "hookd"))
        self.assertIn(ref["key"], self.secret)
        self.assertIn(":" + self.secret[ref["key"]] + "@", self.secret["redis-url"])


class Compose(unittest.TestCase):
    def test_compose_has_redis_hookd_and_the_express_receiver(self):
        with open(os.path.join(DEPLOY, "docker-compose.yml")) as f:
            c = yaml.safe_load(f)
        svc = c["services"]
        self.assertEqual(set(svc), {"redis", "hookd", "receiver"})
        for name in ("hookd", "receiver"):
            b = svc[name]["build"]
            ctx = os.path.normpath(os.path.join(DEPLOY, b["context"]))
            self.assertTrue(os.path.isfile(os.path.join(ctx, b["dockerfile"])), name)
        self.assertEqual(svc["hookd"]["build"]["dockerfile"], "deploy/Dockerfile")
        env = svc["hookd"]["environment"]
        check_env_keys(self, env, "docker-compose.yml", hookd_keys())
        self.assertEqual(env["HOOKD_SECRET"], svc["receiver"]["environment"]["WEBHOOK_SECRET"])
        self.assertTrue(env["HOOKD_REDIS"].startswith("redis://redis:"))
        with open(os.path.join(DEPLOY, "receiver.Dockerfile")) as f:
            self.assertIn("express.js", f.read())
        conf = container_conf()
        grace = duration_s(svc["hookd"]["stop_grace_period"])
        self.assertGreater(grace, duration_s(ini(conf)["shutdown_timeout"]) + KILL_MARGIN_S)
        check_config(self, conf, {k: str(v) for k, v in env.items()}, "compose + image conf")


def copies(instrs):
    """{path in the image: path in the repository} of the final stage's
    COPY lines from the build context."""
    out = {}
    for instr, arg in final_stage(instrs):
        if instr == "COPY" and not arg.startswith("--from"):
            src, dst = arg.split()
            out[dst] = os.path.join(ROOT, src)
    return out


def container_conf():
    image_conf = json.loads(dict(final_stage(dockerfile()))["CMD"])[-1]
    with open(copies(dockerfile())[image_conf]) as f:
        return f.read()


class Image(unittest.TestCase):
    def test_dockerfile_shape(self):
        instrs = dockerfile()
        froms = [arg.split()[0] for instr, arg in instrs if instr == "FROM"]
        self.assertGreaterEqual(len(froms), 2, "multi-stage")
        self.assertEqual(froms[-1], "debian:bookworm-slim")
        self.assertTrue(froms[0].startswith("debian:bookworm"))
        final = dict(final_stage(instrs))
        user = final["USER"].split(":")[0]
        self.assertNotIn(user, ("root", "0"))
        self.assertEqual(final["STOPSIGNAL"], "SIGTERM")
        for src in copies(instrs).values():
            self.assertTrue(os.path.exists(src), src)

    def test_runtime_stage_installs_every_library_hookd_links(self):
        """Each shared library hookd's binary names (readelf NEEDED), by
        the Debian package that ships it here, is in the runtime stage's
        apt-get install (libc6 is in the base image; sanitizer runtimes
        are test builds only). Their own dependencies come with them."""
        run = " ".join(arg for instr, arg in final_stage(dockerfile()) if instr == "RUN")
        installed = set(re.findall(r"[a-z0-9][a-z0-9.+-]+", run.split("install", 1)[1]
                                   .split("&&")[0]))
        needed = re.findall(r"\(NEEDED\).*\[(.+)\]",
                            subprocess.run(["readelf", "-d", HOOKD], capture_output=True,
                                           text=True, check=True).stdout)
        paths = dict(re.findall(r"^\s*(\S+) => (\S+)", subprocess.run(
            ["ldd", HOOKD], capture_output=True, text=True, check=True).stdout, re.M))
        needed = [n for n in needed if not re.match(r"lib(asan|ubsan)\.", n)]
        self.assertGreater(len(needed), 5)
        # By pattern: with the merged /usr, ldd's /lib path may be the one
        # dpkg does not know. One call for all (each reads the database).
        pattern = {n: "*/%s/%s" % (os.path.basename(os.path.dirname(paths[n])), n)
                   for n in needed}
        out = subprocess.run(["dpkg", "-S", *pattern.values()], capture_output=True,
                             text=True, check=True).stdout
        owner = {os.path.basename(path): pkg.split(":")[0] for pkg, path in
                 (line.split(": ", 1) for line in out.splitlines())}
        for soname in needed:
            pkg = owner[soname]
            if pkg != "libc6":
                self.assertIn(pkg, installed, "%s (%s) not in the runtime stage" % (soname, pkg))

    def entrypoint(self):
        """The image's command line, mapped to this build and repository."""
        instrs = dockerfile()
        final = dict(final_stage(instrs))
        argv = json.loads(final["ENTRYPOINT"]) + json.loads(final["CMD"])
        binary = [arg.split()[-1] for instr, arg in final_stage(instrs)
                  if instr == "COPY" and arg.startswith("--from")]
        self.assertEqual(argv[0], binary[0])
        files = copies(instrs)
        return [HOOKD] + [files.get(a, a) for a in argv[1:]]

    def test_entrypoint_runs_as_pid_1_delivers_reaps_and_stops(self):
        p = Procs()
        ns = None
        try:
            port, r = p.redis()
            rx = p.receiver()
            clean = {k: v for k, v in os.environ.items() if not k.startswith("HOOKD_")}
            env = dict(clean, HOOKD_REDIS="redis://127.0.0.1:%d" % port, HOOKD_SECRET=SECRET,
                       HOOKD_WORKERS="1", HOOKD_DATA_DIR=os.path.join(p.dir, "data"))
            log_path = os.path.join(p.dir, "pid1.log")
            with open(log_path, "w") as log:
                # A new user namespace too, so this needs no privilege.
                # --mount-proc: a /proc of the new PID namespace. Sanitizer
                # builds run LeakSanitizer at every process's exit, which
                # reads /proc/<its own pid>/task: in the host's /proc that is
                # another process, or none (a fatal LeakSanitizer error).
                # --kill-child: a failed test leaves no hookd behind.
                ns = subprocess.Popen(["unshare", "--user", "--map-root-user", "--pid", "--mount-proc",
                                       "--fork", "--kill-child", *self.entrypoint()], env=env, stderr=log,
                                      cwd=p.dir)
            pid = wait_for(lambda: child_of(ns.pid), 10, "hookd under unshare")
            self.assertEqual(nspid(pid), 1, "hookd is PID 1 of its namespace")
            wait_for(lambda: r.hlen("hookd:workers") == 1, 20, "a worker")
            push(r, "hookd:queue", [{"id": "pid1-job", "url": rx.url, "payload": {"a": 1}}])
            self.assertEqual(rx.wait_count(1, timeout=20)["count"], 1)

            # An orphan in hookd's namespace is re-parented to it; once it
            # dies, hookd must reap it or it stays a zombie. Its own session
            # and process group, like a `docker exec` shell's children.
            out = subprocess.run(["nsenter", "-t", str(pid), "-U", "-p", "--preserve-credentials",
                                  "sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"], capture_output=True,
                                 text=True, check=True, timeout=10, start_new_session=True)
            orphan = host_pid_of(int(out.stdout), pid)
            wait_for(lambda: ppid(orphan) == pid, 10, "the orphan re-parented to hookd")
            os.kill(orphan, signal.SIGKILL)
            wait_for(lambda: not os.path.exists("/proc/%d" % orphan), 10,
                     "hookd to reap the orphan (state now %s)" % state(orphan))

            os.kill(pid, signal.SIGTERM)
            self.assertEqual(ns.wait(timeout=60), 0)
            with open(log_path) as f:
                text = f.read()
            for m in SANITIZER_MARKERS:
                self.assertNotIn(m, text)
            lines = [json.loads(line) for line in text.splitlines()]
            self.assertIn("stopped", [o["msg"] for o in lines if o["worker"] == "supervisor"])
        finally:
            if ns is not None and ns.poll() is None:
                ns.kill()
                ns.wait()
            p.close()


def child_of(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            kids = f.read().split()
    except OSError:
        return None
    return int(kids[0]) if kids else None


def status_field(pid, name):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(name + ":"):
                    return line.split()[1:]
    except OSError:
        return None
    return None


def nspid(pid):
    return int(status_field(pid, "NSpid")[-1])


def ppid(pid):
    v = status_field(pid, "PPid")
    return int(v[0]) if v else None


def state(pid):
    v = status_field(pid, "State")
    return v[0] if v else "gone"


def host_pid_of(inner, init_pid):
    """The host pid of the process that is `inner` in init_pid's namespace."""
    ns = os.readlink("/proc/%d/ns/pid" % init_pid)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                if os.readlink("/proc/%s/ns/pid" % d) != ns:
                    continue
            except OSError:
                continue
            v = status_field(int(d), "NSpid")
            if v and int(v[-1]) == inner:
                return int(d)
        time.sleep(0.02)
    raise AssertionError("no process %d in hookd's namespace" % inner)


if __name__ == "__main__":
    unittest.main(verbosity=2)
