#!/usr/bin/env bash
# A single-machine HTCondor pool on this machine, for repliflow's HTCondor tests.
# The twin of scripts/slurm-local.sh.
#
#   bash scripts/htcondor-local.sh start    # install what is missing, start the pool, wait for its slot
#   bash scripts/htcondor-local.sh stop     # stop only the pool this script started
#   bash scripts/htcondor-local.sh status   # exit 0 when the collector, the schedd and a slot answer
#   bash scripts/htcondor-local.sh env      # print the exports that point condor_* and the tests at it
#
# The pool is ../shared/htcondor (HTCondor 24.12 daemons and tools built for Debian 12, with
# start-pool.sh and stop-pool.sh); everything lives in $REPLIFLOW_HTCONDOR_DIR (default
# /tmp/repliflow-htcondor): the unpacked release, the pool's config, logs and spool, the
# pid of the master this script started, and the submit user's venv.
#
# HTCondor never runs jobs owned by root (nor by a user named condor), so snakemake with the
# htcondor executor must run as an ordinary user:
# - run as root (CI), the script creates that user if missing ($REPLIFLOW_HTCONDOR_USER,
#   default repliflow-submit), starts the pool as that user (a "personal condor": daemons
#   and jobs run as the user), and builds the user a venv with Debian's /usr/bin/python3.11
#   (an interpreter under root's home is not executable by other users), holding
#   repliflow's dependencies and the HTCondor executor plugin (`pip install .[cluster]`);
# - run as an ordinary user, it starts the pool as that user; the tests then use the
#   interpreter that runs them.
# The daemons bind to 127.0.0.1 and authenticate local users by file system (FS).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="${REPLIFLOW_HTCONDOR_SHARED:-$REPO/../shared/htcondor}"
DIR="${REPLIFLOW_HTCONDOR_DIR:-/tmp/repliflow-htcondor}"
PORT="${REPLIFLOW_HTCONDOR_PORT:-9618}"
MARKER="$DIR/started-by-htcondor-local"

log() { echo "htcondor-local: $*" >&2; }
die() { log "$*"; exit 1; }

submit_user() {
  if [[ "$(id -u)" == 0 ]]; then echo "${REPLIFLOW_HTCONDOR_USER:-repliflow-submit}"; else id -un; fi
}

as_user() {  # as_user CMD...: run as the submit user (root switches, anyone else is already it)
  if [[ "$(id -u)" == 0 ]]; then runuser -u "$(submit_user)" -- "$@"; else "$@"; fi
}

condor_ids() {  # root's condor_* tools need an owner for the pool (else they look for a user `condor`)
  local user
  user="$(submit_user)"
  echo "$(id -u "$user").$(id -g "$user")"
}

print_env() {
  echo "export CONDOR_CONFIG=$DIR/pool/condor_config"
  if [[ "$(id -u)" == 0 ]]; then echo "export CONDOR_IDS=$(condor_ids)"; fi
  echo "export PATH=$DIR/htcondor/bin:$DIR/htcondor/sbin:\$PATH"
  echo "export REPLIFLOW_HTCONDOR_DIR=$DIR"
  echo "export REPLIFLOW_HTCONDOR_USER=$(submit_user)"
  if [[ -x "$DIR/venv/bin/python" ]]; then echo "export REPLIFLOW_HTCONDOR_PYTHON=$DIR/venv/bin/python"; fi
}

answers() {  # the collector lists a slot and a schedd
  [[ -f "$DIR/pool/condor_config" ]] || return 1
  local slots schedds
  slots="$(as_user env CONDOR_CONFIG="$DIR/pool/condor_config" timeout 10 "$DIR/htcondor/bin/condor_status" -af Name 2>/dev/null | wc -l || true)"
  schedds="$(as_user env CONDOR_CONFIG="$DIR/pool/condor_config" timeout 10 "$DIR/htcondor/bin/condor_status" -schedd -af Name 2>/dev/null | wc -l || true)"
  [[ "${slots:-0}" -gt 0 && "${schedds:-0}" -gt 0 ]]
}

install_packages() {  # root only: the pool's runtime libraries and the venv module
  local missing=()
  for package in libssl3 libgomp1 libcurl4 python3.11-venv; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
  done
  [[ ${#missing[@]} == 0 ]] && return
  command -v apt-get >/dev/null || die "missing ${missing[*]} and apt-get is not available"
  log "installing ${missing[*]} (apt-get, --no-install-recommends)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_user() {  # root only: an ordinary user to own the pool, submit and run the jobs
  local user
  user="$(submit_user)"
  [[ "$user" != root && "$user" != condor ]] || die "the submit user must not be root or condor (HTCondor refuses their jobs)"
  if ! id -u "$user" >/dev/null 2>&1; then
    log "creating the unprivileged submit user $user"
    useradd --create-home --shell /bin/bash "$user"
  fi
}

ensure_venv() {  # root only: Debian's python3.11 with repliflow's dependencies, readable by the user
  local python=/usr/bin/python3.11 stamp want
  [[ -x "$python" ]] || die "$python is missing (Debian package python3.11); the submit user needs an interpreter it can run"
  want="$(sha256sum "$REPO/pyproject.toml" | cut -c1-16)"
  stamp="$DIR/venv/.repliflow-deps"
  if [[ -x "$DIR/venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then return; fi
  log "building the submit user's venv in $DIR/venv (repliflow's dependencies and the HTCondor plugin)"
  rm -rf "$DIR/venv"
  "$python" -m venv "$DIR/venv"
  "$DIR/venv/bin/pip" install -q --disable-pip-version-check "$REPO[cluster]"
  echo "$want" > "$stamp"
  chmod -R a+rX "$DIR/venv"
}

start() {
  [[ -x "$SHARED/start-pool.sh" ]] || die "no HTCondor pool at $SHARED (expected ../shared/htcondor beside the repository)"
  if answers; then
    log "a pool in $DIR already answers; left alone"
    return 0
  fi
  mkdir -p "$DIR"
  if [[ "$(id -u)" == 0 ]]; then
    install_packages
    ensure_user
    chown "$(submit_user)": "$DIR"
    chmod 755 "$DIR"
    ensure_venv
  fi
  log "starting the pool as $(submit_user) in $DIR (collector on 127.0.0.1:$PORT)"
  as_user bash "$SHARED/start-pool.sh" "$DIR" "$PORT" >&2 || die "the pool did not start; see $DIR/pool/log"
  cp "$DIR/pool/condor_master.pid" "$MARKER"
  print_env > "$DIR/env.sh"
  chmod 644 "$DIR/env.sh"
  answers || die "the pool started but does not answer; see $DIR/pool/log"
  log "pool up: source $DIR/env.sh"
}

stop() {
  if [[ ! -f "$MARKER" ]]; then
    log "no pool started by this script in $DIR; nothing stopped"
    return 0
  fi
  if [[ "$(cat "$MARKER")" != "$(cat "$DIR/pool/condor_master.pid" 2>/dev/null)" ]]; then
    log "the pool's master is not the one this script started; left alone"
    rm -f "$MARKER"
    return 0
  fi
  bash "$SHARED/stop-pool.sh" "$DIR" >&2 || true
  rm -f "$MARKER"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status)
    if answers; then log "the pool in $DIR answers"; else log "no pool answers in $DIR"; exit 1; fi ;;
  env) print_env ;;
  *) die "usage: $0 start|stop|status|env" ;;
esac
