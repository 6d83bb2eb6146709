"""Non-IID homes (issue 28, docs/noniid.md): 100 homes of Fashion-MNIST over
4 MDCs, split iid and by Dirichlet(α) with α = 0.5 and 0.1, trained with
fedavg, FedProx and SCAFFOLD, with or without edge rounds, at a fixed
budget of samples; the trusted rows sum the homes' deltas (--robust=none)
instead of the default trimmed mean. Each row is one `hips local` run:

  rounds_to_target   HQ versions (WAN rounds) until the first evaluation
                     at or above the target (0.85); None: not reached
  seconds_to_target  seconds from the start of `hips local` to it
  wan_bytes_to_target  bytes between the MDCs and HQ until then: each HQ
                     version moves one aggregate up and one copy of the
                     weights down per MDC, both of the model's size
                     (float32, nothing compressed), so it is
                     rounds × 2 × (the aggregate bytes HQ received / versions)
  final_accuracy     the final evaluation, at the end of the budget

The learning rate, schedule and server momentum are hips local's defaults
(lr 0.05 cosine over the budget, server momentum 0.5).
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "wan"))
from wan_cluster import glog_time  # noqa: E402

TARGET = 0.85
EVAL = re.compile(r"eval version=(\d+) accuracy=([\d.]+)")


def run(build, flags, timeout=3600):
    """hips local with `flags`: its evaluations [(seconds, version,
    accuracy)], its summary (--summary_json) and wall seconds."""
    hips = os.path.join(build, "bin", "hips")
    with tempfile.TemporaryDirectory(prefix="hips-bench-noniid-") as tmp:
        run_dir = os.path.join(tmp, "run")
        summary_path = os.path.join(tmp, "summary.json")
        started = time.time()
        with open(os.path.join(tmp, "out.log"), "w+") as log:
            code = subprocess.run([hips, "local", "--run_dir=" + run_dir,
                                   "--summary_json=" + summary_path, "--progress_seconds=30"] +
                                  flags, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=timeout).returncode
            log.seek(0)
            output = log.read()
        seconds = time.time() - started
        if code != 0:
            raise subprocess.CalledProcessError(code, "hips local " + " ".join(flags), output)
        evals = []
        with open(os.path.join(run_dir, "hq.log")) as f:
            for line in f:
                m = EVAL.search(line)
                t = glog_time(line)
                if m and t is not None:
                    evals.append((t - started, int(m.group(1)), float(m.group(2))))
        with open(summary_path) as f:
            summary = json.load(f)
    return evals, summary, seconds


def row(name, flags, evals, summary, seconds, edge_rounds):
    reached = [(t, v) for t, v, accuracy in evals if accuracy >= TARGET]
    versions = max(1, summary["version"])
    bytes_per_version = 2 * summary["bytes"]["aggregator_to_hq"] / versions
    rounds = reached[0][1] if reached else None
    return {
        "config": name, "flags": flags, "target": TARGET,
        "rounds_to_target": rounds,
        "mdc_rounds_to_target": rounds * edge_rounds if rounds is not None else None,
        "seconds_to_target": round(reached[0][0], 1) if reached else None,
        "wan_bytes_to_target": int(rounds * bytes_per_version) if rounds is not None else None,
        "final_accuracy": summary.get("accuracy"),
        "versions": summary["version"], "samples": summary["samples"],
        "wan_bytes": int(bytes_per_version * versions), "run_seconds": round(seconds, 1),
        "curve": [(v, a) for _, v, a in evals],
    }


def configurations(quick):
    """(name, partition flags, algorithm flags, edge rounds)."""
    if quick:  # the plumbing: 8 homes over 2 MDCs, a few versions
        return [("dirichlet0.5_fedprox_e2", ["--partition=dirichlet", "--dirichlet_alpha=0.5"],
                 ["--proximal_mu=0.01"], 2)]
    partitions = [("iid", ["--partition=iid"]),
                  ("dirichlet0.5", ["--partition=dirichlet", "--dirichlet_alpha=0.5",
                                   "--dirichlet_draw=per_home"]),
                  ("dirichlet0.1", ["--partition=dirichlet", "--dirichlet_alpha=0.1",
                                   "--dirichlet_draw=per_home"])]
    algorithms = [("fedavg", []), ("fedprox", ["--proximal_mu=0.1"]),
                  ("scaffold", ["--fedavg_algorithm=scaffold"])]
    out = []
    for pname, pflags in partitions:
        for aname, aflags in algorithms:
            for edge in (1, 2):
                out.append(("%s_%s_e%d" % (pname, aname, edge), pflags, aflags, edge))
    # Trusted homes (--robust=none): the sample-weighted sum instead of the
    # default trimmed mean, which trims what makes non-IID homes differ.
    for pname, pflags in (partitions[0], partitions[2]):
        for aname, aflags in (algorithms[0], algorithms[2]):
            for edge in (1, 2):
                out.append(("%s_%s_trusted_e%d" % (pname, aname, edge), pflags,
                            aflags + ["--robust=none"], edge))
    return out


def noniid_rows(build, quick=False, only=""):
    rows = []
    for name, pflags, aflags, edge in configurations(quick):
        if only and only not in name:
            continue
        if quick:
            shape = ["--homes=8", "--aggregators=2", "--epochs=0.2", "--eval_every=2"]
        else:
            shape = ["--homes=100", "--aggregators=4", "--epochs=%g" % EPOCHS,
                     "--eval_every=%d" % (5 if edge == 1 else 3)]
        flags = (shape + ["--mode=fedavg", "--participation=%g" % PARTICIPATION,
                          "--local_steps=%d" % LOCAL_STEPS, "--batch_size=%d" % BATCH,
                          "--edge_rounds=%d" % edge] + pflags + aflags)
        evals, summary, seconds = run(build, flags)
        r = row(name, flags, evals, summary, seconds, edge)
        print("noniid: %s: %s rounds, %s s, %s WAN bytes to %.2f; final %s" %
              (name, r["rounds_to_target"], r["seconds_to_target"], r["wan_bytes_to_target"],
               TARGET, r["final_accuracy"]), file=sys.stderr)
        rows.append(r)
    return rows


# 100 homes, a fifth of each MDC's drawn per round, 10 local steps of 32.
PARTICIPATION = 0.2
LOCAL_STEPS = 10
BATCH = 32
EPOCHS = 20


def summarize(rows):
    """bench/run's rows: each configuration's final accuracy against the
    IID one of the same algorithm and edge rounds, then noniid_best_0.1 (the
    best configuration at α = 0.1 against IID with the same configuration:
    goal within 2 points)
    and noniid_wan_bytes_0.1 (plain fedavg's WAN bytes to 0.85 at α = 0.1
    over the best's: goal 1.5)."""
    by = {r["config"]: r for r in rows}
    out = []
    for r in rows:
        iid = by.get("iid_" + r["config"].split("_", 1)[1]) if "_" in r["config"] else None
        ref = iid["final_accuracy"] if iid else None
        value = r["final_accuracy"]
        out.append(dict({k: v for k, v in r.items() if k != "curve"},
                        name="noniid_" + r["config"], value=value, reference=ref,
                        ratio=round(value / ref, 4) if value and ref else None,
                        unit="accuracy"))
    at01 = [r for r in rows if r["config"].startswith("dirichlet0.1")]
    best = max(at01, key=lambda r: r["final_accuracy"] or 0) if at01 else None
    # Against IID with the same configuration (else plain fedavg's).
    iid = by.get("iid_" + best["config"].split("_", 1)[1]) if best else None
    iid = iid or by.get("iid_fedavg_e1")
    if at01 and iid:
        out.append({"name": "noniid_best_0.1", "value": best["final_accuracy"],
                    "reference": iid["final_accuracy"],
                    "ratio": round(best["final_accuracy"] / iid["final_accuracy"], 4),
                    "unit": "accuracy", "best_config": best["config"],
                    "goal": "within 0.02 of the reference"})
        plain = by.get("dirichlet0.1_fedavg_e1")
        reached = [r for r in at01 if r["wan_bytes_to_target"]]
        if plain and reached:
            fewest = min(reached, key=lambda r: r["wan_bytes_to_target"])
            plain_bytes = plain["wan_bytes_to_target"]
            out.append({"name": "noniid_wan_bytes_0.1", "value": fewest["wan_bytes_to_target"],
                        "reference": plain_bytes,
                        "ratio": round(plain_bytes / fewest["wan_bytes_to_target"], 3)
                        if plain_bytes else None,
                        "unit": "x", "better": "higher", "target": 1.5,
                        "best_config": fewest["config"],
                        "plain_reached": plain_bytes is not None})
    return out


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=os.path.join(os.path.dirname(HERE), "build"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="configurations whose name has this")
    args = parser.parse_args()
    for r in noniid_rows(os.path.abspath(args.build), args.quick, args.only):
        print(json.dumps(r), flush=True)
