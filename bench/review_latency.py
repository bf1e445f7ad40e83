"""How long the review loop takes per request on large audits: the estimate and next-pairs.

Builds an SQLite store with one finished audit of n samples and k candidate pairs per sample
(random pairs, gamma-distributed distances, 50 random non-candidate pairs), then times, through
the services the API calls:

* the first `load_review` (reads every pair into arrays; later calls read only new rows),
* `audit_estimate` and `next_pairs_for` warm, while an oracle labels what is handed out
  (closest 1% of pairs are duplicates);
* then, once, what the audit page asks for: a page of unlabelled pairs with their ranks, the
  batch curve, the calibration, the clusters, the secondary figures and the second-look list
  (uncached: up to 30 whole estimates; medians of 3 calls),
  the estimate history's first replay and its cost after one more label (median of 3 labels);
* what keeps the audit page live (app.services.estimate_feed): the old 3 s poll's cost per open
  page (the panel: estimate and secondary figures, nothing changed), the feed's recheck of an
  unchanged audit (every 10 s per watched audit, however many pages), and a label's time to its
  `estimate` event (settling included; medians of 3);
* and a restart: in a fresh process, the first label's round trip (estimate, then next-pairs)
  cold, and in another after the start-up warm-up (app.services.warmup) has run: its first
  pass (estimates and queues), then its second (the audit pages' history and secondary).

    .venv/bin/python bench/review_latency.py                 # n = 10^4, 10^5 (k = 5)
    .venv/bin/python bench/review_latency.py --n 1000000     # 5 * 10^6 candidate pairs
    .venv/bin/python bench/review_latency.py --database-url postgresql+psycopg://...  # PostgreSQL

With --database-url the audit is built in that database (migrated first) and deleted after.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.services import history, insights, second_look  # noqa: E402
from app.services.estimates import audit_estimate  # noqa: E402
from app.services.review import next_pairs_for  # noqa: E402
from app.services.review_state import load_review  # noqa: E402
from app.services.secondary import audit_secondary  # noqa: E402
from app.store import audits as audit_store  # noqa: E402
from app.store.db import Database  # noqa: E402
from app.store.migrate import upgrade  # noqa: E402
from app.store.models import Audit  # noqa: E402
from app.store.pairs import list_pairs, pair_labels  # noqa: E402

ROUNDS = 20
PAGE_CALLS = 3


def restart_probe(url: str, audit_id: int, warm: bool) -> None:
    """Run in a fresh process (a restarted server): print the warm-up's seconds and the first
    estimate's and handout's milliseconds as JSON."""
    from app.services.warmup import Warmup

    db = Database(url)
    reviews = pages = 0.0
    if warm:
        started = time.perf_counter()
        job = Warmup(db, 3, Path(tempfile.mkdtemp()))
        job.start()
        job.reviews_ready.wait()
        reviews = time.perf_counter() - started
        job.wait()
        pages = time.perf_counter() - started - reviews
    t0 = time.perf_counter()
    audit_estimate(db, audit_id)
    t1 = time.perf_counter()
    next_pairs_for(db, audit_id, "probe", limit=6)
    t2 = time.perf_counter()
    import resource

    print(
        json.dumps(
            {
                "warm_up_s": reviews,
                "pages_s": pages,
                "estimate_ms": 1000 * (t1 - t0),
                "next_ms": 1000 * (t2 - t1),
                # Linux reports KiB: the process's peak, caches included.
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def after_restart(url: str, audit_id: int, warm: bool) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--restart-probe", url, str(audit_id)]
        + (["--warm"] if warm else []),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    figures: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return figures


def page_figures(db: Database, audit_id: int, scratch: Path) -> dict[str, float]:
    """Median ms of each call the audit page makes (besides the estimate)."""

    def pairs_page() -> object:
        with db.read() as session:
            return list_pairs(session, audit_id, "unlabelled", 20, None)

    calls = {
        "pairs page": pairs_page,
        "batch curve": lambda: insights.audit_batch_curve(db, audit_id),
        "calibration": lambda: insights.audit_calibration(db, audit_id, span="labelled"),
        "clusters": lambda: insights.audit_clusters(db, audit_id, str),
        "secondary": lambda: audit_secondary(db, scratch, audit_id),
        "second look": lambda: _second_look_uncached(db, audit_id),
    }
    out = {}
    for name, call in calls.items():
        times = []
        for _ in range(PAGE_CALLS):
            t0 = time.perf_counter()
            call()
            times.append(1000 * (time.perf_counter() - t0))
        out[name] = float(np.median(times))
    out.update(history_figures(db, audit_id))
    out.update(live_figures(db, audit_id, scratch))
    return out


def _second_look_uncached(db: Database, audit_id: int) -> object:
    """The second-look list as the first caller after a label gets it: up to 3 * 10 whole
    estimates recomputed (later callers with the same labels get it from the cache)."""
    second_look._flips.clear()
    return second_look.second_looks(db, audit_id, 10)


def live_figures(db: Database, audit_id: int, scratch: Path) -> dict[str, float]:
    """The poll the audit page made every 3 s against what the estimate feed does instead."""
    import threading

    from app.jobs.events import Event
    from app.services import estimate_feed
    from app.store.judgements import post_judgement

    def timed(call: Callable[[], object]) -> float:
        t0 = time.perf_counter()
        call()
        return 1000 * (time.perf_counter() - t0)

    def poll() -> None:
        audit_estimate(db, audit_id)
        audit_secondary(db, scratch, audit_id)

    polls = [timed(poll) for _ in range(PAGE_CALLS)]
    rechecks = [timed(lambda: estimate_feed._compute(db, audit_id)) for _ in range(PAGE_CALLS)]
    arrived = threading.Event()

    def publish(event: Event) -> None:
        arrived.set()

    feed = estimate_feed.EstimateFeed(db, publish)
    latencies = []
    with feed.watching(audit_id):
        assert arrived.wait(600), "no first estimate event"
        for _ in range(PAGE_CALLS):
            time.sleep(2.0)  # past the feed's minimum gap: one label alone, as a reviewer gives it
            arrived.clear()
            handed = next_pairs_for(db, audit_id, "live", limit=1)
            t0 = time.perf_counter()
            for ranked in handed.pairs:
                with db.write() as session:
                    post_judgement(session, ranked.pair.id, "distinct", "live", None)
            feed.changed(audit_id)
            assert arrived.wait(600), "no estimate event after a label"
            latencies.append(1000 * (time.perf_counter() - t0))
    feed.stop()
    return {
        "3 s poll": float(np.median(polls)),
        "feed recheck": float(np.median(rechecks)),
        "label->event": float(np.median(latencies)),
    }


def history_figures(db: Database, audit_id: int) -> dict[str, float]:
    """The history's first replay, then its cost after each of a few more labels, each taken
    as the review page takes it (a handout, a judgement, the estimate): the kept points serve."""
    from app.store.judgements import post_judgement

    t0 = time.perf_counter()
    history.audit_estimate_history(db, audit_id)
    first = 1000 * (time.perf_counter() - t0)
    later = []
    for _ in range(PAGE_CALLS):
        handed = next_pairs_for(db, audit_id, "page", limit=1)
        for ranked in handed.pairs:
            with db.write() as session:
                post_judgement(session, ranked.pair.id, "distinct", "page", None)
        audit_estimate(db, audit_id)
        t0 = time.perf_counter()
        history.audit_estimate_history(db, audit_id)
        later.append(1000 * (time.perf_counter() - t0))
    return {"history": first, "history +1": float(np.median(later))}


def build(db: Database, n: int, k: int, rng: np.random.Generator) -> int:
    with db.write() as session:
        audit, _ = audit_store.create_audit(session, synthetic={"support": n}, n=n)
        audit_id = audit.id
    j = np.repeat(np.arange(1, n), np.minimum(k, np.arange(1, n)))
    i = np.floor(rng.random(j.size) * j).astype(np.int64)
    key = np.unique(i * n + j)
    i, j = key // n, key % n
    d = rng.gamma(3.0, 0.1, i.size)
    step = 200_000
    for start in range(0, i.size, step):
        rows = list(
            zip(
                i[start : start + step].tolist(),
                j[start : start + step].tolist(),
                d[start : start + step].tolist(),
                strict=True,
            )
        )
        last = start + step >= i.size
        random = [(0, n - 1 - r, 5.0) for r in range(50)] if last else []
        with db.write() as session:
            audit_store.record_chunk(
                session,
                audit_id,
                audit_store.ChunkRows(
                    samples_done=n,
                    pairs=rows,
                    samples=[],
                    random_pairs=random,
                    pool_size=n if last else None,
                ),
            )
    with db.write() as session:
        row = session.get(Audit, audit_id)
        assert row is not None
        row.status = "done"
    db.refresh_statistics()  # as the audit job does when it ends
    return audit_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument(
        "--restart-probe", nargs=2, metavar=("URL", "AUDIT"), help=argparse.SUPPRESS
    )
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.restart_probe:
        restart_probe(args.restart_probe[0], int(args.restart_probe[1]), args.warm)
        return
    from app.store.judgements import post_judgement

    print(
        f"{'n':>8s} {'pairs':>9s} {'build s':>8s} {'cold load s':>11s} {'estimate ms':>12s} "
        f"{'next-pairs ms':>13s} {'labels':>6s}"
    )
    pages: dict[int, dict[str, float]] = {}
    restarts: dict[int, tuple[dict[str, float], dict[str, float]]] = {}
    for n in args.n:
        rng = np.random.default_rng(0)
        with tempfile.TemporaryDirectory() as tmp:
            url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
            upgrade(url)
            db = Database(url)
            started = time.perf_counter()
            audit_id = build(db, n, args.k, rng)
            built = time.perf_counter() - started
            started = time.perf_counter()
            state = load_review(db, audit_id)
            cold = time.perf_counter() - started
            cut = float(np.quantile(state.candidates.distance, 0.01))
            est_ms, next_ms = [], []
            for _ in range(ROUNDS):
                t0 = time.perf_counter()
                audit_estimate(db, audit_id)
                est_ms.append(1000 * (time.perf_counter() - t0))
                t0 = time.perf_counter()
                handed = next_pairs_for(db, audit_id, "oracle", limit=6)
                next_ms.append(1000 * (time.perf_counter() - t0))
                for ranked in handed.pairs:
                    pair = ranked.pair
                    label = "duplicate" if pair.distance <= cut else "distinct"
                    with db.write() as session:
                        post_judgement(session, pair.id, label, "oracle", None)
            with db.read() as session:
                labels = len(pair_labels(session, audit_id))
            print(
                f"{n:8d} {len(state.candidates):9d} {built:8.1f} {cold:11.2f} "
                f"{np.median(est_ms):12.1f} {np.median(next_ms):13.1f} {labels:6d}",
                flush=True,
            )
            pages[n] = page_figures(db, audit_id, Path(tmp))
            restarts[n] = (after_restart(url, audit_id, False), after_restart(url, audit_id, True))
            if args.database_url:
                with db.write() as session:
                    audit_store.delete_audit_rows(session, audit_id)
            db.dispose()
    names = list(next(iter(pages.values()))) if pages else []
    print(f"\n{'n':>8s} " + " ".join(f"{name + ' ms':>14s}" for name in names))
    for n, figures in pages.items():
        print(f"{n:8d} " + " ".join(f"{figures[name]:14.1f}" for name in names))
    print(
        f"\nafter a restart, the first label's round trip\n{'n':>8s} {'cold estimate ms':>17s} "
        f"{'cold next ms':>13s} {'warm-up s':>10s} {'+ pages s':>10s} {'warmed estimate ms':>19s} "
        f"{'warmed next ms':>15s} {'cold/warmed':>12s} {'peak MB cold':>13s} {'warmed':>7s}"
    )
    for n, (cold, warmed) in restarts.items():
        cold_ms = cold["estimate_ms"] + cold["next_ms"]
        warm_ms = warmed["estimate_ms"] + warmed["next_ms"]
        print(
            f"{n:8d} {cold['estimate_ms']:17.1f} {cold['next_ms']:13.1f} "
            f"{warmed['warm_up_s']:10.1f} {warmed['pages_s']:10.1f} {warmed['estimate_ms']:19.1f} "
            f"{warmed['next_ms']:15.1f} {cold_ms / warm_ms:11.0f}x {cold['peak_mb']:13.0f} "
            f"{warmed['peak_mb']:7.0f}"
        )


if __name__ == "__main__":
    main()
