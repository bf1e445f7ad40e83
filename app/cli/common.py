"""The pieces every command shares: the Typer app, consoles, options, the store, failing
with a message."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from app.settings import Settings
from app.store.db import Database
from app.store.migrate import UnknownRevision, upgrade

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
    """The settings, or one line naming the environment variable that is wrong."""
    try:
        return Settings(data_dir=data_dir) if data_dir is not None else Settings()
    except ValidationError as exc:
        wrong = [
            f"BIRTHDAY_{'_'.join(str(part) for part in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        ]
        fail("; ".join(wrong))


def open_store(settings: Settings) -> Database:
    settings.ensure_dirs()
    url = settings.resolved_database_url()
    try:
        upgrade(url)
    except UnknownRevision as exc:
        fail(str(exc))
    return Database(url, settings.sqlite_busy_timeout_ms)


def fail(message: str) -> NoReturn:
    """Print the message as one `error:` line on stderr and exit with status 2."""
    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(2)


Model = TypeVar("Model", bound=BaseModel)

# Request fields whose option is not `--` and the field's name with dashes (the lists of a sweep
# take one option per value).
OPTION_NAMES = {
    "generator_id": "--generator",
    "losses": "--loss",
    "latent_dims": "--latent-dim",
    "d_widths": "--d-width",
    "seeds": "--seed",
}


def validated(
    model: type[Model], names: Mapping[str, str] | None = None, /, **fields: Any
) -> Model:
    """The request body `model(**fields)`, or a failure that names the options at fault.

    `names` maps the model's fields to this command's options (or arguments) where they are
    not `--field-name` (nor in OPTION_NAMES).
    """
    try:
        return model(**fields)
    except ValidationError as exc:
        fail(invalid(exc, names))


def problem(exc: Exception, names: Mapping[str, str] | None = None) -> str:
    """What a service refused, in one line: its message, or a ValidationError's as `invalid`."""
    return invalid(exc, names) if isinstance(exc, ValidationError) else str(exc)


def invalid(exc: ValidationError, names: Mapping[str, str] | None = None) -> str:
    """A ValidationError in the command line's terms, in the API's words: "--steps should be
    greater than or equal to 1, not 0"."""
    return "; ".join(_complaint(error, names or {}) for error in exc.errors())


def _complaint(error: Any, names: Mapping[str, str]) -> str:
    field = next((part for part in error["loc"] if isinstance(part, str)), None)
    ctx, given = error.get("ctx") or {}, error.get("input")
    message = str(ctx["error"]) if error["type"] == "value_error" else str(error["msg"])
    if field is None:  # a validator of the whole body: its sentence says what is wrong
        return message
    option = names.get(field) or OPTION_NAMES.get(field) or "--" + field.replace("_", "-")
    if error["type"] in ("too_short", "too_long"):  # a list: one value per option given
        most = "at least" if error["type"] == "too_short" else "at most"
        limit = ctx["min_length" if error["type"] == "too_short" else "max_length"]
        return f"{option}: {most} {limit} values, not {ctx['actual_length']}"
    if message.startswith("Input should"):
        shown = f"{given:g}" if isinstance(given, float) else repr(given)
        return f"{option} should{message.removeprefix('Input should')}, not {shown}"
    return f"{option}: {message}"


def json_object(text: str, option: str) -> dict[str, Any]:
    """A JSON object given on the command line, or a message saying what is wrong with it."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{option} is not JSON: {exc}")
    if not isinstance(value, dict):
        fail(f"{option} must be a JSON object, got {text!r}")
    return value


class _JobLog(logging.Handler):
    """The job code's warnings and errors, one `warning: ...` line each on stderr, no traceback.

    The runner's record of a failed job is left out: the command prints the job's outcome,
    which carries the error's message, instead.
    """

    def __init__(self, runner_logger: str) -> None:
        super().__init__(logging.WARNING)
        self.runner_logger = runner_logger

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == self.runner_logger and record.levelno >= logging.ERROR:
            return
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            message = f"{message}: {record.exc_info[1]}"
        err.print(f"{record.levelname.lower()}: {message}", markup=False, soft_wrap=True)


@contextmanager
def job_logs() -> Iterator[None]:
    """While a command runs a job in this process: what the job code logs, one line each."""
    from app.jobs import runner

    handler = _JobLog(runner.log.name)
    logger = logging.getLogger("app")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def run_audit_job(db: Database, settings: Settings, audit_id: int, job_id: int, n: int) -> None:
    """Run an audit's job in this process with a progress bar; print what the pool holds."""
    from app.jobs.runner import JobRunner
    from app.services.audits import describe_audit

    runner = JobRunner(db, settings)
    with (
        Progress(
            TextColumn(f"audit {audit_id}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[pairs]} pairs"),
            TimeElapsedColumn(),
            console=err,
            disable=not sys.stderr.isatty(),
        ) as bar,
        job_logs(),
    ):
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
