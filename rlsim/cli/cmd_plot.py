"""``rlsim plot ...``: figures from a sweep (run here from flags/YAML, or read with ``--from results.csv``).

    rlsim plot speedup-vs-k --workload rl-zero-8b,rl-think-8b --k 1..7 --draft-quality 0.6..0.9..0.1 --out k.png
    rlsim plot heatmap --from results.parquet --out heatmap.svg
    rlsim plot phases --workload rl-think-8b --k 1,3,5,7 --out phases.png
    rlsim plot speedup-vs-gpus --workload rl-zero-8b --gpus 8,16,32,64,128 --out gpus.png
    rlsim plot speedup-vs-lag --workload rl-think-8b --lag 0,1,2,3 --out lag.png

Every sweep flag of ``rlsim sweep`` works here; axes not given take the plot's defaults (shown in
``--help``). With ``--from``, axis flags filter the table's rows instead.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Optional

import typer

from .common import user_errors
from .cmd_sweep import (ADDRESS_OPT, CACHE_OPT, EXECUTOR_OPT, GRID_OPT, NO_CACHE_OPT, SEEDS_OPT, SET_OPT, WORKERS_OPT,
                        collect_axes, run_sweep_from_flags)
from .knobs import AXIS_FLAGS

plot_app = typer.Typer(no_args_is_help=True, help="Figures (PNG/SVG/PDF) of sweeps: speedup vs k, heatmaps, phases, "
                                                  "GPUs, lag.")

_P = inspect.Parameter
_KW = _P.KEYWORD_ONLY

PLOTS = {
    "speedup-vs-k": {
        "help": "Rollout and end-to-end speedup vs k, one line per draft quality (95% CI error bars).",
        "defaults": {"workload": ["rl-zero-8b"], "k": [1, 2, 3, 4, 5, 6, 7], "draft_quality": [0.5, 0.6, 0.7, 0.8, 0.9]},
        "options": {"quality": ("--quality", "auto", "line colour column: draft_quality, acceptance_length_input, drafter"),
                    "metric": ("--metric", "speedup_generation,speedup_step", "metric columns, one panel each"),
                    "facet": ("--facet", "workload", "one row of panels per value of this column")},
    },
    "heatmap": {
        "help": "Speedup over k x draft quality, annotated, one panel per metric and workload.",
        "defaults": {"workload": ["rl-zero-8b"], "k": [1, 2, 3, 4, 5, 6, 7], "draft_quality": [0.5, 0.6, 0.7, 0.8, 0.9]},
        "options": {"x": ("--x", "k", "column across"), "y": ("--y", "draft_quality", "column up"),
                    "metric": ("--metric", "speedup_generation,speedup_step", "metric columns, one panel each"),
                    "facet": ("--facet", "workload", "one row of panels per value of this column")},
    },
    "phases": {
        "help": "Stacked step time by phase, autoregressive vs speculative, for each value of --by.",
        "defaults": {"workload": ["rl-zero-8b"], "k": [1, 3, 5, 7]},
        "options": {"by": ("--by", "k", "one pair of bars per value of this column"),
                    "facet": ("--facet", "workload", "one panel per value of this column")},
    },
    "speedup-vs-gpus": {
        "help": "Step and rollout times (AR solid, speculative dashed) with the speedup on a second axis, vs GPU count.",
        "defaults": {"workload": ["rl-zero-8b"], "gpus": [8, 16, 32, 64, 128]},
        "options": {"x": ("--x", "gpus", "gpus, gen_gpus or train_gpus"),
                    "hue": ("--hue", "auto", "line colour column (auto: the first other axis that varies)"),
                    "metric": ("--metric", "speedup_step,speedup_generation", "speedups, one panel each with the AR and "
                               "speculative times they compare"),
                    "facet": ("--facet", "workload", "one row of panels per value of this column")},
    },
    "speedup-vs-lag": {
        "help": "Step and rollout times (AR solid, speculative dashed) with the speedup on a second axis, vs policy lag "
                "(max_trajectory_age_steps).",
        "defaults": {"workload": ["rl-think-8b"], "lag": [0, 1, 2, 3]},
        "options": {"hue": ("--hue", "auto", "line colour column (auto: the first other axis that varies)"),
                    "metric": ("--metric", "auto", "speedups, one panel each with the times they compare (auto: step, "
                               "generation, exposed generation)"),
                    "facet": ("--facet", "workload", "one row of panels per value of this column")},
    },
}


def _params(name: str) -> list[inspect.Parameter]:
    spec = PLOTS[name]
    ps = [
        _P("from_", _KW, default=typer.Option(None, "--from", help="a sweep results file (.csv/.parquet) to plot"),
           annotation=Optional[Path]),
        _P("out", _KW, default=typer.Option(None, "--out", help=f"figure file .png/.svg/.pdf (default rlsim-{name}.png)"),
           annotation=Optional[Path]),
        _P("save_results", _KW, default=typer.Option(None, "--save-results", help="also write the sweep table (.csv/.parquet)"),
           annotation=Optional[Path]),
        _P("grid", _KW, default=GRID_OPT, annotation=Optional[Path]),
    ]
    for axis, opt in AXIS_FLAGS.items():
        ps.append(_P(axis, _KW, default=opt, annotation=Optional[str]))
    ps += [
        _P("set_", _KW, default=SET_OPT, annotation=Optional[list[str]]),
        _P("seeds", _KW, default=SEEDS_OPT, annotation=Optional[str]),
        _P("executor", _KW, default=EXECUTOR_OPT, annotation=Optional[str]),
        _P("address", _KW, default=ADDRESS_OPT, annotation=Optional[str]),
        _P("workers", _KW, default=WORKERS_OPT, annotation=Optional[int]),
        _P("cache_dir", _KW, default=CACHE_OPT, annotation=Optional[Path]),
        _P("no_cache", _KW, default=NO_CACHE_OPT, annotation=bool),
        _P("progress", _KW, default=typer.Option(True, "--progress/--no-progress", help="progress bar on stderr"),
           annotation=bool),
    ]
    for opt_name, (flag, default, help_) in spec["options"].items():
        ps.append(_P(opt_name, _KW, default=typer.Option(default, flag, help=help_), annotation=str))
    return ps


def _filter(df, axes: dict):
    from ..errors import ConfigurationError

    if df.empty:
        raise ConfigurationError("the --from table has no rows: nothing to plot")
    for col, vals in axes.items():
        if col not in df.columns:
            raise ConfigurationError(f"--from table has no column {col!r} to filter on")
        df = df[df[col].isin(vals)]
    if df.empty:
        raise ConfigurationError("no rows of the --from table match the given flags")
    return df


def _metrics(text: str) -> list[str]:
    return [m.strip() for m in text.split(",") if m.strip()]


def _auto(v: str):
    return None if v in ("none", "") else v


def _draw(name: str, df, o: dict):
    from ..errors import ConfigurationError
    from ..report import plots

    default = PLOTS[name]["options"].get("metric", (None, None))[1]
    if "metric" in o and o["metric"] not in ("auto", default):  # asked for by name: every one must exist
        missing = [m for m in _metrics(o["metric"]) if m not in df.columns]
        if missing:
            raise ConfigurationError(f"--metric {missing[0]}: the sweep table has no such column; allowed: "
                                     f"{', '.join(c for c in df.columns if c.startswith(('speedup', 'ar_', 'spec_')))}")

    if name == "speedup-vs-k":
        return plots.speedup_vs_k(df, quality=_auto(o["quality"]), metrics=_metrics(o["metric"]), facet=_auto(o["facet"]))
    if name == "heatmap":
        return plots.heatmap(df, x=o["x"], y=o["y"], metrics=_metrics(o["metric"]), facet=_auto(o["facet"]))
    if name == "phases":
        return plots.phase_bars(df, by=o["by"], facet=_auto(o["facet"]))
    if name == "speedup-vs-gpus":
        return plots.speedup_vs_gpus(df, x=o["x"], hue=_auto(o["hue"]), metrics=_metrics(o["metric"]),
                                     facet=_auto(o["facet"]))
    return plots.speedup_vs_lag(df, hue=_auto(o["hue"]), facet=_auto(o["facet"]),
                                metrics=None if o["metric"] == "auto" else _metrics(o["metric"]))


def _make(name: str):
    spec = PLOTS[name]

    def command(**kw):
        from ..report import plots
        from ..studies.sweep import load_results, save_results

        from pathlib import Path

        from ..errors import ConfigurationError

        from ..inputs import check_output_file, write_or_keep

        out_p = Path(kw["out"] or f"rlsim-{name}.png")
        check_output_file(out_p, "--out", (".png", ".svg", ".pdf"))  # before any simulation
        if kw["save_results"] is not None:
            check_output_file(kw["save_results"], "--save-results", (".csv", ".parquet", ".pq", ".txt", ""),
                              create_parents=True)
        flags = {a: kw[a] for a in AXIS_FLAGS}
        axes = collect_axes(flags, kw["set_"])
        if kw["from_"] is not None:
            sweep_only = [f"--{n.replace('_', '-')}" for n in ("grid", "seeds", "executor", "address", "workers",
                                                               "cache_dir", "save_results") if kw[n] is not None]
            if sweep_only:
                raise ConfigurationError(f"--from plots a results file, so {sweep_only[0]} (which runs or saves a sweep) "
                                         "would be ignored; allowed: --from with axis flags (they filter its rows)")
            df = _filter(load_results(kw["from_"]), axes)
        else:
            defaults = dict(spec["defaults"])
            given = set(axes)
            if kw["grid"] is not None:
                from ..studies.sweep import load_grid_file

                given |= set(load_grid_file(kw["grid"])["axes"])
            if "model" in given or kw["grid"] is not None:
                defaults.pop("workload", None)
            if given & {"acceptance_length", "al"}:  # the acceptance is given: the default draft-quality axis would clash
                defaults.pop("draft_quality", None)
            from ..studies.sweep import canonical_axis

            tree_axes = {"speculative_num_steps", "speculative_eagle_topk", "speculative_num_draft_tokens",
                         "speculative_token_tree", "tree_rank_decay", "retrieval_tokens"}
            if {canonical_axis(g) for g in given} & tree_axes:
                # a sweep over tree shapes: the draft's acceptance is the workload's chain; the default k / draft-quality
                # axes (chain settings) would multiply the grid, so only those the plot's own axes name stay
                plot_axes = {canonical_axis(str(kw.get(o, ""))) for o in ("x", "y", "by") if kw.get(o)}
                for a in ("k", "draft_quality"):
                    if a not in plot_axes:
                        defaults.pop(a, None)
            df = run_sweep_from_flags(kw["grid"], axes, kw["seeds"], kw["executor"], kw["address"], kw["workers"],
                                      kw["cache_dir"], kw["no_cache"], defaults=defaults, progress=kw["progress"])
            if kw["save_results"] is not None:
                written = []
                write_or_keep(Path(kw["save_results"]), lambda p: written.append(save_results(df, p)), "--save-results")
                typer.echo(f"wrote {written[-1]}", err=True)
        fig = _draw(name, df, {k: kw[k] for k in spec["options"]})
        path = write_or_keep(out_p, lambda p: plots.save(fig, p), "--out")
        typer.echo(f"wrote {path}")

    params = _params(name)
    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    defaults = ", ".join(f"{a}={','.join(map(str, v))}" for a, v in spec["defaults"].items())
    command.__doc__ = f"{spec['help']} Default grid: {defaults}."
    command.__name__ = command.__qualname__ = f"plot_{name.replace('-', '_')}"
    return user_errors(command)


for _name in PLOTS:
    plot_app.command(_name)(_make(_name))


def register(app: typer.Typer) -> None:
    app.add_typer(plot_app, name="plot")
