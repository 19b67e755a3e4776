#!/usr/bin/python3
"""deploy_check.py — parses and cross-checks everything in deploy/ (run by
tests/t_deploy.c from the project folder, with Debian's python3-yaml, which
deploy/deps.sh installs): the systemd units (hardening scored offline by
systemd-analyze security, under 3.0), the env file example against the
configuration table (bin/agentq config) and the README's, the Containerfile,
compose.yaml and the Kubernetes manifests: names, ports, images, commands,
environment variables and references agree. Prints one line per problem and
exits 1 if there is any; usage: deploy_check.py BIN_DIR [PART...]."""
import glob
import os
import re
import subprocess
import sys

import yaml

BIN = sys.argv[1] if len(sys.argv) > 1 else "bin"
PARTS = set(sys.argv[2:]) or {"systemd", "env", "container", "compose", "k8s"}
BINARIES = {"/usr/local/bin/agentq", "/usr/local/bin/agentq-api", "/usr/local/bin/agentq-worker"}
problems = []


def bad(msg):
    problems.append(msg)


def config_vars():
    out = subprocess.run([os.path.join(BIN, "agentq"), "config"], capture_output=True, text=True, check=True)
    return [m.group(1) for m in re.finditer(r"^\| `([A-Z0-9_]+)` \|", out.stdout, re.M)]


CONFIG = config_vars()
if len(CONFIG) < 30:
    bad("bin/agentq config listed only %d variables" % len(CONFIG))


def listen_port(value, where):
    m = re.fullmatch(r"[^:]*:(\d+)", value or "")
    if not m:
        bad("%s: AGENTQ_LISTEN %r is not HOST:PORT" % (where, value))
        return None
    return int(m.group(1))


def check_env_names(names, where, extra=()):
    for n in names:
        if n not in CONFIG and n not in extra:
            bad("%s: %s is not a configuration variable (bin/agentq config)" % (where, n))


# ---- systemd ----
def check_systemd():
    units = sorted(glob.glob("deploy/systemd/*.service"))
    names = {os.path.basename(u) for u in units}
    for want in ("agentq-api.service", "agentq-worker@.service", "agentq-migrate.service"):
        if want not in names:
            bad("deploy/systemd: no %s" % want)
    for u in units:
        text = open(u).read()
        kv = re.findall(r"^([A-Za-z]+)=(.*)$", text, re.M)
        d = {}
        for k, v in kv:
            d.setdefault(k, []).append(v)
        for exe in d.get("ExecStart", []):
            if exe.split()[0] not in BINARIES:
                bad("%s: ExecStart runs %s, not one of the installed binaries" % (u, exe.split()[0]))
        if d.get("EnvironmentFile") != ["/etc/agentq/agentq.env"]:
            bad("%s: EnvironmentFile should be /etc/agentq/agentq.env" % u)
        if "migrate" not in u:
            for k in ("Requires", "After"):
                if "agentq-migrate.service" not in " ".join(d.get(k, [])):
                    bad("%s: %s= lacks agentq-migrate.service" % (u, k))
            for v in d.get("Environment", []):
                check_env_names([v.split("=", 1)[0]], u)
        try:
            p = subprocess.run(["systemd-analyze", "security", "--offline=true", u], capture_output=True, text=True)
        except FileNotFoundError:
            bad("systemd-analyze is not installed (Debian's systemd package): cannot score %s" % u)
            continue
        m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", p.stdout)
        if not m:
            bad("%s: systemd-analyze security gave no score: %s" % (u, (p.stdout + p.stderr)[-300:]))
        elif float(m.group(1)) >= 3.0:
            bad("%s: systemd-analyze security rates it %s (want under 3.0)" % (u, m.group(1)))
        else:
            print("%s: exposure %s" % (u, m.group(1)))


# ---- env example and README ----
def check_env():
    seen = []
    for line in open("deploy/agentq.env.example"):
        m = re.match(r"^#?([A-Z][A-Z0-9_]*)=", line)
        if m:
            seen.append(m.group(1))
    for v in CONFIG:
        if v not in seen:
            bad("deploy/agentq.env.example lacks %s" % v)
    check_env_names(seen, "deploy/agentq.env.example")
    readme = open("README.md").read()
    table = set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \| ", readme, re.M))
    for v in CONFIG:
        if v not in table:
            bad("README.md's configuration table lacks %s" % v)
    for v in table - set(CONFIG):
        bad("README.md's configuration table has %s, which bin/agentq config does not" % v)


