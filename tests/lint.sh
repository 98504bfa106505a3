#!/bin/sh
# make lint: the layering rules of README.md and CONTRIBUTING.md, checked on the sources.
#   1. include graph: cmd -> dist, io, model, sched, core; dist -> model, sched, io, core;
#      model, sched, io -> core only; core -> nothing. A project include names its folder
#      ("model/net.h"); one without a folder is a file beside the includer.
#   2. MPI only in dist/ (no <mpi.h>, no MPI_ identifiers elsewhere, unit tests included).
#   3. each third-party library in its one module: FFTW model/spectral.c, libcurl and zlib
#      io/fetch.c, libyaml the job-spec reader io/jobspec*.c and io/ckpt.c, OpenBLAS and
#      oneDNN model/gemm.c, libpng io/image.c, OpenSSL io/sha256.c.
# Usage: sh tests/lint.sh [ROOT]   (default: the repository this script is in). Prints every
# violation as "lint: file:line: what" and exits 1 when there is one.
set -u
ROOT=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$ROOT" || exit 2
SRC_DIRS="cmd dist model sched io core"
bad=0

# allowed FOLDER: the folders FOLDER's files may include (besides its own)
allowed() {
    case $1 in
    cmd) echo "dist io model sched core" ;;
    dist) echo "model sched io core" ;;
    model | sched | io) echo "core" ;;
    core) echo "" ;;
    esac
}

files=$(find $SRC_DIRS -name '*.[ch]' 2>/dev/null | sort)
for f in $files; do
    from=${f%%/*}
    ok_dirs="$from $(allowed "$from")"
    # "#include "x/y.h"" lines with their line numbers
    out=$(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" | while IFS= read -r l; do
        n=${l%%:*}
        inc=$(printf '%s\n' "$l" | sed -E 's/^[0-9]+:[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]*)".*/\1/')
        case $inc in
        */*) to=${inc%%/*} ;;
        *) to=$from ;; # beside the including file (a generated header)
        esac
        hit=0
        for d in $ok_dirs; do [ "$d" = "$to" ] && hit=1; done
        if [ $hit -eq 0 ]; then
            if [ -z "$(allowed "$from")" ]; then
                echo "lint: $f:$n: $from/ includes \"$inc\": $from/ may include nothing outside itself"
            else
                echo "lint: $f:$n: $from/ includes \"$inc\": $from/ may include only $(allowed "$from" | sed 's/ /, /g')"
            fi
        fi
    done)
    if [ -n "$out" ]; then printf '%s\n' "$out"; bad=1; fi
done

# MPI outside dist/
mpi=$(grep -rnE '#[[:space:]]*include[[:space:]]*<mpi\.h>|\bMPI_[A-Za-z_]+' --include='*.c' --include='*.h' \
      cmd core io model sched tests/core tests/io tests/model tests/sched 2>/dev/null)
if [ -n "$mpi" ]; then
    printf '%s\n' "$mpi" | sed 's/^/lint: MPI outside dist\/: /'
    bad=1
fi

# confine LIBRARY-HEADER-REGEX ALLOWED-FILE-REGEX NAME
confine() {
    hits=$(grep -rnE "#[[:space:]]*include[[:space:]]*<($1)" --include='*.c' --include='*.h' $SRC_DIRS 2>/dev/null |
           grep -vE "^($2):")
    if [ -n "$hits" ]; then
        printf '%s\n' "$hits" | sed "s|^|lint: $3 outside its module: |"
        bad=1
    fi
}
confine 'fftw3\.h' 'model/spectral\.c' "FFTW (model/spectral.c)"
confine 'curl/' 'io/fetch\.c' "libcurl (io/fetch.c)"
confine 'zlib\.h' 'io/fetch\.c' "zlib (io/fetch.c)"
confine 'yaml\.h' 'io/jobspec[a-z_]*\.c|io/ckpt\.c' "libyaml (io/jobspec*.c, io/ckpt.c)"
confine 'cblas\.h|openblas' 'model/gemm\.c' "OpenBLAS (model/gemm.c)"
confine 'oneapi/dnnl|dnnl\.h' 'model/gemm\.c' "oneDNN (model/gemm.c)"
confine 'png\.h' 'io/image\.c' "libpng (io/image.c)"
confine 'openssl/' 'io/sha256\.c' "OpenSSL (io/sha256.c)"

if [ $bad -ne 0 ]; then
    echo "lint: failed (the rules: README.md, Layout; CONTRIBUTING.md, Where code goes)" >&2
    exit 1
fi
echo "lint: ok (include graph, MPI in dist/ only, each library in its module; $(echo "$files" | wc -l) files)"
