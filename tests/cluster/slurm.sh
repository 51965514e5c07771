#!/usr/bin/env bash
# A one-machine SLURM cluster in a folder of its own, for the tests marked `cluster` and for trying
# the SLURM launchers by hand (docs/scaling-out.md#a-slurm-cluster-on-this-machine):
#
#   tests/cluster/slurm.sh up DIR      # munged, slurmctld, slurmd; waits until the node is idle
#   export SLURM_CONF=DIR/slurm.conf   # sbatch, srun, sinfo, squeue, scontrol then use it
#   tests/cluster/slurm.sh down DIR    # stops the daemons it started, by pid
#
# As root (slurmd starts jobs as their user). Everything lives in DIR: slurm.conf, the munge key
# and socket, state, spool, logs (DIR/*.log) and the daemons' pids (DIR/pids). Needs the Debian
# packages slurm-wlm and munge. The node is this machine, with all its CPUs and 90% of its memory;
# the ports are free ones picked at start, so it runs beside a system SLURM.
set -euo pipefail

cmd=${1:-}; dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
    echo "usage: $0 up|down DIR" >&2; exit 2
fi

down() {
    # Stops exactly the daemons `up` started: the pids it wrote, never a process found by name.
    [ -f "$dir/pids" ] || return 0
    local pid
    # First the jobs still on this cluster (their processes are slurmstepd's, not in DIR/pids):
    # cancelled through the controller, which kills them, then up to 15 s for them to leave.
    if [ -f "$dir/slurm.conf" ] && SLURM_CONF="$dir/slurm.conf" squeue -h -o %A >/dev/null 2>&1; then
        SLURM_CONF="$dir/slurm.conf" squeue -h -o %A | xargs -r env SLURM_CONF="$dir/slurm.conf" scancel || true
        for _ in $(seq 75); do
            [ -z "$(SLURM_CONF="$dir/slurm.conf" squeue -h -o %A 2>/dev/null | head -1)" ] && break
            sleep 0.2
        done
    fi
    while read -r pid; do
        [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
    done < "$dir/pids"
    for _ in $(seq 50); do  # up to 10 s for them to exit, then SIGKILL
        local alive=0
        while read -r pid; do
            [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && alive=1
        done < "$dir/pids"
        [ "$alive" -eq 0 ] && break
        sleep 0.2
    done
    while read -r pid; do
        [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
    done < "$dir/pids"
    rm -f "$dir/pids"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

up() {
    for exe in munged slurmctld slurmd sinfo; do
        command -v "$exe" >/dev/null || { echo "error: $exe is not on PATH (apt-get install slurm-wlm munge)" >&2; exit 3; }
    done
    [ "$(id -u)" -eq 0 ] || { echo "error: the local SLURM cluster runs as root (slurmd starts jobs as their user)" >&2; exit 3; }
    mkdir -p "$dir"; dir=$(cd "$dir" && pwd); chmod 700 "$dir"
    mkdir -p "$dir/state" "$dir/spool"
    local host cpus mem ctld_port d_port
    host=$(hostname -s)
    cpus=$(nproc --all)
    mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)  # MB
    ctld_port=$(free_port); d_port=$(free_port)
    while [ "$d_port" = "$ctld_port" ]; do d_port=$(free_port); done
    cat > "$dir/slurm.conf" <<EOF
ClusterName=freezeout-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
KillWait=5
MinJobAge=600
SchedulerParameters=sched_interval=2
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    # munge: its own key and socket in DIR, so a system munged (if any) is left alone.
    head -c 1024 /dev/urandom > "$dir/munge.key"; chmod 400 "$dir/munge.key"
    : > "$dir/pids"
    setsid munged --foreground --force --socket="$dir/munge.socket" --key-file="$dir/munge.key" \
        --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munged.seed" \
        </dev/null >>"$dir/munged.log" 2>&1 &
    echo $! >> "$dir/pids"
    for _ in $(seq 50); do [ -S "$dir/munge.socket" ] && break; sleep 0.1; done
    export SLURM_CONF="$dir/slurm.conf"
    setsid slurmctld -D -i -f "$dir/slurm.conf" </dev/null >>"$dir/slurmctld.log" 2>&1 &
    echo $! >> "$dir/pids"
    setsid slurmd -D -N "$host" -f "$dir/slurm.conf" </dev/null >>"$dir/slurmd.log" 2>&1 &
    echo $! >> "$dir/pids"
    # The node is ready when sinfo lists it idle (60 s at most).
    for _ in $(seq 300); do
        if [ "$(sinfo -h -N -o %t 2>/dev/null | head -1)" = "idle" ]; then
            echo "SLURM_CONF=$dir/slurm.conf"
            return 0
        fi
        sleep 0.2
    done
    echo "error: the local SLURM node did not become idle within 60 s; logs in $dir" >&2
    tail -n 5 "$dir"/*.log >&2 || true
    down
    exit 1
}

case "$cmd" in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down DIR" >&2; exit 2 ;;
esac
