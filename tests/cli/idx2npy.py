#!/usr/bin/env python3
"""Write the first N images of an IDX image file as a uint8 .npy (N, 1, H, W), optionally
blurred (3x3 box, wrapping at the edges, applied `--blur K` times), or its labels as (N,)
float32. Pure Python, for tests/cli/t_eval.sh.
usage: idx2npy.py IDX OUT.npy N [--blur K] [--labels]"""
import struct
import sys


def npy_header(descr, shape):
    sh = "(%s)" % (", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else ""))
    h = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, sh)
    pad = (64 - (10 + len(h) + 1) % 64) % 64
    h = h + " " * pad + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode()


def main():
    src, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    blur = int(sys.argv[sys.argv.index("--blur") + 1]) if "--blur" in sys.argv else 0
    data = open(src, "rb").read()
    if "--labels" in sys.argv:
        labs = data[8:8 + n]
        open(out, "wb").write(npy_header("<f4", (n,)) + struct.pack("<%df" % n, *labs))
        return
    _, cnt, H, W = struct.unpack(">IIII", data[:16])
    body = bytearray()
    for i in range(n):
        img = list(data[16 + i * H * W:16 + (i + 1) * H * W])
        for _ in range(blur):
            img = [round(sum(img[((h + dh) % H) * W + (w + dw) % W]
                             for dh in (-1, 0, 1) for dw in (-1, 0, 1)) / 9)
                   for h in range(H) for w in range(W)]
        body += bytes(img)
    open(out, "wb").write(npy_header("|u1", (n, 1, H, W)) + bytes(body))


main()
