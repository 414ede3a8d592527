"""``rlsim timeline``: a Gantt chart of steady-state steps."""

from __future__ import annotations

from typing import Optional

import typer

from .common import user_errors
from .knobs import with_knobs


def register(app: typer.Typer) -> None:
    app.command("timeline")(timeline_cmd)


@user_errors
@with_knobs("timeline", defaults={"lag": 1})  # the scenario's flags: the field table (rlsim/fields.py)
def timeline_cmd(
    knobs: dict,
    out: Optional[str] = typer.Option(None, "--out", help="figure (.png/.svg/.pdf) or, with --format perfetto, a .json "
                                      "trace (default timeline.png / timeline.json)"),
    format_: Optional[str] = typer.Option(None, "--format", help="png | svg | pdf | perfetto (Chrome trace-event JSON "
                                          "for ui.perfetto.dev and chrome://tracing); default: from --out's suffix"),
    rounds: bool = typer.Option(True, "--rounds/--no-rounds", help="perfetto: one slice per engine iteration"),
    autoregressive: bool = typer.Option(False, "--autoregressive", help="draw the AR run instead of speculative"),
    replicas: int = typer.Option(8, "--replicas", help="generation replica rows to draw (at most the scenario's "
                                 "replicas, and 64)"),
    steps: int = typer.Option(3, "--steps", help="steady-state steps to draw (1..20)"),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="FIELD=VALUE for any scenario field (as rlsim project "
                                             "--set); repeatable"),
):
    """Gantt chart (PNG/SVG/PDF) or Perfetto trace (--format perfetto) of a few steady-state steps: trainer phases
    and generation replicas (non-colocated)."""
    from ..inputs import MAX_TIMELINE_REPLICAS, MAX_TIMELINE_STEPS, TIMELINE_WHY, check_count, check_output_file
    from ..scenario import build_scenario, with_separate_pools
    from ..report.timeline import plot_timeline

    from ..errors import ConfigurationError

    fmt = format_
    if fmt is None:
        fmt = "perfetto" if out is not None and out.lower().endswith(".json") else "figure"
    elif fmt not in ("png", "svg", "pdf", "perfetto"):
        raise ConfigurationError(f"--format = {fmt!r}; allowed: png, svg, pdf, perfetto")
    if out is None:
        out = "timeline.json" if fmt == "perfetto" else f"timeline.{fmt if fmt != 'figure' else 'png'}"
    if fmt == "perfetto":
        check_output_file(out, "--out", (".json",))
    else:
        check_output_file(out, "--out", (".png", ".svg", ".pdf"))
        if fmt != "figure" and not out.lower().endswith("." + fmt):
            raise ConfigurationError(f"--format {fmt} but --out {out} has another suffix; allowed: --out ending in .{fmt}")
        if not rounds:
            raise ConfigurationError("--no-rounds shapes the perfetto trace; a figure draws busy intervals (it would be "
                                     "ignored); allowed: with --format perfetto")
    check_count("--replicas", replicas, 1, MAX_TIMELINE_REPLICAS, TIMELINE_WHY)
    check_count("--steps", steps, 1, MAX_TIMELINE_STEPS, TIMELINE_WHY)

    from .cmd_project import parse_set_flags

    seed = knobs.pop("seed")
    flags = dict(knobs)
    flags.update(parse_set_flags(set_, flags))
    sc = build_scenario(**flags, seed=seed)
    sc = with_separate_pools(sc)
    from ..pipeline import build_setup

    from ..report.progress import StageProgress

    n_rep = build_setup(sc).n_replicas
    drawn = min(replicas, n_rep)
    what = f"{drawn} of {n_rep} generation replicas drawn" + (
        f" (--replicas {replicas}: the scenario has {n_rep} generation replicas, all drawn)" if replicas > n_rep
        else " (all)" if drawn == n_rep else f" (--replicas {replicas}; raise it to draw more)")
    with StageProgress(f"simulating {steps} steady-state steps of {sc.workload.model}"):
        if fmt == "perfetto":
            from ..report.perfetto import summarize, timeline_trace, write_trace

            trace = timeline_trace(sc, speculative=not autoregressive, n_replicas=replicas, n_steps=steps,
                                   rounds=rounds)
            p = write_trace(trace, out)
        else:
            p = plot_timeline(sc, out, speculative=not autoregressive, n_replicas=replicas, n_steps=steps)
    typer.echo(f"wrote {p}: {what}")
    if fmt == "perfetto":
        s = summarize(trace)
        typer.echo(f"open it in https://ui.perfetto.dev or chrome://tracing; {s['events']:,} events")
        for track, n in s["tracks"].items():
            typer.echo(f"  {track}: {n:,} slices")
        for proc, n in s["sequences"].items():
            typer.echo(f"  {proc} / sequences: {n:,} async slices")
