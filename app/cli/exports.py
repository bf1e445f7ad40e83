"""`birthday export`: an audit's pairs or judgements as CSV."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import (
    DataDir,
    cli,
    console,
    fail,
    open_store,
    settings_for,
)
from app.store.errors import NotFound


class ExportOriginChoice(StrEnum):
    all = "all"
    candidate = "candidate"
    random = "random"


@cli.command()
def export(
    audit_id: Annotated[int, typer.Argument(metavar="AUDIT")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="CSV file to write ('-' for stdout).")
    ] = Path("-"),
    origin: Annotated[
        ExportOriginChoice,
        typer.Option(help="candidate: the miner's pairs; random: the miner check; all: both."),
    ] = ExportOriginChoice.all,
    judgements: Annotated[
        bool,
        typer.Option(
            "--judgements",
            help="Every judgement (annotator, label, time, undone) instead of the pairs.",
        ),
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Export an audit's pairs with their labels (or every judgement) as CSV."""
    from app.services.export import write_judgements, write_pairs
    from app.store import audits as audit_store

    db = open_store(settings_for(data_dir))
    with db.read() as session:  # before a file is opened: a typo must not truncate one
        try:
            audit_store.get_audit(session, audit_id)
        except NotFound as exc:
            fail(str(exc))
    try:
        handle = sys.stdout if str(out) == "-" else out.open("w", newline="")
    except OSError as exc:  # no such folder, a folder, no permission: said, not a traceback
        fail(f"cannot write {out}: {exc.strerror or exc}")
    try:
        if judgements:
            rows = write_judgements(db, audit_id, handle)
        else:
            rows = write_pairs(db, audit_id, handle, origin.value)
    finally:
        if handle is not sys.stdout:
            handle.close()
    if handle is not sys.stdout:
        what = "judgements" if judgements else "pairs"
        console.print(json.dumps({"audit": audit_id, what: rows, "file": str(out)}))
