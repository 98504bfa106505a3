"""tests/torch/unet_torch.py - dfm's U-Net and its parameter layout, in PyTorch.

The modules register their parameters with the same names as dfm's parameter table
(model/net.c), and `ordered_parameters` lists them in the table's order, which is the order of
the forward pass. dfm's flat parameter buffer is those tensors back to back, each in PyTorch's
own layout (conv weight (OC, IC, K, K), linear weight (OUT, IN)), so
`load_flat(model, flat)` / `flat_of(model)` convert between the two without reshuffling.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

EPS = 1e-6  # GroupNorm epsilon of the DDPM reference


def sinusoid(t, dim):
    """DDPM embedding, computed in float64 and rounded once (as dfm does)."""
    half = dim // 2
    k = -math.log(10000.0) / (half - 1)
    freq = torch.exp(torch.arange(half, dtype=torch.float64) * k)
    a = t.to(torch.float64)[:, None] * freq[None, :]
    e = torch.cat([torch.sin(a), torch.cos(a)], dim=1)
    if dim % 2:
        e = F.pad(e, (0, 1))
    return e.to(torch.float32)


class TimeEmbed(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.dim = dim
        self.dense0 = nn.Linear(dim, hidden)
        self.dense1 = nn.Linear(hidden, hidden)

    def forward(self, t):
        return self.dense1(F.silu(self.dense0(sinusoid(t, self.dim))))


class ResBlock(nn.Module):
    def __init__(self, ic, oc, temb, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, ic, eps=EPS)
        self.conv1 = nn.Conv2d(ic, oc, 3, padding=1)
        self.temb_proj = nn.Linear(temb, oc)
        self.norm2 = nn.GroupNorm(groups, oc, eps=EPS)
        self.conv2 = nn.Conv2d(oc, oc, 3, padding=1)
        if ic != oc:
            self.nin_shortcut = nn.Conv2d(ic, oc, 1)
        self.dropout = 0.0

    def forward(self, x, semb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(semb)[:, :, None, None]
        h = F.silu(self.norm2(h))
        h = F.dropout(h, self.dropout, self.training)
        h = self.conv2(h)
        if hasattr(self, "nin_shortcut"):
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    def __init__(self, c, heads, groups):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, c, eps=EPS)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        B, C, H, W = x.shape
        nh, dh = self.heads, C // self.heads
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, nh, dh, H * W).unbind(1)
        w = torch.einsum("bhdi,bhdj->bhij", q, k) * (dh ** -0.5)
        w = torch.softmax(w, dim=-1)
        h = torch.einsum("bhij,bhdj->bhdi", w, v).reshape(B, C, H, W)
        return x + self.proj_out(h)


class Downsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2)

    def forward(self, x):
        H = x.shape[-1]
        p = 1 if H % 2 == 0 else 2  # TensorFlow 'SAME': total padding 1 (even) or 2 (odd)
        return self.conv(F.pad(x, (p // 2, p - p // 2, p // 2, p - p // 2)))


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Level(nn.Module):
    pass


class Mid(nn.Module):
    pass


class UNet(nn.Module):
    """cfg: dict with in_ch, img_size, ch, ch_mult, num_res_blocks, attn_res, heads, dropout,
    groups, temb_dim, temb_hidden, num_classes (the fields of dfm's UNetConfig)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        ch, G, T = cfg["ch"], cfg["groups"], cfg["temb_hidden"]
        self.temb = TimeEmbed(cfg["temb_dim"], T)
        if cfg["num_classes"] > 0:
            self.class_emb = nn.Embedding(cfg["num_classes"] + 1, T)
        self.conv_in = nn.Conv2d(cfg["in_ch"], ch, 3, padding=1)
        nl = len(cfg["ch_mult"])
        res, C, skips = cfg["img_size"], ch, [ch]
        self.down = nn.ModuleList()
        for i, m in enumerate(cfg["ch_mult"]):
            lv = Level()
            lv.block, lv.attn = nn.ModuleList(), nn.ModuleList()
            for _ in range(cfg["num_res_blocks"]):
                lv.block.append(ResBlock(C, ch * m, T, G))
                C = ch * m
                if res in cfg["attn_res"]:
                    lv.attn.append(AttnBlock(C, cfg["heads"], G))
                skips.append(C)
            if i != nl - 1:
                lv.downsample = Downsample(C)
                res //= 2
                skips.append(C)
            self.down.append(lv)
        self.mid = Mid()
        self.mid.block_1 = ResBlock(C, C, T, G)
        self.mid.attn_1 = AttnBlock(C, cfg["heads"], G)
        self.mid.block_2 = ResBlock(C, C, T, G)
        up = [None] * nl
        for i in reversed(range(nl)):
            m = cfg["ch_mult"][i]
            lv = Level()
            lv.block, lv.attn = nn.ModuleList(), nn.ModuleList()
            for _ in range(cfg["num_res_blocks"] + 1):
                lv.block.append(ResBlock(C + skips.pop(), ch * m, T, G))
                C = ch * m
                if res in cfg["attn_res"]:
                    lv.attn.append(AttnBlock(C, cfg["heads"], G))
            if i != 0:
                lv.upsample = Upsample(C)
                res *= 2
            up[i] = lv
        self.up = nn.ModuleList(up)
        self.norm_out = nn.GroupNorm(G, C, eps=EPS)
        self.conv_out = nn.Conv2d(C, cfg["in_ch"], 3, padding=1)
        for mod in self.modules():
            if isinstance(mod, ResBlock):
                mod.dropout = cfg["dropout"]

    def forward(self, x, t, labels=None):
        cfg = self.cfg
        emb = self.temb(t)
        if cfg["num_classes"] > 0:
            if labels is None:
                labels = torch.full((x.shape[0],), -1, dtype=torch.long)
            rows = torch.where(labels < 0, torch.full_like(labels, cfg["num_classes"]), labels)
            emb = emb + self.class_emb(rows)
        semb = F.silu(emb)
        hs = [self.conv_in(x)]
        h = hs[-1]
        for i, lv in enumerate(self.down):
            for r, blk in enumerate(lv.block):
                h = blk(h, semb)
                if len(lv.attn):
                    h = lv.attn[r](h)
                hs.append(h)
            if hasattr(lv, "downsample"):
                h = lv.downsample(h)
                hs.append(h)
        h = self.mid.block_1(h, semb)
        h = self.mid.attn_1(h)
        h = self.mid.block_2(h, semb)
        for i in reversed(range(len(self.up))):
            lv = self.up[i]
            for r, blk in enumerate(lv.block):
                h = blk(torch.cat([h, hs.pop()], dim=1), semb)
                if len(lv.attn):
                    h = lv.attn[r](h)
            if hasattr(lv, "upsample"):
                h = lv.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


def ordered_parameters(model):
    """(name, tensor) in dfm's parameter-table order (the forward order)."""
    out = []

    def add(prefix, mod):
        for n, p in mod.named_parameters():
            out.append((prefix + "." + n, p))

    add("temb", model.temb)
    if hasattr(model, "class_emb"):
        add("class_emb", model.class_emb)
    add("conv_in", model.conv_in)
    for i, lv in enumerate(model.down):
        for r, blk in enumerate(lv.block):
            add(f"down.{i}.block.{r}", blk)
            if len(lv.attn):
                add(f"down.{i}.attn.{r}", lv.attn[r])
        if hasattr(lv, "downsample"):
            add(f"down.{i}.downsample", lv.downsample)
    add("mid.block_1", model.mid.block_1)
    add("mid.attn_1", model.mid.attn_1)
    add("mid.block_2", model.mid.block_2)
    for i in reversed(range(len(model.up))):
        lv = model.up[i]
        for r, blk in enumerate(lv.block):
            add(f"up.{i}.block.{r}", blk)
            if len(lv.attn):
                add(f"up.{i}.attn.{r}", lv.attn[r])
        if hasattr(lv, "upsample"):
            add(f"up.{i}.upsample", lv.upsample)
    add("norm_out", model.norm_out)
    add("conv_out", model.conv_out)
    names = [n for n, _ in out]
    assert names == [n for n, _ in model.named_parameters()] or sorted(names) == sorted(
        n for n, _ in model.named_parameters()), "parameter names disagree"
    return out


def flat_of(model):
    return torch.cat([p.detach().reshape(-1) for _, p in ordered_parameters(model)])


def load_flat(model, flat):
    off = 0
    with torch.no_grad():
        for _, p in ordered_parameters(model):
            n = p.numel()
            p.copy_(flat[off:off + n].reshape(p.shape))
            off += n
    assert off == flat.numel()


FMNIST_SMALL = dict(in_ch=1, img_size=28, ch=64, ch_mult=(1, 2, 2), num_res_blocks=2,
                    attn_res=(7,), heads=1, dropout=0.1, groups=32, temb_dim=64,
                    temb_hidden=256, num_classes=0)
CIFAR10_DDPM = dict(in_ch=3, img_size=32, ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2,
                    attn_res=(16,), heads=1, dropout=0.1, groups=32, temb_dim=128,
                    temb_hidden=512, num_classes=0)
