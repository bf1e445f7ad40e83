"""An audit's data as CSV: its pairs with their labels, and every judgement behind them.

What a researcher needs to redo the estimate elsewhere or study the annotators: the random
pairs (the miner check) beside the candidates, and each judgement with its annotator and time,
undone ones included. Each file is written in one read transaction, so it is one consistent
snapshot even while people keep labelling.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import datetime
from typing import Literal, TextIO

from app.store import audits as audit_store
from app.store import pairs as pair_store
from app.store.db import Database

__all__ = ["JUDGEMENT_COLUMNS", "PAIR_COLUMNS", "ExportOrigin", "write_judgements", "write_pairs"]

ExportOrigin = Literal["all", "candidate", "random"]
PAIR_COLUMNS = ("rank", "i", "j", "distance", "label", "origin")
JUDGEMENT_COLUMNS = (
    "judgement_id",
    "pair_id",
    "origin",
    "i",
    "j",
    "distance",
    "annotator",
    "label",
    "adjudicated",
    "created_at",
    "undone_at",
)


def _origins(origin: ExportOrigin) -> Sequence[str]:
    return pair_store.ORIGINS if origin == "all" else (origin,)


def _time(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def write_pairs(db: Database, audit_id: int, handle: TextIO, origin: ExportOrigin = "all") -> int:
    """Pairs closest first, ranked within their origin (as the API ranks them), with their
    current label; distances with every digit. Returns the number of rows; NotFound first."""
    writer = csv.writer(handle)
    rows = 0
    with db.read() as session:
        audit_store.get_audit(session, audit_id)
        writer.writerow(PAIR_COLUMNS)
        for name in _origins(origin):
            for rank, i, j, d, label in pair_store.iter_pair_rows(session, audit_id, name):
                writer.writerow((rank, i, j, repr(d), label or "", name))
                rows += 1
    return rows


def write_judgements(db: Database, audit_id: int, handle: TextIO) -> int:
    """Every judgement in the order it was made; `undone_at` is set where it was undone."""
    writer = csv.writer(handle)
    rows = 0
    with db.read() as session:
        audit_store.get_audit(session, audit_id)
        writer.writerow(JUDGEMENT_COLUMNS)
        for row in pair_store.iter_judgement_rows(session, audit_id):
            jid, pid, origin, i, j, d, who, label, ruled, created, undone = row
            times = (_time(created), _time(undone))
            writer.writerow(
                (jid, pid, origin, i, j, repr(float(d)), who, label, int(ruled), *times)
            )
            rows += 1
    return rows
