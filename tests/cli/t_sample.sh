#!/bin/sh
# tests/cli/t_sample.sh - `dfm sample` and `dfm eval RUN` end to end: a tiny U-Net trained a few
# steps, sampled on 1, 2 and 4 ranks with chunk sizes 1, 3 and 16: the .npy files are
# byte-identical; uint8 and float32 layouts; a sweep scored by the shipped FD-FMNIST evaluator
# gives the same numbers on 1 and 2 ranks; a truncated weights file and weights of another
# network are clear errors; a checkpoint (one step-N, or a run's newest) samples the same bytes
# as weights.bin, and a truncated or mismatched one is a clear error; --noise (row i starts
# sample i) and --inpaint/--mask (kept values exact), the same bytes on 1 and 2 ranks; an eval
# interrupted by a signal resumes from its partial records with the same numbers; eval.every
# during training logs the numbers dfm eval gives.
# Needs $DFM; prints "ok - name" / "not ok - name"; exits 1 if any check failed.

# Open MPI allocates at start-up without freeing, from modules LeakSanitizer cannot name
# (open-mpi/ompi#6242): under `make asan`, leak checking is off for processes that start MPI.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DFM=${DFM:-$ROOT/bin/dfm}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/dfm_sample.XXXXXX") || exit 1
export DFM_ROOT="$ROOT"
trap 'rm -rf "$TMP"' EXIT INT TERM
DATA="$TMP/data"
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
MPIRUN="mpirun --oversubscribe --mca pml ob1 --mca btl self,vader --bind-to none"
export OMP_NUM_THREADS=1
n_fail=0
ok() { echo "ok - $1"; }
nok() { echo "not ok - $1"; [ -n "$2" ] && printf '#   %s\n' "$2"; n_fail=$((n_fail + 1)); }
TINY="$ROOT/tests/train/tiny-unet.yaml"
RUN="$TMP/run"

if "$DFM" sample --help | grep -q 'byte-identical'; then ok "--help"; else nok "--help"; fi
"$DFM" sample > /dev/null 2> "$TMP/err"; rc=$?
if [ $rc -eq 2 ] && grep -q "missing RUN_DIR" "$TMP/err"; then ok "no source: usage error"; else nok "no source" "exit $rc"; fi
"$DFM" sample "$RUN" --dtype int7 > /dev/null 2> "$TMP/err"; rc=$?
if [ $rc -eq 2 ] && grep -q "float32 or uint8" "$TMP/err"; then ok "bad --dtype"; else nok "bad --dtype" "exit $rc"; fi

"$DFM" train "$TINY" --set data.dir="$DATA" --set run.out_dir="$RUN" > "$TMP/train.log" 2>&1 \
    || nok "train the tiny U-Net" "$(tail -5 "$TMP/train.log")"
if [ -f "$RUN/job.yaml" ]; then ok "dfm train writes job.yaml"; else nok "dfm train writes job.yaml"; fi

S="--n 10 --steps 3 --sampler ddim --eta 1"
# shellcheck disable=SC2086
"$DFM" sample "$RUN" $S --chunk 4 --out "$TMP/ref.npy" > "$TMP/s.log" 2>&1 || nok "sample on 1 rank" "$(cat "$TMP/s.log")"
if [ -s "$TMP/ref.npy" ] && [ -s "$TMP/ref.png" ]; then ok "sample writes .npy and .png"; else nok "sample writes .npy and .png" "$(cat "$TMP/s.log")"; fi
size=$(wc -c < "$TMP/ref.npy" | tr -d ' ')
if [ "$size" -eq $((128 + 10 * 28 * 28 * 4)) ]; then ok "float32 layout (10, 1, 28, 28)"; else nok "float32 layout" "size $size"; fi
for np in 1 2 4; do
    for c in 1 3 16; do
        # shellcheck disable=SC2086
        timeout 300 $MPIRUN -np $np "$DFM" sample "$RUN" $S --chunk $c --out "$TMP/s$np-$c.npy" > "$TMP/s.log" 2>&1
        if cmp -s "$TMP/ref.npy" "$TMP/s$np-$c.npy"; then ok "byte-identical on $np ranks, chunk $c"
        else nok "byte-identical on $np ranks, chunk $c" "$(tail -3 "$TMP/s.log")"; fi
    done
