"""Sweeps: a grid of scenarios x seeds, run in parallel, cached by scenario hash, aggregated.

``sweep(...)`` is the Python face of ``rlsim sweep``; both take the same things::

    from rlsim import sweep
    df = sweep(workload="rl-zero-8b", k=[1, 3, 5, 7], draft_quality=[0.6, 0.7, 0.8, 0.9], seeds=3)
    df = sweep("grid.yaml", out="results.parquet")

Axes are ``build_scenario`` arguments (``model``, ``workload``, ``hardware``, ``gpus``, ``k``, ``drafter``,
``acceptance_length``, ``draft_quality``, ``draft_quality_decay``, ``lag``, ``gen_gpus``, ``train_gpus``,
``tensor_parallel_size``, ``response_median_tokens``, ``max_new_tokens``, the workload overrides such as
``num_prompts_per_step``...), plus ``split`` ("48:16" = 48 generation + 16 training GPUs, one value so
the pair moves together). A scalar fixes a field, a list makes an axis; the grid is their cartesian
product (times ``points``, a list of partial scenarios, when given). Each grid point runs once per seed.

**Draft quality** is the per-token conditional acceptance rate ``c`` of a geometric model (optionally
decaying with draft position: ``c_i = c * decay**i``). It is a property of the draft alone, so it maps
to an acceptance length at every k (``AL(k) = 1 + c + c^2 + ... + c^k`` without decay) and quality and
k can be swept independently. ``acceptance_length`` instead fixes AL at the given k.

Results: a tidy DataFrame, one row per grid point (``per_seed=True``: one per point and seed) with the
scenario's descriptors (workload, model, hardware, gpus, k, drafter, draft_quality, lag, ...), ``n_seeds``,
and for every metric ``m`` (``speedup_generation``, ``speedup_step``, ``ar_step_s``, ``spec_step_s``, the
phases ``ar_<phase>_s``/``spec_<phase>_s``, acceptance lengths, ...) the mean ``m``, the standard deviation
``m_std`` and a 95% Student-t confidence interval of the mean ``m_ci_lo``..``m_ci_hi`` (NaN with one seed).

Cache: every simulated (scenario, seed) is written as it finishes to ``<cache_dir>/v1/<hash>.json``, the
hash covering the whole resolved scenario plus a fingerprint of the simulator's code and catalog, so an
interrupted sweep resumes where it stopped and a code or catalog change never reuses stale results.
Default cache dir: ``$RLSIM_CACHE_DIR`` or ``.rlsim-cache/``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import itertools
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Iterable

from ..errors import ConfigurationError, RlsimError
from ..fields import ALIASES, AXIS_TYPES, DESCRIPTORS, SPEC_ONLY_FIELDS, canonical_name, describe_scenario  # noqa: F401
from ..inputs import as_values
from .seeds import seed_list
from .yamlio import read_yaml_mapping

CACHE_FORMAT = "v1"

# Axes (AXIS_TYPES, ALIASES) and the descriptor columns of a sweep table (DESCRIPTORS) come from the field table
# (rlsim/fields.py). Any other build_scenario keyword also works (``--set name=v1,v2`` on the command line).
HEADLINE = ["speedup_generation", "speedup_step", "ar_step_s", "spec_step_s", "acceptance_length"]
_YAML_RESERVED = {"base", "grid", "points", "seeds", "workers", "executor", "address", "cache_dir", "out",
                  "per_seed", "skip_invalid", "use_cache"}
_RUN_KEYS = {"seeds", "workers", "executor", "address", "cache_dir", "out", "per_seed", "skip_invalid", "use_cache"}


# --------------------------------------------------------------------------------------------- grid
def canonical_axis(name: str) -> str:
    return canonical_name(name)


def load_grid_file(path: str | os.PathLike) -> dict:
    """Read a YAML sweep file: top-level scenario fields (scalar = fixed, list = axis), or the sections
    ``base`` (fixed fields), ``grid`` (axes), ``points`` (list of partial scenarios); plus run settings
    (``seeds``, ``workers``, ``executor``, ``address``, ``cache_dir``, ``out``)."""
    p = Path(path)
    raw = read_yaml_mapping(p, "sweep grid file", " (axis: [values], ...)")
    for sec in ("base", "grid"):
        if sec in raw and not isinstance(raw[sec], dict):
            raise ConfigurationError(f"sweep grid file {p}: `{sec}` must be a mapping of field: value(s)")
    if "points" in raw and not (isinstance(raw["points"], list) and all(isinstance(x, dict) for x in raw["points"])):
        raise ConfigurationError(f"sweep grid file {p}: `points` must be a list of mappings (partial scenarios)")
    axes: dict[str, Any] = {}
    axes.update(raw.get("base") or {})
    axes.update({k: v for k, v in raw.items() if k not in _YAML_RESERVED})
    axes.update(raw.get("grid") or {})
    out = {"axes": axes, "points": raw.get("points")}
    try:
        out.update(run_settings({k: raw[k] for k in _RUN_KEYS if k in raw}))
    except ConfigurationError as e:
        raise ConfigurationError(f"sweep grid file {p}: {e}") from None
    return out


def run_settings(s: dict) -> dict:
    """Run settings of a sweep (grid-file keys or ``sweep()`` arguments) checked by type; None = not given."""
    from ..inputs import MAX_WORKERS, as_bool, as_str, check_count

    out = {}
    for key, v in s.items():
        if v is None:
            continue
        if key in ("per_seed", "skip_invalid", "use_cache"):
            out[key] = as_bool(key, v)
        elif key == "workers":
            out[key] = check_count("workers", v, 1, MAX_WORKERS, what="(local worker processes)")
        elif key == "executor":
            out[key] = as_str(key, v, "process, serial, ray")
            if out[key] not in ("process", "serial", "ray"):
                raise ConfigurationError(f"executor = {v!r}; allowed: process, serial, ray")
        elif key in ("address", "cache_dir", "out"):
            out[key] = as_str(key, v, "a path" if key != "address" else "a Ray address (auto, HOST:PORT, ray://HOST:PORT)")
        elif key == "seeds":
            seed_list(v)
            out[key] = v
        else:
            out[key] = v
    return out




def _split_pair(value) -> tuple[int, int]:
    s = str(value).replace("+", ":").replace("/", ":")
    try:
        g, t = (int(x) for x in s.split(":"))
    except ValueError:
        raise ConfigurationError(f"split = {value!r}; expected GEN:TRAIN GPUs, e.g. 48:16") from None
    return g, t


def scenario_kwargs(point: dict) -> dict:
    """A grid point (axis names as the user wrote them) -> ``build_scenario`` keyword arguments."""
    kw = {}
    for name, v in point.items():
        name = canonical_axis(name)
        if name == "split":
            kw["gen_gpus"], kw["train_gpus"] = _split_pair(v)
        elif name == "seed":
            raise ConfigurationError("`seed` is not an axis: give seeds=N (a count) or seeds=[...] (a list)")
        else:
            kw[name] = v
    return kw


def expand_grid(axes: dict, points: list[dict] | None = None) -> list[dict]:
    """Cartesian product of the axes (x ``points``); later keys vary fastest. Returns user-named points."""
    from ..inputs import GRID_WHY, MAX_GRID_RUNS

    axes = {canonical_axis(k): as_values(v, f"axis {k!r}") for k, v in axes.items()}
    names = list(axes)
    size = math.prod(len(v) for v in axes.values()) * max(len(points or []), 1)
    if size > MAX_GRID_RUNS:  # refused before the product is built
        shape = " x ".join(f"{len(v)} {n}" for n, v in axes.items()) + (f" x {len(points)} points" if points else "")
        raise ConfigurationError(f"the grid has {size:,} points ({shape}); allowed: up to {MAX_GRID_RUNS:,} runs ({GRID_WHY})")
    out, seen = [], set()
    for p in (points or [{}]):
        p = {canonical_axis(k): v for k, v in p.items()}
        for combo in itertools.product(*(axes[n] for n in names)):
            pt = dict(zip(names, combo))
            pt.update(p)
            key = json.dumps(pt, sort_keys=True, default=str)
            if key not in seen:
                seen.add(key)
                out.append(pt)
    return out


def describe_point(point: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items()) or "(workload defaults)"


# ------------------------------------------------------------------------------------------- hashing
# sources no result depends on: the command line, the reports, the sweep machinery itself and the recipe importers
_FINGERPRINT_SKIP = ("cli/", "report/", "studies/sweep.py", "studies/nemo_rl.py", "studies/configread.py",
                     "studies/verl.py")


@functools.lru_cache(maxsize=None)
def code_fingerprint() -> str:
    """Hash of the simulator's source (everything a result depends on) and of the catalog files."""
    from .. import __version__
    from ..catalog.loader import catalog_dir

    h = hashlib.sha256(f"rlsim {__version__} cache {CACHE_FORMAT}".encode())
    pkg = Path(__file__).resolve().parents[1]
    for f in sorted(pkg.rglob("*.py")):
        rel = f.relative_to(pkg).as_posix()
        if rel.startswith("calibration/") or rel.startswith(_FINGERPRINT_SKIP):
            continue
        h.update(rel.encode())
        h.update(f.read_bytes())
    for folder in ("hardware_profiles", "engine_profiles", "workloads", "calibration"):
        try:
            d = catalog_dir(folder)
        except RlsimError:
            continue
        for f in sorted(p for p in d.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml", ".csv", ".json")):
            h.update(f.relative_to(d).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def scenario_hash(scenario) -> str:
    """Stable hash of a resolved scenario (seed included) and of the code/catalog that simulate it."""
    payload = json.dumps(scenario.model_dump(mode="json"), sort_keys=True, default=str)
    return hashlib.sha256((code_fingerprint() + payload).encode()).hexdigest()


def default_cache_dir() -> Path:
    return Path(os.environ.get("RLSIM_CACHE_DIR") or ".rlsim-cache")


class ResultCache:
    """One JSON file per simulated scenario, written atomically (safe to interrupt)."""

    def __init__(self, root: str | os.PathLike | None):
        self.root = None if root is None else Path(root) / CACHE_FORMAT

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        if self.root is None:
            return None
        p = self._path(key)
        try:
            return json.loads(p.read_text())
        except (OSError, ValueError):
            return None

    def put(self, key: str, record: dict) -> None:
        if self.root is None:
            return
        p = self._path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record, default=_json_default))
        os.replace(tmp, p)


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    return str(o)


