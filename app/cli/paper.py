"""`birthday paper-protocol`: the paper's test from batches you drew and inspected."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from app.cli.common import (
    DataDir,
    JsonFlag,
    LevelOption,
    cli,
    console,
    fail,
    invalid,
    validated,
)

# BatchCount's fields as SIZE:HITS/BATCHES names them.
BATCH_PARTS = {"size": "SIZE", "with_duplicate": "HITS", "batches": "BATCHES"}


def _batch_count(text: str) -> dict[str, int]:
    """SIZE:HITS/BATCHES, e.g. 400:6/10 (6 of 10 batches of 400 held a duplicate)."""
    size, sep, rest = text.partition(":")
    hits, slash, total = rest.partition("/")
    if not (sep and slash and size.strip().isdigit() and hits.strip().isdigit()):
        raise ValueError(f"{text!r}: write SIZE:HITS/BATCHES, e.g. 400:6/10")
    if not total.strip().isdigit():
        raise ValueError(f"{text!r}: write SIZE:HITS/BATCHES, e.g. 400:6/10")
    if int(hits) > int(total):
        raise ValueError(f"{text}: HITS ({int(hits)}) exceeds BATCHES ({int(total)})")
    return {"size": int(size), "with_duplicate": int(hits), "batches": int(total)}


@cli.command("paper-protocol")
def paper_protocol_command(
    batches: Annotated[
        list[str],
        typer.Argument(
            metavar="SIZE:HITS/BATCHES...",
            help="Per batch size: HITS of BATCHES fresh batches of SIZE held a near-duplicate.",
        ),
    ],
    level: LevelOption = 0.95,
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
) -> None:
    """The paper's protocol from batches you drew and inspected (POST /api/paper-protocol):
    shares with exact intervals, s50 and s50^2, the uniform MLE and a test of the uniform model."""
    from rich.table import Table

    from app.services.paper_protocol import BatchCount, PaperProtocolCreate, paper_protocol

    counts = []
    for text in batches:
        try:
            parts = _batch_count(text)
        except ValueError as exc:
            fail(str(exc))
        try:
            counts.append(BatchCount(**parts))
        except ValidationError as exc:
            fail(f"{text}: {invalid(exc, BATCH_PARTS)}")
    body = validated(
        PaperProtocolCreate, {"batches": "SIZE:HITS/BATCHES"}, batches=counts, level=level
    )
    result = paper_protocol(body)
    if as_json:
        console.print_json(result.model_dump_json())
        return
    table = Table(
        "batch size", "batches", "with a duplicate", f"share [{level:.0%}]", "uniform fit"
    )
    for row in result.sizes:
        fit = "–" if row.uniform_share is None else f"{row.uniform_share:.2f}"
        table.add_row(
            str(row.size),
            str(row.batches),
            str(row.with_duplicate),
            f"{row.share:.2f} [{row.share_low:.2f}, {row.share_high:.2f}]",
            fit,
        )
    console.print(table)
    if result.s50 is None:
        console.print("no batch size reaches a share of 1/2: try larger batches")
    elif result.s50_upper_bound:
        console.print(
            f"s50 <= {result.s50} (the smallest size tried already reaches 1/2): the paper's "
            f"support ~ s50^2 <= {result.paper_support:,}; try smaller batches"
        )
    else:
        console.print(f"s50 = {result.s50}: the paper's support ~ s50^2 = {result.paper_support:,}")
    high = "inf" if result.n_high is None else f"{result.n_high:,.0f}"
    low = "1" if result.n_low is None else f"{result.n_low:,.0f}"  # no bound below: N >= 1
    if result.n_hat is not None:
        console.print(
            f"uniform-model MLE N = {result.n_hat:,.0f}, {level:.0%} interval [{low}, {high}]"
        )
    else:
        console.print(f"uniform model: N in [{low}, {high}] ({level:.0%}), no interior maximum")
    if result.uniform_fit_p is not None:
        verdict = (
            "far from uniform: s50^2 and the MLE misread its support"
            if result.uniform_fit_p < 0.05
            else "consistent with a uniform generator"
        )
        console.print(f"uniform model fit: p = {result.uniform_fit_p:.3g} ({verdict})")
    console.print(result.note, style="dim", soft_wrap=True)
