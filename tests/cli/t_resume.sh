#!/bin/sh
# Checkpoints in dfm train: preempted-and-resumed runs bitwise equal to an uninterrupted one
# (SIGUSR1 at random moments, ten times), resume across 1/2/4 ranks with ZeRO-1 on and off,
# async saves, kill -9 inside the commit, a rank killed mid-step (no hang), a rank stopped mid-step
# (the watchdog), signals during start-up, SIGTERM and SIGINT,
# spec changes, resume never/must/--resume, metrics.jsonl continuation, and the export of a
# real U-Net checkpoint into the PyTorch reference model. Needs DFM and DFM_BIN; uses mpirun.
set -u
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TINY="$ROOT/tests/train/tiny-unet.yaml"
TMP=$(mktemp -d /tmp/dfm_resume_XXXXXX)
trap 'rm -rf "$TMP"' EXIT
DATA="$TMP/data"
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
MPIRUN="mpirun --oversubscribe --mca pml ob1 --mca btl self,vader --bind-to none"
PY=/usr/bin/python3
STEPS=8
n_fail=0
ok() { echo "ok - $1"; }
nok() { echo "not ok - $1"; n_fail=$((n_fail + 1)); }
hashes() { sed -n 's/.*"param_hash":"\([0-9a-f]*\)".*"ema_hash":"\([0-9a-f]*\)".*/\1 \2/p' "$1/final.json" 2>/dev/null; }
# the steps of metrics.jsonl, space-separated
steps_of() { sed -n 's/^{"step":\([0-9]*\),.*/\1/p' "$1/metrics.jsonl" | tr '\n' ' '; }
ALL_STEPS="1 2 3 4 5 6 7 8 "

# train NAME NP [--set ...]: the tiny U-Net, 8 steps, a checkpoint every 2 steps
train() {
    name=$1; np=$2; shift 2
    timeout 300 $MPIRUN -np "$np" "$DFM" train "$TINY" --set data.dir="$DATA" \
        --set run.out_dir="$TMP/$name" --set train.steps=$STEPS --set checkpoint.every=2 \
        --set train.check_every=0 "$@" >> "$TMP/$name.log" 2>&1
}

if train ref 2; then ok "reference run (8 steps, 2 ranks)"; else nok "reference run"; tail -5 "$TMP/ref.log"; fi
REF=$(hashes "$TMP/ref")
[ -n "$REF" ] || nok "reference run has no final.json"
if [ -f "$TMP/ref/ckpt/step-00000008/manifest.yaml" ] && [ -d "$TMP/ref/ckpt/step-00000006" ] &&
    [ "$(steps_of "$TMP/ref")" = "$ALL_STEPS" ] &&
    grep -q '"step":2,.*"checkpoint":{"step":2,"stall_s":' "$TMP/ref/metrics.jsonl"; then
    ok "checkpoints every 2 steps and at the end; metrics.jsonl records each save"
else nok "checkpoints or metrics of the reference run: $(ls "$TMP/ref/ckpt" | tr '\n' ' ')"; fi

# ---- SIGUSR1 at random moments, then resume: bitwise equal, ten times ------------------------
stopped=0
# The moments are spread over the reference run's own training time (wall_s of its step 7), so
# most signals land mid-run on an idle machine (8 tiny steps take well under a second) as on a
# loaded one; a signal after the last step boundary lets the run finish normally (exit 0).
span_ms=$(sed -n 's/^{"step":7,.*"wall_s":\([0-9.e+-]*\).*/\1/p' "$TMP/ref/metrics.jsonl" |
    awk '{ v = int($1 * 1000); print (v > 50 ? v : 50) }')
