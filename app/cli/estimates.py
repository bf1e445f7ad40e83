"""`birthday estimate | compare | second-look`: what the labels say, in a terminal."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from app.cli.common import (
    DataDir,
    JsonFlag,
    LevelOption,
    cli,
    console,
    err,
    fail,
    open_store,
    settings_for,
)
from app.schemas import (
    EstimatePublic,
)
from app.store.db import Database
from app.store.errors import NotFound


@cli.command()
def estimate(
    audit_id: Annotated[int, typer.Argument(metavar="AUDIT")],
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
    level: LevelOption = 0.95,
    target: Annotated[
        float | None,
        typer.Option(
            help="Relative half-width the stopping rule aims for, in (0, 1]; default: the "
            "audit's own target."
        ),
    ] = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Print it again each time it changes (anyone's labels, a growing pool) until "
            "Ctrl-C; with --json, one JSON body per line.",
        ),
    ] = False,
    every: Annotated[float, typer.Option(hidden=True, min=0.05)] = 2.0,
) -> None:
    """Print an audit's current support-size estimate."""
    from app.services.estimates import audit_estimate

    # The API's bounds (GET /estimate?level=&target=), said as a message rather than a traceback.
    if not 0.5 < level < 1:
        fail(f"--level must be between 0.5 and 1 (exclusive), not {level}")
        return
    if target is not None and not 0 < target <= 1:
        fail(f"--target must be in (0, 1], not {target}")
        return
    db = open_store(settings_for(data_dir))
    if watch:
        _watch_estimate(db, audit_id, level, target, as_json, every)
        return
    try:
        result = audit_estimate(db, audit_id, level=level, target=target)
    except (ValueError, NotFound) as exc:
        fail(str(exc))
        return
    if as_json:
        console.print_json(result.model_dump_json())
        return
    _print_estimate(audit_id, result)


def _watch_estimate(
    db: Database, audit_id: int, level: float, target: float | None, as_json: bool, every: float
) -> None:
    """Recompute every `every` seconds and print what changed: the store is the only channel
    between this process and the server's, so this reads it (cached, so cheap when nothing
    changed).

    Ctrl-C sets a flag the loop checks instead of raising where it lands: a KeyboardInterrupt
    raised inside a finaliser (a database connection's, during garbage collection) is printed
    and dropped, and the watch went on until killed (seen once in CI under load)."""
    import signal
    import threading
    from datetime import datetime

    from app.services.estimates import audit_estimate

    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    last, waiting = "", ""
    try:
        while not stop.is_set():
            try:
                result = audit_estimate(db, audit_id, level=level, target=target)
            except NotFound as exc:
                fail(str(exc))
                return
            except ValueError as exc:  # fewer than 2 samples so far: the job is starting
                if str(exc) != waiting:
                    waiting = str(exc)
                    err.print(f"waiting: {exc}")
            else:
                body = result.model_dump_json()
                if body != last:
                    last = body
                    if as_json:
                        print(body, flush=True)  # JSON Lines
                    else:
                        console.rule(datetime.now().strftime("%H:%M:%S"))
                        _print_estimate(audit_id, result)
            stop.wait(every)
    finally:
        signal.signal(signal.SIGINT, previous)


def _print_estimate(audit_id: int, result: EstimatePublic) -> None:
    console.print(
        f"audit {audit_id}: n={result.n}, {result.candidate_pairs} candidate pairs, "
        f"{result.labelled_pairs} labelled, D={result.duplicate_pairs}"
    )
    if result.d_hat is None:
        console.print(
            f"no judgements yet: N_eff >= {result.n_eff_low:.4g} ({result.level:.0%}) even if "
            "every candidate pair were a duplicate"
        )
    elif result.n_eff is None:
        console.print(f"no duplicates found: N_eff >= {result.n_eff_low:.4g} ({result.level:.0%})")
    else:
        high = "inf" if result.n_eff_high is None else f"{result.n_eff_high:.4g}"
        console.print(
            f"N_eff (inverse Simpson) = {result.n_eff:.4g}, "
            f"{result.level:.0%} interval [{result.n_eff_low:.4g}, {high}]"
        )
    parts = result.parts
    if parts.unreviewed is not None:
        missed = "not checked yet" if parts.missed is None else f"{parts.missed:.3g}"
        console.print(
            f"D_hat = {parts.confirmed} confirmed + {parts.unreviewed:.3g} unreviewed "
            f"(estimated) + {missed} missed by the miner"
        )
    for warning in result.warnings:
        console.print(f"warning: {warning}")
    stop = result.stop
    if stop.reached:
        console.print("the target width is met: no more labels needed")
    elif stop.labels_done and stop.limited_by != "miner":
        if stop.samples_to_go is None:
            console.print("more labels would barely help, and no pool size reaches the target")
        else:
            console.print(
                f"more labels would barely help: extend the pool by {stop.samples_to_go} samples"
            )
    elif not stop.labels_done:
        console.print(
            f"about {stop.labels_to_go} more labels to go "
            f"({result.candidate_pairs} candidate pairs): provisional"
        )
    if stop.reached or stop.labels_done:
        console.print(
            f"the interval assumes every label right: birthday second-look {audit_id} lists the "
            "judgements whose slip would move N_eff most"
        )
    if stop.limited_by == "miner":
        floor = stop.miner_relative_half_width or 0.0
        console.print(
            f"limited by the miner: the duplicates it missed leave +-{floor:.0%} on their own at "
            "any pool size; audit the same source and seed with more neighbours per sample "
            f"(--neighbours) and carry these labels over: birthday import-labels NEW --from "
            f"{audit_id}"
        )


