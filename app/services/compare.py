"""Several audits' estimates side by side (e.g. one GAN trained with discriminators of width 1x,
2x and 4x): what the compare page draws, GET /api/compare answers and `birthday compare` prints."""

from __future__ import annotations

from collections.abc import Sequence

from app.estimate.across_runs import ratio_interval
from app.schemas import AuditPublic, CompareItem, EstimatePublic, SupportRatio
from app.services.audits import describe_audits
from app.services.estimates import audit_estimate
from app.services.sweep_support import unusable
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
    items: list[CompareItem] = []
    for audit_id in chosen:
        try:
            estimate = audit_estimate(db, audit_id, level=level)
        except ValueError:
            estimate = None
        audit = by_id[audit_id]
        item = CompareItem(audit=audit, estimate=estimate, known_n_eff=known_n_eff(audit))
        if items:
            item.ratio_to_first = support_ratio(item, items[0], level)
        items.append(item)
    return audits, items


def _bounded(estimate: EstimatePublic | None) -> tuple[float, float, float] | None:
    """N_eff with a finite interval, once the review has explored what it must (a provisional
    interval allows anything no label has ruled out yet: its ratio would say nothing); the same
    test as a sweep's figure applies."""
    if estimate is None or unusable(estimate) is not None:
        return None
    assert estimate.n_eff and estimate.n_eff_low and estimate.n_eff_high
    return estimate.n_eff, estimate.n_eff_low, estimate.n_eff_high


def share_samples(a: AuditPublic, b: AuditPublic) -> bool:
    """Sample i is a pure function of (source, seed, i): two such pools overlap. Synthetic
    sources of one seed draw sample i's prototype from the same uniform number whatever their
    spec (noise and image size change only the pixels, K and the Zipf exponent only where the
    number falls), so any two of them are dependent."""
    if a.seed != b.seed:
        return False
    if a.synthetic is not None or b.synthetic is not None:
        return a.synthetic is not None and b.synthetic is not None
    return a.generator_id == b.generator_id


def support_ratio(item: CompareItem, baseline: CompareItem, level: float) -> SupportRatio | None:
    """This audit's N_eff over the baseline's, where both have finite intervals and
    independent pools."""
    mine, theirs = _bounded(item.estimate), _bounded(baseline.estimate)
    if mine is None or theirs is None or share_samples(item.audit, baseline.audit):
        return None
    value, low, high = ratio_interval(mine, theirs, level)
    return SupportRatio(baseline_audit_id=baseline.audit.id, value=value, low=low, high=high)
