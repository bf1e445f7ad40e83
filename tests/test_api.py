"""The REST surface: binding names, pagination, idempotency, jobs, events, and 4xx problem details."""

from __future__ import annotations

import csv
import io
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from app.gan.checkpoint import save_generator
from app.gan.registry import build_generator
from tests.conftest import all_pairs, assert_problem, wait_for, wait_for_audit

DCGAN = {"image_size": 16, "channels": 1, "latent_dim": 8, "g_width": 0.25, "d_width": 0.25}


def _upload(client: TestClient, content: bytes, **form: Any) -> Any:
    data = {"name": "g", "format": "safetensors", **form}
    return client.post("/api/generators", data=data, files={"file": ("g.bin", content)})


def _safetensors_bytes(tmp_path: Path, options: dict[str, Any] = DCGAN) -> bytes:
    module, _ = build_generator("dcgan", options)
    save_generator(tmp_path / "g.safetensors", module, "dcgan", options)
    return (tmp_path / "g.safetensors").read_bytes()


def _done_audit(client: TestClient, **body: Any) -> dict[str, Any]:
    payload = {"synthetic": {"support": 300}, "n": 400, "neighbours": 3, **body}
    response = client.post("/api/audits", json=payload)
    assert response.status_code == 202, response.text
    audit = wait_for_audit(client, response.json()["id"])
    assert audit["status"] == "done", audit
    return audit


def test_generator_upload_list_get_and_audit(client: TestClient, tmp_path: Path) -> None:
    response = _upload(client, _safetensors_bytes(tmp_path), architecture="dcgan")
    assert response.status_code == 201, response.text
    generator = response.json()
    assert generator["image_shape"] == [1, 16, 16] and generator["latent_dim"] == 8
    assert generator["status"] == "ready" and generator["format"] == "safetensors"
    assert client.get("/api/generators").json()[0]["id"] == generator["id"]
    assert client.get(f"/api/generators/{generator['id']}").json() == generator
    audit = _done_audit(client, synthetic=None, generator_id=generator["id"], n=300)
    assert audit["progress"]["samples_done"] == 300
    pair = client.get(f"/api/audits/{audit['id']}/pairs", params={"limit": 1}).json()["items"][0]
    image = client.get(pair["image_urls"][0])
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")


def test_state_dict_upload_needs_weights_only_file(client: TestClient, tmp_path: Path) -> None:
    module, _ = build_generator("dcgan", DCGAN)
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    ok = _upload(
        client,
        buffer.getvalue(),
        format="state_dict",
        architecture="dcgan",
        options=json.dumps(DCGAN),
    )
    assert ok.status_code == 201, ok.text

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (Path.touch, (marker,))

    evil = pickle.dumps({"main.0.weight": Evil()})
    refused = _upload(
        client, evil, format="state_dict", architecture="dcgan", options=json.dumps(DCGAN)
    )
    assert_problem(refused, 422)
    assert not marker.exists()


def test_sample_archive_upload(client: TestClient) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(50, 8, 8, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, images=images)
    response = _upload(client, buffer.getvalue(), format="samples")
    assert response.status_code == 201, response.text
    assert response.json()["image_shape"] == [3, 8, 8]
    generator_id = response.json()["id"]
    # Its size is known up front: the most an audit of it can draw.
    assert response.json()["samples"] == 50
    assert client.get(f"/api/generators/{generator_id}").json()["samples"] == 50
    # More samples than the archive holds: refused at once, not a failed audit later.
    too_many = client.post("/api/audits", json={"generator_id": generator_id, "n": 51})
    assert_problem(too_many, 422)
    assert "archive of 50 samples" in too_many.json()["detail"]
    audit = client.post("/api/audits", json={"generator_id": generator_id, "n": 50}).json()
    assert wait_for_audit(client, audit["id"])["status"] == "done"
    # Nor can the pool grow past it: the audit stays done and reviewable.
    grown = client.post(f"/api/audits/{audit['id']}/extend", json={"n_more": 1})
    assert_problem(grown, 422)
    assert "archive of 50 samples" in grown.json()["detail"]
    assert client.get(f"/api/audits/{audit['id']}").json()["status"] == "done"


