#!/usr/bin/env python3
"""Writes a small CNN with BatchNorm and Dropout, for Fashion-MNIST, as the
TorchScript file `--model=torchscript --model_file=...` loads.

    cnn_batchnorm.py OUT.pt [--seed 0]

Two conv blocks (conv, BatchNorm, ReLU, max-pool), then a 128-unit hidden layer
with dropout: ~0.42M parameters and the BatchNorm running statistics, which
hips keeps as the sample-weighted mean of the workers' (docs/models.md).
"""
import argparse

import torch
from torch import nn


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.25),
        nn.Linear(128, 10))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    # Scripted, not traced: a traced module would keep dropout and batch
    # statistics in the mode it was traced in.
    torch.jit.script(cnn()).save(args.out)


if __name__ == "__main__":
    main()
