#!/bin/sh
# dfm train end to end on real Fashion-MNIST (from the Debian mirror) and on toy data:
# bitwise rank-count invariance, overlap vs deterministic, ZeRO-1, divergence detection,
# launcher mismatch, and toy-2D sample quality. Needs DFM and DFM_BIN; uses mpirun.
set -u
# Open MPI allocates at start-up without freeing, from modules LeakSanitizer cannot name
# (open-mpi/ompi#6242): under `make asan`, leak checking is off for processes that start MPI.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TINY="$ROOT/tests/train/tiny-unet.yaml"
TMP=$(mktemp -d /tmp/dfm_train_XXXXXX)
trap 'rm -rf "$TMP"' EXIT
DATA="$TMP/data"
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
MPIRUN="mpirun --oversubscribe --mca pml ob1 --mca btl self,vader --bind-to none"
n_fail=0
ok() { echo "ok - $1"; }
nok() { echo "not ok - $1"; n_fail=$((n_fail + 1)); }
hash_of() { sed -n 's/.*"param_hash":"\([0-9a-f]*\)".*/\1/p' "$1/final.json" 2>/dev/null; }

# run NAME NP [--set ...]: train the tiny U-Net into $TMP/NAME on NP ranks
run() {
    name=$1; np=$2; shift 2
    timeout 900 $MPIRUN -np "$np" "$DFM" train "$TINY" --set data.dir="$DATA" \
        --set run.out_dir="$TMP/$name" "$@" > "$TMP/$name.log" 2>&1
}

for obj in ddpm flow; do
    extra=""
    [ "$obj" = flow ] && extra="--set objective.type=flow --set sample.sampler=euler"
    for np in 1 2 4; do
        # shellcheck disable=SC2086
        if run "$obj-np$np" "$np" $extra; then ok "$obj: 5 steps on $np rank(s)"
        else nok "$obj: 5 steps on $np rank(s)"; tail -5 "$TMP/$obj-np$np.log"; fi
    done
    h1=$(hash_of "$TMP/$obj-np1"); h2=$(hash_of "$TMP/$obj-np2"); h4=$(hash_of "$TMP/$obj-np4")
    if [ -n "$h1" ] && [ "$h1" = "$h2" ] && [ "$h1" = "$h4" ]; then
        ok "$obj: weights bitwise identical on 1, 2 and 4 ranks ($h1)"
    else nok "$obj: weights differ across rank counts: 1:$h1 2:$h2 4:$h4"; fi
    if "$DFM_BIN/tools/wcmp" "$TMP/$obj-np1/weights.bin" "$TMP/$obj-np4/weights.bin" 0 >/dev/null; then
        ok "$obj: weights.bin files equal (params and EMA)"
    else nok "$obj: weights.bin files differ"; fi
done

# Threads per rank must not change the bits either.
if run ddpm-np1-t2 1 --set train.threads=2 && [ "$(hash_of "$TMP/ddpm-np1-t2")" = "$(hash_of "$TMP/ddpm-np1")" ]; then
    ok "1 rank x 2 threads equals 1 rank x 1 thread"
else nok "thread count changed the weights"; fi

# Overlap mode against deterministic.
for np in 2 4; do
    if run "ovl-np$np" "$np" --set train.reduce=overlap &&
        out=$("$DFM_BIN/tools/wcmp" "$TMP/ddpm-np1/weights.bin" "$TMP/ovl-np$np/weights.bin" 1e-5); then
        ok "overlap on $np ranks matches deterministic to 1e-5 ($out)"
        early=$(sed -n 's/.*"buckets_started_in_backward":\([0-9]*\).*/\1/p' "$TMP/ovl-np$np/final.json")
        if [ "${early:-0}" -gt 0 ]; then ok "overlap on $np ranks: $early buckets started during the backward"
        else nok "overlap on $np ranks: no bucket started during the backward"; fi
    else nok "overlap on $np ranks: ${out:-run failed}"; tail -5 "$TMP/ovl-np$np.log"; fi
done

# ZeRO-1 against unsharded.
for np in 2 4; do
    if run "zero-np$np" "$np" --set train.zero1=true && [ "$(hash_of "$TMP/zero-np$np")" = "$(hash_of "$TMP/ddpm-np1")" ]; then
        ok "ZeRO-1 on $np ranks gives the unsharded weights bitwise"
    else nok "ZeRO-1 on $np ranks differs"; tail -5 "$TMP/zero-np$np.log"; fi
done

# A rank whose parameters drift is caught by the agreement check.
if DFM_FAULT_DIVERGE_STEP=2 run diverge 2; then
    nok "divergence injection was not caught"
elif grep -q "disagree" "$TMP/diverge.log"; then
    ok "divergence injection caught: $(grep -m1 disagree "$TMP/diverge.log" | cut -c1-100)"
else nok "divergence run failed without the agreement message"; tail -5 "$TMP/diverge.log"; fi

