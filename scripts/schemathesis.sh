#!/usr/bin/env bash
# Fuzzes the admin API against its own OpenAPI document with schemathesis (PyPI):
# a `gatehouse admin` on a fresh SQLite database, every operation with generated valid
# and invalid input, all checks (no server error, responses match the schema, invalid
# input refused, undocumented statuses and content types, ...) but one: "created resource
# not found" assumes every path under a created tenant exists (see admin/schemathesis.toml).
# Run by test.sh.
#   SCHEMATHESIS_SEED=n  other generated cases (default: a fixed seed, so CI is reproducible)
set -euo pipefail
cd "$(dirname "$0")/.."
version=4.32.5
target=${CARGO_TARGET_DIR:-target}
venv="$target/schemathesis-venv"
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$version"
fi
cargo build --locked --bin gatehouse
bin="$target/debug/gatehouse"

work=$(mktemp -d)
token="gh_schemath_$(python3 -c 'import secrets; print(secrets.token_hex(20))')"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
GATEHOUSE_ADMIN_TOKEN="$token" "$bin" admin --listen "127.0.0.1:$port" \
  --database "sqlite://$work/admin.db" --secrets-key-file "$work/secrets.key" \
  --auth-failures-per-minute 1000000 > "$work/admin.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$work"' EXIT
spec="http://127.0.0.1:$port/v1/openapi.json"
for _ in $(seq 300); do
  curl -fsS -o /dev/null "$spec" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/admin.log" >&2; exit 1; }
  sleep 0.1
done
"$venv/bin/schemathesis" --config-file admin/schemathesis.toml run "$spec" \
  -H "Authorization: Bearer $token" --checks all --max-examples 40 \
  --exclude-checks ensure_resource_availability \
  --seed "${SCHEMATHESIS_SEED:-20261123}" --no-color
