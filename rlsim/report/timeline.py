"""Gantt chart of a few steady-state RL steps: trainer row and generation replica rows."""

from __future__ import annotations

from pathlib import Path

from ..pipeline import build_setup
from ..pipeline.run import simulate_trace
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
    fig = timeline_figure(scenario, speculative, n_replicas, n_steps)
    return write_or_keep(Path(path), lambda p: fig.savefig(p, dpi=120), flag)


def timeline_figure(scenario: Scenario, speculative: bool = True, n_replicas: int = 8, n_steps: int = 3):
    """The Gantt chart as a matplotlib Figure (not saved; no pyplot state)."""
    from matplotlib.figure import Figure

    setup = build_setup(scenario)
    n_replicas = min(n_replicas, setup.n_replicas)  # rows beyond the scenario's replicas would be empty
    run = simulate_trace(setup, speculative, n_replicas)
    W = run.weights_loaded_s
    t0 = W[run.warmup]
    t1 = W[min(run.warmup + n_steps, len(W) - 1)]
    fig = Figure(figsize=(12, 1.6 + 0.42 * (n_replicas + 1)))
    ax = fig.subplots()
    colors = {"wait": "#dddddd", "train": "#d62728", "logprob": "#ff7f0e", "drain": "#9467bd", "refit": "#2ca02c",
              "gen": "#1f77b4"}
    y_tr = n_replicas
    w = scenario.workload
    drawn: set[str] = set()  # legend entries that appear in the window

    def bar(start, dur, y, kind):
        a, b = max(start, t0), min(start + dur, t1)
        if dur > 0:
            ax.broken_barh([(start, dur)], (y, 0.8), color=colors[kind])
            if b > a:
                drawn.add(kind)

    for t in range(len(run.train_end_s)):
        s, e = run.train_start_s[t], run.train_end_s[t]
        dur = e - s
        # split trainer time into data+logprob and training by their modelled durations
        lp = run.phases["logprob"] + run.phases["data"]
        tr = run.phases["training"]
        frac = lp / (lp + tr) if lp + tr > 0 else 0.5
        lp_end = s + frac * dur
        prev = W[t]
        bar(prev, max(s - prev, 0), y_tr, "wait")
        bar(s, lp_end - s, y_tr, "logprob")
        bar(lp_end, e - lp_end, y_tr, "train")
        rs = run.refit_start_s[t]
        bar(e, rs - e, y_tr, "drain")
        bar(rs, W[t + 1] - rs, y_tr, "refit")
    for r, tr_ in enumerate(run.replica_traces):
        ivs = [(a, b - a) for a, b in _busy_intervals(tr_, gap_s=1e-3 * (t1 - t0))]
        ax.broken_barh(ivs, (r, 0.8), color=colors["gen"])
        if any(a < t1 and a + d > t0 for a, d in ivs):
            drawn.add("gen")
    for v in W[1:]:
        ax.axvline(v, color="k", lw=0.5, ls=":")
    ax.set_xlim(t0, t1)
    ax.set_yticks([i + 0.4 for i in range(n_replicas + 1)])
    ax.set_yticklabels([f"gen replica {i}" for i in range(n_replicas)] + ["trainer"])
    ax.set_xlabel("time (s)")
    mode = "speculative" if speculative else "autoregressive"
    spec = f", k = {scenario.k}" if speculative and scenario.k else ""
    ax.set_title(f"{w.model} {mode}{spec}, lag {scenario.lag} on {w.hardware}: {setup.gen_gpus} generation + "
                 f"{setup.train_gpus} training GPUs, engine {scenario.engine}, seed {scenario.seed}\n"
                 f"{n_steps} steady-state steps; {n_replicas} of {setup.n_replicas} generation replicas drawn"
                 f"{' (all)' if n_replicas == setup.n_replicas else ''} (dotted: new weights loaded)", fontsize=10)
    from matplotlib.patches import Patch

    entries = [(k_, n) for k_, n in (("gen", "generating"), ("wait", "trainer waits (exposed generation)"),
                                     ("logprob", "data + log-prob"), ("train", "training"),
                                     ("drain", "drain before refit"), ("refit", "refit")) if k_ in drawn]
    ax.legend(handles=[Patch(color=colors[k_], label=n) for k_, n in entries],
              loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=max(len(entries), 1), fontsize=8, frameon=False)
    fig.tight_layout()
    return fig
