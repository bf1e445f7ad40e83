"""A real `birthday serve` process for tests that must kill and restart the server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

BIRTHDAY = str(Path(sys.executable).parent / "birthday")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.args = list(args or [])  # more `birthday serve` options
        self.env = dict(env or {})
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "server.log"

    def start(self, timeout: float = 120.0) -> httpx.Client:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "BIRTHDAY_MODELS_DIR": str(self.data_dir / "models"), **self.env}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [BIRTHDAY, "serve", "--data-dir", str(self.data_dir), "--port", str(self.port)]
                + self.args,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        client = httpx.Client(base_url=self.url, timeout=30)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if client.get("/healthz").status_code == 200:
                    return client
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError("server did not start")

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, as in a crash or an OOM kill."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