# ---- Containerfile ----
def containerfile():
    lines = []
    for raw in open("deploy/Containerfile").read().replace("\\\n", " ").splitlines():
        raw = raw.strip()
        if raw and not raw.startswith("#"):
            word, _, rest = raw.partition(" ")
            lines.append((word.upper(), rest.strip()))
    return lines


def check_container():
    lines = containerfile()
    froms = [r for w, r in lines if w == "FROM"]
    if len(froms) < 2:
        bad("deploy/Containerfile: not multi-stage (%d FROM)" % len(froms))
    for f in froms:
        if not f.startswith("debian:12"):
            bad("deploy/Containerfile: FROM %s is not Debian 12" % f)
    runs = " ".join(r for w, r in lines if w == "RUN")
    for step in ("sh deploy/deps.sh", "make", "make install"):
        if step not in runs:
            bad("deploy/Containerfile: the build does not run `%s` (CI's steps)" % step)
    users = [r for w, r in lines if w == "USER"]
    if not users or users[-1].split(":")[0] in ("0", "root"):
        bad("deploy/Containerfile: the image must end as a non-root USER")
    for w, r in lines:
        if w == "COPY" and not r.startswith("--from"):
            for src in r.split()[:-1]:
                if not os.path.exists(src):
                    bad("deploy/Containerfile: COPY %s: no such path in the repository" % src)
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(r for w, r in lines if w == "ENV")))
    port = listen_port(env.get("AGENTQ_LISTEN"), "deploy/Containerfile ENV")
    exposed = [int(p.split("/")[0]) for w, r in lines if w == "EXPOSE" for p in r.split()]
    if port not in exposed:
        bad("deploy/Containerfile: EXPOSE %s, but AGENTQ_LISTEN's port is %s" % (exposed, port))
    cmd = [yaml.safe_load(r) for w, r in lines if w == "CMD"]
    if not cmd or cmd[-1][0] not in BINARIES:
        bad("deploy/Containerfile: CMD %s is not an installed binary" % cmd)
    check_runtime_libraries(lines)
    return port


# the runtime stage installs a package for every library an installed binary
# (and the worker's MIME plugin) names; debian:12-slim brings libc6
BASE_IMAGE_PACKAGES = {"libc6"}
INSTALLED = ("agentq", "agentq-api", "agentq-worker", "agentq-mime.so")


def library_package(soname):
    """The Debian package that ships soname on this machine, or None."""
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    m = re.search(r"^\s*%s \(.*x86-64.*\) => (\S+)$" % re.escape(soname), out, re.M)
    if not m:
        return None
    for path in (m.group(1), os.path.realpath(m.group(1))):
        r = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":")[0]
    return None


def check_runtime_libraries(lines):
    last = max(i for i, (w, _) in enumerate(lines) if w == "FROM")
    words = " ".join(r for w, r in lines[last:] if w == "RUN").replace("&&", " ").split()
    runtime = set()
    for i, word in enumerate(words):
        if word == "install" and i and words[i - 1] == "apt-get":
            for pkg in words[i + 1:]:
                if pkg in ("rm", "useradd", "apt-get"):
                    break
                if not pkg.startswith("-"):
                    runtime.add(pkg)
    for name in INSTALLED:
        path = os.path.join(BIN, name)
        if not os.path.exists(path):
            bad("%s: not built (make all builds it, make install installs it)" % path)
            continue
        dyn = subprocess.run(["readelf", "-d", path], capture_output=True, text=True).stdout
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", dyn)
        if any(n.startswith(("libasan", "libubsan")) for n in needed):
            return   # a sanitized build: its libraries are no image's
        for soname in needed:
            pkg = library_package(soname)
            if pkg is None:
                bad("%s needs %s, which no Debian package on this machine ships" % (name, soname))
            elif pkg not in runtime and pkg not in BASE_IMAGE_PACKAGES:
                bad("deploy/Containerfile: the runtime stage does not install %s (%s needs %s)" % (pkg, name, soname))


