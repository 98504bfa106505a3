#!/bin/sh
# tests/bench/run.sh - the benchmarks of `make bench`: dfm next to PyTorch on this machine.
#
#   DFM=bin/dfm DFM_BIN=bin sh tests/bench/run.sh        (make bench sets both)
#   BENCH_QUICK=1 ...                                     smoke version, about 5 minutes
#   BENCH_SECTIONS="model large scaling dp parity sample"  which sections to run (default all)
#
# Sections (every ratio is formed from numbers measured in this same run):
#   1. model: fmnist-small U-Net, batch 64: train step (forward + backward + Adam) and forward
#      images/s at 1 and 2 threads, dfm (bin/bench/bench_model) and PyTorch
#      (tests/bench/bench_torch.py), each engine and thread count in its own process so that
#      the peak RSS (/usr/bin/time %M) is its own, in MODEL_ROUNDS rounds (3; quick 1) in which
#      the engines take turns (the first to run alternates), so that a slow spell of this
#      shared machine falls on both; images/s from the median over every round's repetitions; dfm's GFLOP/s next to the GEMM ceilings of
#      every engine (dfm's own kernels, OpenBLAS, oneDNN) on the fmnist-small convolution shapes,
#      and which engine and kernel dfm's layers use (bin/bench/bench_sgemm).
#   large: the CIFAR-10 DDPM U-Net (jobs/cifar10-ddpm.yaml, 35.7M parameters) at batch
#      BENCH_LARGE_BATCH (16; quick 2), training step and forward images/s and peak RSS, dfm
#      and PyTorch, 1 and 2 threads.
#   scaling: dfm beside PyTorch (1 thread, CPU time) against batch (16, 32, 64, 128 at width
#      64, 28x28), base width (32, 64, 128 at batch 32) and image size (28, 32, 64 at batch
#      32) of the fmnist-small U-Net: images/s and peak RSS, table and build/bench/scaling.png
#      (when python3-matplotlib is installed); and `dfm train` as 1 rank x 2 threads and 2 ranks
#      x 1 thread at base widths 32 and 64.
#   2. data parallel: `dfm train jobs/bench-fmnist-small.yaml` as 1 rank x 2 threads and
#      2 ranks x 1 thread (deterministic and overlap reduction), in rounds that take turns,
#      images/s from the median of the per-step wall_s deltas of metrics.jsonl pooled over the
#      rounds (each run's first step discarded as warm-up); bin/bench/bench_reduce on 2 ranks for
#      the communication time per step and the fraction hidden by overlap.
#   3. loss parity: the quick start's DDPM twin (jobs/quickstart-ddpm.yaml) trained by dfm and by tests/torch/train_quickstart.py
#      from the same resolved spec, with seeds 1, 2 and 3 (BENCH_PARITY_SEEDS); mean over the
#      seeds of the loss over the last 100 of 300 steps, within 5%.
#   4. sampling: `dfm sample` (1 rank x 2 threads, and 2 ranks x 1 thread) next to
#      tests/bench/sample_torch.py (PyTorch, 2 threads): the fmnist-small U-Net with the same
#      weights (one training step of jobs/bench-fmnist-small.yaml), DDIM eta 0 from the same
#      x_T (--noise), images/s and peak RSS of each process, and the largest difference of the
#      two engines' samples; the goal is dfm >= 2x PyTorch.
# Raw outputs go to build/bench/raw/, the tables to standard output and build/bench/report.md
# (tests/bench/report.py formats them). Exit status: 0, or 1 when a command failed or the
# loss parity check failed.
set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
DFM=${DFM:-$ROOT/bin/dfm}
DFM_BIN=${DFM_BIN:-$ROOT/bin}
PY=/usr/bin/python3
OUT=${BENCH_OUT:-$ROOT/build/bench}
RAW=$OUT/raw
QUICK=${BENCH_QUICK:-0}
MPIRUN=${MPIRUN:-mpirun}
MPIFLAGS=${DFM_MPIRUN_FLAGS:---oversubscribe --mca pml ob1 --mca btl self,vader --bind-to none}
if [ "$(id -u)" = 0 ]; then
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    export OMPI_ALLOW_RUN_AS_ROOT OMPI_ALLOW_RUN_AS_ROOT_CONFIRM
fi

