"""Per-key single-flight: one computation per key, others wait and find it cached."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.services.single_flight import SingleFlight


def _cached_compute(flight: SingleFlight, cache: dict[str, int], calls: list[str], key: str) -> int:
    with flight(key):
        if key in cache:
            return cache[key]
        calls.append(key)
        time.sleep(0.05)  # long enough for every other caller to arrive and wait
        cache[key] = len(calls)
        return cache[key]


def test_callers_of_one_key_wait_for_one_computation() -> None:
    flight = SingleFlight()
    cache: dict[str, int] = {}
    calls: list[str] = []
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: _cached_compute(flight, cache, calls, "a"), range(8)))
    assert calls == ["a"]
    assert results == [1] * 8
    assert len(flight) == 0


def test_different_keys_compute_side_by_side() -> None:
    flight = SingleFlight()
    inside = threading.Barrier(2, timeout=10)

    def both_inside(key: str) -> None:
        with flight(key):
            inside.wait()  # breaks (raises) if the other key's holder is kept out

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(both_inside, ["a", "b"]))
    assert len(flight) == 0


def test_a_failed_computation_frees_its_key() -> None:
    flight = SingleFlight()
    with pytest.raises(RuntimeError), flight("a"):
        raise RuntimeError("the source broke")
    assert len(flight) == 0
    with flight("a"):  # not held by the failed caller
        assert len(flight) == 1


def test_the_key_lives_while_a_caller_waits() -> None:
    """The first holder leaving must not drop the lock a second caller waits on: a third caller
    would then get a fresh lock and compute beside the second."""
    flight = SingleFlight()
    first_in = threading.Event()
    release_first = threading.Event()
    order: list[str] = []

    def first() -> None:
        with flight("a"):
            first_in.set()
            release_first.wait(10)
            order.append("first")

    def second() -> None:
        with flight("a"):
            order.append("second in")
            time.sleep(0.1)
            order.append("second out")

    def third() -> None:
        with flight("a"):
            order.append("third")

    with ThreadPoolExecutor(3) as pool:
        f1 = pool.submit(first)
        assert first_in.wait(10)
        f2 = pool.submit(second)
        time.sleep(0.05)  # second is waiting
        release_first.set()
        f1.result()
        while "second in" not in order:
            time.sleep(0.005)
        f3 = pool.submit(third)
        f2.result()
        f3.result()
    assert order == ["first", "second in", "second out", "third"]
    assert len(flight) == 0
