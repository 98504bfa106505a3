#!/bin/sh
# Run every tests/cli/t_*.sh. Each script prints "ok - name" / "not ok - name" lines and exits
# non-zero when any check failed. Needs DFM (path to bin/dfm) and DFM_BIN (the bin directory).
# CLI_SKIP="t_toy t_x" leaves those scripts out (named as skipped), e.g. for a quick local check.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${DFM:?set DFM to the dfm binary}"
pass=0
fail=0
for t in "$here"/t_*.sh; do
    [ -f "$t" ] || continue
    name=$(basename "$t" .sh)
    case " ${CLI_SKIP:-} " in *" $name "*) echo "cli: $name.sh: skipped (CLI_SKIP)"; continue ;; esac
    t0=$(date +%s)
    out=$(sh "$t" 2>&1)
    rc=$?
    secs=$(($(date +%s) - t0))
    printf '%s\n' "$out" | grep -E '^(not )?ok ' | grep '^not ok' || true
    p=$(printf '%s\n' "$out" | grep -c '^ok ')
    f=$(printf '%s\n' "$out" | grep -c '^not ok ')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        printf '%s\n' "$out" | tail -20
        echo "not ok - $(basename "$t") exited $rc"
        f=1
    fi
    echo "cli: $(basename "$t"): $p passed, $f failed (${secs} s)"
    pass=$((pass + p))
    fail=$((fail + f))
done
echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
