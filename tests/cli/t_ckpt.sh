#!/bin/sh
# Checkpoints outside the training loop: kill -9 at every point of the commit protocol leaves the
# previous checkpoint loadable, a full disk (a small tmpfs) fails cleanly naming the path, and
# `dfm ckpt ls|verify|inspect|export` on a synthetic checkpoint (tests/dist/mpi_ckpt.c writes
# it). Needs DFM and DFM_BIN; uses mpirun.
set -u
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d /tmp/dfm_ckpt_XXXXXX)
trap 'rm -rf "$TMP"' EXIT
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
MPIRUN="mpirun --oversubscribe --mca pml ob1 --mca btl self,vader --bind-to none"
T="$DFM_BIN/tests/mpi_ckpt"
PY=/usr/bin/python3
n_fail=0
ok() { echo "ok - $1"; }
nok() { echo "not ok - $1"; n_fail=$((n_fail + 1)); }

# ---- kill -9 at every point of the commit protocol, on 2 ranks, synchronous and async -------
# (async: the shard and, on rank 0, the commit are written by the writer threads). Every case
# starts from a copy of one synchronous save of step 1.
base="$TMP/base"
timeout 60 $MPIRUN -np 2 "$T" save "$base" 1 > "$base.log" 2>&1 || { nok "first save"; tail -5 "$base.log"; }
for mode in save save-async; do
points="begin shard-half shard-written agreed manifest renamed latest retention"
# async: the points on the writer threads (begin and agreed are the same code as synchronous)
[ $mode = save ] || points="shard-half shard-written manifest renamed latest retention"
for point in $points; do
    victims="0 1"
    case $point in manifest | renamed | latest | retention) victims=0 ;; esac # rank 0 only
    [ $mode = save ] || case $point in shard-half) victims=1 ;; shard-written) victims=0 ;; esac
    for victim in $victims; do
        d="$TMP/kill-$mode-$point-$victim"
        what="$mode: kill -9 at $point on rank $victim"
        cp -a "$base" "$d" && : > "$d.log"
        start=$(date +%s)
        DFM_CKPT_KILL_AT="$point@$victim:2" timeout 60 $MPIRUN -np 2 "$T" "$mode" "$d" 2 \
            >> "$d.log" 2>&1
        rc=$?
        secs=$(($(date +%s) - start))
        if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]; then
            nok "$what: the job did not end with the killed rank (exit $rc)"
            continue
        fi
        if ! grep -q "killing myself at $point of step 2" "$d.log"; then
            nok "$what: the kill point was not reached"; tail -5 "$d.log"; continue
        fi
        # before the rename the newest good checkpoint is step 1; from the rename on, step 2;
        # a rank killed after the agreement races rank 0's commit: either (0 = any)
        case $point in renamed | latest | retention) want=2 ;; agreed) want=0 ;; *) want=1 ;; esac
        if timeout 60 $MPIRUN -np 2 "$T" check "$d" "$want" >> "$d.log" 2>&1 &&
            "$DFM" ckpt verify "$d/step-00000001" > /dev/null 2>&1; then
            ok "$what: job ended in ${secs}s, step-1 intact, newest good is step $want"
        else
            nok "$what: previous checkpoint not intact"; tail -8 "$d.log"
        fi
        # the next save goes through and cleans the partial one
        [ "$point" = shard-half ] || continue
        if timeout 60 $MPIRUN -np 2 "$T" "$mode" "$d" 3 >> "$d.log" 2>&1 &&
            [ -z "$(find "$d" -maxdepth 1 -name '*.tmp')" ]; then :
        else nok "$what: the next save failed or left a .tmp"; ls "$d"; fi
    done
done
done

# ---- a full disk during the save --------------------------------------------------------------
if [ "$(id -u)" -eq 0 ] && command -v unshare > /dev/null 2>&1; then
    d="$TMP/full"
    mkdir -p "$d"
    # 200 KiB: one checkpoint of the synthetic state (160 KiB) fits, a second one does not
    unshare -m sh -c "mount -t tmpfs -o size=200k tmpfs '$d' &&
        $MPIRUN -np 2 '$T' save '$d/ck' 1 > '$d.log1' 2>&1 &&
        { $MPIRUN -np 2 '$T' save '$d/ck' 2 > '$d.log2' 2>&1; echo \$? > '$d.rc'; } &&
        $MPIRUN -np 2 '$T' check '$d/ck' 1 > '$d.log3' 2>&1 && echo intact > '$d.ok';
        ls '$d/ck' > '$d.ls'" > /dev/null 2>&1
    if [ "$(cat "$d.rc" 2>/dev/null)" = 3 ] && grep -q "No space left on device" "$d.log2" &&
        grep -q "$d/ck/step-00000002.tmp/shard" "$d.log2" && [ -f "$d.ok" ] &&
        ! grep -q tmp "$d.ls"; then
        ok "full disk: the save fails on every rank naming the shard path, step 1 intact, no .tmp left"
    else
        nok "full disk: rc=$(cat "$d.rc" 2>/dev/null) $(cat "$d.ls" 2>/dev/null | tr '\n' ' ')"
        tail -5 "$d.log2" 2>/dev/null
    fi
else
    ok "full disk: skipped (needs root for a tmpfs)"
fi