# --------------------------------------------------------------------------------------- one scenario
# Fields that only the speculative side of a projection reads (rlsim/fields.py): the autoregressive step of two
# scenarios that differ only in these is the same simulation (same lengths, same seed, no draft), so a sweep over
# k x quality x drafter computes it once per (workload, seed) and reuses it.
_SPEC_ONLY_FIELDS = SPEC_ONLY_FIELDS
_AR_MEMO: dict[str, Any] = {}
_AR_MEMO_MAX = 256


def _ar_key(scenario) -> str:
    d = scenario.model_dump(mode="json")
    for f in _SPEC_ONLY_FIELDS:
        d.pop(f, None)
    d.get("workload", {}).pop("speculation", None)
    return json.dumps(d, sort_keys=True, default=str)


def memo_ar_step(setup):
    """The synchronous autoregressive step of ``setup``, memoised per ``_ar_key`` (the ``ar_step`` a sweep passes to
    ``pipeline.run.project``): scenarios that differ only in their speculation share one AR simulation. Async
    scenarios (lag >= 1) simulate both modes together and do not call it."""
    from ..pipeline.run import sync_ar_step

    key = _ar_key(setup.scenario)
    hit = _AR_MEMO.get(key)
    if hit is None:
        hit = sync_ar_step(setup)
        if len(_AR_MEMO) >= _AR_MEMO_MAX:
            _AR_MEMO.pop(next(iter(_AR_MEMO)))
        _AR_MEMO[key] = hit
    return hit