done
# shellcheck disable=SC2086
"$DFM" sample "$RUN" $S --dtype uint8 --out "$TMP/u8.npy" > /dev/null 2>&1
size=$(wc -c < "$TMP/u8.npy" | tr -d ' ')
if [ "$size" -eq $((128 + 10 * 28 * 28)) ]; then ok "uint8 layout"; else nok "uint8 layout" "size $size"; fi
"$DFM" sample "$RUN/weights.bin" $S > /dev/null 2> "$TMP/err"; rc=$?
if [ $rc -eq 2 ] && grep -q "job spec" "$TMP/err"; then ok "weights file without --job"; else nok "weights file without --job" "exit $rc: $(cat "$TMP/err")"; fi

# dfm eval RUN: sample and score in one go, over a sweep, the same on 1 and 2 ranks
for np in 1 2; do
    timeout 600 $MPIRUN -np $np "$DFM" eval "$RUN" --data "$DATA" --n 24 --ref 200 --chunk 5 \
        --steps 2 --sweep eta=0,1 --out-dir "$TMP/ev$np" > "$TMP/ev$np.log" 2>&1 \
        || nok "eval RUN on $np ranks" "$(tail -5 "$TMP/ev$np.log")"
    cut -d, -f1-5,7- "$TMP/ev$np/sweep.csv" > "$TMP/ev$np.csv" 2>/dev/null
done
if [ "$(wc -l < "$TMP/ev1.csv")" -eq 3 ] && grep -q "FD-FMNIST" "$TMP/ev1/sweep.md" && grep -q "real data" "$TMP/ev1/sweep.md"; then
    ok "eval RUN --sweep writes sweep.md and sweep.csv (2 points and the floor)"
else nok "eval RUN --sweep tables" "$(cat "$TMP/ev1.log" | tail -5)"; fi
png() { [ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = "211PNG" ]; }
if png "$TMP/ev1/sweep.png" && png "$TMP/ev1/spectrum.png"; then ok "eval RUN --sweep plots sweep.png and spectrum.png"
else nok "sweep plots" "$(ls "$TMP/ev1")"; fi
if cmp -s "$TMP/ev1.csv" "$TMP/ev2.csv"; then ok "sweep scores identical on 1 and 2 ranks"
else nok "sweep scores identical on 1 and 2 ranks" "$(diff "$TMP/ev1.csv" "$TMP/ev2.csv" | head -4)"; fi
# an interrupted eval (SIGTERM to mpirun half-way) resumes from its partial records with the
# same numbers; a changed request does not reuse them
EV="--data $DATA --n 24 --ref 200 --chunk 5 --steps 2 --sweep eta=0,1 --out-dir $TMP/evr"
# shellcheck disable=SC2086
$MPIRUN -np 2 -x DFM_FAULT_EVAL_CHUNK_MS=400 "$DFM" eval "$RUN" $EV > "$TMP/evr0.log" 2>&1 &
pid=$!
i=0
# partial files: the train-split records (the floor), the test split's, then one per sweep
# point. Stop it as soon as the first point's file is there: at 400 ms per chunk, that point
# and the second (3 rounds of chunks each on 2 ranks) leave seconds of margin
while [ $i -lt 1200 ] && [ "$(ls "$TMP"/evr/partial-*.bin 2>/dev/null | wc -l)" -lt 3 ]; do sleep 0.05; i=$((i + 1)); done
kill -TERM $pid 2>/dev/null
wait $pid; rc=$?
if [ $rc -ne 0 ] && ls "$TMP"/evr/partial-*.bin > /dev/null 2>&1; then ok "eval interrupted by SIGTERM leaves partial records"
else nok "eval interrupted by SIGTERM" "exit $rc: $(tail -3 "$TMP/evr0.log")"; fi
# shellcheck disable=SC2086
"$DFM" eval "$RUN" $EV --seed 99 > "$TMP/evr1.log" 2>&1
if ! grep -q "resuming the samples" "$TMP/evr1.log" && grep -q "resuming the test-split records" "$TMP/evr1.log"; then
    ok "a changed request (--seed) reuses no sample records"
