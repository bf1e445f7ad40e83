"""bench/sweep_support.py: its pools are sized as each scenario says, and what it counts is what
the figure does (empty pools left out, coverage of the true b)."""

from __future__ import annotations

from tests.bench_modules import load_bench

bench = load_bench("sweep_support")


def test_fixed_pools_leave_the_widest_generators_with_the_fewest_duplicates() -> None:
    # One n for every width, E[D] = 1 at width 1: at width 8 (b = 1) E[D] = 1/8, so most of
    # those pools hold no duplicate, while scaled pools keep E[D] = 20 everywhere.
    fixed = bench.Scenario((1.0, 8.0), 3, 1.0, 0.0, 1, "fixed")
    scaled = bench.Scenario((1.0, 8.0), 3, 1.0, 0.0, 20, "scaled")
    tally, _, _ = bench.simulate(fixed, reps=30, seed=0)
    assert tally.pools == 30 * 6 and tally.empty_pools > 30 * 3 * 0.5
    tally, exponents, spans = bench.simulate(scaled, reps=30, seed=0)
    assert tally.empty_pools == 0 and tally.fits == 30 and len(exponents) == len(spans) == 30
    assert 0.8 < sum(exponents) / 30 < 1.2 and tally.trend_hits >= 25


def test_the_table_has_a_row_per_scenario() -> None:
    text = bench.table([["a", "0.950"], ["b", "1.000"]], ["scenario", "b covered"])
    assert text.splitlines()[0] == "| scenario | b covered |"
    assert len(text.splitlines()) == 4
