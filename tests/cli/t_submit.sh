#!/bin/sh
# tests/cli/t_submit.sh - `dfm submit` and `dfm status` without a cluster: the golden dry-run
# scripts of the shipped jobs, what the rendered script holds (sweeps, launchers, optional
# lines), the checks across sections, sbatch missing or failing, a custom template, usage
# errors, and `dfm status` of a run that never saw Slurm. (tests/slurm/ runs them on a real
# one-node Slurm.) Needs $DFM; prints "ok - name" / "not ok - name"; exits 1 if any check failed.

# Open MPI allocates at start-up without freeing, from modules LeakSanitizer cannot name
# (open-mpi/ompi#6242): under `make asan`, leak checking is off for processes that start MPI
# (the local `dfm train` below), as in the other CLI scripts.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DFM=${DFM:-$ROOT/bin/dfm}
case "$DFM" in /*) ;; *) DFM="$(pwd)/$DFM" ;; esac
export DFM
cd "$ROOT" || exit 1
TMP=$(mktemp -d "${TMPDIR:-/tmp}/dfm_submit.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT INT TERM
TINY=tests/slurm/tiny.yaml
fails=0

ok() { echo "ok - $1"; }
notok() {
    fails=$((fails + 1)); echo "not ok - $1"
    [ -n "${2:-}" ] && printf '#   %s\n' "$2"
    return 0
}
# expect_fail NAME STATUS PATTERN ARGS...: dfm ARGS exits STATUS with PATTERN on stderr
expect_fail() {
    name=$1 want=$2 pat=$3; shift 3
    "$DFM" "$@" >"$TMP/out" 2>"$TMP/err"; rc=$?
    if [ $rc -ne "$want" ]; then notok "$name" "exit $rc, expected $want: $(head -3 "$TMP/err")"
    elif ! grep -q -- "$pat" "$TMP/err"; then notok "$name" "stderr lacks '$pat': $(head -3 "$TMP/err")"
    else ok "$name: $(head -1 "$TMP/err" | cut -c1-110)"; fi
}
# dry NAME ARGS...: dfm submit --dry-run into $TMP/dry.sh
dry() { "$DFM" submit "$@" --dry-run >"$TMP/dry.sh" 2>"$TMP/dry.err"; }
has() { grep -q -F -- "$1" "$TMP/dry.sh"; }

# ---- golden scripts of every shipped job ------------------------------------------------------
sh tests/slurm/golden.sh >"$TMP/golden" 2>&1; rc=$?
cat "$TMP/golden"
[ $rc -eq 0 ] || grep -q '^not ok' "$TMP/golden" || notok "golden.sh exited $rc"

# ---- what the script holds -------------------------------------------------------------------
if dry "$TINY" --set run.out_dir="$TMP/dry" && [ ! -e "$TMP/dry" ] && bash -n "$TMP/dry.sh" &&
    has '#SBATCH --ntasks-per-node=2' && has '#SBATCH --signal=USR1@60' && has '#SBATCH --requeue' &&
    has '#SBATCH --open-mode=append' && has "#SBATCH --chdir=$ROOT" && has "DFM=$DFM" &&
    has 'srun --mpi=pmix --kill-on-bad-exit=1 --cpus-per-task=1 "$DFM" train "$RUN_DIR/job.yaml"' &&
    has 'export OMP_NUM_THREADS=1' && ! has '#SBATCH --partition' && ! has '#SBATCH --array'; then
    ok "dry run: valid bash, the slurm section's options, srun --mpi=pmix, no file written"
else notok "dry run script" "$(cat "$TMP/dry.err")"; fi

if dry "$TINY" --set run.out_dir=runs/sw --sweep train.lr=1e-3,2e-3 --sweep 'run.seed=1,2' &&
    has '#SBATCH --array=0-3' && has '#SBATCH --output=runs/sw/p%3a/slurm-%A_%a.out' &&
    has '    runs/sw/p000' && has '    runs/sw/p003' && [ "$(grep -c '^    runs/sw/p' "$TMP/dry.sh")" -eq 4 ]; then
    ok "sweep of 2 x 2 values: one array job of 4 tasks, one run directory each"
else notok "sweep dry run" "$(cat "$TMP/dry.err")"; fi

if dry "$TINY" --sweep 'model.mlp.hidden=32,64,128' && has '#SBATCH --array=0-2'; then
    ok "sweep values split at commas (3 points)"
else notok "sweep of 3 values" "$(cat "$TMP/dry.err")"; fi

if dry "$TINY" --set slurm.launcher=mpirun && has '#SBATCH --signal=B:USR1@60' &&
    has 'mpirun --bind-to none "$DFM" train' && has "trap 'pass USR1' USR1"; then
    ok "mpirun launcher: the warning signal goes to the batch shell (B:), which passes it on"
else notok "mpirun launcher" "$(cat "$TMP/dry.err")"; fi
if dry "$TINY" && has 'srun --mpi=pmix --kill-on-bad-exit=1 --cpus-per-task=1 "$DFM" train' &&
    dry "$TINY" --set slurm.mpi=pmi2 && has 'srun --mpi=pmi2 --kill-on-bad-exit=1 '; then
    ok "srun launcher: --mpi from slurm.mpi (default pmix), --kill-on-bad-exit=1 (a dead rank ends the step)"
else notok "srun launcher options" "$(grep srun "$TMP/dry.sh")"; fi
expect_fail "slurm.mpi that is not a plugin name" 2 "srun MPI plugin name" submit "$TINY" --dry-run --set 'slurm.mpi=pmix -n 4'

if dry "$TINY" --set slurm.partition=debug --set slurm.account=proj1 --set slurm.qos=high \
    --set slurm.mem=4G --set 'slurm.extra=[--exclusive, --constraint=avx2]' \
    --set 'slurm.setup=[module load openmpi, echo "set up"]' --set slurm.requeue=false &&
    has '#SBATCH --partition=debug' && has '#SBATCH --account=proj1' && has '#SBATCH --qos=high' &&
    has '#SBATCH --mem=4G' && has '#SBATCH --exclusive' && has '#SBATCH --constraint=avx2' &&
    has 'module load openmpi' && has 'echo "set up"' && has '#SBATCH --no-requeue' && has 'REQUEUE=no' &&
    bash -n "$TMP/dry.sh"; then
    ok "optional keys, extra #SBATCH lines and setup lines are written; requeue off"
else notok "optional keys" "$(cat "$TMP/dry.err")"; fi

if dry "$TINY" --set "run.out_dir=$TMP/it's here" 2>/dev/null; then
    notok "an out_dir with a blank and a quote was accepted on the #SBATCH --output line"
else ok "an out_dir with blanks is refused (it would be cut on the #SBATCH line)"; fi

# ---- checks across sections ------------------------------------------------------------------
expect_fail "ranks without a micro-batch" 2 "ranks would have no work" submit "$TINY" --dry-run --set slurm.ntasks_per_node=8
expect_fail "threads above cpus per task" 2 "train.threads = 4 but slurm.cpus_per_task = 1" submit "$TINY" --dry-run --set train.threads=4
expect_fail "a warning signal dfm does not checkpoint on" 2 "checkpoint on SIGUSR1" submit "$TINY" --dry-run --set slurm.signal=USR2@60
expect_fail "TERM as the warning signal" 2 "look like a cancellation" submit "$TINY" --dry-run --set slurm.signal=TERM@60
expect_fail "signal lead beyond the time limit" 2 "as soon as it starts" submit "$TINY" --dry-run --set slurm.time=00:01:00 --set slurm.signal=USR1@120
expect_fail "a blank in slurm.partition" 2 "blanks and quotes" submit "$TINY" --dry-run --set 'slurm.partition=a b'
if "$DFM" submit "$TINY" --dry-run --set slurm.ntasks_per_node=3 >/dev/null 2>"$TMP/err" &&
    grep -q "only to float rounding" "$TMP/err"; then
    ok "3 ranks over 4 micro-batches: submitted with a warning"
else notok "3-rank warning" "$(cat "$TMP/err")"; fi
if "$DFM" submit "$TINY" --dry-run --set train.threads=0 --set slurm.cpus_per_task=2 >/dev/null 2>"$TMP/err" &&
    [ ! -s "$TMP/err" ]; then ok "train.threads 0 follows cpus_per_task without a warning"
else notok "threads 0" "$(cat "$TMP/err")"; fi

# ---- the save time of an earlier run against the warning signal's lead ---------------------------
# A real run into the run directory records its saves in metrics.jsonl; a lead of 0 s is shorter
# than any of them, 300 s longer than this tiny job's.
d="$TMP/saved"
if "$DFM" train "$TINY" --set run.out_dir="$d" --set train.steps=4 --set checkpoint.every=2 >"$TMP/saved.log" 2>&1 &&
    grep -q '"checkpoint":{"step":4,.*"save_s":' "$d/metrics.jsonl"; then
    if "$DFM" submit "$TINY" --dry-run --set run.out_dir="$d" --set slurm.signal=USR1@0 >/dev/null 2>"$TMP/err" &&
        grep -q "a checkpoint save in an earlier run of $d took [0-9.e-]* s (metrics.jsonl, the save of step [24]), more than the 0 s slurm.signal USR1@0 leaves" "$TMP/err" &&
        grep -q "slurm.signal: USR1@[0-9]*" "$TMP/err"; then
        ok "save time of an earlier run above the signal lead: warned ($(cut -c1-90 "$TMP/err"))"
    else notok "save-time warning missing" "$(cat "$TMP/err")"; fi
    if "$DFM" submit "$TINY" --dry-run --set run.out_dir="$d" --set slurm.signal=USR1@300 >/dev/null 2>"$TMP/err" &&
        [ ! -s "$TMP/err" ]; then ok "save time within the signal lead: no warning"
    else notok "save-time warning with a long lead" "$(cat "$TMP/err")"; fi
else notok "a run to measure a save" "$(tail -3 "$TMP/saved.log")"; fi

# ---- sbatch missing or failing ------------------------------------------------------------------
mkdir -p "$TMP/empty"
env PATH="$TMP/empty" "$DFM" submit "$TINY" --set run.out_dir="$TMP/nosb" >"$TMP/out" 2>"$TMP/err"; rc=$?
if [ $rc -eq 1 ] && grep -q "sbatch: not found in PATH" "$TMP/err" && grep -q "hint: .*slurm-client" "$TMP/err"; then
    ok "sbatch not on PATH: $(head -1 "$TMP/err" | cut -c1-100)"
else notok "sbatch not on PATH" "exit $rc: $(cat "$TMP/err")"; fi
if [ -f "$TMP/nosb/job.yaml" ] && [ -f "$TMP/nosb/job.sbatch" ] && [ ! -f "$TMP/nosb/slurm-history.log" ]; then
    ok "without sbatch the spec and script are still on record, no submission recorded"
else notok "files after a failed submission: $(ls "$TMP/nosb" 2>&1)"; fi
if command -v sbatch >/dev/null 2>&1; then
    printf 'Bogus=1\n' >"$TMP/bad.conf"
    SLURM_CONF="$TMP/bad.conf" expect_fail "sbatch fails: its stderr is shown" 1 "sbatch exited 1: .*unrecognized key: Bogus" \
        submit "$TINY" --set run.out_dir="$TMP/badsb"
else echo "ok - # SKIP sbatch failing: sbatch not installed here"; fi

# ---- templates and usage ----------------------------------------------------------------------
printf '#!/bin/bash\n#SBATCH --job-name=@JOB_NAME@\n#SBATCH --foo=@FOO@\n' >"$TMP/t.in"
expect_fail "unknown placeholder in a template" 1 "t.in:3: unknown placeholder @FOO@" submit "$TINY" --dry-run --template "$TMP/t.in"
printf '#!/bin/bash\n#SBATCH --job-name=@JOB_NAME@\n#SBATCH --partition=@PARTITION@\n#SBATCH @EXTRA@\necho @RUN_DIR@\n' >"$TMP/t2.in"
if "$DFM" submit "$TINY" --dry-run --template "$TMP/t2.in" --set 'slurm.extra=[--a, --b]' >"$TMP/dry.sh" 2>&1 &&
    [ "$(cat "$TMP/dry.sh")" = "$(printf '#!/bin/bash\n#SBATCH --job-name=slurm-tiny\n#SBATCH --a\n#SBATCH --b\necho runs/slurm-tiny')" ]; then
    ok "custom template: empty optional line dropped, list lines repeated"
else notok "custom template" "$(cat "$TMP/dry.sh")"; fi
expect_fail "submit without a spec" 2 "missing JOB.yaml" submit
expect_fail "--sweep without a value" 2 "needs a value" submit "$TINY" --sweep
expect_fail "sweeping a slurm key" 2 "cannot vary" submit "$TINY" --dry-run --sweep slurm.nodes=1,2
expect_fail "a sweep value the schema refuses" 2 "sweep point 1" submit "$TINY" --dry-run --sweep train.lr=1e-3,abc
expect_fail "a key swept twice" 2 "swept twice" submit "$TINY" --dry-run --sweep train.lr=1,2 --sweep train.lr=3
expect_fail "unknown option" 2 "unknown option" submit "$TINY" --bogus
if "$DFM" submit --help | grep -q -- '--sweep' && "$DFM" status --help | grep -q -- '--json'; then
    ok "submit --help and status --help"
else notok "help texts"; fi

# ---- dfm status without Slurm -----------------------------------------------------------------
expect_fail "status of a missing directory" 2 "No such file" status "$TMP/none"
mkdir -p "$TMP/notrun"
expect_fail "status of a directory that is no run" 2 "not a run directory" status "$TMP/notrun"
if "$DFM" train "$TINY" --set run.out_dir="$TMP/local" --set train.steps=12 >/dev/null 2>&1 &&
    "$DFM" status "$TMP/local" >"$TMP/st" 2>&1 && grep -q "progress:   step 12" "$TMP/st" &&
    grep -q "slurm job:  none (never submitted" "$TMP/st"; then
    ok "status of a local run: its progress, no Slurm job"
else notok "status of a local run" "$(cat "$TMP/st")"; fi
if "$DFM" status "$TMP/local" --json >"$TMP/st.json" 2>&1 &&
    /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["metrics"]["step"]==12 and d["job_id"] is None' "$TMP/st.json"; then
    ok "status --json parses and carries the step"
else notok "status --json" "$(cat "$TMP/st.json")"; fi

[ $fails -eq 0 ]
