#!/bin/sh
# The command line itself: help, version, usage errors and exit codes.
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
check "--version names the MPI library" sh -c "'$DFM' --version | grep -qi 'mpi: .*open mpi'"
check "--version names the compiler" sh -c "'$DFM' --version | grep -q 'compiler: '"
# Every listed command answers --help with status 0 and a usage line.
for c in $("$DFM" help | awk '/^commands:/{f=1;next} f&&/^  [a-z]/{print $1}'); do
    check "$c --help" sh -c "'$DFM' $c --help | grep -qi 'usage'"
    check "$c rejects an unknown flag with 2" status_is 2 "$DFM" "$c" --no-such-flag
done
[ "$n_fail" -eq 0 ]
