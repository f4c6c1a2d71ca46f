#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: formatting, lints, unit and
# end-to-end tests (which start real gatehouse processes and upstream servers
# and build the plugins in plugins/ to WebAssembly); the admin API suite runs on
# SQLite and on a throwaway PostgreSQL server (DNS ownership checks against Debian's
# pebble-challtestsrv), then schemathesis fuzzes the API.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --wasm --postgres --venv --pebble
cargo fmt --all -- --check
cargo fmt --manifest-path plugins/Cargo.toml --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The plugin SDK and plugins, linted for the host (they build for wasm32 in the tests).
cargo clippy --manifest-path plugins/Cargo.toml --workspace --locked -- -D warnings
# The end-to-end tests build the example and hostile plugins from source.
cargo test --workspace --locked
# The WAF against the OWASP CRS regression corpus and the benign corpus: fails
# when detection drops below, or false positives rise above, benches/waf/floors.txt.
benches/waf/run.sh --check
# The admin API fuzzed against its own OpenAPI document (schemathesis from PyPI).
./scripts/schemathesis.sh
