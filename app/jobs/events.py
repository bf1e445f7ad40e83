"""In-process publish/subscribe for live updates (progress, new pairs, estimates) to SSE clients."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    topic: str  # e.g. "audit:3"
    kind: str  # progress (with the candidate pair count) | status | estimate
    data: dict[str, Any]


# A listener: its topics, its queue (None in it ends the listening), the loop it reads on.
_Listener = tuple[frozenset[str], "asyncio.Queue[Event | None]", asyncio.AbstractEventLoop]


class EventBus:
    """Thread-safe publish from worker threads; async listen from the event loop."""

    def __init__(self, queue_size: int = 256) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[_Listener] = []
        self._queue_size = queue_size

    def publish(self, event: Event) -> None:
        with self._lock:
            targets = [s for s in self._subscribers if event.topic in s[0] or "*" in s[0]]
        self._send(targets, event)

    def close(self) -> None:
        """End every listener's events now: a server shutting down waits for its open responses,
        and an event stream never ends by itself (a browser's EventSource holds it open)."""
        with self._lock:
            targets = list(self._subscribers)
        self._send(targets, None)

    @staticmethod
    def _send(targets: list[_Listener], event: Event | None) -> None:
        for _, queue, loop in targets:
            try:
                loop.call_soon_threadsafe(_offer, queue, event)
            except RuntimeError:  # that listener's loop has closed: nobody to tell
                continue

    @contextmanager
    def listen(self, *topics: str) -> Iterator[AsyncIterator[Event]]:
        """Subscribe now to the events of these topics ("*": all) and read them in the block:
        a caller can subscribe first and then read state without missing what changes between."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue(self._queue_size)
        entry: _Listener = (frozenset(topics), queue, asyncio.get_running_loop())
        with self._lock:
            self._subscribers.append(entry)
        try:
            yield _drain(queue)
        finally:
            with self._lock:
                self._subscribers.remove(entry)


async def _drain(queue: asyncio.Queue[Event | None]) -> AsyncIterator[Event]:
    while (event := await queue.get()) is not None:  # None: the bus was closed
        yield event


def _offer(queue: asyncio.Queue[Event | None], event: Event | None) -> None:
    # A slow client loses old progress events rather than holding the worker back.
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(event)
