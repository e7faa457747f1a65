#!/usr/bin/env bash
# Bring up a private single-node SLURM (Debian's slurmctld, slurmd, slurm-client, munge)
# for the tests, everything under STATE_DIR:
#
#   tests/slurm/slurm_up.sh STATE_DIR
#
# Writes STATE_DIR/slurm.conf, starts munged, slurmctld and slurmd in the foreground
# in the background (their own munge key and socket, their own free ports, state,
# spool and logs under STATE_DIR), and records their PIDs in STATE_DIR/pids as
# "name pid" lines. Returns once the node is idle. Clients then need
#   export SLURM_CONF=STATE_DIR/slurm.conf
# Stop everything again with tests/slurm/slurm_down.sh STATE_DIR (by PID).
#
# Missing packages are installed with apt-get when running as root (about 10 s);
# otherwise the script exits 3 so the caller can skip. Other failures exit 1 with
# the daemon logs' last lines. Needs no systemd: the daemons are plain children.
#
# Knobs (environment): SLURM_UP_TIMEOUT (seconds to wait for the node, default 60),
# SLURM_UP_PYTHON (a python3 used to pick free ports, default python3).
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 STATE_DIR" >&2
  exit 2
fi
mkdir -p "$1"
STATE=$(cd "$1" && pwd -P)
TIMEOUT=${SLURM_UP_TIMEOUT:-60}
PY=${SLURM_UP_PYTHON:-python3}

die() { echo "slurm_up: $*" >&2; exit 1; }

# --------------------------------------------------------------------------- packages
missing=()
for tool in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "slurm_up: missing Debian packages ${missing[*]} and not root; run as root: apt-get install -y ${missing[*]}" >&2
    exit 3
  fi
  echo "slurm_up: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # keep the packages' init scripts from starting system-wide daemons
  own_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && own_policy=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$STATE/apt.log" 2>&1 \
    || { apt-get update -qq >>"$STATE/apt.log" 2>&1 && \
         apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$STATE/apt.log" 2>&1; } \
    || { [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d; die "apt-get install ${missing[*]} failed; see $STATE/apt.log"; }
  [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "slurm_up: slurmd must run as root to start jobs; run this script as root" >&2
  exit 3
fi

# --------------------------------------------------------------------------- layout
mkdir -p "$STATE"/{munge,ctld,spool,log}
chmod 755 "$STATE" "$STATE/munge"   # munged refuses a socket dir others cannot enter
: > "$STATE/pids"

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
CTLD_PORT=$(free_port)
SLURMD_PORT=$(free_port)
while [ "$SLURMD_PORT" = "$CTLD_PORT" ]; do SLURMD_PORT=$(free_port); done

HOST=$(hostname -s)
# not nproc: it honours OMP_NUM_THREADS, which distributed's Nanny sets to 1 in the
# parent's environment once any LocalCluster has started in the same (pytest) process
CPUS=$(getconf _NPROCESSORS_ONLN)
MEM_MB=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
SOCKET="$STATE/munge/munge.socket"

cat > "$STATE/slurm.conf" <<EOF
# single-node SLURM for the ddpipe tests (written by tests/slurm/slurm_up.sh)
ClusterName=ddpipetest
SlurmctldHost=${HOST}(127.0.0.1)
SlurmctldPort=${CTLD_PORT}
SlurmdPort=${SLURMD_PORT}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=${SOCKET}
CredType=cred/munge
CommunicationParameters=NoInAddrAny
StateSaveLocation=${STATE}/ctld
SlurmdSpoolDir=${STATE}/spool/%n
SlurmctldPidFile=${STATE}/slurmctld.pid
SlurmdPidFile=${STATE}/slurmd.pid
SlurmctldLogFile=${STATE}/log/slurmctld.log
SlurmdLogFile=${STATE}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
EnforcePartLimits=ALL
MailProg=/bin/true
MpiDefault=none
ReturnToService=2
KillWait=10
MinJobAge=60
InactiveLimit=0
SlurmdTimeout=60
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${MEM_MB} State=UNKNOWN
PartitionName=debug Nodes=${HOST} Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$STATE/slurm.conf"

# --------------------------------------------------------------------------- daemons
start() {  # name, then the command; runs it detached with its output in log/NAME.out
  local name=$1
  shift
  setsid "$@" </dev/null >"$STATE/log/$name.out" 2>&1 &
  echo "$name $!" >> "$STATE/pids"
}

fail_with_logs() {
  echo "slurm_up: $1" >&2
  for f in "$STATE"/log/*; do
    [ -s "$f" ] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }
  done
  exit 1
}

alive() { kill -0 "$(awk -v n="$1" '$1 == n {print $2}' "$STATE/pids")" 2>/dev/null; }

# munge: its own key and socket, so nothing here touches a system munged
if [ ! -s "$STATE/munge/munge.key" ]; then
  head -c 1024 /dev/urandom > "$STATE/munge/munge.key"
fi
chmod 600 "$STATE/munge/munge.key"
start munged munged -F -f --socket="$SOCKET" --key-file="$STATE/munge/munge.key" \
  --pid-file="$STATE/munge/munged.pid" --log-file="$STATE/log/munged.log" \
  --seed-file="$STATE/munge/munged.seed"
for _ in $(seq 100); do
  [ -S "$SOCKET" ] && break
  alive munged || fail_with_logs "munged exited"
  sleep 0.1
done
[ -S "$SOCKET" ] || fail_with_logs "munged socket $SOCKET did not appear"

start slurmctld slurmctld -D -c -f "$SLURM_CONF"
start slurmd slurmd -D -f "$SLURM_CONF"

deadline=$((SECONDS + TIMEOUT))
state=""
while [ $SECONDS -lt $deadline ]; do
  alive slurmctld || fail_with_logs "slurmctld exited"
  alive slurmd || fail_with_logs "slurmd exited"
  state=$(sinfo -h -n "$HOST" -o '%T' 2>/dev/null || true)
  [ "$state" = "idle" ] && break
  sleep 0.5
done
[ "$state" = "idle" ] || fail_with_logs "node $HOST not idle after ${TIMEOUT} s (state '${state}')"

echo "SLURM_CONF=$SLURM_CONF"
