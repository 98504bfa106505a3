#!/bin/sh
# dfm submit on a real Slurm: a 2-task job under srun --mpi=pmix and under mpirun trains the
# same weights as a local run, records its start and end, and dfm status reports it; sbatch's
# refusal reaches the user; a second submission into a busy run directory is refused; a sweep
# runs as an array job with one run directory per point.
. "$(dirname "$0")/lib.sh"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/dfm_sl_jobs.XXXXXX") || exit 1
trap 'scancel $(squeue -h -o %i 2>/dev/null) 2>/dev/null; rm -rf "$TMP"' EXIT

# Reference: the same spec trained locally, one process (4 micro-batches: same bits on 2 ranks).
"$DFM" train "$TINY" --set run.out_dir="$TMP/ref" >"$TMP/ref.log" 2>&1 || notok "local reference run" "$(tail -3 "$TMP/ref.log")"
ref=$(hash_of "$TMP/ref")

for launcher in srun mpirun; do
    d="$TMP/$launcher"
    id=$(submit "$d" --set slurm.launcher=$launcher) || { notok "$launcher: submit"; continue; }
    if wait_state "$id" 90 COMPLETED FAILED CANCELLED && [ "$(field "$id" JobState)" = COMPLETED ]; then
        ok "$launcher: job $id ran 2 tasks to completion"
    else notok "$launcher: job $id ended $(field "$id" JobState)" "$(tail -5 "$d"/slurm-*.out 2>&1)"; continue; fi
    h=$(hash_of "$d")
    if [ -n "$h" ] && [ "$h" = "$ref" ]; then ok "$launcher: weights bitwise equal to the local run ($h)"
    else notok "$launcher: weights $h, local run $ref"; fi
    if grep -q '2 ranks x 1 thread' "$d/slurm-$id.out" && grep -q "start job=$id id=$id restart=0 nodes=localhost tasks=2" "$d/slurm-history.log" &&
        grep -q "end job=$id restart=0 status=0 action=none" "$d/slurm-history.log" &&
        [ -f "$d/job.yaml" ] && [ -f "$d/job.sbatch" ]; then
        ok "$launcher: 2 ranks; start and end in slurm-history.log; job.yaml and job.sbatch on record"
    else notok "$launcher: history or log" "$(cat "$d/slurm-history.log"; head -3 "$d/slurm-$id.out")"; fi
    "$DFM" status "$d" >"$d.status" 2>&1
    if grep -q "slurm job:  $id  COMPLETED  restarts 0" "$d.status" && grep -q "progress:   step 60/60" "$d.status" &&
        grep -q "log:        $d/slurm-$id.out" "$d.status"; then
        ok "$launcher: dfm status shows COMPLETED, restarts 0, step 60/60 and the log"
    else notok "$launcher: dfm status" "$(cat "$d.status")"; fi
done

# sbatch refuses: its message reaches the user, the job is not recorded as submitted.
if "$DFM" submit "$TINY" --set run.out_dir="$TMP/nopart" --set slurm.partition=nosuch >"$TMP/np.out" 2>&1; then
    notok "a job for a partition that does not exist was accepted"
elif grep -q "sbatch exited 1: sbatch: error: .*invalid partition" "$TMP/np.out" && [ ! -f "$TMP/nopart/slurm-history.log" ]; then
    ok "sbatch's refusal is shown: $(grep -o 'sbatch: error: [^.]*' "$TMP/np.out" | head -1)"
else notok "partition error" "$(cat "$TMP/np.out")"; fi

# A second submission into a run directory whose job is still queued or running is refused.
d="$TMP/busy"
id=$(submit "$d" --set train.steps=1000000) || notok "busy: submit"
if "$DFM" submit "$TINY" --set run.out_dir="$d" >"$TMP/busy2" 2>&1; then
    notok "a second job was submitted into the busy run directory"
elif grep -q "job $id, submitted earlier for this run directory, is still queued or running" "$TMP/busy2"; then
    ok "second submission into a busy run directory refused (job $id)"
else notok "busy run directory" "$(cat "$TMP/busy2")"; fi
scancel "$id"

# A job the controller does not know (any more): dfm status says why it cannot tell the state.
mkdir -p "$TMP/gone"
echo "2026-01-01T00:00:00Z submit job=999999 script=x" >"$TMP/gone/slurm-history.log"
"$DFM" status "$TMP/gone" >"$TMP/gone.status" 2>&1
if grep -q "slurm job:  999999  state unknown: scontrol: .*Invalid job id.*; sacct: no accounting on this cluster" "$TMP/gone.status"; then
    ok "status of a job Slurm no longer knows: says there is no accounting to ask"
else notok "status of an unknown job" "$(cat "$TMP/gone.status")"; fi

# A sweep: one array job, a run directory and a spec per point, status of every task.
d="$TMP/sweep"
id=$(submit "$d" --sweep run.seed=3,4 --set slurm.ntasks_per_node=1) || notok "sweep: submit"
if wait_state "${id}_0" 90 COMPLETED FAILED CANCELLED && wait_state "${id}_1" 90 COMPLETED FAILED CANCELLED &&
    [ "$(field "${id}_0" JobState)" = COMPLETED ] && [ "$(field "${id}_1" JobState)" = COMPLETED ]; then
    ok "sweep: array job $id, tasks 0 and 1 completed"
else notok "sweep: tasks ended $(field "${id}_0" JobState) $(field "${id}_1" JobState)" "$(cat "$d"/p00*/slurm-*.out 2>&1 | tail -5)"; fi
h0=$(hash_of "$d/p000"); h1=$(hash_of "$d/p001")
if [ "$h0" = "$ref" ] && [ -n "$h1" ] && [ "$h1" != "$ref" ] && grep -q 'seed: 4' "$d/p001/job.yaml" &&
    [ -f "$d/p000/slurm-${id}_0.out" ] && [ "$(sed -n 2p "$d/points.tsv")" = "$(printf '0\t%s\t3' "$d/p000")" ]; then
    ok "sweep: point 0 (seed 3) equals the local run, point 1 (seed 4) differs; points.tsv, per-task logs"
else notok "sweep results: $h0 $h1 (ref $ref)" "$(cat "$d/points.tsv"; ls "$d/p000")"; fi
"$DFM" status "$d" >"$TMP/sweep.status" 2>&1
if [ "$(grep -c ' COMPLETED  *0  *60/60 ' "$TMP/sweep.status")" -eq 2 ]; then
    ok "sweep: dfm status lists both tasks COMPLETED at step 60/60"
else notok "sweep status" "$(cat "$TMP/sweep.status")"; fi
if "$DFM" status "$d" --json | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); assert [t["status"]["slurm"]["state"] for t in d["tasks"]]==["COMPLETED"]*2 and d["tasks"][1]["point"]=={"run.seed":"4"}'; then
    ok "sweep: dfm status --json"
else notok "sweep: status --json"; fi

[ $fails -eq 0 ]
