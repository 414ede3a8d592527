"""Plots of sweep results (matplotlib, Agg: no display needed; PNG, SVG or PDF by file extension).

Every function takes a sweep table (``rlsim.sweep(...)`` or ``load_results(path)``; per-seed tables are
aggregated first), returns a ``matplotlib.figure.Figure`` and never touches pyplot's global state, so
it works the same in scripts, the CLI (``rlsim plot ...``) and notebooks (a Figure displays inline)::

    from rlsim import sweep
    from rlsim.report import plots
    df = sweep(workload=["rl-zero-8b", "rl-think-8b"], k=[1, 2, 3, 5, 7], draft_quality=[0.6, 0.7, 0.8, 0.9], seeds=3)
    plots.save(plots.speedup_vs_k(df), "speedup_vs_k.png")
    plots.save(plots.heatmap(df), "heatmap.svg")

- ``speedup_vs_k``: rollout (generation) and end-to-end (step) speedup vs k, one line per draft quality
  (or acceptance length / drafter), 95% CI error bars; one row of panels per workload.
- ``heatmap``: speedup over (k x draft quality), one panel per metric and workload.
- ``phase_bars``: stacked step time by phase, autoregressive vs speculative, for each value of ``by``.
- ``speedup_vs_gpus`` / ``speedup_vs_lag`` (``speedup_vs(df, x)`` in general).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

METRIC_LABELS = {
    "speedup_generation": "rollout (generation) speedup",
    "speedup_step": "end-to-end step speedup",
    "speedup_exposed_generation": "exposed-generation speedup",
    "ar_step_s": "autoregressive step (s)",
    "spec_step_s": "speculative step (s)",
    "acceptance_length": "acceptance length",
}
AXIS_LABELS = {
    "k": "k (num_speculative_tokens)", "draft_quality": "draft quality (per-token acceptance rate)",
    "acceptance_length_input": "acceptance length", "gpus": "GPUs", "lag": "policy lag (max_trajectory_age_steps)",
    "gen_gpus": "generation GPUs", "train_gpus": "training GPUs", "drafter": "drafter",
    "speculative_num_steps": "draft tree steps (depth)", "speculative_eagle_topk": "draft tree topk",
    "speculative_num_draft_tokens": "draft tree tokens verified", "tree_rank_decay": "tree rank decay",
    "retrieval_tokens": "retrieved tokens",
}
HUE_LABELS = {"draft_quality": "quality", "acceptance_length_input": "AL", "k": "k", "drafter": "", "lag": "lag",
              "gpus": "GPUs", "workload": ""}
PHASE_ORDER = ["data", "refit", "refit_wait", "generation", "exposed_generation", "logprob", "training"]
PHASE_COLORS = {"data": "#9e9e9e", "refit": "#8c6bb1", "refit_wait": "#bcbddc", "generation": "#e6550d",
                "exposed_generation": "#fdae6b", "logprob": "#3182bd", "training": "#31a354"}


# ----------------------------------------------------------------------------------------- helpers
def _frame(df):
    """Sweep table (aggregated), from a DataFrame, a results path, or ProjectionResult(s)."""
    import pandas as pd

    from ..pipeline import ProjectionResult
    from ..studies.sweep import aggregate, is_aggregated, load_results

    if isinstance(df, (str, os.PathLike)):
        df = load_results(df)
    if isinstance(df, ProjectionResult):
        df = [df]
    if isinstance(df, (list, tuple)) and df and isinstance(df[0], ProjectionResult):
        rows = []
        for r in df:
            sc = r.scenario
            rows.append({"workload": sc["workload"], "k": sc["num_speculative_tokens"], "lag": sc["max_trajectory_age_steps"],
                         "gpus": sc["gpus"], "drafter": sc["drafter"], "draft_quality": sc.get("draft_quality"),
                         "model": sc.get("model"), "hardware": sc.get("hardware"), "engine": sc.get("engine"),
                         "seed": sc.get("seed"),
                         "scenario": f"{sc['workload']} k={sc['num_speculative_tokens']}"
                                     + (f" lag={sc['max_trajectory_age_steps']}" if sc["max_trajectory_age_steps"] else ""),
                         **r.summary_row()})
        return pd.DataFrame(rows)
    if not isinstance(df, pd.DataFrame):
        from ..errors import ConfigurationError

        raise ConfigurationError(f"expected a sweep DataFrame, a results file or ProjectionResult(s), got {type(df).__name__}")
    if df.empty:
        from ..errors import ConfigurationError

        raise ConfigurationError("nothing to plot: the sweep table is empty")
    if not is_aggregated(df):
        df = aggregate(df)
    if "error" in df.columns:
        df = df[df["error"].isna()]
    return df


def _varying(df, col) -> bool:
    return col in df.columns and df[col].dropna().nunique() > 1


def _auto_hue(df, candidates=("draft_quality", "acceptance_length_input", "drafter", "k", "lag", "gpus")):
    for c in candidates:
        if _varying(df, c):
            return c
    return None


def _facets(df, facet):
    if facet and facet in df.columns and df[facet].nunique(dropna=False) > 1:
        return [(f"{v}", g) for v, g in df.groupby(facet, sort=False)]
    label = str(df[facet].iloc[0]) if facet and facet in df.columns else ""
    return [(label, df)]


def _figure(nrows, ncols, w=5.2, h=3.8):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w * ncols, h * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _yerr(g, m):
    lo, hi = f"{m}_ci_lo", f"{m}_ci_hi"
    if lo not in g.columns or not np.isfinite(g[lo].to_numpy(dtype=float)).any():
        return None
    y = g[m].to_numpy(dtype=float)
    err = np.vstack([y - g[lo].to_numpy(dtype=float), g[hi].to_numpy(dtype=float) - y])
    return np.nan_to_num(err, nan=0.0)


def _fmt_hue(col, v) -> str:
    label = HUE_LABELS.get(col, col)
    if isinstance(v, float) and v == int(v) and col in ("k", "lag", "gpus"):
        v = int(v)
    return f"{label} {v}".strip() if label else f"{v}"


def _numeric_x(df, x) -> bool:
    from pandas.api.types import is_numeric_dtype

    return is_numeric_dtype(df[x])


def context_title(df, skip: Sequence[str] = ()) -> str:
    """What the figure shows, from the table: model, hardware and GPUs, engine, seeds (a column that varies and is
    not drawn as an axis is listed with its values; one that is an axis, hue or facet is left to the axes)."""
    parts = []

    def vals(col):
        if col not in df.columns or col in skip:
            return None
        v = [x for x in df[col].dropna().unique()]
        return v or None

    model, hw, gpus = vals("model"), vals("hardware"), vals("gpus")
    if model:
        parts.append(", ".join(map(str, model[:4])) + (" ..." if len(model) > 4 else ""))
    where = []
    if gpus:
        where.append(("/".join(_tick(g) for g in sorted(gpus)[:6])) + " x")
    if hw:
        where.append("/".join(map(str, hw)))
    if where:
        gen, train = vals("gen_gpus"), vals("train_gpus")
        separate = (gen and train and gpus and len(gen) == len(train) == len(gpus) == 1
                    and float(gen[0]) + float(train[0]) == float(gpus[0]))  # colocated runs report gpus for both
        split = f" ({_tick(gen[0])} generation + {_tick(train[0])} training)" if separate else ""
        on = "on " + " ".join(where) + split
        if parts:
            parts[-1] += " " + on
        else:
            parts.append(on)
    eng = vals("engine")
    if eng:
        parts.append("engine " + "/".join(map(str, eng)))
    if "n_seeds" in df.columns and df["n_seeds"].notna().any():
        n = sorted({int(x) for x in df["n_seeds"].dropna().unique()})
        parts.append(f"{'/'.join(map(str, n))} seed{'s' if n != [1] else ''} per point"
                     + (" (mean, 95% CI)" if max(n) > 1 else ""))
    elif "seed" in df.columns and df["seed"].notna().any():
        s = sorted({int(x) for x in df["seed"].dropna().unique()})
        parts.append(f"seed{'s' if len(s) > 1 else ''} {', '.join(map(str, s[:5]))}")
    return ", ".join(parts)


def _suptitle(fig, df, title: str | None, skip: Sequence[str] = (), what: str = "") -> None:
    ctx = context_title(df, skip)
    text = title if title else (f"{what}: {ctx}" if what and ctx else ctx or what)
    if text:
        fig.suptitle(text, fontsize=10)


def save(fig, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Save a figure; the format follows the extension (.png, .svg, .pdf)."""
    p = Path(path)
    if p.suffix.lower() not in (".png", ".svg", ".pdf"):
        from ..errors import ConfigurationError

        raise ConfigurationError(f"plot file {p}: unknown format {p.suffix!r}; allowed: .png, .svg, .pdf")
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=dpi)
    return p


