#!/usr/bin/env bash
# The full test suite: unit, component and end-to-end tests of the real `osiris` binary.
# Usage: bash scripts/test.sh            (from anywhere; needs the Rust toolchain)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo >/dev/null || { echo "error: cargo not found: install the Rust toolchain (https://rustup.rs) first" >&2; exit 2; }

cargo fmt --all --check

# One build of the whole workspace (never per package: -p recompiles dependencies with other features).
cargo build --workspace --all-targets --locked

# The sandbox binary must not link OpenSSL or aws-lc (see docs/stack.md).
for banned in openssl-sys aws-lc-sys; do
  if cargo tree --workspace --locked -i "$banned" >/dev/null 2>&1; then
    echo "error: $banned is in the dependency graph" >&2; exit 1
  fi
done

cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
