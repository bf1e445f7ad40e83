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
    kind: str  # progress | pairs | estimate | status
    data: dict[str, Any]


class EventBus:
    """Thread-safe publish from worker threads; async listen from the event loop."""

    def __init__(self, queue_size: int = 256) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[tuple[str, asyncio.Queue[Event], asyncio.AbstractEventLoop]] = []
        self._queue_size = queue_size

    def publish(self, event: Event) -> None:
        with self._lock:
            targets = [s for s in self._subscribers if s[0] in (event.topic, "*")]
        for _, queue, loop in targets:
            try:
                loop.call_soon_threadsafe(_offer, queue, event)
            except RuntimeError:  # that listener's loop has closed: nobody to tell
                continue

    @contextmanager
    def listen(self, topic: str) -> Iterator[AsyncIterator[Event]]:
        """Subscribe now (events published from here on are kept) and read them in the block:
        a caller can subscribe first and then read state without missing what changes between."""
        queue: asyncio.Queue[Event] = asyncio.Queue(self._queue_size)
        entry = (topic, queue, asyncio.get_running_loop())
        with self._lock:
            self._subscribers.append(entry)
        try:
            yield _drain(queue)
        finally:
            with self._lock:
                self._subscribers.remove(entry)


async def _drain(queue: asyncio.Queue[Event]) -> AsyncIterator[Event]:
    while True:
        yield await queue.get()


def _offer(queue: asyncio.Queue[Event], event: Event) -> None:
    # A slow client loses old progress events rather than holding the worker back.
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(event)
