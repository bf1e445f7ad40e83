"""Agreement between annotators: Cohen's kappa on the pairs two annotators both judged."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """kappa = (p_o - p_e) / (1 - p_e) (Cohen 1960), with p_e from each rater's own marginals.

    None when undefined: no shared items, or both raters used one same category throughout
    (p_e = 1, so chance alone explains the agreement).
    """
    if len(a) != len(b):
        raise ValueError("both raters must label the same items")
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    count_a, count_b = Counter(a), Counter(b)
    expected = sum(count_a[c] * count_b[c] for c in count_a.keys() | count_b.keys()) / (n * n)
    if expected == 1.0:
        return None
    return (observed - expected) / (1.0 - expected)