@cli.command()
def compare(
    audit_ids: Annotated[
        list[str], typer.Argument(metavar="AUDIT...", help="Ids, or a comma list.")
    ],
    level: LevelOption = 0.95,
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
) -> None:
    """Print several audits' support-size estimates side by side (GET /api/compare)."""
    from app.api.deps import MAX_ID
    from app.services.compare import compare_items, parse_ids

    if not 0.5 < level < 1:
        fail(f"--level must be between 0.5 and 1 (exclusive), not {level}")
        return
    db = open_store(settings_for(data_dir))
    try:
        ids = parse_ids(audit_ids, MAX_ID)
        if not ids:
            fail("name the audits to compare, e.g. birthday compare 1,2,3")
        _, items = compare_items(db, ids, level=level)
    except (ValueError, NotFound) as exc:
        fail(str(exc))
        return
    if as_json:
        console.print_json(json.dumps([item.model_dump(mode="json") for item in items]))
        return
    from rich import box
    from rich.table import Table

    def figure(value: float | None) -> str:
        return "-" if value is None else f"{value:.4g}"

    table = Table(title=f"N_eff (inverse Simpson), {level:.0%} intervals", box=box.SIMPLE)
    table.add_column("audit", justify="right")
    table.add_column("source", no_wrap=True)
    table.add_column("embedder")
    for column in ("n", "labelled", "D", "N_eff", "interval", "s50", "known"):
        table.add_column(column, justify="right", no_wrap=True)
    if items:
        table.add_column(f"x #{items[0].audit.id}", justify="right", no_wrap=True)
    for item in items:
        a, e = item.audit, item.estimate
        source = (
            f"synthetic K={a.synthetic.get('support')}"
            if a.synthetic
            else (a.generator_name or f"generator #{a.generator_id}")
        )
        known = "" if item.known_n_eff is None else str(item.known_n_eff)
        r = item.ratio_to_first
        ratio = "" if r is None else f"{r.value:.3g} [{r.low:.3g}, {r.high:.3g}]"
        if e is None:
            table.add_row(
                str(a.id), source, a.embedder, str(a.n), "", "", f"no estimate ({a.status})",
                "", "", known, ratio,
            )  # fmt: skip
            continue
        n_eff = figure(e.n_eff) if e.n_eff is not None else f">= {figure(e.n_eff_low)}"
        high = "inf" if e.n_eff_high is None else figure(e.n_eff_high)
        table.add_row(
            str(a.id),
            source,
            a.embedder,
            str(e.n),
            f"{e.labelled_pairs} / {e.candidate_pairs}",
            str(e.duplicate_pairs),
            n_eff,
            f"{figure(e.n_eff_low)} - {high}",
            figure(e.s50),
            known,
            ratio,
        )
    Console(width=max(console.width, 180)).print(table)


@cli.command("second-look")
def second_look(
    audit_id: Annotated[int, typer.Argument(metavar="AUDIT")],
    limit: Annotated[int, typer.Option(min=1, max=50, help="At most this many.")] = 10,
    data_dir: DataDir = None,
) -> None:
    """List the judgements whose slip would move N_eff most (judge them again on the page
    /audits/AUDIT/second-look, or over REST)."""
    from rich import box
    from rich.table import Table

    from app.estimate.leverage import SLIP_RATE
    from app.services.second_look import second_looks

    db = open_store(settings_for(data_dir))
    try:
        assessment, looks = second_looks(db, audit_id, limit)
    except (ValueError, NotFound) as exc:
        fail(str(exc))
        return
    e = assessment.estimate
    if not e.labelled_pairs:
        console.print(f"audit {audit_id}: nothing judged yet, nothing to doubt")
        return
    high = "inf" if e.n_eff_high is None else f"{e.n_eff_high:.4g}"
    n_eff = "-" if e.n_eff is None else f"{e.n_eff:.4g}"
    console.print(
        f"audit {audit_id}: N_eff {n_eff} [{e.n_eff_low:.4g}, {high}], D_hat {e.d_hat:.4g}"
    )
    if not looks:
        console.print("no single judgement's slip would move D_hat beyond the interval's noise")
        return
    table = Table(
        "pair",
        "origin",
        "i, j",
        "distance",
        "label",
        "looks",
        "P(slip)",
        "N_eff if wrong",
        box=box.SIMPLE_HEAD,
    )
    for s in looks:
        flipped = "-" if s.flip.n_eff is None else f"{s.flip.n_eff:.4g}"
        where = f"cand. #{s.rank}" if s.rank is not None else "random"
        table.add_row(
            str(s.pair.id),
            where,
            f"{s.pair.i}, {s.pair.j}",
            f"{s.pair.distance:.4f}",
            str(s.pair.label),
            str(s.looks),
            f"{s.flip.slip:.2g}",  # often well below 1%: 0.00 hid the ranking
            flipped,
        )
    console.print(table)
    console.print(
        f"P(slip): the chance the label is a wrong key, at a {SLIP_RATE:.0%} rate of them. Judge "
        f"them again, blind: /audits/{audit_id}/second-look"
    )
