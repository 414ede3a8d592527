"""What the config importers share (``--from-nemo-rl``, ``--from-verl``): merging, ``${...}`` interpolation
(OmegaConf references, ``oc.select`` and the arithmetic resolvers NeMo-RL registers), the used / not modelled /
ignored report, and how it is printed (grouped and short; every key with ``--verbose``)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigurationError

MISSING = object()
_INNER = re.compile(r"\$\{([^${}]*)\}")  # an innermost interpolation (no ${ or braces inside)
_OPEN, _CLOSE = "\x00", "\x01"  # an interpolation left unresolved, hidden from the outer pass


@dataclass
class ConfigMapping:
    """A config read into ``build_scenario`` keyword arguments, with what was read and what was not."""

    kwargs: dict[str, Any]  # build_scenario keyword arguments
    used: list[str]  # dotted keys that set something
    ignored: list[str]  # dotted leaf keys rlsim does not model and that do not change its step time
    values: dict[str, Any] = field(default_factory=dict)  # used key -> value
    notes: list[str] = field(default_factory=list)
    source: str = ""
    not_modelled: dict[str, Any] = field(default_factory=dict)  # keys set to a value that changes step time, unmodelled
    kind: str = "NeMo-RL recipe"
    files: list[str] = field(default_factory=list)  # every file read (the config, then its parents / defaults)
    unknown_model: str | None = None  # the config's model id when it is not in the catalog
    engine_note_needed: bool = False

    def to_dict(self) -> dict:
        return {"recipe": self.source, "kind": self.kind, "files": list(self.files),
                "scenario_kwargs": dict(self.kwargs), "used": dict(self.values), "not_modelled": dict(self.not_modelled),
                "ignored": list(self.ignored), "notes": list(self.notes)}

    def summary(self) -> str:
        return (f"used {len(self.used)} keys, ignored {len(self.ignored)}"
                + (f", not modelled {len(self.not_modelled)}" if self.not_modelled else ""))


# ------------------------------------------------------------------------------------- dictionaries
def deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def get(d: dict, dotted: str, default=None):
    cur: Any = d
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


def set_dotted(d: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    cur = d
    for p in parts[:-1]:
        if not isinstance(cur.get(p), dict):
            cur[p] = {}
        cur = cur[p]
    cur[parts[-1]] = value


def leaves(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out += leaves(v, key + ".")
        else:
            out.append(key)
    return out


def _scalar(text: str):
    import yaml

    try:
        v = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return v


def _num(v) -> float | None:
    if isinstance(v, str):
        v = _scalar(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return v


_ARITH = {"mul": math.prod, "max": max, "min": min, "add": sum}


def resolve_interpolations(d: dict) -> dict:
    """Resolve OmegaConf-style interpolations: ``${a.b}`` (whole value: the node itself; inside a string: its
    text), ``${oc.select:a.b,default}`` (verl) and NeMo-RL's arithmetic resolvers ``${mul:x,y}``, ``${max:...}``,
    ``${min:...}``, ``${add:...}``, ``${div:x,y}`` over numbers; relative references (``${.x}``) and other resolvers
    stay as written. A node referenced many times is resolved once and shared (an interpolation "bomb" -- nine
    references to nine references... -- stays the size of the file)."""
    memo: dict = {}

    def lookup(path: str, depth: int):
        key = ("ref", path)
        if key not in memo:
            target = get(d, path, MISSING)
            memo[key] = MISSING if target is MISSING else res(target, depth + 1)
        return memo[key]

    def evaluate(expr: str, depth: int):
        expr = expr.strip()
        if ":" not in expr:
            return MISSING if not expr or expr.startswith(".") else lookup(expr, depth)
        name, _, rest = expr.partition(":")
        args = [a.strip() for a in rest.split(",")]
        name = name.strip()
        if name == "oc.select":
            if not args or not args[0] or args[0].startswith("."):
                return MISSING
            v = lookup(args[0], depth)
            if v is MISSING:
                return _scalar(",".join(args[1:])) if len(args) > 1 else None
            return v
        nums = [_num(a) for a in args]
        if not args or any(x is None for x in nums):
            return MISSING
        if name in _ARITH:
            v = _ARITH[name](nums)
        elif name == "div" and len(nums) == 2 and nums[1] != 0:
            v = nums[0] / nums[1]
        else:
            return MISSING
        return int(v) if float(v).is_integer() and all(isinstance(x, int) for x in nums) else v

    def interp(s: str, depth: int):
        for _ in range(64):  # nesting depth of one string
            m = _INNER.search(s)
            if m is None:
                break
            v = evaluate(m.group(1), depth)
            if m.span() == (0, len(s)):  # the whole value
                return s.replace(_OPEN, "${").replace(_CLOSE, "}") if v is MISSING else v
            if v is MISSING or isinstance(v, (dict, list)):
                rep = _OPEN + m.group(1) + _CLOSE
            else:
                rep = "null" if v is None else str(v)
            s = s[:m.start()] + rep + s[m.end():]
        return s.replace(_OPEN, "${").replace(_CLOSE, "}")

    def res(v, depth=0):
        if isinstance(v, (dict, list)):
            if id(v) in memo:
                return memo[id(v)]
            out = {k: res(x, depth) for k, x in v.items()} if isinstance(v, dict) else [res(x, depth) for x in v]
            memo[id(v)] = out
            return out
        if isinstance(v, str) and depth < 10 and "${" in v:
            return interp(v, depth)
        return v

    return res(d)


# ------------------------------------------------------------------------------------------ values
def as_int(what: str, key: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or int(v) != v:
        raise ConfigurationError(f"{what}: `{key}` = {v!r}; expected an integer")
    return int(v)


def as_bool(what: str, key: str, v) -> bool:
    """A config's true/false: a string such as "false" must not read as True."""
    if not isinstance(v, bool):
        raise ConfigurationError(f"{what}: `{key}` = {v!r}; expected true or false")
    return v


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# ------------------------------------------------------------------------------------------ printing
def group_of(key: str) -> str:
    """A key's group in the report: its section, two levels deep under the big ``policy`` / ``actor_rollout_ref``
    sections (``policy.generation``, ``actor_rollout_ref.rollout``)."""
    parts = key.split(".")
    if parts[0] in ("policy", "actor_rollout_ref", "critic", "reward_model") and len(parts) > 2:
        return ".".join(parts[:2])
    return parts[0]