if [ "$QUICK" = 1 ]; then
    MODEL_B=16 MODEL_REPS=2 MODEL_ROUNDS=1 SGEMM_REPS=3
    LARGE_B=${BENCH_LARGE_BATCH:-2} LARGE_REPS=1
    SCALE_B="16 32" SCALE_CH="32 64" SCALE_IMG="28 32" SCALE_FIX_B=16 SCALE_REPS=1
    SDP_STEPS=3
    DP_B=16 DP_STEPS=3 DP_ROUNDS=1 REDUCE_STEPS=5
    P_STEPS=40 P_LAST=20 P_WARMUP=20 P_SEEDS=1
    S_N=16 S_STEPS=4 S_B=16
else
    MODEL_B=64 MODEL_REPS=3 MODEL_ROUNDS=3 SGEMM_REPS=7
    LARGE_B=${BENCH_LARGE_BATCH:-16} LARGE_REPS=2
    SCALE_B="16 32 64 128" SCALE_CH="32 64 128" SCALE_IMG="28 32 64" SCALE_FIX_B=32 SCALE_REPS=2
    SDP_STEPS=4
    DP_B=64 DP_STEPS=4 DP_ROUNDS=2 REDUCE_STEPS=10
    P_STEPS=300 P_LAST=100 P_WARMUP=100 P_SEEDS=${BENCH_PARITY_SEEDS:-"1 2 3"}
    S_N=128 S_STEPS=20 S_B=64
fi
SDP_B=$DP_B
P_THREADS=${BENCH_PARITY_THREADS:-2}
SECTIONS=${BENCH_SECTIONS:-model large scaling dp parity sample}
want() { case " $SECTIONS " in *" $1 "*) return 0 ;; esac; return 1; }
for s in $SECTIONS; do
    case $s in model|large|scaling|dp|parity|sample) ;; *) echo "bench: unknown section '$s' in BENCH_SECTIONS (model large scaling dp parity sample)" >&2; exit 2 ;; esac
done

for f in "$DFM" "$DFM_BIN/bench/bench_model" "$DFM_BIN/bench/bench_sgemm" \
         "$DFM_BIN/bench/bench_reduce"; do
    [ -x "$f" ] || { echo "bench: $f is missing (run 'make bench')" >&2; exit 1; }
done
"$PY" -c 'import torch, numpy' 2>/dev/null ||
    { echo "bench: $PY cannot import torch and numpy (apt-get install python3-torch)" >&2; exit 1; }

rm -rf "$RAW" "$OUT/dp" "$OUT/parity-dfm" "$OUT/sample"
mkdir -p "$RAW" "$OUT/dp" || exit 1
FAILED=0
T_START=$(date +%s)

