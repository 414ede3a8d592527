"""Input validation at the boundary, in one place.

- ``typed_arguments``: a decorator that checks the type of every keyword argument of a Python entry point
  (``build_scenario``: what ``project_scenario``, ``sweep`` and the CLI all go through) against its
  annotation, and refuses conflicting arguments, before any work: ``k="3"`` is a ``ConfigurationError``
  naming the argument, the value and what is allowed, never a ``TypeError`` from deep inside.
- Upper bounds, with the reason, on every count that drives work (``MAX_*`` below, ``check_count``).
- Output paths checked before the work starts (``check_output_file`` / ``check_output_dir``), and a
  write that still fails after the work keeps the results elsewhere and says where (``write_or_keep``).
- Strict JSON (``to_strict_json`` / ``dumps_strict``): NaN and infinities become ``null``.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import os
import tempfile
import typing
from pathlib import Path
from typing import Any, Callable

from .errors import ConfigurationError

# ------------------------------------------------------------------------------------ upper bounds
# Each count below multiplies the work of a run; beyond the bound a run takes hours or exhausts memory
# (the reason is part of every message).
MAX_LAG = 8
LAG_WHY = ("the asynchronous pipeline keeps up to lag + 1 rollout batches in flight and, with in-flight weight "
           "updates or partial rollouts, simulates lag + 2 warm-up steps; "
           "an 8B workload at lag 8 already takes minutes, and NeMo-RL's async GRPO runs use 1-2")
MAX_SEEDS = 1000
SEEDS_WHY = "each seed is one more full simulation"
MAX_DRIFT_STEPS = 1000
DRIFT_STEPS_WHY = "each step simulates three full rollouts (autoregressive, offline draft, online draft)"
MAX_RUN_STEPS = 10_000_000  # --steps of an asynchronous run only multiplies the steady-state step (cost per run)
MAX_GRID_RUNS = 100_000
GRID_WHY = ("every run (grid point x seed) is a full simulation of 0.1 s to minutes; split a larger study into "
            "several sweeps (the cache makes them resumable)")
MAX_TIMELINE_REPLICAS = 64
MAX_TIMELINE_STEPS = 20
TIMELINE_WHY = "each row or step is drawn; more is unreadable and every drawn replica keeps a full trace"
MAX_ASYNC_STEPS = 100
ASYNC_STEPS_WHY = "each async step simulates a whole rollout batch"
MAX_OPTIMIZE_SAMPLES = 100
OPTIMIZE_SAMPLES_WHY = "each sample simulates every fixed k and the schedule (2 x (k_max + 2) rollouts)"
MAX_WORKERS = 1024
MAX_GENERATION_REPLICAS = 16384
REPLICAS_WHY = ("every generation replica is simulated, idle ones too: 16,384 replicas already take tens of seconds "
                "(2^20 GPUs of an 8B model took minutes for 4 sequences)")

# Below this per-sequence acceptance spread the Beta quadrature of speculation/variable_acceptance.py no longer keeps
# the mean acceptance: measured on rl-zero-8b at k = 3, a spread of 0.01 realised AL 3.57 for a target of 2.95,
# 1e-4 realised 1.0 (no draft accepted); from 0.05 (the smallest value validated, docs/adaptive.md) it holds.
MIN_SEQUENCE_SPREAD = 0.05
SPREAD_WHY = ("smaller spreads are not computed correctly yet: the per-sequence Beta quadrature loses the mean "
              "acceptance (0.01 gave AL 3.57 for a target of 2.95, 1e-4 gave 1.0)")

MAX_TURNS = 64
TURNS_WHY = "each turn is one more prefill-decode round of every trajectory"
MAX_KV_LINK_GBPS = 100_000.0  # 100 Tb/s per GPU: 10x an NVLink 5 port; a larger number is a unit mistake
MAX_KV_LINK_LATENCY_MS = 10_000.0  # 10 s: beyond any network path between data centres
MAX_TOOL_LATENCY_S = 86_400.0
MAX_TOOL_OUTPUT_TOKENS = 1 << 20


def check_disaggregation(opts: dict) -> None:
    """The disaggregation and multi-turn options, each in range, none that another would leave unused."""
    pg = opts.get("prefill_gpus")
    if pg is not None:
        check_count("--prefill-gpus", pg, 1, 1 << 20, what="GPUs of the prefill pool (taken from the generation GPUs)")
    gbps, lat = opts.get("kv_link_gbps"), opts.get("kv_link_latency_ms")
    if gbps is not None:
        check_number("--kv-link-gbps", gbps, 0.0, MAX_KV_LINK_GBPS, lo_open=True,
                     what="Gbit/s per GPU between the prefill and decode pools")
    if lat is not None:
        check_number("--kv-link-latency-ms", lat, 0.0, MAX_KV_LINK_LATENCY_MS, what="one-way latency of a KV transfer")
    if pg is None and (gbps is not None or lat is not None):
        flag = "--kv-link-gbps" if gbps is not None else "--kv-link-latency-ms"
        raise ConfigurationError(f"{flag} describes the link of a prefill pool, which is not given (it would be ignored); "
                                 "allowed: together with --prefill-gpus N")
    turns = opts.get("turns")
    if turns is not None:
        check_count("--turns", turns, 1, MAX_TURNS, TURNS_WHY)
    if opts.get("tool_latency_s") is not None:
        check_number("--tool-latency-s", opts["tool_latency_s"], 0.0, MAX_TOOL_LATENCY_S)
    if opts.get("tool_output_tokens") is not None:
        check_number("--tool-output-tokens", opts["tool_output_tokens"], 1.0, float(MAX_TOOL_OUTPUT_TOKENS))


def check_count(flag: str, value, lo: int, hi: int, why: str = "", what: str = "") -> int:
    """An integer in lo..hi (bool refused), else a ConfigurationError naming the flag, value, range and why."""
    v = as_int(flag, value, what or "an integer")
    if not lo <= v <= hi:
        reason = f" ({why})" if why and v > hi else ""
        raise ConfigurationError(f"{flag} = {v}; allowed: {lo}..{hi:,}{' ' + what if what else ''}{reason}")
    return v


def check_number(flag: str, value, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
                 what: str = "") -> float:
    """A finite number within [lo, hi] (``lo_open``: > lo), else a ConfigurationError."""
    v = as_float(flag, value)
    bad = (lo is not None and (v < lo or (lo_open and v == lo))) or (hi is not None and v > hi)
    if bad or not math.isfinite(v):
        lo_s = "" if lo is None else (f"> {lo:g}" if lo_open else f">= {lo:g}")
        hi_s = "" if hi is None else f"<= {hi:g}"
        rng = " and ".join(s for s in (lo_s, hi_s) if s) or "any"
        raise ConfigurationError(f"{flag} = {value!r}; allowed: a finite number {rng}{' (' + what + ')' if what else ''}")
    return v


# ------------------------------------------------------------------------------------ typed values
def _tname(v) -> str:
    """``'3'`` -> "a str", ``1`` -> "an int": the value's type with its article."""
    n = type(v).__name__
    return ("an " if n[:1].lower() in "aeiou" else "a ") + n


