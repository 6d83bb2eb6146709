#!/usr/bin/python3
"""The deployment files, checked where no cluster runs (docs/deploy.md).

    deploy_test.py --src SOURCE_DIR --bin BIN_DIR --modules NPM_DIR

- deploy/k8s/check.sh passes on the base as shipped (in a copy of deploy/,
  with credentials made there);
- the check fails, naming the problem, on manifests broken the ways an
  overlay breaks them: a misspelt field, a wrong type, a bad flag value in
  the ConfigMap, tiers that disagree on counts, a missing certificate, an
  address no Service answers, a binary the image lacks, a probe with $(VAR);
- credentials.sh makes certificates whose common names are the members' ids,
  whose organizational units are their roles and whose names are the pods'
  DNS names;
- hips running as uid 10001 reads a token file mounted the way the kubelet
  mounts a Secret (root:fsGroup, 0440) and refuses one others may read;
- every command line and healthcheck of deploy/docker-compose.yml is
  accepted by its binary (--check_flags);
- every deploy script refuses an unknown argument with exit code 2.
"""
import argparse
import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml

ARGS = None


def run(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, **kwargs)


class KubernetesCheckTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hips-deploy-test-")
        shutil.copytree(os.path.join(ARGS.src, "deploy"), os.path.join(cls.tmp, "deploy"),
                        ignore=shutil.ignore_patterns("secrets"))
        cls.k8s = os.path.join(cls.tmp, "deploy", "k8s")
        cls.env = dict(os.environ, HIPS_K8S_CHECK_DIR=ARGS.modules)
        cls.base = run(["bash", os.path.join(cls.k8s, "check.sh"), "--bin=" + ARGS.bin],
                       env=cls.env)
        rendered = run(["kubectl", "kustomize", cls.k8s])
        assert rendered.returncode == 0, rendered.stderr
        cls.objects = [o for o in yaml.safe_load_all(rendered.stdout) if o]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def check(self, objects):
        path = os.path.join(self.tmp, "broken.yaml")
        with open(path, "w") as f:
            yaml.safe_dump_all(objects, f)
        return run(["/usr/bin/python3", os.path.join(self.k8s, "check", "check.py"),
                    "--bin", ARGS.bin, "--rendered", path,
                    "--node_modules", os.path.join(ARGS.modules, "node_modules")])

    def broken(self, mutate, *expected):
        """Checks the render after `mutate(objects, find)`: it must fail
        with every string of `expected` in its report."""
        objects = copy.deepcopy(self.objects)

        def find(kind, prefix):
            return next(o for o in objects
                        if o["kind"] == kind and o["metadata"]["name"].startswith(prefix))
        mutate(objects, find)
        result = self.check(objects)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        for e in expected:
            self.assertIn(e, result.stdout)

    def test_the_base_passes(self):
        self.assertEqual(self.base.returncode, 0, self.base.stdout + self.base.stderr)
        # 1 HQ (command + 3 probes), 2 aggregators and 4 workers (command +
        # 2 probes each).
        self.assertIn("13 objects (ConfigMap, Job, NetworkPolicy, Secret, Service, StatefulSet) "
                      "against the Kubernetes API schemas; 22 command lines and probes accepted "
                      "by their binaries; 0 containers of other images skipped; 0 problems", self.base.stdout)
        self.assertTrue(os.path.exists(os.path.join(self.k8s, "secrets", "ca.pem")))

    def test_a_sidecar_of_another_image_is_not_checked(self):
        objects = copy.deepcopy(self.objects)
        sts = next(o for o in objects
                   if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "hips-aggregator")
        sts["spec"]["template"]["spec"]["containers"].append(
            {"name": "logs", "image": "busybox:1.36", "command": ["tail", "-F", "/tmp/x"]})
        result = self.check(objects)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("22 command lines and probes accepted by their binaries; 2 containers of "
                      "other images skipped; 0 problems", result.stdout)

    def test_a_misspelt_field(self):
        def mutate(objects, find):
            find("StatefulSet", "hips-aggregator")["spec"]["replica"] = 2
        self.broken(mutate, "StatefulSet/hips-aggregator: .spec.replica: not a field of the schema")

    def test_a_misspelt_field_deep_in_a_pod(self):
        def mutate(objects, find):
            c = find("Job", "hips-worker")["spec"]["template"]["spec"]["containers"][0]
            c["readinessProbe"]["periodSecond"] = 5
        self.broken(mutate, ".readinessProbe.periodSecond: not a field of the schema")

    def test_a_wrong_type(self):
        def mutate(objects, find):
            find("StatefulSet", "hips-hq")["spec"]["replicas"] = "one"
        self.broken(mutate, "StatefulSet/hips-hq: ", "must be integer",
                    "StatefulSet/hips-hq: not checked further")

    def test_a_bad_flag_value_in_the_config_map(self):
        def mutate(objects, find):
            cm = find("ConfigMap", "hips-config")
            cm["data"]["hq.flags"] = cm["data"]["hq.flags"].replace("--mode=sync", "--mode=eventual")
        self.broken(mutate, "StatefulSet/hips-hq pod hips-hq-0 container hq: hips-hq ",
                    "unknown mode 'eventual'")

    def test_a_bad_flag_on_one_workers_command_line(self):
        def mutate(objects, find):
            c = find("Job", "hips-worker")["spec"]["template"]["spec"]["containers"][0]
            c["args"].append("--health_port=70000")
        self.broken(mutate, "Job/hips-worker pod hips-worker-3 container worker: hips-worker ",
                    "--health_port")

    def test_more_workers_than_the_flags_and_credentials_know(self):
        def mutate(objects, find):
            job = find("Job", "hips-worker")
            job["spec"]["completions"] = job["spec"]["parallelism"] = 6
        self.broken(mutate,
                    "/etc/hips/credentials/worker-5.pem: no such key in Secret hips-worker-credentials",
                    "hips-worker-5: --workers=4, but 6 worker pods",
                    "hips-aggregator-0: --workers=2, but 3 of the 6 workers have it as their own")

    def test_a_third_aggregator_hq_does_not_wait_for(self):
        def mutate(objects, find):
            find("StatefulSet", "hips-aggregator")["spec"]["replicas"] = 3
        self.broken(mutate, "hips-hq-0: --aggregators=2, but 3 aggregator pods run",
                    "hips-aggregator-2.pem: no such key in Secret")

    def test_workers_that_cannot_all_run_at_once(self):
        def mutate(objects, find):
            find("Job", "hips-worker")["spec"]["parallelism"] = 2
        self.broken(mutate, "parallelism below completions")

    def test_an_address_no_service_answers(self):
        # What a namePrefix in an overlay does: the names change, the
        # command lines do not.
        def mutate(objects, find):
            find("Service", "hips-hq")["metadata"]["name"] = "prod-hips-hq"
        self.broken(mutate,
                    "--hq=hips-hq-0.hips-hq:7000: no Service of that name in this render")

    def test_an_ordinal_that_does_not_exist(self):
        def mutate(objects, find):
            c = find("Job", "hips-worker")["spec"]["template"]["spec"]["containers"][0]
            c["args"] = [a.replace("hips-aggregator-1.", "hips-aggregator-7.") for a in c["args"]]
        self.broken(mutate, "no pod hips-aggregator-7 behind Service hips-aggregator")

    def test_a_binary_the_image_lacks(self):
        def mutate(objects, find):
            c = find("StatefulSet", "hips-hq")["spec"]["template"]["spec"]["containers"][0]
            c["image"] = "registry.example/hips-aggregator:1.0"
        self.broken(mutate, "hips-hq is not in image registry.example/hips-aggregator:1.0")

    def test_a_probe_with_a_variable(self):
        def mutate(objects, find):
            c = find("StatefulSet", "hips-aggregator")["spec"]["template"]["spec"]["containers"][0]
            c["livenessProbe"]["exec"]["command"][2] = "$(POD_NAME):7001"
        self.broken(mutate, "livenessProbe: Kubernetes does not expand $(VAR) in probes")

    def test_a_variable_the_env_does_not_set(self):
        def mutate(objects, find):
            c = find("StatefulSet", "hips-aggregator")["spec"]["template"]["spec"]["containers"][0]
            del c["env"]
        self.broken(mutate, "--id=$(POD_NAME): a variable the container's env does not set")

    def test_credentials_name_members_and_their_pods(self):
        secrets = os.path.join(self.k8s, "secrets")
        for member, name, role in (
                ("worker-3", "DNS:hips-aggregator-1.hips-aggregator", "OU = worker, "),
                ("hips-aggregator-1", "DNS:hips-hq-0.hips-hq", "OU = aggregator, "),
                ("hq", "IP Address:127.0.0.1", "subject=")):
            text = run(["openssl", "x509", "-noout", "-subject", "-ext", "subjectAltName",
                        "-in", os.path.join(secrets, member + ".pem")]).stdout
            # Each member's role in its organizational unit (none for HQ).
            self.assertIn(role + "CN = " + member, text)
            self.assertIn(name, text)
            verify = run(["openssl", "verify", "-CAfile", os.path.join(secrets, "ca.pem"),
                          os.path.join(secrets, member + ".pem")])
            self.assertEqual(verify.returncode, 0, verify.stdout + verify.stderr)
        self.assertFalse(os.path.exists(os.path.join(secrets, "ca.key")))


