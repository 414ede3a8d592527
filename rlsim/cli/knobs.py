"""CLI flags generated from the field table (rlsim/fields.py): ``rlsim project``, ``rlsim timeline`` and ``rlsim sweep``
take a scenario's settings under the table's flag, default and help, so a new knob is one row of the table.

``with_knobs(command)`` decorates a command function ``fn(knobs, **own)``: its typer signature becomes the table's
flags for ``command`` followed by the function's own parameters (built with ``inspect.Signature``), and the
settings given reach it as one dict ``knobs`` (name -> value, by the table's one name).
"""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Any, Optional

import typer

from ..fields import FIELDS, Knob

_KW = inspect.Parameter.KEYWORD_ONLY


def command_knobs(command: str) -> list[Knob]:
    """The table's settings with a flag on ``command`` (project, timeline or sweep), in the table's order."""
    if command == "sweep":
        return [f for f in FIELDS if f.knob and f.sweep_help is not None]
    return [f for f in FIELDS if f.knob and f.help is not None and command in f.commands]


def knob_option(f: Knob, command: str, default: Any = None):
    """The typer option of ``f`` on ``command``: sweep flags take comma lists and ranges (text)."""
    if command == "sweep":
        return typer.Option(None, f.cli_flag, help=f.sweep_help)
    d = f.default if default is None else default
    return typer.Option(d, f.bool_flag or f.cli_flag, help=f.help or None)


def _annotation(f: Knob, command: str, default: Any):
    if command == "sweep":
        return Optional[str]
    d = f.default if default is None else default
    return f.type if d is not None else Optional[f.type]


# ---- the sweep's axis flags (shared with ``rlsim plot``)
AXIS_FLAGS = {f.name: knob_option(f, "sweep") for f in command_knobs("sweep")}


def with_knobs(command: str, defaults: dict | None = None):
    """Decorator: ``fn(knobs, **own)`` -> a typer command whose flags are the table's (for ``command``) and ``fn``'s
    own; ``defaults`` overrides a flag's default on this command (``timeline --lag`` is 1)."""
    defaults = defaults or {}

    def deco(fn):
        knobs = command_knobs(command)
        names = [f.name for f in knobs]
        hints = typing.get_type_hints(fn)  # the own parameters' types, resolved where ``fn`` is defined
        own = [p.replace(kind=_KW, annotation=hints.get(n, p.annotation))
               for n, p in inspect.signature(fn).parameters.items() if n != "knobs"]
        params = [inspect.Parameter(f.name, _KW, default=knob_option(f, command, defaults.get(f.name)),
                                    annotation=_annotation(f, command, defaults.get(f.name))) for f in knobs]
        params += own

        @functools.wraps(fn)
        def wrapper(**kwargs):
            given = {n: kwargs.pop(n) for n in names if n in kwargs}
            return fn(given, **kwargs)

        wrapper.__signature__ = inspect.Signature(params)
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        del wrapper.__wrapped__  # typer reads __signature__, not the wrapped function's parameters
        return wrapper

    return deco


__all__ = ["AXIS_FLAGS", "command_knobs", "knob_option", "with_knobs"]
