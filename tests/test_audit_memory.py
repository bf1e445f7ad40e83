"""The admission check on an audit's index memory (services.audits.check_memory)."""

from __future__ import annotations

import pytest

from app.mining.factory import EXACT_MAX_POOL, miner_bytes
from app.services.audits import check_memory

GIB = 1024**3


def test_the_hnsw_graph_is_counted_above_the_exact_pool() -> None:
    # 10^6 CLIP rows: 1.91 GiB of float32 values, 2.32 GiB with the graph's links (measured
    # ~4*d + 8*M + 250-320 bytes a row), so a 2.1 GiB server must refuse the hnsw pool.
    n, dim, limit = 1_000_000, 512, int(2.1 * GIB)
    assert n * dim * 4 < limit < miner_bytes("auto", n, dim)
    with pytest.raises(ValueError, match=r"need 2\.3 GiB of index, over this server's 2\.1 GiB"):
        check_memory(n, dim, limit)
    with pytest.raises(ValueError, match="need 2.3 GiB"):
        check_memory(n, dim, limit, miner="hnsw")
    check_memory(n, dim, limit, miner="exact")  # no graph: values and digests, 2.06 GiB


def test_the_exact_pool_counts_values_and_digests_only() -> None:
    dim = 512
    assert miner_bytes("auto", EXACT_MAX_POOL, dim) == miner_bytes("exact", EXACT_MAX_POOL, dim)
    assert miner_bytes("auto", EXACT_MAX_POOL + 1, dim) == miner_bytes(
        "hnsw", EXACT_MAX_POOL + 1, dim
    )
    per_row = miner_bytes("exact", EXACT_MAX_POOL, dim) / EXACT_MAX_POOL
    assert 4 * dim < per_row < 4 * dim + 200
    check_memory(EXACT_MAX_POOL, dim, EXACT_MAX_POOL * (4 * dim + 200))
    with pytest.raises(ValueError):
        check_memory(EXACT_MAX_POOL, dim, EXACT_MAX_POOL * 4 * dim)