[ -n "$span_ms" ] || span_ms=1500
for i in 1 2 3 4 5 6 7 8 9 10; do
    name=usr1-$i
    r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
    delay=$(awk -v r="$r" -v s="$span_ms" 'BEGIN { printf "%.3f", (r % s) / 1000 }')
    timeout 300 $MPIRUN -np 2 "$DFM" train "$TINY" --set data.dir="$DATA" \
        --set run.out_dir="$TMP/$name" --set train.steps=$STEPS --set checkpoint.every=2 \
        --set train.check_every=0 > "$TMP/$name.log" 2>&1 &
    tpid=$!
    # a random moment of the training itself: the handlers are installed once every rank has
    # started (a signal during process start-up kills it, as for any program)
    for _ in $(seq 1 600); do grep -q "training tiny-unet" "$TMP/$name.log" && break; sleep 0.1; done
    sleep "$delay"
    mp=$(pgrep -P "$tpid")
    [ -n "$mp" ] && kill -USR1 "$mp" 2>/dev/null # mpirun forwards SIGUSR1 to every rank
    wait "$tpid"
    rc=$?
    # A signal that comes after both ranks finished meets mpirun in its own teardown, which no
    # longer forwards it and dies of it (138 = 128 + SIGUSR1): the run itself completed.
    if [ "$rc" -eq 138 ] && [ "$(grep -c "done: $STEPS steps" "$TMP/$name.log")" -ge 1 ] \
        && [ -f "$TMP/$name/weights.bin" ]; then
        rc=0
    fi
    [ "$rc" -eq 75 ] && stopped=$((stopped + 1))
    line=$(grep -c "stopped by SIGUSR1 after step" "$TMP/$name.log")
    if [ "$rc" -ne 75 ] && [ "$rc" -ne 0 ]; then
        nok "SIGUSR1 after ${delay}s: exit $rc"; tail -5 "$TMP/$name.log"; continue
    fi
    [ "$rc" -eq 75 ] && [ "$line" -ne 1 ] && nok "SIGUSR1 run $i: no 'stopped' line"
    train "$name" 2
    got=$(hashes "$TMP/$name")
    if [ "$got" = "$REF" ] && [ "$(steps_of "$TMP/$name")" = "$ALL_STEPS" ]; then
        ok "SIGUSR1 after ${delay}s (exit $rc), resumed: weights bitwise equal, metrics steps 1..8 once"
    else nok "SIGUSR1 after ${delay}s (exit $rc): $got vs $REF; steps $(steps_of "$TMP/$name")"; fi
done
[ "$stopped" -ge 3 ] && ok "$stopped of 10 runs were stopped mid-run by the signal" ||
    nok "only $stopped of 10 runs were stopped by the signal (timing)"

# ---- a run stopped at chosen steps continues on 1, 2, 4, 1 ranks, ZeRO-1 on and off ------------
# DFM_FAULT_SIGNAL_STEP=S: rank 0 sends itself SIGUSR1 during step S (a real signal, at a known step)
chain_ok=1
name=chain
for leg in "1 2 false" "2 4 true" "4 6 false" "1 0 true"; do
    set -- $leg
    np=$1; at=$2; z=$3
    if [ "$at" -gt 0 ]; then
        DFM_FAULT_SIGNAL_STEP=$at train "$name" "$np" --set train.zero1=$z; rc=$?
        want=75
    else
        train "$name" "$np" --set train.zero1=$z; rc=$?
        want=0
    fi
    if [ "$rc" -ne "$want" ]; then chain_ok=0; nok "chain leg np=$np stop=$at: exit $rc"; tail -5 "$TMP/$name.log"; fi
done
got=$(hashes "$TMP/$name")
if [ "$chain_ok" -eq 1 ] && [ "$got" = "$REF" ] && [ "$(steps_of "$TMP/$name")" = "$ALL_STEPS" ]; then
    ok "stopped at 2, 4, 6 and resumed on 2, 4, 1 ranks (ZeRO-1 on, off, on): bitwise equal"
else nok "rank-count chain: $got vs $REF"; fi
if grep -q "resuming from .*step-00000004: step 4 of 8 (saved on 2 ranks" "$TMP/$name.log"; then
    ok "resume says where it resumes from on one line"
else nok "no resume line"; fi

# ---- async saves --------------------------------------------------------------------------------
if DFM_FAULT_SIGNAL_STEP=5 train async 2 --set checkpoint.async=true --set checkpoint.every=1; then
    nok "async: the run was not stopped"
else
    train async 2 --set checkpoint.async=true --set checkpoint.every=1
    if [ "$(hashes "$TMP/async")" = "$REF" ] && grep -q '"checkpoint":{"step":[0-9]*,"stall_s"' "$TMP/async/metrics.jsonl"; then
        ok "async saves every step, stopped at 5 and resumed: bitwise equal; stalls in metrics.jsonl"
    else nok "async: $(hashes "$TMP/async") vs $REF"; tail -5 "$TMP/async.log"; fi
fi

# ---- kill -9 inside the commit of a training run, then resume ----------------------------------
DFM_CKPT_KILL_AT="manifest@0:4" train killc 2; rc=$?
if [ "$rc" -ne 0 ] && [ -d "$TMP/killc/ckpt/step-00000002" ] && [ ! -d "$TMP/killc/ckpt/step-00000004" ]; then
    train killc 2
    if [ "$(hashes "$TMP/killc")" = "$REF" ] && [ -z "$(find "$TMP/killc/ckpt" -name '*.tmp')" ]; then
        ok "kill -9 while committing step 4: resumed from step 2, bitwise equal, partial save cleaned"
    else nok "kill in commit: $(hashes "$TMP/killc") vs $REF"; fi
