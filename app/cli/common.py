"""The pieces every command shares: the Typer app, consoles, options, the store, failing
with a message."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from app.settings import Settings
from app.store.db import Database
from app.store.migrate import upgrade

cli = typer.Typer(add_completion=False, no_args_is_help=True)  # help: the package docstring
console = Console()
err = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (default: BIRTHDAY_DATA_DIR or ./data)."),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the API's JSON body.")]
LevelOption = Annotated[float, typer.Option(help="Confidence level of intervals, in (0.5, 1).")]


def settings_for(data_dir: Path | None) -> Settings:
    return Settings(data_dir=data_dir) if data_dir is not None else Settings()


def open_store(settings: Settings) -> Database:
    settings.ensure_dirs()
    url = settings.resolved_database_url()
    upgrade(url)
    return Database(url, settings.sqlite_busy_timeout_ms)


def fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


def json_object(text: str, option: str) -> dict[str, Any]:
    """A JSON object given on the command line, or a message saying what is wrong with it."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{option} is not JSON: {exc}")
    if not isinstance(value, dict):
        fail(f"{option} must be a JSON object, got {text!r}")
    return value


def run_audit_job(db: Database, settings: Settings, audit_id: int, job_id: int, n: int) -> None:
    """Run an audit's job in this process with a progress bar; print what the pool holds."""
    from app.jobs.runner import JobRunner
    from app.services.audits import describe_audit

    runner = JobRunner(db, settings)
    with Progress(
        TextColumn(f"audit {audit_id}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[pairs]} pairs"),
        TimeElapsedColumn(),
        console=err,
        disable=not sys.stderr.isatty(),
    ) as bar:
        task = bar.add_task("samples", total=n, pairs=0)
        outcome = runner.run_job(
            job_id,
            on_progress=lambda done, total, pairs: bar.update(task, completed=done, pairs=pairs),
        )
    if outcome.status != "done":
        fail(f"audit {audit_id} {outcome.status}: {outcome.error}")
    result = describe_audit(db, audit_id)
    console.print(
        f"audit {audit_id}: {result.progress.samples_done} samples, "
        f"{result.progress.candidate_pairs} candidate pairs"
    )


def steps_progress(label: str) -> Progress:
    """A bar of training steps on stderr (none when it is not a terminal)."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not sys.stderr.isatty(),
    )
