#!/bin/sh
# Compare `dfm submit --dry-run` of every shipped job spec (jobs/*.yaml) with its golden script in
# tests/slurm/golden/<name>.sbatch; with --update, rewrite the golden files instead (after a
# deliberate change of the template or of a job spec: `make golden`, then review the diff).
# Machine-specific parts are masked: the dfm version and commit, the dfm binary (@DFM@) and the
# repository root (@ROOT@), which is also the directory the scripts are rendered from.
# Prints "ok - ..." / "not ok - ..." lines; needs DFM (the dfm binary).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
: "${DFM:?set DFM to the dfm binary}"
GOLD="$ROOT/tests/slurm/golden"
update=0
[ "${1:-}" = "--update" ] && update=1
version=$("$DFM" --version | sed -n '1s/^dfm \([^ ]*\) .*/\1/p')
dfm_abs=$(cd "$(dirname "$DFM")" && pwd)/$(basename "$DFM")
n_fail=0
mask() {
    # Any commit: objects built at an earlier commit may carry an older one than --version.
    sed -e "s|(dfm $version, commit [0-9a-z]*)|(dfm @VERSION@, commit @COMMIT@)|" \
        -e "s|$dfm_abs|@DFM@|g" -e "s|$ROOT|@ROOT@|g"
}
cd "$ROOT" || exit 1
for spec in jobs/*.yaml; do
    name=$(basename "$spec" .yaml)
    out=$("$DFM" submit "$spec" --dry-run 2>/tmp/dfm_golden_err.$$)
    rc=$?
    if [ $rc -ne 0 ]; then
        echo "not ok - submit --dry-run $spec exited $rc: $(head -3 /tmp/dfm_golden_err.$$)"
        n_fail=$((n_fail + 1))
        continue
    fi
    if [ $update -eq 1 ]; then
        printf '%s\n' "$out" | mask >"$GOLD/$name.sbatch"
        echo "ok - wrote tests/slurm/golden/$name.sbatch"
    elif [ ! -f "$GOLD/$name.sbatch" ]; then
        echo "not ok - no golden script for $spec: run 'make golden' and review it"
        n_fail=$((n_fail + 1))
    elif printf '%s\n' "$out" | mask | diff -u "$GOLD/$name.sbatch" - >/tmp/dfm_golden_diff.$$; then
        echo "ok - submit --dry-run $spec matches tests/slurm/golden/$name.sbatch"
    else
        echo "not ok - submit --dry-run $spec differs from tests/slurm/golden/$name.sbatch ('make golden' rewrites it):"
        head -40 /tmp/dfm_golden_diff.$$
        n_fail=$((n_fail + 1))
    fi
done
# A golden file whose job spec is gone is stale.
for g in "$GOLD"/*.sbatch; do
    [ -f "$g" ] || continue
    name=$(basename "$g" .sbatch)
    if [ ! -f "jobs/$name.yaml" ]; then
        if [ $update -eq 1 ]; then rm -f "$g"; echo "ok - removed stale $g"
        else echo "not ok - $g has no jobs/$name.yaml ('make golden' removes it)"; n_fail=$((n_fail + 1)); fi
    fi
done
rm -f /tmp/dfm_golden_err.$$ /tmp/dfm_golden_diff.$$
[ $n_fail -eq 0 ]