else nok "kill in commit: exit $rc, $(ls "$TMP/killc/ckpt" | tr '\n' ' ')"; fi

# ---- a rank killed mid-step ends the job ---------------------------------------------------------
timeout 300 $MPIRUN -np 2 "$DFM" train "$TINY" --set data.dir="$DATA" --set run.out_dir="$TMP/dead" \
    --set train.steps=100000 > "$TMP/dead.log" 2>&1 &
tpid=$!
for _ in $(seq 1 200); do [ -s "$TMP/dead/metrics.jsonl" ] && break; sleep 0.1; done
mp=$(pgrep -P "$tpid")
victim=$(pgrep -P "$mp" -f "dfm train" | tail -1)
start=$(date +%s)
[ -n "$victim" ] && kill -9 "$victim"
wait "$tpid"; rc=$?
secs=$(($(date +%s) - start))
if [ -n "$victim" ] && [ "$rc" -ne 0 ] && [ "$secs" -le 30 ]; then
    ok "a rank killed with SIGKILL mid-run: the job ended in ${secs}s (exit $rc)"
else nok "rank killed mid-run: victim '$victim', exit $rc after ${secs}s"; fi

# ---- a signal during start-up: kept, not fatal; the run stops before step 1 saving nothing -------
# Before the OpenMP wait-policy re-exec (forced: more threads than cores), which resets handlers:
# the blocked signal stays pending across it (DFM_FAULT_SIGNAL_STARTUP sends a real SIGUSR1).
env -u OMP_WAIT_POLICY DFM_FAULT_SIGNAL_STARTUP=exec timeout 300 "$DFM" train "$TINY" \
    --set data.dir="$DATA" --set run.out_dir="$TMP/early" --set train.threads=$(($(nproc) + 2)) \
    > "$TMP/early.log" 2>&1; rc=$?
if [ "$rc" -eq 75 ] && grep -q "OMP_WAIT_POLICY=passive" "$TMP/early.log" &&
    grep -q "stopped by SIGUSR1 before step 1 of [0-9]*, during start-up: nothing to save" "$TMP/early.log" &&
    [ ! -s "$TMP/early/metrics.jsonl" ] && [ ! -d "$TMP/early/ckpt" ]; then
    ok "SIGUSR1 before the wait-policy re-exec: exit 75 before step 1, nothing saved, one line"
else nok "SIGUSR1 before the re-exec: exit $rc"; tail -3 "$TMP/early.log"; fi
# On one rank of two, after the data loaded: every rank stops before step 1.
DFM_FAULT_SIGNAL_STARTUP=resume@1 timeout 300 $MPIRUN -np 2 "$DFM" train "$TINY" --set data.dir="$DATA" \
    --set run.out_dir="$TMP/early2" > "$TMP/early2.log" 2>&1; rc=$?
if [ "$rc" -eq 75 ] && grep -q "stopped by a signal on another rank before step 1" "$TMP/early2.log" &&
    [ ! -s "$TMP/early2/metrics.jsonl" ]; then
    ok "SIGUSR1 on rank 1 during start-up: both ranks stop before step 1 with exit 75"
else nok "SIGUSR1 on rank 1 during start-up: exit $rc"; tail -3 "$TMP/early2.log"; fi

# ---- a rank that hangs (SIGSTOP): the other one's watchdog ends the job -----------------------
# (mpirun ends a job whose rank died, not one whose rank stopped: only the watchdog can)
timeout 120 $MPIRUN -np 2 "$DFM" train "$TINY" --set data.dir="$DATA" --set run.out_dir="$TMP/hang" \
    --set train.steps=100000 --set checkpoint.every=0 --set train.watchdog=3 > "$TMP/hang.log" 2>&1 &
