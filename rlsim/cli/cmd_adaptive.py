"""``rlsim optimize-k`` (the search itself: rlsim/studies/optimize_k.py) and the printing of ``rlsim project --steps N``
(the drift run: rlsim/studies/drift_runs.py)."""

from __future__ import annotations

import math
from typing import Optional

import typer

from .common import emit_json, user_errors


def register(app: typer.Typer) -> None:
    app.command("optimize-k")(user_errors(optimize_k_cmd))


def print_optimize_tree(res: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    c = Console()
    t = Table(title=(f"{res['model']} on {res['gpus']} x {res['hardware']} ({res['workload']}), engine {res['engine']}: "
                     f"best chain vs best tree per live batch size (a replica holds up to "
                     f"{res['sequences_per_replica_max']} in the step; "
                     f"memory limit {res['memory_limit_gib']} GiB/GPU, verification {res['verification']})"),
              title_justify="left")
    for col in ("batch", "best chain", "AL", "tok/s", "best tree", "AL ", "tok/s ", "tree / chain"):
        t.add_column(col, justify="right")
    rows = res["by_batch"]
    show = sorted({1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, rows[-1]["batch"]} & {r["batch"] for r in rows})
    for r in rows:
        if r["batch"] not in show:
            continue
        ch, tr = r["chain"] or {}, r["tree"] or {}
        t.add_row(str(r["batch"]), ch.get("label", "-"), f"{ch.get('acceptance_length', 0):.2f}",
                  f"{ch.get('goodput_tok_s', 0):,.0f}", tr.get("label", "-"), f"{tr.get('acceptance_length', 0):.2f}",
                  f"{tr.get('goodput_tok_s', 0):,.0f}", f"{r['tree_over_chain']:.3f}" if r["tree_over_chain"] else "-")
    c.print(t)
    x = res["crossover_batch"]
    c.print("tree stops paying: " + ("never within the table (it pays at every batch size)" if x is None else
                                    f"from batch size {x} on" if x > 1 else "at every batch size (never pays)"))
    for which, f in res["best_fixed"].items():
        sim = (f"; simulated generation {f['generation_s']:.2f} s (AR {f['ar_generation_s']:.2f} s), step {f['step_s']:.2f} s"
               if "generation_s" in f else "")
        c.print(f"best fixed {which}: {f['label']} (AL {f['acceptance_length']:.2f}){sim}")
    c.print(f"[dim]acceptance: {res['acceptance']}; trees: {res['tree_family']}; rank decay "
            f"{res['rank_decay'] if res['rank_decay'] is not None else 'default 0.7'} (an assumption, docs/speculation-trees.md)[/dim]")


def print_optimize_k(res: dict) -> None:
    from ..report.tables import make_console
    from rich.table import Table

    c = make_console()
    t = Table(title=(f"{res['model']} on {res['gpus']} x {res['hardware']} ({res['workload']}): up to "
                     f"{res['sequences_per_replica_max']} sequences per replica, {res['samples']} sampled step(s)"),
              title_justify="left")
    for col in ("k policy", "AL realised", "generation (s)", "step (s)", "gen. speedup vs AR", "step speedup vs AR"):
        t.add_column(col, justify="right" if col != "k policy" else "left")
    for k, r in res["fixed"].items():
        mark = " (best fixed)" if k == res["best_fixed_k"] else ""
        t.add_row(f"fixed k={k}{mark}", f"{r['al']:.2f}", f"{r['gen']:.2f}", f"{r['step']:.2f}",
                  f"{r['gen_ar'] / r['gen']:.2f}x", f"{r['step_ar'] / r['step']:.2f}x")
    if "reference_schedule" in res:
        r = res["reference_schedule"]
        t.add_row(f"vLLM example {r['schedule_text']}", f"{r['al']:.2f}", f"{r['gen']:.2f}", f"{r['step_with_capture']:.2f}",
                  f"{r['gen_ar'] / r['gen']:.2f}x", f"{r['step_ar'] / r['step_with_capture']:.2f}x")
    a = res["adaptive"]
    t.add_row(f"[bold]adaptive {res['schedule_text']}[/bold]", f"{a['al']:.2f}", f"{a['gen']:.2f}",
              f"{a['step_with_capture']:.2f}", f"{a['gen_ar'] / a['gen']:.2f}x", f"{a['step_ar'] / a['step_with_capture']:.2f}x")
    c.print(t)
    s = res["speedup_vs_best_fixed"]
    c.print(f"adaptive vs best fixed k = {res['best_fixed_k']}: rollout {s['generation']:.3f}x, end-to-end {s['step']:.3f}x")
    c.print(f"acceptance: {res['acceptance']}; AL by k: "
            + ", ".join(f"{k}: {v:.2f}" for k, v in res["acceptance_length_by_k"].items() if k > 0))
    c.print(f"[dim]switching cost: {res['switching_cost_charged']}[/dim]")


def print_drift_run(run, console=None, max_rows: int = 12) -> None:
    from ..report.tables import make_console
    from rich.table import Table

    c = console or make_console()
    n = len(run.steps)
    stride = max(1, math.ceil(n / max_rows))
    rows = sorted(set(list(range(0, n, stride)) + [n - 1]))
    cum = {m: run.cumulative(f"{m}_step_s") for m in ("ar", "offline", "online")}
    t = Table(title=f"{run.workload}: {n} RL steps, k = {run.k}, offline vs online draft (time in s)", title_justify="left")
    for col in ("step", "AL offline", "AL online", "step AR", "step offline", "step online", "online training +",
                "cum. AR", "cum. offline", "cum. online"):
        t.add_column(col, justify="right")
    for i in rows:
        s = run.steps[i]
        t.add_row(str(s.step), f"{s.al_offline:.3f}", f"{s.al_online:.3f}", f"{s.ar_step_s:.1f}", f"{s.offline_step_s:.1f}",
                  f"{s.online_step_s:.1f}", f"{s.online_training_extra_s:.2f}", f"{cum['ar'][i]:.0f}",
                  f"{cum['offline'][i]:.0f}", f"{cum['online'][i]:.0f}")
    c.print(t)
    tot = run.totals
    c.print(f"total: AR {tot['ar_step_s']:.0f} s, offline draft {tot['offline_step_s']:.0f} s ({tot['offline_vs_ar']:.3f}x), "
            f"online draft {tot['online_step_s']:.0f} s ({tot['online_vs_ar']:.3f}x, of which draft training "
            f"{tot['online_training_extra_s']:.1f} s); online vs offline {tot['online_vs_offline']:.4f}x")
    for note in run.notes:
        c.print(f"[dim]{note}[/dim]")


def optimize_k_cmd(
    workload: Optional[str] = typer.Option(None, "--workload", help="catalog workload name or YAML path"),
    model: Optional[str] = typer.Option(None, "--model", help="catalog model (alone: its default workload)"),
    hardware: Optional[str] = typer.Option(None, "--hardware", help="hardware profile (default: the workload's)"),
    gpus: Optional[int] = typer.Option(None, "--gpus", help="total GPUs"),
    k_max: int = typer.Option(7, "--k-max", help="largest k considered (the study measured up to 7)"),
    max_tiers: int = typer.Option(3, "--max-tiers", help="at most this many distinct k (CUDA-graph tiers); 0 = unlimited"),
    samples: int = typer.Option(1, "--samples", help="sampled steps averaged per configuration"),
    al_curve: Optional[str] = typer.Option(None, "--al-curve",
                                           help="ALs measured at several k, '3:3.32,5:4.35,7:5.06', or rl-zero / rl-think (the study's)"),
    acceptance_from: Optional[str] = typer.Option(None, "--acceptance-from", help="vLLM metrics / NeMo-RL log to fit rates from"),
    draft_quality: Optional[float] = typer.Option(None, "--draft-quality", help="per-token acceptance rate (0..1)"),
    amortise_steps: int = typer.Option(100, "--amortise-steps", help="steps over which CUDA-graph capture is amortised"),
    seed: int = typer.Option(0, "--seed"),
    calibration: str = typer.Option("auto", "--calibration", help="auto | roofline | calibrated"),
    tree: bool = typer.Option(False, "--tree", help="search draft shapes instead: the best chain (steps) and the best "
                              "tree (steps, topk, draft tokens) per batch size, under --memory-limit-gib"),
    engine: Optional[str] = typer.Option(None, "--engine", help="with --tree: rollout engine profile (default vllm-0.17.1)"),
    steps_max: int = typer.Option(7, "--steps-max", help="with --tree: deepest chain / tree considered"),
    topk: str = typer.Option("2,4,8", "--topk", help="with --tree: topk values of the trees (SGLang eagle_topk; vLLM: "
                             "branches of a static tree)"),
    draft_tokens: str = typer.Option("4,8,16,32,64", "--draft-tokens", help="with --tree: SGLang num_draft_tokens "
                                     "values (root included)"),
    memory_limit_gib: Optional[float] = typer.Option(None, "--memory-limit-gib", help="with --tree: GPU memory the engine "
                                                     "may use per GPU (default: HBM x gpu_memory_utilization)"),
    tree_verification: Optional[str] = typer.Option(None, "--tree-verification", help="with --tree: tree | chain "
                                                    "(default: the engine's)"),
    tree_rank_decay: Optional[float] = typer.Option(None, "--tree-rank-decay", help="with --tree: per-rank acceptance "
                                                    "decay (default 0.7, an assumption)"),
    no_simulate: bool = typer.Option(False, "--no-simulate", help="with --tree: the goodput table only"),
    batch_max: Optional[int] = typer.Option(None, "--batch-max", help="with --tree: tabulate batch sizes up to this "
                                            "(default: the most sequences a replica holds in the step)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
):
    """Find the k-by-batch-size schedule that maximises goodput and compare it with the best fixed k (with --tree:
    the best chain and tree shape per batch size)."""
    from ..errors import ConfigurationError

    tree_only = {"--engine": engine, "--memory-limit-gib": memory_limit_gib, "--tree-verification": tree_verification,
                 "--tree-rank-decay": tree_rank_decay, "--no-simulate": no_simulate or None, "--batch-max": batch_max}
    if not tree:
        given = [f for f, v in tree_only.items() if v is not None]
        if given:
            raise ConfigurationError(f"{given[0]} applies to optimize-k --tree (it would be ignored); allowed: with --tree")
    if tree:
        if max_tiers != 3 or amortise_steps != 100:
            raise ConfigurationError("--max-tiers / --amortise-steps shape a k schedule, not the --tree search (they would "
                                     "be ignored); allowed: without --tree")
        from .cmd_sweep import parse_values
        from ..studies.optimize_k import optimize_tree

        res = optimize_tree(workload=workload, model=model, hardware=hardware, gpus=gpus, engine=engine, steps_max=steps_max,
                            topks=tuple(parse_values(topk, int, "topk")),
                            draft_tokens=tuple(parse_values(draft_tokens, int, "draft_tokens")),
                            memory_limit_gib=memory_limit_gib, tree_verification=tree_verification,
                            tree_rank_decay=tree_rank_decay, al_curve=al_curve, acceptance_from=acceptance_from,
                            draft_quality=draft_quality, samples=samples, seed=seed, calibration=calibration,
                            simulate=not no_simulate, batch_max=batch_max)
        if as_json:
            emit_json(res)
        else:
            print_optimize_tree(res)
        return
    from ..studies.optimize_k import optimize_k

    res = optimize_k(workload=workload, model=model, hardware=hardware, gpus=gpus, k_max=k_max, max_tiers=max_tiers or None,
                     samples=samples, al_curve=al_curve, acceptance_from=acceptance_from, draft_quality=draft_quality,
                     amortise_steps=amortise_steps, seed=seed, calibration=calibration)
    if as_json:
        emit_json(res)
    else:
        print_optimize_k(res)


def run_drift_steps(sc, steps: int, drift_steps: float = 650.0, drift_floor: float = 0.8, adapt_steps: float = 85.0,
                    draft_init: float = 1.0, as_json: bool = False, gpu_hour_price: float | None = None) -> None:
    """``rlsim project --steps N``: offline vs online draft over N synchronous steps, and what the run costs."""
    from ..report.progress import StageProgress
    from ..studies.drift_runs import simulate_drift_steps

    with StageProgress(f"{steps} RL steps, offline vs online draft", total=steps) as bar:
        run, cost = simulate_drift_steps(sc, steps, drift_steps, drift_floor, adapt_steps, draft_init, gpu_hour_price,
                                         on_step=lambda s: bar.advance(f"step {s + 1}"))
    if as_json:
        emit_json(run.to_dict() | {"cost": cost})
        return
    print_drift_run(run)
    m = cost["modes"]
    line = (f"cost: {cost['gpus']:,} GPUs; GPU-hours per run of {steps:,} steps: AR {m['autoregressive']['gpu_hours_per_run']:,.1f}, "
            f"offline draft {m['offline_draft']['gpu_hours_per_run']:,.1f}, online draft "
            f"{m['online_draft']['gpu_hours_per_run']:,.1f}")
    if gpu_hour_price is not None:
        line += (f"; at ${gpu_hour_price:,.2f} per GPU-hour: offline draft ${m['offline_draft']['dollars_per_run']:,.0f}, "
                 f"online draft ${m['online_draft']['dollars_per_run']:,.0f} per run")
    typer.echo(line)
