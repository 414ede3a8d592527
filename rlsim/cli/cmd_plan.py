"""``rlsim plan``: the best configurations of a run under a GPU budget, and the Pareto front of step time vs
GPU-hours per step, each as the ``rlsim project`` command that reproduces it (the search: ``studies/plan.py``)."""

from __future__ import annotations

import math
from typing import Optional

import typer

from ..errors import ConfigurationError
from .common import emit_json, user_errors

MAX_PLAN_GPUS = 1 << 20
MAX_PLAN_SIMULATIONS = 10_000
MAX_PLAN_CANDIDATES = 200_000  # enumerated points (each estimated from the cost model; ~1 ms to tens of ms each)


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_cmd)


def parse_drafter(text: str) -> "DrafterOption":  # noqa: F821
    """``eagle3`` | ``eagle3:q=0.68`` (draft quality) | ``ngram:al=2.05@3,2.3@5`` (ALs at those k only)."""
    from ..speculation.drafters import DRAFTERS
    from ..studies.plan import DrafterOption

    name, _, spec = text.partition(":")
    name = name.strip()
    if name not in DRAFTERS:
        raise ConfigurationError(f"--drafter {text!r}: unknown drafter {name!r}; allowed: {', '.join(DRAFTERS)} "
                                 "(optionally NAME:q=QUALITY or NAME:al=AL@K,AL@K)")
    if not spec:
        return DrafterOption(name)
    key, _, val = spec.partition("=")
    key = key.strip()
    try:
        if key == "q":
            q = float(val)
            if not (0.0 <= q <= 1.0) or math.isnan(q):
                raise ValueError
            return DrafterOption(name, quality=q)
        if key == "al":
            pairs = []
            for item in val.split(","):
                a, _, k = item.partition("@")
                k_, a_ = int(k), float(a)
                if not (1 <= k_ <= 15) or not (1.0 <= a_ <= k_ + 1):
                    raise ConfigurationError(f"--drafter {text!r}: AL {a_:g} at k {k_} is impossible; allowed: k 1..15, "
                                             f"1 <= AL <= k+1")
                pairs.append((k_, a_))
            if len({k for k, _ in pairs}) != len(pairs):
                raise ValueError
            return DrafterOption(name, als=tuple(sorted(pairs)))
    except ValueError:
        pass
    raise ConfigurationError(f"--drafter {text!r}: expected NAME, NAME:q=QUALITY (0..1) or NAME:al=AL@K[,AL@K...] "
                             "(distinct k)")


