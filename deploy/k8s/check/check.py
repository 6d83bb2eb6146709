#!/usr/bin/python3
"""Checks hips's Kubernetes manifests offline, where no cluster answers.

  check.py --bin DIR [--kustomize DIR | --rendered FILE] [--node_modules DIR]

1. Renders the kustomization (kubectl kustomize), or reads a rendered file.
2. Validates every object against the Kubernetes API schemas (validate.js,
   with the npm package kubernetes-models), fields the schemas do not define
   included.
3. Runs every container's command line, and every exec probe, as each pod
   would run it (each ordinal of a StatefulSet, each index of an Indexed
   Job; $(VAR) expanded from the container's env; the ConfigMaps' files in
   place of their volumes) with --check_flags through the binary of that
   name in --bin: each must be accepted. Files of Secrets are not read, only
   required to be keys of the Secret mounted there.
4. Checks that the tiers agree: HQ's --aggregators is the aggregators'
   replicas, each aggregator's --workers the workers whose index mod A is its
   ordinal, the workers' --workers the Job's completions (all running at
   once), every address a member dials names a Service port of this render
   (and an existing ordinal), and each binary runs in an image that has it.

Exit 0 when everything passes, 1 with every problem listed otherwise, 2 for
bad arguments.
"""

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
# The binaries each image holds (deploy/Dockerfile): the aggregator image has
# no LibTorch, hence no hips-hq or hips-worker.
IMAGE_BINARIES = {
    "hips-aggregator": {"hips", "hips-aggregator"},
    "hips-torch": {"hips", "hips-hq", "hips-aggregator", "hips-worker", "hips-train"},
}
HIPS_BINARIES = set().union(*IMAGE_BINARIES.values())


class Problems:
    def __init__(self):
        self.items = []

    def add(self, where, what):
        self.items.append(f"{where}: {what}")


def render(kustomize_dir):
    kubectl = os.environ.get("KUBECTL", "kubectl")
    run = subprocess.run([kubectl, "kustomize", kustomize_dir], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"check.py: kubectl kustomize {kustomize_dir} failed:\n{run.stderr}")
    return run.stdout


def schema_problems(objects, node_modules, problems):
    """Validates `objects` with validate.js; returns the (kind, name) of
    those that failed."""
    env = dict(os.environ, NODE_PATH=node_modules)
    # The API server decodes base64 with Go's decoder, which skips line
    # breaks (kustomize 5 wraps long values); the schema's pattern does not.
    normalized = []
    for o in objects:
        o = json.loads(json.dumps(o))
        if o.get("kind") == "Secret" and isinstance(o.get("data"), dict):
            o["data"] = {k: re.sub(r"\s", "", v) if isinstance(v, str) else v
                         for k, v in o["data"].items()}
        normalized.append(o)
    run = subprocess.run(["node", os.path.join(HERE, "validate.js")], input=json.dumps(normalized),
                         capture_output=True, text=True, env=env)
    if run.returncode != 0:
        sys.exit(f"check.py: validate.js failed:\n{run.stderr}")
    invalid = set()
    for result in json.loads(run.stdout):
        for error in result["errors"]:
            problems.add(f"{result['kind']}/{result['name']}", error)
            invalid.add((result["kind"], result["name"]))
    return invalid


def by_kind(objects, kind):
    return [o for o in objects if o.get("kind") == kind]


def find(objects, kind, name):
    for o in by_kind(objects, kind):
        if o["metadata"]["name"] == name:
            return o
    return None


def pods_of(workload):
    """(pod name, completion index or None) of each pod the workload makes."""
    kind, name, spec = workload["kind"], workload["metadata"]["name"], workload["spec"]
    if kind == "StatefulSet":
        return [(f"{name}-{k}", None) for k in range(spec.get("replicas", 1))]
    if kind == "Job":
        completions = spec.get("completions", 1)
        if spec.get("completionMode") == "Indexed":
            return [(f"{name}-{k}", k) for k in range(completions)]
        return [(f"{name}-0", None)]
    return [(name, None)]