def _tune_worker_malloc() -> None:
    """Worker processes allocate and free large numpy arrays per scenario; glibc's default thresholds
    return that memory to the kernel and fault it back in each time (about a fifth of the CPU time went
    to the kernel). Keep it in the heap instead. Linux/glibc only; RLSIM_NO_MALLOPT=1 skips it."""
    if os.environ.get("RLSIM_NO_MALLOPT") or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def run_scenario(scenario, reuse_ar: bool = True) -> dict:
    """Simulate one scenario; returns a flat record (picklable, JSON-able). User errors become ``error``."""
    from ..pipeline.run import project

    t0 = time.perf_counter()
    try:
        res = project(scenario, ar_step=memo_ar_step if reuse_ar else None)
    except RlsimError as e:
        return {"error": str(e)}
    row = res.summary_row()
    sp = res.speedup
    if "exposed_generation" in sp:
        row["speedup_exposed_generation"] = sp["exposed_generation"]
    for prefix, r in (("ar", res.baseline), ("spec", res.speculative)):
        g = r.generation
        row[f"{prefix}_gen_tail_s"] = g.tail_s
        row[f"{prefix}_gen_iterations_max"] = g.iterations_max
        row[f"{prefix}_gen_preemptions"] = g.preemptions
        flat = {}
        for k, v in r.extra.items():  # scalars of the step's extras, one level of nesting flattened
            if isinstance(v, dict):
                flat.update({k2: v2 for k2, v2 in v.items() if k2 not in flat})
            else:
                flat[k] = v
        for k, v in flat.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v)):
                row[f"{prefix}_x_{k}"] = float(v)
    sc = res.scenario
    info = {"gen_gpus": sc.get("gen_gpus_resolved"), "train_gpus": sc.get("train_gpus_resolved"),
            "n_replicas": sc.get("n_replicas"), "drafter_network": sc.get("drafter_network"),
            "kernel_costs": res.calibration}
    return {"metrics": {k: float(v) for k, v in row.items()}, "info": info, "notes": list(res.notes),
            "sim_s": time.perf_counter() - t0}


