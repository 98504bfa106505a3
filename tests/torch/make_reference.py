#!/usr/bin/python3
"""tests/torch/make_reference.py - PyTorch reference for dfm's U-Net (run by `make parity`).

Builds the U-Net of unet_torch.py for a small config, fills it with random weights (no zero
initialisation, so every gradient is informative), runs one forward/backward of the MSE loss
against a random target, then 3 Adam steps (with gradient clipping), and writes everything to
tests/data/unet_parity.bin, which tests/model/test_parity.c compares against dfm. A second
config on 28x28 images (levels 28, 14, 7 as fmnist-small's) goes to
tests/data/unet_parity28.bin: it takes dfm's other convolution paths (Winograd F(4x4) at 28x28,
F(2x2) at 14x14 and 7x7, GroupNorm+SiLU read by the convolution).
It also checks the parameter counts of the fmnist-small and cifar10 reference configs.

File layout (little endian): "DFMPARIT" magic, u32 version = 1, then u32 fields
in_ch img_size ch n_mult ch_mult[4] num_res_blocks n_attn attn_res[4] heads groups temb_dim
temb_hidden num_classes B, f32 dropout, f32 lr beta1 beta2 eps grad_clip, u32 adam_steps,
u32 n_tensors, per tensor (u32 name length, name bytes, u32 ndim, u32 shape[4]), u64 n_params,
then f32 params[P], x[B*per], t[B], i32 labels[B], f32 target[B*per], out[B*per],
f64 loss, f32 grads[P], params_after[P].
"""
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from unet_torch import CIFAR10_DDPM, FMNIST_SMALL, UNet, flat_of, load_flat, ordered_parameters  # noqa: E402

CFG = dict(in_ch=1, img_size=16, ch=12, ch_mult=(1, 2), num_res_blocks=1, attn_res=(8,),
           heads=2, dropout=0.0, groups=4, temb_dim=16, temb_hidden=32, num_classes=10)
CFG28 = dict(in_ch=1, img_size=28, ch=4, ch_mult=(1, 2, 2), num_res_blocks=1, attn_res=(7,),
             heads=1, dropout=0.0, groups=2, temb_dim=16, temb_hidden=32, num_classes=10)
B = 4
LR, BETAS, EPS, CLIP, STEPS = 1e-3, (0.9, 0.999), 1e-8, 1.0, 3


def count(cfg):
    return sum(p.numel() for p in UNet(cfg).parameters())


def main():
    torch.manual_seed(0)
    n = count(FMNIST_SMALL)
    assert n == 6469889, f"fmnist-small has {n} parameters, expected 6,469,889"
    n = count(CIFAR10_DDPM)
    assert n == 35746307, f"cifar10 DDPM has {n} parameters, expected 35,746,307"
    print("parameter counts: fmnist-small 6,469,889, cifar10 35,746,307 (ok)")
    write_reference(CFG, "unet_parity.bin")
    write_reference(CFG28, "unet_parity28.bin")


def write_reference(CFG, fname):
    model = UNet(CFG)
    params = ordered_parameters(model)
    P = sum(p.numel() for _, p in params)
    flat0 = (torch.rand(P, dtype=torch.float64) * 2 - 1).float() * 0.2
    # GroupNorm scales around 1, like trained networks
    off = 0
    for name, p in params:
        if ("norm" in name) and name.endswith(".weight"):
            flat0[off:off + p.numel()] += 1.0
        off += p.numel()
    load_flat(model, flat0)

    per = CFG["in_ch"] * CFG["img_size"] ** 2
    x = torch.randn(B, CFG["in_ch"], CFG["img_size"], CFG["img_size"])
    t = torch.tensor([3.0, 250.5, 999.0, 0.25])
    labels = torch.tensor([0, 7, -1, 3], dtype=torch.long)
    target = torch.randn_like(x)

    model.train()
    out = model(x, t, labels)
    loss = ((out.double() - target.double()) ** 2).mean()
    loss.backward()
    grads = torch.cat([p.grad.reshape(-1) for _, p in params])

    opt = torch.optim.Adam([p for _, p in params], lr=LR, betas=BETAS, eps=EPS)
    model.zero_grad()
    for _ in range(STEPS):
        opt.zero_grad()
        o = model(x, t, labels)
        l = ((o.double() - target.double()) ** 2).mean()
        l.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in params], CLIP)
        opt.step()
    after = flat_of(model)

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", fname)
    u = lambda *v: struct.pack("<%dI" % len(v), *v)  # noqa: E731
    pad4 = lambda v: list(v) + [0] * (4 - len(v))  # noqa: E731
    with open(path, "wb") as f:
        f.write(b"DFMPARIT")
        f.write(u(1, CFG["in_ch"], CFG["img_size"], CFG["ch"], len(CFG["ch_mult"]),
                  *pad4(CFG["ch_mult"]), CFG["num_res_blocks"], len(CFG["attn_res"]),
                  *pad4(CFG["attn_res"]), CFG["heads"], CFG["groups"], CFG["temb_dim"],
                  CFG["temb_hidden"], CFG["num_classes"], B))
        f.write(struct.pack("<6f", CFG["dropout"], LR, BETAS[0], BETAS[1], EPS, CLIP))
        f.write(u(STEPS, len(params)))
        for name, p in params:
            nb = name.encode()
            f.write(u(len(nb)) + nb + u(p.dim(), *pad4(p.shape)))
        f.write(struct.pack("<Q", P))
        f.write(flat0.numpy().astype("<f4").tobytes())
        f.write(x.numpy().astype("<f4").tobytes())
        f.write(t.numpy().astype("<f4").tobytes())
        f.write(labels.numpy().astype("<i4").tobytes())
        f.write(target.numpy().astype("<f4").tobytes())
        f.write(out.detach().numpy().astype("<f4").tobytes())
        f.write(struct.pack("<d", loss.item()))
        f.write(grads.numpy().astype("<f4").tobytes())
        f.write(after.numpy().astype("<f4").tobytes())
    print(f"wrote {os.path.normpath(path)}: {P} parameters, batch {B}, loss {loss.item():.6f}, "
          f"{os.path.getsize(path)} bytes")
    del per


if __name__ == "__main__":
    main()
