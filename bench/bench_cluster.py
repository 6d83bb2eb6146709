"""A hips cluster of real processes for the benchmarks: hips-hq, hips-aggregator
daemons and synthetic workers (hips-bench-net --role=workers), all on
127.0.0.1 with ports chosen by the kernel. Only processes started here are
ever signalled, by their pid."""
import json
import os
import secrets
import signal
import subprocess
import tempfile
import time


def _wait_for_file(path, proc, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                text = f.read().strip()
            if text:
                return text
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %s before listening" % (proc.args[0], proc.returncode))
        time.sleep(0.05)
    raise RuntimeError("%s did not listen within %d s" % (proc.args[0], timeout))


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Cluster:
    """with Cluster(build, hq_flags, aggregators, workers_per_aggregator) as c:
    c.run_workers(...) -> the synthetic workers' results."""

    def __init__(self, build, hq_flags, aggregators, workers_per_aggregator, agg_flags=(),
                 unix_sockets=False):
        self.build = build
        self.hq_flags = list(hq_flags)
        self.aggregators = aggregators
        self.per_aggregator = workers_per_aggregator
        self.agg_flags = list(agg_flags)
        self.unix_sockets = unix_sockets
        self.procs = []
        self.tmp = None

    def _start(self, name, argv, port=True):
        log = open(os.path.join(self.tmp.name, name + ".log"), "w")
        if port:
            argv = argv + ["--port_file=" + os.path.join(self.tmp.name, name + ".port")]
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.append(proc)
        if port:
            return proc, int(_wait_for_file(argv[-1].split("=", 1)[1], proc, 120))
        return proc, None

    def _token(self, name):
        """A fresh random token in a file only this user may read."""
        path = os.path.join(self.tmp.name, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        return path

    def __enter__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="hips-bench-cluster-")
        bin_dir = os.path.join(self.build, "bin")
        # Fresh tokens, as hips local makes them (docs/security.md).
        self.token_flags = ["--token_file=" + self._token("cluster.token")]
        admin_flags = ["--admin_token_file=" + self._token("admin.token")]
        common = ["--metrics_port=-1", "--lease_ms=60000"] + self.token_flags

        def socket(name):  # (data path) flags and address of a daemon's Unix socket
            path = os.path.join(self.tmp.name, name + ".sock")
            return (["--unix_socket=" + path] if self.unix_sockets else []), "unix:" + path

        hq_socket, hq_unix = socket("hq")
        _, hq_port = self._start("hq", [os.path.join(bin_dir, "hips-hq"),
                                        "--aggregators=%d" % self.aggregators] + common +
                                 admin_flags +
                                 self.hq_flags + hq_socket)
        self.hq_address = hq_unix if self.unix_sockets else "127.0.0.1:%d" % hq_port
        self.agg_procs, self.agg_addresses = [], []
        for a in range(self.aggregators):
            agg_socket, agg_unix = socket("agg-%d" % a)
            proc, port = self._start("agg-%d" % a, [
                os.path.join(bin_dir, "hips-aggregator"), "--id=agg-%d" % a,
                "--hq=" + self.hq_address, "--workers=%d" % self.per_aggregator] + common +
                self.agg_flags + agg_socket)
            self.agg_procs.append(proc)
            self.agg_addresses.append(agg_unix if self.unix_sockets else "127.0.0.1:%d" % port)
        return self

    def aggregator_rss(self):
        return [rss_bytes(p.pid) for p in self.agg_procs]

    def run_workers(self, rounds, warmup, processes_per_aggregator=1, timeout=1200):
        """Starts every aggregator's workers, spread over
        processes_per_aggregator processes each, and returns their results.
        Meanwhile samples the aggregators' resident memory: its peak is then
        in self.peak_rss."""
        workers = []
        for a, address in enumerate(self.agg_addresses):
            split = [self.per_aggregator // processes_per_aggregator +
                     (1 if i < self.per_aggregator % processes_per_aggregator else 0)
                     for i in range(processes_per_aggregator)]
            for i, n in enumerate(split):
                if n == 0:
                    continue
                out = os.path.join(self.tmp.name, "workers-%d-%d.json" % (a, i))
                argv = [os.path.join(self.build, "bench", "hips-bench-net"), "--role=workers",
                        "--aggregator=" + address, "--workers=%d" % n,
                        "--id_prefix=w-%d-%d-" % (a, i), "--repeats=%d" % rounds,
                        "--warmup=%d" % warmup] + self.token_flags
                with open(out, "w") as f:
                    proc = subprocess.Popen(argv, stdout=f,
                                            stderr=open(out + ".log", "w"))
                self.procs.append(proc)
                workers.append((proc, out))
        deadline = time.time() + timeout
        self.peak_rss = self.aggregator_rss()
        while any(proc.poll() is None for proc, _ in workers):
            if time.time() > deadline:
                raise RuntimeError("synthetic workers still running after %d s" % timeout)
            self.peak_rss = [max(a, b) for a, b in zip(self.peak_rss, self.aggregator_rss())]
            time.sleep(0.1)
        # glibc keeps what it freed (hips raises its trim threshold), so
        # a sample after the workers left still counts their connections.
        self.peak_rss = [max(a, b) for a, b in zip(self.peak_rss, self.aggregator_rss())]
        results = []
        for proc, out in workers:
            if proc.returncode != 0:
                with open(out + ".log") as f:
                    raise RuntimeError("synthetic workers failed: " + f.read()[-2000:])
            with open(out) as f:
                results.extend(json.load(f)["workers"])
        return results

    def __exit__(self, *exc):
        for proc in reversed(self.procs):
            if proc.poll() is None and proc.pid > 0:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                if proc.pid > 0:
                    proc.kill()
                proc.wait()
        self.tmp.cleanup()
        return False


def median(values):
    values = sorted(values)
    n = len(values)
    if n == 0:
        raise ValueError("no samples")
    return values[n // 2] if n % 2 else 0.5 * (values[n // 2 - 1] + values[n // 2])
