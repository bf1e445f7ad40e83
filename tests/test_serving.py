"""`birthday serve` stops promptly on Ctrl-C although an audit page holds its event stream open."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.serving import GRACE_S
from tests.conftest import wait_for, wait_for_audit

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ctrl_c_ends_open_event_streams_and_stops(tmp_path: Path) -> None:
    port = _free_port()
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-c", "from app.cli import main; main()", "serve"]
        + ["--data-dir", str(tmp_path / "data"), "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "BIRTHDAY_MODELS_DIR": str(tmp_path / "models")},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, timeout=60, interval=0.1, what="birthday serve to answer")
        with httpx.Client(base_url=base, timeout=60) as client:
            created = client.post("/api/audits", json={"synthetic": {"support": 200}, "n": 100})
            audit_id = wait_for_audit(client, created.json()["id"])["id"]
            with client.stream("GET", f"/api/audits/{audit_id}/events") as stream:
                lines = stream.iter_lines()
                assert next(lines) == "event: progress"  # the stream is open
                started = time.monotonic()
                process.send_signal(signal.SIGINT)
                rest = list(lines)  # ends when the server ends the stream
        process.wait(timeout=GRACE_S + 30)
        took = time.monotonic() - started
        output = (tmp_path / "serve.log").read_text()
        # 130: the exit status of a program stopped by Ctrl-C (uvicorn re-raises the signal).
        assert process.returncode in (0, 130) and "Traceback" not in output, output
        # Well inside the grace other requests get: the stream was ended, not timed out.
        assert took < GRACE_S / 2, f"{took:.1f} s to stop"
        assert not any(line.startswith("event: ") and "error" in line for line in rest)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
