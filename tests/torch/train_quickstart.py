#!/usr/bin/python3
"""tests/torch/train_quickstart.py - the quickstart DDPM trained in PyTorch, for loss parity.

Usage:
  bin/dfm validate jobs/quickstart-ddpm.yaml [--set ...] > spec.yaml
  /usr/bin/python3 tests/torch/train_quickstart.py spec.yaml [--steps N] [--last K]
                   [--threads T] [--jsonl FILE] [--data DIR]

Reads the RESOLVED job spec that `dfm validate` prints (so both engines use the same numbers)
and trains the same U-Net (tests/torch/unet_torch.py) the way dfm's training loop does:
  - data: Fashion-MNIST training images (IDX .gz from DIR, default the Debian copy
    /usr/share/datasets/fashion-mnist), scaled x / 127.5 - 1, reshuffled every epoch, the last
    incomplete batch dropped, random horizontal flips when data.flip is true;
  - init: dfm's scheme (model/net.h): conv and linear weights Glorot-uniform over fan_in+fan_out,
    zero for each ResBlock's conv2, the attention output projection and conv_out, biases 0,
    GroupNorm gamma 1 / beta 0 (same distribution, not the same random numbers);
  - DDPM L_simple: linear betas numpy.linspace(beta_start, beta_end, T) in float64,
    t ~ U{1..T}, x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, network time input t - 1,
    loss = mean over all elements of (eps_hat - eps)^2 (eps prediction only);
  - Adam(lr, (beta1, beta2), eps, weight_decay) with the linear warm-up
    lr_k = lr * (k + 1) / warmup for 0-based step k < warmup, then constant, or cosine down to
    min_lr over the rest of the run (sched/lr.h), gradient clipping to train.grad_clip by global norm (scale clip/(norm+1e-6),
    as dfm and torch.nn.utils.clip_grad_norm_ do).
EMA does not change the training loss and is not run. Prints one line per `log_every` steps
and finally `mean loss over steps A..B: X`; --jsonl writes {"step", "loss"} per step.
"""
import argparse
import gzip
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from unet_torch import AttnBlock, ResBlock, UNet, ordered_parameters  # noqa: E402

FMNIST_DIR = "/usr/share/datasets/fashion-mnist"


def die(msg):
    print(f"train_quickstart: {msg}", file=sys.stderr)
    sys.exit(2)


def parse_scalar(v):
    if v.startswith("[") and v.endswith("]"):
        return [parse_scalar(x.strip()) for x in v[1:-1].split(",") if x.strip()]
    if v in ("true", "false"):
        return v == "true"
    if len(v) >= 2 and v[0] == v[-1] == '"':
        return v[1:-1]
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v


def load_spec(path):
    """The resolved spec dfm validate prints: block mappings indented by two spaces, scalars and
    flow lists. PyYAML reads it when installed; this reader needs nothing else."""
    try:
        import yaml
        with open(path) as f:
            return yaml.safe_load(f)
    except ImportError:
        pass
    root = {}
    stack = [(-1, root)]
    with open(path) as f:
        for line in f:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            ind = len(line) - len(line.lstrip(" "))
            key, _, val = line.strip().partition(":")
            while stack[-1][0] >= ind:
                stack.pop()
            parent = stack[-1][1]
            val = val.strip()
            if val:
                parent[key] = parse_scalar(val)
            else:
                parent[key] = {}
                stack.append((ind, parent[key]))
    return root


