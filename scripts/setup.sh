#!/usr/bin/env bash
# Installs the system packages Gatehouse needs to build and test, if missing.
# Safe to run repeatedly; used by quickstart.sh, test.sh and CI.
set -euo pipefail

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)      # Pingora's zlib-ng build
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v curl >/dev/null 2>&1 || need+=(curl)

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
