"""Training runs and sweeps as jobs: live progress, loss curves, grids, a registered generator."""

from __future__ import annotations

from typing import Any

import fastapi.routing
import pytest
from fastapi.testclient import TestClient

from app.settings import Settings
from tests.conftest import (
    TINY_DCGAN_RUN,
    assert_problem,
    finished_run,
    sse_events,
    wait_for,
    wait_for_audit,
    wait_for_run,
)


def test_train_on_the_ring_then_read_curves_grids_and_modes(client: TestClient) -> None:
    body = {"dataset": "ring8", "loss": "rasgan", "steps": 60, "log_every": 10, "sample_every": 30}
    run = finished_run(client, body)
    assert run["progress"] == {"step": 60, "steps": 60}
    losses = client.get(f"/api/training-runs/{run['id']}/losses").json()
    assert [p["step"] for p in losses] == [10, 20, 30, 40, 50, 60]
    assert all(set(p["losses"]) >= {"discriminator", "generator"} for p in losses)
    steps = client.get(f"/api/training-runs/{run['id']}/samples").json()
    assert steps and steps[-1] == 60
    png = client.get(f"/api/training-runs/{run['id']}/samples/{steps[-1]}.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    assert run["modes"]["n_modes"] == 8 and 0 <= run["modes"]["modes_captured"] <= 8
    generator = client.get(f"/api/generators/{run['generator_id']}").json()
    assert generator["image_shape"] == [2] and generator["format"] == "safetensors"
    assert run["discriminator"] is None  # an MLP's discriminator embeds no images
    # A 2D generator has no images to audit: a clear 422, not a failed job, and the pages
    # offer no audit of it (the home page says why; the run page says its modes are its figure).
    assert run["auditable"] is False
    assert_problem(client.post("/api/audits", json={"generator_id": generator["id"]}), 422)
    home = client.get("/").text
    row = home.split(f'<tr data-generator="{generator["id"]}">')[1].split("</tr>")[0]
    assert "points, not images" in row and "audit it" not in row
    assert f'<a href="/training/{run["id"]}">run {run["id"]}</a>' in home
    page = client.get(f"/training/{run['id']}").text
    assert '<button type="button" data-audit hidden>' in page
    assert '<span class="muted" data-audit-note>This generator draws 2-D points' in page
    assert f'<option value="{generator["id"]}"' not in client.get("/audits/new").text


def test_trained_image_generator_is_auditable(client: TestClient) -> None:
    body = {
        "dataset": "digits",
        "loss": "sgan_nonsaturating",
        "architecture": "dcgan",
        "latent_dim": 16,
        "d_width": 0.25,
        "g_width": 0.25,
        "steps": 5,
        "batch_size": 16,
        "dataset_options": {"image_size": 16},
        "log_every": 1,
        "sample_every": 0,
    }
    run = finished_run(client, body)
    assert run["modes"]["n_modes"] == 10 and run["auditable"] is True
    generator = client.get(f"/api/generators/{run['generator_id']}").json()
    row = client.get("/").text.split(f'<tr data-generator="{generator["id"]}">')[1]
    assert f'<a href="/audits/new?generator_id={generator["id"]}">audit it</a>' in row
    page = client.get(f"/training/{run['id']}").text
    assert '<button type="button" data-audit>' in page and "data-audit-note hidden>" in page
    assert generator["image_shape"] == [1, 16, 16] and generator["latent_dim"] == 16
    audit = client.post("/api/audits", json={"generator_id": generator["id"], "n": 200}).json()
    assert wait_for_audit(client, audit["id"])["status"] == "done"
    # Its discriminator embeds an audit of the same generator.
    assert run["discriminator"] == f"trained/run_{run['id']}.discriminator.safetensors"
    by_d = {
        "generator_id": generator["id"],
        "n": 200,
        "embedder": "discriminator",
        "embedder_options": {"weights": run["discriminator"]},
    }
    response = client.post("/api/audits", json=by_d)
    assert response.status_code == 202, response.text
    assert wait_for_audit(client, response.json()["id"])["status"] == "done"
    pairs = client.get(f"/api/audits/{response.json()['id']}/pairs?limit=5").json()
    distances = [p["distance"] for p in pairs["items"]]
    assert distances and distances == sorted(distances) and distances[0] >= 0
    # A generator file is not a discriminator, and the option is required: 422s, no job.
    as_generator = {**by_d, "embedder_options": {"weights": f"trained/run_{run['id']}.safetensors"}}
    assert_problem(client.post("/api/audits", json=as_generator), 422)
    assert_problem(client.post("/api/audits", json={**by_d, "embedder_options": {}}), 422)


def test_ali_with_convolutional_networks_trains_and_is_audited(client: TestClient) -> None:
    """The paper's ALI on images: BiGAN/ALI with DCGAN networks, its generator audited like a
    DCGAN's (its joint discriminator needs z, so it is not offered as an embedder)."""
    body = {**TINY_DCGAN_RUN, "loss": "bigan", "dataset": "stacked_digits"}
    run = finished_run(client, body)
    assert run["config"]["architecture"] == "dcgan" and run["discriminator"] is None
    assert run["modes"]["n_modes"] == 1000 and run["auditable"] is True
    generator = client.get(f"/api/generators/{run['generator_id']}").json()
    assert generator["image_shape"] == [3, 8, 8] and generator["format"] == "safetensors"
    audit = client.post("/api/audits", json={"generator_id": generator["id"], "n": 60}).json()
    assert wait_for_audit(client, audit["id"])["status"] == "done"


def test_sweep_records_mode_metrics_per_cell(client: TestClient) -> None:
    body = {
        "dataset": "grid25",
        "losses": ["sgan_nonsaturating", "rsgan"],
        "d_widths": [0.5, 1.0],
        "steps": 20,
    }
    response = client.post("/api/sweeps", json=body)
    assert response.status_code == 202, response.text
    sweep_id = response.json()["id"]

    def finished() -> dict[str, Any] | None:
        sweep = client.get(f"/api/sweeps/{sweep_id}").json()
        return sweep if all(r["status"] == "done" for r in sweep["runs"]) else None

    sweep = wait_for(finished, 300, what="the sweep")
    cells = {(r["config"]["loss"], r["config"]["d_width"]) for r in sweep["runs"]}
    assert cells == {
        ("sgan_nonsaturating", 0.5),
        ("sgan_nonsaturating", 1.0),
        ("rsgan", 0.5),
        ("rsgan", 1.0),
    }
    assert all(r["modes"]["n_modes"] == 25 for r in sweep["runs"])


def test_bad_training_requests_are_problem_details(client: TestClient) -> None:
    for body in (
        {"dataset": "nope", "loss": "rsgan"},
        {"dataset": "ring8", "loss": "nope"},
        {"dataset": "ring8", "loss": "rsgan", "latent_dim": 0},
        {"dataset": "ring8", "loss": "rsgan", "dataset_options": {"bogus": 1}},
    ):
        assert_problem(client.post("/api/training-runs", json=body), 422)
    big = {
        "dataset": "ring8",
        "losses": ["rsgan"] * 12,
        "seeds": list(range(10)),
        "d_widths": [1, 2],
    }
    assert_problem(client.post("/api/sweeps", json=big), 422)
    # A grid value a run would refuse is refused with its place in the list, in one line.
    wide = {"dataset": "ring8", "losses": ["rsgan"], "d_widths": [0.5, 20], "seeds": [0, -1]}
    refused = client.post("/api/sweeps", json=wide)
    assert_problem(refused, 422)
    assert [e["loc"] for e in refused.json()["errors"]] == [
        ["body", "d_widths", "1"],
        ["body", "seeds", "1"],
    ]
    assert "\n" not in refused.json()["detail"] and "pydantic" not in refused.json()["detail"]
    # A lambda for a grid with no penalised loss would be dropped without a word: refused.
    unpenalised = {"dataset": "ring8", "losses": ["rsgan", "lsgan"], "gp_weight": 0.1}
    body = assert_problem(client.post("/api/sweeps", json=unpenalised), 422)
    assert "none of the sweep's losses has one" in body["detail"]
    assert_problem(client.get("/api/training-runs/999"), 404)
    assert_problem(client.get("/api/sweeps/999"), 404)


def test_the_optimiser_and_network_sizes_reach_the_run(client: TestClient) -> None:
    """WGAN-GP as its paper trains it (5 critic steps per generator step, Adam betas (0, 0.9),
    lr 1e-4) with a deeper, narrower MLP: the request's knobs are the run's."""
    knobs = {
        "batch_size": 32,
        "lr": 1e-4,
        "betas": [0.0, 0.9],
        "d_steps": 5,
        "gp_weight": 0.1,
        "architecture_options": {"hidden": 24, "depth": 3},
    }
    body = {"dataset": "ring8", "loss": "wgan_gp", "steps": 4, "log_every": 2, **knobs}
    run = finished_run(client, body)
    assert run["status"] == "done"
    assert {k: run["config"][k] for k in knobs} == knobs
    generator = client.get(f"/api/generators/{run['generator_id']}").json()
    assert generator["options"]["hidden"] == 24 and generator["options"]["depth"] == 3
    page = client.get(f"/training/{run['id']}").text
    line = page.split("data-loop>")[1].split("</span>")[0]
    assert line == (
        "batch 32 · Adam lr 0.0001, betas 0.0, 0.9 · 5 D steps per G step · gradient penalty "
        "λ 0.1 · hidden 24 · depth 3"
    )
    # A sweep gives every run the same knobs.
    grid = {"dataset": "ring8", "losses": ["wgan_gp"], "seeds": [0, 1], "steps": 2, **knobs}
    response = client.post("/api/sweeps", json=grid)
    assert response.status_code == 202, response.text
    sweep = client.get(f"/api/sweeps/{response.json()['id']}").json()
    assert len(sweep["runs"]) == 2
    assert all({k: r["config"][k] for k in knobs} == knobs for r in sweep["runs"])
    assert "5 D steps per G step" in client.get(f"/sweeps/{sweep['id']}").text
    # A grid mixing penalised losses with others gives lambda to the penalised ones alone.
    mixed = {**grid, "losses": ["wgan_gp", "rsgan"], "seeds": [0]}
    response = client.post("/api/sweeps", json=mixed)
    assert response.status_code == 202, response.text
    runs = client.get(f"/api/sweeps/{response.json()['id']}").json()["runs"]
    assert {r["config"]["loss"]: r["config"]["gp_weight"] for r in runs} == {
        "wgan_gp": 0.1,
        "rsgan": None,
    }
    assert "gradient penalty λ 0.1 (wgan_gp)" in client.get(f"/sweeps/{response.json()['id']}").text
    # Knobs the loop or the networks cannot take are refused before anything is queued.
    for bad, message in (
        ({"betas": [1.0, 0.9]}, "betas"),
        ({"betas": [0.5]}, "betas"),
        ({"d_steps": 0}, "d_steps"),
        ({"loss": "veegan", "d_steps": 5}, "d_steps must be 1"),
        ({"loss": "rsgan"}, "gp_weight is the gradient penalty's lambda"),
        ({"gp_weight": -0.5}, "gp_weight"),
        ({"architecture_options": {"base_width": 8}}, "base_width"),
        ({"architecture_options": {"latent_dim": 8}}, "latent_dim"),
    ):
        response = client.post("/api/training-runs", json={**body, **bad})
        assert_problem(response, 422)
        assert message in response.text, response.text


def test_a_run_stored_before_the_knobs_were_fields_shows_the_loop_defaults() -> None:
    from app.services.training_loops import LoopView, run_loop, sweep_loop

    old = {"dataset": "ring8", "loss": "rsgan", "batch_size": 64, "lr": 2e-4}
    assert run_loop(old) == LoopView(
        batch_size=64,
        lr=2e-4,
        betas=(0.5, 0.999),
        d_steps=1,
        gp_weight=None,
        architecture_options={},
    )
    # A penalised loss trained with its own lambda: shown as such.
    assert run_loop({**old, "loss": "wgan_gp"}).gp_weight == 10.0
    # A sweep stored before the loop followed each loss trained all its losses with DCGAN's.
    old_grid = {"dataset": "ring8", "losses": ["wgan_gp", "rsgan"], "batch_size": 64}
    view = sweep_loop(old_grid)
    assert (view.lr, view.betas, view.d_steps, view.by_loss) == (2e-4, (0.5, 0.999), 1, [])
    assert (view.gp_weight, view.gp_losses) == (10.0, ["wgan_gp"])


def _loop(config: dict) -> tuple:
    return config["lr"], config["betas"], config["d_steps"]


WGAN_GP_PAPER = (1e-4, [0.0, 0.9], 5)
DCGAN = (2e-4, [0.5, 0.999], 1)


def test_a_loop_left_out_is_the_losss_papers(client: TestClient) -> None:
    """lr, betas and d_steps left out (or null) train as the loss's paper did: WGAN-GP's critic
    five times per generator step with Adam (0, 0.9) at 1e-4, every other loss DCGAN's loop. A
    value given is kept, the rest still follow the loss; the run stores what it trains with."""
    base = {"dataset": "ring8", "steps": 2, "log_every": 1, "sample_every": 0}
    wgan = finished_run(client, {**base, "loss": "wgan_gp"})
    assert _loop(wgan["config"]) == WGAN_GP_PAPER
    assert _loop(finished_run(client, {**base, "loss": "rsgan"})["config"]) == DCGAN
    nulls = {**base, "loss": "wgan_gp", "lr": None, "betas": None, "d_steps": None}
    assert _loop(finished_run(client, nulls)["config"]) == WGAN_GP_PAPER
    given = finished_run(client, {**base, "loss": "wgan_gp", "lr": 3e-4, "d_steps": 2})
    assert _loop(given["config"]) == (3e-4, [0.0, 0.9], 2)
    page = client.get(f"/training/{wgan['id']}").text
    assert "Adam lr 0.0001, betas 0.0, 0.9 · 5 D steps per G step" in page
    # A grid of losses: each run its own loss's paper's, the grid keeps what was left out, and
    # its page says so per loss.
    grid = {"dataset": "ring8", "losses": ["wgan_gp", "rsgan", "lsgan"], "steps": 2}
    response = client.post("/api/sweeps", json=grid)
    assert response.status_code == 202, response.text
    sweep = client.get(f"/api/sweeps/{response.json()['id']}").json()
    assert (sweep["grid"]["lr"], sweep["grid"]["betas"], sweep["grid"]["d_steps"]) == (None,) * 3
    loops = {r["config"]["loss"]: _loop(r["config"]) for r in sweep["runs"]}
    assert loops == {"wgan_gp": WGAN_GP_PAPER, "rsgan": DCGAN, "lsgan": DCGAN}
    line = client.get(f"/sweeps/{sweep['id']}").text.split("data-loop>")[1].split("</span>")[0]
    assert line == (
        "batch 64 · each loss its paper's loop (wgan_gp: Adam lr 0.0001, betas 0.0, 0.9 · 5 D "
        "steps per G step; rsgan, lsgan: Adam lr 0.0002, betas 0.5, 0.999 · 1 D step per G step)"
        " · gradient penalty λ 10 (wgan_gp)"
    )
    # A value the grid gives is every run's; what it leaves out still follows each loss.
    response = client.post("/api/sweeps", json={**grid, "betas": [0.5, 0.9]})
    runs = client.get(f"/api/sweeps/{response.json()['id']}").json()["runs"]
    assert {r["config"]["loss"]: _loop(r["config"]) for r in runs} == {
        "wgan_gp": (1e-4, [0.5, 0.9], 5),
        "rsgan": (2e-4, [0.5, 0.9], 1),
        "lsgan": (2e-4, [0.5, 0.9], 1),
    }
    line = client.get(f"/sweeps/{response.json()['id']}").text.split("data-loop>")[1]
    assert line.startswith(
        "batch 64 · each loss its paper's loop (wgan_gp: Adam lr 0.0001, betas 0.5, 0.9 · 5 D "
        "steps per G step; rsgan, lsgan: Adam lr 0.0002, betas 0.5, 0.9 · 1 D step per G step)"
    )
    # Losses whose papers agree: one loop, as a run shows it.
    response = client.post("/api/sweeps", json={**grid, "losses": ["rsgan", "lsgan"]})
    page = client.get(f"/sweeps/{response.json()['id']}").text
    assert 'Every run: <span class="muted" data-loop>batch 64 · Adam lr 0.0002, betas 0.5, ' in page


def test_local_datasets_stay_inside_the_datasets_directory(client: TestClient) -> None:
    for path in ("/etc", "../models", ""):
        body = {"dataset": "folder", "loss": "rsgan", "dataset_options": {"path": path}}
        assert_problem(client.post("/api/training-runs", json=body), 422)


def test_datasets_say_which_read_from_disk_and_list_the_files_there(
    client: TestClient, settings: Settings
) -> None:
    empty = client.get("/api/datasets").json()
    assert empty["files"] == []
    uses = {d["name"]: d["path"] for d in empty["datasets"]}
    assert uses["npz"] == uses["folder"] == "required"
    assert uses["mnist"] == uses["stacked_mnist"] == "optional"
    assert uses["ring8"] == uses["digits"] == "none"
    root = settings.data_dir / "datasets"
    (root / "faces").mkdir(parents=True)
    (root / ".hidden").mkdir()
    for name in ("mnist.npz", "b.npz", "notes.txt"):
        (root / name).write_bytes(b"")
    listed = client.get("/api/datasets").json()["files"]
    assert listed == [
        {"path": "b.npz", "kind": "npz"},
        {"path": "faces", "kind": "folder"},
        {"path": "mnist.npz", "kind": "npz"},
    ]


def test_a_run_streams_its_progress_losses_and_grids(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the run page follows instead of polling: each logged point as GET /losses has it,
    each new grid's step as GET /samples lists it, then the ending status."""
    monkeypatch.setattr(fastapi.routing, "_PING_INTERVAL", 0.5)
    body = {"dataset": "ring8", "loss": "rasgan", "steps": 10**6, "log_every": 10}
    run = client.post("/api/training-runs", json={**body, "sample_every": 50}).json()
    seen: list[dict[str, Any]] = []
    with client.stream("GET", f"/api/training-runs/{run['id']}/events") as stream:
        events = sse_events(stream.iter_lines(), timeout=240)
        kind, _, first = next(events)
        assert kind == "progress" and first["training_run_id"] == run["id"]
        assert first["steps"] == 10**6 and first["status"] in ("queued", "running")
        for kind, _, data in events:
            assert data["training_run_id"] == run["id"]
            if kind == "progress":
                seen.append(data)
                logged = [p for p in seen if p["losses"] is not None]
                if len(logged) == 12 and data["losses"] is not None:  # end it: the stream says so
                    client.post(f"/api/jobs/{run['job_id']}/cancel")
            elif data["status"] not in ("queued", "running"):
                assert (kind, data["status"], data["error"]) == ("status", "cancelled", None)
                break
    losses = client.get(f"/api/training-runs/{run['id']}/losses").json()
    grids = client.get(f"/api/training-runs/{run['id']}/samples").json()
    streamed = {p["step"]: p["losses"] for p in seen if p["losses"] is not None}
    assert len(streamed) >= 12 and set(streamed) <= {p["step"] for p in losses}
    assert all(streamed[p["step"]] == p["losses"] for p in losses if p["step"] in streamed)
    shown_grids = [p["grid"] for p in seen if p["grid"] is not None]
    assert shown_grids and set(shown_grids) <= set(grids)
    steps = [p["step"] for p in seen]
    assert steps == sorted(steps) and all(0 < step < 10**6 for step in steps)
    # The run ended: a new stream says so at once.
    with client.stream("GET", f"/api/training-runs/{run['id']}/events") as stream:
        kind, _, first = next(sse_events(stream.iter_lines(), timeout=30))
        assert (kind, first["status"]) == ("progress", "cancelled")
        assert (
            first["step"]
            == client.get(f"/api/training-runs/{run['id']}").json()["progress"]["step"]
        )


def test_the_home_stream_follows_training_runs_beside_audits(client: TestClient) -> None:
    body = {"dataset": "ring8", "loss": "rasgan", "steps": 20, "log_every": 10}
    run = wait_for_run(client, client.post("/api/training-runs", json=body).json()["id"])
    audit = wait_for_audit(
        client,
        client.post("/api/audits", json={"synthetic": {"support": 50}, "n": 60}).json()["id"],
    )
    url = f"/api/events?training_run={run['id']}&audit={audit['id']}"
    with client.stream("GET", url) as stream:
        events = sse_events(stream.iter_lines(), timeout=30)
        _, _, first = next(events)
        _, _, second = next(events)
    assert first == {
        "audit_id": audit["id"],
        "samples_done": 60,
        "n": 60,
        "status": "done",
        "candidate_pairs": audit["progress"]["candidate_pairs"],
    }
    assert second == {"training_run_id": run["id"], "step": 20, "steps": 20, "status": "done"}
    assert_problem(client.get("/api/events?training_run=987654"), 404)
    assert_problem(client.get("/api/training-runs/987654/events"), 404)


def test_a_job_started_after_the_newest_audit_is_deleted_runs(client: TestClient) -> None:
    """Deleting an audit cancels its jobs; a job made after it must not inherit that (its id
    was handed out again on SQLite once)."""
    audit = client.post("/api/audits", json={"synthetic": {"support": 20}, "n": 30}).json()
    wait_for_audit(client, audit["id"])
    assert client.delete(f"/api/audits/{audit['id']}").status_code == 204
    run = finished_run(client, {"dataset": "ring8", "loss": "rsgan", "steps": 20})
    assert run["status"] == "done" and run["progress"]["step"] == 20


def test_a_dcgan_sweep_takes_the_architectures_latent_size(client: TestClient) -> None:
    """A sweep without latent sizes trains at the architecture's default, as a single run does
    (a DCGAN grid ran at latent 2 while one DCGAN run got 100)."""
    body = {"dataset": "stacked_digits", "architecture": "dcgan", "losses": ["rsgan"]}
    created = client.post("/api/sweeps", json={**body, "steps": 10**6})
    assert created.status_code == 202, created.text
    sweep_id = created.json()["id"]
    client.post(f"/api/sweeps/{sweep_id}/cancel")
    sweep = client.get(f"/api/sweeps/{sweep_id}").json()
    assert sweep["grid"]["latent_dims"] == [None]
    assert [r["config"]["latent_dim"] for r in sweep["runs"]] == [None]
    assert "× latent default ×" in client.get(f"/sweeps/{sweep_id}").text


def _faces(settings: Settings, count: int = 6, side: int = 16) -> None:
    """A folder of small PNGs under data/datasets/faces."""
    import numpy as np
    from PIL import Image

    root = settings.data_dir / "datasets" / "faces"
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(count):
        pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"{k}.png")


def test_a_run_shows_its_data_file_as_given_not_where_the_server_keeps_it(
    client: TestClient, settings: Settings
) -> None:
    _faces(settings)
    body = {"dataset": "folder", "loss": "rsgan", "steps": 10**6}
    run = client.post(
        "/api/training-runs", json={**body, "dataset_options": {"path": "faces", "image_size": 8}}
    )
    assert run.status_code == 202, run.text
    shown = [run.json(), client.get(f"/api/training-runs/{run.json()['id']}").json()]
    shown += client.get("/api/training-runs").json()
    client.post(f"/api/jobs/{run.json()['job_id']}/cancel")
    for public in shown:
        assert public["config"]["dataset_options"] == {"path": "faces", "image_size": 8}
    assert str(settings.data_dir.resolve()) not in client.get(f"/training/{shown[0]['id']}").text


def test_an_image_side_the_network_cannot_take_is_refused_before_the_data_is_read(
    client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """300 PNGs read at side 1,024 took 900 MB of the request before the side was refused; and a
    sweep's cells read their data once, not once each."""
    import inspect

    import app.gan.training as training

    _faces(settings)
    reads: list[str] = []
    read = training.make_dataset

    def counted(name: str, **options: Any) -> Any:
        # the requests' reads, not those of the runs the worker starts
        if not any(frame.function == "run_training" for frame in inspect.stack()):
            reads.append(name)
        return read(name, **options)

    monkeypatch.setattr(training, "make_dataset", counted)
    for architecture, side in (("dcgan", 1024), ("dcgan", 24), ("mlp", 256)):
        options = {"path": "faces", "image_size": side}
        body = {"dataset": "folder", "loss": "rsgan", "architecture": architecture}
        refused = client.post("/api/training-runs", json={**body, "dataset_options": options})
        assert "takes images" in assert_problem(refused, 422)["detail"]
    too_many = {"path": "faces", "image_size": 8, "max_images": 10**9}
    body = {"dataset": "folder", "loss": "rsgan", "dataset_options": too_many}
    assert (
        "max_images" in assert_problem(client.post("/api/training-runs", json=body), 422)["detail"]
    )
    assert reads == []
    grid = {
        "dataset": "folder",
        "architecture": "dcgan",
        "losses": ["rsgan", "lsgan"],
        "d_widths": [0.5, 1],
        "steps": 10**6,
        "dataset_options": {"path": "faces", "image_size": 8},
    }
    created = client.post("/api/sweeps", json=grid)
    assert created.status_code == 202, created.text
    client.post(f"/api/sweeps/{created.json()['id']}/cancel")
    assert reads == ["folder"]
