"""`birthday annotator add | revoke`: annotators and their API tokens."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.common import (
    DataDir,
    cli,
    console,
    err,
    fail,
    open_store,
    settings_for,
)
from app.store.errors import Conflict

annotators_cli = typer.Typer(no_args_is_help=True, help="Annotators and their API tokens.")
cli.add_typer(annotators_cli, name="annotator")


@annotators_cli.command("add")
def annotator_add(
    name: Annotated[str, typer.Argument(help="The annotator's name, as judgements record it.")],
    role: Annotated[str, typer.Option(help="annotator | admin")] = "annotator",
    data_dir: DataDir = None,
) -> None:
    """Create an annotator and print their token (shown once; only its hash is stored)."""
    from app.schemas import plain_annotator_name
    from app.store.annotators import create_annotator

    try:
        plain_annotator_name(name)  # the API's rule: a name the review page can send back
    except ValueError as exc:
        fail(f"name {name!r}: {exc}")
    db = open_store(settings_for(data_dir))
    try:
        with db.write() as session:
            annotator, token = create_annotator(session, name, role)
    except (ValueError, Conflict) as exc:
        fail(str(exc))
        return
    err.print(f"annotator {annotator.name!r} ({annotator.role}); token:")
    console.print(token)


@annotators_cli.command("revoke")
def annotator_revoke(
    name: Annotated[str, typer.Argument()],
    data_dir: DataDir = None,
) -> None:
    """Revoke an annotator's token; their judgements stay."""
    from app.store.annotators import revoke_token
    from app.store.errors import NotFound

    db = open_store(settings_for(data_dir))
    try:
        with db.write() as session:
            revoke_token(session, name)
    except NotFound as exc:
        fail(str(exc))
    console.print(f"token of {name!r} revoked")
