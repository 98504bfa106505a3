#!/bin/sh
# tests/dist/run.sh - run every multi-rank test program at several rank counts.
#
# Each $DFM_BIN/tests/mpi_* binary (built from tests/dist/mpi_*.c) is a plain MPI program whose
# exit status is the verdict; it must pass at every rank count in DFM_MPI_NP (default "1 2 3 4":
# 3 exercises the non-power-of-two paths). Then each tests/dist/t_*.sh script (launches of
# bin/dfm itself, such as MPMD) runs once; its exit status is the verdict.
# Prints "ok - <name> np=<n>" or "not ok - <name> np=<n>" (followed by the tail of its output)
# per run, then "mpi: N passed, N failed", and exits non-zero when anything failed.
#
# Environment: DFM_BIN (default ./bin), DFM_MPI_NP (rank counts), DFM_MPI_TIMEOUT (seconds per
# run, default 120), DFM_MPI_FILTER (run only programs whose name contains it), DFM_MPIRUN_FLAGS
# (default: oversubscribe, ob1 over shared memory, the fastest start here). Running as root
# needs OMPI_ALLOW_RUN_AS_ROOT=1 and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 (the Makefile exports them).
# OMP_NUM_THREADS defaults to 1: the ranks already oversubscribe small machines.

bin=${DFM_BIN:-./bin}
nps=${DFM_MPI_NP:-"1 2 3 4"}
limit=${DFM_MPI_TIMEOUT:-120}
filter=${DFM_MPI_FILTER:-}
flags=${DFM_MPIRUN_FLAGS:-"--oversubscribe --mca pml ob1 --mca btl self,vader"}
: "${OMP_NUM_THREADS:=1}"
export OMP_NUM_THREADS
# Open MPI allocates at start-up without freeing, from modules LeakSanitizer cannot name
# (open-mpi/ompi#6242): under `make asan` leak checking is off here; ASan's other checks stay.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"

if ! command -v mpirun >/dev/null 2>&1; then
    echo "mpi: mpirun not found (install openmpi-bin)" >&2
    echo "mpi: 0 passed, 1 failed"
    exit 1
fi

log=$(mktemp "${TMPDIR:-/tmp}/dfm-mpi.XXXXXX") || exit 1
trap 'rm -f "$log"' EXIT INT TERM

pass=0
fail=0
found=0
for prog in "$bin"/tests/mpi_*; do
    if [ ! -f "$prog" ] || [ ! -x "$prog" ]; then continue; fi
    name=$(basename "$prog")
    case $name in *.*) continue ;; esac # skip stray files such as *.o or *.d
    if [ -n "$filter" ]; then
        case $name in *"$filter"*) ;; *) continue ;; esac
    fi
    found=$((found + 1))
    for np in $nps; do
        start=$(date +%s)
        # mpirun --timeout takes the ranks down too (killing mpirun alone leaves them running);
        # the outer timeout is a safety net should mpirun itself hang.
        # shellcheck disable=SC2086 # flags are words
        timeout --kill-after=10 $((limit + 30)) mpirun --timeout "$limit" $flags -np "$np" \
            "$prog" >"$log" 2>&1
        rc=$?
        secs=$(($(date +%s) - start))
        if [ "$rc" -eq 0 ]; then
            pass=$((pass + 1))
            echo "ok - $name np=$np (${secs}s)"
        else
            fail=$((fail + 1))
            why="exit $rc"
            case $rc in 110 | 124 | 137) why="timed out after ${limit}s (exit $rc)" ;; esac
            echo "not ok - $name np=$np ($why)"
            tail -n 25 "$log" | sed 's/^/#   /'
        fi
    done
done

for script in "$(dirname "$0")"/t_*.sh; do
    [ -f "$script" ] || continue
    name=$(basename "$script" .sh)
    if [ -n "$filter" ]; then
        case $name in *"$filter"*) ;; *) continue ;; esac
    fi
    start=$(date +%s)
    if DFM=${DFM:-$bin/dfm} sh "$script" >"$log" 2>&1; then
        pass=$((pass + 1))
        echo "ok - $name ($(($(date +%s) - start))s)"
    else
        fail=$((fail + 1))
        echo "not ok - $name"
        grep -v '^ok' "$log" | tail -n 25 | sed 's/^/#   /'
    fi
done

if [ "$found" -eq 0 ]; then
    echo "mpi: no test programs in $bin/tests (build them: make \$(MPI_TESTS))" >&2
    fail=$((fail + 1))
fi
echo "mpi: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