def expand(text, env):
    """Kubernetes' $(VAR) expansion: $$ escapes, unknown references stay."""
    def sub(m):
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", sub, text)


def container_env(container, pod_name, index, objects, where, problems):
    env = {}
    for e in container.get("env", []):
        name = e["name"]
        if "value" in e:
            env[name] = expand(e["value"], env)
            continue
        source = e.get("valueFrom", {})
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            if path == "metadata.name":
                env[name] = pod_name
            elif path == "metadata.namespace":
                env[name] = "default"
            elif path == f"metadata.annotations['{INDEX_ANNOTATION}']" and index is not None:
                env[name] = str(index)
            else:
                problems.add(where, f"env {name}: field {path} is not known here")
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            cm = find(objects, "ConfigMap", ref["name"])
            if cm is None or ref["key"] not in cm.get("data", {}):
                problems.add(where, f"env {name}: no key {ref['key']} in ConfigMap {ref['name']}")
            else:
                env[name] = cm["data"][ref["key"]]
        else:
            problems.add(where, f"env {name}: a source this check does not know")
    return env


class Mounts:
    """The container's volumes: ConfigMaps written to a directory, Secrets
    known by their keys."""

    def __init__(self, pod_spec, container, objects, scratch, where, problems):
        self.config = []   # (mount path, local directory)
        self.secrets = []  # (mount path, secret name, keys)
        volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}

        def source(volume, kind, name):
            o = find(objects, kind, name)
            if o is None:
                problems.add(where, f"volume {volume}: no {kind} {name} in the render")
            return o

        for m in container.get("volumeMounts", []):
            v = volumes.get(m["name"])
            if v is None:
                continue  # a volumeClaimTemplate
            mount = m["mountPath"].rstrip("/")
            if "configMap" in v:
                name = v["configMap"]["name"]
                cm = source(m["name"], "ConfigMap", name)
                if cm is None:
                    continue
                local = tempfile.mkdtemp(dir=scratch)
                for key, value in cm.get("data", {}).items():
                    with open(os.path.join(local, key), "w") as f:
                        f.write(value)
                self.config.append((mount, local))
            elif "secret" in v:
                name = v["secret"]["secretName"]
                secret = source(m["name"], "Secret", name)
                if secret is None:
                    continue
                keys = set(secret.get("data", {})) | set(secret.get("stringData", {}))
                self.secrets.append((mount, name, keys))

    def localize(self, arg, where, problems):
        """`arg` with paths into ConfigMap volumes pointing at their local
        copies; a path into a Secret volume must name one of its keys."""
        def fix(path):
            for mount, local in self.config:
                if path.startswith(mount + "/"):
                    local_path = os.path.join(local, path[len(mount) + 1:])
                    if not os.path.exists(local_path):
                        problems.add(where, f"{path}: no such key in the ConfigMap at {mount}")
                    return local_path
            for mount, name, keys in self.secrets:
                if path.startswith(mount + "/") and path[len(mount) + 1:] not in keys:
                    problems.add(where, f"{path}: no such key in Secret {name}")
            return path
        value = arg.split("=", 1)[1] if arg.startswith("--") and "=" in arg else arg
        if not value.startswith("/"):
            return arg
        fixed = ",".join(fix(p) for p in value.split(","))
        return arg[: len(arg) - len(value)] + fixed


def effective_flags(args):
    """The flags a command line sets, flag files included (last one wins)."""
    flags = {}
    for arg in args:
        if not arg.startswith("--"):
            continue
        name, _, value = arg[2:].partition("=")
        name = name.replace("-", "_")
        if name == "flagfile":
            for path in value.split(","):
                with open(path) as f:
                    lines = [line.strip() for line in f]
                flags.update(effective_flags([l for l in lines if l and not l.startswith("#")]))
        else:
            flags[name] = value if "=" in arg else "true"
    return flags


