#!/usr/bin/python3
"""tests/bench/sample_torch.py - the sampler of `dfm sample` in PyTorch, for `make bench`.

Usage: sample_torch.py WEIGHTS.bin NOISE.npy STEPS BATCH THREADS OUT.npy
The fmnist-small U-Net (tests/torch/unet_torch.py) with the EMA weights of a dfm weights file
(the flat buffer io/weights.h describes), sampled with DDIM (eta 0, uniform timesteps, x0
clipped to [-1, 1], the linear schedule 1e-4 .. 0.02 over 1000 steps: the settings of
jobs/bench-fmnist-small.yaml, sched/sampler.h) from the given x_T in batches of BATCH, under
torch.inference_mode on THREADS threads. Prints "torch sample: N samples in S s (R samples/s)"
(wall time of the sampling loop) and writes the samples as float32 .npy.
"""
import os
import struct
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "torch"))
from unet_torch import FMNIST_SMALL, UNet, load_flat  # noqa: E402


def read_ema(path):
    """The EMA buffer of a weights file (the parameters when it has none)."""
    b = open(path, "rb").read()
    assert b[:8] == b"DFMWGHT1", path
    ntens, n, nbuf = struct.unpack_from("<QQI", b, 16)
    off = 40
    for _ in range(ntens):
        (ln,) = struct.unpack_from("<I", b, off)
        off += 4 + ln + 4 + 16 + 16
    buf = 1 if nbuf == 2 else 0
    return torch.from_numpy(np.frombuffer(b, dtype="<f4", count=n, offset=off + 4 * n * buf).copy())


def main():
    wpath, npath, steps, batch, threads, out = sys.argv[1:7]
    steps, batch, threads = int(steps), int(batch), int(threads)
    torch.set_num_threads(threads)
    model = UNet(FMNIST_SMALL)
    load_flat(model, read_ema(wpath))
    model.eval()
    xT = torch.from_numpy(np.load(npath).astype(np.float32))
    T = 1000
    betas = np.linspace(1e-4, 0.02, T, dtype=np.float64)
    abar = np.concatenate([[1.0], np.cumprod(1.0 - betas)])  # abar[t], t = 1..T
    c = T // steps
    ks = [i * c for i in range(steps)]  # 0-based network times; level abar[k + 1]
    levels = [(1.0, None)] + [(abar[k + 1], k) for k in ks]
    res = []
    t0 = time.perf_counter()
    with torch.inference_mode():
        for lo in range(0, xT.shape[0], batch):
            x = xT[lo:lo + batch].double()
            for i in range(len(levels) - 1, 0, -1):
                a, k = levels[i]
                ap = levels[i - 1][0]
                t = torch.full((x.shape[0],), float(k))
                eps = model(x.float(), t).double()
                x0 = ((x - (1 - a) ** 0.5 * eps) / a ** 0.5).clamp(-1, 1)
                eps = (x - a ** 0.5 * x0) / (1 - a) ** 0.5
                x = x0 if i == 1 else ap ** 0.5 * x0 + (1 - ap) ** 0.5 * eps
            res.append(x.float())
    dt = time.perf_counter() - t0
    y = torch.cat(res).numpy()
    np.save(out, y)
    n = y.shape[0]
    print(f"torch sample: {n} samples in {dt:.2f} s ({n / dt:.2f} samples/s), {steps} DDIM steps, "
          f"batch {batch}, {threads} threads, torch {torch.__version__}")


if __name__ == "__main__":
    main()