def _run_batch(scenarios: list) -> list[dict]:
    _tune_worker_malloc()
    return [run_scenario(s) for s in scenarios]


def _descriptors(scenario) -> dict:
    return describe_scenario(scenario)


# ---------------------------------------------------------------------------------------- statistics
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t_critical_975(dof: int) -> float:
    """Two-sided 95% Student-t critical value (table to 30 degrees of freedom, then 1.96 + 2.4/dof)."""
    if dof < 1:
        return float("nan")
    return _T975[dof - 1] if dof <= 30 else 1.959964 + 2.4 / dof


def aggregate(per_seed, metrics: list[str] | None = None):
    """Per-seed rows -> one row per grid point: mean, std and 95% CI of every metric, ``n_seeds``."""
    import numpy as np
    import pandas as pd

    df = per_seed
    if "seed" not in df.columns:
        return df
    metrics = metrics or metric_columns(df)
    keys = [c for c in df.columns if c not in metrics and c not in ("seed", "error", "sim_s", "cached")]
    rows = []
    for _, g in df.groupby("point", sort=True, dropna=False):
        first = g.iloc[0]
        row = {c: first[c] for c in keys}
        ok = g[g["error"].isna()] if "error" in g.columns else g
        row["n_seeds"] = len(ok)
        if "error" in g.columns:
            errs = g["error"].dropna()
            row["error"] = errs.iloc[0] if len(errs) else None
        n = len(ok)
        tcrit = t_critical_975(n - 1)
        for m in metrics:
            x = ok[m].to_numpy(dtype=float)
            x = x[np.isfinite(x)]
            mean = float(x.mean()) if len(x) else float("nan")
            std = float(x.std(ddof=1)) if len(x) > 1 else float("nan")
            half = tcrit * std / math.sqrt(len(x)) if len(x) > 1 else float("nan")
            row[m], row[f"{m}_std"], row[f"{m}_ci_lo"], row[f"{m}_ci_hi"] = mean, std, mean - half, mean + half
        rows.append(row)
    out = pd.DataFrame(rows)
    means = [m for m in metrics if m in out.columns]
    stats = [f"{m}_{s}" for m in means for s in ("std", "ci_lo", "ci_hi")]
    return out[[c for c in out.columns if c not in means and c not in stats] + means + stats]


