#!/usr/bin/env python3
"""Writes Fashion-MNIST as the .npz files `--data=npz` reads.

    fashion_mnist_npz.py OUT_DIR [--dir /usr/share/datasets/fashion-mnist]

OUT_DIR/train.npz (60000 examples) and OUT_DIR/test.npz (10000): x float32
[N, 1, 28, 28], pixels scaled to (p/255 - 0.2860) / 0.3530 as hips's built-in
loader does; y int64 [N], the class labels 0-9. Reads the gzipped IDX files of
Debian's dataset-fashion-mnist package; needs only python3-numpy.
"""
import argparse
import gzip
import os

import numpy as np


def read_idx(path, rank):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    if magic != 0x0800 | rank:
        raise SystemExit(f"{path}: not an IDX file of unsigned bytes with rank {rank}")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--dir", default="/usr/share/datasets/fashion-mnist")
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(os.path.join(args.dir, f"{prefix}-images-idx3-ubyte.gz"), 3)
        labels = read_idx(os.path.join(args.dir, f"{prefix}-labels-idx1-ubyte.gz"), 1)
        x = ((images.astype(np.float32) / 255 - 0.2860) / 0.3530).reshape(-1, 1, 28, 28)
        np.savez(os.path.join(args.out_dir, f"{split}.npz"), x=x, y=labels.astype(np.int64))
        print(f"{split}.npz: x {x.shape} float32, y {labels.shape} int64")


if __name__ == "__main__":
    main()
