"""`birthday serve | train | sweep | upload | audit | extend | set-target | import-labels |
estimate | compare | sweep-support | second-look | paper-protocol | export | digit-classifier |
annotator`: the same services as the API, from a terminal."""

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
