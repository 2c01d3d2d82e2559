#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, to try and test the cluster path (hydra/launcher=slurm):
#
#   scripts/slurm.sh up       install slurm and munge if missing (as root, with apt), write the config, start munged,
#                             slurmctld and slurmd; nothing to do if they run already
#   scripts/slurm.sh down     cancel the cluster's jobs (SIGTERM: a run checkpoints and stops), then stop the daemons
#   scripts/slurm.sh status   exit 0 if the cluster answers, 1 otherwise
#   scripts/slurm.sh check    exit 0 if it runs or `up` can start it, 3 and one line saying why not otherwise
#   scripts/slurm.sh env      print SLURM_CONF=...: `export $(scripts/slurm.sh env)` points commands at this cluster
#
# Everything lives in one folder, $NOISEREG_SLURM_DIR (default /tmp/noisereg-slurm): slurm.conf, the munge key,
# sockets, logs, pid files and the controller's state. One partition, `debug`, with this machine's CPUs and memory.
# The daemons listen on 127.0.0.1 only, on ports of their own (16817, 16818), and munged on a socket of its own, so
# an installed SLURM or munge is left alone. Commands find the cluster through SLURM_CONF=$DIR/slurm.conf, and
# through /etc/slurm/slurm.conf, linked there when no other config is.
#
# `up` exits 3 after one line saying why when a cluster cannot be started here (not root, or the packages are
# missing and apt cannot install them); 1 when one should have started and did not (the line names the logs).
set -euo pipefail

DIR=${NOISEREG_SLURM_DIR:-/tmp/noisereg-slurm}
CONF=$DIR/slurm.conf
SYSTEM_CONF=/etc/slurm/slurm.conf
PACKAGES=(slurmctld slurmd slurm-client munge)
NODE=$(hostname -s)

say() { echo "slurm: $*"; }

export SLURM_CONF=$CONF

running() {  # the three daemons alive, by their pid files
    local name
    for name in munged slurmctld slurmd; do
        [ -f "$DIR/$name.pid" ] && [ -d "/proc/$(cat "$DIR/$name.pid")" ] || return 1
    done
}

answers() {  # the controller answers and the node takes jobs
    running && scontrol ping >/dev/null 2>&1 \
        && sinfo --noheader --nodes="$NODE" --format=%t 2>/dev/null | grep -qE '^(idle|mix|alloc|comp)'
}

missing_packages() {
    command -v slurmctld >/dev/null || echo slurmctld
    command -v slurmd >/dev/null || echo slurmd
    command -v sbatch >/dev/null || echo slurm-client
    command -v munged >/dev/null || echo munge
}

cannot_start() {  # one line saying why `up` cannot start a cluster here, or nothing
    local missing
    missing=$(missing_packages | tr '\n' ' ')
    if [ "$(id -u)" != 0 ]; then
        if [ -n "$missing" ]; then
            echo "cannot start a cluster here: not root and ${missing% } not installed" \
                "(run 'sudo apt-get install -y ${PACKAGES[*]}' then 'sudo make slurm-up')"
        else
            echo "cannot start a cluster here: slurmd runs as root (run 'sudo make slurm-up')"
        fi
    elif [ -n "$missing" ] && ! command -v apt-get >/dev/null; then
        echo "cannot start a cluster here: ${missing% } not installed and no apt-get to install them"
    fi
}

install_packages() {
    local missing
    missing=$(missing_packages | tr '\n' ' ')
    [ -z "$missing" ] && return 0
    say "installing ${missing% } with apt-get"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${PACKAGES[@]}") >"$DIR/log/apt.log" 2>&1 \
        || { say "cannot start a cluster here: apt-get install failed, see $DIR/log/apt.log"; exit 3; }
}