def run_check(bin_dir, argv, where, problems):
    binary = os.path.join(bin_dir, argv[0])
    if "/" in argv[0] or not os.access(binary, os.X_OK):
        problems.add(where, f"{argv[0]}: not a hips binary (none in {bin_dir})")
        return False
    run = subprocess.run([binary] + argv[1:] + ["--check_flags"], capture_output=True, text=True,
                         timeout=60)
    if run.returncode != 0:
        problems.add(where, f"{shlex.join(argv)} refused: {(run.stderr or run.stdout).strip()}")
        return False
    return True


def image_name(image):
    name = image.rsplit("/", 1)[-1]
    return name.split("@")[0].split(":")[0]


def check_workloads(objects, invalid, bin_dir, scratch, problems):
    """Runs every command line of the workloads the schemas accepted;
    returns what each hips member was started with: {tier: [(workload, pod,
    index, flags)]}, and how many lines were checked."""
    members = {"hq": [], "aggregator": [], "worker": []}
    checked = others = 0
    for w in objects:
        if w.get("kind") not in ("StatefulSet", "Job", "Deployment", "DaemonSet"):
            continue
        if (w["kind"], w["metadata"]["name"]) in invalid:
            problems.add(f"{w['kind']}/{w['metadata']['name']}",
                         "not checked further: it does not match the schema")
            continue
        pod_spec = w["spec"]["template"]["spec"]
        for pod_name, index in pods_of(w):
            for c in pod_spec.get("containers", []) + pod_spec.get("initContainers", []):
                where = f"{w['kind']}/{w['metadata']['name']} pod {pod_name} container {c['name']}"
                env = container_env(c, pod_name, index, objects, where, problems)
                mounts = Mounts(pod_spec, c, objects, scratch, where, problems)
                argv = [expand(a, env) for a in c.get("command", []) + c.get("args", [])]
                # A container of someone else's image running something
                # else (a sidecar of an overlay) is not hips's to check.
                if (image_name(c.get("image", "")) not in IMAGE_BINARIES and
                        (not argv or argv[0] not in HIPS_BINARIES)):
                    others += 1
                    continue
                if not argv:
                    problems.add(where, "no command: the image's entrypoint is not checked")
                    continue
                for a in argv:
                    if re.search(r"\$\([A-Za-z_][A-Za-z0-9_]*\)", a):
                        problems.add(where, f"{a}: a variable the container's env does not set")
                argv = [mounts.localize(a, where, problems) for a in argv]
                allowed = IMAGE_BINARIES.get(image_name(c.get("image", "")))
                if allowed is not None and argv[0] not in allowed:
                    problems.add(where, f"{argv[0]} is not in image {c['image']}")
                checked += run_check(bin_dir, argv, where, problems)
                tier = {"hips-hq": "hq", "hips-aggregator": "aggregator",
                        "hips-worker": "worker"}.get(argv[0])
                if tier:
                    members[tier].append((w, pod_name, index, effective_flags(argv[1:])))
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    command = c.get(probe, {}).get("exec", {}).get("command")
                    if not command or command[0] not in HIPS_BINARIES:
                        continue
                    if any("$(" in a for a in command):
                        problems.add(where, f"{probe}: Kubernetes does not expand $(VAR) in probes")
                    command = [mounts.localize(a, where, problems) for a in command]
                    checked += run_check(bin_dir, command, f"{where} {probe}", problems)
    return members, checked, others


