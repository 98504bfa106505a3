#!/bin/sh
# tests/cli/t_sde.sh - the continuous-time (score/SDE) objective end to end on 2-D data: a small
# MLP trained by denoising score matching on the VP SDE learns in a few hundred steps (its
# samples come within a stated sliced Wasserstein distance of held-out data, an untrained one is
# far off); every SDE sampler (reverse-SDE Euler-Maruyama, predictor-corrector, annealed
# Langevin, the PF-ODE by Heun and by adaptive RK45) draws byte-identical samples on 1, 2 and 4
# ranks; a VE SDE with a score-predicting network trains on 2 ranks; `dfm eval --metrics nll,elbo`
# gives the same likelihoods on 1 and 2 ranks for SDE, DDPM and flow models on 2-D data and for a
# tiny U-Net on Fashion-MNIST (bits/dim beside the 8 bits/dim baseline).
# Needs $DFM; prints "ok - name" / "not ok - name"; exits 1 if any check failed.

# Open MPI allocates at start-up without freeing, from modules LeakSanitizer cannot name
# (open-mpi/ompi#6242): under `make asan`, leak checking is off for processes that start MPI.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DFM=${DFM:-$ROOT/bin/dfm}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/dfm_sde.XXXXXX") || exit 1
export DFM_ROOT="$ROOT"
trap 'rm -rf "$TMP"' EXIT INT TERM
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
MPIRUN="mpirun --oversubscribe --mca pml ob1 --mca btl self,vader --bind-to none"
export OMP_NUM_THREADS=1
n_fail=0
ok() { echo "ok - $1"; }
nok() { echo "not ok - $1"; [ -n "$2" ] && printf '#   %s\n' "$2"; n_fail=$((n_fail + 1)); }
SMALL="--set train.batch=256 --set train.micro_batch=128 --set train.lr=2e-3 \
--set model.mlp.hidden=128 --set model.mlp.layers=3 --set sample.count=1024 --set sample.batch=1024 \
--set sample.steps=100 --set checkpoint.every=0"

# final.json's SW2 ratio through a strict JSON parser
ratio_of() {
    /usr/bin/python3 -c 'import json, sys
def bad(c): raise ValueError(c)
j = json.loads(open(sys.argv[1]).read(), parse_constant=bad)
print(j["swd_ratio"])' "$1" 2>/dev/null
}

# 1. it learns: 400 steps against 1
for st in 1 400; do
    # shellcheck disable=SC2086
    timeout 600 "$DFM" train "$ROOT/jobs/toy2d-sde-vp.yaml" --set run.out_dir="$TMP/vp$st" \
        --set train.steps=$st $SMALL > "$TMP/vp$st.log" 2>&1 || nok "train toy2d-sde-vp $st steps" "$(tail -3 "$TMP/vp$st.log")"
done
r1=$(ratio_of "$TMP/vp1/final.json")
r400=$(ratio_of "$TMP/vp400/final.json")
if grep -q "score matching (SDE)" "$TMP/vp400.log" && [ -n "$r1" ] && [ -n "$r400" ] &&
    awk -v a="$r1" -v b="$r400" 'BEGIN { exit !(b <= 5 && a >= 20) }'; then
    ok "VP score matching learns: SW2 ratio $r400 after 400 steps (<= 5), $r1 untrained (>= 20)"
else nok "VP score matching learns" "ratio $r1 untrained, $r400 after 400 steps"; fi

