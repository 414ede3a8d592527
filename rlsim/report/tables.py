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


def projection_table(r: ProjectionResult, console: Console | None = None) -> None:
    console = console or make_console()
    sc = r.scenario
    title = (f"{sc['model']} on {sc['gpus']} x {sc['hardware']} ({sc['workload']}), "
             f"{sc['sequences_per_step']} sequences/step, lag {sc['max_trajectory_age_steps']}, engine {sc.get('engine', '?')}")
    console.print(title, highlight=False)  # on its own line: a table title would wrap at the table's width
    t = Table()
    t.add_column("phase")
    t.add_column("autoregressive (s)", justify="right")
    t.add_column(f"speculative k={sc['num_speculative_tokens']} (s)", justify="right")
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
            f"steady state over {a_b['steady_state_steps']} steps after {a_b['warmup_steps']} warm-up; phases overlap, so "
            f"the step is not their sum")
        for name, a in (("AR", a_b), ("spec", a_s)):
            console.print(
                f"  {name}: idle generation GPUs {a['gen_gpu_idle_fraction']:.0%}, idle training GPUs "
                f"{a['train_gpu_idle_fraction']:.0%}, staleness of trained trajectories {a['staleness_histogram']} "
                f"(mean {a['staleness_mean']:.2f}), dropped {a['trajectories_dropped']}")
        for n in r.notes:
            console.print(f"[dim]{n}[/dim]")
        return
    console.print(
        f"generation: {g_b.n_replicas} replicas x {_per_replica(g_b.sequences_per_replica)} sequences; AR {g_b.iterations_max} "
        f"iterations (tail after 90% of sequences: {g_b.tail_s:.1f} s), spec {g_s.iterations_max} iterations "
        f"(tail {g_s.tail_s:.1f} s); KV capacity {g_b.kv_capacity_tokens_per_replica:,} tokens/replica; "
        f"preemptions AR {g_b.preemptions}, spec {g_s.preemptions}")
    for n in r.notes:
        console.print(f"[dim]{n}[/dim]")


def _per_replica(x: float) -> str:
    """Sequences per replica: whole when it is, else with decimals (16 sequences on 32 replicas are 0.5 each, and
    half of the replicas idle; never "0")."""
    if float(x).is_integer():
        return f"{x:.0f}"
    return f"{x:.2f}" + (" (fewer sequences than replicas: some replicas idle)" if x < 1 else "")
