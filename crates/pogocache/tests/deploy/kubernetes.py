"""Offline checks of deploy/kubernetes (there is no cluster here).

Usage: kubernetes.py <repo root> <pogocache binary>

1. Renders the Kustomize base with `kubectl kustomize`.
2. Validates every rendered object against the Kubernetes JSON schemas
   (kubernetes-validate, strict: unknown fields are errors) for several
   Kubernetes versions.
3. Checks the container contract by value: the upstream image's
   POGOCACHE_EXTRA_FLAGS, POGOCACHE_AUTH_PASSWORD from a Secret, /data,
   TLS at /etc/pogocache/tls/{tls.crt,tls.key,ca.crt}; probes through
   `pogocache --health`; non-root, read-only root, no capabilities;
   a PodDisruptionBudget and Services whose selectors match the pods;
   resources; a nodes file naming each pod under the headless Service.
4. Runs the real binary with the pod's arguments and environment (paths
   moved to a temporary directory, one pod's name) and probes it with
   the pod's own health command.
5. Breaks the manifests in known ways and expects each check to notice.

Prints "ok" and exits 0 when everything holds.
"""

import copy
import os
import socket
import subprocess
import sys
import tempfile

import kubernetes_validate
import yaml

root, binary = sys.argv[1], sys.argv[2]
base = os.path.join(root, "deploy", "kubernetes")
VERSIONS = ["1.29.0", "1.32.0", "1.37.0"]

rendered = subprocess.run(
    ["kubectl", "kustomize", base], check=True, capture_output=True, text=True, timeout=60
).stdout
docs = [d for d in yaml.safe_load_all(rendered) if d]

for version in VERSIONS:
    for d in docs:
        kubernetes_validate.validate(d, version, strict=True)


