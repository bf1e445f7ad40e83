"""Twenty annotators at once, with retried requests, while an audit writes pairs: nothing lost or doubled."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.conftest import all_pairs, wait_for, wait_for_audit
from tests.server import Server

ANNOTATORS = 20
PER_ANNOTATOR = 15


def test_concurrent_annotators_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    server = Server(tmp_path / "data")
    client = server.start()
    try:
        first = client.post("/api/audits", json={"synthetic": {"support": 500}, "n": 600}).json()
        wait_for_audit(client, first["id"])
        pairs = all_pairs(client, first["id"])
        assert len(pairs) >= ANNOTATORS * PER_ANNOTATOR
        # A second audit keeps the writer busy while the judgements arrive.
        busy = client.post(
            "/api/audits", json={"synthetic": {"support": 10**5}, "n": 20_000, "chunk_size": 200}
        ).json()
        wait_for(
            lambda: client.get(f"/api/audits/{busy['id']}").json()["status"] == "running",
            what="the second audit to run",
        )

        def annotate(worker: int) -> list[tuple[str, int, int]]:
            name = f"annotator-{worker}"
            mine = pairs[worker * PER_ANNOTATOR : (worker + 1) * PER_ANNOTATOR]
            acknowledged = []
            with httpx.Client(base_url=server.url, timeout=60) as http:
                for k, pair in enumerate(mine):
                    key = str(uuid.uuid4())
                    body = {"label": "duplicate" if k % 2 else "distinct", "annotator": name}
                    url = f"/api/pairs/{pair['id']}/judgements"
                    statuses = [
                        http.post(url, json=body, headers={"Idempotency-Key": key}).status_code
                        for _ in range(2)  # the client retries: the replay must change nothing
                    ]
                    assert statuses == [201, 200], statuses
                    judgement = http.post(url, json=body, headers={"Idempotency-Key": key}).json()
                    acknowledged.append((name, pair["id"], judgement["id"]))
            return acknowledged

        with ThreadPoolExecutor(ANNOTATORS) as pool:
            acknowledged = [j for batch in pool.map(annotate, range(ANNOTATORS)) for j in batch]
        assert len(acknowledged) == ANNOTATORS * PER_ANNOTATOR
        assert len({judgement_id for _, _, judgement_id in acknowledged}) == len(acknowledged)

        labelled = {
            p["id"]: p["label"] for p in all_pairs(client, first["id"]) if p["label"] is not None
        }
        assert set(labelled) == {pair_id for _, pair_id, _ in acknowledged}
        estimate = client.get(f"/api/audits/{first['id']}/estimate").json()
        assert estimate["labelled_pairs"] == len(acknowledged)
        assert client.get(f"/api/audits/{busy['id']}").json()["status"] in ("running", "done")
    finally:
        server.stop()
        client.close()
