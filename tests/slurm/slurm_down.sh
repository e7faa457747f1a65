#!/usr/bin/env bash
# Stop the SLURM started by slurm_up.sh STATE_DIR: cancel its jobs, then stop
# slurmd, slurmctld and munged by the PIDs recorded in STATE_DIR/pids
# (TERM, then KILL after 10 s). Leaves STATE_DIR (logs) in place.
#
#   tests/slurm/slurm_down.sh STATE_DIR
set -uo pipefail

if [ $# -ne 1 ] || [ ! -f "$1/pids" ]; then
  echo "usage: $0 STATE_DIR (a folder written by slurm_up.sh)" >&2
  exit 2
fi
STATE=$1
export SLURM_CONF="$STATE/slurm.conf"
scancel --user="$(id -un)" >/dev/null 2>&1 || true

# slurmd first (it ends the job steps), then the controller, munge last
for name in slurmd slurmctld munged; do
  pid=$(awk -v n="$name" '$1 == n {print $2}' "$STATE/pids")
  [ -n "$pid" ] || continue
  # only signal the PID if it is still the daemon we started
  grep -q "$name" "/proc/$pid/cmdline" 2>/dev/null || continue
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
done
exit 0