@user_errors
def plan_cmd(
    model: Optional[str] = typer.Option(None, "--model", help="catalog model (alone: its default workload)"),
    workload: Optional[str] = typer.Option(None, "--workload", help="catalog workload name or YAML path"),
    hardware: Optional[str] = typer.Option(None, "--hardware", help="hardware profile (default: the workload's)"),
    gpus: int = typer.Option(..., "--gpus", help="GPU budget: the most GPUs the run may use"),
    engine: Optional[str] = typer.Option(None, "--engine", help="rollout engine profile (default vllm-0.17.1)"),
    max_lag: int = typer.Option(2, "--max-lag", help="largest policy lag searched (0 = synchronous only)"),
    k: Optional[str] = typer.Option(None, "--k", help="num_speculative_tokens searched, e.g. 0..7 (default) or 0,3,5"),
    tp: Optional[str] = typer.Option(None, "--tp", help="rollout tensor_parallel_size searched (default: 1..16 where "
                                     "the weights fit)"),
    expert_parallel: Optional[str] = typer.Option(None, "--expert-parallel", help="MoE: true,false (default both)"),
    drafter: Optional[list[str]] = typer.Option(None, "--drafter", help="drafter searched (repeatable): NAME (the "
                                                "workload's acceptance), NAME:q=QUALITY, NAME:al=AL@K,AL@K"),
    draft_quality: Optional[float] = typer.Option(None, "--draft-quality", help="per-token acceptance rate of the "
                                                  "workload's drafter (instead of the workload's AL)"),
    gpu_counts: Optional[str] = typer.Option(None, "--gpu-counts", help="GPU counts searched (default: the budget, "
                                             "1/2, 1/4 and 1/8 of it)"),
    in_flight: bool = typer.Option(False, "--in-flight-weight-updates", help="also search in-flight weight updates "
                                   "(lag >= 1: no drain before a weight sync; NeMo-RL async_grpo.in_flight_weight_updates)"),
    top: int = typer.Option(5, "--top", help="best configurations printed"),
    max_simulations: int = typer.Option(32, "--max-simulations", help="simulations at most (references included)"),
    time_budget: Optional[float] = typer.Option(None, "--time-budget", help="seconds after which no new round of "
                                                "simulations starts (default: none; a wall-clock budget makes the "
                                                "answer depend on the machine's speed)"),
    executor: str = typer.Option("process", "--executor", help="process (default) | ray | serial"),
    workers: Optional[int] = typer.Option(None, "--workers", help="local worker processes (default: all cores)"),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address"),
    cache_dir: Optional[str] = typer.Option(None, "--cache-dir", help="result cache (default $RLSIM_CACHE_DIR or "
                                            ".rlsim-cache/)"),
    steps: Optional[int] = typer.Option(None, "--steps", help="run length in steps: GPU-hours per run"),
    gpu_hour_price: Optional[float] = typer.Option(None, "--gpu-hour-price", help="price of one GPU-hour: dollars "
                                                   "per step and per run (rlsim ships no prices)"),
    plot_dir: Optional[str] = typer.Option(None, "--plot-dir", help="write pareto.png and scaling.png (step time and "
                                           "GPU-hours against GPU count) there"),
    seed: int = typer.Option(0, "--seed"),
    calibration: str = typer.Option("auto", "--calibration", help="auto | roofline | calibrated"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object: best, candidates, pareto, ..."),
):
    """Search the generation/training split, rollout TP/EP, k, drafter and policy lag under a GPU budget (memory
    as a constraint): the best configurations and the Pareto front of step time vs GPU-hours per step."""
    from ..inputs import LAG_WHY, MAX_LAG, MAX_RUN_STEPS, check_count, check_number, check_output_dir
    from .cmd_sweep import parse_values
    from ..studies.plan import DrafterOption, PlanInputs, plan

    check_count("--gpus", gpus, 1, MAX_PLAN_GPUS)
    check_count("--max-lag", max_lag, 0, MAX_LAG, LAG_WHY)
    check_count("--top", top, 1, 1000)
    check_count("--max-simulations", max_simulations, 1, MAX_PLAN_SIMULATIONS, "each is a full projection")
    if time_budget is not None:
        check_number("--time-budget", time_budget, 0.0, lo_open=True)
    if steps is not None:
        check_count("--steps", steps, 1, MAX_RUN_STEPS, "the run length the cost per run is counted over")
    if gpu_hour_price is not None:
        check_number("--gpu-hour-price", gpu_hour_price, 0.0, what="price of one GPU-hour")
    if executor not in ("process", "serial", "ray"):
        raise ConfigurationError(f"--executor = {executor!r}; allowed: process, serial, ray")
    if workers is not None:
        from ..inputs import MAX_WORKERS

        check_count("--workers", workers, 1, MAX_WORKERS, what="(local worker processes)")
    if plot_dir is not None:
        check_output_dir(plot_dir, "--plot-dir")
    ks = parse_values(k, int, "k") if k is not None else None
    if ks is not None and any(x < 0 or x > 15 for x in ks):
        raise ConfigurationError(f"--k {k!r}: allowed 0..15 (num_speculative_tokens)")
    tps = parse_values(tp, int, "tp") if tp is not None else None
    if tps is not None and any(x < 1 or x > 1024 for x in tps):
        raise ConfigurationError(f"--tp {tp!r}: allowed 1..1024 (tensor_parallel_size)")
    eps = parse_values(expert_parallel, bool, "expert_parallel") if expert_parallel is not None else None
    counts = parse_values(gpu_counts, int, "gpu_counts") if gpu_counts is not None else None
    if counts is not None and any(not (1 <= g <= gpus) for g in counts):
        raise ConfigurationError(f"--gpu-counts {gpu_counts!r}: each must lie in 1..--gpus ({gpus}): the budget")
    if draft_quality is not None and drafter:
        raise ConfigurationError("--draft-quality gives the workload drafter's quality; with --drafter give each "
                                 "drafter's own (NAME:q=QUALITY)")
    if draft_quality is not None:
        check_number("--draft-quality", draft_quality, 0.0, 1.0, what="per-token acceptance rate")
    base: dict = {}
    for key, v in (("model", model), ("workload", workload), ("hardware", hardware), ("engine", engine)):
        if v is not None:
            base[key] = v
    if seed:
        base["seed"] = seed
    if calibration != "auto":
        base["calibration"] = calibration
    from ..scenario import build_scenario

    sc0 = build_scenario(**base)  # the model / workload / hardware / engine must exist before anything else
    drafters = [parse_drafter(d) for d in drafter] if drafter else None
    if draft_quality is not None:
        drafters = [DrafterOption(sc0.drafter, quality=draft_quality)]
    if drafters:
        for d in drafters:
            if d.quality is None and not d.als and d.name != sc0.workload.speculation.method:
                raise ConfigurationError(f"--drafter {d.name}: workload {sc0.workload.name} gives the acceptance of "
                                         f"{sc0.workload.speculation.method!r} only; give {d.name}'s: {d.name}:q=QUALITY "
                                         f"or {d.name}:al=AL@K")
        if len({d for d in drafters}) != len(drafters):
            raise ConfigurationError("--drafter: the same drafter twice")
    if eps is not None:
        from ..catalog import load_model

        if not load_model(sc0.workload.model).is_moe and any(eps):
            raise ConfigurationError(f"--expert-parallel {expert_parallel!r}: {sc0.workload.model} is dense (expert "
                                     "parallelism would be ignored); allowed: false, or leave it out")
    inp = PlanInputs(base=base, gpus=gpus, gpu_counts=counts, max_lag=max_lag, ks=ks, tps=tps, expert_parallel=eps,
                     drafters=drafters, in_flight=in_flight, top=top, max_simulations=max_simulations,
                     time_budget_s=time_budget, executor=executor, workers=workers, address=address,
                     cache_dir=cache_dir, steps=steps, gpu_hour_price=gpu_hour_price)
    say = None if as_json else (lambda m: typer.echo(f"[plan] {m}", err=True))
    res = plan(inp, progress=say)
    if plot_dir is not None:
        from ..report.plan_plots import save_plan_plots

        paths = save_plan_plots(res, plot_dir)
        res.notes.append("plots: " + ", ".join(str(p) for p in paths))
    if as_json:
        emit_json(res.to_dict())
    else:
        print_plan(res)


def print_plan(res, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    c = console or Console()
    d = res.to_dict()
    inp = res.inputs
    est = d["search"]
    head = res.workload_label
    c.print(f"[bold]rlsim plan[/bold]: {head}, up to {inp.gpus:,} GPUs; lag 0..{inp.max_lag}")
    inf = "; ".join(f"{n} x {r}" for r, n in sorted(est["infeasible"].items(), key=lambda x: -x[1])[:4])
    c.print(f"search: {est['enumerated']:,} configurations, {sum(est['infeasible'].values()):,} infeasible"
            + (f" ({inf})" if inf else "") + f"; {est['feasible']:,} estimated from the cost model; {est['simulated']} "
            f"simulated in {est['rounds']} rounds, {est['pruned_dominated']:,} pruned as dominated; "
            f"{est['elapsed_s']:.0f} s; stopped: {est['stopped']}")
    price = inp.gpu_hour_price

    def table(title, rows, tag):
        t = Table(title=title, title_justify="left")
        for col in ("#", "step s", "GPU-h/step") + (("$/step",) if price is not None else ()) + (
                "GPUs", "configuration", "bound by"):
            t.add_column(col, justify="right" if col in ("#", "step s", "GPU-h/step", "$/step", "GPUs") else "left")
        for i, r in enumerate(rows, 1):
            b = r.get("bottleneck") or {}
            t.add_row(f"{tag}{i}", f"{r['step_s']:.1f}", f"{r['gpu_hours_per_step']:.3g}",
                      *((f"{r['dollars_per_step']:,.2f}",) if price is not None else ()), f"{r['gpus']:,}",
                      r["configuration"] + (" [reference]" if r.get("reference") else ""),
                      f"{b.get('bound_by', '?')} ({b.get('share', float('nan')):.0%})")
        c.print(t)
        for i, r in enumerate(rows, 1):
            c.print(f"  {tag}{i}: {r['command']}", soft_wrap=True)

    table("best configurations (simulated)", d["top"], "")
    best = d["best"]
    for ref in d["references"]:
        faster = ref["step_s"] / best["step_s"]
        c.print(f"vs {ref['reference']}: {ref['step_s']:.1f} s, {ref['gpu_hours_per_step']:.2f} GPU-h/step "
                f"({ref['configuration']}) -> best is {faster:.2f}x as fast, "
                f"{best['gpu_hours_per_step'] / ref['gpu_hours_per_step']:.2f}x the GPU-hours per step")
    table("Pareto front: step time vs GPU-hours per step (simulated)", d["pareto"], "P")
    t = Table(title="best by GPU count (simulated)", title_justify="left")
    for col in ("GPUs", "step s", "GPU-h/step", "configuration"):
        t.add_column(col, justify="right" if col != "configuration" else "left")
    for r in d["by_gpu_count"]:
        t.add_row(f"{r['gpus']:,}", f"{r['step_s']:.1f}", f"{r['gpu_hours_per_step']:.3g}", r["configuration"])
    c.print(t)
    b = best.get("bottleneck") or {}
    if b:
        c.print(f"best: {b.get('statement', '')}")
    if inp.steps is not None:
        c.print(f"per run of {inp.steps:,} steps: best {best['gpu_hours_per_run']:,.1f} GPU-hours"
                + (f", ${best['dollars_per_run']:,.0f}" if price is not None else ""))
    ratios = est["estimate_ratio_simulated_over_estimated"]
    if ratios:
        c.print("[dim]estimator check (smallest simulated / estimated step per family): "
                + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items()) + "[/dim]")
    for n in d["notes"]:
        c.print(f"[dim]{n}[/dim]")