# ------------------------------------------------------------------------------------------ line plots
def speedup_vs(df, x: str, *, metrics: Sequence[str] = ("speedup_generation", "speedup_step"), hue: str | None = "auto",
               facet: str | None = "workload", title: str | None = None, logx: bool | None = None):
    """Speedup (or any metric) vs ``x``, one line per ``hue`` value, 95% CI error bars, facet rows."""
    df = _frame(df)
    from ..errors import ConfigurationError

    if x not in df.columns:
        raise ConfigurationError(f"the sweep table has no column {x!r}: sweep it (e.g. --{x.replace('_', '-')} ...)")
    metrics = [m for m in metrics if m in df.columns]
    if not metrics:
        raise ConfigurationError("the sweep table has none of the requested metrics")
    hue = _line_hue(df, x, hue)
    facets = _facets(df, facet)
    fig, axes = _figure(len(facets), len(metrics))
    logx = _line_logx(df, x, logx)
    cmap = _cmap(df, hue)
    for r, (flabel, g) in enumerate(facets):
        groups = [(None, g)] if hue is None else list(g.groupby(hue, sort=True))
        for c, m in enumerate(metrics):
            ax = axes[r][c]
            for hv, gg in groups:
                gg = gg.sort_values(x)
                ax.errorbar(gg[x], gg[m], yerr=_yerr(gg, m), marker="o", ms=4, capsize=3, lw=1.6,
                            color=cmap(hv), label=None if hue is None else _fmt_hue(hue, hv))
            if m.startswith("speedup"):
                ax.axhline(1.0, color="0.5", lw=0.8, ls="--")
            _x_ticks(ax, g, x, logx)
            ax.set_xlabel(AXIS_LABELS.get(x, x))
            ax.set_ylabel(METRIC_LABELS.get(m, m))
            head = METRIC_LABELS.get(m, m).replace(" speedup", "")
            ax.set_title(f"{flabel}: {head}" if flabel else head, fontsize=10)
            ax.grid(alpha=0.3)
            if hue is not None and c == len(metrics) - 1:
                ax.legend(fontsize=8, title=None, loc="best")
    _suptitle(fig, df, title, skip=[x, hue or "", facet or ""])
    return fig


