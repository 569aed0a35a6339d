#!/usr/bin/env bash
# Creates (once) the Python venv with the official E2B SDK that tests/sandbox_sdk.rs drives
# against `osiris sandbox serve`. Idempotent: does nothing when the pinned SDK is installed.
# Usage: bash scripts/e2b_sdk_venv.sh        (override the location with OSIRIS_E2B_VENV)
set -euo pipefail
SDK_VERSION="2.63.0"
VENV="${OSIRIS_E2B_VENV:-$HOME/.cache/osiris-e2b-venv}"
PY="$VENV/bin/python"

if [ -x "$PY" ] && "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('e2b') != '$SDK_VERSION')" 2>/dev/null; then
  exit 0
fi
command -v python3 >/dev/null || { echo "error: python3 not found (apt-get install python3 python3-venv)" >&2; exit 2; }
if ! python3 -m venv "$VENV" 2>/dev/null; then
  echo "error: python3 -m venv failed: install the venv module (apt-get install python3-venv)" >&2; exit 2
fi
"$PY" -m pip install --quiet --disable-pip-version-check "e2b==$SDK_VERSION"
"$PY" -c "import e2b" && echo "E2B SDK $SDK_VERSION installed in $VENV"
