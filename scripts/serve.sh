#!/usr/bin/env bash
# Install everything and start the dashboard on its embedded default (SQLite under ./data, in-process worker).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/birthday serve "$@"