def kinds(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def contract(docs):
    """Raises AssertionError naming the first broken promise."""
    (sts,) = kinds(docs, "StatefulSet")
    (cm,) = kinds(docs, "ConfigMap")
    (pdb,) = kinds(docs, "PodDisruptionBudget")
    services = {s["metadata"]["name"]: s for s in kinds(docs, "Service")}
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert matches(spec["selector"]["matchLabels"], labels), "StatefulSet selector"
    headless = services[spec["serviceName"]]
    assert headless["spec"].get("clusterIP") == "None", "serviceName must be a headless Service"
    for s in services.values():
        assert matches(s["spec"]["selector"], labels), f"Service {s['metadata']['name']} selects no pod"
    assert matches(pdb["spec"]["selector"]["matchLabels"], labels), "PDB selects no pod"
    assert "maxUnavailable" in pdb["spec"] or "minAvailable" in pdb["spec"], "PDB budget"

    (c,) = pod["containers"]
    env = {e["name"]: e for e in c.get("env", [])}
    assert "POGOCACHE_EXTRA_FLAGS" in env, "POGOCACHE_EXTRA_FLAGS"
    ref = env["POGOCACHE_AUTH_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] and ref["key"], "password from a Secret"
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    claims = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
    assert mounts["/data"]["name"] in claims, "/data on a volume claim"
    tls = mounts["/etc/pogocache/tls"]
    assert "secret" in volumes[tls["name"]], "TLS from a Secret"
    args = c["args"]
    flag = lambda f: args[args.index(f) + 1]
    assert flag("--tlscert") == "/etc/pogocache/tls/tls.crt", "--tlscert"
    assert flag("--tlskey") == "/etc/pogocache/tls/tls.key", "--tlskey"
    assert flag("--tlscacert") == "/etc/pogocache/tls/ca.crt", "--tlscacert"
    assert flag("--persist").startswith("/data/"), "--persist under /data"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["exec"]["command"] == ["/usr/local/bin/pogocache", "--health"], probe
    psc, csc = pod["securityContext"], c["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 1000, "non-root (the image's 1000)"
    assert csc["readOnlyRootFilesystem"] is True, "read-only root"
    assert csc["allowPrivilegeEscalation"] is False, "no privilege escalation"
    assert csc["capabilities"]["drop"] == ["ALL"], "no capabilities"
    res = c["resources"]
    assert res["requests"]["cpu"] and res["requests"]["memory"] and res["limits"]["memory"], "resources"

    # The nodes file: one line per pod, named as the pod, addressed
    # under the headless Service, on the container's port.
    assert volumes[mounts["/etc/pogocache/cluster"]["name"]]["configMap"]["name"] == cm["metadata"]["name"]
    assert flag("--cluster-config") == "/etc/pogocache/cluster/nodes.conf"
    assert flag("--cluster-node") == "$(POD_NAME)"
    lines = [l.split() for l in cm["data"]["nodes.conf"].splitlines() if l.strip() and not l.startswith("#")]
    name, svc = sts["metadata"]["name"], headless["metadata"]["name"]
    port = c["ports"][0]["containerPort"]
    assert len(lines) == spec["replicas"], "one nodes.conf line per replica"
    for i, l in enumerate(lines):
        assert l[0] == f"{name}-{i}", f"node {i} is named after its pod"
        assert l[1] == f"{name}-{i}.{svc}:{port}", f"node {i} address"
    return c, cm["data"]["nodes.conf"]


container, nodes_conf = contract(docs)

# The real binary with the pod's arguments.
with tempfile.TemporaryDirectory() as tmp:
    for d in ("data", "cluster", "tls"):
        os.makedirs(os.path.join(tmp, d))
    with open(os.path.join(tmp, "cluster", "nodes.conf"), "w") as f:
        f.write(nodes_conf)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=pogocache",
         "-keyout", os.path.join(tmp, "tls", "tls.key"), "-out", os.path.join(tmp, "tls", "tls.crt")],
        check=True, capture_output=True, timeout=60,
    )
    with open(os.path.join(tmp, "tls", "tls.crt")) as a, open(os.path.join(tmp, "tls", "ca.crt"), "w") as b:
        b.write(a.read())

    def free():
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        return p

    port, tlsport = free(), free()
    args = [a.replace("/etc/pogocache/", tmp + "/").replace("/data/", tmp + "/data/") for a in container["args"]]
    args = [a.replace("$(POD_NAME)", "pogocache-1") for a in args]
    args[args.index("--tlsport") + 1] = str(tlsport)
    env = dict(os.environ, POGOCACHE_AUTH_PASSWORD="k8s-secret", POGOCACHE_EXTRA_FLAGS=f"-p {port}")
    server = subprocess.Popen([binary, "-h", "127.0.0.1", *args], env=env, stdout=subprocess.PIPE, text=True)
    try:
        for line in server.stdout:
            if "Ready to accept connections" in line:
                break
        else:
            raise AssertionError("the server did not start with the pod's arguments")
        probe = subprocess.run([binary, *container["startupProbe"]["exec"]["command"][1:]], env=env, timeout=30)
        assert probe.returncode == 0, "the pod's health probe against the server"
        bad = subprocess.run([binary, "--health"], env=dict(env, POGOCACHE_AUTH_PASSWORD="wrong"),
                             capture_output=True, timeout=30)
        assert bad.returncode == 1, "the probe fails with the wrong password"
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"AUTH k8s-secret\r\nCLUSTER INFO\r\n")
        got = b""
        while b"cluster_reloads" not in got:
            got += s.recv(65536)
        assert b"cluster_state:ok" in got and b"cluster_slots_owned_here:5462" in got, got
    finally:
        server.terminate()
        server.wait(timeout=30)

# The checks catch what they promise to catch.
def broken(edit):
    d = copy.deepcopy(docs)
    edit(d)
    try:
        contract(d)
    except (AssertionError, KeyError, ValueError):
        return True
    return False


def sts(d):
    return kinds(d, "StatefulSet")[0]


def container_of(d):
    return sts(d)["spec"]["template"]["spec"]["containers"][0]


mutations = {
    "writable root": lambda d: container_of(d)["securityContext"].update(readOnlyRootFilesystem=False),
    "root user": lambda d: sts(d)["spec"]["template"]["spec"]["securityContext"].update(runAsNonRoot=False),
    "no health probe": lambda d: container_of(d)["livenessProbe"]["exec"].update(command=["true"]),
    "password inline": lambda d: [e.update(value="x") or e.pop("valueFrom") for e in container_of(d)["env"]
                                  if e["name"] == "POGOCACHE_AUTH_PASSWORD"],
    "TLS elsewhere": lambda d: container_of(d)["args"].__setitem__(
        container_of(d)["args"].index("--tlscert") + 1, "/tls/cert.pem"),
    "PDB selects nothing": lambda d: kinds(d, "PodDisruptionBudget")[0]["spec"]["selector"].update(
        matchLabels={"app": "other"}),
    "four replicas, three nodes": lambda d: sts(d)["spec"].update(replicas=4),
    "no EXTRA_FLAGS": lambda d: container_of(d).update(
        env=[e for e in container_of(d)["env"] if e["name"] != "POGOCACHE_EXTRA_FLAGS"]),
}
for what, edit in mutations.items():
    assert broken(edit), f"the contract check missed: {what}"
# And the schema validation catches an unknown field.
bad = copy.deepcopy(docs)
container_of(bad)["securityContex"] = {}
try:
    kubernetes_validate.validate(sts(bad), VERSIONS[-1], strict=True)
    raise SystemExit("strict validation accepted an unknown field")
except kubernetes_validate.ValidationError:
    pass
print("ok", len(docs), "objects,", ", ".join(VERSIONS))