@pytest.mark.parametrize(
    ("form", "content", "status"),
    [
        ({"format": "pickle"}, b"x", 422),
        ({"format": "torchscript"}, b"x", 422),
        ({"format": "safetensors"}, b"not a safetensors file", 422),
        ({"format": "safetensors", "architecture": "dcgan", "options": "{bad json"}, b"x", 422),
        ({"format": "state_dict"}, b"x", 422),
        ({"format": "samples"}, b"PK\x03\x04 broken", 422),
        ({"format": "safetensors", "latent_dim": "0"}, b"x", 422),
    ],
)
def test_bad_uploads_are_problem_details(
    client: TestClient, form: dict[str, str], content: bytes, status: int
) -> None:
    assert_problem(_upload(client, content, **form), status)
    assert not any((Path(client.app.state.birthday.settings.models_dir) / "uploads").iterdir())


def test_upload_over_the_limit_is_413(settings: Any, tmp_path: Path) -> None:
    from app.main import create_app

    settings.upload_limit_bytes = 1000
    with TestClient(create_app(settings)) as small:
        # Over the cap but within the form allowance: the service's own byte counter refuses it.
        assert_problem(_upload(small, b"x" * 5000), 413)
        # Far over the cap: refused from its Content-Length, before the body is read.
        assert_problem(_upload(small, b"x" * (3 << 20)), 413)
    assert not any((settings.models_dir / "uploads").iterdir())


