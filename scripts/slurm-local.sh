#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for trying and testing sweeps on Slurm.
#   scripts/slurm-local.sh start    install slurm-wlm + munge if missing (Debian/Ubuntu, as root),
#                                   write a config into $ICDBENCH_SLURM_DIR, start munged,
#                                   slurmctld and slurmd, wait until the node is idle
#   scripts/slurm-local.sh status   sinfo and squeue of that cluster
#   scripts/slurm-local.sh stop     shut slurmctld and slurmd down (munged keeps running)
#   scripts/slurm-local.sh env      print the line that points Slurm's commands at the cluster
# Everything Slurm writes (config, state, spool, logs, pid files) lives in
# $ICDBENCH_SLURM_DIR (default /tmp/icdbench-slurm); nothing under /etc/slurm is touched.
# Slurm's commands find the cluster through SLURM_CONF: eval "$(scripts/slurm-local.sh env)".
# One partition, `debug`, with every core of the machine; no accounting (sacct), so job
# states come from squeue.
set -euo pipefail

dir="${ICDBENCH_SLURM_DIR:-/tmp/icdbench-slurm}"
conf="$dir/slurm.conf"
say() { printf '[slurm-local] %s\n' "$*" >&2; }
die() { say "$*"; exit 2; }

install_packages() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null && return 0
  [[ "$(id -u)" == 0 ]] || die "slurm-wlm and munge are not installed; as root: apt-get install -y slurm-wlm munge"
  command -v apt-get >/dev/null || die "slurm-wlm and munge are not installed and there is no apt-get to install them"
  say "installing slurm-wlm and munge (Debian packages, about a minute)"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >&2
}

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    return 0
  fi
  [[ "$(id -u)" == 0 ]] || die "munged is not running and starting it needs root"
  mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
  [[ -f /etc/munge/munge.key ]] || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
  chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
  chmod 400 /etc/munge/munge.key
  su -s /bin/sh munge -c /usr/sbin/munged
  for _ in $(seq 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "munged did not come up (see /var/log/munge/munged.log)"
}

write_config() {
  local host cpus mem_mb
  host="$(hostname -s)"
  cpus="$(nproc)"
  # Slurm refuses a node that claims more memory than it has: offer 90% of MemTotal.
  mem_mb=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) * 9 / 10 / 1024 ))
  mkdir -p "$dir/state" "$dir/spool" "$dir/log"
  cat > "$conf" <<EOT
ClusterName=icdbench-local
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ReturnToService=2
MaxArraySize=10001
# A task that asks for no memory gets its core's share, so tasks without --mem still run side by side.
DefMemPerCPU=$(( mem_mb / cpus ))
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOT
}

running() {
  SLURM_CONF="$conf" scontrol ping 2>/dev/null | grep -q 'is UP'
}

start() {
  install_packages
  start_munge
  if [[ -f "$conf" ]] && running; then
    say "already running (SLURM_CONF=$conf)"
    return 0
  fi
  [[ "$(id -u)" == 0 ]] || die "starting slurmctld and slurmd needs root"
  write_config
  slurmctld -f "$conf"
  slurmd -f "$conf"
  local host
  host="$(hostname -s)"
  for _ in $(seq 100); do
    if SLURM_CONF="$conf" sinfo -h -n "$host" -o '%t' 2>/dev/null | grep -qx 'idle'; then
      say "up: partition debug, node $host ($(nproc) CPUs); eval \"\$($0 env)\" to use it"
      return 0
    fi
    sleep 0.2
  done
  die "the node did not become idle within 20 s; see $dir/log/slurmctld.log and $dir/log/slurmd.log"
}

stop() {
  [[ -f "$conf" ]] || { say "not started (no $conf)"; return 0; }
  SLURM_CONF="$conf" scontrol shutdown >/dev/null 2>&1 || true
  for pidfile in "$dir/slurmctld.pid" "$dir/slurmd.pid"; do
    [[ -f "$pidfile" ]] || continue
    local pid
    pid="$(cat "$pidfile")"
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
  done
  say "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) SLURM_CONF="$conf" sinfo; SLURM_CONF="$conf" squeue ;;
  env) echo "export SLURM_CONF=$conf" ;;
  *) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
