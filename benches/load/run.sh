#!/usr/bin/env bash
# Load harness: Gatehouse vs nginx, side by side, in one run. See benches/README.md.
#   benches/load/run.sh            full run (10 rounds per scenario)
#   benches/load/run.sh --quick    short rounds, under 3 minutes
# Extra flags go to harness.py (--rounds N, --duration S, --connections C, --scenarios a,b).
set -euo pipefail
cd "$(dirname "$0")/../.."
./scripts/setup.sh

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  echo "run.sh: installing ${need[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo build --release --bin gatehouse --example bench-fixtures
exec python3 benches/load/harness.py "$@"
