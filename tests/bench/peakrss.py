#!/usr/bin/python3
"""tests/bench/peakrss.py - `/usr/bin/time -f "maxrss_kb %M elapsed_s %e" -o FILE CMD...` for
machines without the `time` package: runs CMD, writes its peak RSS (getrusage of the waited-for
children, KiB) and wall seconds to FILE, exits with CMD's status."""
import resource
import subprocess
import sys
import time

if len(sys.argv) < 4 or sys.argv[1] != "-o":
    sys.exit("usage: peakrss.py -o FILE CMD [ARG...]")
t0 = time.monotonic()
rc = subprocess.call(sys.argv[3:])
dt = time.monotonic() - t0
with open(sys.argv[2], "w") as f:
    f.write(f"maxrss_kb {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss} "
            f"elapsed_s {dt:.2f}\n")
sys.exit(rc if rc >= 0 else 128 - rc)
