"""Each audit's own stopping target: set at creation, changed with PATCH (or `birthday
set-target`), and followed by the review queue, the estimate's stopping rule and the pages."""

from __future__ import annotations

import subprocess
from typing import Any

from fastapi.testclient import TestClient

from app.settings import Settings
from tests.conftest import assert_problem, wait_for_audit
from tests.oracle import identities
from tests.test_cli import BIRTHDAY
from tests.test_review_design_api import _audit, _follow_queue


def _estimate(client: TestClient, aid: int, **params: Any) -> dict[str, Any]:
    response = client.get(f"/api/audits/{aid}/estimate", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_queue_stops_at_the_audits_target_and_resumes_when_it_tightens(
    client: TestClient,
) -> None:
    audit = _audit(client, synthetic={"support": 400}, n=300, neighbours=3, target=0.5)
    aid = audit["id"]
    assert audit["target"] == 0.5
    ids = identities(audit)

    def oracle(pair: dict[str, Any]) -> str:
        return "duplicate" if ids[pair["i"]] == ids[pair["j"]] else "distinct"

    loose = _follow_queue(client, aid, "ada", oracle)
    assert loose["stop"]
    estimate = _estimate(client, aid)
    assert estimate["stop"]["target_relative_half_width"] == 0.5
    assert estimate["stop"]["reached"]
    # The same labels against a tighter aim: not reached; the pool is what limits it now.
    tight = _estimate(client, aid, target=0.1)
    assert not tight["stop"]["reached"] and tight["stop"]["samples_to_go"] > 0

    patched = client.patch(f"/api/audits/{aid}", json={"target": 0.1})
    assert patched.status_code == 200, patched.text
    assert patched.json()["target"] == 0.1
    assert client.get(f"/api/audits/{aid}").json()["target"] == 0.1
    assert _estimate(client, aid)["stop"] == tight["stop"]  # the audit's own target now
    assert _estimate(client, aid, target=0.5)["stop"] == estimate["stop"]  # a call may override
    # Extended by what the rule asks, the pool's new pairs are reviewed against the new aim.
    more = tight["stop"]["samples_to_go"]
    assert client.post(f"/api/audits/{aid}/extend", json={"n_more": more}).status_code == 202
    grown = wait_for_audit(client, aid)
    ids = identities(grown)
    assert not client.get(f"/api/audits/{aid}/next-pairs", params={"annotator": "ada"}).json()[
        "stop"
    ]
    assert _follow_queue(client, aid, "ada", oracle)["stop"]
    final = _estimate(client, aid)
    assert final["stop"]["target_relative_half_width"] == 0.1
    assert final["labelled_pairs"] > estimate["labelled_pairs"]


def test_a_target_must_be_a_relative_half_width(client: TestClient) -> None:
    assert_problem(
        client.post("/api/audits", json={"synthetic": {"support": 50}, "n": 20, "target": 0}), 422
    )
    audit = _audit(client, synthetic={"support": 50}, n=20)
    assert audit["target"] == 0.2  # the default
    for body in ({"target": 0}, {"target": 1.5}, {"target": "wide"}, {"n": 30}, {}):
        assert_problem(client.patch(f"/api/audits/{audit['id']}", json=body), 422)
    assert_problem(client.patch("/api/audits/999", json={"target": 0.3}), 404)
    assert client.get(f"/api/audits/{audit['id']}").json()["target"] == 0.2


def test_the_audit_page_shows_and_sets_the_target(client: TestClient) -> None:
    audit = _audit(client, synthetic={"support": 50}, n=60, target=0.35)
    page = client.get(f"/audits/{audit['id']}").text
    assert 'name="target_pct"' in page and 'value="35"' in page
    assert "<span data-target-pct>35</span>%" in client.get(f"/audits/{audit['id']}/panel").text


def test_the_cli_sets_and_follows_the_target(client: TestClient, settings: Settings) -> None:
    audit = _audit(client, synthetic={"support": 50}, n=80, neighbours=3)
    data = ["--data-dir", str(settings.data_dir)]
    done = subprocess.run(
        [BIRTHDAY, "set-target", str(audit["id"]), "0.4", *data],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"audit {audit['id']} aims for ±40%" in done.stdout
    assert client.get(f"/api/audits/{audit['id']}").json()["target"] == 0.4
    shown = subprocess.run(
        [BIRTHDAY, "estimate", str(audit["id"]), "--json", *data],
        capture_output=True,
        text=True,
        check=False,
    )
    assert '"target_relative_half_width": 0.4' in shown.stdout
    refused = subprocess.run(
        [BIRTHDAY, "set-target", str(audit["id"]), "3", *data],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0 and "less than or equal to 1" in refused.stderr