def grouped(keys) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k in keys:
        out.setdefault(group_of(k), []).append(k)
    return out


def _short(v) -> str:
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def print_mapping(m: ConfigMapping, console=None, verbose: bool = False, scenario=None, hardware_flag=None) -> None:
    """What the importer read (grouped by section), what it could not model, what it ignored (counts per section;
    every key with ``verbose``), the GPU it assumed, and its notes."""
    from ..report.tables import make_console
    from rich.markup import escape

    console = console or make_console()
    parents = f" (+ {', '.join(m.files[1:])})" if len(m.files) > 1 else ""
    console.print(f"[bold]{m.kind} {escape(m.source)}[/bold]{escape(parents)}: {m.summary()}")
    for grp, keys in grouped(m.used).items():
        if verbose:
            for key in keys:
                console.print(f"  used  {escape(key)} = {escape(_short(m.values[key]))}")
        else:
            body = ", ".join(f"{k[len(grp) + 1:] or k}={_short(m.values[k])}" for k in keys)
            console.print(f"  used  {escape(grp)}: {escape(body)}")
    if m.not_modelled:
        body = ", ".join(f"{k} = {_short(v)}" for k, v in m.not_modelled.items())
        console.print(f"[yellow]  not modelled (may change step time): {escape(body)}[/yellow]")
    if m.ignored:
        if verbose:
            console.print("[dim]  ignored (no effect on rlsim's step time):[/dim]")
            for grp, keys in grouped(m.ignored).items():
                console.print(f"[dim]    {escape(grp)}: {escape(', '.join(k[len(grp) + 1:] or k for k in keys))}[/dim]")
        else:
            body = ", ".join(f"{g} {len(ks)}" for g, ks in grouped(m.ignored).items())
            console.print(f"[dim]  ignored (no effect on rlsim's step time), keys per section: {escape(body)}; "
                          f"--verbose lists them[/dim]")
    if scenario is not None and hardware_flag is None:
        console.print(f"[dim]  {escape(assumed_gpu_note(m, scenario))}[/dim]")
    for n in m.notes:
        console.print(f"[dim]  note: {escape(n)}[/dim]")


def assumed_gpu_note(m: ConfigMapping, scenario) -> str:
    """The GPU a projection assumed for a config that names none (NeMo-RL and verl configs never do)."""
    from ..catalog import list_hardware, load_hardware

    w = scenario.workload
    hw = load_hardware(w.hardware)
    text = (f"GPU: the {m.kind} names none; assumed {hw.name} ({hw.gpu}, the hardware of workload {w.name}); pass "
            f"--hardware {' | '.join(list_hardware())} for another")
    gpn = m.values.get("cluster.gpus_per_node", m.values.get("trainer.n_gpus_per_node"))
    if is_number(gpn) and int(gpn) > hw.gpus_per_node:
        fits = [h for h in list_hardware() if load_hardware(h).gpus_per_node == int(gpn)]
        text += (f"; the config's {int(gpn)} GPUs per node match {', '.join(fits) or 'no catalog GPU'}, not "
                 f"{hw.name}'s {hw.gpus_per_node}-GPU nodes (the GPU count is kept)")
    return text


__all__ = ["ConfigMapping", "MISSING", "as_bool", "as_int", "assumed_gpu_note", "deep_merge", "get", "grouped", "is_number",
           "leaves", "print_mapping", "resolve_interpolations", "set_dotted"]
