"""One computation per key at a time: callers asking for what another thread is computing wait
for it and then find it cached, instead of each computing it beside the others (a Vendi
eigendecomposition or a 10^6-sample assessment holds a gigabyte and seconds of CPU)."""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class _Flight:
    lock: threading.Lock = field(default_factory=threading.Lock)
    holders: int = 0  # threads inside or waiting on `lock`


class SingleFlight:
    """Per-key locks that live while someone holds or waits on them; the caller checks its
    cache again inside, since the thread it waited for may have filled it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._flights: dict[Hashable, _Flight] = {}

    @contextmanager
    def __call__(self, key: Hashable) -> Iterator[None]:
        with self._guard:
            flight = self._flights.setdefault(key, _Flight())
            flight.holders += 1
        try:
            with flight.lock:
                yield
        finally:
            with self._guard:
                flight.holders -= 1
                if flight.holders == 0:
                    del self._flights[key]

    def __len__(self) -> int:
        """Keys being computed or waited on (none once every caller is done)."""
        with self._guard:
            return len(self._flights)