# ---- compose ----
def check_compose(image_port):
    c = yaml.safe_load(open("deploy/compose.yaml"))
    s = c.get("services", {})
    missing = [w for w in ("postgres", "migrate", "api", "worker") if w not in s]
    for want in missing:
        bad("deploy/compose.yaml: no service %s" % want)
    if missing:
        return
    images = {s[n].get("image") for n in ("migrate", "api", "worker")}
    if len(images) != 1:
        bad("deploy/compose.yaml: migrate, api and worker use different images %s" % images)
    builds = [n for n in s if "build" in s[n]]
    if not builds:
        bad("deploy/compose.yaml: nothing builds the image")
    for n in builds:
        b = s[n]["build"]
        path = os.path.normpath(os.path.join("deploy", b.get("context", "."), b.get("dockerfile", "Containerfile")))
        if os.path.normpath(path) != "deploy/Containerfile":
            bad("deploy/compose.yaml: %s builds %s, not deploy/Containerfile" % (n, path))
    want_cmd = {"migrate": ["/usr/local/bin/agentq", "migrate"], "api": ["/usr/local/bin/agentq-api"],
                "worker": ["/usr/local/bin/agentq-worker"]}
    for n, cmd in want_cmd.items():
        if s[n].get("command") != cmd:
            bad("deploy/compose.yaml: %s runs %s, not %s" % (n, s[n].get("command"), cmd))
        env = s[n].get("environment", {})
        check_env_names(env.keys(), "deploy/compose.yaml " + n)
        url = env.get("DATABASE_URL", "")
        m = re.match(r"postgresql://([^:]+):([^@]+)@([^:/]+):(\d+)/(\w+)$", url)
        pg = s["postgres"]["environment"]
        if not m:
            bad("deploy/compose.yaml %s: DATABASE_URL %r is not a postgresql:// URI" % (n, url))
        elif (m.group(3) != "postgres" or m.group(1) != pg["POSTGRES_USER"] or m.group(2) != pg["POSTGRES_PASSWORD"]
              or m.group(5) != pg["POSTGRES_DB"]):
            bad("deploy/compose.yaml %s: DATABASE_URL does not match the postgres service" % n)
        if n != "migrate":
            dep = s[n].get("depends_on", {}).get("migrate", {})
            if dep.get("condition") != "service_completed_successfully":
                bad("deploy/compose.yaml: %s does not wait for migrate to complete" % n)
    if s["migrate"].get("depends_on", {}).get("postgres", {}).get("condition") != "service_healthy":
        bad("deploy/compose.yaml: migrate does not wait for a healthy postgres")
    if s["worker"].get("deploy", {}).get("replicas") != 2:
        bad("deploy/compose.yaml: want 2 workers")
    port = listen_port(s["api"]["environment"].get("AGENTQ_LISTEN"), "deploy/compose.yaml api")
    targets = [int(str(p).split(":")[-1]) for p in s["api"].get("ports", [])]
    if port not in targets or port != image_port:
        bad("deploy/compose.yaml: api publishes %s, listens on %s, image exposes %s" % (targets, port, image_port))