tpid=$!
for _ in $(seq 1 200); do [ -s "$TMP/hang/metrics.jsonl" ] && break; sleep 0.1; done
mp=$(pgrep -P "$tpid")
victim=$(pgrep -P "$mp" -f "dfm train" | tail -1)
start=$(date +%s)
[ -n "$victim" ] && kill -STOP "$victim"
wait "$tpid"; rc=$?
secs=$(($(date +%s) - start))
[ -n "$victim" ] && kill -9 "$victim" 2> /dev/null
if [ -n "$victim" ] && [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$secs" -le 20 ] &&
    grep -q "\[rank [01]\] error: no step boundary for [3-9] s (train.watchdog = 3): another rank has died or hangs" "$TMP/hang.log"; then
    ok "a rank stopped with SIGSTOP mid-run: the other rank's watchdog ended the job in ${secs}s (exit $rc)"
else nok "stopped rank: victim '$victim', exit $rc after ${secs}s"; tail -5 "$TMP/hang.log"; fi

# ---- SIGTERM and SIGINT to the ranks ----------------------------------------------------------------
for sig in TERM INT; do
    name=sig$sig
    timeout 300 $MPIRUN -np 2 "$DFM" train "$TINY" --set data.dir="$DATA" --set run.out_dir="$TMP/$name" \
        --set train.steps=100000 --set checkpoint.every=0 > "$TMP/$name.log" 2>&1 &
    tpid=$!
    for _ in $(seq 1 200); do [ -s "$TMP/$name/metrics.jsonl" ] && break; sleep 0.1; done
    mp=$(pgrep -P "$tpid")
    for r in $(pgrep -P "$mp" -f "dfm train"); do kill -$sig "$r"; done
    wait "$tpid"; rc=$?
    if [ "$rc" -eq 75 ] && grep -q "stopped by SIG$sig after step [0-9]* of 100000: checkpoint saved to .*step-" "$TMP/$name.log" &&
        "$DFM" ckpt verify "$TMP/$name" > /dev/null 2>&1; then
        ok "SIG$sig to every rank: checkpoint saved, one line, exit 75"
    else nok "SIG$sig: exit $rc"; tail -5 "$TMP/$name.log"; fi
done

# a second SIGINT ends the process at once, without saving. Both signals are sent just after a
# step boundary (the first metrics line: the handlers are installed by then; a signal sent during
# start-up may meet the loader's default action), and steps of 512 examples (~3 s idle) leave the
# second one well inside the step in which the first arrived.
timeout 300 "$DFM" train "$TINY" --set data.dir="$DATA" --set run.out_dir="$TMP/int2" \
    --set train.steps=100000 --set train.batch=512 --set checkpoint.every=0 > "$TMP/int2.log" 2>&1 &
tpid=$!
for _ in $(seq 1 1200); do [ -s "$TMP/int2/metrics.jsonl" ] && break; sleep 0.05; done
pid=$(pgrep -P "$tpid")
kill -INT "$pid"; sleep 0.3; kill -INT "$pid"
wait "$tpid"; rc=$?
if [ "$rc" -eq 130 ] && grep -q "second SIGINT" "$TMP/int2.log" && ! ls -d "$TMP/int2"/ckpt/step-* > /dev/null 2>&1; then
    ok "a second SIGINT exits at once (status 130, nothing saved)"
else nok "second SIGINT: exit $rc"; tail -3 "$TMP/int2.log"; ls "$TMP/int2/ckpt" 2> /dev/null; fi

# ---- spec changes -----------------------------------------------------------------------------------
cp -r "$TMP/ref" "$TMP/spec"
train spec 2 --set model.unet.channels=16 --set train.optimizer=adamw; rc=$?
if [ "$rc" -ne 0 ] && grep -q "model.unet.channels: 8 -> 16" "$TMP/spec.log" &&
    grep -q "train.optimizer: adam -> adamw" "$TMP/spec.log"; then
    ok "a changed shape and optimizer are refused with 'key: saved -> now'"
else nok "spec change: exit $rc"; tail -5 "$TMP/spec.log"; fi
: > "$TMP/spec.log"
if train spec 2 --set train.steps=10 --set train.log_every=3 &&
    grep -q "resume: train.log_every: 100 -> 3" "$TMP/spec.log" &&
    [ "$(steps_of "$TMP/spec")" = "$ALL_STEPS""9 10 " ]; then
    ok "harmless changes (more steps, logging) are allowed and logged; metrics continue to step 10"
else nok "harmless change"; tail -5 "$TMP/spec.log"; fi

# ---- resume never / must / --resume PATH ------------------------------------------------------------
train ref 2 --set checkpoint.resume=never; rc=$?
if [ "$rc" -ne 0 ] && grep -q "checkpoint.resume is never, but .* holds checkpoints" "$TMP/ref.log"; then
    ok "resume: never refuses to overwrite an earlier run's checkpoints"
else nok "resume never: exit $rc"; fi
train must 2 --set checkpoint.resume=must; rc=$?
if [ "$rc" -ne 0 ] && grep -q "checkpoint.resume is must" "$TMP/must.log"; then
    ok "resume: must fails without a checkpoint"
else nok "resume must: exit $rc"; fi
cp -r "$TMP/ref" "$TMP/pick"
if timeout 300 $MPIRUN -np 2 "$DFM" train "$TINY" --set data.dir="$DATA" --set run.out_dir="$TMP/pick" \
    --set train.steps=$STEPS --set checkpoint.every=2 --set train.check_every=0 \
    --resume "$TMP/pick/ckpt/step-00000004" > "$TMP/pick.log" 2>&1 &&
    grep -q "resuming from $TMP/pick/ckpt/step-00000004" "$TMP/pick.log" &&
    [ "$(hashes "$TMP/pick")" = "$REF" ] && [ "$(steps_of "$TMP/pick")" = "$ALL_STEPS" ]; then
    ok "--resume PATH continues from that checkpoint (metrics past it dropped), bitwise equal"
else nok "--resume PATH"; tail -5 "$TMP/pick.log"; fi
if train ref 2 --set checkpoint.resume=never --force && [ "$(steps_of "$TMP/ref")" = "$ALL_STEPS" ] &&
    [ "$(hashes "$TMP/ref")" = "$REF" ]; then
    ok "resume: never with --force starts over (one coherent metrics.jsonl)"
else nok "resume never --force"; fi

# ---- a real U-Net checkpoint exported to safetensors loads into the PyTorch model ----------------
if "$DFM" ckpt export -o "$TMP/ema.safetensors" "$TMP/ref" > "$TMP/export.log" 2>&1 &&
    "$DFM" ckpt export --live -o "$TMP/live.safetensors" "$TMP/ref" >> "$TMP/export.log" 2>&1 &&
    "$DFM" ckpt export -o "$TMP/w.bin" "$TMP/ref" >> "$TMP/export.log" 2>&1 &&
    "$DFM_BIN/tools/wcmp" "$TMP/w.bin" "$TMP/ref/weights.bin" 0 > /dev/null; then
    ok "export: weights.bin from the last checkpoint equals the run's weights.bin"
else nok "export"; cat "$TMP/export.log"; fi
if $PY -c "import numpy" 2> /dev/null; then
    if $PY - "$TMP/live.safetensors" "$TMP/ref/weights.bin" <<'PYEOF'
import json, struct, sys
import numpy as np
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
meta = h.pop("__metadata__")
data = b[8 + n:]
w = open(sys.argv[2], "rb").read()
nt, nparam = struct.unpack("<QQ", w[16:32])
off = 40
for _ in range(nt):
    (L,) = struct.unpack("<I", w[off:off + 4]); off += 4 + L + 4 + 16 + 16
params = np.frombuffer(w[off:off + 4 * nparam], dtype="<f4")
flat = np.concatenate([np.frombuffer(data[a:e], dtype="<f4") for a, e in
                       (v["data_offsets"] for v in h.values())])
assert meta["weights"] == "live" and flat.shape == params.shape and np.array_equal(flat, params)
assert h["conv_in.weight"]["shape"] == [8, 1, 3, 3], h["conv_in.weight"]
PYEOF
    then ok "export: safetensors read with json+numpy equals the live weights of weights.bin"
    else nok "export: json+numpy check"; fi
else ok "export: json+numpy check skipped (no python3-numpy)"; fi
if $PY -c "import torch" 2> /dev/null; then
    if $PY - "$ROOT/tests/torch" "$TMP/ema.safetensors" <<'PYEOF'
import json, struct, sys
import torch
sys.path.insert(0, sys.argv[1])
import unet_torch
b = open(sys.argv[2], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n]); h.pop("__metadata__")
sd = {k: torch.frombuffer(bytearray(b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]),
                          dtype=torch.float32).reshape(v["shape"]) for k, v in h.items()}
m = unet_torch.UNet(dict(in_ch=1, img_size=28, ch=8, ch_mult=[1, 2], num_res_blocks=1,
                         attn_res=[14], heads=2, dropout=0.0, groups=4, temb_dim=8,
                         temb_hidden=32, num_classes=0))  # tests/train/tiny-unet.yaml
m.load_state_dict(sd, strict=True)
x = torch.zeros(2, 1, 28, 28); t = torch.tensor([1.0, 500.0])
assert torch.isfinite(m(x, t)).all()
PYEOF
    then ok "export: the EMA safetensors loads with load_state_dict(strict=True) into the PyTorch U-Net"
    else nok "export: torch load_state_dict"; fi
else ok "export: torch check skipped (no python3-torch)"; fi

[ "$n_fail" -eq 0 ]
