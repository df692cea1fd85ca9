"""Reads the Kubernetes manifests in deploy/kubernetes, checks them, and derives from the
Deployment a Pod that `podman kube play` can run.

    manifests.py render DIR                  -> the kustomization in DIR rendered (stdout)
    manifests.py check RENDERED [--native]   -> checks the rendered base (or an overlay)
    manifests.py config RENDERED             -> the ConfigMap's viscount.yaml (stdout)
    manifests.py facts RENDERED              -> "LISTEN_PORT ADMIN_PORT DRAIN_SECONDS" of it
    manifests.py same RENDERED OTHER         -> fails unless both hold the same documents
    manifests.py pod RENDERED --name N --image OLD=NEW... --publish PORT=HOSTPORT...
                                             -> ConfigMap + Pod for podman (stdout)

`render` is for hosts without kubectl: it understands just what the base and the pre-1.29
overlay use (resources as files or as another kustomization's folder, configMapGenerator with
files, images, and patches with a target kind/name and inline JSON Patch operations) and refuses
anything else, so it cannot silently differ from kustomize. Where kubectl exists, pod_test.sh
renders with `kubectl kustomize` and checks that this renderer gives the same documents.

Why a Pod is derived rather than played as is: podman 4.3 runs init containers to completion
before the others, so the native sidecar (an init container with restartPolicy: Always that
never exits) would block the pod. In the Pod it is an ordinary container, first in the list.
Kubelet-only behaviour is dropped too: probes (podman would turn them into healthchecks run
with curl inside the image, which viscount's image does not have) and preStop hooks (podman
does not run them). The Deployment's securityContext, resources, ports and config volume are
kept, so the pod test runs the image the way a cluster would: as uid 65532 on a read-only root
filesystem, with the CPU limit that sizes `workers: auto`. The ConfigMap is renamed after the
pod, images are replaced by the locally built ones, and the chosen ports are published on
127.0.0.1.

Debian's /usr/bin/python3 with python3-yaml.
"""

import argparse
import copy
import re
import sys
from pathlib import Path

import yaml


def fail(message):
    sys.exit(f"manifests.py: {message}")


def load_all(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def dump_all(docs):
    return yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False)


