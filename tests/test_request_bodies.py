"""Request bodies take numbers as JSON numbers, grids without repeats, and annotator names as
people type them: what pydantic's lax reading let through changed stored data."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pytest
from fastapi.testclient import TestClient
from pydantic import Field, ValidationError

from app.request_body import RequestBody, takes_numbers
from tests.conftest import assert_problem, wait_for_audit

Beta = Annotated[float, Field(ge=0, lt=1)]


def test_which_fields_take_numbers() -> None:
    for numeric in (int, float, int | None, list[int | None], tuple[Beta, Beta], Literal[1, 3]):
        assert takes_numbers(numeric), numeric
    for other in (str, bool, int | str, dict[str, Any], Literal["a"], list[str]):
        assert not takes_numbers(other), other


def test_a_body_refuses_booleans_and_text_where_it_takes_numbers() -> None:
    class Body(RequestBody):
        n: int = 1
        betas: tuple[Beta, Beta] | None = None
        seeds: list[int] = [0]
        name: str = "x"

    for bad in ({"n": True}, {"n": "3"}, {"betas": [0.5, False]}, {"seeds": [0, True]}):
        with pytest.raises(ValidationError, match="must be a number"):
            Body.model_validate(bad)
    # A whole float (1e5 in JSON) is still a count; text stays text.
    assert Body.model_validate({"n": 1e5, "name": "3"}) == Body(n=100_000, name="3")


def _audit(client: TestClient, **body: Any) -> dict[str, Any]:
    created = client.post("/api/audits", json={"synthetic": {"support": 200}, "n": 100, **body})
    assert created.status_code == 202, created.text
    return wait_for_audit(client, created.json()["id"])


def test_booleans_and_text_are_refused_before_anything_changes(client: TestClient) -> None:
    audit = _audit(client)
    refused: list[tuple[str, str, dict[str, Any], str]] = [
        ("post", f"/api/audits/{audit['id']}/extend", {"n_more": True}, "n_more"),
        ("post", f"/api/audits/{audit['id']}/extend", {"n_more": "3"}, "n_more"),
        ("patch", f"/api/audits/{audit['id']}", {"target": True}, "target"),
        ("post", f"/api/audits/{audit['id']}/import-labels", {"from_audit": True}, "from_audit"),
        ("post", "/api/audits", {"synthetic": {"support": True}, "n": 100}, "support"),
        ("post", "/api/audits", {"synthetic": {"support": 50}, "n": "100"}, "n"),
        ("post", "/api/training-runs", {"dataset": "ring8", "loss": "rsgan", "lr": True}, "lr"),
        (
            "post",
            "/api/training-runs",
            {"dataset": "ring8", "loss": "rsgan", "steps": "3"},
            "steps",
        ),
        (
            "post",
            "/api/sweeps",
            {"dataset": "ring8", "losses": ["rsgan"], "seeds": [0, True]},
            "seeds",
        ),
        (
            "post",
            "/api/paper-protocol",
            {"batches": [{"size": 20, "batches": True, "with_duplicate": 0}]},
            "batches",
        ),
    ]
    for method, path, body, field in refused:
        problem = assert_problem(client.request(method, path, json=body), 422)
        assert field in str(problem) and "must be a number" in str(problem), (path, problem)
    after = client.get(f"/api/audits/{audit['id']}").json()
    assert (after["n"], after["target"]) == (audit["n"], audit["target"])
    assert client.get("/api/training-runs").json() == [] and client.get("/api/sweeps").json() == []
    # Whole floats are counts as before.
    grown = client.post(f"/api/audits/{audit['id']}/extend", json={"n_more": 10.0})
    assert grown.status_code == 202, grown.text


def test_a_grid_value_given_twice_is_refused(client: TestClient) -> None:
    base = {"dataset": "ring8", "losses": ["rsgan"], "steps": 2}
    for repeat, shown in (
        ({"losses": ["rasgan", "rasgan"]}, "rasgan"),
        ({"seeds": [0, 0]}, "0"),
        ({"d_widths": [1, 1.0]}, "1"),
        ({"latent_dims": [None, None]}, "None"),
    ):
        problem = assert_problem(client.post("/api/sweeps", json={**base, **repeat}), 422)
        assert "give each value once" in str(problem) and shown in str(problem), problem
    assert client.get("/api/sweeps").json() == []


def test_annotator_names_are_the_same_everywhere(client: TestClient) -> None:
    for name in ("  ", " ada", "ada ", "a/b"):
        problem = assert_problem(client.post("/api/annotators", json={"name": name}), 422)
        assert "no space at either end" in str(problem), problem
    audit = _audit(client)
    pair = client.get(f"/api/audits/{audit['id']}/next-pair", params={"annotator": "ada"}).json()
    for name in ("ada ", "a/b", ""):
        body = {"label": "duplicate", "annotator": name}
        assert_problem(client.post(f"/api/pairs/{pair['id']}/judgements", json=body), 422)
        asked = client.get(f"/api/audits/{audit['id']}/next-pair", params={"annotator": name})
        assert_problem(asked, 422)
    body = {"label": "duplicate", "annotator": "ada lovelace"}
    assert client.post(f"/api/pairs/{pair['id']}/judgements", json=body).status_code == 201