def load_images(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, n, rows, cols = struct.unpack(">IIII", raw[:16])
    if magic != 2051:
        die(f"{path}: not an IDX image file (magic {magic})")
    x = np.frombuffer(raw, dtype=np.uint8, count=n * rows * cols, offset=16)
    return x.reshape(n, 1, rows, cols)


def net_config(spec):
    m = spec["model"]
    if m["type"] != "unet":
        die("only model.type unet is supported")
    u = m["unet"]
    d = spec["data"]
    if d["dataset"] != "fashion-mnist":
        die("only data.dataset fashion-mnist is supported")
    if d.get("conditional") or m.get("num_classes", 0):
        die("conditional models are not supported")
    return dict(in_ch=1, img_size=28, ch=u["channels"], ch_mult=tuple(u["ch_mult"]),
                num_res_blocks=u["num_res_blocks"], attn_res=tuple(u["attn_resolutions"]),
                heads=u["heads"], dropout=float(u["dropout"]), groups=u["groups"],
                temb_dim=u["temb_dim"], temb_hidden=u["temb_hidden"], num_classes=0)


def dfm_init(model):
    """dfm's initialisation scheme (model/net.c net_init_params)."""
    zero = set()
    for mod in model.modules():
        if isinstance(mod, ResBlock):
            zero.add(id(mod.conv2.weight))
        if isinstance(mod, AttnBlock):
            zero.add(id(mod.proj_out.weight))
    zero.add(id(model.conv_out.weight))
    with torch.no_grad():
        for name, p in ordered_parameters(model):
            if name.endswith(".bias"):
                p.zero_()
            elif ".norm" in name or name.startswith("norm"):
                p.fill_(1.0)
            elif id(p) in zero:
                p.zero_()
            elif p.dim() == 4:
                oc, ic, kh, kw = p.shape
                lim = math.sqrt(6.0 / (kh * kw * (ic + oc)))
                p.uniform_(-lim, lim)
            elif p.dim() == 2:
                out_f, in_f = p.shape
                lim = math.sqrt(6.0 / (in_f + out_f))
                p.uniform_(-lim, lim)
            else:
                die(f"no init rule for {name} {tuple(p.shape)}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("spec", help="resolved job spec (output of dfm validate)")
    ap.add_argument("--steps", type=int, default=None, help="default: train.steps of the spec")
    ap.add_argument("--last", type=int, default=100, help="steps averaged at the end")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--jsonl", default=None)
    ap.add_argument("--data", default=FMNIST_DIR)
    ap.add_argument("--seed", type=int, default=None, help="default: run.seed of the spec")
    a = ap.parse_args()

    spec = load_spec(a.spec)
    tr, ob = spec["train"], spec["objective"]
    steps = a.steps if a.steps is not None else int(tr["steps"])
    if not 1 <= a.last <= steps:
        die(f"--last must be in 1..{steps}")
    if ob["type"] != "ddpm" or ob["ddpm"]["schedule"] != "linear" or \
            ob["ddpm"]["prediction"] != "eps":
        die("only objective ddpm, schedule linear, prediction eps are supported")
    if tr["optimizer"] != "adam" or tr["lr_schedule"] not in ("constant", "cosine"):
        die("only optimizer adam, lr_schedule constant or cosine are supported")
    T = int(ob["ddpm"]["timesteps"])
    B, lr, warmup = int(tr["batch"]), float(tr["lr"]), int(tr["warmup"])
    min_lr = float(tr["min_lr"])
    clip = float(tr["grad_clip"])
    seed = a.seed if a.seed is not None else int(spec["run"]["seed"])
    flip = bool(spec["data"]["flip"])

    torch.set_num_threads(a.threads)
    os.environ["OMP_NUM_THREADS"] = str(a.threads)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)

    images = load_images(os.path.join(a.data, "train-images-idx3-ubyte.gz"))
    data = torch.from_numpy(images.astype(np.float32) / np.float32(127.5) - np.float32(1.0))
    N = data.shape[0]

    betas = np.linspace(float(ob["ddpm"]["beta_start"]), float(ob["ddpm"]["beta_end"]), T,
                        dtype=np.float64)
    abar = np.cumprod(1.0 - betas)
    sa = torch.from_numpy(np.sqrt(abar)).float()       # index t-1 for paper t
    s1a = torch.from_numpy(np.sqrt(1.0 - abar)).float()

    cfg = net_config(spec)
    model = UNet(cfg)
    dfm_init(model)
    model.train()
    params = [p for _, p in ordered_parameters(model)]
    nparam = sum(p.numel() for p in params)
    opt = torch.optim.Adam(params, lr=lr, betas=(float(tr["beta1"]), float(tr["beta2"])),
                           eps=float(tr["eps"]), weight_decay=float(tr["weight_decay"]))
    print(f"torch {torch.__version__}: quickstart U-Net {nparam} parameters, {steps} steps, "
          f"batch {B}, lr {lr:g} (warm-up {warmup}), clip {clip:g}, {a.threads} threads",
          flush=True)

    out = open(a.jsonl, "w") if a.jsonl else None
    losses = []
    perm, pos = None, N
    t0 = time.perf_counter()
    log_every = max(1, int(tr.get("log_every", 50)))
    for k in range(steps):
        if pos + B > N:  # new epoch, last incomplete batch dropped
            perm, pos = torch.randperm(N, generator=gen), 0
        x0 = data[perm[pos:pos + B]]
        pos += B
        if flip:
            m = torch.rand(B, generator=gen) < 0.5
            x0 = torch.where(m[:, None, None, None], x0.flip(-1), x0)
        t = torch.randint(1, T + 1, (B,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        xt = sa[t - 1][:, None, None, None] * x0 + s1a[t - 1][:, None, None, None] * eps
        if k < warmup:
            cur_lr = lr * (k + 1) / warmup
        elif tr["lr_schedule"] == "cosine":
            total = int(tr["steps"])
            prog = min(max((k - warmup) / max(total - warmup, 1), 0.0), 1.0)
            cur_lr = min_lr + (lr - min_lr) * (1 + math.cos(math.pi * prog)) / 2
        else:
            cur_lr = lr
        for g in opt.param_groups:
            g["lr"] = cur_lr
        opt.zero_grad(set_to_none=True)
        pred = model(xt, (t - 1).float())
        loss = ((pred - eps) ** 2).mean()
        loss.backward()
        if clip > 0:
            gnorm = float(torch.nn.utils.clip_grad_norm_(params, clip))
        else:
            gnorm = float(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params)))
        opt.step()
        lv = float(loss)
        if not math.isfinite(lv):
            die(f"non-finite loss at step {k + 1}")
        losses.append(lv)
        if out:
            out.write(json.dumps({"step": k + 1, "loss": lv, "grad_norm": gnorm,
                                  "lr": cur_lr, "wall_s": time.perf_counter() - t0}) + "\n")
            out.flush()
        if (k + 1) % log_every == 0 or k + 1 == steps:
            print(f"step {k + 1}/{steps} loss {lv:.4f} grad-norm {gnorm:.3f} lr {cur_lr:.2e} "
                  f"{B * (k + 1) / (time.perf_counter() - t0):.1f} img/s", flush=True)
    if out:
        out.close()
    tail = losses[-a.last:]
    print(f"mean loss over steps {steps - a.last + 1}..{steps}: {sum(tail) / len(tail):.6f}")


if __name__ == "__main__":
    main()
