"""What every ``rlsim`` command shares: one-line user errors (exit code 2) and strict JSON output."""

from __future__ import annotations

import sys

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


__all__ = ["emit_json", "fail", "user_errors"]
