#!/usr/bin/env bash
# The full test suite: unit, component and end-to-end tests of the real `osiris` binary.
# Usage: bash scripts/test.sh            (from anywhere; needs the Rust toolchain)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo >/dev/null || { echo "error: cargo not found: install the Rust toolchain with rustup first" >&2; exit 2; }

# Formatting and lints need the rustfmt and clippy components (rustup installs them by default).
if cargo fmt --version >/dev/null 2>&1; then cargo fmt --all --check; else echo "warning: rustfmt not installed; skipping the format check" >&2; fi

# One build of the whole workspace (never per package: -p recompiles dependencies with other features).
cargo build --workspace --all-targets --locked

# The sandbox binary must not link OpenSSL or aws-lc (see docs/stack.md).
for banned in openssl-sys aws-lc-sys; do
  if cargo tree --workspace --locked -i "$banned" >/dev/null 2>&1; then
    echo "error: $banned is in the dependency graph" >&2; exit 1
  fi
done

if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --workspace --all-targets --locked -- -D warnings
else
  echo "warning: clippy not installed; skipping the lint check" >&2
fi
# Tests against MariaDB use a real server: make sure one runs (installs and starts it if absent).
bash scripts/services.sh
# The official E2B Python SDK (pinned) that tests/sandbox_sdk.rs drives against the local server.
bash scripts/e2b_sdk_venv.sh
cargo test --workspace --locked
# Against real E2B only when a key is given (it needs the internet); otherwise it stays ignored.
if [ -n "${E2B_API_KEY:-}" ]; then
  cargo test --locked --test e2b_live -- --ignored
fi
