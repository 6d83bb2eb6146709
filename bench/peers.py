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
  peers.py ddp-rank --rank R --world W --master HOST:PORT [--steps N]
                    [--budget_s S] [--eval_every K] [--cosine]
      One rank of the same loop as its own process (the WAN testbed puts
      each in a namespace; rank 0 hosts the rendezvous at --master; gloo's
      interface comes from GLOO_SOCKET_IFNAME). The gradients travel as one
      flattened all_reduce per step (DDP's bucket). Rank 0 evaluates on the
      test set every K steps and prints one JSON line per evaluation:
      {"t": seconds since its start, "step", "samples", "accuracy", "final"}.
      Stops after N steps or once S seconds passed (all ranks agree at each
      step), with --cosine the learning rate follows 0.05·½(1 + cos(π·step/N)).
"""
import argparse
import gzip
import json
import math
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


def mlp():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(),
                               torch.nn.Linear(256, 256), torch.nn.ReLU(),
                               torch.nn.Linear(256, 10))


def ddp(rank, args, out):
    init(rank, args)
    torch.manual_seed(1)
    x, y = load_idx(args.data, "train")
    shard = torch.arange(rank, x.shape[0], args.world)
    model = mlp()
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


def ddp_rank(args):
    started = time.time()
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="tcp://" + args.master, rank=args.rank,
                            world_size=args.world)
    torch.manual_seed(1)
    x, y = load_idx(args.data, "train")
    test_x, test_y = load_idx(args.data, "t10k") if args.rank == 0 else (None, None)
    shard = torch.arange(args.rank, x.shape[0], args.world)
    model = mlp()
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=0.05, momentum=0.9)
    order = shard[torch.randperm(shard.numel(), generator=torch.Generator().manual_seed(args.rank))]
    position = 0
    stop = torch.zeros(1)

    def evaluate(step, final):
        with torch.no_grad():
            accuracy = float((model(test_x).argmax(1) == test_y).float().mean())
        print(json.dumps({"t": time.time() - started, "step": step,
                          "samples": step * args.batch * args.world, "accuracy": accuracy,
                          "final": final}), flush=True)

    step = 0
    while step < args.steps:
        if args.cosine:
            for group in opt.param_groups:
                group["lr"] = 0.05 * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        if position + args.batch > order.numel():
            position = 0
        idx = order[position:position + args.batch]
        position += args.batch
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        # Rank 0's clock decides when the budget is over; the flag rides on
        # the step's all_reduce so every rank stops at the same step.
        stop[0] = 1.0 if args.rank == 0 and time.time() - started > args.budget_s else 0.0
        flat = torch.cat([flat, stop])
        dist.all_reduce(flat)
        offset = 0
        for p in params:
            p.grad.copy_(flat[offset:offset + p.numel()].view_as(p) / args.world)
            offset += p.numel()
        opt.step()
        step += 1
        if flat[-1] > 0:
            break
        if args.rank == 0 and step % args.eval_every == 0:
            evaluate(step, False)
    if args.rank == 0:
        evaluate(step, step >= args.steps)
    dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["allreduce", "ddp", "ddp-rank"])
    parser.add_argument("--rank", type=int, default=0)
    parser.add_argument("--master", default="127.0.0.1:29500")
    parser.add_argument("--budget_s", type=float, default=1e9)
    parser.add_argument("--eval_every", type=int, default=100)
    parser.add_argument("--cosine", action="store_true")
    parser.add_argument("--world", type=int, default=4)
    parser.add_argument("--floats", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--slow-rank", type=int, default=0)
    parser.add_argument("--slowdown", type=float, default=4.0)
    args = parser.parse_args()
    if args.what == "ddp-rank":
        ddp_rank(args)
        return
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