def test_pairs_pagination_filters_and_judgements(client: TestClient) -> None:
    audit = _done_audit(client)
    url = f"/api/audits/{audit['id']}/pairs"
    total = audit["progress"]["candidate_pairs"]
    seen, cursor, distances, ranks = [], None, [], []
    while True:
        page = client.get(
            url, params={"limit": 37, **({"cursor": cursor} if cursor else {})}
        ).json()
        seen += [p["id"] for p in page["items"]]
        distances += [p["distance"] for p in page["items"]]
        ranks += [p["rank"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == total
    assert distances == sorted(distances)
    assert ranks == list(range(1, total + 1))

    first = client.get(url, params={"limit": 2}).json()["items"]
    assert [p["rank"] for p in first] == [1, 2]
    key = {"Idempotency-Key": "abc-1"}
    body = {"label": "duplicate", "annotator": "ada"}
    created = client.post(f"/api/pairs/{first[0]['id']}/judgements", json=body, headers=key)
    assert created.status_code == 201
    replay = client.post(f"/api/pairs/{first[0]['id']}/judgements", json=body, headers=key)
    assert replay.status_code == 200 and replay.json() == created.json()
    other = client.post(
        f"/api/pairs/{first[0]['id']}/judgements", json={**body, "label": "distinct"}, headers=key
    )
    assert_problem(other, 422)
    client.post(f"/api/pairs/{first[1]['id']}/judgements", json={**body, "label": "distinct"})

    dup = client.get(url, params={"label": "duplicate"}).json()["items"]
    assert [p["id"] for p in dup] == [first[0]["id"]] and dup[0]["rank"] == 1
    distinct = client.get(url, params={"label": "distinct"}).json()["items"]
    assert [(p["id"], p["rank"]) for p in distinct] == [(first[1]["id"], 2)]
    unlabelled = client.get(url, params={"label": "unlabelled", "limit": 500}).json()["items"]
    assert first[0]["id"] not in {p["id"] for p in unlabelled}

    undone = client.delete(f"/api/judgements/{created.json()['id']}")
    assert undone.status_code == 200
    assert client.get(url, params={"label": "duplicate"}).json()["items"] == []
    again = assert_problem(client.delete(f"/api/judgements/{created.json()['id']}"), 404)
    assert again["detail"] == f"judgement {created.json()['id']} was undone already"
    assert_problem(client.delete("/api/judgements/99999"), 404)


def test_pairs_and_judgements_download_as_csv(client: TestClient) -> None:
    """The pairs (candidates then random pairs, each ranked as the API ranks them) and every
    judgement, an undone one included, as CSV files a researcher can take elsewhere."""
    audit = _done_audit(client)
    url = f"/api/audits/{audit['id']}"
    candidates = all_pairs(client, audit["id"])
    randoms = client.get(f"{url}/pairs", params={"origin": "random", "limit": 500}).json()
    first, second = candidates[0], randoms["items"][0]
    judge = f"/api/pairs/{first['id']}/judgements"
    kept = client.post(judge, json={"label": "duplicate", "annotator": "ada"}).json()
    undone = client.post(judge, json={"label": "distinct", "annotator": "bob"}).json()
    client.delete(f"/api/judgements/{undone['id']}")
    body = {"label": "distinct", "annotator": "bob"}
    client.post(f"/api/pairs/{second['id']}/judgements", json=body)

    response = client.get(f"{url}/pairs.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert f'filename="audit-{audit["id"]}-pairs.csv"' in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["rank", "i", "j", "distance", "label", "origin"]

    def row(p: dict[str, Any], origin: str) -> list[str]:
        return [
            str(p["rank"]),
            str(p["i"]),
            str(p["j"]),
            repr(p["distance"]),
            p["label"] or "",
            origin,
        ]

    now_random = client.get(f"{url}/pairs", params={"origin": "random", "limit": 500}).json()
    assert rows[1:] == [row(p, "candidate") for p in all_pairs(client, audit["id"])] + [
        row(p, "random") for p in now_random["items"]
    ]
    assert rows[1][4] == "duplicate"
    only = client.get(f"{url}/pairs.csv", params={"origin": "random"}).text
    assert list(csv.reader(io.StringIO(only)))[1:] == rows[1 + len(candidates) :]

    judged = list(csv.DictReader(io.StringIO(client.get(f"{url}/judgements.csv").text)))
    assert [(r["judgement_id"], r["annotator"], r["label"], r["origin"]) for r in judged] == [
        (str(kept["id"]), "ada", "duplicate", "candidate"),
        (str(undone["id"]), "bob", "distinct", "candidate"),
        (str(undone["id"] + 1), "bob", "distinct", "random"),
    ]
    assert [bool(r["undone_at"]) for r in judged] == [False, True, False]
    assert judged[0]["i"] == str(first["i"]) and judged[0]["created_at"]

    assert_problem(client.get("/api/audits/999/pairs.csv"), 404)
    assert_problem(client.get("/api/audits/999/judgements.csv"), 404)
    assert_problem(client.get(f"{url}/pairs.csv", params={"origin": "elsewhere"}), 422)


def test_next_pair_walks_the_queue_then_204(client: TestClient) -> None:
    audit = _done_audit(client, synthetic={"support": 50}, n=30, neighbours=1)
    url = f"/api/audits/{audit['id']}/next-pair"
    judged = set()
    while (response := client.get(url, params={"annotator": "ada"})).status_code == 200:
        pair = response.json()
        assert pair["id"] not in judged
        judged.add(pair["id"])
        client.post(
            f"/api/pairs/{pair['id']}/judgements", json={"label": "unsure", "annotator": "ada"}
        )
    assert response.status_code == 204
    random = client.get(
        f"/api/audits/{audit['id']}/pairs", params={"origin": "random", "limit": 500}
    ).json()["items"]
    assert 0 < len(random) <= 50
    # An annotator who is never sure is shown every candidate and every random pair, once.
    assert len(judged) == audit["progress"]["candidate_pairs"] + len(random)


def test_two_annotators_get_different_pairs(client: TestClient) -> None:
    audit = _done_audit(client)
    url = f"/api/audits/{audit['id']}/next-pair"
    a = client.get(url, params={"annotator": "ada"}).json()
    b = client.get(url, params={"annotator": "bob"}).json()
    assert a["id"] != b["id"]


def test_estimate_of_a_partly_labelled_audit_is_provisional(client: TestClient) -> None:
    audit = _done_audit(client)
    estimate = client.get(f"/api/audits/{audit['id']}/estimate").json()
    assert estimate["n"] == 400 and estimate["labelled_pairs"] == 0
    # Nothing judged: no estimate, only the bound that holds if every candidate pair and every
    # pair the unreviewed random check allows were duplicates.
    assert estimate["n_eff"] is None and estimate["n_eff_high"] is None
    assert estimate["parts"]["unreviewed"] is None and estimate["d_hat"] is None
    assert estimate["random_pairs"] > 0 and estimate["random_labelled"] == 0
    assert 1.0 <= estimate["n_eff_low"] < 400 * 399 / 2 / audit["progress"]["candidate_pairs"]
    assert estimate["complete"] is False and estimate["stop"]["reached"] is False
    assert estimate["stop"]["labels_to_go"] >= 1 and estimate["explored"] is False


def test_cancel_and_extend(client: TestClient) -> None:
    response = client.post("/api/audits", json={"synthetic": {"support": 10**6}, "n": 200_000})
    job_id = response.json()["job_id"]
    cancelled = client.post(f"/api/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200
    job = wait_for(
        lambda: (j := client.get(f"/api/jobs/{job_id}").json())["status"] == "cancelled" and j,
        what="cancellation",
    )
    assert job["cancel_requested"] is True
    cancelled_audit = client.get(f"/api/audits/{response.json()['id']}").json()
    assert cancelled_audit["status"] == "cancelled"
    # Extending a cancelled audit grows it from the samples it has: the rest is given up.
    kept = cancelled_audit["progress"]["samples_done"]
    assert kept < 200_000
    grown = client.post(f"/api/audits/{cancelled_audit['id']}/extend", json={"n_more": 300})
    assert grown.status_code == 202 and grown.json()["n"] == kept + 300
    grown_done = wait_for_audit(client, cancelled_audit["id"])
    assert grown_done["status"] == "done"
    assert grown_done["n"] == grown_done["progress"]["samples_done"] == kept + 300

    audit = _done_audit(client, n=300)
    before = all_pairs(client, audit["id"])
    client.post(
        f"/api/pairs/{before[0]['id']}/judgements", json={"label": "duplicate", "annotator": "a"}
    )
    extended = client.post(f"/api/audits/{audit['id']}/extend", json={"n_more": 200})
    assert extended.status_code == 202 and extended.json()["n"] == 500
    after = wait_for_audit(client, audit["id"])
    assert after["status"] == "done" and after["progress"]["samples_done"] == 500
    pairs = all_pairs(client, audit["id"])
    by_id = {p["id"]: p for p in pairs}
    assert {p["id"] for p in before} <= set(by_id)
    assert by_id[before[0]["id"]]["label"] == "duplicate"
    assert any(p["j"] >= 300 for p in pairs)


def test_events_stream_reports_progress(client: TestClient) -> None:
    audit = _done_audit(client, n=300)
    with client.stream("GET", f"/api/audits/{audit['id']}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = []
        for line in stream.iter_lines():
            lines.append(line)
            if line.startswith("data:"):
                break
    assert "event: progress" in lines
    data = json.loads(lines[-1].removeprefix("data:"))
    assert data["samples_done"] == 300 and data["status"] == "done"


@pytest.mark.parametrize(
    ("method", "url", "body", "status"),
    [
        ("get", "/api/audits/999", None, 404),
        ("get", "/api/generators/999", None, 404),
        ("get", "/api/jobs/999", None, 404),
        ("post", "/api/jobs/999/cancel", None, 404),
        ("get", "/api/audits/999/estimate", None, 404),
        ("get", "/api/audits/999/events", None, 404),
        ("get", "/api/audits/999/pairs", None, 404),
        ("get", "/api/audits/abc", None, 422),
        ("post", "/api/audits", {"n": 10}, 422),
        ("post", "/api/audits", {"synthetic": {"support": 5}, "generator_id": 1}, 422),
        ("post", "/api/audits", {"synthetic": {"support": 0}}, 422),
        ("post", "/api/audits", {"synthetic": {"support": 5}, "n": 1}, 422),
        ("post", "/api/audits", {"synthetic": {"support": 5}, "embedder": "nope"}, 422),
        ("post", "/api/audits", {"synthetic": {"support": 5}, "embedder_options": {"x": 1}}, 422),
        ("post", "/api/audits", {"generator_id": 12345}, 404),
        (
            "post",
            "/api/audits",
            {"synthetic": {"support": 5, "image_size": 128, "channels": 3}, "n": 1_000_000},
            422,
        ),
        ("post", "/api/audits", {"synthetic": {"support": 10**9, "zipf": 1.1}}, 422),
        ("get", f"/api/audits/{2**64}", None, 422),
        ("post", "/api/audits/999/extend", {"n_more": 5}, 404),
        ("post", "/api/pairs/999/judgements", {"label": "duplicate", "annotator": "a"}, 404),
        ("post", "/api/pairs/1/judgements", {"label": "maybe", "annotator": "a"}, 422),
        ("delete", "/api/judgements/999", None, 404),
        ("get", "/api/nothing-here", None, 404),
    ],
)
def test_errors_are_problem_details(
    client: TestClient, method: str, url: str, body: Any, status: int
) -> None:
    response = client.request(method.upper(), url, json=body)
    assert_problem(response, status)


def test_bad_cursor_and_filter_are_422(client: TestClient) -> None:
    audit = _done_audit(client, n=100)
    url = f"/api/audits/{audit['id']}/pairs"
    assert_problem(client.get(url, params={"cursor": "!!"}), 422)
    assert_problem(client.get(url, params={"label": "maybe"}), 422)
    assert_problem(client.get(url, params={"limit": 0}), 422)
    missing = assert_problem(client.get(f"/api/audits/{audit['id']}/samples/99999.png"), 404)
    assert missing["detail"] == f"audit {audit['id']} has no sample 99999 (samples 0 to 99 drawn)"


def test_openapi_documents_the_binding_surface(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/generators",
        "/api/generators/{generator_id}",
        "/api/audits",
        "/api/audits/{audit_id}",
        "/api/audits/{audit_id}/extend",
        "/api/audits/{audit_id}/samples/{idx}.png",
        "/api/audits/{audit_id}/pairs",
        "/api/audits/{audit_id}/next-pair",
        "/api/pairs/{pair_id}/judgements",
        "/api/judgements/{judgement_id}",
        "/api/audits/{audit_id}/estimate",
        "/api/audits/{audit_id}/events",
        "/api/jobs/{job_id}",
        "/api/jobs/{job_id}/cancel",
    ):
        assert path in paths, path
    assert client.get("/docs").status_code == 200


def test_the_openapi_document_describes_errors_as_they_are_sent(client: TestClient) -> None:
    """Problem details under application/problem+json, for every operation's 4xx: not FastAPI's
    HTTPValidationError, which the API never sends (generated clients mis-parsed errors)."""
    from app.api.openapi import Problem

    schema = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in json.dumps(schema)
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    extend = schema["paths"]["/api/audits/{audit_id}/extend"]["post"]["responses"]
    assert {"401", "403", "404", "409", "422"} <= set(extend)
    assert all(extend[code]["content"] == problem for code in ("404", "409", "422"))
    for operations in schema["paths"].values():
        for operation in operations.values():
            assert operation["responses"]["422"]["content"] == problem
    # What the API sends fits it: a malformed body and an unknown id.
    for response in (
        client.post("/api/audits", json={"n": "many"}),
        client.get("/api/audits/999"),
    ):
        assert response.headers["content-type"] == "application/problem+json"
        Problem.model_validate(response.json())


def test_delete_generator_only_when_unused(client: TestClient, tmp_path: Path) -> None:
    generator = _upload(client, _safetensors_bytes(tmp_path), architecture="dcgan").json()
    assert generator["samples"] is None  # a generator draws any number
    stored = client.app.state.birthday.settings.models_dir  # type: ignore[attr-defined]
    files = list((stored / "uploads").iterdir())
    assert len(files) == 1
    audit = _done_audit(client, synthetic=None, generator_id=generator["id"], n=50)
    assert_problem(client.delete(f"/api/generators/{generator['id']}"), 409)
    assert client.delete(f"/api/audits/{audit['id']}").status_code == 204
    assert client.delete(f"/api/generators/{generator['id']}").status_code == 204
    assert_problem(client.get(f"/api/generators/{generator['id']}"), 404)
    assert not files[0].exists()
