#!/bin/sh
# tests/cli/t_validate.sh - `dfm validate` end to end: every shipped job validates and its output
# re-validates to the same text; every malformed spec in tests/io/bad_specs exits 2 with one line
# on stderr naming the expected file:line:col; --help, --set and usage errors; the key tables of
# jobs/README.md are what the schema generates.
# Needs $DFM (path to bin/dfm); prints "ok - name" / "not ok - name"; exits 1 if any check failed.

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DFM=${DFM:-$ROOT/bin/dfm}
cd "$ROOT" || exit 1
TMP=$(mktemp -d "${TMPDIR:-/tmp}/dfm_validate.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT INT TERM
fails=0
count=0

ok() { count=$((count + 1)); echo "ok - $1"; }
notok() {
    count=$((count + 1)); fails=$((fails + 1)); echo "not ok - $1"
    [ -n "$2" ] && printf '#   %s\n' "$2"
    return 0
}
lines() { wc -l < "$1" | tr -d ' '; }

# ---- shipped jobs -------------------------------------------------------------------------------
for f in jobs/*.yaml; do
    name="validate $f"
    "$DFM" validate "$f" > "$TMP/out1.yaml" 2> "$TMP/err1"; rc=$?
    if [ $rc -ne 0 ]; then notok "$name" "exit $rc: $(cat "$TMP/err1")"; continue; fi
    if [ -s "$TMP/err1" ]; then notok "$name" "unexpected stderr: $(cat "$TMP/err1")"; continue; fi
    if ! grep -q '^train:' "$TMP/out1.yaml"; then notok "$name" "no train section in the output"; continue; fi
    "$DFM" validate "$TMP/out1.yaml" > "$TMP/out2.yaml" 2> "$TMP/err2"; rc=$?
    if [ $rc -ne 0 ]; then notok "$name" "resolved output does not validate: $(cat "$TMP/err2")"; continue; fi
    if ! cmp -s "$TMP/out1.yaml" "$TMP/out2.yaml"; then notok "$name" "re-validated output differs"; continue; fi
    ok "$name (round trip)"
done

# ---- malformed specs ----------------------------------------------------------------------------
BOM=$(printf '\357\273\277')
nbad=0
for f in tests/io/bad_specs/*.yaml; do
    nbad=$((nbad + 1))
    name="reject $f"
    exp=$(head -n 1 "$f" | sed "s/^$BOM//; s/^# expect: //")
    loc=${exp%% *}
    frag=${exp#* }
    "$DFM" validate "$f" > "$TMP/out" 2> "$TMP/err"; rc=$?
    if [ $rc -ne 2 ]; then notok "$name" "exit $rc, want 2: $(cat "$TMP/err")"; continue; fi
    if [ "$(lines "$TMP/err")" != 1 ]; then notok "$name" "stderr is not one line: $(cat "$TMP/err")"; continue; fi
    if [ -s "$TMP/out" ]; then notok "$name" "wrote to stdout"; continue; fi
    line=$(cat "$TMP/err")
    case "$line" in
    "dfm: error: $f:$loc: "*) ;;
    *) notok "$name" "want 'dfm: error: $f:$loc: ...', got '$line'"; continue ;;
    esac
    case "$line" in
    *"$frag"*) ok "$name ($loc)" ;;
    *) notok "$name" "want '$frag' in '$line'" ;;
    esac
done
if [ $nbad -ge 24 ]; then ok "at least 24 malformed specs ($nbad)"; else notok "at least 24 malformed specs" "found $nbad"; fi

# ---- options ------------------------------------------------------------------------------------
"$DFM" validate --help > "$TMP/out" 2> "$TMP/err"; rc=$?
if [ $rc -eq 0 ] && grep -q '^usage: dfm validate' "$TMP/out"; then ok "validate --help"; else notok "validate --help" "exit $rc"; fi

"$DFM" help validate > "$TMP/out" 2>&1; rc=$?
if [ $rc -eq 0 ] && grep -q '^usage: dfm validate' "$TMP/out"; then ok "help validate"; else notok "help validate" "exit $rc"; fi

"$DFM" validate --frobnicate jobs/quickstart.yaml > "$TMP/out" 2> "$TMP/err"; rc=$?
if [ $rc -eq 2 ] && grep -q 'usage: dfm validate' "$TMP/err" && grep -q "unknown option '--frobnicate'" "$TMP/err" && [ ! -s "$TMP/out" ]
then ok "unknown flag exits 2 with usage"; else notok "unknown flag exits 2 with usage" "exit $rc: $(cat "$TMP/err")"; fi

"$DFM" validate > /dev/null 2> "$TMP/err"; rc=$?
if [ $rc -eq 2 ]; then ok "missing JOB.yaml exits 2"; else notok "missing JOB.yaml exits 2" "exit $rc"; fi

"$DFM" validate jobs/quickstart.yaml jobs/fmnist-ddpm.yaml > /dev/null 2> "$TMP/err"; rc=$?
if [ $rc -eq 2 ]; then ok "two job specs exit 2"; else notok "two job specs exit 2" "exit $rc"; fi

"$DFM" validate jobs/quickstart.yaml --set > /dev/null 2> "$TMP/err"; rc=$?
if [ $rc -eq 2 ]; then ok "--set without a value exits 2"; else notok "--set without a value exits 2" "exit $rc"; fi

"$DFM" validate "$TMP/does-not-exist.yaml" > /dev/null 2> "$TMP/err"; rc=$?
if [ $rc -eq 1 ] && grep -q "^dfm: error: cannot open job spec" "$TMP/err"; then ok "missing file exits 1"
else notok "missing file exits 1" "exit $rc: $(cat "$TMP/err")"; fi

"$DFM" frobnicate > /dev/null 2> "$TMP/err"; rc=$?
if [ $rc -eq 2 ] && grep -q '^usage: dfm' "$TMP/err"; then ok "unknown subcommand exits 2 with usage"
else notok "unknown subcommand exits 2 with usage" "exit $rc"; fi

# ---- --set --------------------------------------------------------------------------------------
"$DFM" validate jobs/quickstart.yaml --set train.lr=1e-4 --set=train.steps=700 \
    --set model.unet.ch_mult=[1,2,3] --set run.name=renamed > "$TMP/out" 2> "$TMP/err"; rc=$?
if [ $rc -eq 0 ] && grep -q '^  lr: 0.0001$' "$TMP/out" && grep -q '^  steps: 700$' "$TMP/out" \
   && grep -q '^    ch_mult: \[1, 2, 3\]$' "$TMP/out" && grep -q '^  out_dir: runs/renamed$' "$TMP/out" \
   && grep -q '^  dir: runs/renamed/ckpt$' "$TMP/out"
then ok "--set overrides (both spellings, lists, derived paths follow)"
else notok "--set overrides" "exit $rc: $(cat "$TMP/err")"; fi

"$DFM" validate jobs/quickstart.yaml --set train.lr=abc > "$TMP/out" 2> "$TMP/err"; rc=$?
if [ $rc -eq 2 ] && [ "$(lines "$TMP/err")" = 1 ] && \
   grep -q '^dfm: error: --set train.lr=abc: train.lr: expected a number' "$TMP/err"
then ok "--set with a bad value exits 2 naming the assignment"
else notok "--set with a bad value" "exit $rc: $(cat "$TMP/err")"; fi

"$DFM" validate jobs/quickstart.yaml --set trian.lr=1 > "$TMP/out" 2> "$TMP/err"; rc=$?
if [ $rc -eq 2 ] && grep -q "did you mean 'train.lr'" "$TMP/err"; then ok "--set unknown key suggests"
else notok "--set unknown key suggests" "exit $rc: $(cat "$TMP/err")"; fi

"$DFM" validate jobs/quickstart.yaml --set train.micro_batch=5 > "$TMP/out" 2> "$TMP/err"; rc=$?
if [ $rc -eq 2 ] && grep -q '^dfm: error: --set train.micro_batch=5: train.micro_batch: 5 does not divide' "$TMP/err"
then ok "--set cross-field error names the assignment"
else notok "--set cross-field error" "exit $rc: $(cat "$TMP/err")"; fi

# the memory line: the arena's plan, growing with the micro-batch
m8=$("$DFM" validate jobs/bench-fmnist-small.yaml --set train.micro_batch=8 2>&1 | sed -n 's/^# memory: needs about \([0-9]*\) MiB per rank at micro-batch 8$/\1/p')
"$DFM" validate jobs/bench-fmnist-small.yaml --set train.micro_batch=16 > "$TMP/mem16" 2>&1
m16=$(sed -n 's/^# memory: needs about \([0-9]*\) MiB per rank at micro-batch 16$/\1/p' "$TMP/mem16")
if [ -n "$m8" ] && [ -n "$m16" ] && [ "$m16" -gt "$m8" ]; then ok "memory estimate per rank ($m8, $m16 MiB)"
else notok "memory estimate per rank" "micro-batch 8: '$m8', 16: '$m16'"; fi
# and its categories, which add up to it (each rounded to 0.1 MiB, the total to 1)
cat=$(sed -n 's/^# memory by category: parameters and gradients \([0-9.]*\) MiB, optimizer state \([0-9.]*\) MiB, activations \([0-9.]*\) MiB, workspace \([0-9.]*\) MiB$/\1 \2 \3 \4/p' "$TMP/mem16")
if [ -n "$cat" ] && [ -n "$m16" ] && echo "$cat $m16" | awk '{ s = $1 + $2 + $3 + $4; d = s - $5; exit !(d < 1 && d > -1 && $1 > 0 && $2 > 0 && $3 > 0) }'
then ok "memory by category adds up ($cat MiB; $m16 in all)"
else notok "memory by category" "'$cat' against '$m16'"; fi

# ---- the key tables of jobs/README.md are generated from the schema ------------------------------
JOBDOC=${DFM_BIN:-$ROOT/bin}/tools/jobdoc
if [ ! -x "$JOBDOC" ]; then notok "jobs/README.md key tables match the schema" "$JOBDOC not built"
elif ! "$JOBDOC" jobs/README.md > "$TMP/readme" 2> "$TMP/err"; then
    notok "jobs/README.md key tables match the schema" "$(cat "$TMP/err")"
elif ! cmp -s "$TMP/readme" jobs/README.md; then
    notok "jobs/README.md key tables match the schema" \
        "they differ from io/jobspec_keys.c; run 'make docs': $(diff jobs/README.md "$TMP/readme" | head -6 | tr '\n' ' ')"
else ok "jobs/README.md key tables match the schema"; fi

echo "# $count checks, $fails failed"
[ $fails -eq 0 ]