def as_int(name: str, v, allowed: str = "an integer") -> int:
    import numpy as np

    if isinstance(v, (bool, np.bool_)):
        raise ConfigurationError(f"{name} = {v!r} (a bool); allowed: {allowed}")
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)) and math.isfinite(v) and float(v).is_integer():
        return int(v)
    raise ConfigurationError(f"{name} = {v!r} ({'not a whole number' if isinstance(v, (float, np.floating)) else _tname(v)}); "
                             f"allowed: {allowed}")


def as_float(name: str, v, allowed: str = "a number") -> float:
    import numpy as np

    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ConfigurationError(f"{name} = {v!r} ({_tname(v)}); allowed: {allowed}")
    return float(v)


def as_bool(name: str, v) -> bool:
    import numpy as np

    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    raise ConfigurationError(f"{name} = {v!r} ({_tname(v)}); allowed: true or false")


def as_str(name: str, v, allowed: str = "a name or a path") -> str:
    if isinstance(v, os.PathLike):
        v = os.fspath(v)
    if isinstance(v, str):
        if "\x00" in v:  # the OS refuses such a path with a ValueError deep inside
            raise ConfigurationError(f"{name} = {v!r} contains a NUL character; allowed: {allowed}")
        return v
    raise ConfigurationError(f"{name} = {v!r} ({_tname(v)}); allowed: {allowed}")


def _is_seq(v) -> bool:
    import numpy as np

    return isinstance(v, (list, tuple, np.ndarray))


