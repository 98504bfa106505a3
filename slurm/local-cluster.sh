#!/bin/sh
# slurm/local-cluster.sh - a one-node Slurm cluster on this machine, for tests and trying things.
#
#   slurm/local-cluster.sh up   [DIR]   install slurm-wlm and munge if missing (Debian, root or
#                                       sudo), start munged, slurmctld and slurmd on 127.0.0.1
#                                       with all state under DIR, wait until the node is idle,
#                                       then print "export SLURM_CONF=DIR/slurm.conf" on stdout
#   slurm/local-cluster.sh down [DIR]   cancel every job, stop the daemons by their recorded
#                                       PIDs, remove DIR
#   slurm/local-cluster.sh env  [DIR]   print the export line again
#
# DIR defaults to $DFM_SLURM_DIR, else /tmp/dfm-slurm. Typical use:
#
#   eval "$(slurm/local-cluster.sh up)"   # now sbatch, squeue, dfm submit talk to it
#   ...
#   slurm/local-cluster.sh down
#
# Every cluster is private: its own munged socket, its own free TCP ports, its own spool and
# state directories and job ids, so several can run side by side and an installed system Slurm
# (/etc/slurm) is never touched. Nothing is started through systemd or init scripts.
#
# Settings chosen for tests: no cgroups (proctrack/linuxproc, task/none), no accounting database
# (accounting_storage/none; finished jobs are appended to DIR/log/jobcomp.txt), PMIx as the
# default MPI plugin (Open MPI under srun needs it), a scheduler pass every 2 s, 10-second job
# credentials (a requeued job may start again after about cred_expire seconds, not 120), 5 s
# between SIGTERM and SIGKILL. LOCAL_SLURM_CPUS=N advertises N CPUs instead of the real count
# (so `sbatch -n 4` can start on a 2-core machine; the tasks then share cores).
#
# Exit status: 0 done; 1 a daemon did not start (its log is printed); 3 the cluster cannot run
# here at all (not root and no sudo, packages missing and not installable): the reason is printed
# on stderr, so test drivers can count that as skipped.
set -eu

PKGS="slurmctld slurmd slurm-client munge"
cmd=${1:-}
DIR=${2:-${DFM_SLURM_DIR:-/tmp/dfm-slurm}}

say() { echo "local-cluster: $*" >&2; }
cannot() { say "cannot run here: $*"; exit 3; }

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ---- packages ----------------------------------------------------------------------------------
SUDO=""
need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
            cannot "the daemons must run as root (munged as the munge user): not root, and no passwordless sudo"
        fi
    fi
}

install_missing() {
    missing=""
    for p in $PKGS; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    command -v apt-get >/dev/null 2>&1 || cannot "packages missing:$missing, and no apt-get to install them"
    say "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    # Another apt-get may hold the dpkg lock for a while: wait for it (up to 5 minutes).
    $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends $missing \
        >"$DIR.apt.log" 2>&1 ||
        { $SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq >>"$DIR.apt.log" 2>&1 &&
          $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends $missing \
              >>"$DIR.apt.log" 2>&1; } ||
        { tail -5 "$DIR.apt.log" >&2; cannot "apt-get install$missing failed (log: $DIR.apt.log)"; }
    rm -f "$DIR.apt.log"
}