def times_and_speedup(df, x: str, *, metrics: Sequence[str] = ("speedup_step", "speedup_generation"),
                      hue: str | None = "auto", facet: str | None = "workload", title: str | None = None,
                      logx: bool | None = None):
    """Absolute times and speedup vs ``x``: per metric ``speedup_<phase>`` one panel with the autoregressive
    (solid) and speculative (dashed) ``<phase>`` times in seconds on the left axis and the speedup (dotted) on the
    right axis, one colour per ``hue`` value. Answers "is it faster, and by how much", not only the ratio (with
    lag, the ratio falls while both steps get shorter)."""
    df = _frame(df)
    from ..errors import ConfigurationError

    if x not in df.columns:
        raise ConfigurationError(f"the sweep table has no column {x!r}: sweep it (e.g. --{x.replace('_', '-')} ...)")
    pairs = []
    for m in metrics:
        if m not in df.columns:
            continue
        ph = m[len("speedup_"):] if m.startswith("speedup_") else None
        a, s = f"ar_{ph}_s", f"spec_{ph}_s"
        pairs.append((m, a if a in df.columns else None, s if s in df.columns else None, ph))
    if not pairs:
        raise ConfigurationError("the sweep table has none of the requested metrics")
    hue = _line_hue(df, x, hue)
    facets = _facets(df, facet)
    fig, axes = _figure(len(facets), len(pairs), w=5.6, h=4.0)
    logx = _line_logx(df, x, logx)
    cmap = _cmap(df, hue)
    for r, (flabel, g) in enumerate(facets):
        groups = [(None, g)] if hue is None else list(g.groupby(hue, sort=True))
        for c, (m, a_col, s_col, ph) in enumerate(pairs):
            ax = axes[r][c]
            ax2 = ax.twinx()
            for hv, gg in groups:
                gg = gg.sort_values(x)
                col = cmap(hv)
                tag = "" if hue is None else f" ({_fmt_hue(hue, hv)})"
                if a_col:
                    ax.errorbar(gg[x], gg[a_col], yerr=_yerr(gg, a_col), marker="o", ms=4, capsize=3, lw=1.8,
                                color=col, ls="-", label=f"autoregressive{tag}")
                if s_col:
                    ax.errorbar(gg[x], gg[s_col], yerr=_yerr(gg, s_col), marker="s", ms=4, capsize=3, lw=1.8,
                                color=col, ls="--", label=f"speculative{tag}")
                ax2.errorbar(gg[x], gg[m], yerr=_yerr(gg, m), marker="^", ms=4, capsize=2, lw=1.2, color=col, ls=":",
                             alpha=0.8, label=f"speedup{tag} (right axis)")
            ax2.axhline(1.0, color="0.6", lw=0.8, ls="-.")
            ax.set_ylim(bottom=0)
            lo, hi = ax2.get_ylim()
            ax2.set_ylim(min(lo, 0.9), max(hi, 1.1))
            _x_ticks(ax, g, x, logx)
            what = {"step": "step", "generation": "rollout (generation)",
                    "exposed_generation": "exposed generation"}.get(ph, ph or m)
            ax.set_xlabel(AXIS_LABELS.get(x, x))
            ax.set_ylabel(f"{what} time (s)")
            ax2.set_ylabel(f"{what} speedup (spec vs AR, x)")
            ax.set_title(f"{flabel}: {what} time and speedup" if flabel else f"{what} time and speedup", fontsize=10)
            ax.grid(alpha=0.3)
            if c == len(pairs) - 1 and r == 0:
                h1, l1 = ax.get_legend_handles_labels()
                h2, l2 = ax2.get_legend_handles_labels()
                ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="best")
    _suptitle(fig, df, title, skip=[x, hue or "", facet or ""])
    return fig


