# tests/slurm/lib.sh - helpers for the tests that run jobs on the local Slurm (sourced).
# Needs DFM, DFM_BIN and SLURM_CONF (tests/slurm/run.sh sets them).
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TINY="$ROOT/tests/slurm/tiny.yaml"
fails=0
ok() { echo "ok - $1"; }
notok() {
    fails=$((fails + 1)); echo "not ok - $1"
    [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/#   /'
    return 0
}
skip() { echo "ok - # SKIP $1"; }

# field JOB KEY: one field of `scontrol show job` (empty when the job is unknown)
field() { scontrol -o show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }

# wait_state JOB SECONDS STATE...: wait until the job is in one of the states; 1 on timeout
wait_state() {
    job=$1; n=$(($2 * 5)); shift 2
    while [ $n -gt 0 ]; do
        st=$(field "$job" JobState)
        for want in "$@"; do [ "$st" = "$want" ] && return 0; done
        sleep 0.2; n=$((n - 1))
    done
    return 1
}

# wait_step DIR STEP SECONDS: wait until DIR/metrics.jsonl reached STEP
wait_step() {
    n=$(($3 * 5))
    while [ $n -gt 0 ]; do
        s=$(tail -1 "$1/metrics.jsonl" 2>/dev/null | sed -n 's/^{"step":\([0-9]*\),.*/\1/p')
        [ -n "$s" ] && [ "$s" -ge "$2" ] && return 0
        sleep 0.2; n=$((n - 1))
    done
    return 1
}

# submit OUT_DIR ARGS...: dfm submit the tiny job into OUT_DIR; prints the job id
submit() {
    dir=$1; shift
    "$DFM" submit "$TINY" --set run.out_dir="$dir" "$@" >"$dir.submit" 2>&1 || {
        cat "$dir.submit" >&2; return 1; }
    sed -n 's/^submitted \(array \)\{0,1\}job \([0-9]*\) .*/\2/p' "$dir.submit"
}

hash_of() { sed -n 's/.*"param_hash":"\([0-9a-f]*\)".*/\1/p' "$1/final.json" 2>/dev/null; }
