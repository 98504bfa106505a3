#!/bin/sh
# The command line itself: help, version, usage errors and exit codes; and make lint.
set -u
n_fail=0
check() { # name, command...
    name=$1; shift
    if "$@" >/dev/null 2>&1; then echo "ok - $name"; else echo "not ok - $name"; n_fail=$((n_fail + 1)); fi
}
status_is() { # expected status, command...
    want=$1; shift
    "$@" >/dev/null 2>&1
    [ "$?" -eq "$want" ]
}
check "help exits 0" "$DFM" help
check "--help exits 0" "$DFM" --help
check "no arguments exits 2" status_is 2 "$DFM"
check "unknown command exits 2" status_is 2 "$DFM" frobnicate
check "help of an unknown command exits 2" status_is 2 "$DFM" help frobnicate
check "--version names the commit" sh -c "'$DFM' --version | grep -q 'commit '"
# the commit of the checkout the binary was built from, not one baked into an older object
# (skipped outside a git checkout)
here=$(cd "$(dirname "$0")/../.." && pwd)
if head=$(git -C "$here" rev-parse --short=12 HEAD 2> /dev/null); then
    check "--version names the checkout's commit ($head)" sh -c "'$DFM' --version | grep -q 'commit $head'"
fi
check "--version names the MPI library" sh -c "'$DFM' --version | grep -qi 'mpi: .*open mpi'"
check "--version names the compiler" sh -c "'$DFM' --version | grep -q 'compiler: '"
# Every listed command answers --help with status 0 and a usage line.
for c in $("$DFM" help | awk '/^commands:/{f=1;next} f&&/^  [a-z]/{print $1}'); do
    check "$c --help" sh -c "'$DFM' $c --help | grep -qi 'usage'"
    check "$c rejects an unknown flag with 2" status_is 2 "$DFM" "$c" --no-such-flag
done

# Options with values take "--opt VALUE" and "--opt=VALUE" alike; an empty path (an unset shell
# variable) is a usage error that names the flag, before anything is written.
says() { # expected status, text the output must contain, command...
    want=$1; text=$2; shift 2
    out=$("$@" 2>&1)
    [ "$?" -eq "$want" ] && printf '%s\n' "$out" | grep -qF -- "$text"
}
CT=$(mktemp -d /tmp/dfm_cli_XXXXXX)
check "fetch --dir \"\" is refused naming --dir" says 2 "--dir was given an empty path" "$DFM" fetch fashion-mnist --dir ""
check "fetch --dir= is refused naming --dir" says 2 "--dir was given an empty path" "$DFM" fetch fashion-mnist --dir=
check "fetch --mirror \"\" is refused naming --mirror" says 2 "--mirror was given an empty path" "$DFM" fetch fashion-mnist --mirror ""
check "train \"\" is refused as an empty job spec path" says 2 "empty string" "$DFM" train ""
check "validate \"\" is refused as an empty job spec path" says 2 "empty string" "$DFM" validate ""
check "fetch --retries= is refused" says 2 "--retries must be an integer" "$DFM" fetch fashion-mnist --retries=
check "fetch accepts --dir=X --mirror=URL --retries=N" "$DFM" fetch fashion-mnist --dir="$CT/data" \
    --no-builtin-mirrors --mirror=file:///usr/share/datasets/fashion-mnist/ --retries=1 --quiet
check "fetch --dir=X put the data in X" test -s "$CT/data/fashion-mnist/train-labels-idx1-ubyte"
rm -rf "$CT"

# make lint: the real tree passes; a copy with one forbidden include of each kind fails, naming it.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
check "lint passes on the sources" sh "$ROOT/tests/lint.sh" "$ROOT"
LT=$(mktemp -d /tmp/dfm_lint_XXXXXX)
cp -r "$ROOT/cmd" "$ROOT/dist" "$ROOT/model" "$ROOT/sched" "$ROOT/io" "$ROOT/core" "$LT/"
lint_rejects() { # name, file, line to append, expected message part
    cp "$ROOT/$2" "$LT/$2"
    printf '%s\n' "$3" >> "$LT/$2"
    out=$(sh "$ROOT/tests/lint.sh" "$LT" 2>&1)
    rc=$?
    cp "$ROOT/$2" "$LT/$2"
    if [ "$rc" -eq 1 ] && printf '%s\n' "$out" | grep -qF "$4"; then echo "ok - lint rejects $1"
    else echo "not ok - lint accepts $1 (status $rc: $out)"; n_fail=$((n_fail + 1)); fi
}
lint_rejects "model including io" model/ops.c '#include "io/json.h"' 'model/ops.c:'
lint_rejects "sched including model" sched/lr.c '#include "model/net.h"' 'sched/ may include only core'
lint_rejects "io including dist" io/json.c '#include "dist/dist.h"' 'io/ may include only core'
lint_rejects "core including io" core/log.c '#include "io/json.h"' 'core/ may include nothing'
lint_rejects "dist including cmd" dist/sample.c '#include "cmd/cmd.h"' 'dist/ may include only'
lint_rejects "MPI outside dist" io/json.c 'int lint_probe = MPI_COMM_WORLD;' 'MPI outside dist/'
lint_rejects "FFTW outside its module" model/ops.c '#include <fftw3.h>' 'FFTW'
lint_rejects "libcurl outside its module" io/dataset.c '#include <curl/curl.h>' 'libcurl'
rm -rf "$LT"
[ "$n_fail" -eq 0 ]
