"""A hips cluster placed in the WAN testbed's sites (bench/wan/testbed.py).

  with Testbed(...) as bed:
      with WanCluster(bed, build, placement="hierarchical", hq_flags=[...]) as c:
          evals = c.wait_final(timeout=600)

Placement "hierarchical": HQ in site hq, one aggregator and its workers in
each MDC site (workers reach their aggregator inside the site, aggregators
reach HQ over the shaped link). "flat": the aggregators move to site hq, so
every worker's gradient crosses the WAN (a flat parameter server). Daemons
listen on their site's address, with a fresh cluster token and --insecure
(no TLS: the namespaces are this run's own). Logs are kept in a temporary
directory; HQ's evaluations are read from its log with the times they were
written.
"""
import datetime
import os
import re
import secrets
import subprocess
import tempfile
import time

MDCS = ("mdc-a", "mdc-b")
HQ_PORT = 7000
AGGREGATOR_PORT = 7001
# glog: "I20261202 05:45:01.123456 ..." (or without the year).
GLOG_TIME = re.compile(r"^I(\d{4})?(\d{2})(\d{2}) (\d{2}):(\d{2}):(\d{2})\.(\d{6})")
EVAL = re.compile(r"eval version=(\d+) accuracy=([\d.]+)[^\n]*?( \(final\))?$")


def glog_time(line):
    m = GLOG_TIME.match(line)
    if not m:
        return None
    year = int(m.group(1)) if m.group(1) else datetime.date.today().year
    t = datetime.datetime(year, int(m.group(2)), int(m.group(3)), int(m.group(4)),
                          int(m.group(5)), int(m.group(6)), int(m.group(7)))
    return t.timestamp()


class WanCluster:
    def __init__(self, bed, build, placement="hierarchical", workers_per_mdc=2, hq_flags=(),
                 aggregator_flags=(), worker_flags=()):
        if placement not in ("hierarchical", "flat"):
            raise ValueError("placement is hierarchical or flat")
        self.bed, self.build, self.placement = bed, build, placement
        self.per_mdc = workers_per_mdc
        self.hq_flags, self.aggregator_flags = list(hq_flags), list(aggregator_flags)
        self.worker_flags = list(worker_flags)
        self.tmp = None
        self.started = None
        self.workers = []

    def _start(self, site, name, argv):
        log = open(os.path.join(self.tmp.name, name + ".log"), "w")
        p = self.bed.popen(site, argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return p

    def log(self, name):
        with open(os.path.join(self.tmp.name, name + ".log")) as f:
            return f.read()

    def __enter__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="hips-wan-")
        token = os.path.join(self.tmp.name, "cluster.token")
        fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        common = ["--insecure", "--token_file=" + token, "--metrics_port=-1"]
        binary = lambda name: os.path.join(self.build, "bin", name)  # noqa: E731
        hq = "%s:%d" % (self.bed.address("hq"), HQ_PORT)
        self.started = time.time()
        self._start("hq", "hq", [binary("hips-hq"), "--host=" + self.bed.address("hq"),
                                 "--port=%d" % HQ_PORT, "--aggregators=%d" % len(MDCS)] +
                    common + self.hq_flags)
        workers = len(MDCS) * self.per_mdc
        for a, mdc in enumerate(MDCS):
            site = mdc if self.placement == "hierarchical" else "hq"
            port = AGGREGATOR_PORT + a
            address = "%s:%d" % (self.bed.address(site), port)
            self._start(site, "agg-%d" % a, [
                binary("hips-aggregator"), "--id=agg-%d" % a, "--hq=" + hq,
                "--host=" + self.bed.address(site), "--port=%d" % port,
                "--workers=%d" % self.per_mdc] + common + self.aggregator_flags)
            # A slow site's homes compute slower (Testbed.slowdown).
            slow = ["--slowdown=%g" % self.bed.slowdown(mdc)] if self.bed.slowdown(mdc) > 1 else []
            for k in range(self.per_mdc):
                index = a * self.per_mdc + k
                self.workers.append(self._start(mdc, "worker-%d" % index, [
                    binary("hips-worker"), "--aggregator=" + address, "--index=%d" % index,
                    "--workers=%d" % workers] + common + self.worker_flags + slow))
        return self

    def evaluations(self):
        """HQ's evaluations so far: (seconds since start, version, accuracy,
        final)."""
        out = []
        for line in self.log("hq").splitlines():
            m = EVAL.search(line)
            t = glog_time(line)
            if m and t is not None:
                out.append((t - self.started, int(m.group(1)), float(m.group(2)),
                            bool(m.group(3))))
        return out

    def wait_final(self, timeout):
        """Waits for HQ's final evaluation (and the workers' exit); returns
        every evaluation. RuntimeError when it does not come in time."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            evals = self.evaluations()
            if evals and evals[-1][3]:
                for w in self.workers:
                    w.wait(timeout=max(1, deadline - time.time()))
                return evals
            for name, p in [("worker-%d" % i, w) for i, w in enumerate(self.workers)]:
                if p.poll() not in (None, 0):
                    raise RuntimeError("%s exited with %d:\n%s" % (name, p.returncode,
                                                                  self.log(name)[-2000:]))
            time.sleep(0.2)
        raise RuntimeError("no final evaluation within %d s; HQ's log ends:\n%s" %
                           (timeout, self.log("hq")[-2000:]))

    def __exit__(self, *exc):
        self.bed.down_processes()
        self.tmp.cleanup()
        return False
