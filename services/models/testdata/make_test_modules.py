#!/usr/bin/env python3
"""Writes the TorchScript modules model_test loads (Debian's python3-torch):
  mlp.pt           the zoo's mlp (784-256-256-10) as a scripted nn.Sequential
  train_switch.pt  logits in train mode, a constant vote for class 2 in eval
  wrong_output.pt  5 logits where the data has 3 classes
  batchnorm.pt     Linear(4, 3) then BatchNorm1d(3): buffers
  frozen.pt        a frozen first layer (requires_grad False)
  dropout.pt       Linear(4, 16), ReLU, Dropout(0.5), Linear(16, 3): random draws
  not_a_module.pt  bytes that are no TorchScript archive
Usage: make_test_modules.py OUT_DIR"""
import os
import sys

import torch
from torch import nn


class TrainSwitch(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        y = self.fc(x.flatten(1))
        if self.training:
            return y
        return y * 0.0 + torch.tensor([0.0, 0.0, 1.0])


class Frozen(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 3)
        self.a.weight.requires_grad_(False)

    def forward(self, x):
        return self.b(torch.relu(self.a(x.flatten(1))))


def main(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256),
                        nn.ReLU(), nn.Linear(256, 10))
    torch.jit.script(mlp).save(os.path.join(out, "mlp.pt"))
    torch.jit.script(TrainSwitch()).save(os.path.join(out, "train_switch.pt"))
    torch.jit.script(nn.Sequential(nn.Flatten(), nn.Linear(4, 5))).save(
        os.path.join(out, "wrong_output.pt"))
    torch.jit.script(nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.BatchNorm1d(3))).save(
        os.path.join(out, "batchnorm.pt"))
    torch.jit.script(Frozen()).save(os.path.join(out, "frozen.pt"))
    torch.jit.script(nn.Sequential(nn.Flatten(), nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.5),
                                   nn.Linear(16, 3))).save(os.path.join(out, "dropout.pt"))
    with open(os.path.join(out, "not_a_module.pt"), "wb") as f:
        f.write(b"PK\x03\x04 these bytes are no TorchScript archive")


if __name__ == "__main__":
    main(sys.argv[1])
