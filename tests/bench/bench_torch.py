#!/usr/bin/python3
"""tests/bench/bench_torch.py - the same U-Net in PyTorch (oneDNN on CPU).

Usage: /usr/bin/python3 tests/bench/bench_torch.py [batch=64] [threads=1,2] [reps=3]
                                                   [model=fmnist-small[,ch=C][,img=S]]
model as in tests/bench/bench_model.c: fmnist-small or cifar10-ddpm, optionally with another
base width C or image size S (attention then at the same level as in the base model).
Prints images/s for forward only (no_grad, eval) and a training step (forward + backward +
Adam with clipping), the MEDIAN of `reps` after one warm-up (and the best), matching
tests/bench/bench_model.c: with 1 thread timed by the process CPU time, with more threads by
the wall time. Each repetition is printed too ("rep ..." lines).
"""
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "torch"))
from unet_torch import CIFAR10_DDPM, FMNIST_SMALL, UNet  # noqa: E402


def parse_model(spec):
    name, *opts = spec.split(",")
    cfg = dict({"fmnist-small": FMNIST_SMALL, "cifar10-ddpm": CIFAR10_DDPM}[name])
    for o in opts:
        k, v = o.split("=")
        v = int(v)
        if k == "ch":
            cfg["temb_hidden"] = cfg["temb_hidden"] // cfg["ch"] * v
            cfg["ch"] = v
        elif k == "img":
            cfg["attn_res"] = tuple(r * v // cfg["img_size"] for r in cfg["attn_res"])
            cfg["img_size"] = v
        else:
            raise ValueError(f"unknown model option {o}")
    return cfg


def main():
    B = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    threads = [int(v) for v in (sys.argv[2] if len(sys.argv) > 2 else "1,2").split(",")]
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    spec = sys.argv[4] if len(sys.argv) > 4 else "fmnist-small"
    cfg = parse_model(spec)
    torch.manual_seed(0)
    model = UNet(cfg)
    n = sum(p.numel() for p in model.parameters())
    x = torch.randn(B, cfg["in_ch"], cfg["img_size"], cfg["img_size"])
    t = (torch.arange(B) * 15 % 1000).float()
    target = torch.randn_like(x)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    print(f"torch {torch.__version__} {spec} U-Net: {n} parameters, batch {B}")
    for th in threads:
        torch.set_num_threads(th)
        wf, ws, cf, cs = [], [], [], []
        for r in range(reps + 1):
            model.eval()
            c0, t0 = time.process_time(), time.perf_counter()
            with torch.no_grad():
                model(x, t)
            t1, c1 = time.perf_counter(), time.process_time()
            model.train()
            opt.zero_grad()
            loss = ((model(x, t) - target) ** 2).mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            t2, c2 = time.perf_counter(), time.process_time()
            if r:
                wf.append(t1 - t0), ws.append(t2 - t1), cf.append(c1 - c0), cs.append(c2 - c1)
                print(f"rep threads {th}: forward wall {t1 - t0:.4f} cpu {c1 - c0:.4f} s, "
                      f"step wall {t2 - t1:.4f} cpu {c2 - c1:.4f} s", flush=True)
        vf, vs = (cf, cs) if th == 1 else (wf, ws)
        mf, ms = statistics.median(vf), statistics.median(vs)
        print(f"threads {th}: forward {B / mf:.2f} images/s, train step {B / ms:.2f} images/s "
              f"({ms:.3f} s/step); median of {reps}, timer {'cpu' if th == 1 else 'wall'}; "
              f"best: forward {B / min(vf):.2f}, step {B / min(vs):.2f} images/s", flush=True)


if __name__ == "__main__":
    main()
