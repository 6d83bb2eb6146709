#!/usr/bin/env python3
"""Writes a synthetic regression task for `--loss=mse` and a model for it.

    regression.py OUT_DIR [--train 16384] [--test 4096] [--seed 0]

OUT_DIR/train.npz and OUT_DIR/test.npz: x float32 [N, 8] drawn from N(0, 1),
y float32 [N, 1] = sin(x0) + x1*x2 + 0.5*x3 - 0.25*x4^2 + noise (std 0.05);
OUT_DIR/model.pt: a scripted MLP 8-64-64-1. Train it with

    hips local --loss=mse --model=torchscript --model_file=OUT_DIR/model.pt \
        --data=npz --train_data=OUT_DIR/train.npz --test_data=OUT_DIR/test.npz

HQ reports RMSE and R² instead of accuracy. Needs python3-torch and python3-numpy.
"""
import argparse
import os

import numpy as np
import torch
from torch import nn


def task(rng, n):
    x = rng.standard_normal((n, 8)).astype(np.float32)
    y = np.sin(x[:, 0]) + x[:, 1] * x[:, 2] + 0.5 * x[:, 3] - 0.25 * x[:, 4] ** 2
    y = y + 0.05 * rng.standard_normal(n)
    return x, y.astype(np.float32).reshape(n, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--train", type=int, default=16384)
    parser.add_argument("--test", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    for name, n in (("train", args.train), ("test", args.test)):
        x, y = task(rng, n)
        np.savez(os.path.join(args.out_dir, f"{name}.npz"), x=x, y=y)
    torch.manual_seed(args.seed)
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                          nn.Linear(64, 1))
    torch.jit.script(model).save(os.path.join(args.out_dir, "model.pt"))


if __name__ == "__main__":
    main()
