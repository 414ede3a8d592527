"""Human-readable tables of results (rich)."""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.table import Table

from ..pipeline import ProjectionResult

# Output that is not a terminal (a pipe, a file) is printed this wide, so that tables and notes are never cut at
# rich's default of 80 columns; $COLUMNS still wins when set.
PIPE_WIDTH = 1000


def make_console(stderr: bool = False) -> Console:
    """A rich Console that does not truncate when its output is piped or redirected."""
    stream = sys.stderr if stderr else sys.stdout
    width = None
    if not (hasattr(stream, "isatty") and stream.isatty()) and not os.environ.get("COLUMNS"):
        width = PIPE_WIDTH
    return Console(stderr=stderr, width=width)

PHASE_LABELS = {
    "data": "data", "refit": "refit (prepare)", "generation": "generation (rollout)",
    "exposed_generation": "  exposed generation", "logprob": "log-prob", "training": "training",
    "refit_wait": "  drain before refit",
}


def projection_table(r: ProjectionResult, console: Console | None = None, cost: dict | None = None) -> None:
    """The projection as a table, then what bounds the step, the trainer's memory, the cost and the notes.
    ``cost``: ``r.cost(steps, price)`` (default: per step, no price)."""
    console = console or make_console()
    sc = r.scenario
    title = (f"{sc['model']} on {sc['gpus']} x {sc['hardware']} ({sc['workload']}), "
             f"{sc['sequences_per_step']} sequences/step, lag {sc['max_trajectory_age_steps']}, engine {sc.get('engine', '?')}")
    console.print(title, highlight=False)  # on its own line: a table title would wrap at the table's width
    t = Table()
    t.add_column("phase")
    t.add_column("autoregressive (s)", justify="right")
    tree = sc.get("tree")
    spec_col = (f"speculative tree {tree['verified_tokens_per_sequence']} tok, depth {tree['depth']} (s)" if tree
                else f"speculative k={sc['num_speculative_tokens']} (s)")
    t.add_column(spec_col, justify="right")
    t.add_column("speedup", justify="right")
    b, s = r.baseline.phases_s, r.speculative.phases_s
    for ph in b:
        sp = f"{b[ph] / s[ph]:.2f}x" if s.get(ph, 0) > 0 else "-"
        t.add_row(PHASE_LABELS.get(ph, ph), f"{b[ph]:.2f}", f"{s.get(ph, 0.0):.2f}", sp)
    t.add_row("[bold]step[/bold]", f"[bold]{r.baseline.step_s:.2f}[/bold]", f"[bold]{r.speculative.step_s:.2f}[/bold]",
              f"[bold]{r.speedup['step']:.2f}x[/bold]")
    console.print(t)
    g_b, g_s = r.baseline.generation, r.speculative.generation
    console.print(
        f"drafter {sc['drafter_network']}, acceptance length {r.acceptance_length:.2f} (realised "
        f"{r.acceptance_length_realized:.2f}); generation speedup {r.speedup['generation']:.2f}x, step speedup "
        f"{r.speedup['step']:.2f}x")
    a_b, a_s = r.baseline.extra.get("async"), r.speculative.extra.get("async")
    if a_b:
        console.print(
            f"async (lag {a_b['max_trajectory_age_steps']}, {a_b['gen_gpus']} generation + {a_b['train_gpus']} training GPUs, "
            f"{'in-flight weight updates' if a_b['in_flight_weight_updates'] else 'drain before each weight sync'}): "
            f"steady state: {a_b['steady_state_steps']} steps {_async_start(a_b, a_s)}; phases overlap, so the step "
            f"is not their sum")
        for name, a in (("AR", a_b), ("spec", a_s)):
            console.print(
                f"  {name}: idle generation GPUs {a['gen_gpu_idle_fraction']:.0%}, idle training GPUs "
                f"{a['train_gpu_idle_fraction']:.0%}, staleness of trained trajectories {a['staleness_histogram']} "
                f"(mean {a['staleness_mean']:.2f}), dropped {a['trajectories_dropped']}")
        _insight_lines(r, console, cost)
        for n in r.notes:
            console.print(f"[dim]{n}[/dim]")
        return
    console.print(
        f"generation: {g_b.n_replicas} replicas x {_per_replica(g_b.sequences_per_replica)} sequences; AR {g_b.iterations_max} "
        f"iterations (tail after 90% of sequences: {g_b.tail_s:.1f} s), spec {g_s.iterations_max} iterations "
        f"(tail {g_s.tail_s:.1f} s); KV capacity {g_b.kv_capacity_tokens_per_replica:,} tokens/replica; "
        f"preemptions AR {g_b.preemptions}, spec {g_s.preemptions}")
    _insight_lines(r, console, cost)
    for n in r.notes:
        console.print(f"[dim]{n}[/dim]")


