#!/usr/bin/env python3
"""A worker of a hips cluster in Python: hips.Worker trains HQ's model.

    PYTHONPATH=worker/python python3 examples/python_worker.py \\
        --aggregator 127.0.0.1:7001 --token_file run/worker-2.token \\
        --model_file model.pt --train_data train.npz --index 2 --workers 4

--token_file is the home's own member token (hips token --member=ID
--role=worker; hips local writes worker-K.token for its workers), or the
cluster token in a cluster without member keys (docs/security.md).

Loads the TorchScript file HQ trains (--model_file; any torch.nn.Module with
the same parameter names and shapes would do), takes shard --index of
--workers of train.npz (the examples i with i % workers == index: the shard a
C++ hips-worker of that index reads), reshuffles it every epoch, and trains
until HQ says training is done. The loss follows y's dtype as hips's does:
cross-entropy for int64 class labels, the summed squared error per example
for float32 targets. Mixes with C++ workers in one cluster (docs/python.md).
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "worker",
                                "python"))
import hips  # noqa: E402


def shard_batches(x, y, batch_size, seed):
    """Batches of the shard, a fresh order every epoch; never ends."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(x))
        for at in range(0, len(order) - batch_size + 1, batch_size):
            rows = order[at:at + batch_size]
            yield torch.from_numpy(x[rows]), torch.from_numpy(y[rows])


def squared_error(out, y):
    return (out - y).pow(2).flatten(1).sum(1).mean()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aggregator", required=True,
                        help="HOST:PORT[,HOST:PORT...]: the first, then where to fail over")
    parser.add_argument("--model_file", required=True, help="HQ's TorchScript module")
    parser.add_argument("--train_data", required=True, help=".npz with x and y")
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--worker_id", default="", help="default: py-worker-<index>")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--token_file", default=None)
    parser.add_argument("--tls_ca", default=None)
    parser.add_argument("--tls_cert", default=None)
    parser.add_argument("--tls_key", default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max_steps", type=int, default=None)
    args = parser.parse_args()
    if not 0 <= args.index < args.workers:
        parser.error(f"--index {args.index} is not in [0, {args.workers})")

    torch.set_num_threads(1)
    with np.load(args.train_data) as data:
        x, y = data["x"][args.index::args.workers], data["y"][args.index::args.workers]
    if x.dtype != np.float32 or y.dtype not in (np.int64, np.float32):
        parser.error(f"{args.train_data}: x must be float32 and y int64 or float32, "
                     f"got {x.dtype} and {y.dtype}")
    if len(x) < args.batch_size:
        parser.error(f"a shard of {len(x)} examples is smaller than a batch")
    loss_fn = F.cross_entropy if y.dtype == np.int64 else squared_error

    addresses = args.aggregator.split(",")
    worker = hips.Worker(torch.jit.load(args.model_file), aggregator=addresses[0],
                         failover=addresses[1:],
                         worker_id=args.worker_id or f"py-worker-{args.index}",
                         token_file=args.token_file, tls_ca=args.tls_ca, tls_cert=args.tls_cert,
                         tls_key=args.tls_key)
    try:
        steps = worker.run(shard_batches(x, y, args.batch_size, args.seed + args.index), loss_fn,
                           max_steps=args.max_steps)
    except hips.HipsError as e:
        sys.exit(f"{worker.worker_id}: {e}")
    finally:
        worker.close()
    print(f"{worker.worker_id}: {steps} gradients pushed, {worker.refused} refused")


if __name__ == "__main__":
    main()
