"""Pool sample PNGs for the API: the stored one, or sample i drawn again from (source, seed, i).

An audit of a source this process can draw from cheaply (synthetic, built-in architectures,
archives with random access) keeps only each job step's first PNG, its anchor; the rest are drawn
again when shown, which keeps a pool of 10^6 from filling the store with its images. Before the
first redrawn image of an audit is served, its anchor is drawn again and compared with the stored
one: a generator file replaced under the same path would otherwise show images other than those
audited. Redrawing runs on this process's CPU: a pool drawn on a GPU may differ by rounding
(a grey level here and there), which the comparison allows and no reviewer can see.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.jobs.runner import audit_source_spec
from app.services.single_flight import SingleFlight
from app.settings import Settings
from app.sources.base import Source, close_source
from app.sources.factory import SourceSpec, build_source
from app.sources.redraw import ANCHOR_TOLERANCE, not_the_audited_source, redraw_difference
from app.sources.thumbnails import encode_png
from app.store import audits as audit_store
from app.store.db import Database
from app.store.errors import Busy, Conflict, NotFound

SOURCES_KEPT = 2  # loaded generators held at once (each may be a few hundred MB)


@dataclass
class _Loaded:
    source: Source
    lock: threading.Lock = field(default_factory=threading.Lock)
    checked: set[tuple[int, int]] = field(default_factory=set)  # (audit, anchor) that matched


class SampleImages:
    """Thread-safe: images are drawn on this service's own threads (`png_async`), and `png`
    may be called from any thread."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._lock = threading.Lock()
        self._sources: OrderedDict[str, _Loaded] = OrderedDict()
        self._building = SingleFlight()
        self._pngs: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._png_bytes = 0
        self._threads = self._new_threads()
        self._pending = 0  # requests submitted to the threads and not yet finished
        self._pending_lock = threading.Lock()

    async def png_async(self, audit_id: int, idx: int) -> bytes:
        """`png` on this service's own threads, not the server's pool: the API's synchronous
        routes (judgements among them) share that pool, and draws of one source queue on its
        lock, so a burst of image requests would otherwise hold every thread while it waits.

        At most `sample_image_queue` requests wait at once; beyond them, Busy (a 503): drawing
        costs CPU, and a queue without a bound would let one client's burst grow it for ever.
        """
        with self._pending_lock:
            if self._pending >= self.settings.sample_image_queue:
                raise Busy(
                    f"{self._pending} sample images are being drawn or waiting; try again shortly"
                )
            self._pending += 1
        try:
            future = self._threads.submit(self.png, audit_id, idx)
        except BaseException:
            self._finished()
            raise
        future.add_done_callback(lambda _: self._finished())
        return await asyncio.wrap_future(future)

    def _finished(self) -> None:
        with self._pending_lock:
            self._pending -= 1

    def png(self, audit_id: int, idx: int) -> bytes:
        with self.db.read() as session:
            audit = audit_store.get_audit(session, audit_id)
            sample = audit_store.get_sample(session, audit_id, idx)
            if sample is None:
                drawn = audit.samples_done
                pool = f"samples 0 to {drawn - 1} drawn" if drawn else "no sample drawn yet"
                raise NotFound("sample", idx, f"audit {audit_id} has no sample {idx} ({pool})")
            if sample.png is not None:
                return sample.png
            spec = audit_source_spec(session, audit)
            seed = audit.seed
            anchor = audit_store.anchor_sample(session, audit_id, idx)
        # Sample i is a pure function of (source, seed, i): audits of one source and seed share
        # their images, and an audit id reused after a deletion finds nothing of the old one.
        key = _source_key(spec, seed, self.settings.models_dir)
        cached = self._cached((key, idx))
        if cached is not None:
            return cached
        loaded = self._source(key, spec, seed)
        self._check_anchor(loaded, audit_id, anchor)
        png = encode_png(self._draw(loaded, idx))
        self._remember((key, idx), png)
        return png

    def _new_threads(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(
            self.settings.sample_image_threads, thread_name_prefix="sample-images"
        )

    def close(self) -> None:
        """Let go of loaded sources and pending draws; an app started again starts afresh."""
        threads, self._threads = self._threads, self._new_threads()
        threads.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            for loaded in self._sources.values():
                close_source(loaded.source)
            self._sources.clear()
            self._pngs.clear()
            self._png_bytes = 0

    # -- sources -------------------------------------------------------------------------
    def _source(self, key: str, spec: SourceSpec, seed: int) -> _Loaded:
        """The loaded source, built once per key; building (seconds for a large generator or
        an archive of 10^6 members) holds up only the requests that need that source."""
        with self._lock:
            loaded = self._sources.get(key)
            if loaded is not None:
                self._sources.move_to_end(key)
                return loaded
        with self._building(key):
            with self._lock:
                loaded = self._sources.get(key)
            if loaded is not None:
                return loaded
            source = open_source(spec, seed, self.settings)
            loaded = _Loaded(source)
            with self._lock:
                self._sources[key] = loaded
                evicted = []
                while len(self._sources) > SOURCES_KEPT:
                    evicted.append(self._sources.popitem(last=False)[1])
        for old in evicted:
            with old.lock:  # a draw in flight finishes first
                close_source(old.source)
        return loaded

    def _draw(self, loaded: _Loaded, idx: int) -> Any:
        with loaded.lock:
            try:
                return loaded.source.generate(np.array([idx], dtype=np.int64)).images[0]
            except (OSError, ValueError, RuntimeError) as exc:  # the file changed or broke since
                raise Conflict(f"sample {idx} cannot be drawn again: {exc}") from exc

    def _check_anchor(
        self, loaded: _Loaded, audit_id: int, anchor: tuple[int, bytes] | None
    ) -> None:
        """The sample's anchor must match a fresh draw, checked once per anchor: every image
        shown has a stored neighbour from its own job step that was drawn again and matched."""
        if anchor is None:
            raise Conflict(f"audit {audit_id} stored no sample to check a redrawn one against")
        at, png = anchor
        if (audit_id, at) in loaded.checked:
            return
        with loaded.lock:
            check_redraw(loaded.source, audit_id, at, png)
        with self._lock:
            loaded.checked.add((audit_id, at))

    # -- images --------------------------------------------------------------------------
    def _cached(self, key: tuple[str, int]) -> bytes | None:
        with self._lock:
            png = self._pngs.get(key)
            if png is not None:
                self._pngs.move_to_end(key)
            return png

    def _remember(self, key: tuple[str, int], png: bytes) -> None:
        budget = self.settings.sample_image_cache_bytes
        with self._lock:
            if key in self._pngs or len(png) > budget:
                return
            self._pngs[key] = png
            self._png_bytes += len(png)
            while self._png_bytes > budget:
                _, old = self._pngs.popitem(last=False)
                self._png_bytes -= len(old)


def open_source(spec: SourceSpec, seed: int, settings: Settings) -> Source:
    """The audit's source on this process's CPU, or a Conflict saying why it cannot be."""
    try:
        return build_source(spec, seed, settings.models_dir, device="cpu")
    except (OSError, ValueError, RuntimeError) as exc:
        raise Conflict(f"this audit's samples cannot be drawn again: {exc}") from exc


def check_redraw(source: Source, audit_id: int, idx: int, png: bytes) -> None:
    """Sample idx drawn again must be its stored PNG, to rounding (ANCHOR_TOLERANCE, mean
    absolute difference in grey levels); a Conflict says why not."""
    try:
        difference = redraw_difference(source, idx, png)
    except (OSError, ValueError, RuntimeError) as exc:  # the file changed or broke since
        raise Conflict(f"audit {audit_id}'s samples cannot be drawn again: {exc}") from exc
    if difference > ANCHOR_TOLERANCE:
        raise Conflict(
            f"audit {audit_id}'s samples cannot be drawn again: "
            + not_the_audited_source(idx, difference)
        )


def _source_key(spec: SourceSpec, seed: int, models_dir: Path) -> str:
    """The loaded source's cache key: its spec, seed and its file's size and modification time,
    so that a file replaced (or put back) under the same path is loaded afresh, not served from
    the copy loaded before."""
    stamp: list[int] = []
    if spec.path is not None:
        try:
            stat = (models_dir / spec.path).stat()
            stamp = [stat.st_size, stat.st_mtime_ns]
        except OSError:
            stamp = [-1]
    return json.dumps([dataclasses.asdict(spec), seed, stamp], sort_keys=True)
