"""An oracle annotator: judges pairs by the synthetic source's true identities, through the REST API."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from app.sources.synthetic import SyntheticConfig, SyntheticSource


def synthetic_source(audit: dict[str, Any]) -> SyntheticSource:
    return SyntheticSource(SyntheticConfig(**audit["synthetic"]), audit["seed"])


def identities(audit: dict[str, Any]) -> np.ndarray:
    source = synthetic_source(audit)
    chunk = source.generate(np.arange(audit["n"], dtype=np.int64))
    assert chunk.identities is not None
    return chunk.identities


def true_duplicate_pairs(ids: np.ndarray) -> int:
    return sum(c * (c - 1) // 2 for c in Counter(ids.tolist()).values())


def judge_all(client: TestClient, audit_id: int, ids: np.ndarray, annotator: str = "oracle") -> int:
    """Label every candidate pair of the audit; returns the number of judgements posted."""
    posted = 0
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 500, "label": "unlabelled"}
        if cursor:
            params["cursor"] = cursor
        page = client.get(f"/api/audits/{audit_id}/pairs", params=params).json()
        for pair in page["items"]:
            label = "duplicate" if ids[pair["i"]] == ids[pair["j"]] else "distinct"
            response = client.post(
                f"/api/pairs/{pair['id']}/judgements",
                json={"label": label, "annotator": annotator},
                headers={"Idempotency-Key": str(uuid.uuid4())},
            )
            assert response.status_code == 201, response.text
            posted += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return posted