# 2. every SDE sampler is rank-count invariant
RUN="$TMP/vp400"
for smp in "em --steps 20" "pc --steps 10 --set sample.correctors=1" \
    "langevin --steps 5 --set sample.correctors=4 --set sample.langevin_eps=1e-6" \
    "heun --steps 8" "rk45 --set sample.rtol=1e-3 --set sample.atol=1e-3"; do
    name=${smp%% *}
    # shellcheck disable=SC2086
    "$DFM" sample "$RUN" --sampler $smp --n 37 --chunk 5 --out "$TMP/$name-ref.npy" > "$TMP/$name.log" 2>&1 \
        || nok "$name on 1 rank" "$(tail -3 "$TMP/$name.log")"
    same=1
    for np in 2 4; do
        # shellcheck disable=SC2086
        timeout 300 $MPIRUN -np $np "$DFM" sample "$RUN" --sampler $smp --n 37 --chunk 3 \
            --out "$TMP/$name-$np.npy" > "$TMP/$name-$np.log" 2>&1
        cmp -s "$TMP/$name-ref.npy" "$TMP/$name-$np.npy" || same=0
    done
    if [ -s "$TMP/$name-ref.npy" ] && [ $same -eq 1 ] && grep -q "network evaluations per sample" "$TMP/$name.log"; then
        ok "$name: byte-identical samples on 1, 2 and 4 ranks, NFE reported"
    else nok "$name: byte-identical on 1, 2, 4 ranks" "$(tail -3 "$TMP/$name-4.log")"; fi
done
if grep -q "at most" "$TMP/rk45.log" && ! cmp -s "$TMP/heun-ref.npy" "$TMP/rk45-ref.npy"; then
    ok "rk45 reports its adaptive NFE"; else nok "rk45 NFE" "$(cat "$TMP/rk45.log")"; fi
"$DFM" sample "$RUN" --sampler ddim > /dev/null 2> "$TMP/err"; rc=$?
if [ $rc -eq 2 ] && grep -q "is for objective ddpm" "$TMP/err"; then ok "ddim on an SDE model: a spec error"
else nok "ddim on an SDE model" "exit $rc: $(cat "$TMP/err")"; fi

# 3. VE SDE, score output, on 2 ranks
# shellcheck disable=SC2086
if timeout 300 $MPIRUN -np 2 "$DFM" train "$ROOT/jobs/toy2d-sde-ve.yaml" --set run.out_dir="$TMP/ve" \
    --set train.steps=20 --set sample.steps=10 $SMALL > "$TMP/ve.log" 2>&1 && [ -n "$(ratio_of "$TMP/ve/final.json")" ]; then
    ok "VE SDE with a score network trains on 2 ranks and samples by pc"
else nok "VE SDE on 2 ranks" "$(tail -3 "$TMP/ve.log")"; fi

# 4. likelihoods, rank-count invariant
lik() { # name run np args...: the table's numbers into $TMP/name-np.txt
    name=$1; run=$2; np=$3; shift 3
    timeout 600 $MPIRUN -np "$np" "$DFM" eval "$run" "$@" > "$TMP/$name-$np.log" 2>&1
    grep -E '^\| (ELBO|NLL|  L_)' "$TMP/$name-$np.log" > "$TMP/$name-$np.txt"
}
LIKSET="--set sample.rtol=1e-3 --set sample.atol=1e-3"
# shellcheck disable=SC2086
lik sde "$RUN" 1 --metrics nll --n 5 $LIKSET
# shellcheck disable=SC2086
lik sde "$RUN" 2 --metrics nll --n 5 $LIKSET
if grep -q "NLL, probability-flow ODE" "$TMP/sde-1.txt" && grep -q "exact divergence" "$TMP/sde-1.log" &&
    cmp -s "$TMP/sde-1.txt" "$TMP/sde-2.txt"; then ok "SDE model: PF-ODE NLL (exact divergence) identical on 1 and 2 ranks"
else nok "SDE model NLL on 1 and 2 ranks" "$(tail -3 "$TMP/sde-2.log")"; fi
"$DFM" eval "$RUN" --metrics elbo > /dev/null 2> "$TMP/err"; rc=$?
if [ $rc -eq 2 ] && grep -q "elbo is the variational bound of objective ddpm" "$TMP/err"; then
    ok "elbo of an SDE model: a spec error"; else nok "elbo of an SDE model" "exit $rc: $(cat "$TMP/err")"; fi