# ---- helpers -----------------------------------------------------------------------------------
port_free() { [ -z "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }
free_port() {
    # A random port in 20000..59999 that nothing listens on (and not $1).
    i=0
    while [ $i -lt 200 ]; do
        p=$(( $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000 + 20000 ))
        if [ "$p" != "${1:-}" ] && port_free "$p"; then echo "$p"; return 0; fi
        i=$((i + 1))
    done
    say "no free TCP port found"; exit 1
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
pid_of() { [ -f "$DIR/run/$1.pid" ] && cat "$DIR/run/$1.pid" || true; }

# start NAME LOG CMD...: run CMD in the foreground mode of the daemon, detached, and record its PID
start() {
    name=$1; log=$2; shift 2
    setsid "$@" </dev/null >"$log" 2>&1 &
    echo $! >"$DIR/run/$name.pid"
}

fail_start() {
    say "$1 did not start; last lines of $2:"
    tail -15 "$2" >&2 || true
    stop_daemons
    exit 1
}

wait_for() { # wait_for SECONDS CMD...: retry CMD every 0.2 s
    n=$(( $1 * 5 )); shift
    while [ "$n" -gt 0 ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
        n=$((n - 1))
    done
    return 1
}

node_idle() { [ "$(sinfo -h -n localhost -o %t 2>/dev/null)" = idle ]; }

stop_daemons() {
    # munged runs under runuser: its own PID file names the daemon, ours the runuser around it.
    if [ -f "$DIR/munge/munged.pid" ]; then cp "$DIR/munge/munged.pid" "$DIR/run/munged.self.pid"; fi
    for d in slurmd slurmctld munged.self munged; do
        pid=$(pid_of "$d")
        if alive "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
    done
    for d in slurmd slurmctld munged.self munged; do
        pid=$(pid_of "$d")
        n=50
        while alive "$pid" && [ $n -gt 0 ]; do sleep 0.2; n=$((n - 1)); done
        if alive "$pid"; then say "$d ($pid) ignored SIGTERM: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
        rm -f "$DIR/run/$d.pid"
    done
}

print_env() { echo "export SLURM_CONF=$DIR/slurm.conf"; }

# ---- up ----------------------------------------------------------------------------------------
up() {
    need_root
    for d in slurmctld slurmd munged; do
        if alive "$(pid_of "$d")"; then
            say "already up in $DIR ($d is running); 'down' first"; print_env; return 0
        fi
    done
    mkdir -p "$(dirname "$DIR")"
    install_missing
    for b in slurmctld slurmd munged sinfo sbatch scontrol; do
        command -v "$b" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin"
        command -v "$b" >/dev/null 2>&1 || cannot "$b not found after installing $PKGS"
    done
    case "$DIR" in /*) ;; *) DIR="$(pwd)/$DIR" ;; esac
    rm -rf "$DIR"
    # The munge user must reach its socket directory: DIR is world-readable, not writable.
    mkdir -p "$DIR/run" "$DIR/log" "$DIR/state" "$DIR/spool" "$DIR/tmp" "$DIR/munge"
    chmod 755 "$DIR"
    chown munge:munge "$DIR/munge"
    chmod 755 "$DIR/munge"   # munged wants its socket directory searchable by all

    key=/etc/munge/munge.key
    if [ ! -s "$key" ]; then
        key="$DIR/munge/munge.key"
        dd if=/dev/urandom of="$key" bs=1024 count=1 2>/dev/null
        chown munge:munge "$key"; chmod 600 "$key"
    fi
    sock="$DIR/munge/munge.socket"
    start munged "$DIR/log/munged.out" runuser -u munge -- munged -F --key-file="$key" \
        --socket="$sock" --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" \
        --seed-file="$DIR/munge/munged.seed"
    wait_for 10 test -S "$sock" || fail_start munged "$DIR/log/munged.out"

    # Node shape from the hardware (slurmd -C), optionally more CPUs advertised.
    hw=$(slurmd -C | head -1)
    field() { printf '%s\n' "$hw" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
    cpus=$(field CPUs); sockets=$(field SocketsPerBoard); cores=$(field CoresPerSocket)
    threads=$(field ThreadsPerCore); mem=$(field RealMemory)
    node="NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus Sockets=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$mem"
    overrides=""
    if [ -n "${LOCAL_SLURM_CPUS:-}" ] && [ "$LOCAL_SLURM_CPUS" != "$cpus" ]; then
        node="NodeName=localhost NodeAddr=127.0.0.1 CPUs=$LOCAL_SLURM_CPUS RealMemory=$mem"
        overrides="SlurmdParameters=config_overrides"
    fi
    ctl_port=$(free_port)
    d_port=$(free_port "$ctl_port")
    first_id=$(( $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') * 100 + 1000 ))

    cat >"$DIR/slurm.conf" <<EOF
# A one-node test cluster written by slurm/local-cluster.sh; everything lives under $DIR.
ClusterName=dfmlocal
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctl_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock,cred_expire=10
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
TmpFS=$DIR/tmp
SlurmctldPidFile=$DIR/run/slurmctld.daemon.pid
SlurmdPidFile=$DIR/run/slurmd.daemon.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
MailProg=/bin/true
ReturnToService=2
FirstJobId=$first_id
KillWait=5
MinJobAge=600
$overrides
$node State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF="$DIR/slurm.conf"
    start slurmctld "$DIR/log/slurmctld.out" slurmctld -D -i -f "$SLURM_CONF"
    wait_for 20 scontrol ping || fail_start slurmctld "$DIR/log/slurmctld.log"
    start slurmd "$DIR/log/slurmd.out" slurmd -D -N localhost -f "$SLURM_CONF"
    if ! wait_for 30 node_idle; then
        say "node state: $(sinfo -h -n localhost -o '%t %E' 2>&1)"
        fail_start slurmd "$DIR/log/slurmd.log"
    fi
    say "up: $DIR (slurmctld on 127.0.0.1:$ctl_port, node localhost with $(sinfo -h -o %c) CPUs)"
    print_env
}

# ---- down --------------------------------------------------------------------------------------
down() {
    [ -d "$DIR/run" ] || { say "nothing to stop in $DIR"; return 0; }
    export SLURM_CONF="$DIR/slurm.conf"
    if alive "$(pid_of slurmctld)"; then
        # End the jobs first, so no job step outlives its slurmd.
        ids=$(squeue -h -o %i 2>/dev/null || true)
        if [ -n "$ids" ]; then
            # shellcheck disable=SC2086
            scancel $ids 2>/dev/null || true
            wait_for 20 sh -c '[ -z "$(squeue -h -o %i 2>/dev/null)" ]' || say "jobs still listed: $(squeue -h -o '%i %T' | tr '\n' ' ')"
        fi
    fi
    stop_daemons
    rm -rf "$DIR"
    say "down: $DIR removed"
}

case "$cmd" in
up) up ;;
down) need_root; down ;;
env) print_env ;;
*) usage ;;
esac
