#!/bin/sh
# tests/dist/t_job_agree.sh - ranks agree on the job before they exchange anything.
#
# An MPMD launch (mpirun -np 1 dfm train J : -np 1 dfm train J --set ...) gives the two ranks
# different specs. A rank with train.reduce=overlap used to hang the job until it was killed,
# a different model width failed inside MPI (MPI_ERR_IN_STATUS); both must stop at once on
# every rank with one message naming what differs. The same launch with equal arguments (and
# an ordinary mpirun -np 3) must train. Prints "ok"/"not ok" lines, exits non-zero on failure.
# Needs DFM (bin/dfm); uses mpirun.
set -u
: "${DFM:?set DFM to the dfm binary}"
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
JOB="$ROOT/jobs/toy2d-ddpm.yaml"
TMP=$(mktemp -d /tmp/dfm_agree_XXXXXX)
trap 'rm -rf "$TMP"' EXIT INT TERM
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
MPIRUN="mpirun --oversubscribe --mca pml ob1 --mca btl self,vader --bind-to none --timeout 90"
: "${OMP_NUM_THREADS:=1}"
export OMP_NUM_THREADS
n_fail=0
ok() { echo "ok - $1"; }
nok() { echo "not ok - $1"; n_fail=$((n_fail + 1)); }
SMALL="--set train.steps=2 --set train.warmup=0 --set train.batch=64 --set train.micro_batch=16
 --set model.mlp.hidden=32 --set model.mlp.layers=2 --set data.toy_size=4096
 --set sample.count=64 --set sample.batch=64 --set objective.ddpm.timesteps=20"

# mpmd NAME "SETS OF RANK 1": rank 0 runs the small job, rank 1 the same plus its own --set
mpmd() {
    name=$1; shift
    # shellcheck disable=SC2086 # option lists are words
    timeout 150 $MPIRUN -np 1 "$DFM" train "$JOB" $SMALL --set run.out_dir="$TMP/$name" : \
        -np 1 "$DFM" train "$JOB" $SMALL --set run.out_dir="$TMP/$name" "$@" \
        > "$TMP/$name.log" 2>&1
}

# Each rank prints one error line, the same text; it names what differs and each rank's value.
agree_error() { # log, what
    n=$(grep -c "^dfm: \[rank [01]\] error: the 2 ranks do not agree on the job" "$1")
    [ "$n" -eq 2 ] && grep "error:" "$1" | grep -q "$2"
}

if mpmd same; then ok "MPMD launch with equal arguments trains"
else nok "MPMD launch with equal arguments trains"; tail -5 "$TMP/same.log"; fi

start=$(date +%s)
mpmd reduce --set train.reduce=overlap; rc=$?
secs=$(($(date +%s) - start))
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && agree_error "$TMP/reduce.log" "resolved job spec" \
    && ! grep -q "parameter count differs" "$TMP/reduce.log" && [ "$secs" -lt 60 ]; then
    ok "one rank with train.reduce=overlap: every rank stops with one message (${secs}s)"
else
    nok "one rank with train.reduce=overlap: exit $rc after ${secs}s"; tail -8 "$TMP/reduce.log"
fi

mpmd width --set model.mlp.hidden=64; rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && agree_error "$TMP/width.log" "parameter count differs" \
    && ! grep -q "MPI_ERR" "$TMP/width.log"; then
    ok "one rank with another model width: stopped, naming the parameter counts"
else
    nok "one rank with another model width: exit $rc"; tail -8 "$TMP/width.log"
fi

# shellcheck disable=SC2086
if timeout 150 $MPIRUN -np 3 "$DFM" train "$JOB" $SMALL --set run.out_dir="$TMP/np3" \
    > "$TMP/np3.log" 2>&1; then ok "3 ranks train the small job"
else nok "3 ranks train the small job"; tail -5 "$TMP/np3.log"; fi

echo "agree: $((4 - n_fail)) passed, $n_fail failed"
[ "$n_fail" -eq 0 ]
