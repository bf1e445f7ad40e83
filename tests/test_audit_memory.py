"""The admission check on an audit's index memory (services.audits.check_memory)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.mining.factory import EXACT_MAX_POOL, miner_bytes
from app.services.audits import check_memory, chunk_bytes

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


def test_a_step_of_large_images_is_counted_beside_the_index() -> None:
    # 100,000 RGB images of 128x128 a step: 3 float32 copies are 55 GiB, whatever the pool.
    shape = (3, 128, 128)
    assert chunk_bytes(100_000, shape, 768) > 50 * GIB
    index = miner_bytes("auto", 100_000, 768)
    assert index < 8 * GIB
    with pytest.raises(ValueError, match=r"use a smaller chunk_size"):
        check_memory(100_000, 768, 8 * GIB, chunk=(100_000, shape))
    check_memory(100_000, 768, 8 * GIB, chunk=(1_000, shape))  # the default step: 0.6 GiB
    # The step and the index are held at once: each fits alone, not both.
    step, index = chunk_bytes(1_000, shape, 768), miner_bytes("auto", 10**6, 768)
    with pytest.raises(ValueError, match=r"GiB of index \(and 0\.6 GiB a step\)"):
        check_memory(10**6, 768, index + step - 1, chunk=(1_000, shape))
    check_memory(10**6, 768, index + step, chunk=(1_000, shape))


def test_an_audit_asking_for_huge_steps_is_refused_before_it_is_queued(client: TestClient) -> None:
    body = {
        "synthetic": {"support": 100, "image_size": 128, "channels": 3},
        "n": 100_000,
        "chunk_size": 100_000,
        "embedder": "pixels",
        "embedder_options": {"resize": 16},
    }
    response = client.post("/api/audits", json=body)
    assert response.status_code == 422, response.text
    assert "chunk_size" in response.json()["detail"]
    assert client.get("/api/audits").json() == []  # nothing queued
