"""Sweeps: the results table per grid cell over seeds, and one click from a grid of trained
image GANs to audits compared side by side (the paper's RQ2)."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import fastapi.routing
import pytest
from fastapi.testclient import TestClient

from app.schemas import TrainingProgress, TrainingRunPublic
from app.services.sweeps import summarise, sweep_cells
from tests.conftest import assert_problem, sse_events, wait_for, wait_for_audit


def _run(run_id: int, loss: str, width: float, status: str, modes: dict[str, Any] | None):
    return TrainingRunPublic(
        id=run_id,
        status=status,
        progress=TrainingProgress(step=1, steps=1),
        generator_id=None,
        config={"loss": loss, "d_width": width, "latent_dim": 2, "seed": run_id},
        modes=modes,
        sweep_id=1,
        job_id=None,
        error=None,
    )


def test_a_summary_is_mean_sample_sd_and_range() -> None:
    s = summarise([1.0, 2.0, 4.0])
    assert s is not None
    assert (s.runs, s.mean, s.min, s.max) == (3, pytest.approx(7 / 3), 1.0, 4.0)
    # sum of squares about 7/3: 16/9 + 1/9 + 25/9 = 42/9, over n - 1 = 2
    assert s.sd == pytest.approx(math.sqrt(21 / 9))
    one = summarise([5.0])
    assert one is not None and (one.mean, one.sd) == (5.0, None)
    assert summarise([]) is None
    infinite = summarise([1.0, math.inf])
    assert infinite is not None and (infinite.mean, infinite.sd, infinite.min, infinite.max) == (
        None,
        None,
        1.0,
        None,
    )


def test_cells_group_seeds_and_count_only_finished_runs() -> None:
    ring = {"n_modes": 8, "high_quality_fraction": 0.5, "kl_to_uniform": 0.1}
    spiral = {"n_segments": 20, "segments_captured": 12, "high_quality_fraction": 0.9}
    runs = [
        _run(1, "sgan", 1.0, "done", {**ring, "modes_captured": 2}),
        _run(2, "sgan", 1.0, "done", {**ring, "modes_captured": 6}),
        _run(3, "sgan", 1.0, "running", None),
        _run(4, "sgan", 2.0, "done", {**ring, "modes_captured": 8}),
        _run(7, "sgan", 2.0, "done", {**ring, "modes_captured": 0, "kl_to_uniform": None}),
        _run(5, "rasgan", 1.0, "failed", None),
        _run(6, "veegan", 1.0, "done", spiral),
    ]
    cells = {(c.loss, c.d_width): c for c in sweep_cells(runs)}
    assert list(cells) == [("sgan", 1.0), ("sgan", 2.0), ("rasgan", 1.0), ("veegan", 1.0)]
    first = cells["sgan", 1.0]
    assert (first.runs, first.done, first.run_ids, first.n_modes) == (3, 2, [1, 2, 3], 8)
    assert first.modes_captured is not None
    assert (first.modes_captured.mean, first.modes_captured.min) == (4.0, 2.0)
    assert first.modes_captured.sd == pytest.approx(math.sqrt(8.0))
    # No good sample at all: the KL is stored as null, and it is infinite.
    wide = cells["sgan", 2.0].kl_to_uniform
    assert wide is not None and (wide.runs, wide.mean, wide.min, wide.max) == (
        2,
        None,
        0.1,
        None,
    )
    failed = cells["rasgan", 1.0]
    assert (failed.done, failed.modes_captured, failed.n_modes) == (0, None, None)
    curve = cells["veegan", 1.0]
    assert curve.n_modes == 20 and curve.modes_captured is not None
    assert curve.modes_captured.mean == 12 and curve.kl_to_uniform is None


def _finished(client: TestClient, sweep_id: int) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        sweep = client.get(f"/api/sweeps/{sweep_id}").json()
        ended = all(r["status"] in ("done", "failed", "cancelled") for r in sweep["runs"])
        return sweep if ended else None

    return wait_for(done, 300, what=f"sweep {sweep_id}")


def test_a_sweep_of_image_gans_is_audited_and_compared_in_one_request(
    client: TestClient,
) -> None:
    body = {
        "dataset": "digits",
        "architecture": "dcgan",
        "losses": ["sgan_nonsaturating"],
        "latent_dims": [8],
        "d_widths": [0.25, 0.5],
        "seeds": [0, 1],
        "g_width": 0.25,
        "batch_size": 16,
        "steps": 4,
        "dataset_options": {"image_size": 16},
    }
    created = client.post("/api/sweeps", json=body)
    assert created.status_code == 202, created.text
    sweep = _finished(client, created.json()["id"])
    assert [r["status"] for r in sweep["runs"]] == ["done"] * 4
    assert all(r["config"]["g_width"] == 0.25 for r in sweep["runs"])
    cells = sweep["cells"]
    assert [(c["d_width"], c["done"], c["n_modes"]) for c in cells] == [(0.25, 2, 10), (0.5, 2, 10)]
    for cell in cells:
        captured = [
            r["modes"]["modes_captured"] for r in sweep["runs"] if r["id"] in cell["run_ids"]
        ]
        assert cell["modes_captured"]["mean"] == pytest.approx(sum(captured) / 2)
    assert sweep["audits"] == []

    audits = client.post(
        f"/api/sweeps/{sweep['id']}/audits", json={"n": 60, "seed": 3, "target": 0.3}
    )
    assert audits.status_code == 202, audits.text
    queued = audits.json()
    assert [a["target"] for a in queued] == [0.3] * len(queued)
    generators = [r["generator_id"] for r in sweep["runs"]]
    assert [a["generator_id"] for a in queued] == generators
    assert all(a["n"] == 60 and a["seed"] == 3 for a in queued)
    names = [a["generator_name"] for a in queued]
    assert "D x0.25 G x0.25 z8 seed 0" in names[0] and "D x0.5 G x0.25 z8 seed 1" in names[3]
    for audit in queued:
        assert wait_for_audit(client, audit["id"])["status"] == "done"
    ids = [a["id"] for a in queued]
    assert client.get(f"/api/sweeps/{sweep['id']}").json()["audits"] == ids
    page = client.get(f"/compare?ids={','.join(map(str, ids))}").text
    assert all(name in page for name in names)
    # An audit's page links the run and sweep that trained its generator; its review link
    # carries the sweep, so that the review leads on to the sweep's next audit.
    audit_page = client.get(f"/audits/{ids[1]}").text
    run = sweep["runs"][1]
    assert f'<a href="/training/{run["id"]}">run #{run["id"]}</a>' in audit_page
    assert f'<a href="/sweeps/{sweep["id"]}">sweep #{sweep["id"]}</a>' in audit_page
    assert f'href="/audits/{ids[1]}/review?sweep={sweep["id"]}"' in audit_page

    # Support across the sweep: each generator's newest finished audit, none reviewed yet.
    support = client.get(f"/api/sweeps/{sweep['id']}/support?level=0.9").json()
    assert [r["audit_id"] for r in support["runs"]] == ids
    assert all(not r["used"] and "keep labelling" in r["reason"] for r in support["runs"])
    assert (support["cells"], support["trends"], support["level"]) == ([], [], 0.9)
    assert_problem(client.get("/api/sweeps/987654/support"), 404)
    export = client.get(f"/api/sweeps/{sweep['id']}/support.csv?embedder=pixels")
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    exported = list(csv.DictReader(io.StringIO(export.text)))
    assert [int(r["audit_id"]) for r in exported] == ids and exported[0]["n_eff"] == ""
    assert_problem(client.get("/api/sweeps/987654/support.csv"), 404)
    nothing = client.post(f"/api/sweeps/{sweep['id']}/extend", json={})
    assert_problem(nothing, 422)
    assert "none lacks duplicates" in nothing.json()["detail"]
    assert_problem(client.post(f"/api/sweeps/{sweep['id']}/extend", json={"n_more": 0}), 422)
    assert_problem(client.post("/api/sweeps/987654/extend", json={}), 404)
    assert_problem(client.get(f"/api/sweeps/{sweep['id']}/support?level=1"), 422)

    # Each run's own discriminator when none is named.
    by_d = client.post(
        f"/api/sweeps/{sweep['id']}/audits", json={"n": 60, "embedder": "discriminator"}
    )
    assert by_d.status_code == 202, by_d.text
    weights = [a["embedder_options"]["weights"] for a in by_d.json()]
    assert weights == [r["discriminator"] for r in sweep["runs"]]
    # Bad settings are refused before any audit is stored.
    before = len(client.get("/api/audits").json())
    assert_problem(client.post(f"/api/sweeps/{sweep['id']}/audits", json={"n": 1}), 422)
    missing = {"embedder": "clip", "embedder_options": {"model": "RN50", "weights": "none.pt"}}
    assert_problem(client.post(f"/api/sweeps/{sweep['id']}/audits", json=missing), 422)
    assert len(client.get("/api/audits").json()) == before
    assert_problem(client.post("/api/sweeps/987654/audits", json={}), 404)


def test_a_sweep_on_points_has_nothing_to_audit(any_client: TestClient) -> None:
    client = any_client
    body = {"dataset": "ring8", "losses": ["rasgan"], "steps": 5}
    sweep = _finished(client, client.post("/api/sweeps", json=body).json()["id"])
    response = client.post(f"/api/sweeps/{sweep['id']}/audits", json={})
    assert_problem(response, 422)
    assert "draws images" in response.json()["detail"]
    listed = client.get("/api/sweeps").json()
    assert listed[0]["id"] == sweep["id"] and listed[0]["cells"][0]["n_modes"] == 8
    # The runs as CSV: one row each, the figures as the API has them.
    export = client.get(f"/api/sweeps/{sweep['id']}/runs.csv")
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert f"sweep-{sweep['id']}-runs.csv" in export.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(export.text)))
    (run,) = sweep["runs"]
    assert len(rows) == 1 and rows[0]["run_id"] == str(run["id"])
    assert (rows[0]["loss"], rows[0]["status"], rows[0]["n_modes"]) == ("rasgan", "done", "8")
    assert int(rows[0]["modes_captured"]) == run["modes"]["modes_captured"]
    assert float(rows[0]["quality"]) == run["modes"]["high_quality_fraction"]
    kl = run["modes"]["kl_to_uniform"]
    assert float(rows[0]["kl_to_uniform"]) == (math.inf if kl is None else kl)
    assert_problem(client.get("/api/sweeps/987654/runs.csv"), 404)


def test_compare_answers_what_each_estimate_says(any_client: TestClient) -> None:
    client = any_client
    made = [
        client.post("/api/audits", json={"synthetic": {"support": k}, "n": 80}).json()
        for k in (40, 60)
    ]
    ids = [wait_for_audit(client, a["id"])["id"] for a in made]
    pair = client.get(f"/api/audits/{ids[1]}/pairs?limit=1").json()["items"][0]
    client.post(
        f"/api/pairs/{pair['id']}/judgements", json={"label": "duplicate", "annotator": "a"}
    )
    items = client.get(f"/api/compare?ids={ids[1]},{ids[0]}&ids={ids[1]}&level=0.9").json()
    assert [item["audit"]["id"] for item in items] == [ids[1], ids[0]]
    assert [item["known_n_eff"] for item in items] == [60, 40]
    for item in items:
        alone = client.get(f"/api/audits/{item['audit']['id']}/estimate?level=0.9").json()
        assert item["estimate"] == alone
    assert items[0]["estimate"]["duplicate_pairs"] >= 1
    assert items[1]["ratio_to_first"] is None  # nothing judged: a provisional interval
    everything = client.get("/api/compare").json()
    assert [item["audit"]["id"] for item in everything] == ids
    assert_problem(client.get(f"/api/compare?ids={ids[0]},987654"), 404)
    assert_problem(client.get("/api/compare?ids=1,x"), 422)
    assert_problem(client.get(f"/api/compare?ids={ids[0]}&level=1.5"), 422)


def test_cancelling_a_sweep_stops_its_runs_and_says_so_on_their_streams(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fastapi.routing, "_PING_INTERVAL", 0.5)
    body = {"dataset": "ring8", "losses": ["rasgan"], "seeds": [0, 1, 2], "steps": 10**6}
    sweep = client.post("/api/sweeps", json=body).json()
    first, _, last = sweep["runs"]
    wait_for(
        lambda: client.get(f"/api/training-runs/{first['id']}").json()["status"] == "running",
        what="the first run to start",
    )
    url = f"/api/events?training_run={first['id']}&training_run={last['id']}"
    with client.stream("GET", url) as stream:
        events = sse_events(stream.iter_lines(), timeout=60)
        statuses = {
            data["training_run_id"]: data["status"] for _, _, data in (next(events), next(events))
        }
        assert statuses == {first["id"]: "running", last["id"]: "queued"}
        answer = client.post(f"/api/sweeps/{sweep['id']}/cancel")
        assert answer.status_code == 200, answer.text
        ended = {}
        for kind, _, data in events:
            if kind == "status":
                ended[data["training_run_id"]] = data["status"]
            if len(ended) == 2:
                break
    # The queued run is cancelled at once (no worker will announce it), the running one at its
    # next step; both streams said so.
    assert ended == {first["id"]: "cancelled", last["id"]: "cancelled"}
    runs = _finished(client, sweep["id"])["runs"]
    assert [r["status"] for r in runs] == ["cancelled"] * 3
    again = client.post(f"/api/sweeps/{sweep['id']}/cancel").json()
    assert [r["status"] for r in again["runs"]] == ["cancelled"] * 3
    assert_problem(client.post("/api/sweeps/987654/cancel"), 404)


def test_a_queued_audit_cancelled_says_so_on_its_stream(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fastapi.routing, "_PING_INTERVAL", 0.5)
    # A long training run holds the one worker, so the audit waits in the queue.
    run = client.post(
        "/api/training-runs", json={"dataset": "ring8", "loss": "rasgan", "steps": 10**6}
    ).json()
    audit = client.post("/api/audits", json={"synthetic": {"support": 50}, "n": 60}).json()
    with client.stream("GET", f"/api/audits/{audit['id']}/events?estimates=false") as stream:
        events = sse_events(stream.iter_lines(), timeout=60)
        kind, _, first = next(events)
        assert (kind, first["status"]) == ("progress", "queued")
        cancelled = client.post(f"/api/jobs/{audit['job_id']}/cancel").json()
        assert cancelled["status"] == "cancelled"
        kind, _, said = next(events)
        assert (kind, said["status"]) == ("status", "cancelled")
    assert client.get(f"/api/audits/{audit['id']}").json()["status"] == "cancelled"
    client.post(f"/api/jobs/{run['job_id']}/cancel")
