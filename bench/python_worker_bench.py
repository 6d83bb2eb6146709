#!/usr/bin/python3
"""The Python worker's push rate: hips.Worker in sync rounds, no compute.

    python_worker_bench.py module OUT.pt --floats K
    python_worker_bench.py push --aggregator ADDR --token_file F --model_file OUT.pt
                           [--rounds N] [--warmup W] [--chunk_bytes B]

`module` writes a scripted 784-H-10 MLP of about K floats (what HQ loads with
--model=torchscript). `push` is the Python counterpart of hips-bench-net
--role=workers with one worker: each round it pulls the next version and
pushes a constant gradient (every .grad set once; the push still flattens
and converts it, as Worker.push always does). Prints one JSON object:
{"floats", "push_seconds": [...], "round_seconds": [...]}.
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "worker",
                                "python"))
import hips  # noqa: E402


def write_module(args):
    hidden = max(1, round((args.floats - 10) / (784 + 1 + 10)))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, hidden),
                                torch.nn.ReLU(), torch.nn.Linear(hidden, 10))
    hips.save_module(model, args.out)


def push(args):
    torch.set_num_threads(1)
    model = torch.jit.load(args.model_file)
    for p in model.parameters():
        p.grad = torch.full_like(p, 1e-4)
    worker = hips.Worker(model, args.aggregator, "py-bench-0", token_file=args.token_file,
                         chunk_bytes=args.chunk_bytes)
    pushes, rounds = [], []
    weights = worker.pull(0, timeout=120)
    last_arrival = time.perf_counter()
    total = args.warmup + args.rounds
    for r in range(total):
        start = time.perf_counter()
        worker.push(1, 0.0, step=r)
        if r >= args.warmup:
            pushes.append(time.perf_counter() - start)
        weights = worker.pull(weights.version + 1, timeout=120)
        now = time.perf_counter()
        if r >= args.warmup:
            rounds.append(now - last_arrival)
        last_arrival = now
    worker.close()
    floats = sum(t.numel() for _, t, _ in hips.layout_of(model))
    print(json.dumps({"floats": floats, "push_seconds": pushes, "round_seconds": rounds}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("module")
    m.add_argument("out")
    m.add_argument("--floats", type=int, required=True)
    p = sub.add_parser("push")
    p.add_argument("--aggregator", required=True)
    p.add_argument("--token_file", required=True)
    p.add_argument("--model_file", required=True)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--chunk_bytes", type=int, default=256 << 10)
    args = parser.parse_args()
    if args.command == "module":
        write_module(args)
    else:
        push(args)


if __name__ == "__main__":
    main()
