#!/usr/bin/env bash
# Install what is missing and start the dashboard on its embedded default (SQLite under ./data,
# in-process worker). scripts/install.sh does nothing when .venv is up to date with pyproject.toml,
# so a start needs no network once installed.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! bash scripts/install.sh; then
  # e.g. offline, with a .venv installed before install.sh kept a stamp, or pyproject.toml
  # changed: what is installed may well still run.
  [ -x .venv/bin/birthday ] || exit 1
  echo "serve.sh: could not bring .venv up to date (see above); starting the birthday" \
    "installed there (run scripts/install.sh again when that is fixed)" >&2
fi
exec .venv/bin/birthday serve "$@"
