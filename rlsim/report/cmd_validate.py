"""``rlsim validate paper`` and ``rlsim validate measured``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .cli import user_errors

validate_app = typer.Typer(add_completion=False, no_args_is_help=True,
                           help="Validation against measurements: the study's Table 1, and ground-truth rollouts.")


def register(app: typer.Typer) -> None:
    app.add_typer(validate_app, name="validate")


@validate_app.command("paper")
@user_errors
def paper_cmd(
    refit: bool = typer.Option(False, "--refit", help="re-fit the AR baseline (response-length scale, MFUs) and write "
                                                      "it into workloads/rl-zero-8b.yaml and rl-think-8b.yaml"),
    calibration: str = typer.Option("auto", "--calibration", help="auto | roofline | calibrated"),
    out: Optional[str] = typer.Option(None, "--out", help="write paper.md and paper.json into this folder"),
    as_json: bool = typer.Option(False, "--json"),
    sensitivity: bool = typer.Option(False, "--sensitivity", help="also re-predict with each unpublished setting "
                                     "changed (AR refit each time; a few minutes); with --out writes paper-sensitivity.md; with --json the "
                                     "output is {table, sensitivity}"),
):
    """The study's Table 1 beside rlsim's: stages, speedups, Amdahl bound, and where the gap goes."""
    from ..inputs import check_output_dir, write_dir_or_keep
    from ..validation import paper

    if out:  # before the minutes of work
        check_output_dir(out, "--out")
    if refit:
        for wl in paper.WORKLOADS:
            f = paper.fit_workload(wl, calibration)
            p = paper.write_fit(f)
            typer.echo(f"fitted {wl}: response median {f.median_tokens:.0f} tokens, training MFU {f.training_mfu:.3f}, "
                       f"log-prob MFU {f.logprob_mfu:.3f} -> {p}", err=True)
    res = paper.predict_table(calibration)
    if out:
        write_dir_or_keep(out, lambda d: paper.save(res, d), "--out")
    if not as_json:
        typer.echo(paper.format_report(res))
        bad = paper.check_targets(res)
        typer.echo("targets (spec k=3 generation and step within 10%): " + ("met" if not bad else "MISSED: " + "; ".join(bad)))
    results = None
    if sensitivity:
        from dataclasses import asdict

        from ..validation import paper_sensitivity as ps

        n = len(paper.WORKLOADS) * len(ps.VARIANTS)  # the defaults sensitivity() runs
        done = iter(range(1, n + 1))
        results = ps.sensitivity(calibration, progress=lambda what: typer.echo(f"[{next(done)}/{n}] {what}", err=True))
        if out:
            write_dir_or_keep(out, lambda d: ps.save_sensitivity(results, d), "--out")
        if not as_json:
            typer.echo(ps.format_sensitivity(results))
        results = [asdict(r) for r in results]
    if as_json:  # one document: the table, and with --sensitivity {"table": ..., "sensitivity": [...]}
        from .cli import emit_json

        emit_json(res if results is None else {"table": res, "sensitivity": results})


@validate_app.command("measured")
@user_errors
def measured_cmd(
    gpu: Optional[str] = typer.Option(None, "--gpu", help="h100 | h200 | h200-moe (default: every ground-truth set)"),
    calibration: str = typer.Option("auto", "--calibration"),
    out: Optional[str] = typer.Option(None, "--out", help="write measured_<gpu>.csv into this folder"),
):
    """Predicted vs measured ground-truth rollouts: generation time, iterations, speculative speedup."""
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    from ..errors import ConfigurationError
    from ..inputs import check_output_dir, write_dir_or_keep
    from ..validation import measured

    if out:
        check_output_dir(out, "--out")
    avail = measured.available_gpus()
    if gpu is not None and gpu not in avail:
        raise ConfigurationError(f"--gpu {gpu!r}: no ground-truth rollouts for it; allowed: {', '.join(avail)}")
    gpus = [gpu] if gpu else avail
    con = Console()
    for g in gpus:
        df = measured.compare(g, calibration)
        if out:
            write_dir_or_keep(out, lambda d, df=df, g=g: df.to_csv(d / f"measured_{g}.csv", index=False,
                                                                     float_format="%.5g"), "--out")
        t = Table(title=f"ground-truth rollouts on {g.upper()}: predicted vs measured", title_justify="left")
        for c in ("run", "k", "AL", "N", "meas s", "pred s", "err", "meas it", "pred it", "meas x", "pred x", "x err"):
            t.add_column(c, justify="right")
        for _, r in df.iterrows():
            sp = "" if pd.isna(r["meas_speedup"]) else f"{r['meas_speedup']:.2f}"
            pp = "" if pd.isna(r["pred_speedup"]) else f"{r['pred_speedup']:.2f}"
            se = "" if pd.isna(r["speedup_err"]) else f"{r['speedup_err']:+.1%}"
            t.add_row(r["run_id"], str(r["k"]), f"{r['target_al']:.1f}", str(r["N"]), f"{r['meas_time_s']:.2f}",
                      f"{r['pred_time_s']:.2f}", f"{r['time_err']:+.1%}", str(r["meas_iterations"]),
                      str(r["pred_iterations"]), sp, pp, se)
        con.print(t)
        e = df["time_err"].abs()
        s = df["speedup_err"].abs().dropna()
        con.print(f"generation time |error|: median {e.median():.1%}, max {e.max():.1%} (targets 5% / 10%); "
                  f"speedup |error|: median {s.median():.1%}, max {s.max():.1%} (target 5%)")
        cx = measured.crossover(df)
        if len(cx):
            con.print("crossover (smallest start batch where speculation stops paying; None = pays at every measured N):")
            for _, r in cx.iterrows():
                fmt = lambda v: "pays at every N" if v is None or pd.isna(v) else f"N={int(v)}"  # noqa: E731
                con.print(f"  k={r['k']} AL={r['target_al']:.1f}: measured {fmt(r['meas_crossover_N'])}, predicted "
                          f"{fmt(r['pred_crossover_N'])}  (speedup by N measured {r['meas_speedup_by_N']}, predicted "
                          f"{r['pred_speedup_by_N']})")
