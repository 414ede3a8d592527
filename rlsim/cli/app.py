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


# commands whose outputs are all written and closed when they return (no open file waits for its object's
# deallocation); ``calibrate`` keeps CSV writers open, ``validate`` runs long anyway
_FAST_EXIT = frozenset({"project", "iteration", "timeline", "sweep", "optimize-k", "models", "plan", "plot"})


def main(argv: Optional[list[str]] = None) -> None:
    """The ``rlsim`` command. Called without ``argv`` (the installed script, ``python -m rlsim``) it ends the process
    after a simulation command: the streams flushed and the exit handlers run, Python's teardown (freeing every
    object, about 0.1 s after a projection) is skipped. ``RLSIM_FAST_EXIT=0`` keeps the teardown."""
    try:
        try:
            app(args=argv, standalone_mode=True)
        except RlsimError as e:
            typer.echo(f"error: {' '.join(str(e).split())}", err=True)
            sys.exit(2)
    except SystemExit as e:
        if argv is None and _fast_exit_ok(e.code):
            _exit_now(int(e.code or 0))
        raise


def _fast_exit_ok(code) -> bool:
    import os

    if code is not None and not isinstance(code, int):
        return False
    if os.environ.get("RLSIM_FAST_EXIT", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    cmd = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    return cmd in _FAST_EXIT


def _exit_now(code: int) -> None:
    import atexit
    import os

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed pipe: nothing more to write
            pass
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()


__all__ = ["app", "emit_json", "fail", "main", "user_errors"]
