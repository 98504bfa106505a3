#!/bin/sh
# Sample quality on toy 2-D data, for both objectives: a small MLP trained for 1500 steps must
# bring its samples within a stated sliced Wasserstein distance of held-out data. The floor is
# the distance between two independent draws from the data of the same size (what a perfect
# model scores); the test asks for at most 2.5x the floor (measured: about 1.1-1.8x).
set -u
# Open MPI allocates at start-up without freeing, from modules LeakSanitizer cannot name
# (open-mpi/ompi#6242): under `make asan`, leak checking is off for processes that start MPI.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d /tmp/dfm_toy_XXXXXX)
trap 'rm -rf "$TMP"' EXIT
n_fail=0
for obj in flow ddpm; do
    out="$TMP/$obj"
    if ! timeout 1800 "$DFM" train "$ROOT/jobs/toy2d-$obj.yaml" --set run.out_dir="$out" \
        --set train.steps=1500 --set train.batch=256 --set train.micro_batch=128 \
        --set train.lr=2e-3 --set model.mlp.hidden=128 --set model.mlp.layers=3 \
        --set sample.count=2048 --set sample.batch=2048 > "$TMP/$obj.log" 2>&1; then
        echo "not ok - toy2d-$obj: training failed"; tail -5 "$TMP/$obj.log"; n_fail=$((n_fail + 1)); continue
    fi
    # final.json through a strict JSON parser (NaN or Infinity would be rejected)
    read -r swd floor ratio <<EOF
$(/usr/bin/python3 -c 'import json, sys
def bad(c): raise ValueError(c)
j = json.loads(open(sys.argv[1]).read(), parse_constant=bad)
print(j["swd"], j["swd_floor"], j["swd_ratio"])' "$out/final.json" 2>&1)
EOF
    case $ratio in [0-9]*) ;; *) ratio="" ;; esac # not a number: the parse failed or it is null
    if [ -n "$ratio" ] && awk -v r="$ratio" 'BEGIN { exit !(r <= 2.5) }'; then
        echo "ok - toy2d-$obj: SW2 to held-out data $swd, floor $floor, ratio $ratio <= 2.5"
    else
        echo "not ok - toy2d-$obj: SW2 $swd, floor $floor, ratio ${ratio:-?} > 2.5"; n_fail=$((n_fail + 1))
    fi
    if [ -s "$out/samples.png" ]; then echo "ok - toy2d-$obj: scatter plot written"
    else echo "not ok - toy2d-$obj: no samples.png"; n_fail=$((n_fail + 1)); fi
done
[ "$n_fail" -eq 0 ]
