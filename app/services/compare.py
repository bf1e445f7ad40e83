"""Several audits' estimates side by side (e.g. one GAN trained with discriminators of width 1x,
2x and 4x): what the compare page draws, GET /api/compare answers and `birthday compare` prints."""

from __future__ import annotations

from collections.abc import Sequence

from app.schemas import AuditPublic, CompareItem
from app.services.audits import describe_audits
from app.services.estimates import audit_estimate
from app.store.db import Database
from app.store.errors import NotFound

MAX_COMPARED = 100


def parse_ids(values: Sequence[str] | None, max_id: int) -> list[int] | None:
    """Audit ids from repeated and comma-separated values (`?ids=1,2,3`, what people type);
    None when none are named. A ValueError says what is wrong."""
    if values is None:
        return None
    tokens = [t.strip() for v in values for t in v.split(",") if t.strip()]
    bad = [t for t in tokens if not (t.isascii() and t.isdigit() and int(t) <= max_id)]
    if bad:
        raise ValueError(f"ids must be audit numbers, e.g. ids=1,2,3 (got {bad[0][:40]!r})")
    ids = list(dict.fromkeys(int(t) for t in tokens))
    if len(ids) > MAX_COMPARED:
        raise ValueError(f"at most {MAX_COMPARED} audits at once")
    return ids


def known_n_eff(audit: AuditPublic) -> int | None:
    """The true N_eff of a uniform synthetic source with no continuous part: its K."""
    spec = audit.synthetic
    if not spec or spec.get("zipf", 0) or spec.get("continuous", 0):
        return None
    support = spec.get("support")
    return int(support) if support is not None else None


def compare_items(
    db: Database, ids: Sequence[int] | None, level: float = 0.95, skip_unknown: bool = False
) -> tuple[list[AuditPublic], list[CompareItem]]:
    """Every audit, and the chosen ones (`ids` in order, repeats once; None: every finished
    audit, oldest first) with their estimates, None while a pool has under 2 samples. An
    unknown id is NotFound, or left out with `skip_unknown` (a page of what is left)."""
    audits = describe_audits(db)
    by_id = {a.id: a for a in audits}
    if ids is None:
        chosen = [a.id for a in reversed(audits) if a.status == "done"]
    else:
        missing = [i for i in ids if i not in by_id]
        if missing and not skip_unknown:
            raise NotFound("audit", missing[0])
        chosen = [i for i in dict.fromkeys(ids) if i in by_id]
    items = []
    for audit_id in chosen:
        try:
            estimate = audit_estimate(db, audit_id, level=level)
        except ValueError:
            estimate = None
        audit = by_id[audit_id]
        items.append(CompareItem(audit=audit, estimate=estimate, known_n_eff=known_n_eff(audit)))
    return audits, items
