"""Many homes per process (docs/modes.md, "Many homes"): what a hosted home
costs a worker process, and what a round costs HQ and the aggregators as the
homes grow while the drawn homes per round stay the same.

Each measurement is a whole `hips local` run whose process tree is sampled
every 0.2 s from /proc: resident memory (VmRSS) and CPU seconds (utime +
stime) per process, by the process's program name.
"""
import os
import subprocess
import tempfile
import threading
import time

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _children():
    """pid -> (ppid, program name) of every process."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(name)] = (int(fields[1]), comm, fields)
    return out


class TreeSampler:
    """Samples the processes below `root`: peak RSS and last CPU seconds per
    pid (with its program name), and the peak of the tree's summed RSS."""

    def __init__(self, root, every=0.2):
        self.root, self.every = root, every
        self.peak = {}  # pid -> (name, bytes)
        self.cpu = {}   # pid -> (name, seconds)
        self.tree_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            procs = _children()
            below, frontier = set(), {self.root}
            while frontier:
                frontier = {p for p, (pp, _, _) in procs.items() if pp in frontier} - below
                below |= frontier
            total = 0
            for pid in below | {self.root}:
                if pid not in procs:
                    continue
                _, name, fields = procs[pid]
                rss = int(fields[21]) * PAGE  # (field 24 of stat, 0-based 21 here)
                total += rss
                if rss > self.peak.get(pid, (name, 0))[1]:
                    self.peak[pid] = (name, rss)
                self.cpu[pid] = (name, (int(fields[11]) + int(fields[12])) / TICKS)
            self.tree_peak = max(self.tree_peak, total)
            self._stop.wait(self.every)

    def stop(self):
        self._stop.set()
        self._thread.join()

    def peak_of(self, name):
        return max([b for n, b in self.peak.values() if n == name] or [0])

    def cpu_of(self, name):
        return sum(s for n, s in self.cpu.values() if n == name)


def run_local(build, flags, timeout=1800):
    """hips local with `flags`, sampled; returns (sampler, its output)."""
    hips = os.path.join(build, "bin", "hips")
    with tempfile.TemporaryDirectory(prefix="hips-bench-homes-") as tmp:
        with open(os.path.join(tmp, "out.log"), "w+") as log:
            child = subprocess.Popen([hips, "local", "--run_dir=" + os.path.join(tmp, "run"),
                                      "--progress_seconds=5"] + flags,
                                     stdout=log, stderr=subprocess.STDOUT)
            sampler = TreeSampler(child.pid)
            try:
                code = child.wait(timeout=timeout)
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
                sampler.stop()
            log.seek(0)
            output = log.read()
    if code != 0:
        raise subprocess.CalledProcessError(code, "hips local " + " ".join(flags), output)
    return sampler, output


def final_accuracy(output):
    for line in output.splitlines():
        if line.startswith("final:"):
            for part in line.split():
                if part.startswith("accuracy="):
                    return float(part.split("=")[1])
    return None


def homes_memory(build, quick):
    """RSS of one worker process hosting 1,000 homes against one hosting 10,
    both drawing 10 homes a round (fedavg, the mlp), per extra home. Both
    hold the whole training set (iid parts of 10 or 1,000 homes)."""
    versions = 5 if quick else 30
    peaks = {}
    for homes, participation in ((10, 1.0), (1000, 0.01)):
        sampler, _ = run_local(build, [
            "--homes=%d" % homes, "--workers=1", "--aggregators=1", "--mode=fedavg",
            "--participation=%g" % participation, "--local_steps=2", "--batch_size=32",
            "--max_versions=%d" % versions, "--eval_every=0"])
        peaks[homes] = sampler.peak_of("hips-worker")
    per_home = (peaks[1000] - peaks[10]) / 990
    return [{"name": "homes_memory", "value": round(per_home / 2**20, 4),
             "reference": 2.0, "ratio": round(per_home / 2**20 / 2.0, 4), "unit": "MiB/home",
             "worker_rss_mib_10_homes": round(peaks[10] / 2**20, 1),
             "worker_rss_mib_1000_homes": round(peaks[1000] / 2**20, 1)}]


def homes_round_cost(build, quick):
    """CPU seconds of HQ and of the aggregators per version with 100, 1,000
    and 10,000 homes (4 MDCs, 4 worker processes), 100 drawn a round (fedavg,
    one local step, batches of 4: 10,000 homes hold 6 examples each). The
    cost per version is the difference of a long and a short run over the
    versions between them, so that start-up cancels. (Quick: 100 homes.)"""
    short, long = (5, 15) if quick else (10, 40)
    rows = []
    base = None
    for homes in ((100,) if quick else (100, 1000, 10000)):
        cpu = {}
        for versions in (short, long):
            sampler, _ = run_local(build, [
                "--homes=%d" % homes, "--workers=4", "--aggregators=4", "--mode=fedavg",
                "--participation=%g" % (100 / homes), "--local_steps=1", "--batch_size=4",
                "--max_versions=%d" % versions, "--eval_every=0"])
            cpu[versions] = (sampler.cpu_of("hips-hq"), sampler.cpu_of("hips-aggregator"))
        hq = (cpu[long][0] - cpu[short][0]) / (long - short)
        agg = (cpu[long][1] - cpu[short][1]) / (long - short)
        if base is None:
            base = (hq, agg)
        rows.append({"name": "homes_round_cost_%d" % homes, "value": round(hq + agg, 4),
                     "reference": round(base[0] + base[1], 4),
                     "ratio": round((hq + agg) / (base[0] + base[1]), 3),
                     "unit": "cpu s/version", "homes": homes, "drawn": 100,
                     "hq_cpu_s_per_version": round(hq, 4),
                     "aggregators_cpu_s_per_version": round(agg, 4)})
    return rows


def homes_end_to_end(build, quick, homes=10000, aggregators=10, partition="iid",
                     participation=0.01):
    """Homes of Fashion-MNIST over MDCs in fedavg, 5 local steps of batches
    of 6: accuracy after 600 versions (quick: 1,000 homes over 4 MDCs, 20
    versions), seconds and the tree's peak RSS; each row also says when the
    run first reached 0.80 (from its evaluations every 50 versions)."""
    if quick:
        homes, aggregators, participation = 1000, 4, 0.1
    start = time.time()
    sampler, output = run_local(build, [
        "--homes=%d" % homes, "--aggregators=%d" % aggregators, "--mode=fedavg",
        "--participation=%g" % participation, "--local_steps=5", "--batch_size=6",
        "--partition=" + partition, "--max_versions=%d" % (20 if quick else 600),
        "--eval_every=%d" % (20 if quick else 50)], timeout=3600)
    seconds = time.time() - start
    accuracy = final_accuracy(output)
    return [{"name": "homes_e2e_%d_%s" % (homes, partition), "value": accuracy,
             "reference": 0.80, "ratio": round((accuracy or 0) / 0.80, 3), "unit": "accuracy",
             "run_seconds": round(seconds, 1), "seconds_to_0.80": seconds_to(output, 0.80),
             "tree_peak_rss_mib": round(sampler.tree_peak / 2**20), "homes": homes,
             "aggregators": aggregators, "participation": participation}]


def seconds_to(output, target):
    """The progress line's seconds when the evaluation shown first reached
    `target` (None if it never did)."""
    for line in output.splitlines():
        if not line.startswith("[") or "accuracy=" not in line:
            continue
        accuracy = float(line.split("accuracy=")[1].split()[0])
        if accuracy >= target:
            return float(line[1:line.index("s]")])
    return None
