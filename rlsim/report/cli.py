"""The ``rlsim`` command line.

Sub-commands live in modules of their own (``rlsim.report.cmd_*``), each with a ``register(app)``
function listed in ``_COMMAND_MODULES``. Every user error prints one line and exits with code 2.
"""

from __future__ import annotations

import importlib
import sys
from typing import Optional

import typer

from ..errors import RlsimError


class _OneLineErrors(typer.core.TyperGroup):
    """Usage errors (unknown option or command, a value of the wrong type, a missing option) print one
    line on stderr and exit with code 2, like every other user error (typer would draw a box)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:  # typer >= 0.2x vendors click as typer._click; older typer uses click itself
            from typer._click import exceptions as click
        except ImportError:  # pragma: no cover
            from click import exceptions as click

        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as e:
            if type(e).__name__ == "NoArgsIsHelpError" and e.ctx is not None:  # `rlsim` alone: the help
                typer.echo(e.ctx.get_help())
                sys.exit(e.exit_code)
            hint = f" (see: {e.ctx.command_path} --help)" if e.ctx is not None else ""
            typer.echo(f"error: {' '.join(e.format_message().split())}{hint}", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            typer.echo(f"error: {' '.join(e.format_message().split())}", err=True)
            sys.exit(e.exit_code)
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


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

_COMMAND_MODULES = [
    "rlsim.report.cmd_project",
    "rlsim.report.cmd_timeline",
    "rlsim.report.cmd_calibrate",
    "rlsim.report.cmd_validate",
    "rlsim.report.cmd_sweep",
    "rlsim.report.cmd_plot",
    "rlsim.report.cmd_adaptive",
    "rlsim.report.cmd_catalog",
    "rlsim.report.cmd_plan",
]


def user_errors(fn):
    """Decorator for commands: a user error becomes one line on stderr and exit code 2."""
    import functools

    from pydantic import ValidationError

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RlsimError as e:
            fail(str(e))
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(x) for x in err["loc"])
            fail(f"field `{loc}` = {err.get('input')!r}: {err['msg']}")

    return wrapper


def fail(message: str) -> None:
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)  # one line, whatever the message holds
    raise typer.Exit(2)


def emit_json(obj) -> None:
    """Strict JSON (RFC 8259): NaN and infinities are written as null, never as NaN / Infinity."""
    from ..inputs import dumps_strict

    typer.echo(dumps_strict(obj, indent=2))


def _register() -> None:
    for name in _COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:
                continue
            raise
        mod.register(app)


_register()


def main(argv: Optional[list[str]] = None) -> None:
    try:
        app(args=argv, standalone_mode=True)
    except RlsimError as e:
        typer.echo(f"error: {' '.join(str(e).split())}", err=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
