#!/usr/bin/env bash
# Load harness: Gatehouse vs nginx, side by side, in one run. See benches/README.md.
#   benches/load/run.sh            full run (10 rounds per scenario)
#   benches/load/run.sh --quick    short rounds, under 3 minutes
# Extra flags go to harness.py (--rounds N, --duration S, --connections C, --scenarios a,b).
set -euo pipefail
cd "$(dirname "$0")/../.."
./scripts/setup.sh --wasm nginx=nginx-light wrk=wrk python3=python3
cargo build --release --bin gatehouse --example bench-fixtures
exec python3 benches/load/harness.py "$@"
