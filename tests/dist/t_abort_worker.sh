#!/bin/sh
# tests/dist/t_abort_worker.sh - an abort on an OpenMP worker thread ends the job with its status.
#
# Runs bin/tests/fault_abort_worker (see its header): alone, the process must exit with the
# status passed to core_abort, after its message; under mpirun -np 2 with rank 1's worker
# aborting, the job must end (no rank left waiting in the barrier) within the timeout, non-zero,
# with the worker's message, and rank 0 must not get past the barrier. Prints "ok"/"not ok"
# lines, exits non-zero on failure.
set -u
here=$(cd "$(dirname "$0")" && pwd)
bin=${DFM_BIN:-$here/../../bin}
prog="$bin/tests/fault_abort_worker"
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMP_DYNAMIC=false
TMP=$(mktemp -d /tmp/dfm_abortw_XXXXXX)
trap 'rm -rf "$TMP"' EXIT INT TERM
n_fail=0
ok() { echo "ok - $1"; }
nok() { echo "not ok - $1"; n_fail=$((n_fail + 1)); }

timeout 30 "$prog" 0 7 >"$TMP/one.log" 2>&1
rc=$?
if [ "$rc" -eq 7 ] && grep -q "worker thread 1 aborts with 7" "$TMP/one.log"; then
    ok "one process: a worker's abort exits with its status (7)"
else
    nok "one process: a worker's abort exits with its status (got $rc)"
    cat "$TMP/one.log"
fi

start=$(date +%s)
timeout --kill-after=10 60 mpirun --oversubscribe --mca pml ob1 --mca btl self,vader \
    --bind-to none -np 2 "$prog" 1 9 >"$TMP/two.log" 2>&1
rc=$?
secs=$(($(date +%s) - start))
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] \
    && grep -q "rank 1, worker thread 1 aborts with 9" "$TMP/two.log" \
    && ! grep -q "passed the barrier" "$TMP/two.log"; then
    ok "two ranks: rank 1's worker aborts, the job ends (exit $rc after ${secs}s)"
else
    nok "two ranks: rank 1's worker aborts, the job ends (exit $rc after ${secs}s)"
    cat "$TMP/two.log"
fi
[ "$n_fail" -eq 0 ]
