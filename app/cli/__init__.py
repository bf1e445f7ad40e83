"""`birthday COMMAND`: the same services as the API, from a terminal: serve the dashboard, train
GANs and grids of them, upload generators, run and grow audits, read their estimates, export
their labels, manage annotators."""

# isort: off
# Each module registers its commands on `cli`; `birthday --help` lists them in this order.
from app.cli import (  # noqa: F401
    serving,
    generators,
    training,
    audits,
    estimates,
    paper,
    sweeps,
    exports,
    annotators,
)

# isort: on
from app.cli.common import cli

cli.info.help = __doc__


def main() -> None:
    cli()