write_config() {
    # CPUs and memory as slurmd sees this machine (slurmd -C), so the node registers as configured.
    local node_line
    node_line=$(slurmd -C | head -1 | sed "s/^NodeName=[^ ]*/NodeName=$NODE NodeAddr=127.0.0.1/")
    cat >"$CONF" <<EOF
# Written by scripts/slurm.sh: a single-node cluster on this machine, talking to 127.0.0.1 only.
ClusterName=noisereg
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmUser=$(id -un)
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire is also how long a requeued job waits before it may start again (default 120 s).
AuthInfo=socket=$DIR/munge/munge.socket,cred_expire=5
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# No cgroups: processes tracked through /proc, tasks not bound.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
# No accounting database (slurmdbd): sacct has nothing to read, squeue and scontrol show jobs.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# Cores and memory are what jobs ask for (--cpus-per-task, --mem).
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/builtin
# Look at pending jobs every second (default 60), so a requeued job starts soon after it may.
SchedulerParameters=sched_interval=1
ReturnToService=2
# Seconds between SIGTERM and SIGKILL when a job is cancelled, requeued or at its limit (default 30): ample for a
# job of this suite to write its checkpoint after its step.
KillWait=10
$node_line State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
    if [ ! -f "$DIR/munge/munge.key" ]; then
        dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
    fi
    chmod 400 "$DIR/munge/munge.key"
    munged --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
        --pid-file="$DIR/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed"
}

wait_for() {  # wait_for SECONDS COMMAND...: until the command succeeds
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.5
    done
}

up() {
    if answers; then
        say "cluster already running (partition debug; SLURM_CONF=$CONF)"
        return 0
    fi
    local why
    why=$(cannot_start)
    if [ -n "$why" ]; then
        say "$why"
        exit 3
    fi
    mkdir -p "$DIR"/{munge,state,spool,log}
    chmod 755 "$DIR"
    chmod 755 "$DIR/munge"  # clients of any user reach the socket; the key inside is root's (0400)
    install_packages
    down quiet  # whatever half of an earlier cluster still runs
    write_config
    start_munge
    slurmctld -f "$CONF"
    slurmd -f "$CONF" -N "$NODE"
    if ! wait_for 30 answers; then
        say "the cluster did not start; see $DIR/log/"
        tail -n 5 "$DIR"/log/*.log >&2 || true
        exit 1
    fi
    if [ ! -e "$SYSTEM_CONF" ] || [ "$(readlink "$SYSTEM_CONF")" = "$CONF" ]; then
        mkdir -p "$(dirname "$SYSTEM_CONF")"
        ln -sfn "$CONF" "$SYSTEM_CONF"
        say "cluster up: partition debug, $(sinfo --noheader --format='%c CPUs, %m MB' | head -1) (config in $CONF)"
    else
        say "cluster up: partition debug (config in $CONF; $SYSTEM_CONF is another cluster's: export SLURM_CONF=$CONF)"
    fi
}

stop_daemon() {  # stop_daemon NAME: TERM, then KILL after 10 s
    local pid_file=$DIR/$1.pid pid
    [ -f "$pid_file" ] || return 0
    pid=$(cat "$pid_file")
    if kill -0 "$pid" 2>/dev/null && grep -q "$1" "/proc/$pid/comm" 2>/dev/null; then
        kill "$pid"
        wait_for 10 bash -c "! kill -0 $pid 2>/dev/null" || kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pid_file"
}

stop_jobs() {  # cancel every job (SIGTERM: ours checkpoint), then end the step daemons slurmd leaves behind
    local jobs pid
    if running && scontrol ping >/dev/null 2>&1; then
        jobs=$(squeue --noheader --format=%A --states=PENDING,RUNNING,SUSPENDED,COMPLETING,CONFIGURING | sort -u)
        if [ -n "$jobs" ]; then
            # shellcheck disable=SC2086
            scancel $jobs
            wait_for 20 bash -c '[ -z "$(squeue --noheader --format=%A --states=RUNNING,COMPLETING)" ]' || true
        fi
    fi
    for pid in $(pgrep -x slurmstepd || true); do  # a job's slurmstepd runs in this cluster's folder
        case "$(readlink "/proc/$pid/cwd" 2>/dev/null)" in
            # shellcheck disable=SC2046
            "$DIR"*) kill -KILL $(pgrep -P "$pid") "$pid" 2>/dev/null || true ;;
        esac
    done
}

down() {
    local name
    stop_jobs
    for name in slurmd slurmctld munged; do
        stop_daemon "$name"
    done
    if [ "$(readlink "$SYSTEM_CONF" 2>/dev/null)" = "$CONF" ]; then
        rm -f "$SYSTEM_CONF"
    fi
    [ "${1:-}" = quiet ] || say "cluster stopped"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) answers ;;
    check)
        answers && exit 0
        why=$(cannot_start)
        [ -z "$why" ] || { say "$why"; exit 3; }
        ;;
    env) echo "SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 up|down|status|check|env" >&2; exit 2 ;;
esac
