#!/usr/bin/python3
"""The Docker Compose cluster (deploy/docker-compose.yml) on a real engine.

    compose_test.py --src SOURCE_DIR

Starts dockerd when none answers (and stops it at the end), makes the base
image where none can be pulled (deploy/base-image.sh), builds the three
images from the binaries this build made (--build-arg BINARIES=prebuilt;
docs/deploy.md says why), makes fresh credentials in a temporary copy of
deploy/, and brings the cluster up under a project name of its own. Then:
  - every daemon turns healthy and versions rise;
  - an aggregator and a worker crash (SIGKILL to the container's main
    process: what a crash is to the engine; `docker kill` counts as a stop
    by hand, which no restart policy undoes): both are restarted by their
    policy, training goes on past the crash, and the crashed worker's
    aggregator serves again;
  - `hips status` inside the HQ container lists both aggregators at the
    addresses they advertise, reachable;
  - Prometheus scrapes every daemon (up == 1 for all seven targets);
  - training ends at the budget, HQ's log holds the final evaluation with
    accuracy >= 0.85 and `hips status` shows it; the workers exit 0.
Finally `docker-compose down -v`. Every wait is bounded.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import waiting

failures = []
VERSIONS = 3000


def check(condition, message):
    if not condition:
        failures.append(message)
        print("FAIL: " + message, flush=True)
    return condition


def run(argv, timeout=600, env=None, check_rc=True):
    print("$ " + " ".join(argv), flush=True)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    if check_rc and p.returncode != 0:
        raise RuntimeError("%s exited %d:\n%s\n%s" % (argv[0], p.returncode, p.stdout[-3000:],
                                                    p.stderr[-3000:]))
    return p


def wait_for(what, condition, seconds, every=1.0):
    if waiting.wait_for(condition, seconds, every=every,
                        ignore=(subprocess.SubprocessError, RuntimeError, ValueError, KeyError,
                                OSError)):
        return True
    return check(False, "timed out after %d s waiting for %s" % (seconds, what))


class Engine:
    """A Docker engine: the running one, or a dockerd started (and stopped) here."""

    def __init__(self, tmp):
        # Debian's client (docker.io) matches Debian's engine and builds
        # with BuildKit without the buildx plugin.
        self.docker = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
        self.dockerd = None
        self.tmp = tmp

    def answers(self):
        return subprocess.run([self.docker, "info"], capture_output=True,
                              timeout=30).returncode == 0

    def __enter__(self):
        if not self.answers():
            log = open(os.path.join(self.tmp, "dockerd.log"), "w")
            self.dockerd = subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT)
            if not wait_for("dockerd to answer", self.answers, 90):
                raise RuntimeError("dockerd did not start; see its log")
        return self

    def __exit__(self, *exc):
        if self.dockerd is not None and self.dockerd.poll() is None:
            self.dockerd.send_signal(signal.SIGTERM)
            try:
                self.dockerd.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.dockerd.kill()
                self.dockerd.wait()
        return False


class Compose:
    def __init__(self, engine, deploy, project):
        self.engine, self.project = engine, project
        self.file = os.path.join(deploy, "docker-compose.yml")
        self.env = dict(os.environ, HIPS_MAX_VERSIONS=str(VERSIONS), HIPS_HQ_PORT="0",
                        HIPS_PROMETHEUS_PORT="0")

    def __call__(self, *args, timeout=600, check_rc=True):
        return run(["docker-compose", "-p", self.project, "-f", self.file] + list(args),
                   timeout=timeout, env=self.env, check_rc=check_rc)

    def container(self, service):
        return self("ps", "-q", service).stdout.strip()

    def inspect(self, service, fmt):
        return run([self.engine.docker, "inspect", "-f", fmt, self.container(service)]).stdout.strip()

    def healthy(self, service):
        return self.inspect(service, "{{.State.Health.Status}}") == "healthy"

    def status(self):
        out = self("exec", "-T", "hq", "hips", "status", "--hq=127.0.0.1:7000",
                   "--token_file=/run/secrets/cluster.token", "--tls_ca=/run/secrets/ca.pem",
                   "--tls_cert=/run/secrets/cli.pem", "--tls_key=/run/secrets/cli.key",
                   "--json", timeout=60).stdout
        return json.loads(out)

    def version(self):
        return self.status()["hq"]["version"]


DAEMONS = ["hq", "aggregator-0", "aggregator-1", "worker-0", "worker-1", "worker-2", "worker-3"]


def build_images(engine, src):
    start = time.time()
    run(["bash", os.path.join(src, "deploy", "compose.sh"), "images", "--prebuilt"],
        timeout=2400)
    print("base image and images ready in %.0f s" % (time.time() - start), flush=True)
    sizes = {t: int(run([engine.docker, "image", "inspect", "-f", "{{.Size}}",
                         "hips-" + t]).stdout) for t in ("aggregator", "torch", "prometheus")}
    print("image sizes: " + ", ".join("hips-%s %.0f MB" % (t, b / 1e6) for t, b in sizes.items()),
          flush=True)
    check(sizes["aggregator"] < sizes["torch"] / 3,
          "the aggregator image (%d bytes) is not much smaller than the torch one (%d)" %
          (sizes["aggregator"], sizes["torch"]))


def crash(compose, service):
    """SIGKILL to the main process of the service's container."""
    pid = int(compose.inspect(service, "{{.State.Pid}}"))
    before = int(compose.inspect(service, "{{.RestartCount}}"))
    os.kill(pid, signal.SIGKILL)
    return before


