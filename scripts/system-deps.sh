#!/usr/bin/env bash
# Install the Debian packages that some tests need and PyPI does not provide:
# WSClean (the imaging peer the imaging tests and benchmark compare against), and
# SLURM + munge (tests/slurm brings up a private single-node SLURM from them), and
# Chromium (tests/report render the HTML report in it, headless).
# Idempotent; needs root (or sudo) for apt-get. Without it, prints what to run.
set -euo pipefail
PATH="$PATH:/usr/sbin:/sbin"  # the SLURM and munge daemons live in sbin

need=()
command -v wsclean >/dev/null 2>&1 || need+=(wsclean)
command -v slurmctld >/dev/null 2>&1 || need+=(slurmctld)
command -v slurmd >/dev/null 2>&1 || need+=(slurmd)
command -v sbatch >/dev/null 2>&1 || need+=(slurm-client)
command -v munged >/dev/null 2>&1 || need+=(munge)
command -v chromium >/dev/null 2>&1 || need+=(chromium)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "system-deps: missing ${need[*]}; run as root: apt-get update && apt-get install -y ${need[*]}" >&2
  echo "system-deps: tests marked wsclean, slurm or browser will be skipped (or fail under CI=true)" >&2
  exit 0
fi

echo "system-deps: installing ${need[*]} from Debian packages" >&2
export DEBIAN_FRONTEND=noninteractive
# The munge/SLURM packages would start system-wide daemons from their init scripts;
# the tests run their own. Deny service starts for the install (as Docker images do).
if [ ! -e /usr/sbin/policy-rc.d ]; then
  $SUDO sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d'
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
