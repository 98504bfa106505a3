#!/bin/sh
# tests/cli/t_eval.sh - `dfm eval` on .npy images: real test images scored against themselves
# give FD 0, precision = recall = 1 and spectral distance 0; blurred copies score worse, more
# so when blurred more; the table is byte-identical on 1, 2 and 4 ranks and for any chunk
# size; bad inputs are clear errors. The evaluator is a quickly trained classifier (--weights)
# so the test does not depend on the shipped one.
# Needs $DFM; prints "ok - name" / "not ok - name"; exits 1 if any check failed.

# Open MPI allocates at start-up without freeing, from modules LeakSanitizer cannot name
# (open-mpi/ompi#6242): under `make asan`, leak checking is off for processes that start MPI.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DFM=${DFM:-$ROOT/bin/dfm}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/dfm_eval.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT INT TERM
DATA="$TMP/data"
PY=/usr/bin/python3
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
MPIRUN="mpirun --oversubscribe --mca pml ob1 --mca btl self,vader --bind-to none"
export OMP_NUM_THREADS=1
n_fail=0
ok() { echo "ok - $1"; }
nok() { echo "not ok - $1"; [ -n "$2" ] && printf '#   %s\n' "$2"; n_fail=$((n_fail + 1)); }
val() { awk -F'|' -v k="$1" '$2 ~ k {gsub(/ /, "", $3); print $3; exit}' "$2"; }

if "$DFM" eval --help | grep -q 'FD-FMNIST'; then ok "--help"; else nok "--help"; fi
"$DFM" eval > /dev/null 2> "$TMP/err"; rc=$?
if [ $rc -eq 2 ] && grep -q "missing SAMPLES.npy" "$TMP/err"; then ok "no samples: usage error"; else nok "no samples: usage error" "exit $rc"; fi

"$DFM" fetch fashion-mnist --dir "$DATA" --quiet > /dev/null 2>&1 || nok "fetch fashion-mnist"
"$DFM" evaluator train fmnist --data "$DATA" --epochs 2 --limit 1024 --log-every 0 \
    --out "$TMP/clf.dfmw" > "$TMP/train" 2>&1 || nok "train a quick evaluator" "$(cat "$TMP/train")"
T="$DATA/fashion-mnist/t10k-images-idx3-ubyte"
$PY "$ROOT/tests/cli/idx2npy.py" "$T" "$TMP/real.npy" 300
$PY "$ROOT/tests/cli/idx2npy.py" "$T" "$TMP/blur1.npy" 300 --blur 1
$PY "$ROOT/tests/cli/idx2npy.py" "$T" "$TMP/blur2.npy" 300 --blur 2
$PY "$ROOT/tests/cli/idx2npy.py" "$DATA/fashion-mnist/t10k-labels-idx1-ubyte" "$TMP/labels.npy" 300 --labels
E="--data $DATA --weights $TMP/clf.dfmw --ref 300"

# shellcheck disable=SC2086
"$DFM" eval "$TMP/real.npy" $E --labels "$TMP/labels.npy" --no-floor > "$TMP/real.txt" 2>&1 || nok "eval real" "$(cat "$TMP/real.txt")"
fd=$(val FD-FMNIST "$TMP/real.txt"); p=$(val precision "$TMP/real.txt"); r=$(val recall "$TMP/real.txt")
sd=$(val spectral "$TMP/real.txt"); acc=$(val "class accuracy" "$TMP/real.txt")
if awk "BEGIN{exit !($fd < 1e-4 && $p == 1 && $r == 1 && $sd == 0)}"; then ok "the reference itself: FD $fd, P $p, R $r, spectral $sd"
else nok "the reference itself scores perfectly" "$(cat "$TMP/real.txt")"; fi
if awk "BEGIN{exit !($acc > 0.5)}"; then ok "class accuracy on real labelled images $acc"; else nok "class accuracy" "$acc"; fi

# shellcheck disable=SC2086
"$DFM" eval "$TMP/blur1.npy" $E > "$TMP/b1.txt" 2>&1 || nok "eval blur1" "$(cat "$TMP/b1.txt")"
# shellcheck disable=SC2086
"$DFM" eval "$TMP/blur2.npy" $E > "$TMP/b2.txt" 2>&1 || nok "eval blur2" "$(cat "$TMP/b2.txt")"
fd1=$(val FD-FMNIST "$TMP/b1.txt"); fd2=$(val FD-FMNIST "$TMP/b2.txt")
s1=$(val spectral "$TMP/b1.txt"); s2=$(val spectral "$TMP/b2.txt")
if awk "BEGIN{exit !($fd1 > $fd && $fd2 > $fd1 && $s2 > $s1 && $s1 > 1)}"; then
    ok "blur raises FD ($fd -> $fd1 -> $fd2) and the spectral distance ($s1 -> $s2 dB)"