def _line_hue(df, x: str, hue):
    """The line colour column: ``auto`` picks the first varying setting other than ``x``."""
    if hue != "auto":
        return hue
    return _auto_hue(df, [c for c in ("draft_quality", "acceptance_length_input", "drafter", "k", "lag", "gpus",
                                      "hardware", "model") if c != x])


def _line_logx(df, x: str, logx):
    """A log2 x axis for GPU counts spanning 4x or more (unless given)."""
    if logx is not None:
        return logx
    xs = df[x].dropna().to_numpy(dtype=float) if _numeric_x(df, x) else np.array([1.0])
    return x in ("gpus", "gen_gpus", "train_gpus") and len(xs) and xs.min() > 0 and xs.max() / xs.min() >= 4


def _x_ticks(ax, g, x: str, logx) -> None:
    """Log2 axis with the swept values as ticks, or integer ticks for k and lag."""
    if logx:
        ax.set_xscale("log", base=2)
        ticks = sorted(g[x].dropna().unique())
        ax.set_xticks(ticks, [str(int(t)) for t in ticks])
    elif x in ("k", "lag") and _numeric_x(g, x):
        ax.set_xticks(sorted(int(v) for v in g[x].dropna().unique()))


def _cmap(df, hue):
    import matplotlib

    if hue is None:
        return lambda v: "C0"
    vals = sorted(df[hue].dropna().unique(), key=lambda v: (str(type(v)), v))
    if len(vals) <= 1:
        return lambda v: "C0"
    from pandas.api.types import is_numeric_dtype

    if is_numeric_dtype(df[hue]):
        cm = matplotlib.colormaps["viridis"]
        lo, hi = float(min(vals)), float(max(vals))
        return lambda v: cm(0.08 + 0.8 * (float(v) - lo) / (hi - lo))
    idx = {v: i for i, v in enumerate(vals)}
    return lambda v: f"C{idx.get(v, 0) % 10}"


