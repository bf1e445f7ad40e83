"""SIGKILL the server mid-audit: after a restart the job resumes with no duplicated or missing pair."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from app.jobs.runner import JobRunner
from app.schemas import AuditCreate
from app.services.audits import create_audit
from app.settings import Settings
from app.store.db import Database
from app.store.migrate import upgrade
from tests.conftest import all_pairs, wait_for
from tests.server import Server

BODY = {
    "synthetic": {"support": 100_000, "noise": 0.02},
    "n": 4000,
    "chunk_size": 200,
    "neighbours": 3,
    "miner": "exact",
    "seed": 5,
}


def reference_pairs(tmp_path: Path) -> dict[tuple[int, int], float]:
    settings = Settings(data_dir=tmp_path / "ref", models_dir=tmp_path / "ref-models")
    settings.ensure_dirs()
    upgrade(settings.resolved_database_url())
    db = Database(settings.resolved_database_url())
    audit, job = create_audit(db, settings, AuditCreate.model_validate(BODY))
    assert JobRunner(db, settings).run_job(job.id).status == "done"
    from app.store import pairs as pair_store

    with db.read() as session:
        page, _ = pair_store.list_pairs(session, audit.id, None, 10**6, None)
    db.dispose()
    return {(r.pair.i, r.pair.j): r.pair.distance for r in page}


def test_sigkill_mid_audit_then_resume(tmp_path: Path) -> None:
    server = Server(tmp_path / "data")
    client = server.start()
    try:
        audit_id = client.post("/api/audits", json=BODY).json()["id"]
        wait_for(
            lambda: (
                client.get(f"/api/audits/{audit_id}").json()["progress"]["samples_done"] >= 1000
            ),
            what="the audit to get going",
        )
        server.kill()
        client.close()

        client = server.start()
        at_restart = client.get(f"/api/audits/{audit_id}").json()
        assert 1000 <= at_restart["progress"]["samples_done"] < BODY["n"], at_restart
        done = wait_for(
            lambda: (a := client.get(f"/api/audits/{audit_id}").json())["status"] == "done" and a,
            timeout=300,
            what="the resumed audit to finish",
        )
        pairs = all_pairs(client, audit_id)
    finally:
        server.stop()
        client.close()

    got = [(p["i"], p["j"]) for p in pairs]
    assert len(got) == len(set(got)), "a pair was stored twice"
    expected = reference_pairs(tmp_path)
    assert set(got) == set(expected), "pairs differ from an uninterrupted run"
    assert all(p["distance"] == expected[(p["i"], p["j"])] for p in pairs)
    assert done["progress"]["candidate_pairs"] == len(expected)


def test_sigkill_while_judgements_arrive_keeps_every_acknowledged_one(tmp_path: Path) -> None:
    server = Server(tmp_path / "data")
    client = server.start()
    acknowledged: list[tuple[int, str]] = []
    try:
        audit = client.post("/api/audits", json={"synthetic": {"support": 300}, "n": 400}).json()
        wait_for(
            lambda: client.get(f"/api/audits/{audit['id']}").json()["status"] == "done",
            what="the audit",
        )
        pairs = all_pairs(client, audit["id"])
        stop = threading.Event()

        def post_until_killed(worker: int) -> None:
            with httpx.Client(base_url=server.url, timeout=10) as http:
                for pair in pairs[worker::4]:
                    if stop.is_set():
                        return
                    label = "duplicate" if pair["id"] % 2 else "distinct"
                    try:
                        response = http.post(
                            f"/api/pairs/{pair['id']}/judgements",
                            json={"label": label, "annotator": f"w{worker}"},
                        )
                    except httpx.TransportError:
                        return  # the server died under this request: it was never acknowledged
                    if response.status_code == 201:
                        acknowledged.append((pair["id"], label))

        threads = [threading.Thread(target=post_until_killed, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        wait_for(lambda: len(acknowledged) >= 40, what="judgements to flow")
        server.kill()
        stop.set()
        for thread in threads:
            thread.join(30)
        client.close()

        client = server.start()
        stored = {p["id"]: p["label"] for p in all_pairs(client, audit["id"])}
    finally:
        server.stop()
        client.close()
    assert len(acknowledged) >= 40
    for pair_id, label in acknowledged:
        assert stored[pair_id] == label
