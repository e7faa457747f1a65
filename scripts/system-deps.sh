#!/usr/bin/env bash
# Install the Debian packages that some tests need and PyPI does not provide:
# WSClean (the imaging peer the imaging tests and benchmark compare against).
# Idempotent; needs root (or sudo) for apt-get. Without it, prints what to run.
set -euo pipefail

need=()
command -v wsclean >/dev/null 2>&1 || need+=(wsclean)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "system-deps: missing ${need[*]}; run as root: apt-get update && apt-get install -y ${need[*]}" >&2
  echo "system-deps: tests marked wsclean will be skipped (or fail under CI=true)" >&2
  exit 0
fi

echo "system-deps: installing ${need[*]} from Debian packages" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
