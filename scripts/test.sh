#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: formatting, lints, unit and
# end-to-end tests (which start real gatehouse processes and upstream servers).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