def cluster_checks(compose):
    compose("up", "-d", "--no-build", timeout=900)
    # Crash early, so that most of the budget is left to train on.
    wait_for("version 100", lambda: compose.version() >= 100, 300, every=0.5)
    restarts = {s: crash(compose, s) for s in ("aggregator-1", "worker-2")}
    at_crash = compose.version()
    print("crashed aggregator-1 and worker-2 at version %d" % at_crash, flush=True)
    for s, before in restarts.items():
        wait_for(s + " restarted by its policy",
                 lambda s=s, before=before: int(compose.inspect(s, "{{.RestartCount}}")) > before
                 and compose.inspect(s, "{{.State.Status}}") == "running", 120)
        wait_for(s + " healthy again", lambda s=s: compose.healthy(s), 120)
    for s in DAEMONS + ["prometheus"]:
        wait_for(s + " to be healthy", lambda s=s: compose.healthy(s), 120)
    wait_for("training to go on after the crashes",
             lambda: compose.version() >= at_crash + 200, 300)

    status = compose.status()
    aggregators = {a["id"]: a for a in status["aggregators"]}
    check(sorted(aggregators) == ["agg-0", "agg-1"], "hips status lists %s" % sorted(aggregators))
    for i, a in enumerate(sorted(aggregators)):
        check(aggregators[a]["address"] == "aggregator-%d:7001" % i and
              aggregators[a]["reachable"], "hips status: %s" % aggregators[a])

    port = compose("port", "prometheus", "9090").stdout.strip().rsplit(":", 1)[1]
    query = "http://127.0.0.1:%s/api/v1/query?%s" % (
        port, urllib.parse.urlencode({"query": 'up{job="hips"}'}))

    def all_up():
        with urllib.request.urlopen(query, timeout=10) as r:
            result = json.load(r)["data"]["result"]
        up = {x["metric"]["name"]: x["value"][1] for x in result}
        return sorted(up) == sorted(DAEMONS) and set(up.values()) == {"1"}
    wait_for("Prometheus to scrape all seven daemons", all_up, 60, every=2)

    wait_for("training done", lambda: compose.status()["hq"]["training_done"], 900, every=3)
    final = {}

    def final_logged():
        log = compose("logs", "--no-color", "hq", timeout=60).stdout
        m = re.search(r"eval version=(\d+) accuracy=([0-9.]+) f1=[0-9.]+ \(final\)", log)
        if m:
            final.update(version=int(m.group(1)), accuracy=float(m.group(2)))
        return bool(m)
    if wait_for("HQ's final evaluation in its log", final_logged, 120, every=2):
        print("final: version %d accuracy %.4f" % (final["version"], final["accuracy"]),
              flush=True)
        check(final["version"] == VERSIONS, "final version %d" % final["version"])
        check(final["accuracy"] >= 0.85, "final accuracy %.4f < 0.85" % final["accuracy"])
        final_eval = compose.status()["hq"]["final_eval"]
        check(final_eval is not None and abs(final_eval["accuracy"] - final["accuracy"]) < 1e-4,
              "hips status's final evaluation: %s" % final_eval)
    for k in range(4):
        s = "worker-%d" % k
        wait_for(s + " to exit", lambda s=s: compose.inspect(s, "{{.State.Status}}") == "exited",
                 60)
        check(compose.inspect(s, "{{.State.ExitCode}}") == "0",
              "%s exited with %s" % (s, compose.inspect(s, "{{.State.ExitCode}}")))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", required=True)
    parser.add_argument("--bin", required=True, help="this build's bin directory")
    args = parser.parse_args()
    # The images take the binaries from build/bin of the source tree (the
    # Dockerfile's context): they must be this build's.
    if os.path.realpath(args.bin) != os.path.realpath(os.path.join(args.src, "build", "bin")):
        print("compose_test: the images copy %s/build/bin, not this build's %s: build in "
              "build/ (scripts/build.sh)" % (args.src, args.bin), file=sys.stderr)
        return 1
    if os.geteuid() != 0:
        print("compose_test: needs root (dockerd, debootstrap)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="hips-compose-test-") as tmp:
        with Engine(tmp) as engine:
            build_images(engine, args.src)
            deploy = os.path.join(tmp, "deploy")
            shutil.copytree(os.path.join(args.src, "deploy"), deploy,
                            ignore=shutil.ignore_patterns("secrets"))
            run(["bash", os.path.join(deploy, "compose-credentials.sh")])
            compose = Compose(engine, deploy, "hipstest%d" % os.getpid())
            try:
                cluster_checks(compose)
            finally:
                for s in DAEMONS:
                    log = compose("logs", "--no-color", "--tail=30", s, check_rc=False).stdout
                    if failures:
                        print(log[-3000:])
                compose("down", "-v", "--remove-orphans", timeout=300, check_rc=False)
                run(["rm", "-rf", os.path.join(deploy, "secrets")], check_rc=False)
    print("%d failures" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