else nok "changed request" "$(grep -i resum "$TMP/evr1.log")"; fi
# shellcheck disable=SC2086
"$DFM" eval "$RUN" $EV > "$TMP/evr2.log" 2>&1
cut -d, -f1-5,7- "$TMP/evr/sweep.csv" > "$TMP/evr.csv" 2>/dev/null
if grep -q "resuming the samples' records" "$TMP/evr2.log" && cmp -s "$TMP/ev1.csv" "$TMP/evr.csv" \
    && ! ls "$TMP"/evr/partial-*.bin > /dev/null 2>&1; then
    ok "resumed eval: the same numbers as an uninterrupted run, partial files removed"
else nok "resumed eval" "$(grep -i resum "$TMP/evr2.log"; diff "$TMP/ev1.csv" "$TMP/evr.csv" | head -4)"; fi
"$DFM" eval "$RUN" --sweep depth=3 > /dev/null 2> "$TMP/err"; rc=$?
if [ $rc -eq 2 ] && grep -q "steps=" "$TMP/err"; then ok "bad --sweep axis"; else nok "bad --sweep axis" "exit $rc: $(cat "$TMP/err")"; fi

# damaged and mismatched weights
head -c 5000 "$RUN/weights.bin" > "$TMP/cut.bin"
# shellcheck disable=SC2086
"$DFM" sample "$TMP/cut.bin" --job "$RUN/job.yaml" $S > /dev/null 2> "$TMP/err"; rc=$?
if [ $rc -eq 1 ] && grep -q "cut.bin" "$TMP/err"; then ok "truncated weights: a clear error"; else nok "truncated weights" "exit $rc: $(cat "$TMP/err")"; fi
# shellcheck disable=SC2086
"$DFM" sample "$RUN" --set model.unet.channels=16 $S > /dev/null 2> "$TMP/err"; rc=$?
if [ $rc -eq 1 ] && grep -q "job's network" "$TMP/err"; then ok "weights of another network: a clear error"; else nok "mismatched weights" "exit $rc: $(cat "$TMP/err")"; fi

# checkpoints: one step-N directory, a run without weights.bin (its newest checkpoint), damage
CK="$RUN/ckpt/step-00000005"
# shellcheck disable=SC2086
"$DFM" sample "$CK" $S --out "$TMP/ck.npy" > "$TMP/ck.log" 2>&1
if cmp -s "$TMP/ref.npy" "$TMP/ck.npy" && grep -q "EMA weights of checkpoint" "$TMP/ck.log"; then
    ok "sample CKPT_DIR: the EMA weights, the same bytes as weights.bin"
else nok "sample CKPT_DIR" "$(cat "$TMP/ck.log")"; fi
mv "$RUN/weights.bin" "$TMP/weights.bin"
# shellcheck disable=SC2086
timeout 300 $MPIRUN -np 2 "$DFM" sample "$RUN" $S --chunk 3 --out "$TMP/ck2.npy" > "$TMP/ck.log" 2>&1
if cmp -s "$TMP/ref.npy" "$TMP/ck2.npy" && grep -q "step-00000005 (step 5)" "$TMP/ck.log"; then
    ok "sample RUN_DIR without weights.bin: its newest checkpoint, on 2 ranks"
