#!/bin/sh
# The batch script requeues a job only when dfm train exits 75 ("stopped on the warning signal,
# checkpoint saved"): a cancelled job stays cancelled, a failing job stays failed, a job whose rank
# is killed with SIGKILL ends at once (srun --kill-on-bad-exit=1) and stays failed, and a job that
# gets the warning signal (delivered here with scancel --signal) checkpoints, requeues itself,
# resumes and ends with weights bitwise equal to an uninterrupted run, under srun (signal to the
# ranks) and under mpirun (signal to the batch shell, passed on).
. "$(dirname "$0")/lib.sh"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/dfm_sl_requeue.XXXXXX") || exit 1
trap 'scancel $(squeue -h -o %i 2>/dev/null) 2>/dev/null; rm -rf "$TMP"' EXIT
LONG="--set train.steps=1000000 --set train.log_every=100000"

# history_has DIR PATTERN
history_has() { grep -q -- "$2" "$1/slurm-history.log" 2>/dev/null; }

# ---- a cancelled job is not requeued -------------------------------------------------------------
d="$TMP/cancel"
# shellcheck disable=SC2086
id=$(submit "$d" $LONG) || notok "cancel: submit"
if wait_state "$id" 60 RUNNING && wait_step "$d" 5 60; then
    scancel "$id"
    wait_state "$id" 60 CANCELLED COMPLETED FAILED PENDING
    sleep 3 # a requeue would have happened by now: the script's last act is to call it
    st=$(field "$id" JobState) rs=$(field "$id" Restarts)
    if [ "$st" = CANCELLED ] && [ "$rs" = 0 ] && ! history_has "$d" "action=requeue"; then
        ok "cancelled job $id stays CANCELLED, 0 restarts ($(grep ' end ' "$d/slurm-history.log" | sed 's/.* end /end /'))"
    else notok "cancel: state $st, restarts $rs" "$(cat "$d/slurm-history.log")"; fi
else notok "cancel: job $id never ran" "$(cat "$d"/slurm-*.out 2>&1 | tail -5)"; fi

# ---- a failing job is not requeued ---------------------------------------------------------------
d="$TMP/fail"
id=$(DFM_FAULT_NAN_STEPS=2-100 submit "$d" --set train.max_nonfinite=2) || notok "fail: submit"
wait_state "$id" 60 FAILED COMPLETED CANCELLED
sleep 3
st=$(field "$id" JobState) rs=$(field "$id" Restarts) ec=$(field "$id" ExitCode)
if [ "$st" = FAILED ] && [ "$rs" = 0 ] && history_has "$d" "end job=$id restart=0 status=1 action=none" &&
    ! history_has "$d" "action=requeue" && [ "$(grep -c ' start ' "$d/slurm-history.log")" -eq 1 ]; then
    ok "failing job $id (exit code $ec) stays FAILED after one start, 0 restarts"
else notok "fail: state $st, restarts $rs, exit code $ec" "$(cat "$d/slurm-history.log"; tail -3 "$d/slurm-$id.out")"; fi

# ---- a rank killed with kill -9 under srun: the job ends at once, not requeued -------------------
# srun --kill-on-bad-exit=1 ends the step when a task dies (here Open MPI, told by PMIx, also
# aborts on its own; the option covers MPI libraries and PMI plugins that do not); the watchdog
# is off, so it is not what ends the job.
d="$TMP/dead"
# shellcheck disable=SC2086
id=$(submit "$d" $LONG --set train.watchdog=0) || notok "dead rank: submit"
if wait_state "$id" 60 RUNNING && wait_step "$d" 5 60; then
    victim=$(pgrep -f "^[^ ]*dfm train $d/job.yaml\$" | head -1) # a task, not srun
    start=$(date +%s)
    [ -n "$victim" ] && kill -9 "$victim"
    wait_state "$id" 60 FAILED COMPLETED CANCELLED
    secs=$(($(date +%s) - start))
    sleep 2 # a requeue would have happened by now
    st=$(field "$id" JobState) rs=$(field "$id" Restarts)
    if [ -n "$victim" ] && [ "$st" = FAILED ] && [ "$rs" = 0 ] && [ "$secs" -le 30 ] &&
        ! history_has "$d" "action=requeue"; then
        ok "a rank of job $id killed with SIGKILL under srun: the job ended in ${secs}s, FAILED, not requeued"
    else notok "dead rank under srun: victim '$victim', state $st after ${secs}s, restarts $rs" "$(tail -5 "$d/slurm-$id.out")"; fi
