"""GET /api/events: progress and status of several audits (and training runs) on one connection."""

from __future__ import annotations

import fastapi.routing
import pytest
from fastapi.testclient import TestClient

from tests.conftest import all_pairs, sse_events, wait_for_audit


def test_several_audits_on_one_stream(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastapi.routing, "_PING_INTERVAL", 0.5)
    done = client.post("/api/audits", json={"synthetic": {"support": 50}, "n": 60}).json()
    done = wait_for_audit(client, done["id"])
    pair = all_pairs(client, done["id"])[0]
    # Small chunks: many progress events while the stream is open.
    body = {"synthetic": {"support": 3000}, "n": 1500, "chunk_size": 50, "miner": "exact"}
    running = client.post("/api/audits", json=body).json()
    url = f"/api/events?audit={done['id']}&audit={running['id']}&audit={done['id']}"
    feed = client.app.state.birthday.feed  # type: ignore[attr-defined]
    with client.stream("GET", url) as stream:
        events = sse_events(stream.iter_lines(), timeout=120)
        # First each audit's progress with its status, in the order asked (a repeat once).
        kind, _, first = next(events)
        assert (kind, first["audit_id"], first["status"]) == ("progress", done["id"], "done")
        assert first["samples_done"] == first["n"] == 60
        kind, _, second = next(events)
        assert (kind, second["audit_id"]) == ("progress", running["id"])
        assert second["status"] in ("queued", "running")
        # A label on the finished audit: no estimate on this stream, and none computed.
        client.post(
            f"/api/pairs/{pair['id']}/judgements", json={"label": "duplicate", "annotator": "a"}
        )
        seen = []
        for kind, _, data in events:
            seen.append((kind, data["audit_id"]))
            if kind == "status" and data["status"] == "done":
                break
        assert set(seen) == {("progress", running["id"]), ("status", running["id"])}
        assert seen.count(("progress", running["id"])) >= 3
        assert feed.computations(done["id"]) == 0
    final = client.get(f"/api/audits/{running['id']}").json()
    assert final["status"] == "done"


@pytest.mark.parametrize(
    ("query", "status", "detail"),
    [
        ("", 422, "name at least one audit"),
        ("?audit=abc", 422, None),
        ("?audit=-1", 422, "audit ids are"),
        ("?" + "&".join(f"audit={k}" for k in range(101)), 422, "at most 100 audits"),
        ("?training_run=x", 422, None),
        ("?training_run=-2", 422, "training run ids are"),
        ("?audit=1&" + "&".join(f"training_run={k}" for k in range(100)), 422, "at most 100"),
    ],
)
def test_bad_requests_are_problems_before_the_stream(
    client: TestClient, query: str, status: int, detail: str | None
) -> None:
    response = client.get(f"/api/events{query}")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    if detail:
        assert detail in response.json()["detail"]


def test_an_unknown_audit_is_a_404_even_beside_known_ones(client: TestClient) -> None:
    known = client.post("/api/audits", json={"synthetic": {"support": 50}, "n": 60}).json()
    response = client.get(f"/api/events?audit={known['id']}&audit=987654")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "987654" in response.json()["detail"]
