"""``rlsim sweep``: a grid of scenarios x seeds (flags or a YAML file) -> a tidy table (CSV/parquet).

Every axis flag takes a comma-separated list (``--k 1,3,5,7``) or an inclusive range
(``--k 1..7``, ``--draft-quality 0.5..0.9..0.1``); a single value fixes the field.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from ..errors import ConfigurationError
from .common import emit_json, user_errors
from .knobs import with_knobs  # the axis flags: the field table's (rlsim/fields.py), shared with ``rlsim plot``


GRID_OPT = typer.Option(None, "--grid", help="YAML sweep file (axes, base, points, seeds...); flags override it")
SET_OPT = typer.Option(None, "--set", help="FIELD=v1,v2 for any other scenario field (repeatable)")
SEEDS_OPT = typer.Option(None, "--seeds", help="a count N (seeds 0..N-1, default 1) or a list 0,4,7")
EXECUTOR_OPT = typer.Option(None, "--executor", help="process (default) | ray | serial")
ADDRESS_OPT = typer.Option(None, "--address", help="Ray cluster address (default: a local Ray instance)")
WORKERS_OPT = typer.Option(None, "--workers", help="local worker processes (default: all cores)")
CACHE_OPT = typer.Option(None, "--cache-dir", help="result cache (default $RLSIM_CACHE_DIR or .rlsim-cache/)")
NO_CACHE_OPT = typer.Option(False, "--no-cache", help="neither read nor write the cache")


def _range(text: str, typ):
    from ..inputs import GRID_WHY, MAX_GRID_RUNS

    parts = text.split("..")
    if len(parts) not in (2, 3):
        raise ConfigurationError(f"range {text!r}: expected START..STOP or START..STOP..STEP")

    def too_many(n):  # counted before the values are made: 1..10^9 must not allocate gigabytes first
        if n > MAX_GRID_RUNS:
            raise ConfigurationError(f"range {text!r} has {n:,} values; allowed: up to {MAX_GRID_RUNS:,} runs ({GRID_WHY})")

    if typ is int:
        a, b = int(parts[0]), int(parts[1])
        step = int(parts[2]) if len(parts) == 3 else 1
        if step <= 0:
            raise ConfigurationError(f"range {text!r}: step must be > 0")
        r = range(a, b + 1, step)
        too_many(len(r))
        return list(r)
    a, b = float(parts[0]), float(parts[1])
    if len(parts) != 3:
        raise ConfigurationError(f"range {text!r}: a float range needs a step, e.g. 0.5..0.9..0.1")
    step = float(parts[2])
    if not all(math.isfinite(x) for x in (a, b, step)):
        raise ConfigurationError(f"range {text!r}: start, stop and step must be finite numbers")
    if step <= 0:
        raise ConfigurationError(f"range {text!r}: step must be > 0")
    n = int(math.floor((b - a) / step + 1e-9)) + 1
    too_many(n)
    return [round(a + i * step, 10) for i in range(max(n, 0))]


def parse_values(text: str, typ=str, name: str = "value") -> list:
    """``"1,3,5"`` -> [1, 3, 5]; ``"1..7"`` -> 1..7; ``"0.5..0.9..0.1"`` -> 0.5, 0.6, ... 0.9."""
    import yaml

    out = []
    for item in (x.strip() for x in str(text).split(",")):
        if not item:
            continue
        try:
            if ".." in item and typ in (int, float):
                out.extend(_range(item, typ))
            elif typ is bool:
                v = yaml.safe_load(item)
                if not isinstance(v, bool):
                    raise ValueError(item)
                out.append(v)
            elif typ in (int, float):
                out.append(typ(item))
            elif typ is str:
                out.append(item)
            else:
                out.append(yaml.safe_load(item))
        except ValueError:
            tname = {int: "an integer", float: "a number", bool: "true/false"}.get(typ, "a value")
            raise ConfigurationError(f"--{name.replace('_', '-')} {text!r}: {item!r} is not {tname}") from None
    if not out:
        raise ConfigurationError(f"--{name.replace('_', '-')} {text!r}: no values")
    from ..inputs import GRID_WHY, MAX_GRID_RUNS

    if len(out) > MAX_GRID_RUNS:
        raise ConfigurationError(f"--{name.replace('_', '-')}: {len(out):,} values; allowed: up to {MAX_GRID_RUNS:,} runs "
                                 f"({GRID_WHY})")
    return out


def collect_axes(flags: dict, sets: list[str] | None) -> dict:
    """Axis flags (comma lists) and ``--set FIELD=v1,v2`` -> {axis: [values]}."""
    from ..studies.sweep import AXIS_TYPES, canonical_axis

    axes = {}
    for name, text in flags.items():
        if text is not None:
            axes[name] = parse_values(text, AXIS_TYPES.get(name, str), name)
    for s in sets or []:
        if "=" not in s:
            raise ConfigurationError(f"--set {s!r}: expected FIELD=v1,v2")
        field, vals = s.split("=", 1)
        field = canonical_axis(field)
        axes[field] = parse_values(vals, AXIS_TYPES.get(field, object), field)
    return axes


def parse_seeds(text: str | None):
    if text is None:
        return None
    t = text.strip()
    if "," in t or ".." in t:
        return parse_values(t, int, "seeds")
    try:
        return int(t)
    except ValueError:
        raise ConfigurationError(f"--seeds {text!r}: expected a count (3) or a list (0,4,7)") from None


def run_sweep_from_flags(grid: Optional[Path], axes: dict, seeds: Optional[str], executor: Optional[str],
                         address: Optional[str], workers: Optional[int], cache_dir: Optional[Path], no_cache: bool,
                         defaults: dict | None = None, **kw):
    """Flags over a grid file: every setting of the file (seeds, executor, address, workers, cache_dir, out,
    per_seed, skip_invalid, use_cache) is honoured unless a flag gives it."""
    from ..studies.sweep import load_grid_file, sweep

    base: dict = {}
    spec: dict = {}
    if grid is not None:
        spec = load_grid_file(grid)
        base = dict(spec["axes"])
    for name, v in (defaults or {}).items():
        if name not in base and name not in axes:
            base[name] = v
    base.update(axes)
    for key in ("out", "per_seed", "skip_invalid"):  # flags left at their default: the file's setting
        if not kw.get(key) and spec.get(key) is not None:
            kw[key] = spec[key]
    return sweep(base, points=spec.get("points"), seeds=parse_seeds(seeds) if seeds else spec.get("seeds"),
                 executor=executor or spec.get("executor"), address=address or spec.get("address"),
                 workers=workers or spec.get("workers"), cache_dir=cache_dir or spec.get("cache_dir"),
                 use_cache=not no_cache and spec.get("use_cache", True), **kw)


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep_cmd)


@user_errors
@with_knobs("sweep")  # one flag per sweep axis of the field table (comma lists and ranges)
def sweep_cmd(
    knobs: dict,
    grid: Optional[Path] = GRID_OPT,
    set_: Optional[list[str]] = SET_OPT,
    seeds: Optional[str] = SEEDS_OPT,
    executor: Optional[str] = EXECUTOR_OPT,
    address: Optional[str] = ADDRESS_OPT,
    workers: Optional[int] = WORKERS_OPT,
    out: Optional[Path] = typer.Option(None, "--out", help="results file: .csv or .parquet"),
    cache_dir: Optional[Path] = CACHE_OPT,
    no_cache: bool = NO_CACHE_OPT,
    per_seed: bool = typer.Option(False, "--per-seed", help="one row per (point, seed) instead of mean and CI"),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="record impossible points instead of failing"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="progress bar on stderr"),
    as_json: bool = typer.Option(False, "--json", help="print the table as JSON records"),
    rows: int = typer.Option(40, "--rows", help="rows of the summary table to print (0: none)"),
):
    """A grid of scenarios x seeds: mean and 95% CI per point, saved to CSV/parquet, cached, resumable."""
    import warnings

    flags = dict(knobs)
    from ..inputs import check_count, check_output_file

    axes = collect_axes(flags, set_)
    if out is not None:  # before any simulation
        check_output_file(out, "--out", (".csv", ".parquet", ".pq", ".txt", ""), create_parents=True)
    if workers is not None:
        check_count("--workers", workers, 1, 1024, what="(local worker processes)")
    if rows < 0:
        raise ConfigurationError(f"--rows = {rows}; allowed: >= 0 (0 = no table)")
    if grid is None and not axes:
        raise ConfigurationError("nothing to sweep: give axis flags (e.g. --workload rl-zero-8b --k 1,3,5) or --grid FILE")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        df = run_sweep_from_flags(grid, axes, seeds, executor, address, workers, cache_dir, no_cache,
                                  progress=progress, out=out, per_seed=per_seed, skip_invalid=skip_invalid)
    for w in caught:
        typer.echo(f"warning: {w.message}", err=True)
    if as_json:
        emit_json(df.to_dict(orient="records"))
        return
    if rows:
        sweep_table(df, rows)
    msg = f"{len(df)} rows; simulated {df.attrs.get('n_simulated', 0)}, from cache {df.attrs.get('n_cached', 0)}"
    if df.attrs.get("out"):
        msg += f"; wrote {df.attrs['out']}"
    typer.echo(msg, err=True)


def sweep_table(df, max_rows: int = 40) -> None:
    from ..report.tables import make_console
    from rich.table import Table

    def varies(c):
        return c in df.columns and df[c].astype(str).nunique() > 1

    axes = [a for a in df.attrs.get("axes", []) if varies(a)]  # fixed fields: in the title instead
    fixed = [f"{a}={df[a].iloc[0]}" for a in df.attrs.get("axes", []) if a in df.columns and not varies(a)]
    for c in ("k", "workload"):
        if c not in axes and varies(c):
            axes.insert(0, c)
    cols = axes + [c for c in ("seed", "n_seeds") if c in df.columns]
    t = Table(title=f"sweep: {len(df)} rows" + (f" (first {max_rows})" if len(df) > max_rows else "")
              + (f"; {', '.join(fixed)}" if fixed else ""), title_justify="left")
    for c in cols:
        t.add_column(c)
    metrics = [m for m in ("acceptance_length", "speedup_generation", "speedup_step", "ar_step_s", "spec_step_s")
               if m in df.columns]
    labels = {"acceptance_length": "AL", "speedup_generation": "gen speedup", "speedup_step": "step speedup",
              "ar_step_s": "AR step s", "spec_step_s": "spec step s"}
    ci = "n_seeds" in df.columns and (df["n_seeds"] > 1).any()
    for m in metrics:
        t.add_column(labels[m] + (" ±95%CI" if ci and m.startswith("speedup") else ""), justify="right")
    if "error" in df.columns:
        t.add_column("error")

    def fmt(row, m):
        v = row[m]
        if v != v:  # NaN
            return "-"
        s = f"{v:.3f}" if m.startswith(("speedup", "acceptance")) else f"{v:.1f}"
        lo, hi = row.get(f"{m}_ci_lo"), row.get(f"{m}_ci_hi")
        if m.startswith("speedup") and lo is not None and lo == lo:
            s += f" ±{(hi - lo) / 2:.3f}"
        return s

    for _, row in df.head(max_rows).iterrows():
        cells = [str(row[c]) for c in cols] + [fmt(row, m) for m in metrics]
        if "error" in df.columns:
            cells.append("" if row["error"] is None or row["error"] != row["error"] else str(row["error"])[:80])
        t.add_row(*cells)
    make_console().print(t)
