#!/bin/sh
# Run every tests/slurm/t_*.sh against a one-node Slurm brought up for the purpose by
# slurm/local-cluster.sh (in a fresh temporary directory, stopped at the end). Where the cluster
# cannot run here (not root and no sudo, packages missing and not installable), every test counts
# as skipped, with the reason; a cluster that should start and does not is a failure.
# Needs DFM and DFM_BIN. Ends with "slurm: N passed, N failed, N skipped".
set -u
here=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$here/../.." && pwd)
: "${DFM:?set DFM to the dfm binary}"
ntests=$(ls "$here"/t_*.sh | wc -l)
DIR=$(mktemp -d "${TMPDIR:-/tmp}/dfm_slurm.XXXXXX") || exit 1
# A free port can be taken between the check and the daemon's bind: try again with new ones.
for attempt in 1 2 3; do
    env_line=$(sh "$ROOT/slurm/local-cluster.sh" up "$DIR" 2>"$DIR.up.log")
    rc=$?
    [ $rc -eq 1 ] && grep -q "Address already in use" "$DIR.up.log" || break
done
if [ $rc -eq 3 ]; then
    echo "slurm: SKIP all $ntests test scripts: $(grep 'cannot run here' "$DIR.up.log" | sed 's/^local-cluster: //')"
    rm -rf "$DIR" "$DIR.up.log"
    echo "slurm: 0 passed, 0 failed, $ntests skipped"
    exit 0
elif [ $rc -ne 0 ]; then
    cat "$DIR.up.log"
    echo "not ok - slurm/local-cluster.sh up failed ($rc)"
    sh "$ROOT/slurm/local-cluster.sh" down "$DIR" 2>/dev/null
    rm -f "$DIR.up.log"
    echo "slurm: 0 passed, 1 failed, 0 skipped"
    exit 1
fi
rm -f "$DIR.up.log"
eval "$env_line"
export SLURM_CONF DFM
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
trap 'sh "$ROOT/slurm/local-cluster.sh" down "$DIR" 2>/dev/null' EXIT
trap 'exit 1' INT TERM
echo "slurm: one-node cluster up ($SLURM_CONF)"
pass=0 fail=0 skipped=0
for t in "$here"/t_*.sh; do
    out=$(sh "$t" 2>&1)
    rc=$?
    printf '%s\n' "$out"
    p=$(printf '%s\n' "$out" | grep '^ok ' | grep -vc '# SKIP')
    s=$(printf '%s\n' "$out" | grep -c '^ok .*# SKIP')
    f=$(printf '%s\n' "$out" | grep -c '^not ok ')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "not ok - $(basename "$t") exited $rc"
        f=1
    fi
    echo "slurm: $(basename "$t"): $p passed, $f failed, $s skipped"
    pass=$((pass + p)) fail=$((fail + f)) skipped=$((skipped + s))
done
echo "slurm: $pass passed, $fail failed, $skipped skipped"
[ "$fail" -eq 0 ]
