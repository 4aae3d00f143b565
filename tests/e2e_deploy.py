#!/usr/bin/python3
"""e2e_deploy.py: the Python side of tests/e2e_deploy.sh: checks of the files in deploy/ and of
real messages against deploy/schemas/. Not a test by itself. Subcommands (ROOT = the repository):

  static ROOT                 parse every YAML and JSON file in deploy/ and check the structure of
                              the Dockerfile, the compose file, the Kubernetes manifests, the alert
                              rules, the dashboard, deploy/metrics.txt and the schemas
  get ROOT WHAT [FLAG=VALUE]...
                              print, one argument per line, a command the deploy files run:
                              configmap-conf (the ConfigMap's tickcast.conf), statefulset-args,
                              compose-cmd SERVICE, healthcheck (the Dockerfile's HEALTHCHECK CMD),
                              probes (PATH PORT per line), unit-exec [UNIT [DIR]] (a unit's ExecStart);
                              FLAG=VALUE replaces (or appends) a flag's value in the command
  publish-extra BROKERS TOPIC EXP
                              publish a rejected message whose key is not UTF-8 and append the
                              dead letter it must give to the JSON list EXP
  validate ROOT KIND FILE [EXPECTED]
                              every message of FILE (from e2e_run.py collect) against
                              deploy/schemas/KIND (prediction, stats, dead-letter), with its
                              key; mutated copies must fail; stats: EXPECTED is the group id (the
                              key); dead-letter: EXPECTED is the JSON list of the dead letters
  metrics ROOT SCRAPE         deploy/metrics.txt is exactly the tickcast_* and process_* names
                              of the alert rules and the dashboard, and every one is in SCRAPE
                              (a /metrics body)
"""
import base64, glob, json, os, re, shlex, shutil, subprocess, sys

def fail(msg):
    sys.exit(f"FAIL: {msg}")


def ok(msg):
    print(f"ok: {msg}")


def need(cond, msg):
    if not cond:
        fail(msg)


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def load_yaml_all(path):
    import yaml
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


# ---- The Dockerfile.

def dockerfile_instructions(path):
    """(INSTRUCTION, text) pairs, continuation lines joined, comments dropped."""
    out, cur = [], ""
    for line in open(path):
        s = line.rstrip("\n")
        if not cur and (not s.strip() or s.lstrip().startswith("#")):
            continue
        if cur and s.lstrip().startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        word, _, rest = cur.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        cur = ""
    return out


def dockerfile_stages(path):
    stages = []
    for ins, rest in dockerfile_instructions(path):
        if ins == "FROM":
            m = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$", rest, re.I)
            need(m, f"Dockerfile: cannot read FROM {rest}")
            stages.append({"image": m.group(1), "name": m.group(2), "ins": []})
        else:
            need(stages, f"Dockerfile: {ins} before FROM")
            stages[-1]["ins"].append((ins, rest))
    return stages


def apt_packages(run_text):
    """The packages of the apt-get install commands in a RUN line."""
    pk = []
    for part in re.split(r"&&|;", run_text):
        w = part.split()
        if "apt-get" in w and "install" in w:
            pk += [x for x in w[w.index("install") + 1:] if not x.startswith("-")]
    return pk


