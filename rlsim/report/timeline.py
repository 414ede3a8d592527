"""Gantt chart of a few steady-state RL steps: trainer row and generation replica rows."""

from __future__ import annotations

from pathlib import Path

from ..pipeline import build_setup
from ..pipeline.asynchronous import simulate_async
from ..scenario import Scenario


def _busy_intervals(trace: dict, gap_s: float) -> list[tuple[float, float]]:
    if trace is None or trace["t_end"].size == 0:
        return []
    ends = trace["t_end"]
    starts = ends - trace["dt"]
    out = []
    s0, e0 = starts[0], ends[0]
    for s, e in zip(starts[1:], ends[1:]):
        if s - e0 > gap_s:
            out.append((s0, e0))
            s0 = s
        e0 = e
    out.append((s0, e0))
    return out


def plot_timeline(scenario: Scenario, path: str | Path, speculative: bool = True, n_replicas: int = 8,
                  n_steps: int = 3, flag: str = "--out") -> Path:
    """Simulate ``scenario`` through the async pipeline (lag 0 = one batch at a time on separate pools)
    and draw ``n_steps`` steady-state steps and ``n_replicas`` generation replicas (at most the scenario's).
    ``path`` is checked before the simulation; if the figure cannot be written after it, it is kept in a
    temporary file and the error says where (``flag`` names the option in messages)."""
    from ..inputs import (MAX_TIMELINE_REPLICAS, MAX_TIMELINE_STEPS, TIMELINE_WHY, check_count, check_output_file,
                          write_or_keep)

    check_count("replicas", n_replicas, 1, MAX_TIMELINE_REPLICAS, TIMELINE_WHY)
    check_count("steps", n_steps, 1, MAX_TIMELINE_STEPS, TIMELINE_WHY)
    check_output_file(path, flag, (".png", ".svg", ".pdf"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    setup = build_setup(scenario)
    n_replicas = min(n_replicas, setup.n_replicas)  # rows beyond the scenario's replicas would be empty
    run = simulate_async(setup, speculative, trace_replicas=n_replicas)
    W = run.weights_loaded_s
    t0 = W[run.warmup]
    t1 = W[min(run.warmup + n_steps, len(W) - 1)]
    fig, ax = plt.subplots(figsize=(12, 1.2 + 0.42 * (n_replicas + 1)))
    colors = {"wait": "#dddddd", "train": "#d62728", "logprob": "#ff7f0e", "drain": "#9467bd", "refit": "#2ca02c",
              "gen": "#1f77b4"}
    y_tr = n_replicas
    w = scenario.workload
    for t in range(len(run.train_end_s)):
        s, e = run.train_start_s[t], run.train_end_s[t]
        dur = e - s
        # split trainer time into data+logprob and training by their modelled durations
        lp = run.phases["logprob"] + run.phases["data"]
        tr = run.phases["training"]
        frac = lp / (lp + tr) if lp + tr > 0 else 0.5
        lp_end = s + frac * dur
        prev = W[t]
        ax.broken_barh([(prev, max(s - prev, 0))], (y_tr, 0.8), color=colors["wait"])
        ax.broken_barh([(s, lp_end - s)], (y_tr, 0.8), color=colors["logprob"])
        ax.broken_barh([(lp_end, e - lp_end)], (y_tr, 0.8), color=colors["train"])
        rs = run.refit_start_s[t]
        ax.broken_barh([(e, rs - e)], (y_tr, 0.8), color=colors["drain"])
        ax.broken_barh([(rs, W[t + 1] - rs)], (y_tr, 0.8), color=colors["refit"])
    for r, tr_ in enumerate(run.replica_traces):
        ivs = [(a, b - a) for a, b in _busy_intervals(tr_, gap_s=1e-3 * (t1 - t0))]
        ax.broken_barh(ivs, (r, 0.8), color=colors["gen"])
    for v in W[1:]:
        ax.axvline(v, color="k", lw=0.5, ls=":")
    ax.set_xlim(t0, t1)
    ax.set_yticks([i + 0.4 for i in range(n_replicas + 1)])
    ax.set_yticklabels([f"gen replica {i}" for i in range(n_replicas)] + ["trainer"])
    ax.set_xlabel("time (s)")
    mode = "speculative" if speculative else "autoregressive"
    ax.set_title(f"{w.model} {mode}, lag {scenario.lag}: {n_steps} steady-state steps "
                 f"(dotted: new weights loaded)")
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=c, label=n) for n, c in (("generating", colors["gen"]),
                                                             ("trainer waits (exposed generation)", colors["wait"]),
                                                             ("data + log-prob", colors["logprob"]),
                                                             ("training", colors["train"]),
                                                             ("drain before refit", colors["drain"]),
                                                             ("refit", colors["refit"]))],
              loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=6, fontsize=8, frameon=False)
    fig.tight_layout()
    try:
        return write_or_keep(Path(path), lambda p: fig.savefig(p, dpi=120), flag)
    finally:
        plt.close(fig)
