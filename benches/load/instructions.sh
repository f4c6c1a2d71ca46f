#!/usr/bin/env bash
# Instructions per proxied request, Gatehouse vs nginx, counted by callgrind.
# See benches/README.md. Extra flags go to instructions.py (--duration S, --top N).
set -euo pipefail
cd "$(dirname "$0")/../.."
./scripts/setup.sh nginx=nginx-light wrk=wrk python3=python3 valgrind=valgrind
cargo build --release --bin gatehouse --example bench-fixtures
exec python3 benches/load/instructions.py "$@"