def metric_columns(df) -> list[str]:
    """The metric columns of a sweep table: numeric, not a scenario descriptor nor a statistic."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    skip = set(DESCRIPTORS) | {"point", "seed", "error", "sim_s", "cached", "n_seeds", "scenario_hash"}
    skip |= set(df.attrs.get("axes", ()))
    cols = []
    for c in df.columns:
        if c in skip or c.endswith(("_std", "_ci_lo", "_ci_hi")):
            continue
        if is_numeric_dtype(df[c]) and not is_bool_dtype(df[c]):
            cols.append(c)
    return cols


def is_aggregated(df) -> bool:
    return "n_seeds" in df.columns or "seed" not in df.columns


# ------------------------------------------------------------------------------------------ executors
def _progress(enabled: bool, total: int, done: int, label: str):
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                 TextColumn("eta"), TimeRemainingColumn(), console=Console(stderr=True), disable=not enabled,
                 transient=False)
    task = p.add_task(label, total=total, completed=done)
    return p, task


def _mp_context():
    import multiprocessing as mp

    method = os.environ.get("RLSIM_MP_START")
    if method:
        return mp.get_context(method)
    if sys.platform.startswith("linux"):
        # fork: workers inherit the imported simulator (fast start) and notebooks/unguarded scripts work
        return mp.get_context("fork")
    return mp.get_context()


def _execute_process(todo: list, workers: int, on_result) -> None:
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ex = ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context(), initializer=_tune_worker_malloc)
    try:
        # keep a bounded window of work in flight so an interrupt loses little and memory stays flat
        it = iter(todo)
        pending = {}
        for key, sc in itertools.islice(it, workers * 4):
            pending[ex.submit(run_scenario, sc)] = key
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                key = pending.pop(f)
                on_result(key, f.result())
                nxt = next(it, None)
                if nxt is not None:
                    pending[ex.submit(run_scenario, nxt[1])] = nxt[0]
    except BaseException:
        ex.shutdown(wait=False, cancel_futures=True)
        raise
    ex.shutdown(wait=True)


def _execute_serial(todo: list, on_result) -> None:
    for key, sc in todo:
        on_result(key, run_scenario(sc))


def _execute_ray(todo: list, address: str | None, on_result, batch: int | None = None) -> None:
    try:
        import ray
    except ImportError:
        raise ConfigurationError("--executor ray needs Ray: pip install 'rlsim[distributed]' (or pip install ray)") from None
    started = False
    if not ray.is_initialized():
        kw = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if address:
            kw["address"] = address
        try:
            ray.init(**kw)
        except Exception as e:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError...
            first = " ".join(str(e).split(". ")[0].split()) or type(e).__name__
            raise ConfigurationError(f"executor ray, address {address or '(local)'}: cannot start or reach Ray ({first}); "
                                     "start a cluster (ray start --head) or leave the address out for a local Ray "
                                     "instance") from None
        started = True
    try:
        cpus = max(int(ray.cluster_resources().get("CPU", 1)), 1)
        # a few scenarios per task amortise Ray's per-task overhead; ~4 tasks per CPU keep progress live
        size = batch or max(1, min(16, len(todo) // (cpus * 4) or 1))
        remote = ray.remote(num_cpus=1, max_retries=1)(_run_batch)
        chunks = [todo[i:i + size] for i in range(0, len(todo), size)]
        refs = {remote.remote([sc for _, sc in ch]): ch for ch in chunks}
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    for (key, _), rec in zip(refs[ref], ray.get(ref)):
                        on_result(key, rec)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
    finally:
        if started:
            ray.shutdown()


# ---------------------------------------------------------------------------------------------- sweep
def sweep(grid: dict | str | os.PathLike | None = None, *, seeds: int | Iterable[int] | None = None,
          points: list[dict] | None = None, executor: str | None = None, workers: int | None = None,
          address: str | None = None, cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
          progress: bool | None = None, out: str | os.PathLike | None = None, per_seed: bool | None = None,
          skip_invalid: bool | None = None, **axes):
    """Run a grid of scenarios x seeds and return a tidy pandas DataFrame (see the module docstring).

    ``grid``: a mapping ``{axis: value or [values]}`` or a YAML file path; ``**axes`` add or override axes
    (``k=[1, 3, 5]``). ``seeds``: a count (seeds 0..N-1) or a list (default 1). ``executor``: ``"process"``
    (default: a local process pool of ``workers``, default all cores), ``"serial"`` (in this process) or
    ``"ray"`` (``address`` of a cluster, else a local Ray instance). ``out``: ``.csv`` or ``.parquet`` file.
    ``skip_invalid``: record impossible points in an ``error`` column instead of raising.
    """
    import pandas as pd

    spec: dict[str, Any] = {"axes": {}, "points": None}
    if isinstance(grid, (str, os.PathLike)):
        spec = load_grid_file(grid)
    elif isinstance(grid, dict):
        spec["axes"] = dict(grid)
    elif grid is not None:
        raise ConfigurationError(f"grid must be a mapping or a YAML path, got {type(grid).__name__}")
    spec["axes"].update(axes)
    if points is not None:
        spec["points"] = points
    if spec["points"] is not None and not (isinstance(spec["points"], (list, tuple))
                                           and all(isinstance(x, dict) for x in spec["points"])):
        raise ConfigurationError(f"points = {spec['points']!r}; allowed: a list of mappings (partial scenarios)")
    from ..inputs import as_bool, check_output_file, write_or_keep

    given = run_settings(dict(seeds=seeds, executor=executor, workers=workers, address=address, cache_dir=cache_dir,
                              out=out, per_seed=per_seed, skip_invalid=skip_invalid))

    def setting(name, default):  # an argument wins over the grid file's setting
        return given[name] if name in given else spec.get(name, default)

    seeds_ = seed_list(setting("seeds", 1))
    executor = setting("executor", "process")
    workers = setting("workers", None)
    address = setting("address", None)
    out = setting("out", None)
    per_seed = setting("per_seed", False)
    skip_invalid = setting("skip_invalid", False)
    use_cache = spec.get("use_cache", True) and as_bool("use_cache", use_cache)
    cache_root = Path(setting("cache_dir", None) or default_cache_dir()) if use_cache else None
    if progress is not None:
        progress = as_bool("progress", progress)
    else:
        progress = sys.stderr.isatty()
    if address is not None and executor != "ray":
        warnings.warn(f"address {address!r} is ignored: it applies to executor ray, the executor is {executor}",
                      RuntimeWarning, stacklevel=2)
    if workers is not None and executor != "process":
        warnings.warn(f"workers = {workers} is ignored: it applies to executor process, the executor is {executor}",
                      RuntimeWarning, stacklevel=2)
    if executor == "ray":
        _check_ray_address(address)
    if out is not None:  # before any simulation: a folder, a device or a read-only place is refused now
        check_output_file(out, "out", (".csv", ".txt", "", ".parquet", ".pq"), create_parents=True)

    grid_points = expand_grid(spec["axes"], spec["points"])
    from ..inputs import GRID_WHY, MAX_GRID_RUNS

    if len(grid_points) * len(seeds_) > MAX_GRID_RUNS:
        raise ConfigurationError(f"{len(grid_points):,} grid points x {len(seeds_)} seeds = "
                                 f"{len(grid_points) * len(seeds_):,} runs; allowed: up to {MAX_GRID_RUNS:,} ({GRID_WHY})")
    from ..scenario import build_scenario

    # 1) resolve every (point, seed) up front: impossible points fail before any simulation runs
    rows: list[dict] = []
    jobs: dict[str, Any] = {}
    for i, pt in enumerate(grid_points):
        kw = scenario_kwargs(pt)
        for s in seeds_:
            row = {"point": i, **{canonical_axis(k): v for k, v in pt.items()}, "seed": s}
            try:
                sc = build_scenario(**kw, seed=s)
            except RlsimError as e:
                msg = str(e)
                if not skip_invalid:
                    raise ConfigurationError(f"grid point {describe_point(pt)}: {msg}") from None
                row["error"] = msg
                rows.append(row)
                continue
            key = scenario_hash(sc)
            row.update(_descriptors(sc))
            row["scenario_hash"] = key
            row["_scenario"] = sc
            rows.append(row)
            jobs.setdefault(key, sc)

    # 2) what the cache already holds
    cache = ResultCache(cache_root)
    results: dict[str, dict] = {}
    for key in jobs:
        rec = cache.get(key)
        if rec is not None and "metrics" in rec:
            results[key] = rec
    todo = [(k, sc) for k, sc in jobs.items() if k not in results]
    n_cached = len(jobs) - len(todo)

    # 3) simulate the rest
    first_error: list[str] = []

    def on_result(key: str, rec: dict) -> None:
        results[key] = rec
        if "error" in rec:
            if not skip_invalid and not first_error:
                first_error.append(key)
                raise ConfigurationError(f"scenario {_point_of(rows, key)}: {rec['error']}")
        else:
            cache.put(key, rec)
        prog.advance(task)

    label = f"sweep ({n_cached} cached)" if n_cached else "sweep"
    prog, task = _progress(bool(progress) and len(jobs) > 0, len(jobs), n_cached, label)
    nworkers = int(workers) if workers else (os.cpu_count() or 1)
    with prog:
        if todo:
            if executor == "ray":
                _execute_ray(todo, address, on_result)
            elif executor == "serial" or nworkers <= 1 or len(todo) == 1:
                _execute_serial(todo, on_result)
            else:
                with warnings.catch_warnings():  # Python >= 3.12 warns about fork in threaded processes
                    warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
                    _execute_process(todo, min(nworkers, len(todo)), on_result)

    # 4) the table
    out_rows = []
    for row in rows:
        row = dict(row)
        row.pop("_scenario", None)
        key = row.get("scenario_hash")
        rec = results.get(key) if key else None
        if rec is not None and "error" in rec:
            row["error"] = rec["error"]
        elif rec is not None:
            row.update({k: v for k, v in rec["info"].items()})
            row.update(rec["metrics"])
            row["sim_s"] = rec.get("sim_s")
        out_rows.append(row)
    # metric columns in a fixed order (headline first, then by name), whatever order the results arrived in
    names = {m for rec in results.values() for m in rec.get("metrics", {})}
    metric_names = [m for m in HEADLINE if m in names] + sorted(names - set(HEADLINE))
    df = pd.DataFrame(out_rows)
    if "error" not in df.columns:
        df["error"] = None
    df = _order_columns(df, [canonical_axis(k) for k in spec["axes"]], metric_names)
    if not per_seed:
        df = aggregate(df, [m for m in metric_names if m in df.columns])
        df = df.drop(columns=[c for c in ("scenario_hash",) if c in df.columns])
        if df["error"].isna().all():
            df = df.drop(columns=["error"])
    elif df["error"].isna().all():
        df = df.drop(columns=["error"])
    df.attrs["axes"] = [canonical_axis(k) for k in spec["axes"]]
    df.attrs["n_simulated"] = len(todo)
    df.attrs["n_cached"] = n_cached
    if out:
        written: list[Path] = []
        write_or_keep(Path(out), lambda p: written.append(save_results(df, p)), "out")
        df.attrs["out"] = str(written[-1])
    return df


def _check_ray_address(address: str | None) -> None:
    """A Ray address that cannot work is refused before any simulation: a malformed one, or HOST:PORT with
    nothing listening (``auto`` is checked by Ray itself, at once)."""
    import re
    import socket

    if address in (None, "auto", "local"):
        return
    m = re.fullmatch(r"(?:ray://)?(\[[^\]]+\]|[^:/\s]+):(\d{1,5})", address)
    if not m:
        raise ConfigurationError(f"address = {address!r}; allowed: auto, local, HOST:PORT or ray://HOST:PORT")
    host, port = m.group(1).strip("[]"), int(m.group(2))
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as e:
        raise ConfigurationError(f"address = {address!r}: no Ray cluster reachable there ({e.strerror or e}); start one "
                                 "(ray start --head) or leave the address out for a local Ray instance") from None


def _point_of(rows: list[dict], key: str) -> str:
    for r in rows:
        if r.get("scenario_hash") == key:
            return describe_point({k: v for k, v in r.items() if k not in ("point", "scenario_hash", "_scenario")
                                   and k not in DESCRIPTORS}) + f" (workload {r.get('workload')}, k={r.get('k')})"
    return key[:12]


def _order_columns(df, axis_names: list[str], metric_names: list[str] = ()):
    """Columns in a fixed order: point, axes, descriptors, seed, metrics (headline first, then by name), the rest
    by name: never the order in which results happened to arrive."""
    first = ["point"] + [a for a in axis_names if a in df.columns]
    desc = [c for c in DESCRIPTORS if c in df.columns and c not in first]
    rest_front = [c for c in ("seed",) if c in df.columns]
    head = [c for c in HEADLINE if c in df.columns]
    used = set(first) | set(desc) | set(rest_front) | set(head)
    metrics = [c for c in metric_names if c in df.columns and c not in used]
    used |= set(metrics)
    tail = sorted(c for c in df.columns if c not in used)
    return df[first + desc + rest_front + head + metrics + tail]


# --------------------------------------------------------------------------------------------- files
def save_results(df, path: str | os.PathLike) -> Path:
    """Write ``.csv`` or ``.parquet``. Parquet needs pyarrow (``pip install 'rlsim[parquet]'``); without it
    the table goes to a ``.csv`` next to it and a warning says so."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix.lower() in (".parquet", ".pq"):
        if importlib.util.find_spec("pyarrow") is None and importlib.util.find_spec("fastparquet") is None:
            alt = p.with_suffix(".csv")
            warnings.warn(f"parquet needs pyarrow (pip install 'rlsim[parquet]'); wrote CSV instead: {alt}",
                          RuntimeWarning, stacklevel=2)
            df.to_csv(alt, index=False)
            return alt
        clean = df.copy()
        for c in clean.columns:  # object columns mixing None and numbers confuse parquet writers
            if clean[c].dtype == object:
                clean[c] = clean[c].map(lambda v: None if v is None else str(v) if not isinstance(v, (str, bool)) else v)
        clean.to_parquet(p, index=False)
        return p
    if p.suffix.lower() in (".csv", ".txt", ""):
        df.to_csv(p, index=False)
        return p
    raise ConfigurationError(f"--out {p}: unknown format {p.suffix!r}; allowed: .csv, .parquet")