def speedup_vs_k(df, *, quality: str | None = "auto", metrics: Sequence[str] = ("speedup_generation", "speedup_step"),
                 facet: str | None = "workload", title: str | None = None):
    """Rollout and end-to-end speedup vs k, one line per draft quality (or AL, drafter)."""
    if quality == "auto":
        quality = _auto_hue(_frame(df), ("draft_quality", "acceptance_length_input", "drafter", "draft_quality_decay"))
    return speedup_vs(df, "k", metrics=metrics, hue=quality, facet=facet, title=title)


def speedup_vs_gpus(df, *, x: str = "gpus", hue: str | None = "auto", facet: str | None = "workload",
                    metrics: Sequence[str] = ("speedup_step", "speedup_generation"), title: str | None = None,
                    absolute: bool = True):
    """Step and rollout times (AR solid, speculative dashed) and the speedup (right axis) vs GPU count
    (``x="gen_gpus"`` for the generation pool); ``absolute=False``: the speedups alone."""
    if not absolute:
        return speedup_vs(df, x, metrics=metrics, hue=hue, facet=facet, title=title)
    return times_and_speedup(df, x, metrics=metrics, hue=hue, facet=facet, title=title)


def speedup_vs_lag(df, *, hue: str | None = "auto", facet: str | None = "workload",
                   metrics: Sequence[str] | None = None, title: str | None = None, absolute: bool = True):
    """Step and rollout times (AR solid, speculative dashed) and the speedup (right axis) vs policy lag: a lag
    shortens both steps while the spec/AR ratio may fall, which the ratio alone would read as "async is worse".
    Adds the exposed-generation panel when the async pipeline reports it; ``absolute=False``: the speedups alone."""
    d = _frame(df)
    if metrics is None:
        metrics = ["speedup_step", "speedup_generation"]
        if "speedup_exposed_generation" in d.columns and d["speedup_exposed_generation"].notna().any():
            metrics.append("speedup_exposed_generation")
    if not absolute:
        return speedup_vs(d, "lag", metrics=metrics, hue=hue, facet=facet, title=title)
    return times_and_speedup(d, "lag", metrics=metrics, hue=hue, facet=facet, title=title)