else nok "sample RUN_DIR without weights.bin" "$(cat "$TMP/ck.log")"; fi
mv "$TMP/weights.bin" "$RUN/weights.bin"
mkdir "$TMP/cut"
cp "$CK"/* "$TMP/cut/"
head -c 3000 "$CK/shard-00000-of-00001.bin" > "$TMP/cut/shard-00000-of-00001.bin"
# shellcheck disable=SC2086
"$DFM" sample "$TMP/cut" $S --out "$TMP/x.npy" > /dev/null 2> "$TMP/err"; rc=$?
if [ $rc -eq 1 ] && grep -q "shard-00000-of-00001.bin: 3000 bytes.*truncated" "$TMP/err"; then
    ok "truncated checkpoint shard: a clear error"
else nok "truncated checkpoint shard" "exit $rc: $(cat "$TMP/err")"; fi
# shellcheck disable=SC2086
"$DFM" sample "$CK" --set model.unet.channels=16 $S --out "$TMP/x.npy" > /dev/null 2> "$TMP/err"; rc=$?
if [ $rc -eq 1 ] && grep -q "step-00000005 holds .* the job's network has" "$TMP/err"; then
    ok "checkpoint of another network: a clear error"
else nok "mismatched checkpoint" "exit $rc: $(cat "$TMP/err")"; fi
mkdir "$TMP/empty"
"$DFM" sample "$TMP/empty" > /dev/null 2> "$TMP/err"; rc=$?
if [ $rc -eq 2 ] && grep -q "no weights.bin" "$TMP/err"; then ok "directory without weights or checkpoints"
else nok "empty directory" "exit $rc: $(cat "$TMP/err")"; fi

# --noise: sample i starts from row i; with DDIM eta 0 reversed rows give reversed samples
PY=/usr/bin/python3
U="$ROOT/tests/cli/npyutil.py"
$PY "$U" noise "$TMP/nz.npy" 3 4 1 28 28 && $PY "$U" reverse "$TMP/nz.npy" "$TMP/nzr.npy"
D0="--steps 3 --sampler ddim --eta 0"
# shellcheck disable=SC2086
"$DFM" sample "$RUN" $D0 --noise "$TMP/nz.npy" --out "$TMP/n1.npy" > "$TMP/n.log" 2>&1
# shellcheck disable=SC2086
timeout 300 $MPIRUN -np 2 "$DFM" sample "$RUN" $D0 --chunk 1 --noise "$TMP/nzr.npy" --out "$TMP/n2.npy" >> "$TMP/n.log" 2>&1
$PY "$U" reverse "$TMP/n2.npy" "$TMP/n2r.npy" 2>> "$TMP/n.log"
# shellcheck disable=SC2086
"$DFM" sample "$RUN" $D0 --n 4 --out "$TMP/n0.npy" >> "$TMP/n.log" 2>&1
if [ -s "$TMP/n1.npy" ] && cmp -s "$TMP/n1.npy" "$TMP/n2r.npy" && ! cmp -s "$TMP/n1.npy" "$TMP/n0.npy"; then
    ok "--noise: sample i starts from row i (reversed rows, reversed samples; 1 and 2 ranks)"
else nok "--noise" "$(tail -5 "$TMP/n.log")"; fi
$PY "$U" noise "$TMP/bad.npy" 3 4 1 14 14
"$DFM" sample "$RUN" --noise "$TMP/bad.npy" > /dev/null 2> "$TMP/err"; rc=$?
if [ $rc -ne 0 ] && grep -q "shape (4, 1, 14, 14), the model's samples need (N, 1, 28, 28)" "$TMP/err"; then
    ok "--noise of the wrong shape: a clear error"
else nok "--noise of the wrong shape" "exit $rc: $(cat "$TMP/err")"; fi
"$DFM" sample "$RUN" --noise "$TMP/nz.npy" --n 5 > /dev/null 2> "$TMP/err"; rc=$?
if [ $rc -ne 0 ] && grep -q "holds 4 samples, --n asks for 5" "$TMP/err"; then ok "--noise rows and --n disagree"
else nok "--noise rows and --n disagree" "exit $rc: $(cat "$TMP/err")"; fi

# --inpaint/--mask: kept values exactly, the rest generated, the same bytes on 1 and 2 ranks
$PY "$U" noise "$TMP/img.npy" 5 1 28 28 && $PY "$U" halfmask "$TMP/m.npy" 1 28 28
for np in 1 2; do
    # shellcheck disable=SC2086
    timeout 300 $MPIRUN -np $np "$DFM" sample "$RUN" $S --chunk 3 --inpaint "$TMP/img.npy" --mask "$TMP/m.npy" \
        --out "$TMP/ip$np.npy" > "$TMP/ip.log" 2>&1 || nok "inpaint on $np ranks" "$(tail -3 "$TMP/ip.log")"
done
if out=$($PY "$U" kept "$TMP/ip1.npy" "$TMP/img.npy" "$TMP/m.npy" 2>&1) && cmp -s "$TMP/ip1.npy" "$TMP/ip2.npy"; then
    ok "--inpaint --mask: kept values exact, byte-identical on 1 and 2 ranks"
else nok "--inpaint --mask" "$out"; fi
# --resample (RePaint): the kept values stay exact, the generated part changes
# shellcheck disable=SC2086
"$DFM" sample "$RUN" $S --inpaint "$TMP/img.npy" --mask "$TMP/m.npy" --resample 3 \
    --out "$TMP/ipr.npy" > "$TMP/ipr.log" 2>&1 || nok "--resample 3" "$(tail -3 "$TMP/ipr.log")"
if out=$($PY "$U" kept "$TMP/ipr.npy" "$TMP/img.npy" "$TMP/m.npy" 2>&1) && ! cmp -s "$TMP/ipr.npy" "$TMP/ip1.npy"; then
    ok "--inpaint --resample 3: kept values exact, the generated part resampled"
else nok "--inpaint --resample 3" "$out"; fi
"$DFM" sample "$RUN" --sampler dpmpp2m --steps 3 --inpaint "$TMP/img.npy" --mask "$TMP/m.npy" --resample 2 \
    > /dev/null 2> "$TMP/err"; rc=$?
if [ $rc -ne 0 ] && grep -q "sample.resample: resampling is for the ddpm and ddim samplers" "$TMP/err"; then
    ok "--resample with dpmpp2m: a clear error"
else nok "--resample with dpmpp2m" "exit $rc: $(cat "$TMP/err")"; fi
"$DFM" sample "$RUN" --inpaint "$TMP/img.npy" --mask "$TMP/img.npy" > /dev/null 2> "$TMP/err"; rc=$?
if [ $rc -ne 0 ] && grep -q "a mask holds 1 (keep) or 0" "$TMP/err"; then ok "a mask that is not 0/1"
else nok "a mask that is not 0/1" "exit $rc: $(cat "$TMP/err")"; fi

# eval.every: the evaluation during training on 2 ranks, logged to metrics.jsonl, the numbers
# of dfm eval for the same weights
EVT="--set data.dir=$DATA --set eval.every=5 --set eval.count=8 --set eval.batch=4 --set eval.ref=50"
# shellcheck disable=SC2086
timeout 300 $MPIRUN -np 2 "$DFM" train "$TINY" $EVT --set run.out_dir="$TMP/evt" > "$TMP/evt.log" 2>&1 \
    || nok "train with eval.every on 2 ranks" "$(tail -5 "$TMP/evt.log")"
"$DFM" eval "$TMP/evt" --data "$DATA" --n 8 --ref 50 --chunk 3 > "$TMP/evt-eval.txt" 2>&1
if out=$($PY - "$TMP/evt/metrics.jsonl" "$TMP/evt-eval.txt" 2>&1 <<'EOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
ev = [l for l in lines if "eval" in l]
assert len(ev) == 1 and ev[0]["step"] == 5, ev
e = ev[0]["eval"]
tab = {}
for row in open(sys.argv[2]):
    c = [x.strip() for x in row.split("|")]
    if len(c) > 3:
        tab[c[1]] = c[2:4]
assert "%.4f" % e["fd_fmnist"] == tab["FD-FMNIST"][0], (e, tab)
assert "%.4f" % e["fd_fmnist_floor"] == tab["FD-FMNIST"][1], (e, tab)
assert "%.4f" % e["precision"] == tab["precision (k=3)"][0], (e, tab)
assert "%.4f" % e["spectral_db"] == tab["spectral distance (dB)"][0], (e, tab)
assert e["n"] == 8 and e["ref"] == 50
EOF
); then ok "eval.every: scores in metrics.jsonl, equal to dfm eval's"
else nok "eval.every" "$out"; fi

[ "$n_fail" -eq 0 ]
