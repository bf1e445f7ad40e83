#!/usr/bin/env bash
# Create .venv and install birthday with its test tools; safe to run again.
# Installs only when needed: no .venv yet, or pyproject.toml changed since the last install (its
# hash is kept in .venv/birthday-install.stamp), so an offline machine with a complete .venv starts
# without touching the network. `bash scripts/install.sh --force` installs regardless.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
EXTRAS="test,postgres"
STAMP=.venv/birthday-install.stamp

# The interpreter the install would use: .venv's own once it exists.
if [ -x .venv/bin/python ]; then
  py=.venv/bin/python
  wrong="remove .venv and run this again with PYTHON set to Python 3.11 or newer"
elif command -v "$PYTHON" >/dev/null; then
  py=$PYTHON
  wrong="set PYTHON to Python 3.11 or newer, e.g. PYTHON=python3.11 bash scripts/install.sh"
else
  echo "install.sh: $PYTHON not found: birthday needs Python 3.11 or newer" \
    "(set PYTHON to one, e.g. PYTHON=python3.11 bash scripts/install.sh)" >&2
  exit 1
fi
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "install.sh: birthday needs Python 3.11 or newer, and $py is" \
    "$("$py" -c 'import platform; print(platform.python_version())'): $wrong" >&2
  exit 1
fi

# What an install is of: pyproject.toml and the extras installed.
wanted="$("$py" -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest())') $EXTRAS"
if [ "${1:-}" != --force ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$wanted" ]; then
  exit 0
fi

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

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip  # once, for the new venv's bundled pip
fi
if ! .venv/bin/python -m pip install -q -e ".[$EXTRAS]"; then
  # hnswlib has no wheel on PyPI: pip compiles it, which needs a C++ compiler and Python's headers.
  if ! command -v c++ >/dev/null || ! .venv/bin/python -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
    echo "install.sh: hnswlib is built from source, which needs a C++ compiler and Python's" \
      "headers (Debian/Ubuntu: apt-get install g++ python3-dev; Fedora: dnf install gcc-c++" \
      "python3-devel)" >&2
  fi
  exit 1
fi
echo "$wanted" > "$STAMP"
