#!/usr/bin/env bash
# Create .venv and install birthday with its test tools; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

# A first install is ~6 GB (PyTorch's wheel alone unpacks to ~5 GB): say so up front instead of
# pip's "No space left on device" minutes in. BIRTHDAY_INSTALL_MIN_GB=0 skips the check.
need_gb="${BIRTHDAY_INSTALL_MIN_GB:-7}"
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  for dir in . "${TMPDIR:-/tmp}"; do
    free_kb=$(df -Pk "$dir" | awk 'NR == 2 { print $4 }')
    if [ -n "$free_kb" ] && [ "$free_kb" -lt $((need_gb * 1024 * 1024)) ]; then
      echo "install.sh: $((free_kb / 1024)) MB free under $dir, a first install needs about" \
        "${need_gb} GB (set BIRTHDAY_INSTALL_MIN_GB to change this check)" >&2
      exit 1
    fi
  done
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test,postgres]'
