"""``rlsim validate paper`` and ``rlsim validate measured``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import user_errors

validate_app = typer.Typer(add_completion=False, no_args_is_help=True,
                           help="Validation against measurements: the study's Table 1, ground-truth rollouts, and "
                                "NeMo-RL's published step times at scale.")


def register(app: typer.Typer) -> None:
    app.add_typer(validate_app, name="validate")


@validate_app.command("paper")
@user_errors
def paper_cmd(
    refit: bool = typer.Option(False, "--refit", help="re-fit the AR baseline (response-length scale, MFUs) under the "
                                                      "default engine and write it into the workloads' YAML files"),
    calibration: str = typer.Option("auto", "--calibration", help="auto | roofline | calibrated"),
    engine: Optional[str] = typer.Option(None, "--engine", help="rollout engine profile (default vllm-0.17.1; ideal: "
                                         "the engine before profiles)"),
    settings: str = typer.Option("default", "--settings", help="default: the study's workloads as published and "
                                 "hinted; dapo-recipe: NeMo-RL v0.6.0's DAPO recipe settings (eager vLLM, TP 2, ...)"),
    mechanisms: bool = typer.Option(True, "--mechanisms/--no-mechanisms", help="also decompose the gap per engine "
                                    "mechanism (one extra simulation per mechanism)"),
    out: Optional[str] = typer.Option(None, "--out", help="write paper.md and paper.json into this folder"),
    as_json: bool = typer.Option(False, "--json"),
    sensitivity: bool = typer.Option(False, "--sensitivity", help="also re-predict with each unpublished setting "
                                     "changed (AR refit each time; a few minutes); with --out writes paper-sensitivity.md; with --json the "
                                     "output is {table, sensitivity}"),
):
    """The study's Table 1 beside rlsim's: stages, speedups, Amdahl bound, and where the gap goes."""
    from ..inputs import check_output_dir, write_dir_or_keep
    from ..validation import paper

    from ..errors import ConfigurationError

    if settings not in paper.SETTINGS:
        raise ConfigurationError(f"--settings = {settings!r}; allowed: {', '.join(paper.SETTINGS)}")
    workloads = paper.settings_workloads(settings)
    if out:  # before the minutes of work
        check_output_dir(out, "--out")
    if refit:
        for wl in workloads:
            f = paper.fit_workload(wl, calibration)
            p = paper.write_fit(f)
            typer.echo(f"fitted {wl}: response median {f.median_tokens:.0f} tokens, training MFU {f.training_mfu:.3f}, "
                       f"log-prob MFU {f.logprob_mfu:.3f} -> {p}", err=True)
    res = paper.predict_table(calibration, engine=engine, workloads=workloads, mechanisms=mechanisms)
    if out and not sensitivity:  # with --sensitivity only the sensitivity artefacts are written (the table's own
        # artefact, paper.md with its per-mechanism decomposition, is the plain command's)
        write_dir_or_keep(out, lambda d: paper.save(res, d, paper.artefact_name(settings, engine)), "--out")
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
        from .common import emit_json

        emit_json(res if results is None else {"table": res, "sensitivity": results})


@validate_app.command("measured")
@user_errors
def measured_cmd(
    gpu: Optional[str] = typer.Option(None, "--gpu", help="h100 | h200 | h200-moe | h200-eager | ... (default: every ground-truth "
                                    "set)"),
    calibration: str = typer.Option("auto", "--calibration"),
    engine: str = typer.Option("ideal", "--engine", help="engine profile to replay with (ideal: the harness's own "
                               "engine, the like-for-like check; another profile shows what its mechanisms add)"),
    out: Optional[str] = typer.Option(None, "--out", help="write measured_<gpu>.csv (measured_<gpu>-<engine>.csv for "
                                      "another engine) into this folder"),
):
    """Predicted vs measured ground-truth rollouts: generation time, iterations, speculative speedup."""
    import pandas as pd
    from ..report.tables import make_console
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
    con = make_console()
    for g in gpus:
        df = measured.compare(g, calibration, engine=engine)
        if out:
            name = f"measured_{g}.csv" if engine == "ideal" else f"measured_{g}-{engine}.csv"
            write_dir_or_keep(out, lambda d, df=df, name=name: df.to_csv(d / name, index=False, float_format="%.5g"),
                              "--out")
        eager = measured.set_is_eager(g)
        how = " (measured without CUDA graphs; replayed with enforce_eager)" if eager else ""
        t = Table(title=f"ground-truth rollouts on {g.upper()}: predicted vs measured{how}", title_justify="left")
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
        if eager and measured.graphed_twin(g):
            pr = measured.eager_vs_graphed(g, calibration=calibration, engine=engine)
            t2 = Table(title=f"eager / graphed time, same runs measured in the same call ({measured.graphed_twin(g)})",
                       title_justify="left")
            for c in ("run", "k", "N", "meas eager/graphs", "pred eager/graphs", "ratio err"):
                t2.add_column(c, justify="right")
            for _, r in pr.iterrows():
                t2.add_row(r["run_id"], str(r["k"]), str(r["N"]), f"{r['meas_ratio']:.2f}", f"{r['pred_ratio']:.2f}",
                           f"{r['ratio_err']:+.1%}")
            con.print(t2)


@validate_app.command("nemo-rl")
@user_errors
def nemo_rl_cmd(
    calibration: str = typer.Option("auto", "--calibration", help="auto | roofline | calibrated"),
    out: Optional[str] = typer.Option(None, "--out", help="write nemo-rl.md / .json (and with --gb200 "
                                      "nemo-rl-gb200-predictions.md / .json) into this folder"),
    gb200: bool = typer.Option(False, "--gb200", help="also predict the withheld GB200-NVL72 rows"),
    rows: Optional[str] = typer.Option(None, "--rows", help="comma list of recipe names (default: every row)"),
    as_json: bool = typer.Option(False, "--json"),
):
    """NeMo-RL v0.6.0's measured H100 step times (DeepSeek-V3, Qwen3-235B-A22B, Qwen3-30B-A3B) beside rlsim's,
    with the phases rlsim predicts and the signed error."""
    from ..errors import ConfigurationError
    from ..validation import nemo_rl as v

    sel = v.H100_ROWS
    if rows:
        names = [x.strip() for x in rows.split(",") if x.strip()]
        known = {r.recipe for r in v.H100_ROWS}
        bad = [n for n in names if n not in known]
        if bad:
            raise ConfigurationError(f"--rows {', '.join(bad)}: unknown; allowed: {', '.join(sorted(known))}")
        sel = tuple(r for r in v.H100_ROWS if r.recipe in names)

    def progress(what):
        typer.echo(f"  {what} ...", err=True)

    res = v.validate(calibration, sel, progress)
    g = v.predict_gb200(calibration, sel, progress) if gb200 else None
    if out:
        for p in v.save(res, Path(out), g):
            typer.echo(f"wrote {p}", err=True)
    if as_json:
        from .common import emit_json

        emit_json({"summary": v.summary(res), "rows": res} | ({"gb200": g} if g else {}))
        return
    typer.echo(v.format_report(res))
    if g:
        typer.echo(v.format_gb200(g))
