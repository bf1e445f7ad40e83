"""What the other process does in tests/test_store_races.py and tests/test_label_import_races.py:
one write through the store, its outcome put on a queue. A module of its own, light to import: a
spawned process imports it."""

from __future__ import annotations

from collections.abc import Callable
from multiprocessing.queues import Queue
from typing import TypeAlias

from sqlalchemy.orm import Session

from app.store.db import Database
from app.store.judgements import delete_judgement, post_judgement
from app.store.label_import import import_judgements

Results: TypeAlias = "Queue[tuple[object, ...]]"  # a queue of the spawn context


def _write(url: str, results: Results, write: Callable[[Session], tuple[object, ...]]) -> None:
    """("ok", *what `write` returned) or ("error", exception name, message) on `results`."""
    db = Database(url)
    try:
        with db.write() as session:
            outcome = write(session)
        results.put(("ok", *outcome))
    except Exception as exc:  # noqa: BLE001 - the test asserts on what went wrong
        results.put(("error", type(exc).__name__, str(exc)[:300]))
    finally:
        db.dispose()


def judge(
    url: str, pair_id: int, label: str, annotator: str, key: str | None, results: Results
) -> None:
    def write(session: Session) -> tuple[int, bool]:
        view, created = post_judgement(session, pair_id, label, annotator, key)
        return view.id, created

    _write(url, results, write)


def undo(url: str, judgement_id: int, results: Results) -> None:
    _write(url, results, lambda session: (delete_judgement(session, judgement_id).id, False))


def import_labels(url: str, source_id: int, target_id: int, results: Results) -> None:
    """("ok", copied, kept) of importing the source audit's judgements onto the target."""

    def write(session: Session) -> tuple[int, int]:
        done = import_judgements(session, source_id, target_id)
        return done.copied, done.kept

    _write(url, results, write)