class ComposeCommandLinesTest(unittest.TestCase):
    def test_every_command_and_healthcheck_is_accepted(self):
        with open(os.path.join(ARGS.src, "deploy", "docker-compose.yml")) as f:
            # ${NAME:-default}: what docker-compose substitutes without NAME.
            text = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", f.read())
        services = yaml.safe_load(text)["services"]
        checked = 0
        for name, service in services.items():
            lines = []
            if isinstance(service.get("command"), str):
                lines.append(shlex.split(service["command"]))
            test = service.get("healthcheck", {}).get("test", [])
            if test[:2] == ["CMD", "hips"]:
                lines.append(test[1:])
            for argv in lines:
                if not argv[0].startswith("hips"):
                    continue
                result = run([os.path.join(ARGS.bin, argv[0])] + argv[1:] + ["--check_flags"])
                self.assertEqual(result.returncode, 0, f"{name}: {argv}\n{result.stderr}")
                checked += 1
        # HQ, 2 aggregators, 4 workers: a command and a healthcheck each.
        self.assertEqual(checked, 14)


class KubernetesSecretFilesTest(unittest.TestCase):
    """A token file as the kubelet mounts a Secret for a pod with runAsUser
    10001 and fsGroup 10001: owned by root, group 10001, mode defaultMode
    OR 0440. hips, run as uid 10001, must read 0440 and 0640 and refuse what
    others may read."""

    def test_a_non_root_member_reads_its_token_from_a_secret_volume(self):
        if os.geteuid() != 0 or shutil.which("setpriv") is None:
            self.skipTest("needs root and setpriv to run hips as uid 10001")
        tmp = tempfile.mkdtemp(prefix="hips-secret-modes-")
        try:
            os.chmod(tmp, 0o755)
            token = os.path.join(tmp, "cluster.token")
            with open(token, "w") as f:
                f.write("0123456789abcdef0123456789abcdef\n")
            os.chown(token, 0, 10001)
            for mode, accepted in ((0o440, True), (0o640, True), (0o660, False),
                                   (0o444, False)):
                os.chmod(token, mode)
                # Nothing listens on port 1: a token that was accepted gets
                # as far as dialling (exit 1), a refused one is a usage
                # error (exit 2).
                result = run(["setpriv", "--reuid=10001", "--regid=10001", "--groups=10001", os.path.join(ARGS.bin, "hips"), "status",
                              "--hq=127.0.0.1:1", "--token_file=" + token])
                if accepted:
                    self.assertEqual(result.returncode, 1, f"{mode:o}: {result.stderr}")
                    self.assertIn("hips status: ", result.stderr)
                    self.assertNotIn("token file", result.stderr)
                else:
                    self.assertEqual(result.returncode, 2, f"{mode:o}: {result.stderr}")
                    self.assertIn("may be read by other users", result.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class ScriptArgumentsTest(unittest.TestCase):
    def test_unknown_arguments_exit_2_with_a_message(self):
        deploy = os.path.join(ARGS.src, "deploy")
        cases = [
            (["base-image.sh", "--frobnicate"], "unknown argument"),
            (["compose-credentials.sh", "--frobnicate"], "unknown argument"),
            (["compose.sh", "sideways"], "compose.sh"),
            (["compose.sh", "images", "--fast"], "unknown option"),
            (["k8s/credentials.sh", "--frobnicate"], "unknown argument"),
            (["k8s/credentials.sh", "--workers=0"], "count in [1, 999]"),
            (["k8s/credentials.sh", "--aggregators=two"], "count in [1, 999]"),
            (["k8s/check.sh", "--frobnicate"], "unknown option"),
            (["make-pki.sh", "/tmp/x"], "usage"),
            (["make-pki.sh", "/tmp/hips-never", "CA", "DNS:x", "bad/id"], "bad member 'bad/id'"),
            (["make-pki.sh", "/tmp/hips-never", "CA", "DNS:x", "boss:agg-0"],
             "bad member 'boss:agg-0' (ID or ROLE:ID, ROLE worker or aggregator)"),
        ]
        for argv, message in cases:
            result = run(["bash", os.path.join(deploy, argv[0])] + argv[1:])
            self.assertEqual(result.returncode, 2, f"{argv}: {result.stdout}{result.stderr}")
            self.assertIn(message, result.stderr, argv)
        check = run(["/usr/bin/python3", os.path.join(deploy, "k8s", "check", "check.py"),
                     "--bin", "/nonexistent", "--node_modules", "/nonexistent"])
        self.assertEqual(check.returncode, 2)
        self.assertIn("--bin /nonexistent: not a directory", check.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", required=True)
    parser.add_argument("--bin", required=True)
    parser.add_argument("--modules", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