# ---- Kubernetes ----
def check_k8s(image_port):
    docs = []
    for f in sorted(glob.glob("deploy/k8s/*.yaml")):
        for d in yaml.safe_load_all(open(f)):
            if d:
                docs.append((f, d))
    by = {}
    for f, d in docs:
        by.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    need = [("Deployment", "agentq-api"), ("Deployment", "agentq-worker"), ("Service", "agentq-api"),
            ("Job", "agentq-migrate"), ("Secret", "agentq-secrets"), ("ConfigMap", "agentq-config")]
    missing = [(kind, name) for kind, name in need if name not in by.get(kind, {})]
    for kind, name in missing:
        bad("deploy/k8s: no %s %s" % (kind, name))
    if missing:
        return
    for kind in ("Secret", "ConfigMap"):
        for name, d in by[kind].items():
            check_env_names((d.get("stringData") or d.get("data") or {}).keys(), "deploy/k8s %s %s" % (kind, name))
    cm = by["ConfigMap"]["agentq-config"]["data"]
    port = listen_port(cm.get("AGENTQ_LISTEN"), "deploy/k8s ConfigMap")
    images = set()
    want_cmd = {"agentq-api": "/usr/local/bin/agentq-api", "agentq-worker": "/usr/local/bin/agentq-worker",
                "agentq-migrate": "/usr/local/bin/agentq"}
    pods = [(n, by["Deployment"][n]) for n in ("agentq-api", "agentq-worker")] + \
           [("agentq-migrate", by["Job"]["agentq-migrate"])]
    for name, d in pods:
        spec = d["spec"]["template"]["spec"]
        labels = d["spec"]["template"]["metadata"]["labels"]
        sel = d["spec"].get("selector", {}).get("matchLabels", labels)
        if any(labels.get(k) != v for k, v in sel.items()):
            bad("deploy/k8s %s: its selector does not match its pods' labels" % name)
        for c in spec.get("initContainers", []) + spec["containers"]:
            images.add(c["image"])
            if c["command"][0] not in BINARIES:
                bad("deploy/k8s %s/%s: runs %s" % (name, c["name"], c["command"][0]))
            sc = c.get("securityContext", {})
            if not sc.get("runAsNonRoot") or sc.get("allowPrivilegeEscalation") is not False:
                bad("deploy/k8s %s/%s: must run as non-root without privilege escalation" % (name, c["name"]))
            for ref in c.get("envFrom", []):
                for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                    if key in ref and ref[key]["name"] not in by.get(kind, {}):
                        bad("deploy/k8s %s/%s: %s %s does not exist" % (name, c["name"], kind, ref[key]["name"]))
            for e in c.get("env", []):
                check_env_names([e["name"]], "deploy/k8s %s/%s" % (name, c["name"]))
        main = spec["containers"][0]
        if main["command"][0] != want_cmd[name]:
            bad("deploy/k8s %s: main container runs %s, not %s" % (name, main["command"][0], want_cmd[name]))
        refs = [r.get("secretRef", {}).get("name") for r in main.get("envFrom", [])]
        if "agentq-secrets" not in refs:
            bad("deploy/k8s %s: does not read agentq-secrets (DATABASE_URL)" % name)
    if len(images) != 1:
        bad("deploy/k8s: containers use different images %s" % images)
    api = by["Deployment"]["agentq-api"]
    c = api["spec"]["template"]["spec"]["containers"][0]
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    if port not in ports.values() or port != image_port:
        bad("deploy/k8s: api container ports %s, AGENTQ_LISTEN port %s, image %s" % (ports, port, image_port))
    if "agentq-config" not in [r.get("configMapRef", {}).get("name") for r in c.get("envFrom", [])]:
        bad("deploy/k8s agentq-api: does not read agentq-config (AGENTQ_LISTEN)")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        g = c.get(probe, {}).get("httpGet", {})
        p = g.get("port")
        if g.get("path") != path or (ports.get(p) if isinstance(p, str) else p) != port:
            bad("deploy/k8s agentq-api: %s should GET %s on port %s" % (probe, path, port))
    svc = by["Service"]["agentq-api"]
    labels = api["spec"]["template"]["metadata"]["labels"]
    if any(labels.get(k) != v for k, v in svc["spec"]["selector"].items()):
        bad("deploy/k8s Service agentq-api selects no api pod")
    for sp in svc["spec"]["ports"]:
        t = sp.get("targetPort")
        if (ports.get(t) if isinstance(t, str) else t) != port:
            bad("deploy/k8s Service agentq-api: targetPort %s is not the api's port %s" % (t, port))


if "systemd" in PARTS:
    check_systemd()
if "env" in PARTS:
    check_env()
image_port = check_container() if PARTS & {"container", "compose", "k8s"} else None
if "compose" in PARTS:
    check_compose(image_port)
if "k8s" in PARTS:
    check_k8s(image_port)
for p in problems:
    print("PROBLEM: " + p)
print("%d problem(s)" % len(problems))
sys.exit(1 if problems else 0)
