"""`pairs` events on an audit's stream: every candidate pair the miner stores, once, in storage
order, resumable from the last id a client got."""

from __future__ import annotations

from typing import Any

import fastapi.routing
import pytest
from fastapi.testclient import TestClient

from app.api import events as events_module
from tests.conftest import all_pairs, assert_problem, sse_events, wait_for_audit

BODY = {"synthetic": {"support": 3000}, "n": 1500, "chunk_size": 100, "miner": "exact"}


def _follow(client: TestClient, url: str) -> tuple[list[dict[str, Any]], list[int]]:
    """Pair events' items until the audit is done; the last_id of each pair event."""
    items: list[dict[str, Any]] = []
    last_ids: list[int] = []
    with client.stream("GET", url) as stream:
        for kind, _, data in sse_events(stream.iter_lines(), timeout=120):
            if kind == "pairs":
                items += data["items"]
                last_ids.append(data["last_id"])
                assert data["last_id"] == data["items"][-1]["id"]
            if kind == "status" and data["status"] == "done":
                break
            if kind == "progress" and data.get("status") == "done":
                break
    return items, last_ids


def test_a_running_audits_pairs_arrive_once_each(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fastapi.routing, "_PING_INTERVAL", 0.5)
    monkeypatch.setattr(events_module, "PAIRS_PER_EVENT", 300)  # a step's pairs in several
    audit = client.post("/api/audits", json=BODY).json()
    url = f"/api/audits/{audit['id']}/events?pairs=true&pairs_after=0&estimates=false"
    items, last_ids = _follow(client, url)
    assert wait_for_audit(client, audit["id"])["status"] == "done"
    stored = {p["id"]: p for p in all_pairs(client, audit["id"])}
    ids = [p["id"] for p in items]
    assert len(ids) == len(set(ids)), "a pair was sent twice"
    assert ids == sorted(ids) and set(ids) == set(stored)
    assert len(last_ids) > 1500 // 100  # several steps, some split over events
    for item in items[:50]:
        listed = stored[item["id"]]
        assert item == {k: v for k, v in listed.items() if k != "rank"}
        assert item["origin"] == "candidate" and len(item["image_urls"]) == 2


def test_a_client_resumes_from_the_last_id_it_got(client: TestClient) -> None:
    audit = client.post("/api/audits", json=BODY | {"n": 400}).json()
    assert wait_for_audit(client, audit["id"])["status"] == "done"
    every = sorted(p["id"] for p in all_pairs(client, audit["id"]))
    middle = every[len(every) // 2]
    url = f"/api/audits/{audit['id']}/events?pairs=true&pairs_after={middle}&estimates=false"
    with client.stream("GET", url) as stream:
        events = sse_events(stream.iter_lines(), timeout=60)
        assert next(events)[0] == "progress"
        kind, _, data = next(events)
    assert kind == "pairs"
    assert [p["id"] for p in data["items"]] == [i for i in every if i > middle]


def test_by_default_only_new_pairs_come(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A finished audit's stream with pairs=true sends none of its old pairs; extended, it sends
    the extension's."""
    monkeypatch.setattr(fastapi.routing, "_PING_INTERVAL", 0.5)
    audit = client.post("/api/audits", json=BODY | {"n": 300}).json()
    assert wait_for_audit(client, audit["id"])["status"] == "done"
    before = {p["id"] for p in all_pairs(client, audit["id"])}
    url = f"/api/audits/{audit['id']}/events?pairs=true&estimates=false"
    items: list[dict[str, Any]] = []
    with client.stream("GET", url) as stream:
        events = sse_events(stream.iter_lines(), timeout=120)
        kind, _, first = next(events)
        assert (kind, first["status"]) == ("progress", "done")
        grown = client.post(f"/api/audits/{audit['id']}/extend", json={"n_more": 300})
        assert grown.status_code == 202
        for kind, _, data in events:
            if kind == "pairs":
                items += data["items"]
            if kind == "status" and data["status"] == "done":
                break
    after = {p["id"] for p in all_pairs(client, audit["id"])}
    assert {p["id"] for p in items} == after - before
    assert all(p["j"] >= 300 for p in items)


def test_a_bad_resume_point_is_a_problem(client: TestClient) -> None:
    audit = client.post("/api/audits", json=BODY | {"n": 50}).json()
    for value in ("-1", "x", str(2**63)):
        url = f"/api/audits/{audit['id']}/events?pairs=true&pairs_after={value}"
        assert_problem(client.get(url), 422)
