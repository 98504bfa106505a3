#!/bin/sh
# Run every tests/cli/t_*.sh. Each script prints "ok - name" / "not ok - name" lines and exits
# non-zero when any check failed. Needs DFM (path to bin/dfm) and DFM_BIN (the bin directory).
# CLI_SKIP="t_toy t_x" leaves those scripts out (named as skipped), e.g. for a quick local check.
# CLI_JOBS=N runs N scripts at a time (default 2). Every script works in its own mktemp
# directory and asks the kernel for its ports, so they do not meet; most of them spend much of
# their time waiting (for mpirun to tear down a job whose rank was killed, for a signal's
# moment, for a watchdog), which a second script fills. The longest start first, so that the
# two queues end together. The reports are printed whole, in name order, once all have ended.
# Two mpiruns on the same cores do not know of each other: their ranks yield the CPU while
# they wait for a message (Open MPI's mpi_yield_when_idle) instead of spinning on it.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${DFM:?set DFM to the dfm binary}"
jobs=${CLI_JOBS:-2}
case $jobs in '' | *[!0-9]* | 0) echo "cli: CLI_JOBS must be a positive integer, not '$jobs'" >&2; exit 2 ;; esac
[ "$jobs" -gt 1 ] && export OMPI_MCA_mpi_yield_when_idle=1
out=$(mktemp -d "${TMPDIR:-/tmp}/dfm-cli.XXXXXX") || exit 1
trap 'rm -rf "$out"' EXIT INT TERM

# the scripts, longest first (the order only balances the queues; any new script runs last)
first="t_resume t_toy t_ckpt t_sde t_sample t_train t_eval t_evaluator t_cli t_fetch"
names=
for n in $first; do [ -f "$here/$n.sh" ] && names="$names $n"; done
for t in "$here"/t_*.sh; do
    [ -f "$t" ] || continue
    n=$(basename "$t" .sh)
    case " $names " in *" $n "*) ;; *) names="$names $n" ;; esac
done
queue=
for n in $names; do
    case " ${CLI_SKIP:-} " in *" $n "*) echo "cli: $n.sh: skipped (CLI_SKIP)"; continue ;; esac
    queue="$queue $n"
done

# one script: its output to $out/NAME.out, then "rc seconds" to $out/NAME.rc
export here out
printf '%s\n' $queue | xargs -P "$jobs" -I{} sh -c '
    t0=$(date +%s)
    sh "$here/$1.sh" > "$out/$1.out" 2>&1
    echo "$? $(($(date +%s) - t0))" > "$out/$1.rc"' sh {}

pass=0
fail=0
for n in $(printf '%s\n' $queue | sort); do
    set -- $(cat "$out/$n.rc" 2>/dev/null || echo "127 0")
    rc=$1 secs=$2
    grep '^not ok ' "$out/$n.out" || true
    p=$(grep -c '^ok ' "$out/$n.out")
    f=$(grep -c '^not ok ' "$out/$n.out")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        tail -20 "$out/$n.out"
        echo "not ok - $n.sh exited $rc"
        f=1
    fi
    echo "cli: $n.sh: $p passed, $f failed (${secs} s)"
    pass=$((pass + p))
    fail=$((fail + f))
done
echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
