#!/usr/bin/env bash
# A single-node Slurm on this machine, for repliflow's cluster tests.
#
#   bash scripts/slurm-local.sh start   # install (Debian slurm-wlm + munge) if missing, start, wait for an idle node
#   bash scripts/slurm-local.sh stop    # stop only the daemons this script started
#   bash scripts/slurm-local.sh status  # exit 0 when the node answers and is idle or busy with our jobs
#
# Needs root (apt-get, daemons). Everything lives in $REPLIFLOW_SLURM_DIR
# (default /tmp/repliflow-slurm): config, munge key and socket, state, logs and
# the PIDs this script started. /etc/slurm/slurm.conf (where sbatch, squeue and
# srun look by default) is written only when absent or written by this script
# before, never over another cluster's config.
#
# Choices (measured on Debian bookworm, Slurm 22.05):
# - no accounting database: the profile asks the executor plugin for squeue-based
#   status, which Slurm answers for MinJobAge seconds after a job ends (600 here);
#   finished jobs are also appended to $REPLIFLOW_SLURM_DIR/jobcomp.log, which
#   tests read to count submissions. sacct therefore fails at once (no hang).
# - daemons bind to the hostname's address, which must be loopback (checked).
# - no cgroups: linuxproc process tracking, no task plugin; memory is a
#   consumable resource with 1000 MB per CPU when a job asks for none.
set -euo pipefail

DIR="${REPLIFLOW_SLURM_DIR:-/tmp/repliflow-slurm}"
CONF=/etc/slurm/slurm.conf
MARKER="# written by repliflow scripts/slurm-local.sh"
WAIT_SECONDS="${REPLIFLOW_SLURM_WAIT:-60}"

log() { echo "slurm-local: $*" >&2; }
die() { log "$*"; exit 1; }

ours() {  # is /etc/slurm/slurm.conf ours (or absent)?
  [[ ! -e "$CONF" ]] || head -n 1 "$CONF" | grep -qxF "$MARKER"
}

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
      && command -v sbatch >/dev/null; then
    return
  fi
  command -v apt-get >/dev/null || die "slurm-wlm and munge are missing and apt-get is not available"
  log "installing slurm-wlm and munge (apt-get, --no-install-recommends)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
}

alive() {  # alive PID NAME: the PID runs a process called NAME
  [[ -n "${1:-}" && -r "/proc/$1/comm" ]] && [[ "$(cat "/proc/$1/comm" 2>/dev/null)" == "$2" ]]
}

node_state() {
  timeout 5 sinfo --noheader --nodes=localhost --format=%T 2>/dev/null | head -n 1 || true
}

write_config() {
  local cpus mem host
  cpus="$(nproc)"
  # leave 1 GB to the system; RealMemory is what jobs may reserve in total
  mem="$(awk '/MemTotal/ {printf "%d", $2 / 1024 - 1024}' /proc/meminfo)"
  host="$(hostname -s)"
  mkdir -p "$DIR/ctld" "$DIR/slurmd" "$(dirname "$CONF")"
  cat > "$DIR/slurm.conf" <<CONF
$MARKER
# a single-node test cluster on localhost; see the script for why each line is set
ClusterName=repliflow
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket.2
# bind to the hostname's (loopback) address instead of 0.0.0.0
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/slurmd
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
# no cgroups in this container
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SwitchType=switch/none
# CPUs and memory are consumable; a job without --mem gets 1000 MB per CPU, not the node
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
# start jobs at once (job start ~0.9 s instead of ~2.6 s)
SchedulerParameters=batch_sched_delay=0
# squeue reports a finished job for 10 minutes: the executor plugin's squeue-based
# status needs MinJobAge >= 3 x its status interval and more than its longest poll gap
MinJobAge=600
# no accounting database; finished jobs are logged to a text file instead
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/jobcomp.log
# reject at submission a job no node can ever run, instead of leaving it pending forever
EnforcePartLimits=ALL
# a cancelled job's processes get 5 s between SIGTERM and SIGKILL
KillWait=5
ReturnToService=2
NodeName=localhost NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
  cp "$DIR/slurm.conf" "$CONF"
}

