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
    replicas: int = typer.Option(8, "--replicas", help="generation replica rows to draw"),
    steps: int = typer.Option(3, "--steps", help="steady-state steps to draw"),
    seed: int = typer.Option(0, "--seed"),
):
    """Gantt chart of a few steady-state steps: trainer and generation replicas (non-colocated)."""
    from pathlib import Path

    from ..errors import ConfigurationError
    from ..scenario import build_scenario
    from .timeline import plot_timeline

    if Path(out).suffix.lower() not in (".png", ".svg", ".pdf"):
        raise ConfigurationError(f"--out {out!r}: allowed formats .png, .svg, .pdf")
    if not Path(out).resolve().parent.is_dir():
        raise ConfigurationError(f"--out {out!r}: folder {str(Path(out).resolve().parent)!r} does not exist")
    if replicas < 1 or steps < 1:
        raise ConfigurationError(f"--replicas {replicas}, --steps {steps}: allowed >= 1")

    sc = build_scenario(model=model, workload=workload, hardware=hardware, gpus=gpus, k=k,
                        acceptance_length=acceptance_length, lag=lag, gen_gpus=gen_gpus, train_gpus=train_gpus, seed=seed)
    if sc.workload.colocated:
        sc = sc.model_copy(update={"workload": sc.workload.model_copy(update={"colocated": False})})
    p = plot_timeline(sc, out, speculative=not autoregressive, n_replicas=replicas, n_steps=steps)
    typer.echo(f"wrote {p}")