def coerce(name: str, value, ann, finite: bool = True):
    """``value`` checked (and lightly normalised: numpy scalars, integral floats, paths) against the type
    annotation ``ann``; anything else is a ConfigurationError naming ``name``, the value and the type allowed."""
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", typing.Union)):
        if value is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return coerce(name, value, rest[0], finite)
        return value  # a real union: left to the callee
    if value is None:
        raise ConfigurationError(f"{name} = None; allowed: {_describe(ann)}")
    if ann is bool:
        return as_bool(name, value)
    if ann is int:
        return as_int(name, value)
    if ann is float:
        v = as_float(name, value)
        if finite and not math.isfinite(v):
            raise ConfigurationError(f"{name} = {value!r}; allowed: a finite number")
        return v
    if ann is str:
        return as_str(name, value)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigurationError(f"{name} = {value!r}; allowed: {', '.join(map(str, args))}")
        return value
    if ann is list or origin is list:
        if not _is_seq(value):
            raise ConfigurationError(f"{name} = {value!r} ({_tname(value)}); allowed: {_describe(ann)}")
        inner = args[0] if args else None
        out = list(value.tolist() if hasattr(value, "tolist") else value)
        if inner is float:
            return [coerce(f"{name}[{i}]", x, float) for i, x in enumerate(out)]
        if typing.get_origin(inner) is tuple:
            rows = []
            for i, row in enumerate(out):
                if not _is_seq(row):
                    raise ConfigurationError(f"{name}[{i}] = {row!r}; allowed: {_describe(inner)}")
                rows.append(tuple(as_int(f"{name}[{i}]", x, _describe(inner)) for x in row))
            return rows
        return out
    if ann is dict or origin is dict:
        from collections.abc import Mapping

        if not isinstance(value, Mapping):
            raise ConfigurationError(f"{name} = {value!r} ({_tname(value)}); allowed: a mapping")
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise ConfigurationError(f"{name} has a key {bad[0]!r} ({_tname(bad[0])}); allowed: names (str)")
        return dict(value)
    return value


def _describe(ann) -> str:
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if ann is int:
        return "an integer"
    if ann is float:
        return "a number"
    if ann is bool:
        return "true or false"
    if ann is str:
        return "a name or a path"
    if origin is tuple:
        return f"({', '.join(_describe(a).removeprefix('an ').removeprefix('a ') for a in args)})"
    if ann is list or origin is list:
        return f"a list of {_describe(args[0]).removeprefix('an ').removeprefix('a ')}s" if args else "a list"
    if ann is dict or origin is dict:
        return "a mapping"
    if origin is typing.Literal:
        return ", ".join(map(str, args))
    rest = [a for a in args if a is not type(None)]
    return " or ".join(_describe(a) for a in rest) + (" or None" if type(None) in args else "")


def typed_arguments(fn: Callable | None = None, *, extra_types: Callable[[str], Any] | None = None,
                    not_finite_ok: tuple[str, ...] = (), pre: Callable | None = None, post: Callable | None = None):
    """Decorator: every argument checked against ``fn``'s annotations (``extra_types(name)`` gives the type
    of a ``**kwargs`` entry, None = unchecked) before ``fn`` runs. ``pre(arguments)`` may refuse
    combinations; ``post(result, arguments)`` may refuse what only the resolved result shows. Floats
    must be finite except those in ``not_finite_ok`` (their own range check names what is allowed)."""
    if fn is None:
        return lambda f: typed_arguments(f, extra_types=extra_types, not_finite_ok=not_finite_ok, pre=pre, post=post)
    sig = inspect.signature(fn)
    hints: dict | None = None

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        nonlocal hints
        if hints is None:
            hints = typing.get_type_hints(fn)
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as e:
            raise ConfigurationError(f"{fn.__name__}(): {e}; pass scenario fields as keywords (see help({fn.__name__}))") from None
        given = {}
        for name, value in bound.arguments.items():
            p = sig.parameters[name]
            if p.kind is inspect.Parameter.VAR_KEYWORD:
                for k, v in value.items():
                    ann = extra_types(k) if extra_types else None
                    value[k] = v if ann is None or v is None else coerce(k, v, ann)
                    given[k] = value[k]
                continue
            ann = hints.get(name)
            if ann is not None and not (value is None and p.default is None):
                value = coerce(name, value, ann, finite=name not in not_finite_ok)
                bound.arguments[name] = value
            given[name] = value
        if pre is not None:
            pre(given)
        out = fn(*bound.args, **bound.kwargs)
        if post is not None:
            post(out, given)
        return out

    return wrapper