def load_results(path: str | os.PathLike):
    """Read a sweep table written by ``sweep(out=...)`` / ``rlsim sweep --out``."""
    import pandas as pd

    p = Path(path)
    if p.is_dir():
        raise ConfigurationError(f"{p}: is a folder; allowed: a results file (.csv or .parquet) written by rlsim sweep")
    if (not p.is_file() and p.suffix.lower() in (".parquet", ".pq") and p.with_suffix(".csv").is_file()
            and importlib.util.find_spec("pyarrow") is None and importlib.util.find_spec("fastparquet") is None):
        # `sweep --out x.parquet` without pyarrow wrote x.csv (and said so): the next command reads that
        warnings.warn(f"{p} does not exist; reading {p.with_suffix('.csv')}, which rlsim sweep wrote instead "
                      "(parquet needs pip install 'rlsim[parquet]')", RuntimeWarning, stacklevel=2)
        p = p.with_suffix(".csv")
    if not p.is_file():
        raise ConfigurationError(f"{p}: no such results file")
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(p)
        else:
            df = pd.read_csv(p)
    except ImportError:
        raise ConfigurationError(f"{p}: reading parquet needs pyarrow (pip install 'rlsim[parquet]')") from None
    except UnicodeDecodeError as e:
        raise ConfigurationError(f"{p}: not a UTF-8 text file (byte {e.start}); allowed: a results file written by "
                                 "rlsim sweep") from None
    except Exception as e:  # noqa: BLE001 - pandas/pyarrow raise many types for a file that is not a table
        what = " ".join(str(e).split())[:160] or type(e).__name__
        raise ConfigurationError(f"{p}: not a readable results table ({what}); allowed: a .csv or .parquet file "
                                 "written by rlsim sweep") from None
    missing = [c for c in ("point",) if c not in df.columns]
    if missing or not any(c in df.columns for c in HEADLINE):
        raise ConfigurationError(f"{p}: not a sweep results table (columns {', '.join(map(str, df.columns[:6])) or 'none'}"
                                 f"{'...' if len(df.columns) > 6 else ''}); allowed: a file written by rlsim sweep (with "
                                 f"columns point and {' / '.join(HEADLINE[:2])})")
    return df


__all__ = ["sweep", "aggregate", "expand_grid", "load_grid_file", "save_results", "load_results", "scenario_hash",
           "t_critical_975", "AXIS_TYPES"]
