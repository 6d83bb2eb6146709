#!/usr/bin/env python3
"""Writes the .npz files data_test reads (Debian's python3-numpy):
  small.npz            x float32 [10, 2, 3] (x[i] = i + k/10), y int64 [10] (i % 3)
  small_compressed.npz the same with numpy.savez_compressed (deflated members)
  test_split.npz       x float32 [4, 2, 3], y int64 [4] with a label 4 (5 classes)
  other_shape.npz      x float32 [4, 6]: examples of another shape
  float_targets.npz    x as small.npz, y float32 [10, 2] (regression targets 2i, -i)
  x_float64.npz        x of another dtype
  y_int32.npz          y of another dtype
  lengths_differ.npz   10 examples in x, 9 labels in y
  no_y.npz             only x
  fortran.npz          x in Fortran order
  negative_label.npz   y[3] = -1
  x_nan.npz            x[7] holds a NaN
  flat_x.npz           x of shape [10]
  truncated.npz        the first half of small.npz's bytes
  damaged.npz          small.npz with one data byte flipped (CRC mismatch)
  not_a_zip.npz        text
Usage: make_test_npz.py OUT_DIR"""
import os
import sys

import numpy as np


def small():
    x = np.arange(10, dtype=np.float32).reshape(10, 1, 1) + \
        np.arange(6, dtype=np.float32).reshape(1, 2, 3) / 10
    return x, np.arange(10, dtype=np.int64) % 3


def main(out):
    os.makedirs(out, exist_ok=True)
    p = lambda name: os.path.join(out, name)
    x, y = small()
    np.savez(p("small.npz"), x=x, y=y)
    np.savez_compressed(p("small_compressed.npz"), x=x, y=y)
    np.savez(p("test_split.npz"), x=x[:4], y=np.array([0, 4, 1, 2], dtype=np.int64))
    targets = np.stack([2 * np.arange(10), -np.arange(10)], axis=1).astype(np.float32)
    np.savez(p("float_targets.npz"), x=x, y=targets)
    np.savez(p("other_shape.npz"), x=x[:4].reshape(4, 6), y=y[:4])
    np.savez(p("x_float64.npz"), x=x.astype(np.float64), y=y)
    np.savez(p("y_int32.npz"), x=x, y=y.astype(np.int32))
    np.savez(p("lengths_differ.npz"), x=x, y=y[:9])
    np.savez(p("no_y.npz"), x=x)
    np.savez(p("fortran.npz"), x=np.asfortranarray(x.reshape(10, 6)), y=y)
    bad = y.copy()
    bad[3] = -1
    np.savez(p("negative_label.npz"), x=x, y=bad)
    nan = x.copy()
    nan[7, 1, 2] = np.nan
    np.savez(p("x_nan.npz"), x=nan, y=y)
    np.savez(p("flat_x.npz"), x=x.reshape(-1)[:10], y=y)
    with open(p("small.npz"), "rb") as f:
        data = bytearray(f.read())
    with open(p("truncated.npz"), "wb") as f:
        f.write(data[: len(data) // 2])
    at = data.find(x.tobytes()[:8])
    data[at + 5] ^= 0x10
    with open(p("damaged.npz"), "wb") as f:
        f.write(data)
    with open(p("not_a_zip.npz"), "w") as f:
        f.write("these bytes are no .npz file\n")


if __name__ == "__main__":
    main(sys.argv[1])