def as_values(v, name: str = "an axis") -> list:
    """One value, or a list (tuple, range, array) of values, as a list; an empty or too long list, a set or a mapping
    refused naming ``name``."""
    if isinstance(v, (list, tuple, range)) or (hasattr(v, "tolist") and not isinstance(v, (str, bytes))):
        n = len(v)
        if not n:
            raise ConfigurationError(f"{name} has no values (empty list)")
        if n > MAX_GRID_RUNS:  # counted before the values are made (range(10**9) is cheap, its list is not)
            raise ConfigurationError(f"{name} has {n:,} values; allowed: up to {MAX_GRID_RUNS:,} runs ({GRID_WHY})")
        return list(v.tolist()) if hasattr(v, "tolist") else list(v)
    if isinstance(v, (set, frozenset, dict)):
        raise ConfigurationError(f"{name} = {v!r} (a {type(v).__name__}); allowed: one value or a list of values")
    return [v]


# ------------------------------------------------------------------------------------ output paths
def _existing_ancestor(p: Path) -> Path:
    a = p.absolute().parent
    while not a.exists() and a != a.parent:
        a = a.parent
    return a


def _probe_folder(folder: Path, flag: str, shown) -> None:
    try:
        fd, probe = tempfile.mkstemp(prefix=".rlsim-write-probe-", dir=folder)
    except OSError as e:
        raise ConfigurationError(f"{flag} {shown}: cannot write into folder {str(folder)!r} ({e.strerror}); "
                                 "allowed: a path in a writable folder") from None
    os.close(fd)
    os.unlink(probe)


def check_output_file(path, flag: str, suffixes: tuple[str, ...] | None = None, create_parents: bool = False) -> Path:
    """Refuse, before any work, an output file that cannot be written: a folder, a device (``/dev/full``),
    a missing or read-only folder, an unknown format. ``create_parents``: missing folders will be made."""
    p = Path(as_str(flag, path, "a file path"))
    if suffixes is not None and p.suffix.lower() not in suffixes:
        shown = ", ".join(s for s in suffixes if s) or "(none)"
        raise ConfigurationError(f"{flag} {p}: unknown format {p.suffix!r}; allowed: {shown}")
    if p.is_dir():
        raise ConfigurationError(f"{flag} {p}: is a folder; allowed: a file path (a new file, or a file to overwrite)")
    if p.exists() and not p.is_file():
        raise ConfigurationError(f"{flag} {p}: not a regular file (a device or a pipe: writes to it fail or vanish); "
                                 "allowed: a regular file path")
    parent = p.absolute().parent
    if parent.exists() and not parent.is_dir():
        raise ConfigurationError(f"{flag} {p}: {str(p.parent)!r} is not a folder")
    if not parent.exists() and not create_parents:
        raise ConfigurationError(f"{flag} {p}: folder {str(p.parent)!r} does not exist")
    if p.exists():
        try:
            with open(p, "ab"):
                pass
        except OSError as e:
            raise ConfigurationError(f"{flag} {p}: cannot write ({e.strerror}); allowed: a writable file") from None
    else:
        anc = _existing_ancestor(p)
        if not anc.is_dir():
            raise ConfigurationError(f"{flag} {p}: {str(anc)!r} is not a folder")
        _probe_folder(anc, flag, p)
    return p


def check_output_dir(path, flag: str) -> Path:
    """Refuse, before any work, an output folder that cannot be written (a file, read-only, a device)."""
    p = Path(as_str(flag, path, "a folder path"))
    if p.exists() and not p.is_dir():
        raise ConfigurationError(f"{flag} {p}: exists and is not a folder; allowed: a folder (made if missing)")
    _probe_folder(p if p.is_dir() else _existing_ancestor(p), flag, p)
    return p


def write_or_keep(path, write: Callable[[Path], Any], flag: str) -> Path:
    """``write(path)``; if that fails (disk full, folder gone, permissions changed during the run), the
    results are written to a temporary file instead and a ConfigurationError says where they are."""
    p = Path(path)
    existed = p.exists()
    try:
        write(p)
        return p
    except OSError as e:
        reason = e.strerror or str(e)
    if not existed and p.is_file():
        try:
            p.unlink()  # no half-written file left behind
        except OSError:
            pass
    fd, alt = tempfile.mkstemp(prefix="rlsim-kept-", suffix=p.suffix)
    os.close(fd)
    try:
        write(Path(alt))
    except OSError as e2:
        raise ConfigurationError(f"{flag} {p}: cannot write ({reason}); writing the results to {alt} failed too "
                                 f"({e2.strerror or e2})") from None
    err = ConfigurationError(f"{flag} {p}: cannot write ({reason}); the results were kept in {alt}")
    err.kept = Path(alt)
    raise err


