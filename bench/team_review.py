"""Several annotators reviewing one large audit at once, through a real server: how long each
waits for its pairs and for its labels to be taken, how many labels a second the team gets, and
that no pair is handed to two of them (the store's leases).

Builds the audit bench/review_latency.py builds (n samples, k random candidate pairs per sample,
closest 1% duplicates), starts `birthday serve` on it in a subprocess (SQLite, in-process worker),
then runs each team size in turn: every annotator a thread with its own HTTP connection, asking
for 5 pairs (`GET /api/audits/{id}/next-pairs`) and judging them one by one (`POST
/api/pairs/{id}/judgements`), with `--think` seconds per pair between labels (a person's reading
time; 0: as fast as the server answers). Each team size reviews for `--seconds`.

    .venv/bin/python bench/team_review.py                          # n = 10^5, teams of 1, 2, 4, 8
    .venv/bin/python bench/team_review.py --think 1.0              # a second per pair
    .venv/bin/python bench/team_review.py --n 1000000 --seconds 60

Prints per team size: labels a second (all annotators), the median and 95th percentile of a
handout's and a label's latency, and the pairs judged by more than one annotator (should be 0:
a pair leased to one is not handed to another while its lease runs).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.services.review_state import load_review  # noqa: E402
from app.store.db import Database  # noqa: E402
from app.store.migrate import upgrade  # noqa: E402
from bench.review_latency import build  # noqa: E402

HANDOUT = 5
TARGET = 0.001  # far below what the labels reach: the review goes on for the whole run
START_TIMEOUT_S = 120.0


@dataclass
class Tally:
    """What one annotator saw; appended from its own thread only."""

    handout_ms: list[float] = field(default_factory=list)
    label_ms: list[float] = field(default_factory=list)
    judged: list[int] = field(default_factory=list)
    empty: int = 0  # handouts with no pair


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    birthday = Path(sys.executable).parent / "birthday"
    env = {**os.environ, "BIRTHDAY_WARM_AUDITS": "1"}
    server = subprocess.Popen(
        [str(birthday), "serve", "--data-dir", str(data_dir), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server ended: {server.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.kill()
    raise RuntimeError("the server did not answer within 2 minutes")


def _annotate(
    base: str, audit_id: int, name: str, cut: float, think: float, until: float, tally: Tally
) -> None:
    with httpx.Client(base_url=base, timeout=120) as client:
        while time.monotonic() < until:
            t0 = time.perf_counter()
            response = client.get(
                f"/api/audits/{audit_id}/next-pairs",
                params={"annotator": name, "limit": HANDOUT, "target": TARGET},
            )
            response.raise_for_status()
            tally.handout_ms.append(1000 * (time.perf_counter() - t0))
            items = response.json()["items"]
            if not items:
                tally.empty += 1
                time.sleep(0.2)
                continue
            for pair in items:
                if time.monotonic() >= until:
                    return
                time.sleep(think)
                label = "duplicate" if pair["distance"] <= cut else "distinct"
                t0 = time.perf_counter()
                answered = client.post(
                    f"/api/pairs/{pair['id']}/judgements",
                    json={"label": label, "annotator": name},
                )
                answered.raise_for_status()
                tally.label_ms.append(1000 * (time.perf_counter() - t0))
                tally.judged.append(int(pair["id"]))


def _team(
    base: str, audit_id: int, size: int, cut: float, think: float, seconds: float, round_: int
) -> list[Tally]:
    tallies = [Tally() for _ in range(size)]
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(
            target=_annotate,
            args=(base, audit_id, f"team{round_}-{a}", cut, think, until, tallies[a]),
        )
        for a in range(size)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tallies


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--teams", type=int, nargs="*", default=[1, 2, 4, 8])
    parser.add_argument("--think", type=float, default=0.0, help="seconds per pair")
    parser.add_argument("--seconds", type=float, default=30.0, help="per team size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        url = f"sqlite:///{(data_dir / 'birthday.sqlite3').resolve()}"
        upgrade(url)
        port = _free_port()
        server = _start_server(data_dir, port)
        base = f"http://127.0.0.1:{port}"
        try:
            print(
                f"# n = {args.n:,} samples, k = {args.k} (a fresh audit per team); think "
                f"{args.think:g} s a pair; {args.seconds:g} s per team; target {TARGET:g}"
            )
            print(
                f"{'team':>4s} {'labels':>7s} {'labels/s':>9s} {'handout p50 ms':>15s} "
                f"{'p95':>7s} {'label p50 ms':>13s} {'p95':>7s} {'empty':>6s} {'twice':>6s}"
            )
            for round_, size in enumerate(args.teams):
                audit_id, cut = _fresh_audit(url, args.n, args.k, base)
                tallies = _team(base, audit_id, size, cut, args.think, args.seconds, round_)
                handouts = [ms for t in tallies for ms in t.handout_ms]
                labels = [ms for t in tallies for ms in t.label_ms]
                judged = Counter(pid for t in tallies for pid in set(t.judged))
                twice = sum(1 for count in judged.values() if count > 1)
                print(
                    f"{size:4d} {len(labels):7d} {len(labels) / args.seconds:9.1f} "
                    f"{_pct(handouts, 50):15.1f} {_pct(handouts, 95):7.1f} "
                    f"{_pct(labels, 50):13.1f} {_pct(labels, 95):7.1f} "
                    f"{sum(t.empty for t in tallies):6d} {twice:6d}",
                    flush=True,
                )
        finally:
            server.terminate()
            server.wait(timeout=60)


def _fresh_audit(url: str, n: int, k: int, base: str) -> tuple[int, float]:
    """A new audit in the served store, its caches built (a team's first handout is not a
    restart's), and the distance below which the oracle calls a pair a duplicate."""
    db = Database(url)
    audit_id = build(db, n, k, np.random.default_rng(0))
    cut = float(np.quantile(load_review(db, audit_id).candidates.distance, 0.01))
    db.dispose()
    httpx.get(f"{base}/api/audits/{audit_id}/estimate", timeout=600).raise_for_status()
    return audit_id, cut


if __name__ == "__main__":
    main()
