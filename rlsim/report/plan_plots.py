"""Plots of an ``rlsim plan`` search (matplotlib ``Figure`` objects, no pyplot state; saved with ``plots.save``).

- ``pareto``: step time vs GPU-hours per step: every simulated configuration (colour: GPU count), the Pareto
  front joined, the references ringed, the estimated-only points faint (x: their estimate, never ranked).
- ``scaling``: the best simulated step time and its GPU-hours per step against the GPU count (two panels).
"""

from __future__ import annotations

import os
from pathlib import Path


def pareto(res):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 5.0), layout="constrained")
    ax = fig.add_subplot()
    sims = res.simulated_candidates()
    est = [c for c in res.candidates if c.sim is None and c.pruned in (None, "dominated") and c.est_s == c.est_s]
    if est:
        ax.scatter([c.gpus * c.est_s / 3600 for c in est], [c.est_s for c in est], s=6, c="#cccccc",
                   label=f"estimated only ({len(est)})", zorder=1)
    counts = sorted({c.gpus for c in sims})
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    for i, g in enumerate(counts):
        pts = [c for c in sims if c.gpus == g]
        ax.scatter([c.gpu_hours_per_step for c in pts], [c.step_s for c in pts], s=28,
                   color=cmap(i / max(len(counts) - 1, 1)), label=f"{g:,} GPUs", zorder=3)
    front = res.pareto()
    ax.plot([c.gpu_hours_per_step for c in front], [c.step_s for c in front], "-", color="#e6550d", lw=1.5,
            label="Pareto front", zorder=2)
    refs = [c for c in res.references if c.sim]
    if refs:
        ax.scatter([c.gpu_hours_per_step for c in refs], [c.step_s for c in refs], s=120, facecolors="none",
                   edgecolors="black", label="reference (workload's configuration)", zorder=4)
    best = res.ranked()[0] if sims else None
    if best is not None:
        ax.scatter([best.gpu_hours_per_step], [best.step_s], marker="*", s=220, color="#e6550d", zorder=5,
                   label="best")
    ax.set_xlabel("GPU-hours per step")
    ax.set_ylabel("step time (s)")
    ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"rlsim plan: {res.workload_label}", fontsize=9)
    return fig


def scaling(res):
    from matplotlib.figure import Figure

    rows = res.by_gpu_count()
    fig = Figure(figsize=(7.5, 3.6), layout="constrained")
    a1, a2 = fig.subplots(1, 2)
    g = [r["gpus"] for r in rows]
    a1.plot(g, [r["step_s"] for r in rows], "o-", color="#3182bd")
    a1.set_ylabel("best step time (s)")
    a2.plot(g, [r["gpu_hours_per_step"] for r in rows], "o-", color="#31a354")
    a2.set_ylabel("its GPU-hours per step")
    for a in (a1, a2):
        a.set_xlabel("GPUs")
        a.set_xscale("log", base=2)
        a.grid(alpha=0.3)
    fig.suptitle(f"rlsim plan: {res.workload_label} (simulated)", fontsize=9)
    return fig


def save_plan_plots(res, folder: str | os.PathLike) -> list[Path]:
    from .plots import save

    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    return [save(pareto(res), d / "pareto.png"), save(scaling(res), d / "scaling.png")]


__all__ = ["pareto", "save_plan_plots", "scaling"]
