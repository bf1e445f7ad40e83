"""The paper's own protocol, from batches a user drew and inspected: for researchers who ran
Arora & Zhang's test by hand (fresh batches of s samples, a human looking for a near-duplicate in
each) and want its figures computed soundly.

Per batch size: the share of batches with a duplicate and its exact (Clopper-Pearson) interval;
the smallest size whose share reaches 1/2 and the paper's "support ~ s^2"; the uniform model's
maximum-likelihood N with its profile-likelihood interval; and a likelihood-ratio test of that
model against a free share per size, since s^2 and the MLE mean something only for a generator
close to uniform.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, Field, model_validator
from scipy.stats import beta, chi2

from app.estimate.secondary import uniform_batch_mle
from app.request_body import RequestBody

MAX_BATCH_SIZE = 100_000  # the paper used hundreds; the MLE costs O(largest size) per step
MAX_BATCHES = 1_000_000


class BatchCount(RequestBody):
    size: int = Field(ge=2, le=MAX_BATCH_SIZE, description="s: samples in each batch.")
    batches: int = Field(
        ge=1, le=MAX_BATCHES, description="Batches of this size drawn, each of fresh samples."
    )
    with_duplicate: int = Field(
        ge=0, description="Batches in which a near-duplicate pair was found."
    )

    @model_validator(mode="after")
    def at_most_all(self) -> BatchCount:
        if self.with_duplicate > self.batches:
            raise ValueError(
                f"with_duplicate ({self.with_duplicate}) exceeds batches ({self.batches}) "
                f"for size {self.size}"
            )
        return self


class PaperProtocolCreate(RequestBody):
    batches: list[BatchCount] = Field(
        min_length=1, max_length=1000, description="One entry per batch size."
    )
    level: float = Field(default=0.95, gt=0.5, lt=1, description="Confidence level.")

    @model_validator(mode="after")
    def one_entry_per_size(self) -> PaperProtocolCreate:
        sizes = [b.size for b in self.batches]
        if len(set(sizes)) != len(sizes):
            raise ValueError("give each batch size once (add up its batches)")
        if sum(b.batches for b in self.batches) > MAX_BATCHES:
            raise ValueError(f"at most {MAX_BATCHES} batches in all")
        return self


class BatchSharePublic(BaseModel):
    size: int
    batches: int
    with_duplicate: int
    share: float = Field(description="Batches with a duplicate, over all of this size.")
    share_low: float = Field(description="Clopper-Pearson bound (exact binomial).")
    share_high: float
    uniform_share: float | None = Field(
        description="P(duplicate in a batch of s) for a uniform generator on the MLE's N; "
        "null without an MLE."
    )


class PaperProtocolPublic(BaseModel):
    level: float
    sizes: list[BatchSharePublic] = Field(description="Per batch size, smallest first.")
    s50: int | None = Field(
        description="The smallest batch size whose share of batches with a duplicate reaches "
        "1/2: the paper's s; null when none does."
    )
    s50_upper_bound: bool = Field(
        default=False,
        description="The smallest batch size tried already reaches 1/2: the true s50 may be "
        "smaller, and s50 and s50^2 are upper bounds (try smaller batches).",
    )
    paper_support: int | None = Field(
        description="The paper's support ~ s50^2 (about 1.39 N for a uniform N); null without s50."
    )
    n_hat: float | None = Field(
        description="Maximum-likelihood N of a uniform generator on N outputs; null when "
        "every batch or none held a duplicate (then only a bound exists)."
    )
    n_low: float | None = Field(description="Profile-likelihood bound; null: unbounded.")
    n_high: float | None = Field(description="Profile-likelihood bound; null: unbounded.")
    uniform_fit_p: float | None = Field(
        description="p-value of a likelihood-ratio test of the uniform model against a free "
        "share per batch size (needs two sizes or more and an MLE); small means the "
        "generator is far from uniform and both s50^2 and n_hat misread its support."
    )
    note: str


def _none_probability(size: int, big_n: float) -> float:
    """P(no duplicate among `size` uniform draws from big_n outputs)."""
    steps = np.arange(1, size, dtype=np.float64)
    if size - 1 >= big_n:
        return 0.0
    return float(np.exp(np.sum(np.log1p(-steps / big_n))))


def _clopper_pearson(hits: int, total: int, level: float) -> tuple[float, float]:
    alpha = 1 - level
    low = 0.0 if hits == 0 else float(beta.ppf(alpha / 2, hits, total - hits + 1))
    high = 1.0 if hits == total else float(beta.ppf(1 - alpha / 2, hits + 1, total - hits))
    return low, high


def _binomial_loglik(hits: int, total: int, p: float) -> float:
    out = 0.0
    if hits:
        out += hits * math.log(p) if p > 0 else -math.inf
    if total - hits:
        out += (total - hits) * math.log1p(-p) if p < 1 else -math.inf
    return out


def paper_protocol(body: PaperProtocolCreate) -> PaperProtocolPublic:
    rows = sorted(body.batches, key=lambda b: b.size)
    sizes = np.concatenate([np.full(b.batches, b.size, dtype=np.int64) for b in rows])
    hits = np.concatenate(
        [
            np.repeat(
                np.array([1, 0], dtype=np.int64), [b.with_duplicate, b.batches - b.with_duplicate]
            )
            for b in rows
        ]
    )
    mle = uniform_batch_mle(sizes, hits, body.level)
    shares: list[BatchSharePublic] = []
    for b in rows:
        low, high = _clopper_pearson(b.with_duplicate, b.batches, body.level)
        uniform = None if mle.n_hat is None else 1 - _none_probability(b.size, mle.n_hat)
        shares.append(
            BatchSharePublic(
                size=b.size,
                batches=b.batches,
                with_duplicate=b.with_duplicate,
                share=b.with_duplicate / b.batches,
                share_low=low,
                share_high=high,
                uniform_share=uniform,
            )
        )
    s50 = next((s.size for s in shares if s.share >= 0.5), None)
    fit_p = None
    if mle.n_hat is not None and len(shares) >= 2:
        free = sum(_binomial_loglik(s.with_duplicate, s.batches, s.share) for s in shares)
        deviance = max(0.0, 2 * (free - mle.log_likelihood))
        fit_p = float(chi2.sf(deviance, len(shares) - 1))
    return PaperProtocolPublic(
        level=body.level,
        sizes=shares,
        s50=s50,
        s50_upper_bound=s50 is not None and s50 == shares[0].size,
        paper_support=None if s50 is None else s50 * s50,
        n_hat=mle.n_hat,
        n_low=mle.low,
        n_high=mle.high,
        uniform_fit_p=fit_p,
        note=(
            "Batches must be fresh, independent draws, each inspected in full. s50^2 and the "
            "MLE read the support of a uniform generator; for any other, the birthday test on "
            "one pool with designed review (POST /api/audits) estimates N_eff, the inverse "
            "Simpson index, which is what the duplicates measure."
        ),
    )