else nok "blur raises FD and spectral distance" "$fd $fd1 $fd2 / $s1 $s2"; fi
if grep -q "real floor" "$TMP/b1.txt" && [ -n "$(awk -F'|' '/FD-FMNIST/ {gsub(/ /,"",$4); print $4}' "$TMP/b1.txt")" ]; then
    ok "scores printed beside the real-data floor"; else nok "floor column" "$(cat "$TMP/b1.txt")"; fi

if [ "$(head -c 4 "$TMP/blur1.spectrum.png" 2>/dev/null | od -An -c | tr -d ' ')" = "211PNG" ] \
    && grep -q "spectra: $TMP/blur1.spectrum.png" "$TMP/b1.txt"; then ok "spectra plotted to SAMPLES.spectrum.png"
else nok "spectra plot" "$(ls "$TMP")"; fi

# the same table on 1, 2 and 4 ranks, chunk sizes 7 and 64
for np in 1 2 4; do
    # shellcheck disable=SC2086
    timeout 300 $MPIRUN -np $np "$DFM" eval "$TMP/blur1.npy" $E --chunk 7 > "$TMP/np$np.txt" 2>&1
    if cmp -s "$TMP/np$np.txt" "$TMP/b1.txt"; then ok "identical scores on $np ranks, chunk 7"
    else nok "identical scores on $np ranks, chunk 7" "$(diff "$TMP/b1.txt" "$TMP/np$np.txt" | head -5)"; fi
done

# bad inputs
head -c 60 "$TMP/real.npy" > "$TMP/cut.npy"
# shellcheck disable=SC2086
"$DFM" eval "$TMP/cut.npy" $E > /dev/null 2> "$TMP/err"; rc=$?
if [ $rc -eq 1 ] && grep -q "cut.npy" "$TMP/err"; then ok "truncated .npy: error naming it"; else nok "truncated .npy" "exit $rc: $(cat "$TMP/err")"; fi
$PY "$ROOT/tests/cli/idx2npy.py" "$DATA/fashion-mnist/t10k-labels-idx1-ubyte" "$TMP/l5.npy" 5 --labels
# shellcheck disable=SC2086
"$DFM" eval "$TMP/real.npy" $E --labels "$TMP/l5.npy" > /dev/null 2> "$TMP/err"; rc=$?
if [ $rc -eq 2 ] && grep -q "shape (300,)" "$TMP/err"; then ok "labels of the wrong length"; else nok "labels of the wrong length" "exit $rc: $(cat "$TMP/err")"; fi
# shellcheck disable=SC2086
"$DFM" eval "$TMP/labels.npy" $E > /dev/null 2> "$TMP/err"; rc=$?
if [ $rc -eq 2 ] && grep -q "evaluator wants" "$TMP/err"; then ok "not images: the shapes named"; else nok "not images" "exit $rc: $(cat "$TMP/err")"; fi

# FD-MNIST: no classifier is shipped (no MNIST bytes to train it from here): a clear error naming
# the way out; given the data (here MNIST-format files served from a local mirror, hashes
# recorded with --allow-unpinned) dfm evaluator train mnist and dfm eval --evaluator mnist work
"$DFM" eval "$TMP/real.npy" --evaluator mnist --data "$DATA" > /dev/null 2> "$TMP/err"; rc=$?
if [ $rc -eq 1 ] && grep -q "no FD-MNIST classifier is shipped" "$TMP/err" && grep -q "evaluator train mnist" "$TMP/err" \
    && grep -q -- "--weights FILE" "$TMP/err"; then ok "FD-MNIST without weights: a clear error"
else nok "FD-MNIST without weights" "exit $rc: $(cat "$TMP/err")"; fi
mkdir -p "$TMP/mirror"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    gzip -c "$DATA/fashion-mnist/$f" > "$TMP/mirror/$f.gz"
done
"$DFM" fetch mnist --dir "$TMP/mn" --mirror "file://$TMP/mirror/" --allow-unpinned > "$TMP/mn.log" 2>&1 \
    && "$DFM" evaluator train mnist --data "$TMP/mn" --epochs 1 --limit 256 --log-every 0 \
        --out "$TMP/mnist.dfmw" >> "$TMP/mn.log" 2>&1 \
    && "$DFM" eval "$TMP/real.npy" --evaluator mnist --weights "$TMP/mnist.dfmw" --data "$TMP/mn" --ref 100 \
        --no-floor > "$TMP/mn.txt" 2>&1
if grep -q "FD-MNIST" "$TMP/mn.txt" && [ -n "$(val FD-MNIST "$TMP/mn.txt")" ]; then ok "FD-MNIST given the data: train the evaluator, score"
else nok "FD-MNIST given the data" "$(tail -5 "$TMP/mn.log" "$TMP/mn.txt")"; fi

[ "$n_fail" -eq 0 ]