# A non-finite loss skips the step and is counted; too many in a row stop the run.
if DFM_FAULT_NAN_STEPS=3 run nan-once 2 && grep -q '"nonfinite":1' "$TMP/nan-once/final.json" &&
    grep -q '"steps":4,' "$TMP/nan-once/final.json"; then
    ok "one non-finite step is skipped and counted, the run goes on"
else nok "one non-finite step: $(cat "$TMP/nan-once/final.json" 2>/dev/null)"; tail -3 "$TMP/nan-once.log"; fi
if DFM_FAULT_NAN_STEPS=2-5 run nan-many 2 --set train.max_nonfinite=2; then
    nok "consecutive non-finite steps did not stop the run"
elif grep -q "3 consecutive steps had a non-finite loss or gradient (last at step 4" "$TMP/nan-many.log"; then
    ok "three non-finite steps in a row stop the run at step 4 with a hint"
else nok "non-finite stop: wrong message"; tail -3 "$TMP/nan-many.log"; fi

# Ranks started as singletons by a launcher that promised more.
if SLURM_NTASKS=4 "$DFM" train "$TINY" --set data.dir="$DATA" --set run.out_dir="$TMP/single" > "$TMP/single.log" 2>&1; then
    nok "world-size mismatch not detected"
elif grep -q "SLURM_NTASKS=4" "$TMP/single.log"; then ok "world-size mismatch detected"
else nok "world-size mismatch: wrong message"; cat "$TMP/single.log"; fi

# Outputs a user looks at.
for f in metrics.jsonl samples.png weights.bin final.json; do
    if [ -s "$TMP/ddpm-np2/$f" ]; then ok "run directory has $f"; else nok "run directory lacks $f"; fi
done
lines=$(wc -l < "$TMP/ddpm-np2/metrics.jsonl")
if [ "$lines" -eq 5 ] && grep -q '"loss_q":\[' "$TMP/ddpm-np2/metrics.jsonl"; then
    ok "metrics.jsonl has one record per step with per-quartile losses"
else nok "metrics.jsonl has $lines lines"; fi
# The step loss is the mean over the batch, so it lies between the smallest and the largest of
# the per-quartile means (each the mean of its examples' losses).
if awk -F'"loss":|,"loss_q":\\[|\\],"grad_norm"' '{
        n = split($3, q, ","); lo = 1e300; hi = -1e300
        for (i = 1; i <= n; i++) if (q[i] != "null") { if (q[i] + 0 < lo) lo = q[i] + 0; if (q[i] + 0 > hi) hi = q[i] + 0 }
        if (!($2 + 0 >= lo * (1 - 1e-6) && $2 + 0 <= hi * (1 + 1e-6))) bad = 1
    } END { exit bad }' "$TMP/ddpm-np2/metrics.jsonl"; then
    ok "per-quartile losses bracket the step loss"
else nok "per-quartile losses inconsistent with the step loss: $(head -1 "$TMP/ddpm-np2/metrics.jsonl")"; fi

# The last step non-finite: final.json reports its loss as null (it once wrote a bare nan).
if DFM_FAULT_NAN_STEPS=5 run nan-last 1; then ok "a non-finite last step still ends the run"
else nok "a non-finite last step failed the run"; tail -3 "$TMP/nan-last.log"; fi

# Every JSON file every run above wrote (diverging and non-finite runs included) is valid JSON
# for a strict parser: NaN and Infinity are not JSON, non-finite numbers must be null.
if out=$(/usr/bin/python3 - "$TMP" 2>&1 <<'EOF'
import json, os, sys
def bad(c): raise ValueError("non-JSON constant " + c)
files = 0
for d, _, names in os.walk(sys.argv[1]):
    for f in names:
        p = os.path.join(d, f)
        if f.endswith(".json"):
            json.loads(open(p, encoding="utf-8").read(), parse_constant=bad)
        elif f.endswith(".jsonl"):
            for i, line in enumerate(open(p, encoding="utf-8")):
                try: json.loads(line, parse_constant=bad)
                except ValueError as e: raise SystemExit("%s:%d: %s" % (p, i + 1, e))
        else:
            continue
        files += 1
recs = [json.loads(l) for l in open(os.path.join(sys.argv[1], "nan-once", "metrics.jsonl"))]
assert recs[2]["step"] == 3 and recs[2]["loss"] is None, recs[2]
assert all(r["loss"] is not None for r in recs if r["step"] != 3), recs
fin = json.load(open(os.path.join(sys.argv[1], "nan-last", "final.json")))
assert fin["loss"] is None and fin["nonfinite"] == 1 and fin["steps"] == 4, fin
print(files)
EOF
); then ok "all $out JSON files of the runs parse strictly; a non-finite loss is written as null"
else nok "JSON output: $out"; fi

[ "$n_fail" -eq 0 ]
