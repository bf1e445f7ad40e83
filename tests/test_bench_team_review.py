"""bench/team_review.py on a small audit: a team of annotators on a real server, each pair handed
to one of them only (the store's leases)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_team_of_three_never_judges_a_pair_twice() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "team_review.py")]
        + ["--n", "10000", "--teams", "3", "--seconds", "4"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("   3 ")]
    assert len(rows) == 1, result.stdout
    team, labels, _rate, *_latencies, _empty, twice = rows[0]
    assert int(labels) > 30  # three annotators at work, not one
    assert int(twice) == 0, result.stdout
