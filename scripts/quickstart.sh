#!/usr/bin/env bash
# One command from a fresh checkout to a running proxy:
#   http://localhost:8080  https://localhost:8443  http://127.0.0.1:9901/metrics
#   admin API: http://127.0.0.1:9900 (SQLite under ./data)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release --bin gatehouse
echo "gatehouse: serving http://localhost:8080 and https://localhost:8443 (self-signed); metrics on http://127.0.0.1:9901/metrics; admin API on http://127.0.0.1:9900 (its first start prints a token)"
exec ./target/release/gatehouse run --config config/examples/quickstart.yaml