def debian_packages_of(paths):
    """{path: the package owning it} by the path or its real path, with or without /usr (merged
    /usr); one dpkg -S for all (it reads every file list, so one call per path is slow)."""
    cands = {}
    for path in paths:
        for p in (path, os.path.realpath(path)):
            for q in (p, p[4:] if p.startswith("/usr/") else "/usr" + p):
                cands.setdefault(q, path)
    out = subprocess.run(["dpkg", "-S"] + list(cands), capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        pkg, _, f = line.partition(": ")
        if f in cands:
            found.setdefault(cands[f], pkg.split(":")[0])
    return {p: found.get(p) for p in paths}


def check_dockerfile(root):
    d = os.path.join(root, "deploy")
    path = os.path.join(d, "Dockerfile")
    st = dockerfile_stages(path)
    need(len(st) >= 2, f"Dockerfile: {len(st)} stage(s), expected a build and a runtime stage")
    names = [s["name"] for s in st if s["name"]]
    for s in st:
        need(s["image"].startswith("debian:bookworm"),
             f"Dockerfile: FROM {s['image']}, expected Debian bookworm")
    build, rt = st[0], st[-1]
    need(build["name"], "Dockerfile: the build stage has no name")
    runs = lambda s: " ".join(r for i, r in s["ins"] if i == "RUN")
    need(re.search(r"\bmake\b", runs(build)), "Dockerfile: the build stage does not run make")
    # Every COPY source exists, and the build context (.dockerignore) lets it through.
    ign = [l.strip() for l in open(path + ".dockerignore") if l.strip() and not l.startswith("#")]
    allowed = [p[1:].rstrip("/") for p in ign if p.startswith("!")]
    ncopy = 0
    for s in st:
        for ins, rest in s["ins"]:
            if ins not in ("COPY", "ADD"):
                continue
            args = [a for a in shlex.split(rest)]
            frm = [a for a in args if a.startswith("--from=")]
            srcs = [a for a in args if not a.startswith("--")][:-1]
            if frm:
                need(frm[0][7:] in names, f"Dockerfile: COPY {frm[0]}: no stage of that name")
                continue
            for src in srcs:
                need(os.path.exists(os.path.join(root, src)),
                     f"Dockerfile: COPY source {src} is not in the repository")
                need(any(src.rstrip("/") == a or src.startswith(a + "/") for a in allowed),
                     f"Dockerfile: COPY source {src} is excluded by Dockerfile.dockerignore")
                ncopy += 1
    ok(f"Dockerfile: {len(st)} stages, {ncopy} COPY sources exist and are in the build context")
    # The runtime stage: non-root user, health check on /healthz, one BLAS thread.
    user = [r for i, r in rt["ins"] if i == "USER"]
    need(user, "Dockerfile: the runtime stage sets no USER")
    u = user[-1].split(":")[0]
    need(u not in ("root", "0"), f"Dockerfile: USER {user[-1]} is root")
    need(u.isdigit(),
         f"Dockerfile: USER {user[-1]}: use a numeric uid, so runAsNonRoot can check it")
    hc = [r for i, r in rt["ins"] if i == "HEALTHCHECK"]
    need(hc and "/healthz" in hc[-1], "Dockerfile: no HEALTHCHECK on /healthz in the runtime stage")
    env = " ".join(r for i, r in rt["ins"] if i == "ENV")
    need(re.search(r"\bOPENBLAS_NUM_THREADS=1\b", env),
         "Dockerfile: ENV OPENBLAS_NUM_THREADS=1 missing")
    ok(f"Dockerfile: runtime USER {user[-1]}, HEALTHCHECK on /healthz, OPENBLAS_NUM_THREADS=1")
    # Packages: real bookworm names; the build stage has the -dev packages of the Makefile's
    # pkg-config modules, the runtime stage the packages of the libraries ./tickcast links.
    bpk, rpk = apt_packages(runs(build)), apt_packages(runs(rt))
    need(bpk and rpk, "Dockerfile: no apt-get install in the build or the runtime stage")
    need(not [p for p in rpk if p.endswith("-dev")],
         f"Dockerfile: -dev packages in the runtime stage: {rpk}")
    osr = open("/etc/os-release").read() if os.path.exists("/etc/os-release") else ""
    if "VERSION_CODENAME=bookworm" not in osr or not shutil.which("apt-cache"):
        print("skip: package names not checked (not Debian bookworm with apt-cache)")
        return
    r = run(["apt-cache", "show", "--no-all-versions"] + bpk + rpk)
    known = set(re.findall(r"^Package: (\S+)", r.stdout, re.M))
    unknown = sorted(set(bpk + rpk) - known)
    if unknown and not glob.glob("/var/lib/apt/lists/*_Packages*"):
        print(f"skip: {unknown} not checked: apt has no package lists (run apt-get update)")
        unknown = []
    need(not unknown, f"Dockerfile: not Debian bookworm packages: {unknown}")
    ok(f"Dockerfile: {len(bpk) + len(rpk)} package names are bookworm packages (apt-cache show)")
    mk = open(os.path.join(root, "Makefile")).read()
    mods = re.search(r"^PKGS\s*:=\s*(.*)$", mk, re.M).group(1).split()
    # What the build stage's packages pull in (libopenblas-dev: libopenblas-pthread-dev | ...).
    deps = run(["apt-cache", "depends", "--no-recommends", "--no-suggests"] + bpk).stdout
    bdeps = set(re.findall(r"Depends: <?([^\s>]+)", deps))
    pcs = {}
    for m in mods:
        r = run(["pkg-config", "--variable=pcfiledir", m])
        need(r.returncode == 0, f"pkg-config does not know {m} (the Makefile's PKGS)")
        pcs[m] = os.path.join(r.stdout.strip(), m + ".pc")
    owner = debian_packages_of(pcs.values())
    for m, pc in pcs.items():
        need(owner[pc] in bpk or owner[pc] in bdeps,
             f"Dockerfile: the build stage lacks {owner[pc]} (the Makefile's pkg-config {m})")
    ok("Dockerfile: the build stage installs the -dev package of each of the Makefile's "
       f"{len(mods)} pkg-config modules")
    tc = os.path.join(root, "tickcast")
    if os.path.exists(tc):
        libs = re.findall(r"=> (/\S+)", run(["ldd", tc]).stdout)
        direct = set(re.findall(r"NEEDED.*\[(.*)\]", run(["readelf", "-dW", tc]).stdout))
        libs = [l for l in libs if os.path.basename(l) in direct]
        owner = debian_packages_of(libs)
        for lib in libs:
            need(owner[lib] in rpk or owner[lib] in ("libc6", "libgcc-s1"),
                 f"Dockerfile: the runtime stage lacks {owner[lib]} ({os.path.basename(lib)}, "
                 "linked by ./tickcast)")
        ok(f"Dockerfile: the runtime stage installs the package of each of the {len(direct)} "
           "libraries ./tickcast links")
    # And of the libraries it opens with dlopen when it needs them: their sonames in the source
    # and, for those reached through stubs, in the Makefile.
    sonames = {}
    for src, name in (("nn/blas.h", "NN_BLAS_SONAME"), ("daemon/loop/http.c", "HTTP_MHD_SONAME")):
        m = re.search(r'#define\s+' + name + r'\s+"([^"]+)"', open(os.path.join(root, src)).read())
        need(m, f"{src}: no {name}")
        sonames[m.group(1)] = src
    makefile = open(os.path.join(root, "Makefile")).read()
    for so in re.findall(r"STUBS := \w+ (lib\S+\.so\.\d+) ", makefile):
        sonames[so] = "Makefile"
    need(len(sonames) > 2, "Makefile: no library loaded through nn/base/lazystubs.sh")
    cache = run([shutil.which("ldconfig") or "/sbin/ldconfig", "-p"]).stdout
    paths = {}
    for so in sonames:
        m = re.search(r"^\s*" + re.escape(so) + r" \([^)]*\) => (\S+)$", cache, re.M)
        need(m, f"{so} ({sonames[so]}) is not installed here (ldconfig -p)")
        paths[so] = m.group(1)
    owner = debian_packages_of(paths.values())
    for so, p in paths.items():
        need(owner[p] in rpk, f"Dockerfile: the runtime stage lacks {owner[p]} ({so}, opened by "
             f"{sonames[so]})")
    ok(f"Dockerfile: the runtime stage installs the package of each of the {len(paths)} "
       "libraries ./tickcast opens when it needs them")


# ---- The compose file.

def flag(cmd, name):
    """The value of --name in an argument list (None when absent)."""
    for i, a in enumerate(cmd):
        if a == name and i + 1 < len(cmd):
            return cmd[i + 1]
        if a.startswith(name + "="):
            return a[len(name) + 1:]
    return None


def waits(service, other, condition):
    return service.get("depends_on", {}).get(other, {}).get("condition") == condition


def check_compose(root):
    c = load_yaml_all(os.path.join(root, "deploy", "docker-compose.yml"))[0]
    sv = c.get("services", {})
    members = sorted(k for k in sv if re.fullmatch(r"tickcast-\d+", k))
    for s in ("kafka", "topics", "feed"):
        need(s in sv, f"compose: no service {s}")
    need(len(members) == 3, f"compose: {len(members)} tickcast members, expected 3")
    k = sv["kafka"]
    need(str(k.get("image", "")).startswith("apache/kafka:"),
         f"compose: kafka image {k.get('image')}, expected apache/kafka")
    env = {a: str(b) for a, b in k.get("environment", {}).items()}
    for key in ("KAFKA_NODE_ID", "KAFKA_PROCESS_ROLES", "KAFKA_LISTENERS",
                "KAFKA_ADVERTISED_LISTENERS", "KAFKA_CONTROLLER_LISTENER_NAMES",
                "KAFKA_CONTROLLER_QUORUM_VOTERS", "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
                "CLUSTER_ID"):
        need(key in env, f"compose: kafka lacks {key} (KRaft)")
    need(set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"},
         f"compose: KAFKA_PROCESS_ROLES {env['KAFKA_PROCESS_ROLES']}, expected broker,controller")
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    need(any(v.startswith(env["KAFKA_NODE_ID"] + "@") for v in voters),
         "compose: the node is not among the quorum voters")
    ctl = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    need(ctl + "://" in env["KAFKA_LISTENERS"],
         f"compose: controller listener {ctl} not in KAFKA_LISTENERS")
    need(ctl + ":" in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"],
         f"compose: {ctl} not in the protocol map")
    cid = env["CLUSTER_ID"]
    need(len(cid) == 22 and len(base64.urlsafe_b64decode(cid + "==")) == 16,
         f"compose: CLUSTER_ID {cid} is not a base64 UUID")
    adv = dict(a.split("://") for a in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    need("healthcheck" in k, "compose: kafka has no healthcheck (topics waits for it)")
    ok("compose: kafka in KRaft mode (broker+controller, quorum, listeners, cluster id), with a "
       "health check")
    # The topics: every topic the members use; the changelog compacted, as wide as ticks.
    t = sv["topics"]
    need(waits(t, "kafka", "service_healthy"), "compose: topics must depend on kafka being healthy")
    script = t.get("command", "")
    script = " ".join(script) if isinstance(script, list) else script
    need("kafka-topics.sh" in script, "compose: topics does not run kafka-topics.sh")
    parts = {}
    for line in script.splitlines():
        m = re.search(r"--topic (\S+) --partitions (\d+)(.*)", line)
        if m:
            parts[m.group(1)] = (int(m.group(2)), m.group(3))
    cmd0 = sv[members[0]]["command"]
    group = flag(cmd0, "--group") or "tickcast"
    want = ["ticks", "predictions", "tickcast.stats", "tickcast.dlq", group + ".state"]
    for w in want:
        need(w in parts, f"compose: topics does not create {w}")
    need("cleanup.policy=compact" in parts[group + ".state"][1],
         f"compose: {group}.state is not compacted")
    nt, ns = parts["ticks"][0], parts[group + ".state"][0]
    need(ns == nt, f"compose: {group}.state has {ns} partitions, ticks {nt}")
    need(parts["ticks"][0] >= len(members), "compose: fewer ticks partitions than members")
    ok(f"compose: topics creates {', '.join(want)} ({group}.state compacted, {parts['ticks'][0]} "
       "partitions like ticks)")
    # The members: one group, each its own volume and host port, the same container port.
    vols, ports = set(), set()
    for m in members:
        s = sv[m]
        cmd = s["command"]
        need(cmd[0] == "run", f"compose: {m} does not run the daemon")
        need(flag(cmd, "--group") == group,
             f"compose: {m} is in group {flag(cmd, '--group')}, expected {group}")
        b = flag(cmd, "--brokers")
        need(b in adv.values(),
             f"compose: {m} uses brokers {b}, kafka advertises {list(adv.values())}")
        http = flag(cmd, "--http")
        need(http and http.startswith("0.0.0.0:"),
             f"compose: {m} --http {http}: must listen on 0.0.0.0 in a container")
        cport = http.split(":")[1]
        pmap = [str(p) for p in s.get("ports", [])]
        need(len(pmap) == 1 and pmap[0].endswith(":" + cport),
             f"compose: {m} ports {pmap} do not publish {cport}")
        ports.add(pmap[0].split(":")[0])
        model = flag(cmd, "--model")
        in_image = model and (model.startswith("/usr/share/tickcast/")
                              or os.path.exists(os.path.join(root, model)))
        need(in_image, f"compose: {m} model {model} is not in the image (relative paths are "
             "under /usr/share/tickcast)")
        state = flag(cmd, "--state")
        mounts = [v.split(":") for v in s.get("volumes", [])]
        need(len(mounts) == 1 and state.startswith(mounts[0][1] + "/"),
             f"compose: {m} state {state} is not on its volume {mounts}")
        need(mounts[0][0] in (c.get("volumes") or {}),
             f"compose: volume {mounts[0][0]} not declared")
        vols.add(mounts[0][0])
        need(waits(s, "topics", "service_completed_successfully"),
             f"compose: {m} must wait for topics to complete")
        need(s.get("build", {}).get("dockerfile") == "deploy/Dockerfile",
             f"compose: {m} is not built from deploy/Dockerfile")
    need(len(vols) == 3 and len(ports) == 3,
         f"compose: members share volumes {vols} or ports {ports}")
    f = sv["feed"]
    need(f["command"] == ["feed", "--brokers", "kafka:9092", "--topic", "ticks", "--input",
                          "data/sample/fx_daily_2021_2025.csv"],
         f"compose: feed command {f['command']}")
    need(waits(f, "topics", "service_completed_successfully"), "compose: feed must wait for topics")
    if "prometheus" in sv:
        pc = load_yaml_all(os.path.join(root, "deploy", "prometheus", "prometheus.yml"))[0]
        job = [j for j in pc["scrape_configs"] if j["job_name"] == "tickcast"]
        need(job, "prometheus.yml: no job tickcast (the alert rules' job)")
        tg = {t for sc in job[0]["static_configs"] for t in sc["targets"]}
        need(tg == {f"{m}:{cport}" for m in members},
             f"prometheus.yml: targets {sorted(tg)} are not the members")
    ok(f"compose: {len(members)} members of group {group}, volumes {sorted(vols)}, host ports "
       f"{sorted(ports)}; feed of the sample")


# ---- Kubernetes.

def conf_value(text, key):
    for line in text.splitlines():
        m = re.match(r"\s*([\w.-]+)\s*=\s*(.*?)\s*$", line)
        if m and m.group(1) == key:
            return m.group(2)
    return None


def k8s_objects(root):
    d = os.path.join(root, "deploy", "k8s")
    objs = []
    for f in sorted(os.listdir(d)):
        if f.endswith((".yaml", ".yml")):
            for o in load_yaml_all(os.path.join(d, f)):
                objs.append((f, o))
    return objs


def check_k8s(root):
    objs = k8s_objects(root)
    by = lambda kind: [(f, o) for f, o in objs if o.get("kind") == kind]
    sts, cms, svcs, sms = by("StatefulSet"), by("ConfigMap"), by("Service"), by("ServiceMonitor")
    need(len(sts) == 1 and len(cms) == 1 and len(svcs) == 2 and len(sms) == 1,
         f"k8s: {len(sts)} StatefulSet, {len(cms)} ConfigMap, {len(svcs)} Service, "
         f"{len(sms)} ServiceMonitor; expected 1, 1, 2, 1")
    for f, o in objs:
        has_name = o.get("kind") == "Kustomization" or o.get("metadata", {}).get("name")
        need(o.get("apiVersion") and has_name, f"k8s: {f}: an object without apiVersion or name")
    need(sms[0][1]["apiVersion"] == "monitoring.coreos.com/v1", "k8s: ServiceMonitor apiVersion")
    others = [f for f, o in objs if o is not sms[0][1] and o.get("kind") != "Kustomization"]
    need(sms[0][0] not in others, "k8s: the ServiceMonitor must be in a file of its own")
    s = sts[0][1]
    spec, pod = s["spec"], s["spec"]["template"]["spec"]
    need(spec.get("replicas") == 3, f"k8s: replicas {spec.get('replicas')}, expected 3")
    plabels = s["spec"]["template"]["metadata"]["labels"]
    need(spec["selector"]["matchLabels"].items() <= plabels.items(),
         "k8s: the StatefulSet's selector does not match its pods")
    cm = cms[0][1]
    conf = cm["data"]["tickcast.conf"]
    need(pod.get("securityContext", {}).get("runAsNonRoot") is True,
         "k8s: runAsNonRoot is not true")
    need(pod["securityContext"].get("runAsUser", 0) != 0, "k8s: runAsUser 0")
    c = pod["containers"][0]
    need(c.get("securityContext", {}).get("readOnlyRootFilesystem") is True,
         "k8s: readOnlyRootFilesystem is not true")
    need(c.get("securityContext", {}).get("allowPrivilegeEscalation") is False,
         "k8s: allowPrivilegeEscalation")
    req = c.get("resources", {}).get("requests", {})
    need(req.get("cpu") and req.get("memory"), "k8s: no cpu and memory requests")
    args = c.get("args", [])
    cpath = flag(args, "--config")
    need(cpath, "k8s: the container does not run with --config")
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    cdir = os.path.dirname(cpath)
    need(cdir in mounts and mounts[cdir].get("readOnly") is True,
         f"k8s: {cdir} (the config) is not mounted read-only")
    cv = vols.get(mounts[cdir]["name"], {})
    need(cv.get("configMap", {}).get("name") == cm["metadata"]["name"],
         f"k8s: {cdir} is not the ConfigMap {cm['metadata']['name']}")
    need(os.path.basename(cpath) in cm["data"],
         f"k8s: the ConfigMap has no {os.path.basename(cpath)}")
    state = conf_value(conf, "state")
    sdir = os.path.dirname(state)
    vct = [v["metadata"]["name"] for v in spec.get("volumeClaimTemplates", [])]
    need(sdir in mounts and mounts[sdir]["name"] in vct and not mounts[sdir].get("readOnly"),
         f"k8s: the state file {state} is not on a writable volumeClaimTemplate ({vct})")
    http = conf_value(conf, "http")
    need(http and http.startswith("0.0.0.0:"), f"k8s: config http = {http}: must listen on 0.0.0.0")
    port = int(http.split(":")[1])
    named = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    rp = lambda pr: named.get(pr["httpGet"]["port"], pr["httpGet"]["port"])
    need(c["readinessProbe"]["httpGet"]["path"] == "/readyz" and rp(c["readinessProbe"]) == port,
         f"k8s: readinessProbe {c['readinessProbe']['httpGet']} is not /readyz on {port}")
    need(c["livenessProbe"]["httpGet"]["path"] == "/healthz" and rp(c["livenessProbe"]) == port,
         f"k8s: livenessProbe {c['livenessProbe']['httpGet']} is not /healthz on {port}")
    ok(f"k8s: StatefulSet of 3, non-root, read-only root, state {state} on volumeClaimTemplate "
       f"{mounts[sdir]['name']}, config from ConfigMap, probes /readyz and /healthz on {port}")
    # Services: the headless one governs the StatefulSet; the other carries the scrape annotations.
    head = [o for f, o in svcs if o["spec"].get("clusterIP") == "None"]
    other = [o for f, o in svcs if o["spec"].get("clusterIP") != "None"]
    need(len(head) == 1 and len(other) == 1, "k8s: expected one headless Service and one other")
    need(spec.get("serviceName") == head[0]["metadata"]["name"],
         "k8s: serviceName is not the headless Service")
    for sv in (head[0], other[0]):
        need(sv["spec"]["selector"].items() <= plabels.items(),
             f"k8s: Service {sv['metadata']['name']} selects no pod")
        tp = sv["spec"]["ports"][0]["targetPort"]
        need(named.get(tp, tp) == port,
             f"k8s: Service {sv['metadata']['name']} targets {tp}, not {port}")
    an = other[0]["metadata"].get("annotations", {})
    need(an.get("prometheus.io/scrape") == "true" and an.get("prometheus.io/path") == "/metrics"
         and an.get("prometheus.io/port") == str(port), f"k8s: metrics Service annotations {an}")
    sm = sms[0][1]["spec"]
    sel = sm["selector"]["matchLabels"]
    need(sel.items() <= other[0]["metadata"]["labels"].items(),
         "k8s: the ServiceMonitor does not select the metrics Service")
    need(not sel.items() <= head[0]["metadata"]["labels"].items(),
         "k8s: the ServiceMonitor also selects the headless Service (double scrape)")
    ep = sm["endpoints"][0]
    pnames = [p["name"] for p in other[0]["spec"]["ports"]]
    need(ep["port"] in pnames and ep.get("path") == "/metrics",
         f"k8s: ServiceMonitor endpoint {ep}")
    job = other[0]["metadata"]["labels"].get(sm.get("jobLabel"))
    need(job == "tickcast",
         f"k8s: the ServiceMonitor's job would be {job}, the alert rules expect tickcast")
    ok(f"k8s: headless Service {head[0]['metadata']['name']}, metrics Service with prometheus.io "
       "annotations, ServiceMonitor (job tickcast)")


# ---- Alert rules, dashboard, metric list, schemas.

def dashboard_exprs(d):
    out = []
    for p in d.get("panels", []):
        out += [t["expr"] for t in p.get("targets", []) if "expr" in t]
        out += dashboard_exprs(p) if p.get("panels") else []
    return out


def check_observability(root):
    d = os.path.join(root, "deploy")
    rules = load_yaml_all(os.path.join(d, "prometheus", "tickcast-alerts.yml"))[0]
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    need(len(alerts) >= 8, f"alerts: {len(alerts)} rules")
    for r in alerts:
        complete = r.get("expr") and r.get("labels", {}).get("severity") and \
            r.get("annotations", {}).get("summary")
        need(complete, f"alerts: {r.get('alert')} lacks expr, severity or summary")
    names = {r["alert"] for r in alerts}
    dash = json.load(open(os.path.join(d, "grafana", "tickcast.json")))
    exprs = dashboard_exprs(dash)
    need(dash.get("uid") and dash.get("title") and len(exprs) >= 10,
         "dashboard: no uid/title or too few queries")
    ids = [p["id"] for p in dash["panels"]]
    need(len(ids) == len(set(ids)), "dashboard: duplicate panel ids")
    want = {"ticks_in": "tickcast_ticks_in_total", "latency": "tickcast_latency_seconds_bucket",
            "lag": "tickcast_partition_lag_messages", "checkpoints": "tickcast_checkpoints_total",
            "rejects": "tickcast_rejected_total", "instruments": "tickcast_instruments",
            "rebalances": "tickcast_rebalances_total",
            "predictions": "tickcast_predictions_out_total"}
    for what, m in want.items():
        need(any(m in e for e in exprs), f"dashboard: no panel shows {what} ({m})")
    ok(f"alerts: {len(alerts)} rules ({', '.join(sorted(names))}); dashboard: "
       f"{len(dash['panels'])} panels, {len(exprs)} queries")
    # The one list of metric names.
    used = set()
    for f in ("prometheus/tickcast-alerts.yml", "grafana/tickcast.json"):
        used |= set(re.findall(r"\b(?:tickcast|process)_[a-z0-9_]+", open(os.path.join(d, f)).read()))
    listed = metric_list(root)
    need(used == listed, "deploy/metrics.txt differs from the names the rules and the dashboard "
         f"use: missing {sorted(used - listed)}, unused {sorted(listed - used)}")
    ok(f"deploy/metrics.txt lists exactly the {len(listed)} metric names of the rules and the "
       "dashboard")


def metric_list(root):
    return {l.strip() for l in open(os.path.join(root, "deploy", "metrics.txt"))
            if l.strip() and not l.startswith("#")}


def schema(root, kind):
    import jsonschema
    s = json.load(open(os.path.join(root, "deploy", "schemas", kind + ".schema.json")))
    cls = jsonschema.validators.validator_for(s)
    cls.check_schema(s)
    return cls(s)


def check_schemas(root):
    try:
        schema(root, "prediction")
    except ImportError:
        print("skip: schemas not checked: python3-jsonschema is not installed")
        return
    for kind in ("prediction", "stats", "dead-letter"):
        v = schema(root, kind)
        need(v.schema.get("additionalProperties") is True,
             f"schema {kind}: additionalProperties must be true")
        need("compatib" in v.schema.get("description", "").lower(),
             f"schema {kind}: the description says nothing on compatibility")
    p = schema(root, "prediction")
    good = {"sym": "EURUSD", "ts": 1700000000000000000, "px": 1.0712, "pred_ret": 1e-5,
            "pred_px": 1.0713, "n": 1, "src": "ticks/3/12345"}
    need(p.is_valid(good), f"schema prediction: refuses {good}")
    for sym, valid in (("BRK.B", True), ("A,B", False), ('A"B', False), ("A\\B", False),
                       ("A B", False), ("X" * 32, True), ("X" * 33, False), ("!~#+-[]", True)):
        need(p.is_valid(dict(good, sym=sym)) == valid,
             f"schema prediction: sym {sym!r} valid={not valid}")
    ok("schemas: valid draft 2020-12, additions allowed; the sym pattern takes CONTRACT's alphabet")


def static(root):
    d = os.path.join(root, "deploy")
    n = 0
    for dp, _, fs in os.walk(d):
        for f in fs:
            p = os.path.join(dp, f)
            try:
                if f.endswith((".yml", ".yaml")):
                    load_yaml_all(p)
                elif f.endswith(".json"):
                    json.load(open(p))
                else:
                    continue
            except Exception as e:
                fail(f"{os.path.relpath(p, root)} does not parse: {e}")
            n += 1
    need(n >= 10, f"only {n} YAML/JSON files in deploy/")
    ok(f"{n} YAML and JSON files in deploy/ parse")
    check_dockerfile(root)
    check_compose(root)
    check_k8s(root)
    check_observability(root)
    check_schemas(root)


# ---- Commands the deploy files run.

def with_flags(cmd, overrides):
    cmd = list(cmd)
    for o in overrides:
        name, _, val = o.partition("=")
        for i, a in enumerate(cmd):
            if a == name and i + 1 < len(cmd):
                cmd[i + 1] = val
                break
        else:
            cmd += [name, val]
    return cmd


def get(root, what, rest):
    d = os.path.join(root, "deploy")
    objs = k8s_objects(root)
    st = [o for f, o in objs if o.get("kind") == "StatefulSet"][0]
    c = st["spec"]["template"]["spec"]["containers"][0]
    if what == "configmap-conf":
        cm = [o for f, o in objs if o.get("kind") == "ConfigMap"][0]
        sys.stdout.write(cm["data"]["tickcast.conf"])
        return
    if what == "statefulset-args":
        out = c["args"]
    elif what == "compose-cmd":
        sv = load_yaml_all(os.path.join(d, "docker-compose.yml"))[0]["services"][rest[0]]
        out, rest = sv["command"], rest[1:]
    elif what == "healthcheck":
        rt = dockerfile_stages(os.path.join(d, "Dockerfile"))[-1]
        hc = [r for i, r in rt["ins"] if i == "HEALTHCHECK"][-1]
        out = json.loads(hc[hc.index("CMD") + 3:].strip())
    elif what == "probes":
        named = {p["name"]: p["containerPort"] for p in c["ports"]}
        for pr in ("readinessProbe", "livenessProbe"):
            g = c[pr]["httpGet"]
            print(g["path"], named.get(g["port"], g["port"]))
        return
    elif what == "unit-exec":  # [UNIT [DIR]]: deploy/tickcast.service by default
        name = rest.pop(0) if rest else "tickcast.service"
        unit = open(os.path.join(rest.pop(0) if rest else d, name))
        line = [l for l in unit if l.startswith("ExecStart=")][0]
        out = shlex.split(line[len("ExecStart="):])
    else:
        fail(f"get: unknown {what}")
    for a in with_flags(out, rest):
        print(a)


# ---- Kafka.

def publish_extra(brokers, topic, exp):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": brokers, "partitioner": "murmur2_random"})
    payload = b'{"sym":"NOT.UTF8.KEY","ts":1,"px":1}'
    key = b"\xff\xfekey"
    p.produce(topic, payload, key=key)
    if p.flush(20):
        fail("publish-extra: flush timed out")
    e = json.load(open(exp))
    e.append({"reason": "key_mismatch", "payload_len": len(payload),
              "key_b64": base64.b64encode(key).decode()})
    json.dump(e, open(exp, "w"))


def mutations(kind, m):
    """Copies of a valid message that its schema must refuse."""
    out = []
    for k in list(m)[:3]:
        out.append((f"without {k}", {a: b for a, b in m.items() if a != k}))
    if kind == "prediction":
        out += [("ts as a string", dict(m, ts=str(m["ts"]))),
                ("ts with a fraction", dict(m, ts=0.5)),
                ("src without offset", dict(m, src="ticks/3")),
                ("px 0", dict(m, px=0)),
                ("n 0", dict(m, n=0)),
                ("sym with a comma", dict(m, sym="A,B"))]
    elif kind == "stats":
        lat = {a: b for a, b in m["latency_us"].items() if a != "p99"}
        out += [("model not hex", dict(m, model="XYZ")),
                ("paused as 0", dict(m, paused=0)),
                ("lag key not a partition", dict(m, lag={"p0": 1})),
                ("negative ticks_in", dict(m, ticks_in=-1)),
                ("latency_us without p99", dict(m, latency_us=lat))]
    else:
        out += [("src not TOPIC/PARTITION/OFFSET", dict(m, src="ticks:17")),
                ("time as a string", dict(m, time="now")),
                ("payload_encoding hex", dict(m, payload_encoding="hex")),
                ("truncated as 1", dict(m, truncated=1)),
                ("base64 payload with a space",
                 dict(m, payload_encoding="base64", payload="ab cd"))]
    return out


def validate(root, kind, path, expected=None):
    try:
        v = schema(root, kind)
    except ImportError:
        print(f"skip: {kind} messages not validated: python3-jsonschema is not installed")
        return
    msgs = [json.loads(l) for l in open(path)]
    need(msgs, f"validate {kind}: no messages in {path}")
    for i, m in enumerate(msgs):
        try:
            val = json.loads(m["value"])
        except ValueError as e:
            fail(f"{kind} {m['partition']}/{m['offset']}: not JSON: {e}: {m['value'][:200]}")
        errs = sorted(v.iter_errors(val), key=str)
        need(not errs,
             f"{kind} {m['partition']}/{m['offset']} does not match its schema: {errs[:1]}\n  "
             f"{m['value'][:300]}")
        key = base64.b64decode(m["key_b64"]) if m["key_b64"] is not None else None
        if kind == "prediction":
            need(key == val["sym"].encode(), f"prediction {val['src']}: key {key} != sym")
        m["json"] = val
        if i == 0 or kind != "prediction":
            for what, bad in mutations(kind, val):
                need(not v.is_valid(bad),
                     f"schema {kind} accepts a message {what}: {json.dumps(bad)[:200]}")
    ok(f"{len(msgs)} {kind} messages match deploy/schemas/{kind}.schema.json; mutated copies are "
       "refused")
    if kind == "stats":
        keys = {m["key"] for m in msgs}
        need(keys == {expected}, f"stats keys {keys}, expected the group id {expected}")
        last = msgs[-1]["json"]
        filled = last["checkpoint_age_ms"] is not None and \
            any(x is not None for x in last["lag"].values()) and \
            any(m["json"]["latency_us"]["p99"] is not None for m in msgs)
        need(filled, "stats: no message with a checkpoint age, a known lag and a latency: the "
             "nullable fields were not seen filled")
        ok("stats: keyed by the group id; checkpoint age, lag and latency seen filled")
    if kind == "dead-letter":
        exp = json.load(open(expected))
        got = sorted((m["json"]["reason"], m["json"]["len"]) for m in msgs)
        want = sorted((e["reason"], e["payload_len"]) for e in exp)
        need(got == want, f"dead letters (reason, len) {got}, expected {want}")
        encs = {(j["payload_encoding"], j.get("key_encoding"), j["truncated"])
                for j in (m["json"] for m in msgs)}
        for e in (("base64", None, False), ("text", None, True), ("text", "base64", False)):
            need(e in encs,
                 f"dead letters: none with (payload_encoding, key_encoding, truncated) = {e}")
        for m in msgs:
            j = m["json"]
            if j.get("key_encoding") == "base64":
                need(j["key"] == m["key_b64"],
                     f"dead letter {j['src']}: key {j['key']} is not the message key "
                     f"{m['key_b64']}")
        ok(f"{len(msgs)} dead letters with the reasons expected, text and base64 payloads and "
           "keys, a truncated one")


def metrics(root, scrape):
    text = open(scrape).read()
    fam = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    samples = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{| )", text, re.M))
    have = fam | samples
    listed = metric_list(root)
    missing = sorted(listed - have)
    need(not missing, "metrics used by the alert rules or the dashboard are not in /metrics: "
         f"{missing} (update deploy/metrics.txt, deploy/prometheus/tickcast-alerts.yml, "
         "deploy/grafana/tickcast.json)")
    ok(f"all {len(listed)} metric names of deploy/metrics.txt are in a real /metrics scrape "
       f"({len(fam)} families)")


def main():
    a = sys.argv[1:]
    if not a:
        fail(__doc__)
    cmd = a[0]
    if cmd == "static":
        static(a[1])
    elif cmd == "get":
        get(a[1], a[2], a[3:])
    elif cmd == "publish-extra":
        publish_extra(a[1], a[2], a[3])
    elif cmd == "validate":
        validate(a[1], a[2], a[3], a[4] if len(a) > 4 else None)
    elif cmd == "metrics":
        metrics(a[1], a[2])
    else:
        fail(f"unknown subcommand {cmd}")


if __name__ == "__main__":
    main()