# note: one line into raw/env.txt and onto the terminal
note() { echo "$*" | tee -a "$RAW/env.txt"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
# run NAME CMD...: stdout+stderr to raw/NAME.txt, peak RSS to raw/NAME.time (/usr/bin/time, or
# the same through getrusage where the time package is missing); says how long
run() {
    name=$1; shift
    t0=$(date +%s)
    echo "  $name: $*" | tee -a "$RAW/commands.txt"
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -f "maxrss_kb %M elapsed_s %e" -o "$RAW/$name.time" "$@" > "$RAW/$name.txt" 2>&1
    else
        "$PY" "$ROOT/tests/bench/peakrss.py" -o "$RAW/$name.time" "$@" > "$RAW/$name.txt" 2>&1
    fi
    rc=$?
    echo "    $(( $(date +%s) - t0 )) s, load $(load)"
    if [ $rc -ne 0 ]; then
        echo "bench: $name failed (exit $rc); last lines of $RAW/$name.txt:" >&2
        tail -15 "$RAW/$name.txt" >&2
        FAILED=1
    fi
    return $rc
}

note "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
note "host: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) cores"
note "load at start: $(load)"
note "mode: $( [ "$QUICK" = 1 ] && echo 'quick (BENCH_QUICK=1: smaller batches, fewer repetitions and steps)' || echo full)"
note "dfm: $("$DFM" --version 2>&1 | head -1)"
note "torch: $("$PY" -c 'import torch; print(torch.__version__)')"
"$DFM" validate jobs/bench-fmnist-small.yaml > "$RAW/bench-resolved.yaml" || FAILED=1
note "model: $(head -1 "$RAW/bench-resolved.yaml" | sed 's/^# model: //')"

if want model; then
echo "== 1. model throughput (batch $MODEL_B, $MODEL_ROUNDS round(s) of $MODEL_REPS repetitions after a warm-up, engines taking turns)"
model_run() { # ENGINE THREADS ROUND
    if [ "$1" = dfm ]; then
        OMP_NUM_THREADS=$2 run model-dfm-$2-r$3 "$DFM_BIN/bench/bench_model" "$MODEL_B" "$2" "$MODEL_REPS"
    else
        OMP_NUM_THREADS=$2 run model-torch-$2-r$3 "$PY" tests/bench/bench_torch.py "$MODEL_B" "$2" "$MODEL_REPS"
    fi
}
r=1
while [ "$r" -le "$MODEL_ROUNDS" ]; do
    if [ $((r % 2)) = 1 ]; then order="dfm torch"; else order="torch dfm"; fi
    for th in 1 2; do
        for e in $order; do model_run "$e" "$th" "$r"; done
    done
    r=$((r + 1))
done
run sgemm "$DFM_BIN/bench/bench_sgemm" 1,2 fmnist "$SGEMM_REPS"
fi

if want large; then
echo "== large model: CIFAR-10 DDPM U-Net, batch $LARGE_B (median of $LARGE_REPS after a warm-up)"
for th in 1 2; do
    OMP_NUM_THREADS=$th run large-dfm-$th "$DFM_BIN/bench/bench_model" "$LARGE_B" "$th" "$LARGE_REPS" cifar10-ddpm
    OMP_NUM_THREADS=$th run large-torch-$th "$PY" tests/bench/bench_torch.py "$LARGE_B" "$th" "$LARGE_REPS" cifar10-ddpm
done
fi

if want scaling; then
echo "== scaling: batch ($SCALE_B), width ($SCALE_CH), image size ($SCALE_IMG); 1 thread, median of $SCALE_REPS"
# scale NAME BATCH MODEL: dfm and PyTorch, each in its own process (its own peak RSS)
scale() {
    OMP_NUM_THREADS=1 run "scale-dfm-$1" "$DFM_BIN/bench/bench_model" "$2" 1 "$SCALE_REPS" "$3"
    OMP_NUM_THREADS=1 run "scale-torch-$1" "$PY" tests/bench/bench_torch.py "$2" 1 "$SCALE_REPS" "$3"
}
for b in $SCALE_B; do scale "b$b" "$b" fmnist-small; done
for ch in $SCALE_CH; do scale "ch$ch" "$SCALE_FIX_B" "fmnist-small,ch=$ch"; done
for img in $SCALE_IMG; do scale "img$img" "$SCALE_FIX_B" "fmnist-small,img=$img"; done
fi

# dp NAME NP THREADS REDUCE [STEPS BATCH [--set k=v ...]]: `dfm train` of the bench job
dp() {
    name=$1 np=$2 th=$3 red=$4 steps=${5:-$DP_STEPS} batch=${6:-$DP_B}
    shift 4; [ $# -ge 2 ] && shift 2
    # shellcheck disable=SC2086  # MPIFLAGS is a word list on purpose
    OMP_NUM_THREADS=$th run "dp-$name" "$MPIRUN" -np "$np" $MPIFLAGS "$DFM" train \
        jobs/bench-fmnist-small.yaml --set train.steps="$steps" --set train.batch="$batch" \
        --set train.threads="$th" --set train.reduce="$red" --set train.log_every=1 \
        --set run.out_dir="$OUT/dp/$name" --set checkpoint.resume=never \
        --set data.dir="$OUT/data" --set sample.count=1 --set sample.steps=1 "$@"
}
if want scaling; then
echo "== scaling: data-parallel layouts at two model sizes (global batch $SDP_B, $SDP_STEPS steps)"
for ch in 32 64; do
    dp "scale-ch$ch-np1x2" 1 2 deterministic "$SDP_STEPS" "$SDP_B" --set model.unet.channels=$ch
    dp "scale-ch$ch-np2x1" 2 1 deterministic "$SDP_STEPS" "$SDP_B" --set model.unet.channels=$ch
done
fi

if want dp; then
echo "== 2. data-parallel training (fmnist-small, global batch $DP_B, $DP_ROUNDS rounds of $DP_STEPS steps)"
# rounds: the three layouts take turns, so a change in the machine's load hits them alike
r=1
while [ $r -le $DP_ROUNDS ]; do
    dp np1x2-det-r$r 1 2 deterministic
    dp np2x1-det-r$r 2 1 deterministic
    dp np2x1-overlap-r$r 2 1 overlap
    r=$((r + 1))
done
NPARAMS=$(head -1 "$RAW/bench-resolved.yaml" | sed -n 's/.* \([0-9][0-9]*\) parameters.*/\1/p')
# shellcheck disable=SC2086
OMP_NUM_THREADS=1 run reduce "$MPIRUN" -np 2 $MPIFLAGS "$DFM_BIN/bench/bench_reduce" \
    "${NPARAMS:-6469889}" "$REDUCE_STEPS"
fi

if want parity; then
echo "== 3. loss parity with PyTorch (quickstart, $P_STEPS steps, mean of the last $P_LAST)"
PSET="--set train.steps=$P_STEPS --set train.warmup=$P_WARMUP --set train.threads=$P_THREADS
      --set sample.count=4 --set sample.steps=2 --set checkpoint.every=0
      --set checkpoint.resume=never --set run.out_dir=$OUT/parity-dfm --set data.dir=$OUT/data"
# shellcheck disable=SC2086  # PSET is a word list on purpose
"$DFM" validate jobs/quickstart-ddpm.yaml $PSET > "$RAW/quickstart-resolved.yaml" || FAILED=1
# One seed gives a standard error of about 3% on the difference of the two means, so the
# engines are compared on the per-step losses averaged over several seeds (P_SEEDS).
rm -f "$RAW"/parity-dfm-*.jsonl "$RAW"/parity-torch-*.jsonl
for seed in $P_SEEDS; do
    rm -rf "$OUT/parity-dfm"
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=$P_THREADS run "parity-dfm-$seed" "$DFM" train jobs/quickstart-ddpm.yaml $PSET \
        --set run.seed="$seed"
    cp "$OUT/parity-dfm/metrics.jsonl" "$RAW/parity-dfm-$seed.jsonl" 2>/dev/null
    OMP_NUM_THREADS=$P_THREADS run "parity-torch-$seed" "$PY" tests/torch/train_quickstart.py \
        "$RAW/quickstart-resolved.yaml" --last "$P_LAST" --threads "$P_THREADS" --seed "$seed" \
        --jsonl "$RAW/parity-torch-$seed.jsonl"
done
fi

if want sample; then
echo "== 4. sampling: dfm sample vs PyTorch (fmnist-small, DDIM eta 0, $S_N samples, $S_STEPS steps, batch $S_B)"
SD=$OUT/sample
mkdir -p "$SD"
# the weights' values do not change the speed; one step makes a run directory with an EMA
OMP_NUM_THREADS=2 run sample-weights "$DFM" train jobs/bench-fmnist-small.yaml --set train.steps=1 \
    --set run.out_dir="$SD/run" --set checkpoint.every=0 --set checkpoint.resume=never \
    --set sample.count=1 --set sample.steps=1 --set data.dir="$OUT/data" --set train.threads=2
"$PY" -c 'import sys, numpy as np; np.save(sys.argv[1], np.random.default_rng(0).standard_normal((int(sys.argv[2]), 1, 28, 28)).astype(np.float32))' \
    "$SD/noise.npy" "$S_N" || FAILED=1
SARGS="--noise $SD/noise.npy --sampler ddim --eta 0 --steps $S_STEPS --timesteps uniform --set sample.clip_x0=true --set sample.batch=$S_B --chunk $S_B"
# shellcheck disable=SC2086  # SARGS and MPIFLAGS are word lists on purpose
OMP_NUM_THREADS=2 run sample-dfm-1x2 "$DFM" sample "$SD/run" $SARGS --set train.threads=2 --out "$SD/dfm.npy"
# shellcheck disable=SC2086
OMP_NUM_THREADS=1 run sample-dfm-2x1 "$MPIRUN" -np 2 $MPIFLAGS "$DFM" sample "$SD/run" $SARGS \
    --set train.threads=1 --out "$SD/dfm2.npy"
OMP_NUM_THREADS=2 run sample-torch "$PY" tests/bench/sample_torch.py "$SD/run/weights.bin" \
    "$SD/noise.npy" "$S_STEPS" "$S_B" 2 "$SD/torch.npy"
"$PY" -c 'import sys, numpy as np; a, b = np.load(sys.argv[1]), np.load(sys.argv[2]); print("max |dfm - torch| %.3g" % float(np.abs(a.reshape(b.shape) - b).max()))' \
    "$SD/dfm.npy" "$SD/torch.npy" > "$RAW/sample-diff.txt" 2>&1 || FAILED=1
fi

note "load at end: $(load)"
note "total: $(( $(date +%s) - T_START )) s"
"$PY" tests/bench/report.py "$OUT" --last "$P_LAST" --dp-batch "$DP_B" --model-batch "$MODEL_B" \
    --quick "$QUICK" --sections "$SECTIONS" --large-batch "$LARGE_B" --scale-batch "$SCALE_FIX_B"
rc=$?
[ $rc -eq 0 ] || FAILED=1
[ $FAILED -eq 0 ] || { echo "bench: FAILED (see above)" >&2; exit 1; }
exit 0
