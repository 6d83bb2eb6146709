#!/usr/bin/python3
"""The peers hips is compared with: torch.distributed over gloo, with Debian's
PyTorch (run under /usr/bin/python3). Prints one JSON object.

  peers.py allreduce --floats K [--world 4] [--repeats R]
      {"seconds": [...]}: one all_reduce (sum) of K float32 among `world`
      processes, timed on rank 0 between barriers.
  peers.py ddp --data DIR [--world 4] [--batch 64] [--steps N]
               [--slow-rank 0] [--slowdown 4]
      {"samples", "seconds", "samples_per_second"}: a DDP-style loop: every
      rank computes the mean gradient of its batch of Fashion-MNIST on the
      784-256-256-10 MLP, the gradients are averaged with all_reduce after
      backward, and SGD (lr 0.05, momentum 0.9) steps. The slow rank sleeps
      (slowdown - 1) x its compute time after each backward, as
      hips-worker --slowdown does. Timed after start-up and one warm-up step.
"""
import argparse
import gzip
import json
import multiprocessing
import os
import tempfile
import time

import numpy as np
import torch
import torch.distributed as dist

# Fashion-MNIST's training pixel mean and standard deviation (as hips uses).
MEAN, STD = 0.2860, 0.3530


def load_idx(directory, prefix):
    with gzip.open(os.path.join(directory, prefix + "-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), dtype=np.uint8, offset=16)
    with gzip.open(os.path.join(directory, prefix + "-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8)
    x = (images.reshape(-1, 784).astype(np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(x), torch.from_numpy(labels.astype(np.int64))


def init(rank, args):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="file://" + args.store, rank=rank,
                            world_size=args.world)


def allreduce(rank, args, out):
    init(rank, args)
    data = torch.ones(args.floats, dtype=torch.float32)
    seconds = []
    for r in range(args.repeats + 2):  # two warm-ups
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(data)
        dist.barrier()
        if r >= 2:
            seconds.append(time.perf_counter() - start)
    if rank == 0:
        out.put({"seconds": seconds})
    dist.destroy_process_group()


def ddp(rank, args, out):
    init(rank, args)
    torch.manual_seed(1)
    x, y = load_idx(args.data, "train")
    shard = torch.arange(rank, x.shape[0], args.world)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    generator = torch.Generator().manual_seed(rank)
    order = shard[torch.randperm(shard.numel(), generator=generator)]
    position = 0
    start = None
    for step in range(args.steps + 1):  # step 0 warms up
        if step == 1:
            dist.barrier()
            start = time.perf_counter()
        if position + args.batch > order.numel():
            position = 0
        idx = order[position:position + args.batch]
        position += args.batch
        compute_start = time.perf_counter()
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        if rank == args.slow_rank:
            time.sleep((args.slowdown - 1.0) * (time.perf_counter() - compute_start))
        for p in model.parameters():
            dist.all_reduce(p.grad)
            p.grad /= args.world
        opt.step()
    dist.barrier()
    seconds = time.perf_counter() - start
    if rank == 0:
        samples = args.steps * args.batch * args.world
        out.put({"samples": samples, "seconds": seconds, "samples_per_second": samples / seconds,
                 "final_loss": float(loss)})
    dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["allreduce", "ddp"])
    parser.add_argument("--world", type=int, default=4)
    parser.add_argument("--floats", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--slow-rank", type=int, default=0)
    parser.add_argument("--slowdown", type=float, default=4.0)
    args = parser.parse_args()
    target = allreduce if args.what == "allreduce" else ddp
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="hips-peers-") as tmp:
        args.store = os.path.join(tmp, "store")
        procs = [ctx.Process(target=target, args=(rank, args, out)) for rank in range(args.world)]
        for p in procs:
            p.start()
        result = out.get(timeout=1800)
        for p in procs:
            p.join(timeout=120)
        if any(p.exitcode != 0 for p in procs):
            raise SystemExit("a rank failed: exit codes %s" % [p.exitcode for p in procs])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