"$DFM" eval "$RUN" --metrics bpd > /dev/null 2> "$TMP/err"; rc=$?
if [ $rc -eq 2 ] && grep -q "eval.metrics" "$TMP/err"; then ok "unknown metric: a spec error"
else nok "unknown metric" "exit $rc: $(cat "$TMP/err")"; fi

# shellcheck disable=SC2086
timeout 300 "$DFM" train "$ROOT/jobs/toy2d-ddpm.yaml" --set run.out_dir="$TMP/ddpm" --set train.steps=30 \
    --set objective.ddpm.timesteps=40 $SMALL --set sample.steps=10 > "$TMP/ddpm.log" 2>&1 || nok "train toy2d-ddpm" "$(tail -3 "$TMP/ddpm.log")"
for np in 1 2 4; do
    # shellcheck disable=SC2086
    lik ddpm "$TMP/ddpm" $np --metrics elbo,nll --n 7 $LIKSET
done
if [ "$(grep -c . "$TMP/ddpm-1.txt")" -eq 5 ] && cmp -s "$TMP/ddpm-1.txt" "$TMP/ddpm-2.txt" &&
    cmp -s "$TMP/ddpm-1.txt" "$TMP/ddpm-4.txt" && grep -q "all 40 + 1 terms" "$TMP/ddpm-1.log"; then
    ok "DDPM model: ELBO (every term) and NLL identical on 1, 2 and 4 ranks"
else nok "DDPM ELBO/NLL on 1, 2, 4 ranks" "$(cat "$TMP/ddpm-1.txt" "$TMP/ddpm-4.log" | tail -8)"; fi
# shellcheck disable=SC2086
timeout 300 "$DFM" train "$ROOT/jobs/toy2d-flow.yaml" --set run.out_dir="$TMP/flow" --set train.steps=30 \
    $SMALL --set sample.steps=10 > "$TMP/flow.log" 2>&1 || nok "train toy2d-flow" "$(tail -3 "$TMP/flow.log")"
for np in 1 2; do
    # shellcheck disable=SC2086
    lik flow "$TMP/flow" $np --metrics nll --n 5 $LIKSET
done
if grep -q "NLL" "$TMP/flow-1.txt" && cmp -s "$TMP/flow-1.txt" "$TMP/flow-2.txt"; then
    ok "flow model: NLL identical on 1 and 2 ranks"; else nok "flow NLL" "$(tail -3 "$TMP/flow-2.log")"; fi

# images: a tiny U-Net on Fashion-MNIST, bits/dim with Hutchinson's divergence
DATA="$TMP/data"
"$DFM" train "$ROOT/tests/train/tiny-unet.yaml" --set data.dir="$DATA" --set run.out_dir="$TMP/img" \
    --set objective.ddpm.timesteps=20 --set sample.steps=3 > "$TMP/img.log" 2>&1 || nok "train the tiny U-Net" "$(tail -3 "$TMP/img.log")"
for np in 1 2; do
    lik img "$TMP/img" $np --metrics elbo,nll --n 3 --data "$DATA" --set sample.rtol=1e-2 --set sample.atol=1e-2
done
if grep -q "bits/dim" "$TMP/img-1.log" && grep -q "Hutchinson" "$TMP/img-1.log" &&
    grep -q "uniform dequantisation baseline *| *8.0000" "$TMP/img-1.log" &&
    [ "$(grep -c . "$TMP/img-1.txt")" -eq 5 ] && cmp -s "$TMP/img-1.txt" "$TMP/img-2.txt"; then
    ok "U-Net on Fashion-MNIST: bits/dim (ELBO, Hutchinson NLL) identical on 1 and 2 ranks"
else nok "U-Net bits/dim" "$(tail -4 "$TMP/img-1.log")"; fi

[ "$n_fail" -eq 0 ]
