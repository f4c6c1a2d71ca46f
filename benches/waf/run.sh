#!/usr/bin/env bash
# WAF measurement: the OWASP CRS request-side regression tests and a benign corpus,
# replayed through a real gatehouse at paranoia levels 1-4. See benches/waf/README.md.
#   benches/waf/run.sh             measure and print the results
#   benches/waf/run.sh --check     also compare with benches/waf/floors.txt; exit 1 on a regression
#   benches/waf/run.sh --update    rewrite benches/waf/floors.txt with this run's numbers
# Other flags go to the replay tool: --family 942, --pl 1, --only-benign, --verbose,
# --no-waf, --corpus DIR (or GATEHOUSE_CRS_CORPUS), --concurrency N; --help lists them.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --locked --bin gatehouse --example waf-replay
target="${CARGO_TARGET_DIR:-target}"
exec "$target/debug/examples/waf-replay" --gatehouse "$target/debug/gatehouse" "$@"