def _per_replica(x: float) -> str:
    """Sequences per replica: whole when it is, else with decimals (16 sequences on 32 replicas are 0.5 each, and
    half of the replicas idle; never "0")."""
    if float(x).is_integer():
        return f"{x:.0f}"
    return f"{x:.2f}" + (" (fewer sequences than replicas: some replicas idle)" if x < 1 else "")


def _insight_lines(r: ProjectionResult, console: Console, cost: dict | None) -> None:
    """Bottleneck (each mode), the trainer's memory per GPU and the cost in GPU-hours."""
    from ..pipeline.bottleneck import cost_line

    for mode, b in r.bottleneck().items():
        console.print(f"[bold]{'AR' if mode == 'autoregressive' else 'spec'}[/bold] {b['statement']}")
    m = r.memory
    if m:
        lay = m["layout"]
        keys = ("TP", "PP", "VPP", "CP", "EP", "ETP", "DP")
        desc = ", ".join(f"{k} {lay[k]}" for k in keys if lay.get(k) and (lay[k] > 1 or k in ("TP", "PP", "DP")))
        if lay.get("activation_checkpointing"):
            desc += ", activation checkpointing"
        tr = m["training_gb"]
        phases = ", ".join(f"{k} {v:.1f}" for k, v in m["phases_gb"].items())
        console.print(f"memory per GPU, training layout {desc}: peak {m['need_gb']:.1f} of {m['capacity_gb']:.0f} GB "
                      f"in {m['binding_phase']} (phases: {phases} GB); training = bf16 weights {tr['weights']:.1f} + grads "
                      f"{tr['grads']:.1f} + fp32 optimizer {tr['optimizer']:.1f} + activations {tr['activations']:.1f} + "
                      f"logits {tr['logits']:.1f} + reserve {tr['reserve']:.1f} GB")
    console.print(cost_line(cost or r.cost()))


def spread_table(sp, console=None) -> None:
    """The seed spread of ``rlsim project --seeds N`` (a ``studies.seeds.SeedSpread``)."""
    from rich.table import Table

    from ..studies.seeds import METRICS

    console = console or make_console()
    t = Table(title=f"seed spread over {len(sp.seeds)} seeds ({sp.seeds[0]}..{sp.seeds[-1]})", title_justify="left")
    for c in ("metric", "mean", "min", "max", "range/mean"):
        t.add_column(c, justify="left" if c == "metric" else "right")
    for m in METRICS:
        st = sp.stats(m)
        fmt = "{:.3f}" if m.startswith(("speedup", "acceptance")) else "{:.2f}"
        t.add_row(m, fmt.format(st["mean"]), fmt.format(st["min"]), fmt.format(st["max"]), f"{st['rel_range']:.1%}")
    console.print(t)

def _async_start(a_b: dict, a_s: dict) -> str:
    """How the async runs reached their steady state (pipeline/asynchronous.py: prefilled or filled from empty)."""
    parts = []
    for name, a in (("AR", a_b), ("spec", a_s)):
        parts.append("from a start in it (every sync drained the pool)" if a.get("start") == "prefilled"
                     else f"after {a['warmup_steps']} warm-up (pipeline filled from empty)")
    return parts[0] if parts[0] == parts[1] else f"(AR {parts[0]}; spec {parts[1]})"