else notok "dead rank: job $id never ran" "$(cat "$d"/slurm-*.out 2>&1 | tail -5)"; fi

# ---- warning signal -> checkpoint -> requeue -> resume -------------------------------------------
# Does this dfm train stop with 75 on SIGUSR1 (checkpoint and resume)? Probe it locally.
"$DFM" train "$TINY" --set run.out_dir="$TMP/probe" $LONG >"$TMP/probe.log" 2>&1 &
pid=$!
wait_step "$TMP/probe" 5 60
kill -USR1 $pid 2>/dev/null
{ wait $pid; } 2>/dev/null
probe=$?
if [ $probe -ne 75 ]; then
    skip "preempt -> requeue -> resume (srun and mpirun): dfm train exits $probe on SIGUSR1, not 75 (no checkpoint-and-resume support in this build)"
    [ $fails -eq 0 ]
    exit
fi

STEPS=1500
"$DFM" train "$TINY" --set run.out_dir="$TMP/ref" --set train.steps=$STEPS >"$TMP/ref.log" 2>&1 ||
    notok "reference run" "$(tail -3 "$TMP/ref.log")"

for launcher in srun mpirun; do
    d="$TMP/pre-$launcher"
    id=$(submit "$d" --set train.steps=$STEPS --set slurm.launcher=$launcher) || { notok "$launcher: submit"; continue; }
    if ! wait_step "$d" 100 90; then notok "$launcher: job $id made no progress" "$(tail -5 "$d"/slurm-*.out)"; continue; fi
    if [ $launcher = srun ]; then scancel --signal=USR1 "$id"      # to the ranks (job steps)
    else scancel --batch --signal=USR1 "$id"; fi                   # to the batch shell (B:)
    n=0
    while [ "$(field "$id" Restarts)" != 1 ] && [ $n -lt 300 ]; do sleep 0.2; n=$((n + 1)); done
    wait_state "$id" 120 COMPLETED FAILED CANCELLED
    st=$(field "$id" JobState) rs=$(field "$id" Restarts)
    if [ "$st" = COMPLETED ] && [ "$rs" = 1 ] && history_has "$d" "restart=0 status=75 action=requeue" &&
        history_has "$d" "start job=$id id=$id restart=1" && history_has "$d" "end job=$id restart=1 status=0"; then
        ok "$launcher: job $id got the warning signal, exited 75, requeued itself once, completed"
    else notok "$launcher: state $st, restarts $rs" "$(cat "$d/slurm-history.log"; tail -8 "$d/slurm-$id.out")"; continue; fi
    # The second start resumed from the checkpoint (its log says so), it did not train from scratch.
    first=$(sed -n 's/.*resuming from .*: step \([0-9]*\) of .*/\1/p' "$d/slurm-$id.out" | head -1)
    if [ -n "$first" ] && [ "$first" -gt 0 ]; then ok "$launcher: the requeued start resumed from the checkpoint of step $first"
    else notok "$launcher: the requeued start did not resume" "$(grep -i resum "$d/slurm-$id.out")"; fi
    if [ -n "$(hash_of "$d")" ] && [ "$(hash_of "$d")" = "$(hash_of "$TMP/ref")" ] &&
        "$DFM_BIN/tools/wcmp" "$TMP/ref/weights.bin" "$d/weights.bin" 0 >/dev/null; then
        ok "$launcher: weights after preempt -> requeue -> resume bitwise equal to the uninterrupted run ($(hash_of "$d"))"
    else notok "$launcher: weights differ: $(hash_of "$d") vs $(hash_of "$TMP/ref")"; fi
    "$DFM" status "$d" >"$d.status" 2>&1
    if grep -q "slurm job:  $id  COMPLETED  restarts 1" "$d.status" && grep -q "^starts:     2," "$d.status" &&
        grep -q "^checkpoint: " "$d.status" && ! grep -q "^checkpoint: none" "$d.status"; then
        ok "$launcher: dfm status shows COMPLETED, restarts 1, 2 starts and the checkpoint"
        sed -n '1,6s/^/#   /p' "$d.status"
    else notok "$launcher: dfm status" "$(cat "$d.status")"; fi
done

[ $fails -eq 0 ]
