#!/bin/sh
# tests/cli/t_evaluator.sh - `dfm evaluator`: usage errors, a short real training run on
# Fashion-MNIST (the Debian mirror) that is bit-for-bit reproducible, a damaged weights file,
# and the shipped FD-FMNIST classifier: its hash and its test accuracy.
# Needs $DFM; prints "ok - name" / "not ok - name"; exits 1 if any check failed.

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DFM=${DFM:-$ROOT/bin/dfm}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/dfm_evaluator.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT INT TERM
DATA="$TMP/data"
export DFM_ROOT="$ROOT"
n_fail=0
ok() { echo "ok - $1"; }
nok() { echo "not ok - $1"; [ -n "$2" ] && printf '#   %s\n' "$2"; n_fail=$((n_fail + 1)); }

# expect NAME STATUS PATTERN -- ARGS: exit status and a stderr fragment
expect() {
    name=$1 want=$2 pat=$3; shift 4
    "$DFM" evaluator "$@" > "$TMP/out" 2> "$TMP/err"; rc=$?
    if [ "$rc" -ne "$want" ]; then nok "$name" "exit $rc, want $want: $(cat "$TMP/err")"
    elif ! grep -q -- "$pat" "$TMP/err"; then nok "$name" "stderr lacks '$pat': $(cat "$TMP/err")"
    else ok "$name"; fi
}

if "$DFM" evaluator --help | grep -q 'FD-FMNIST'; then ok "--help"; else nok "--help"; fi
expect "no action" 2 "missing action" --
expect "unknown action" 2 "unknown action 'fly'" -- fly fmnist
expect "unknown evaluator" 2 "no evaluator named 'cifar'" -- test cifar
expect "bad count" 2 "wants a count" -- train fmnist --epochs x
if "$DFM" evaluator list | grep -q 'FD-FMNIST'; then ok "list"; else nok "list"; fi

"$DFM" fetch fashion-mnist --dir "$DATA" --quiet > /dev/null 2>&1 || nok "fetch fashion-mnist"

# a short real run, twice: the same bytes (and a learning classifier)
for k in 1 2; do
    OMP_NUM_THREADS=$k "$DFM" evaluator train fmnist --data "$DATA" --epochs 4 --limit 1024 \
        --log-every 0 --out "$TMP/c$k.dfmw" > "$TMP/train$k" 2>&1 || nok "train $k" "$(cat "$TMP/train$k")"
done
if cmp -s "$TMP/c1.dfmw" "$TMP/c2.dfmw"; then ok "training reproduces bit for bit (1 and 2 threads)"
else nok "training reproduces bit for bit (1 and 2 threads)"; fi
h1=$(sed -n 's/^sha256 //p' "$TMP/train1")
h2=$(sha256sum "$TMP/c1.dfmw" | cut -d' ' -f1)
if [ -n "$h1" ] && [ "$h1" = "$h2" ]; then ok "train prints the file's SHA-256"; else nok "train prints the file's SHA-256" "$h1 vs $h2"; fi
"$DFM" evaluator test fmnist --data "$DATA" --limit 1000 --weights "$TMP/c1.dfmw" > "$TMP/test1" 2>&1
acc=$(sed -n 's/.*test accuracy \([0-9.]*\).*/\1/p' "$TMP/test1")
if [ -n "$acc" ] && awk "BEGIN{exit !($acc > 0.6)}"; then ok "1024 examples, 4 epochs: test accuracy $acc"
else nok "short training learns" "$(cat "$TMP/test1")"; fi

head -c 100 "$TMP/c1.dfmw" > "$TMP/cut.dfmw"
expect "missing dataset" 1 "fashion-mnist" -- test fmnist --data "$TMP/nothing" --weights "$TMP/c1.dfmw"
expect "truncated weights" 1 "cut.dfmw" -- test fmnist --data "$DATA" --weights "$TMP/cut.dfmw"

# the shipped classifier: hash pinned, accuracy as recorded
pinned=$("$DFM" evaluator list | awk '$1 == "fmnist" {print $4}')
if [ "$pinned" = "-" ] || [ -z "$pinned" ]; then
    expect "no shipped classifier" 1 "no FD-FMNIST classifier is shipped" -- test fmnist --data "$DATA"
else
    "$DFM" evaluator test fmnist --data "$DATA" > "$TMP/shipped" 2>&1 || nok "shipped classifier loads" "$(cat "$TMP/shipped")"
    acc=$(sed -n 's/.*test accuracy \([0-9.]*\).*/\1/p' "$TMP/shipped")
    # another CPU kind may round a logit differently: allow a few of the 10000 test images
    if [ -n "$acc" ] && awk "BEGIN{d = $acc - $pinned; exit !(d < 0.0005 && d > -0.0005 && $acc >= 0.91)}"; then
        ok "shipped classifier: test accuracy $acc (recorded $pinned)"
    else nok "shipped classifier accuracy" "got '$acc', recorded $pinned"; fi
    cp "$ROOT/model/evaluators/fmnist.dfmw" "$TMP/root.dfmw"
    mkdir -p "$TMP/root/model/evaluators"
    cp "$TMP/root.dfmw" "$TMP/root/model/evaluators/fmnist.dfmw"
    printf 'x' | dd of="$TMP/root/model/evaluators/fmnist.dfmw" bs=1 seek=5000 conv=notrunc 2>/dev/null
    DFM_ROOT="$TMP/root" expect "damaged shipped classifier" 1 "SHA-256" -- test fmnist --data "$DATA"
fi

[ "$n_fail" -eq 0 ]
