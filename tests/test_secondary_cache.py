"""The secondary figures are kept per set of labels: the audit page asks on every poll."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.store.db import Database
from tests.review_audits import finished_audit, judge_closest


def test_secondary_figures_are_computed_once_per_set_of_labels(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.services import secondary

    calls: list[int] = []
    real = secondary._figures

    def spy(n, labelled, *args):  # type: ignore[no-untyped-def]
        calls.append(len(labelled))
        return real(n, labelled, *args)

    monkeypatch.setattr(secondary, "_figures", spy)
    audit_id = finished_audit(db)
    judge_closest(db, audit_id, "duplicate")
    first = secondary.audit_secondary(db, tmp_path, audit_id)
    assert secondary.audit_secondary(db, tmp_path, audit_id) == first
    assert calls == [1]
    judge_closest(db, audit_id, "duplicate")
    second = secondary.audit_secondary(db, tmp_path, audit_id)
    assert calls == [1, 2]
    assert second.chao1.observed == first.chao1.observed - 1  # two pairs joined: one output fewer
