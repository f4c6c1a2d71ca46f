#!/usr/bin/env bash
# Installs the system packages Gatehouse needs to build and test, if missing.
# Safe to run repeatedly; used by quickstart.sh, test.sh, benches/load/run.sh and CI.
# Extra requirements may be passed as COMMAND=PACKAGE, e.g. `setup.sh wrk=wrk`.
set -euo pipefail

need=()
for req in cmake=cmake cc=build-essential curl=curl "$@"; do
  cmd=${req%%=*}
  pkg=${req#*=}
  # cmake: Pingora's zlib-ng build. Daemons such as nginx live in /usr/sbin.
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || need+=("$pkg")
done

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust (https://rustup.rs) and re-run" >&2
  exit 1
fi
