"""`birthday serve`: the dashboard and its worker."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.common import (
    DataDir,
    cli,
    console,
    fail,
    settings_for,
)


@cli.command()
def serve(
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    ray: Annotated[
        str | None,
        typer.Option(
            help="Run jobs on Ray: auto (a cluster started on this machine), HOST:6379 (a "
            "cluster's head) or local (a private instance). Default: the in-process worker."
        ),
    ] = None,
) -> None:
    """Start the dashboard and its worker (in-process, or Ray tasks with --ray)."""
    from app.main import create_app
    from app.serving import serve as serve_app

    settings = settings_for(data_dir)
    if host is not None:
        settings.host = host
    if port is not None:
        settings.port = port
    if ray is not None:
        settings.ray_address = ray
    try:
        app = create_app(settings)
    except (ValueError, RuntimeError) as exc:  # e.g. a Ray address that cannot work
        fail(str(exc))
        return
    if settings.auth_required:
        console.print("tokens required: create one with `birthday annotator add NAME --role admin`")
    console.print(
        f"birthday dashboard on http://{settings.host}:{settings.port}/ (data: {settings.data_dir}; "
        f"jobs: {app.state.birthday.runner.executor.describe()})"
    )
    serve_app(app, settings.host, settings.port)
