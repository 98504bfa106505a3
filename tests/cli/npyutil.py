#!/usr/bin/env python3
"""Small float32 .npy tools for tests/cli/t_sample.sh, pure Python (no numpy).
usage:
  npyutil.py noise OUT.npy SEED N DIM...     N rows of standard normal values, shape (N, DIM...)
  npyutil.py reverse IN.npy OUT.npy          the rows in reverse order
  npyutil.py halfmask OUT.npy DIM...         one mask (DIM...): 1 on the top half, 0 below
  npyutil.py kept SAMPLES.npy IMAGE.npy MASK.npy
                                             exit 0 when every sample equals IMAGE (one image,
                                             float32) exactly where MASK is 1 and differs from it
                                             somewhere where MASK is 0"""
import ast
import random
import struct
import sys


def write(path, shape, vals):
    sh = "(%s)" % (", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else ""))
    h = "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }" % sh
    h += " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode())
        f.write(struct.pack("<%df" % len(vals), *vals))


def read(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x93NUMPY\x01\x00", path
    hl = struct.unpack("<H", data[8:10])[0]
    hdr = ast.literal_eval(data[10:10 + hl].decode())
    assert hdr["descr"] == "<f4" and not hdr["fortran_order"], path
    shape = tuple(hdr["shape"])
    n = 1
    for s in shape:
        n *= s
    return shape, list(struct.unpack("<%df" % n, data[10 + hl:10 + hl + 4 * n]))


def main():
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "noise":
        rng = random.Random(int(a[1]))
        shape = tuple(int(x) for x in a[2:])
        n = 1
        for s in shape:
            n *= s
        write(a[0], shape, [rng.gauss(0.0, 1.0) for _ in range(n)])
    elif cmd == "reverse":
        shape, v = read(a[0])
        d = len(v) // shape[0]
        rows = [v[i * d:(i + 1) * d] for i in range(shape[0])][::-1]
        write(a[1], shape, [x for r in rows for x in r])
    elif cmd == "halfmask":
        shape = tuple(int(x) for x in a[1:])
        h, w = shape[-2], shape[-1]
        c = len(shape) == 3 and shape[0] or 1
        write(a[0], shape, [1.0 if y < h // 2 else 0.0 for _ in range(c) for y in range(h) for _ in range(w)])
    elif cmd == "kept":
        shape, s = read(a[0])
        _, img = read(a[1])
        _, m = read(a[2])
        d = len(img)
        for i in range(shape[0]):
            row = s[i * d:(i + 1) * d]
            if any(m[j] == 1.0 and row[j] != img[j] for j in range(d)):
                sys.exit("sample %d changed a kept value" % i)
            if not any(m[j] == 0.0 and row[j] != img[j] for j in range(d)):
                sys.exit("sample %d generated nothing" % i)
    else:
        sys.exit(__doc__)


main()
