#!/usr/bin/env bash
# Install and start a single-node Slurm cluster (Debian's slurm-wlm and munge) on this
# machine, for development and CI. Idempotent: run it as often as you like; it installs
# what is missing, rewrites the configuration only when it changed, and starts only the
# daemons that are not running. Must run as root (it writes /etc and starts daemons).
#
#   scripts/slurm-setup.sh          install if needed, configure, start, wait for the node
#   scripts/slurm-setup.sh status   print what runs (exit 1 if the cluster is not up)
#
# The configuration is the one seen working as root without cgroups (see FACTS.md):
# proctrack/linuxproc, task/none, select/cons_tres with CR_Core, SlurmUser=root, the
# node's real CPU count and memory, accounting storage off. jobcomp/filetxt keeps a
# record of finished jobs that outlives scontrol's MinJobAge window.
set -euo pipefail

SLURM_CONF=/etc/slurm/slurm.conf
MUNGE_KEY=/etc/munge/munge.key
STATE_DIR=/var/spool/slurmctld
SPOOL_DIR=/var/spool/slurmd
LOG_DIR=/var/log/slurm
RUN_DIR=/run/slurm
CTLD_PID="$RUN_DIR/slurmctld.pid"
SLURMD_PID="$RUN_DIR/slurmd.pid"
# How long to wait for daemons and the node to come up (a loaded 2-core machine).
WAIT_S=60

log() { echo "slurm-setup: $*" >&2; }

alive() { # alive PIDFILE: the process named in PIDFILE runs
  [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

status() {
  local ok=0
  pgrep -x munged >/dev/null && log "munged running" || { log "munged not running"; ok=1; }
  alive "$CTLD_PID" && log "slurmctld running (pid $(cat "$CTLD_PID"))" || { log "slurmctld not running"; ok=1; }
  alive "$SLURMD_PID" && log "slurmd running (pid $(cat "$SLURMD_PID"))" || { log "slurmd not running"; ok=1; }
  command -v sinfo >/dev/null && sinfo -h -o '%P %t %D' 2>&1 | sed 's/^/slurm-setup: sinfo: /' >&2 || true
  return "$ok"
}

if [[ "${1:-}" == "status" ]]; then
  status
  exit $?
fi

if [[ $EUID -ne 0 ]]; then
  log "must run as root (it installs packages, writes /etc/slurm and starts daemons)"
  exit 1
fi

# --- packages ----------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
  || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  log "installing slurm-wlm and munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d 101 keeps the packages' init scripts from starting daemons half-configured.
  policy=/usr/sbin/policy-rc.d
  had_policy=0
  [[ -e $policy ]] && had_policy=1
  if ((had_policy == 0)); then printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"; fi
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
  if ((had_policy == 0)); then rm -f "$policy"; fi
fi

# --- munge -------------------------------------------------------------------------------
install -d -o munge -g munge -m 700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 755 /run/munge
if [[ ! -s $MUNGE_KEY ]]; then
  log "generating $MUNGE_KEY"
  umask 077
  dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
fi
chown munge:munge "$MUNGE_KEY"
chmod 400 "$MUNGE_KEY"
if ! pgrep -x munged >/dev/null; then
  log "starting munged"
  # runuser rather than su: no PAM session, works without a login shell for munge.
  runuser -u munge -- /usr/sbin/munged
fi
for _ in $(seq "$WAIT_S"); do
  munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
  sleep 1
done
munge -n | unmunge >/dev/null || { log "munge does not answer"; exit 1; }

# --- slurm.conf --------------------------------------------------------------------------
host=$(hostname -s)
cpus=$(nproc)
mem_mib=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
# Leave ~1 GiB to the system; slurmd marks a node invalid that claims more than it has.
real_mem=$((mem_mib > 2048 ? mem_mib - 1024 : mem_mib / 2))
install -d -m 755 /etc/slurm "$STATE_DIR" "$SPOOL_DIR" "$LOG_DIR" "$RUN_DIR"
wanted=$(mktemp)
trap 'rm -f "$wanted"' EXIT
cat >"$wanted" <<EOF
# Written by streamplane's scripts/slurm-setup.sh: a single-node development cluster.
ClusterName=streamplane
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log
MinJobAge=300
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=10
NodeName=$host CPUs=$cpus RealMemory=$real_mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
changed=0
if ! cmp -s "$wanted" "$SLURM_CONF"; then
  log "writing $SLURM_CONF (node $host, $cpus CPUs, $real_mem MiB)"
  install -m 644 "$wanted" "$SLURM_CONF"
  changed=1
fi

# --- daemons -----------------------------------------------------------------------------
stop_pidfile() { # stop_pidfile FILE: SIGTERM the daemon named there and wait for it
  alive "$1" || return 0
  local pid
  pid=$(cat "$1")
  kill "$pid"
  for _ in $(seq "$WAIT_S"); do kill -0 "$pid" 2>/dev/null || return 0; sleep 1; done
  log "pid $pid ignored SIGTERM"
  return 1
}
if ((changed)); then
  stop_pidfile "$SLURMD_PID"
  stop_pidfile "$CTLD_PID"
fi
if ! alive "$CTLD_PID"; then
  log "starting slurmctld"
  /usr/sbin/slurmctld
fi
if ! alive "$SLURMD_PID"; then
  log "starting slurmd"
  /usr/sbin/slurmd
fi

# --- wait for the node -------------------------------------------------------------------
for _ in $(seq "$WAIT_S"); do
  state=$(sinfo -h -n "$host" -o '%t' 2>/dev/null | head -1 || true)
  case "$state" in
    idle | mix | alloc | comp) log "node $host is $state"; exit 0 ;;
    drain* | down* | inval*)
      # ReturnToService=2 revives a node on registration; an explicit resume covers the rest.
      scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true ;;
  esac
  sleep 1
done
log "node $host did not become idle within ${WAIT_S}s (state: ${state:-unknown}); see $LOG_DIR"
status || true
exit 1
