#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the tests marked `slurm` (and for trying --backend slurm or the
# sbatch-array recipe without a real cluster). Run as root: `scripts/slurm-local.sh start|stop|status`.
#
# start: installs Debian's slurm-wlm (slurmctld, slurmd, client) and munge if missing, writes /etc/slurm/slurm.conf
#        for one node with CPUS (default 2) CPUs, and starts munged, slurmctld and slurmd. Does nothing if sinfo
#        already answers. No cgroups (containers rarely allow them): proctrack/linuxproc tracks a job's processes
#        by parentage, task/none binds nothing, and select/cons_tres hands out single cores.
# stop:  ends those three daemons (by their pid files; nothing else is touched).
set -euo pipefail
CPUS="${CPUS:-2}"
CONF=/etc/slurm/slurm.conf
RUN=/run/slurm-local

need_root() { [ "$(id -u)" = 0 ] || { echo "slurm-local.sh: run it as root (it installs packages and starts daemons)" >&2; exit 2; }; }

start() {
  need_root
  if command -v sinfo >/dev/null && timeout 5 sinfo -h >/dev/null 2>&1; then
    echo "slurm-local: already running"; sinfo; return 0
  fi
  if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
     || ! command -v munged >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
  fi
  local node mem
  node="$(hostname -s)"
  # Memory the jobs may ask for (sbatch --mem): what the machine has, less 1 GB for everything else.
  mem=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 1024 ))
  mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm "$RUN" /run/munge /var/lib/munge \
           /var/log/munge
  cat > "$CONF" <<CONFEOF
ClusterName=local
SlurmctldHost=${node}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
# scancel and preemption: SIGTERM, then SIGKILL this many seconds later (Slurm's default is 30).
KillWait=10
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=${RUN}/slurmctld.pid
SlurmdPidFile=${RUN}/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=${node} CPUs=${CPUS} RealMemory=${mem} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONFEOF
  [ -s /etc/munge/munge.key ] || { mkdir -p /etc/munge; dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null; }
  chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
  chmod 400 /etc/munge/munge.key
  if ! [ -S /run/munge/munge.socket.2 ] || ! munge -n >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid 2>/dev/null || /usr/sbin/munged --force
  fi
  /usr/sbin/slurmctld
  /usr/sbin/slurmd
  for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then echo "slurm-local: up"; sinfo; return 0; fi
    sleep 1
  done
  echo "slurm-local: the node did not come up within 60 s; see /var/log/slurm/slurmctld.log and slurmd.log" >&2
  sinfo >&2 || true
  exit 1
}

stop_pidfile() {
  local f="$1" pid
  pid="$(cat "$f" 2>/dev/null || true)"  # read once: the daemon removes its pid file as it exits
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  fi
  rm -f "$f"
}

stop() {
  need_root
  stop_pidfile "$RUN/slurmd.pid"
  stop_pidfile "$RUN/slurmctld.pid"
  stop_pidfile /run/munge/munged.pid
  echo "slurm-local: stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) sinfo && squeue ;;
  *) echo "usage: $0 start|stop|status  (a one-node Slurm cluster for the tests; as root)" >&2; exit 2 ;;
esac