# ---- dfm ckpt on a synthetic checkpoint -------------------------------------------------------
d="$TMP/cli"
timeout 60 $MPIRUN -np 2 "$T" save "$d" 5 > /dev/null 2>&1
timeout 60 $MPIRUN -np 2 "$T" save "$d" 6 > /dev/null 2>&1
mkdir -p "$d/step-00000007.tmp"
out=$("$DFM" ckpt ls "$d" 2>&1)
if printf '%s\n' "$out" | grep -q 'step-00000005 .* 5 .* 2  committed$' &&
    printf '%s\n' "$out" | grep -q 'step-00000006 .*committed (latest)' &&
    printf '%s\n' "$out" | grep -q 'step-00000007.tmp .*partial'; then
    ok "ckpt ls: steps, world size, committed/partial, latest"
else nok "ckpt ls: $out"; fi
if out=$("$DFM" ckpt verify "$d" 2>&1) && printf '%s\n' "$out" | grep -q 'all 2 checkpoints verified.*MB/s'; then
    ok "ckpt verify: all good"
else nok "ckpt verify: $out"; fi
if out=$("$DFM" ckpt inspect "$d" 2>&1) && printf '%s\n' "$out" | grep -q '^step: *6' &&
    printf '%s\n' "$out" | grep -q 'b.odd .*offset *10000 *count *7'; then
    ok "ckpt inspect: newest checkpoint's step and tensor table"
else nok "ckpt inspect: $out"; fi
if "$DFM" ckpt export -o "$TMP/s.safetensors" "$d" > /dev/null 2>&1 &&
    "$DFM" ckpt export --live -o "$TMP/live.safetensors" "$d/step-00000005" > /dev/null 2>&1 &&
    "$DFM" ckpt export --output="$TMP/w.bin" "$d" > /dev/null 2>&1 &&
    $PY - "$TMP/s.safetensors" "$TMP/live.safetensors" "$d" <<'EOF'
import json, struct, sys
def st(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    return h, b[8 + n:]
def shards(ck):
    """concatenate buffer k over the shards of a checkpoint, read with plain struct"""
    import glob
    out = {}
    for f in sorted(glob.glob(ck + "/shard-*.bin")):
        b = open(f, "rb").read()
        nbuf, flags = struct.unpack("<II", b[24:32])
        lo, hi = struct.unpack("<QQ", b[40:56])
        cnt = hi - lo
        for k in range(nbuf):
            out.setdefault(k, bytearray()).extend(b[64 + 4 * k * cnt: 64 + 4 * (k + 1) * cnt])
    return out
h, data = st(sys.argv[1])
assert h["__metadata__"]["weights"] == "ema" and h["__metadata__"]["step"] == "6", h["__metadata__"]
assert h["a.weight"]["shape"] == [100, 50] and h["b.odd"]["data_offsets"] == [40000, 40028], h
assert bytes(shards(sys.argv[3] + "/step-00000006")[1]) == data, "EMA bytes differ"
h, data = st(sys.argv[2])
assert h["__metadata__"]["weights"] == "live" and h["__metadata__"]["step"] == "5"
assert bytes(shards(sys.argv[3] + "/step-00000005")[0]) == data, "live bytes differ"
EOF
then ok "ckpt export: safetensors (EMA and live) hold exactly the checkpoint's bytes; weights.bin"
else nok "ckpt export"; fi
sh1="$d/step-00000006/shard-00001-of-00002.bin"
printf 'X' | dd of="$sh1" bs=1 seek=300 conv=notrunc 2> /dev/null
out=$("$DFM" ckpt verify "$d" 2>&1); rc=$?
if [ "$rc" -eq 1 ] && printf '%s\n' "$out" | grep -q "shard-00001-of-00002.bin: SHA-256 mismatch over its [0-9]* bytes"; then
    ok "ckpt verify: a flipped byte exits 1 naming the file and its byte count"
else nok "ckpt verify after a flipped byte: rc=$rc $out"; fi
truncate -s 100 "$sh1"
out=$("$DFM" ckpt verify "$d/step-00000006" 2>&1); rc=$?
if [ "$rc" -eq 1 ] && printf '%s\n' "$out" | grep -q "100 bytes, the manifest says [0-9]* (truncated)"; then
    ok "ckpt verify: a truncated shard exits 1 with its byte count"
else nok "ckpt verify after truncation: rc=$rc $out"; fi
if "$DFM" ckpt export -o "$TMP/bad.safetensors" "$d/step-00000006" > /dev/null 2>&1; then
    nok "ckpt export of a corrupt checkpoint succeeded"
else ok "ckpt export refuses a corrupt checkpoint"; fi
"$DFM" ckpt frob "$d" > /dev/null 2>&1; rc=$?
[ "$rc" -eq 2 ] && ok "ckpt: unknown subcommand is a usage error" || nok "ckpt frob exit $rc"
"$DFM" ckpt export "$d" > /dev/null 2>&1; rc=$?
[ "$rc" -eq 2 ] && ok "ckpt export without -o is a usage error" || nok "ckpt export without -o: exit $rc"
"$DFM" ckpt ls "" > /dev/null 2>&1; rc=$?
[ "$rc" -eq 2 ] && ok "ckpt ls '': an empty path is a usage error" || nok "ckpt ls '': exit $rc"
if "$DFM" ckpt --help | grep -q "usage: dfm ckpt ls" && "$DFM" help ckpt > /dev/null; then
    ok "ckpt --help"
else nok "ckpt --help"; fi
"$DFM" ckpt verify "$TMP/nonexistent" > /dev/null 2>&1; rc=$?
[ "$rc" -eq 1 ] && ok "ckpt verify of a missing directory exits 1" || nok "ckpt verify missing: exit $rc"

[ "$n_fail" -eq 0 ]
