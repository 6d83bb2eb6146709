#!/usr/bin/env python3
"""Evaluates a trained TorchScript module (hips export, hips local --export)
on a .npz test split, as HQ does: eval mode, argmax of the logits.

    evaluate.py MODEL.pt TEST.npz [--json] [--fresh_statistics]

Prints the accuracy and macro-F1, or for float32 targets (--loss=mse) the
RMSE and R². --fresh_statistics first resets every
BatchNorm's running statistics to a fresh layer's (mean 0, variance 1): the
accuracy the model would have if its buffers had not been trained.
Needs python3-torch and python3-numpy.
"""
import argparse
import json

import numpy as np
import torch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("test")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--fresh_statistics", action="store_true")
    args = parser.parse_args()
    model = torch.jit.load(args.model)
    model.eval()
    if args.fresh_statistics:
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                if name.endswith("running_mean"):
                    buffer.zero_()
                elif name.endswith("running_var"):
                    buffer.fill_(1)
    data = np.load(args.test)
    x, y = torch.from_numpy(data["x"]), torch.from_numpy(data["y"])
    with torch.no_grad():
        outputs = torch.cat([model(x[i:i + 1000]) for i in range(0, len(x), 1000)])
    if y.dtype == torch.float32:
        errors = (outputs.reshape(y.shape).double() - y.double()).flatten()
        sse = float((errors ** 2).sum())
        sst = float(((y.double() - y.double().mean()) ** 2).sum())
        result = {"examples": len(y), "rmse": (sse / errors.numel()) ** 0.5,
                  "r2": 1 - sse / sst if sst > 0 else 0.0}
        print(json.dumps(result) if args.json else
              f"{args.model} on {args.test}: rmse {result['rmse']:.4f}, R2 {result['r2']:.4f}")
        return
    predictions = outputs.argmax(1)
    accuracy = (predictions == y).double().mean().item()
    f1s = []
    for c in range(int(max(y.max(), predictions.max())) + 1):
        tp = int(((predictions == c) & (y == c)).sum())
        fp = int(((predictions == c) & (y != c)).sum())
        fn = int(((predictions != c) & (y == c)).sum())
        if tp + fp + fn > 0:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    result = {"examples": len(y), "accuracy": accuracy, "macro_f1": sum(f1s) / len(f1s)}
    print(json.dumps(result) if args.json else
          f"{args.model} on {args.test}: accuracy {accuracy:.4f}, macro-F1 {result['macro_f1']:.4f}")


if __name__ == "__main__":
    main()