def render(directory):
    root = Path(directory)
    kustomization = yaml.safe_load((root / "kustomization.yaml").read_text(encoding="utf-8"))
    supported = {"apiVersion", "kind", "resources", "configMapGenerator", "images", "patches"}
    unknown = set(kustomization) - supported
    if unknown:
        fail(f"render: {root} uses {sorted(unknown)}; install kubectl to render it")
    docs = []
    for generator in kustomization.get("configMapGenerator", []):
        if set(generator) - {"name", "files"}:
            fail(f"render: configMapGenerator {generator.get('name')} needs kubectl")
        data = {}
        for entry in generator["files"]:
            data[Path(entry).name] = (root / entry).read_text(encoding="utf-8")
        docs.append({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": generator["name"]}, "data": data})
    for resource in kustomization.get("resources", []):
        if (root / resource).is_dir():  # another kustomization (an overlay's base)
            docs.extend(render(root / resource))
        elif (root / resource).is_file():
            docs.extend(load_all(root / resource))
        else:
            fail(f"render: resource {resource} is neither a file nor a folder")
    images = {i["name"]: i for i in kustomization.get("images", [])}
    for doc in docs:
        if doc["kind"] != "Deployment":
            continue
        spec = doc["spec"]["template"]["spec"]
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            name, _, tag = container["image"].partition(":")
            if name in images:
                rule = images[name]
                container["image"] = f"{rule.get('newName', name)}:{rule.get('newTag', tag)}"
    for patch in kustomization.get("patches", []):
        apply_patch(docs, patch, root)
    return docs


def apply_patch(docs, patch, root):
    """A kustomize patch with a target (kind, name) and inline JSON Patch (RFC 6902) operations."""
    if set(patch) != {"target", "patch"} or set(patch["target"]) - {"kind", "name"}:
        fail(f"render: a patch in {root} needs kubectl (only target kind/name + inline ops here)")
    operations = yaml.safe_load(patch["patch"])
    if not isinstance(operations, list):
        fail(f"render: a patch in {root} is not a JSON Patch list; install kubectl to render it")
    target = patch["target"]
    matched = [d for d in docs if d.get("kind") == target.get("kind", d.get("kind"))
               and d.get("metadata", {}).get("name") == target.get("name", d["metadata"]["name"])]
    if not matched:
        fail(f"render: no document matches the patch target {target} in {root}")
    for doc in matched:
        for op in operations:
            json_patch(doc, op)


def pointer(path):
    if not path.startswith("/"):
        fail(f"render: JSON pointer {path!r} does not start with /")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def locate(doc, path):
    """(parent, key) of a JSON pointer; list indexes become ints, '-' means the end."""
    *parents, last = pointer(path)
    node = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        return node, len(node) if last == "-" else int(last)
    return node, last


def json_patch(doc, op):
    kind = op.get("op")
    if kind in ("add", "replace", "test"):
        parent, key = locate(doc, op["path"])
        if kind == "test":
            if parent[key] != op["value"]:
                fail(f"render: test {op['path']} == {op['value']!r} failed: {parent[key]!r}")
        elif kind == "add" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(op["value"]))
        else:
            if kind == "replace":
                parent[key]  # pylint: disable=pointless-statement  # must exist: KeyError else
            parent[key] = copy.deepcopy(op["value"])
    elif kind == "remove":
        parent, key = locate(doc, op["path"])
        del parent[key]
    elif kind in ("move", "copy"):
        source_parent, source_key = locate(doc, op["from"])
        value = source_parent[source_key]
        if kind == "move":
            del source_parent[source_key]
        json_patch(doc, {"op": "add", "path": op["path"], "value": value})
    else:
        fail(f"render: JSON Patch operation {kind!r} is not supported; install kubectl")


def same(docs, others, name, other_name):
    """Two renderings agree, but for the hash suffix kustomize gives generated ConfigMaps."""
    def normal(d):
        text = re.sub(r"\b(viscount-config)-[a-z0-9]{10}\b", r"\1", yaml.safe_dump(d))
        return yaml.safe_load(text)

    def by_name(ds):
        return {(d["kind"], d["metadata"]["name"]): d for d in map(normal, ds)}

    a, b = by_name(docs), by_name(others)
    if a.keys() != b.keys():
        fail(f"{name} and {other_name} hold different documents: {sorted(a)} vs {sorted(b)}")
    for key in a:
        if a[key] != b[key]:
            fail(f"{name} and {other_name} differ in {key[0]} {key[1]}")


def one(docs, kind):
    found = [d for d in docs if d.get("kind") == kind]
    if len(found) != 1:
        fail(f"expected one {kind}, found {len(found)}")
    return found[0]


def viscount_config(docs):
    data = one(docs, "ConfigMap").get("data", {})
    if "viscount.yaml" not in data:
        fail("the ConfigMap has no viscount.yaml")
    return data["viscount.yaml"]


def seconds(duration):
    match = re.fullmatch(r"(\d+)(ms|s|m|h)", str(duration))
    if not match:
        fail(f"cannot read duration {duration!r}")
    value, unit = int(match.group(1)), match.group(2)
    return value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def port_of(address):
    return int(str(address).rsplit(":", 1)[1])


def containers(spec):
    """(viscount, app) container specs, wherever viscount sits."""
    everything = spec.get("initContainers", []) + spec.get("containers", [])
    viscount = [c for c in everything if c["name"] == "viscount"]
    app = [c for c in spec.get("containers", []) if c["name"] != "viscount"]
    if len(viscount) != 1 or len(app) != 1:
        fail("expected one viscount container and one app container")
    return viscount[0], app[0]


def facts(docs):
    """(listener port, admin address, drain_timeout in seconds) of the ConfigMap's config."""
    config = yaml.safe_load(viscount_config(docs))
    admin = config.get("admin", {}).get("address", "127.0.0.1:15000")
    return (port_of(config["listeners"][0]["address"]), str(admin),
            seconds(config.get("drain_timeout", "20s")))


def check(docs, native):
    """The rules the README promises; each miss is one line, all reported together."""
    problems = []

    def expect(condition, message):
        if not condition:
            problems.append(message)

    listen_port, admin, drain = facts(docs)
    admin_port = port_of(admin)
    expect(not str(admin).startswith("127."), "admin must listen beyond loopback for probes")

    deployment = one(docs, "Deployment")
    template = deployment["spec"]["template"]
    spec = template["spec"]
    viscount, app = containers(spec)
    in_init = viscount in spec.get("initContainers", [])
    if native:
        expect(in_init and viscount.get("restartPolicy") == "Always",
               "viscount must be an init container with restartPolicy: Always")
    else:
        expect(not in_init and "restartPolicy" not in viscount,
               "viscount must be an ordinary container")
        expect(spec["containers"][0] is viscount, "viscount must come first")

    grace = spec.get("terminationGracePeriodSeconds", 30)
    expect(grace == drain + 15,
           f"terminationGracePeriodSeconds {grace} != drain_timeout {drain:g}s + 15")
    app_sleep = app.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
    expect(app_sleep == ["sleep", str(int(drain + 5))],
           f"app preStop {app_sleep} != sleep drain_timeout + 5 ({drain + 5:g})")
    viscount_sleep = viscount.get("lifecycle", {}).get("preStop", {}).get("exec", {})
    if native:
        expect(not viscount_sleep, "a native sidecar needs no preStop (it stops after the app)")
    else:
        expect(viscount_sleep.get("command") == ["sleep", "5"],
               "ordinary-container viscount needs preStop sleep 5 (endpoint propagation)")

    ports = {p["containerPort"] for p in viscount.get("ports", [])}
    expect({listen_port, admin_port} <= ports,
           f"viscount ports {sorted(ports)} miss {listen_port} or {admin_port}")
    probes = {kind: viscount.get(kind, {}).get("httpGet", {})
              for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
    expect(probes["startupProbe"].get("path") == "/ready", "startupProbe must ask /ready")
    expect(probes["readinessProbe"].get("path") == "/ready", "readinessProbe must ask /ready")
    expect(probes["livenessProbe"].get("path") == "/healthz", "livenessProbe must ask /healthz")
    for kind, probe in probes.items():
        expect(probe.get("port") == admin_port, f"{kind} must use the admin port {admin_port}")

    security = viscount.get("securityContext", {})
    expect(spec.get("securityContext", {}).get("runAsNonRoot") is True, "runAsNonRoot")
    expect(spec.get("securityContext", {}).get("seccompProfile", {}).get("type") ==
           "RuntimeDefault", "seccompProfile RuntimeDefault")
    expect(isinstance(security.get("runAsUser"), int) and security["runAsUser"] > 0,
           "viscount runAsUser must be a non-root number")
    expect(security.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation: false")
    expect(security.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem: true")
    expect(security.get("capabilities", {}).get("drop") == ["ALL"], "capabilities drop ALL")
    expect({"requests", "limits"} <= set(viscount.get("resources", {})),
           "viscount needs resource requests and limits")

    annotations = template["metadata"].get("annotations", {})
    expect(annotations.get("prometheus.io/port") == str(admin_port),
           "prometheus.io/port must be the admin port")

    service = one(docs, "Service")
    targets = [p.get("targetPort") for p in service["spec"]["ports"]]
    expect(targets == [listen_port], f"Service targetPort {targets} must be [{listen_port}]")
    labels = template["metadata"].get("labels", {})
    expect(all(labels.get(k) == v for k, v in service["spec"]["selector"].items()),
           "the Service selector must match the pod labels")

    mounts = [m for m in viscount.get("volumeMounts", []) if m["mountPath"] == "/etc/viscount"]
    expect(len(mounts) == 1, "the config must be mounted at /etc/viscount")
    if problems:
        fail("manifest check failed:\n  " + "\n  ".join(problems))


def pod(docs, name, images, published):
    configmap = copy.deepcopy(one(docs, "ConfigMap"))
    deployment = one(docs, "Deployment")
    template = copy.deepcopy(deployment["spec"]["template"])
    spec = template["spec"]
    # kube play makes the ConfigMap a named volume: name it after the pod, so that runs side by
    # side (or a stale volume from an aborted run) never share one.
    original = configmap["metadata"]["name"]
    configmap["metadata"]["name"] = f"{name}-{original}"
    for volume in spec.get("volumes", []):
        if volume.get("configMap", {}).get("name") == original:
            volume["configMap"]["name"] = configmap["metadata"]["name"]

    sidecars = [c for c in spec.pop("initContainers", []) if c.get("restartPolicy") == "Always"]
    for container in sidecars:
        del container["restartPolicy"]
    spec["containers"] = sidecars + spec["containers"]
    if spec.get("initContainers"):
        fail("the Deployment has init containers that are not sidecars; extend pod()")

    for container in spec["containers"]:
        for kubelet_only in ("startupProbe", "readinessProbe", "livenessProbe", "lifecycle"):
            container.pop(kubelet_only, None)
        image_name = container["image"].split(":")[0].split("/")[-1]
        if image_name not in images:
            fail(f"no --image given for {container['image']}")
        container["image"] = images[image_name]
        container["imagePullPolicy"] = "Never"
        for port in container.get("ports", []):
            if port["containerPort"] in published:
                port["hostPort"] = published[port["containerPort"]]
                port["hostIP"] = "127.0.0.1"
    # A stopped container stays stopped, so the test can look at how it ended.
    spec["restartPolicy"] = "Never"
    metadata = {"name": name, "labels": template["metadata"].get("labels", {}),
                "annotations": template["metadata"].get("annotations", {})}
    return [configmap, {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}]


def pairs(values, convert):
    result = {}
    for value in values:
        key, _, target = value.partition("=")
        if not target:
            fail(f"expected KEY=VALUE, got {value!r}")
        result[convert(key)] = convert(target)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["render", "check", "config", "facts", "pod", "same"])
    parser.add_argument("path")
    parser.add_argument("other", nargs="?")
    parser.add_argument("--native", action="store_true")
    parser.add_argument("--name", default="viscount-test")
    parser.add_argument("--image", action="append", default=[])
    parser.add_argument("--publish", action="append", default=[])
    args = parser.parse_args()

    if args.command == "render":
        sys.stdout.write(dump_all(render(args.path)))
        return
    docs = load_all(args.path)
    if args.command == "same":
        same(docs, load_all(args.other), args.path, args.other)
    elif args.command == "check":
        check(docs, args.native)
    elif args.command == "config":
        sys.stdout.write(viscount_config(docs))
    elif args.command == "facts":
        listen_port, admin, drain = facts(docs)
        print(listen_port, port_of(admin), f"{drain:g}")
    else:
        sys.stdout.write(dump_all(pod(docs, args.name, pairs(args.image, str),
                                      pairs(args.publish, int))))


if __name__ == "__main__":
    main()
