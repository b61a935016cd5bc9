#!/usr/bin/env bash
# A real one-node SLURM on 127.0.0.1 for the duration of one command (`make test-slurm`):
#
#   tests/slurm/one_node_cluster.sh .venv/bin/python -m pytest tests/slurm
#
# Installs the Debian packages when missing (root and apt-get needed), writes a slurm.conf
# under a temp dir (one node, accounting off, the default partition `debug` and a `high`
# one whose jobs preempt debug's, PreemptMode=REQUEUE), starts munged, slurmctld and
# slurmd there (their own socket, ports, state and logs; nothing under /etc is changed),
# waits until the node is idle, runs the command with SLURM_CONF and MIA_SLURM_CLUSTER=1
# exported, and at the end - also on failure, Ctrl-C or a `timeout` - cancels every job,
# waits until squeue is empty and stops the three daemons by their PIDs. Exits with the
# command's status. MIA_SLURM_KEEP=1 keeps the temp dir (logs) for a look afterwards;
# MIA_SLURM_CONF_EXTRA holds more slurm.conf lines to try other settings.
set -uo pipefail

PACKAGES=(slurm-wlm slurmctld slurmd slurm-client munge)
NODE=mia-node

die() { echo "one_node_cluster: $*" >&2; exit 2; }
note() { echo "one_node_cluster: $*" >&2; }

[[ $# -gt 0 ]] || die "usage: $0 COMMAND [ARGS...]"
[[ $(id -u) == 0 ]] || die "needs root (slurmd and munged run as root/munge); run it as root"

install_packages() {
  local missing=() package
  for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  [[ ${#missing[@]} == 0 ]] && return 0
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
  note "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1; } ||
    die "apt-get could not install ${missing[*]}"
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

write_conf() {
  local cpus mem_mb host
  cpus=$(nproc)
  mem_mb=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.8}' /proc/meminfo)
  host=$(hostname -s)
  cat >"$DIR/slurm.conf" <<EOF
# written by tests/slurm/one_node_cluster.sh: one node on 127.0.0.1, accounting off
# KillWait=30 is SLURM's default: with 5, a requeued job whose step took over 7 s to exit on a
# loaded machine was force-terminated, and that job then left the queue without a result once
ClusterName=mia-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
KillWait=30
InactiveLimit=0
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
# a job in 'high' preempts the default partition's jobs, which SLURM then requeues
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP PriorityTier=1
PartitionName=high Nodes=ALL MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
${MIA_SLURM_CONF_EXTRA:-}
EOF
}

PIDS=()  # munged slurmctld slurmd, in start order
child=""
stop_cluster() {
  trap - EXIT INT TERM
  if [[ -n $child ]] && kill -0 "$child" 2>/dev/null; then kill -TERM "$child"; wait "$child" 2>/dev/null; fi
  if [[ -n ${SLURM_CONF:-} ]] && [[ ${#PIDS[@]} -ge 2 ]]; then
    scancel --full --quiet --user=root 2>/dev/null
    local deadline=$((SECONDS + 60))
    while [[ -n $(squeue -h -o %i 2>/dev/null) ]] && ((SECONDS < deadline)); do sleep 1; done
    [[ -n $(squeue -h -o %i 2>/dev/null) ]] && note "jobs still in squeue after 60 s; stopping anyway"
  fi
  local index pid
  for ((index = ${#PIDS[@]} - 1; index >= 0; index--)); do  # slurmd, slurmctld, then munged
    pid=${PIDS[index]}
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  if [[ ${MIA_SLURM_KEEP:-0} == 1 ]]; then note "kept $DIR"; else rm -rf "$DIR"; fi
}

start_cluster() {
  mkdir -p "$DIR/munge" "$DIR/state" "$DIR/spool"
  chmod 755 "$DIR"
  [[ -f /etc/munge/munge.key ]] || mungekey --create >/dev/null || die "mungekey --create failed"
  chown munge:munge "$DIR/munge"
  # each daemon in its own session: a `timeout` or Ctrl-C aimed at the command must not
  # reach them before stop_cluster has emptied the queue (slurmd would leave jobs running)
  setsid setpriv --reuid=munge --regid=munge --init-groups -- /usr/sbin/munged --foreground \
    --socket="$DIR/munge/munge.socket" --pid-file="$DIR/munge/munged.pid" \
    --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/munged.seed" >"$DIR/munged.out" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 50); do [[ -S $DIR/munge/munge.socket ]] && break; sleep 0.2; done
  [[ -S $DIR/munge/munge.socket ]] || { cat "$DIR/munged.out" >&2; die "munged did not start"; }
  write_conf
  export SLURM_CONF=$DIR/slurm.conf
  setsid slurmctld -D -i -f "$SLURM_CONF" >"$DIR/slurmctld.out" 2>&1 &
  PIDS+=($!)
  setsid slurmd -D -N "$NODE" -f "$SLURM_CONF" >"$DIR/slurmd.out" 2>&1 &
  PIDS+=($!)
  local deadline=$((SECONDS + 60)) state=""
  while ((SECONDS < deadline)); do
    state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null)
    [[ $state == idle ]] && return 0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || break 2; done
    sleep 0.5
  done
  tail -n 5 "$DIR"/slurmctld.log "$DIR"/slurmd.log "$DIR"/*.out >&2 2>/dev/null
  die "node $NODE not idle after 60 s (state: ${state:-none})"
}

install_packages
DIR=$(mktemp -d /tmp/mia-slurm.XXXXXX)
trap 'stop_cluster; exit 130' INT
trap 'stop_cluster; exit 143' TERM
trap stop_cluster EXIT
started=$SECONDS
start_cluster
note "SLURM $(sinfo -V | cut -d' ' -f2) up in $((SECONDS - started)) s: node $NODE ($(nproc) CPUs), SLURM_CONF=$SLURM_CONF"
export MIA_SLURM_CLUSTER=1
"$@" &
child=$!
wait "$child"
status=$?
exit "$status"