start_munge() {
  mkdir -p "$DIR/munge"
  chmod 0700 "$DIR/munge"
  if [[ ! -s "$DIR/munge/munge.key" ]]; then
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
    chmod 0400 "$DIR/munge/munge.key"
  fi
  # foreground in the background, so $! is munged itself
  munged --foreground --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket.2" \
    --pid-file="$DIR/munge/munged.pid" --seed-file="$DIR/munge/munged.seed" \
    --log-file="$DIR/munge/munged.log" </dev/null >>"$DIR/munge/munged.out" 2>&1 &
  echo "$! munged" >> "$DIR/pids"
  for _ in $(seq 50); do
    [[ -S "$DIR/munge/munge.socket.2" ]] && return
    sleep 0.1
  done
  die "munged did not create its socket; see $DIR/munge/munged.log"
}

cmd_start() {
  [[ "$(id -u)" == 0 ]] || die "needs root (to install packages and run slurmctld/slurmd)"
  if cmd_status >/dev/null 2>&1; then
    log "already running (state in $DIR)"
    return
  fi
  ours || die "$CONF exists and was not written by this script; refusing to replace another cluster's config"
  local addr
  addr="$(getent hosts "$(hostname -s)" | awk '{print $1; exit}')"
  [[ "$addr" == 127.* ]] || die "hostname $(hostname -s) resolves to '${addr:-nothing}', not a loopback address; the daemons would listen beyond this machine"
  local begin=$SECONDS
  install_packages
  [[ ! -s "$DIR/pids" ]] || cmd_stop
  rm -f "$DIR/pids"
  write_config
  start_munge
  # -c: start from a clean job state (a test cluster keeps no jobs across restarts)
  slurmctld -D -c -f "$CONF" </dev/null >>"$DIR/slurmctld.out" 2>&1 &
  echo "$! slurmctld" >> "$DIR/pids"
  slurmd -D -N localhost -f "$CONF" </dev/null >>"$DIR/slurmd.out" 2>&1 &
  echo "$! slurmd" >> "$DIR/pids"
  local state=""
  for _ in $(seq $((WAIT_SECONDS * 2))); do
    state="$(node_state)"
    if [[ "$state" == idle* ]]; then
      log "node localhost idle after $((SECONDS - begin)) s (state in $DIR)"
      return
    fi
    sleep 0.5
  done
  log "node not idle after ${WAIT_SECONDS} s (state: ${state:-no answer}); logs:"
  tail -n 20 "$DIR"/slurmctld.log "$DIR"/slurmd.log >&2 || true
  cmd_stop
  exit 1
}

cmd_stop() {
  if [[ -s "$DIR/pids" ]]; then stop_daemons; else log "nothing to stop (no $DIR/pids)"; fi
  # A slurm.conf naming a stopped controller makes every later `snakemake` wait
  # ~9 s (the slurm plugin probes `scontrol show config` at start-up): remove ours.
  if [[ -e "$CONF" ]] && ours; then
    rm -f "$CONF"
    log "removed $CONF"
  fi
}

stop_daemons() {
  # our cluster's jobs first, so no slurmstepd outlives its slurmd
  if alive "$(awk '$2 == "slurmctld" {print $1}' "$DIR/pids")" slurmctld; then
    timeout 10 scancel --full --quiet --partition=local 2>/dev/null || true
  fi
  local pid name
  # stop in reverse start order: slurmd, slurmctld, munged
  tac "$DIR/pids" | while read -r pid name; do
    if alive "$pid" "$name"; then
      kill -TERM "$pid"
      for _ in $(seq 50); do alive "$pid" "$name" || break; sleep 0.2; done
      alive "$pid" "$name" && kill -KILL "$pid"
      log "stopped $name ($pid)"
    fi
  done
  rm -f "$DIR/pids"
}

cmd_status() {
  [[ -s "$DIR/pids" ]] || return 1
  local pid name
  while read -r pid name; do alive "$pid" "$name" || return 1; done < "$DIR/pids"
  local state
  state="$(node_state)"
  echo "${state:-no answer}"
  [[ "$state" == idle* || "$state" == mixed* || "$state" == allocated* ]]
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
