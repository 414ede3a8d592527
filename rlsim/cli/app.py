"""The ``rlsim`` command line: the typer app and its sub-commands.

Each sub-command lives in a module of its own (``rlsim.cli.cmd_*``) with a ``register(app)`` function; all are
imported and registered below. They parse flags and print; the work is done by the pipeline
(``rlsim.pipeline.run``), the studies (``rlsim.studies``) and the reports (``rlsim.report``). Every user error
prints one line and exits with code 2.
"""

from __future__ import annotations

import sys
from typing import Optional

import typer

from ..errors import RlsimError
from . import (cmd_adaptive, cmd_calibrate, cmd_catalog, cmd_plan, cmd_plot, cmd_project, cmd_sweep, cmd_timeline,
               cmd_validate)
from .common import _OneLineErrors, emit_json, fail, user_errors

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, cls=_OneLineErrors,
                  help="rlsim: RL post-training step time with and without speculative decoding.")


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"rlsim {__version__}")
        raise typer.Exit()


@app.callback()
def _main_options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                               help="print rlsim's version and exit")) -> None:
    """rlsim: RL post-training step time with and without speculative decoding."""
    import warnings

    # a warning is one line on stderr ("warning: ..."), not Python's file:line and source excerpt
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {' '.join(str(message).split())}\n"


for _mod in (cmd_project, cmd_timeline, cmd_calibrate, cmd_validate, cmd_sweep, cmd_plot, cmd_adaptive, cmd_catalog,
             cmd_plan):
    _mod.register(app)


def main(argv: Optional[list[str]] = None) -> None:
    try:
        app(args=argv, standalone_mode=True)
    except RlsimError as e:
        typer.echo(f"error: {' '.join(str(e).split())}", err=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()


__all__ = ["app", "emit_json", "fail", "main", "user_errors"]
