"""The review queue: which pair an annotator should see next.

First version: closest unlabelled pair first (where duplicates concentrate), skipping pairs this
annotator already judged and pairs recently handed to someone else, so several annotators working
at once do not judge the same pair twice. The stratified design of the full statistics replaces it.
"""

from __future__ import annotations

import threading
import time

from app.store import audits as audit_store
from app.store import pairs as pair_store
from app.store.db import Database
from app.store.judgements import annotator_by_name
from app.store.pairs import RankedPair

LEASE_SECONDS = 60.0


class Leases:
    """Pairs handed out recently: pair id -> (annotator, expiry)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leases: dict[int, tuple[str, float]] = {}

    def taken_by_others(self, annotator: str) -> set[int]:
        now = time.monotonic()
        with self._lock:
            expired = [pid for pid, (_, until) in self._leases.items() if until < now]
            for pid in expired:
                del self._leases[pid]
            return {pid for pid, (who, _) in self._leases.items() if who != annotator}

    def take(self, pair_id: int, annotator: str) -> None:
        with self._lock:
            self._leases[pair_id] = (annotator, time.monotonic() + LEASE_SECONDS)


_leases = Leases()


def next_pair_for(db: Database, audit_id: int, annotator: str | None) -> RankedPair | None:
    who = annotator or "anonymous"
    with db.read() as session:
        audit_store.get_audit(session, audit_id)
        person = annotator_by_name(session, who, create=False)
        skip = _leases.taken_by_others(who)
        pair = pair_store.next_unlabelled(session, audit_id, person.id if person else None, skip)
        if pair is None and skip:
            # Everyone else's leased pairs are all that is left: hand one out rather than stall.
            pair = pair_store.next_unlabelled(
                session, audit_id, person.id if person else None, set()
            )
        if pair is None:
            return None
        _leases.take(pair.id, who)
        return RankedPair(pair, pair_store.rank_of(session, pair))