# ---------------------------------------------------------------------------------------------- heatmap
def heatmap(df, *, x: str = "k", y: str = "draft_quality",
            metrics: Sequence[str] | str = ("speedup_generation", "speedup_step"), facet: str | None = "workload",
            cmap: str = "viridis", title: str | None = None):
    """Annotated heatmap of ``metrics`` over (``x`` x ``y``); one panel per metric (columns) and facet (rows)."""
    df = _frame(df)
    from ..errors import ConfigurationError

    if isinstance(metrics, str):
        metrics = [metrics]
    if y == "draft_quality" and not _varying(df, y) and _varying(df, "acceptance_length_input"):
        y = "acceptance_length_input"
    for col in (x, y):
        if col not in df.columns or df[col].dropna().empty:
            raise ConfigurationError(f"a heatmap needs the sweep to vary {col!r}; the table has no such values")
    missing = [m for m in metrics if m not in df.columns]
    if missing:
        raise ConfigurationError(f"the sweep table has no metric {missing[0]!r}; allowed: "
                                 f"{', '.join(c for c in df.columns if c.startswith(('speedup', 'ar_', 'spec_')))}")
    facets = _facets(df, facet)
    fig, axes = _figure(len(facets), len(metrics), w=5.0, h=4.0)
    for r, (flabel, g) in enumerate(facets):
        for c, m in enumerate(metrics):
            ax = axes[r][c]
            piv = g.pivot_table(index=y, columns=x, values=m, aggfunc="mean").sort_index().sort_index(axis=1)
            z = piv.to_numpy(dtype=float)
            im = ax.imshow(z, origin="lower", aspect="auto", cmap=cmap)
            ax.set_xticks(range(len(piv.columns)), [_tick(v) for v in piv.columns])
            ax.set_yticks(range(len(piv.index)), [_tick(v) for v in piv.index])
            ax.set_xlabel(AXIS_LABELS.get(x, x))
            ax.set_ylabel(AXIS_LABELS.get(y, y))
            head = METRIC_LABELS.get(m, m)
            ax.set_title(f"{flabel}: {head}" if flabel else head, fontsize=10)
            finite = z[np.isfinite(z)]
            mid = (finite.min() + finite.max()) / 2 if finite.size else 0
            best_of_row = np.full(z.shape[0], -1)
            for i in range(z.shape[0]):
                row = np.where(np.isfinite(z[i]), z[i], -np.inf)
                if np.isfinite(row).any():
                    best_of_row[i] = int(np.argmax(row)) if not m.endswith("_s") else int(np.argmin(
                        np.where(np.isfinite(z[i]), z[i], np.inf)))
            for i in range(z.shape[0]):
                for j in range(z.shape[1]):
                    if np.isfinite(z[i, j]):
                        best = j == best_of_row[i]
                        ax.text(j, i, f"{z[i, j]:.2f}", ha="center", va="center", fontsize=8,
                                fontweight="bold" if best else "normal",
                                color="black" if z[i, j] > mid else "white")
                        if best:
                            from matplotlib.patches import Rectangle

                            ax.add_patch(Rectangle((j - 0.47, i - 0.47), 0.94, 0.94, fill=False, lw=1.8, ec="red",
                                                   label=f"best {AXIS_LABELS.get(x, x).split(' (')[0]} per row"))
            cb = fig.colorbar(im, ax=ax, shrink=0.85)
            cb.set_label(head)
            h, lab = ax.get_legend_handles_labels()
            if h:
                ax.legend(h[:1], lab[:1], fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.14), frameon=False)
    _suptitle(fig, df, title, skip=[x, y, facet or ""])
    return fig


def _tick(v) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{int(v)}" if float(v).is_integer() else f"{v:g}"
    return str(v)


# ------------------------------------------------------------------------------------------ phase bars
def phase_columns(df, prefix: str) -> list[str]:
    """Phases present in the table (``ar_<phase>_s``), in pipeline order."""
    found = []
    for c in df.columns:
        if c.startswith(prefix + "_") and c.endswith("_s") and not c.endswith(("_std", "_ci_lo", "_ci_hi")):
            ph = c[len(prefix) + 1:-2]
            if ph != "step" and not ph.startswith(("gen_", "x_")) and df[c].notna().any():
                found.append(ph)
    return sorted(found, key=lambda p: (PHASE_ORDER.index(p) if p in PHASE_ORDER else len(PHASE_ORDER), p))


def _on_path(g, mode: str, phase: str) -> np.ndarray:
    """Seconds of ``phase`` on the step's critical path, row by row: where the async pipeline reports
    ``exposed_generation``, the (overlapped) rollout ``generation`` is not on the path."""
    v = g[f"{mode}_{phase}_s"].to_numpy(dtype=float)
    if phase == "generation" and f"{mode}_exposed_generation_s" in g.columns:
        v = np.where(np.isfinite(g[f"{mode}_exposed_generation_s"].to_numpy(dtype=float)), 0.0, v)
    return np.nan_to_num(v, nan=0.0)