def write_dir_or_keep(folder, write: Callable[[Path], Any], flag: str) -> Path:
    """``write(folder)`` (files into a folder, made if missing); if that fails after the work, the files go to a
    new temporary folder instead and a ConfigurationError says where."""
    p = Path(folder)
    try:
        p.mkdir(parents=True, exist_ok=True)
        write(p)
        return p
    except OSError as e:
        reason = e.strerror or str(e)
    alt = Path(tempfile.mkdtemp(prefix="rlsim-kept-"))
    try:
        write(alt)
    except OSError as e2:
        raise ConfigurationError(f"{flag} {p}: cannot write ({reason}); writing the results to {alt} failed too "
                                 f"({e2.strerror or e2})") from None
    err = ConfigurationError(f"{flag} {p}: cannot write ({reason}); the results were kept in {alt}")
    err.kept = alt
    raise err


# ------------------------------------------------------------------------------------ YAML size
# A YAML alias is a reference, not a copy: nine lists of nine aliases nested nine deep ("billion laughs")
# load in microseconds, but anything that walks the result visits 9^9 values. Refuse such a file at once.
MAX_YAML_VALUES = 200_000


def expanded_size(obj, limit: int = MAX_YAML_VALUES) -> int:
    """Number of values a walk over ``obj`` visits (shared sub-trees counted each time they are reached),
    computed in time proportional to the distinct nodes; stops counting past ``limit``."""
    memo: dict[int, int] = {}

    def size(o) -> int:
        if not isinstance(o, (dict, list)):
            return 1
        key = id(o)
        if key in memo:
            return memo[key]
        memo[key] = limit + 1  # a cycle (a self-referencing alias) counts as too big
        n = 1
        for v in (o.values() if isinstance(o, dict) else o):
            n += size(v)
            if n > limit:
                break
        memo[key] = n
        return n

    return size(obj)


def check_yaml_size(obj, what: str, path, error: type = ConfigurationError) -> None:
    """Refuse a loaded YAML document whose aliases expand to more than MAX_YAML_VALUES values."""
    try:
        n = expanded_size(obj)
    except RecursionError:
        raise error(f"{what} {path}: nested too deeply to read") from None
    if n > MAX_YAML_VALUES:
        raise error(f"{what} {path}: its YAML aliases expand to more than {MAX_YAML_VALUES:,} values (a 'billion "
                    "laughs' file, or an alias inside itself?); allowed: a file without runaway aliases")


# ------------------------------------------------------------------------------------ strict JSON
def to_strict_json(o):
    """``o`` with every NaN / infinity replaced by None, numpy scalars and arrays made Python, tuples
    made lists, pydantic models dumped: ``json.dumps(..., allow_nan=False)`` accepts the result."""
    import numpy as np

    if isinstance(o, dict):
        return {str(k) if not isinstance(k, (str, int, float, bool)) or k is None else k: to_strict_json(v)
                for k, v in o.items()}
    if isinstance(o, (list, tuple, set)):
        return [to_strict_json(v) for v in o]
    if isinstance(o, np.ndarray):
        return [to_strict_json(v) for v in o.tolist()]
    if isinstance(o, (bool, np.bool_)):
        return bool(o)
    if isinstance(o, (int, np.integer)):
        return int(o)
    if isinstance(o, (float, np.floating)):
        f = float(o)
        return f if math.isfinite(f) else None
    if o is None or isinstance(o, str):
        return o
    if hasattr(o, "model_dump"):
        return to_strict_json(o.model_dump())
    if isinstance(o, Path):
        return str(o)
    try:
        import pandas as pd

        if o is pd.NA or o is pd.NaT:
            return None
        if isinstance(o, pd.Timestamp):
            return o.isoformat()
    except ImportError:  # pragma: no cover
        pass
    return str(o)


def dumps_strict(obj, indent: int | None = 2) -> str:
    return json.dumps(to_strict_json(obj), indent=indent, allow_nan=False)


__all__ = ["MAX_LAG", "MAX_SEEDS", "MAX_DRIFT_STEPS", "MAX_GRID_RUNS", "MAX_TIMELINE_REPLICAS", "MAX_TIMELINE_STEPS",
           "as_values", "check_count", "check_number", "coerce", "typed_arguments",
           "check_output_file", "check_output_dir", "write_or_keep", "to_strict_json", "dumps_strict"]