def check_tiers(objects, members, problems):
    hqs, aggregators, workers = members["hq"], members["aggregator"], members["worker"]
    if len(hqs) != 1:
        problems.add("cluster", f"{len(hqs)} HQ pods (one expected)")
    if not aggregators or not workers:
        problems.add("cluster", "no aggregator or no worker pods")
        return
    a, w = len(aggregators), len(workers)
    for _, pod, _, flags in hqs:
        if int(flags.get("aggregators", "1")) != a:
            problems.add(pod, f"--aggregators={flags.get('aggregators', '1')}, but {a} "
                         "aggregator pods run")
    for ordinal, (_, pod, _, flags) in enumerate(aggregators):
        own = len([k for k in range(w) if k % a == ordinal])
        if int(flags.get("workers", "1")) != own:
            problems.add(pod, f"--workers={flags.get('workers', '1')}, but {own} of the {w} "
                         "workers have it as their own (index mod aggregators)")
    for job, pod, _, flags in workers:
        if int(flags.get("workers", "1")) != w:
            problems.add(pod, f"--workers={flags.get('workers', '1')}, but {w} worker pods")
        spec = job["spec"]
        if job["kind"] == "Job" and spec.get("parallelism", 1) < spec.get("completions", 1):
            problems.add(pod, "parallelism below completions: a sync round waits for every worker")
    # Every address a member dials or advertises is a Service port here.
    services = {s["metadata"]["name"]: s for s in by_kind(objects, "Service")}
    sets = {s["metadata"]["name"]: s for s in by_kind(objects, "StatefulSet")}
    for _, pod, _, flags in hqs + aggregators + workers:
        for flag in ("hq", "aggregator", "advertise_address"):
            for address in filter(None, flags.get(flag, "").split(",")):
                problem = address_problem(address, services, sets)
                if problem:
                    problems.add(pod, f"--{flag}={address}: {problem}")


def address_problem(address, services, sets):
    host, _, port = address.rpartition(":")
    labels = host.split(".")
    pod = labels[0] if len(labels) > 1 else None
    service = services.get(labels[1] if pod else labels[0])
    if service is None:
        return "no Service of that name in this render"
    if not any(str(p.get("port")) == port for p in service["spec"].get("ports", [])):
        return f"Service {service['metadata']['name']} has no port {port}"
    if pod:
        owner = [s for s in sets.values()
                 if s["spec"].get("serviceName") == service["metadata"]["name"]
                 and pod.startswith(s["metadata"]["name"] + "-")]
        ordinal = pod[len(owner[0]["metadata"]["name"]) + 1:] if owner else ""
        if not owner or not ordinal.isdigit() or int(ordinal) >= owner[0]["spec"].get("replicas", 1):
            return f"no pod {pod} behind Service {service['metadata']['name']}"
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", required=True, help="the hips binaries (build/bin)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--kustomize", default=os.path.dirname(HERE),
                        help="the kustomization to render (default: deploy/k8s)")
    source.add_argument("--rendered", help="a rendered manifest file instead")
    parser.add_argument("--node_modules", required=True,
                        help="where npm installed kubernetes-models (check.sh does)")
    args = parser.parse_args()
    if not os.path.isdir(args.bin):
        parser.error(f"--bin {args.bin}: not a directory")

    text = open(args.rendered).read() if args.rendered else render(args.kustomize)
    try:
        documents = [o for o in yaml.safe_load_all(text) if o is not None]
    except yaml.YAMLError as e:
        sys.exit(f"check.py: not YAML: {e}")
    problems = Problems()
    objects = []
    for k, o in enumerate(documents):
        if isinstance(o, dict) and isinstance(o.get("metadata"), dict):
            objects.append(o)
        else:
            problems.add(f"document {k + 1}", "not a Kubernetes object (no metadata)")
    invalid = schema_problems(objects, args.node_modules, problems)
    with tempfile.TemporaryDirectory() as scratch:
        members, lines, others = check_workloads(objects, invalid, args.bin, scratch, problems)
        if not invalid:
            check_tiers(objects, members, problems)
    for p in problems.items:
        print(f"PROBLEM {p}")
    kinds = sorted({o["kind"] for o in objects})
    print(f"{len(objects)} objects ({', '.join(kinds)}) against the Kubernetes API schemas; "
          f"{lines} command lines and probes accepted by their binaries; "
          f"{others} containers of other images skipped; "
          f"{len(problems.items)} problems")
    return 1 if problems.items else 0


if __name__ == "__main__":
    sys.exit(main())
