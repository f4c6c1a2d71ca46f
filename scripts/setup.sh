#!/usr/bin/env bash
# Installs the system packages Gatehouse needs to build and test, if missing.
# Safe to run repeatedly; used by quickstart.sh, test.sh, benches/load/run.sh and CI.
# Extra requirements may be passed as COMMAND=PACKAGE, e.g. `setup.sh wrk=wrk`;
# `--wasm` adds a toolchain that can build WebAssembly plugins; `--postgres` adds
# Debian's PostgreSQL server (the admin's tests run their suite on it too); `--venv`
# Python's venv (schemathesis, from PyPI, fuzzes the admin API); `--pebble` Debian's
# Pebble ACME server and its pebble-challtestsrv (DNS for ownership checks in tests).
set -euo pipefail

need=()
reqs=()
for arg in "$@"; do
  case "$arg" in
    # --wasm: a toolchain that builds plugins for wasm32-unknown-unknown. rustup's
    # target when installed; otherwise Debian's Rust with std sources and wasm-ld
    # (rustup cannot download targets on machines without the Rust servers).
    --wasm)
      if ! (command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown); then
        [ -x /usr/bin/rustc ] || need+=(rustc-web)
        [ -x /usr/bin/cargo ] || need+=(cargo-web)
        [ -d /usr/lib/rustlib/src/rust/library ] || need+=(rust-web-src)
        command -v wasm-ld-19 >/dev/null 2>&1 || need+=(lld-19)
      fi
      ;;
    # --postgres: the server binaries the admin tests start a throwaway cluster with.
    --postgres)
      compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || need+=(postgresql)
      ;;
    # --pebble: the ACME test server and its DNS/HTTP challenge test server.
    --pebble)
      command -v pebble-challtestsrv >/dev/null 2>&1 || need+=(pebble)
      ;;
    # --venv: Python with venv, for PyPI tools the tests use (schemathesis).
    --venv)
      command -v python3 >/dev/null 2>&1 || need+=(python3)
      python3 -c 'import ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
      ;;
    *) reqs+=("$arg") ;;
  esac
done
for req in cmake=cmake cc=build-essential curl=curl ${reqs[@]+"${reqs[@]}"}; do
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
