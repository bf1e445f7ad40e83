"""Serving the app with uvicorn, so that Ctrl-C (or `docker stop`) stops it promptly.

uvicorn lets open responses finish before it shuts the app down, and an event stream never
finishes: one open audit page held a stopping server forever. Here the shutdown first ends every
event stream, then gives other requests in progress (an upload, say) up to GRACE_S seconds.
"""

from __future__ import annotations

import socket

import uvicorn
from fastapi import FastAPI

from app.jobs.events import EventBus

GRACE_S = 20


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, events: EventBus) -> None:
        super().__init__(config)
        self._events = events

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._events.close()
        await super().shutdown(sockets)


def serve(app: FastAPI, host: str, port: int, log_level: str = "warning") -> None:
    """Run the app until interrupted (blocking)."""
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=GRACE_S
    )
    _Server(config, app.state.birthday.events).run()
