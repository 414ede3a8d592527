"""``rlsim timeline``: a Gantt chart of steady-state steps."""

from __future__ import annotations

from typing import Optional

import typer

from .cli import user_errors


def register(app: typer.Typer) -> None:
    app.command("timeline")(timeline_cmd)


@user_errors
def timeline_cmd(
    out: str = typer.Option("timeline.png", "--out", help="PNG or SVG path"),
    model: Optional[str] = typer.Option(None, "--model"),
    workload: Optional[str] = typer.Option(None, "--workload"),
    hardware: Optional[str] = typer.Option(None, "--hardware"),
    gpus: Optional[int] = typer.Option(None, "--gpus"),
    k: Optional[int] = typer.Option(None, "--k"),
    acceptance_length: Optional[float] = typer.Option(None, "--acceptance-length"),
    lag: int = typer.Option(1, "--lag"),
    gen_gpus: Optional[int] = typer.Option(None, "--gen-gpus"),
    train_gpus: Optional[int] = typer.Option(None, "--train-gpus"),
    autoregressive: bool = typer.Option(False, "--autoregressive", help="draw the AR run instead of speculative"),
    replicas: int = typer.Option(8, "--replicas", help="generation replica rows to draw (at most the scenario's "
                                 "replicas, and 64)"),
    steps: int = typer.Option(3, "--steps", help="steady-state steps to draw (1..20)"),
    seed: int = typer.Option(0, "--seed"),
):
    """Gantt chart of a few steady-state steps: trainer and generation replicas (non-colocated)."""
    from ..inputs import MAX_TIMELINE_REPLICAS, MAX_TIMELINE_STEPS, TIMELINE_WHY, check_count, check_output_file
    from ..scenario import build_scenario
    from .timeline import plot_timeline

    check_output_file(out, "--out", (".png", ".svg", ".pdf"))
    check_count("--replicas", replicas, 1, MAX_TIMELINE_REPLICAS, TIMELINE_WHY)
    check_count("--steps", steps, 1, MAX_TIMELINE_STEPS, TIMELINE_WHY)

    sc = build_scenario(model=model, workload=workload, hardware=hardware, gpus=gpus, k=k,
                        acceptance_length=acceptance_length, lag=lag, gen_gpus=gen_gpus, train_gpus=train_gpus, seed=seed)
    if sc.workload.colocated:
        sc = sc.model_copy(update={"workload": sc.workload.model_copy(update={"colocated": False})})
    from ..pipeline import build_setup

    n_rep = build_setup(sc).n_replicas
    p = plot_timeline(sc, out, speculative=not autoregressive, n_replicas=replicas, n_steps=steps)
    typer.echo(f"wrote {p}" + (f" (--replicas {replicas}: the scenario has {n_rep} generation replicas, all drawn)"
                               if replicas > n_rep else ""))