def phase_bars(df, *, by: str | None = "k", facet: str | None = "workload", title: str | None = None):
    """Stacked step time by phase: an autoregressive and a speculative bar for each value of ``by``.
    Accepts a sweep table or ProjectionResult(s) (then one pair of bars per result)."""
    from ..errors import ConfigurationError
    from ..pipeline import ProjectionResult

    if isinstance(df, ProjectionResult) or (isinstance(df, (list, tuple)) and df and isinstance(df[0], ProjectionResult)):
        by, facet = "scenario", None
    df = _frame(df)
    if by is None or by not in df.columns:
        raise ConfigurationError(f"phase bars need a column to group by; the table has no {by!r}")
    phases = [p for p in phase_columns(df, "ar") if f"spec_{p}_s" in df.columns]
    if not phases:
        raise ConfigurationError("the table has no per-phase times (ar_<phase>_s columns)")
    facets = _facets(df, facet)
    groups = max(g[by].nunique() for _, g in facets)
    ncols = 1 if groups > 4 else min(len(facets), 3)  # many bar pairs: one wide panel per row
    nrows = math.ceil(len(facets) / ncols)
    fig, axes = _figure(nrows, ncols, w=min(max(5.0, 1.0 * groups + 2.5), 11.0), h=4.2)
    for idx, (flabel, g) in enumerate(facets):
        ax = axes[idx // ncols][idx % ncols]
        cols = [f"{p}_s" for p in ("ar_step", "spec_step")] + [f"{m}_{p}_s" for m in ("ar", "spec") for p in phases]
        g = g.groupby(by, sort=True)[[c for c in cols if c in g.columns]].mean().reset_index()
        xs = np.arange(len(g))
        width = 0.38
        for off, mode, hatch in ((-width / 2 - 0.01, "ar", ""), (width / 2 + 0.01, "spec", "")):
            bottom = np.zeros(len(g))
            for p in phases:
                v = _on_path(g, mode, p)
                ax.bar(xs + off, v, width, bottom=bottom, color=PHASE_COLORS.get(p, None),
                       alpha=0.55 if mode == "ar" else 1.0, edgecolor="white", lw=0.5, hatch=hatch,
                       label=p.replace("_", " ") if mode == "spec" else None)
                bottom += v
            step = g[f"{mode}_step_s"].to_numpy(dtype=float)
            ax.scatter(xs + off, step, marker="_", s=300, color="black", zorder=3)
            for xi, s_, b_ in zip(xs, step, g["ar_step_s"].to_numpy(dtype=float)):
                txt = f"AR\n{s_:.0f}s" if mode == "ar" else f"spec\n{s_:.0f}s\n{b_ / s_:.2f}x"
                ax.text(xi + off, s_, txt, ha="center", va="bottom", fontsize=7)
        ax.set_xticks(xs, [_tick(v) for v in g[by]])
        ax.set_xlabel(AXIS_LABELS.get(by, by))
        ax.set_ylabel("step time (s)")
        ymax = np.nanmax(g[["ar_step_s", "spec_step_s"]].to_numpy(dtype=float))
        ax.set_ylim(0, ymax * 1.15)
        ax.set_title(f"{flabel}: step time by phase (light: AR, solid: speculative)" if flabel else
                     "step time by phase (light: AR, solid: speculative)", fontsize=10)
        if any(f"{m}_exposed_generation_s" in g.columns and g[f"{m}_exposed_generation_s"].notna().any()
               for m in ("ar", "spec")):
            ax.annotate("async: rollout overlaps training; only exposed generation is on the step's path",
                        (0.01, 0.99), xycoords="axes fraction", va="top", fontsize=7, color="0.3")
        ax.grid(axis="y", alpha=0.3)
    for idx in range(len(facets), nrows * ncols):
        axes[idx // ncols][idx % ncols].set_visible(False)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4), fontsize=8, frameon=False)
    _suptitle(fig, df, title, skip=[by, facet or ""])
    return fig


__all__ = ["speedup_vs", "speedup_vs_k", "speedup_vs_gpus", "speedup_vs_lag", "heatmap", "phase_bars", "save",
           "phase_columns", "times_and_speedup", "context_title"]
