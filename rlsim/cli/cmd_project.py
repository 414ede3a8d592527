"""``rlsim project`` and ``rlsim iteration``."""

from __future__ import annotations

from typing import Optional

import typer

from .common import emit_json, user_errors
from .knobs import with_knobs


def register(app: typer.Typer) -> None:
    app.command("project")(project_cmd)
    app.command("iteration")(iteration_cmd)


@user_errors
@with_knobs("project")  # the scenario's flags: the field table (rlsim/fields.py)
def project_cmd(
    knobs: dict,
    timeline: Optional[str] = typer.Option(None, "--timeline", help="also draw a Gantt chart (PNG/SVG) of async steps"),
    seeds: int = typer.Option(1, "--seeds", help="also run seeds --seed..--seed+N-1 and report mean and min/max"),
    from_nemo_rl: Optional[str] = typer.Option(None, "--from-nemo-rl", help="NeMo-RL GRPO recipe (YAML) to read the "
                                               "scenario from; flags override it"),
    from_verl: Optional[str] = typer.Option(None, "--from-verl", help="verl trainer YAML, or a launch script running "
                                            "verl.trainer.main_ppo key=value ... (read on verl's defaults); flags "
                                            "override it"),
    verbose: bool = typer.Option(False, "--verbose", help="with --from-nemo-rl / --from-verl: list every key read and "
                                 "ignored"),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="FIELD=VALUE for any scenario field, the names of "
                                             "sweep axes (e.g. --set kv_cache_dtype=fp8 --set split=48:16); repeatable"),
    out: Optional[str] = typer.Option(None, "--out", help="also write the projection: .json (what --json prints) or "
                                      ".csv (one row: scenario and per-phase times)"),
    k_schedule: Optional[str] = typer.Option(None, "--k-schedule", help="k by live batch size, '1-16:5,17-64:3,65-1024:0' "
                                             "or JSON [[1,16,5],...] (vLLM num_speculative_tokens_per_batch_size)"),
    acceptance_from: Optional[str] = typer.Option(None, "--acceptance-from", help="fit per-position acceptance from "
                                                  "vLLM spec-decode metrics (Prometheus text) or a NeMo-RL JSON/JSONL log"),
    steps: Optional[int] = typer.Option(None, "--steps", help="run length in steps for the cost per run: a synchronous "
                                        "run simulates its N steps (offline vs online draft with drift); an "
                                        "asynchronous one (--lag >= 1) costs N x its steady-state step"),
    gpu_hour_price: Optional[float] = typer.Option(None, "--gpu-hour-price", help="price of one GPU-hour (your "
                                                   "currency; rlsim ships no prices): dollars per step and per run"),
    drift_steps: Optional[float] = typer.Option(None, "--drift-steps", help="with --steps: offline draft drift time "
                                                "constant in steps (0 = none; default 650)"),
    drift_floor: Optional[float] = typer.Option(None, "--drift-floor", help="with --steps: fraction of AL-1 a fully "
                                                "drifted draft keeps (default 0.8)"),
    adapt_steps: Optional[float] = typer.Option(None, "--adapt-steps", help="with --steps: online adaptation time "
                                                "constant in steps (default 85)"),
    draft_init: Optional[float] = typer.Option(None, "--draft-init", help="with --steps: draft's AL-1 at step 0 as a "
                                               "fraction of the workload's (1 = in-domain, the default; 0.81 = the "
                                               "study's UltraChat-init draft)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
):
    """Step time of one RL step, autoregressive vs speculative, phase by phase."""
    from ..api import build_scenario, project
    from ..studies.seeds import project_seeds, seed_list

    from ..errors import ConfigurationError
    from ..inputs import DRIFT_STEPS_WHY, MAX_DRIFT_STEPS, MAX_RUN_STEPS, check_count, check_number, check_output_file

    from ..fields import BY_NAME

    seed, calibration = knobs.pop("seed"), knobs.pop("calibration")
    draft_quality_decay = knobs.pop("draft_quality_decay")  # shapes --draft-quality (apply_project_extras)
    seed_list(seeds, first=seed, flag="--seeds")  # validate before simulating
    if gpu_hour_price is not None:
        check_number("--gpu-hour-price", gpu_hour_price, 0.0, what="price of one GPU-hour")
    drift = {"--drift-steps": drift_steps, "--drift-floor": drift_floor, "--adapt-steps": adapt_steps,
             "--draft-init": draft_init}
    if steps is None:
        given = [f for f, v in drift.items() if v is not None]
        if given:
            raise ConfigurationError(f"{given[0]} shapes the draft-drift run of --steps N, which is not given (it would be "
                                     "ignored); allowed: together with --steps")
    else:
        check_count("--steps", steps, 1, MAX_RUN_STEPS, "the run length the cost per run is counted over")
        for f, v in drift.items():
            if v is not None:
                check_number(f, v, 0.0)
    if timeline is not None:
        check_output_file(timeline, "--timeline", (".png", ".svg", ".pdf"))
    if out is not None:
        check_output_file(out, "--out", (".json", ".csv"))
    # a switch left off (--in-flight-weight-updates, --partial-rollouts) is not given; every other setting by its name
    flags = {n: (None if v is False and BY_NAME[n].default is False else v) for n, v in knobs.items()}
    flags.update(parse_set_flags(set_, flags))
    recipe = None
    if from_nemo_rl is not None and from_verl is not None:
        raise ConfigurationError("--from-nemo-rl and --from-verl both given; allowed: one config to read")
    if verbose and from_nemo_rl is None and from_verl is None:
        raise ConfigurationError("--verbose lists the keys of a config read with --from-nemo-rl or --from-verl, which "
                                 "is not given (it would be ignored)")
    if from_nemo_rl is not None or from_verl is not None:
        from ..studies.nemo_rl import merge_flags

        if from_nemo_rl is not None:
            from ..studies.nemo_rl import from_nemo_rl as read_recipe

            recipe = read_recipe(from_nemo_rl, engine=knobs["engine"])
        else:
            from ..studies.verl import from_verl as read_verl

            recipe = read_verl(from_verl, engine=knobs["engine"])
        flags = merge_flags(recipe, flags)  # flags win
    from .cmd_adaptive import run_drift_steps

    info: dict = {}
    recipe_options = flags.pop("options", None) or {}
    flags = apply_project_extras(flags, k_schedule, acceptance_from, draft_quality_decay, info=info)
    sc = build_scenario(**flags, seed=seed, calibration=calibration, options=recipe_options or None)
    for w_ in info.get("warnings", []):
        typer.echo(f"warning: {w_}", err=True)
    if steps is not None and sc.has_tree:
        raise ConfigurationError("--steps scales a chain's per-position acceptance over a run; with a draft tree it is not "
                                 "modelled (it would misprice the tree); allowed: --steps with a chain (--k)")
    if steps is not None and sc.lag == 0:  # a synchronous run of N steps, simulated step by step (draft drift)
        check_count("--steps", steps, 1, MAX_DRIFT_STEPS, DRIFT_STEPS_WHY)
        ignored = [f for f, on in (("--seeds", seeds > 1), ("--timeline", timeline is not None),
                                   ("--in-flight-weight-updates", knobs["in_flight_weight_updates"]),
                                   ("--partial-rollouts", knobs["partial_rollout"])) if on]
        if ignored:
            raise ConfigurationError(f"--steps runs the draft-drift comparison of synchronous steps, which does not use "
                                     f"{ignored[0]} (it would be ignored); allowed: one or the other")
        return run_drift_steps(sc, steps, 650.0 if drift_steps is None else drift_steps,
                               0.8 if drift_floor is None else drift_floor, 85.0 if adapt_steps is None else adapt_steps,
                               1.0 if draft_init is None else draft_init, as_json, gpu_hour_price=gpu_hour_price)
    if steps is not None:
        given = [f for f, v in drift.items() if v is not None]
        if given:
            raise ConfigurationError(f"{given[0]} shapes the draft drift of a synchronous run; at --lag {sc.lag} --steps "
                                     "only sets the run length of the cost (it would be ignored); allowed: with --lag 0")
    from ..report.progress import StageProgress

    with StageProgress(f"projecting {sc.workload.model} on {sc.workload.gpus} x {sc.workload.hardware}",
                       total=seeds) as bar:
        res = project(sc)
        bar.advance(f"seed {seed} done")
        res.notes.extend(info.get("notes", []) + [f"warning: {w_}" for w_ in info.get("warnings", [])])
        spread = project_seeds(sc, seeds, first=res, on_seed=lambda s_: bar.advance(f"seed {s_} done")) \
            if seeds > 1 else None
    cost = res.cost(steps, gpu_hour_price)
    if timeline:
        from ..report.timeline import plot_timeline

        from ..scenario import with_separate_pools

        plot_timeline(with_separate_pools(sc), timeline, flag="--timeline")
        if sc.workload.colocated:
            res.notes.append(f"--timeline {timeline}: drawn for separate generation and training pools (a timeline "
                             "shows the asynchronous pipeline's steps); the projection above is colocated")
    payload = res.to_dict() | {"cost": cost} | ({"seed_spread": spread.to_dict()} if spread else {})
    if recipe:
        from ..studies.configread import assumed_gpu_note

        payload[recipe_key(recipe)] = recipe.to_dict() | (
            {"assumed_gpu": assumed_gpu_note(recipe, sc)} if knobs["hardware"] is None else {})
    if "acceptance_source" in info:
        payload["acceptance_source"] = info["acceptance_source"]
    if out is not None:
        write_projection(out, res, payload)
    if as_json:
        emit_json(payload)
    else:
        from ..report.tables import projection_table

        projection_table(res, cost=cost)
        if recipe:
            from ..studies.nemo_rl import print_mapping

            print_mapping(recipe, verbose=verbose, scenario=sc, hardware_flag=knobs["hardware"])
        if spread:
            from ..report.tables import spread_table

            spread_table(spread)
        if out is not None:
            typer.echo(f"wrote {out}", err=True)


# ---------------------------------------------------------------------------------------------- rlsim project extras
def apply_project_extras(flags: dict, k_schedule: str | None = None, acceptance_from: str | None = None,
                         draft_quality_decay: float | None = None, info: dict | None = None) -> dict:
    """``rlsim project``'s flags that are read, not passed on (--k-schedule parsed, --acceptance-from fitted) ->
    build_scenario arguments (the k schedule is checked by build_scenario, once). ``info`` (a dict)
    receives ``acceptance_source`` (the trace fit) and ``notes`` / ``warnings`` saying where the acceptance came from
    and whether it is extrapolated to another k."""
    from ..errors import ConfigurationError
    from ..speculation.adaptive import parse_k_schedule
    from ..speculation.traces import load_acceptance_trace

    flags = dict(flags)
    if k_schedule is not None:
        flags["num_speculative_tokens_per_batch_size"] = [list(e) for e in parse_k_schedule(k_schedule)]
    if acceptance_from is not None:
        given = [n for n in ("acceptance_length", "draft_quality") if flags.get(n) is not None]
        if given:
            raise ConfigurationError(f"--acceptance-from gives the acceptance; drop --{given[0].replace('_', '-')}")
        fit = load_acceptance_trace(acceptance_from, k=flags.get("k"))
        flags["acceptance_rates_per_position"] = list(fit.unconditional_rates)
        if flags.get("k") is None:
            flags["k"] = fit.k
        if info is not None:
            info["acceptance_source"] = fit.as_dict()
            info.setdefault("notes", []).append(fit.describe())
            info["notes"] += [f"acceptance trace: {n}" for n in fit.notes]
            k = flags["k"]
            if k > fit.k:
                last = fit.model.conditional_rates[-1]
                info.setdefault("warnings", []).append(
                    f"--acceptance-from {acceptance_from} measured k = {fit.k}; projecting k = {k} extrapolates: "
                    f"positions {fit.k + 1}..{k} repeat the last measured conditional rate {last:.3f} (a trace taken "
                    f"at k = {k} measures them)")
            elif k < fit.k:
                info["notes"].append(f"k = {k} uses the first {k} of the trace's {fit.k} positions (exact: a shorter "
                                     "draft accepts its first positions as often)")
    if draft_quality_decay is not None:
        if flags.get("draft_quality") is None:
            raise ConfigurationError("--draft-quality-decay shapes --draft-quality: give --draft-quality too")
        flags["draft_quality_decay"] = draft_quality_decay
    return flags


def recipe_key(recipe) -> str:
    """The JSON key of an imported config: ``nemo_rl`` or ``verl``."""
    return "verl" if recipe.kind.startswith("verl") else "nemo_rl"


def parse_set_flags(items: list[str] | None, flags: dict) -> dict:
    """``--set FIELD=VALUE`` (one value each; the names of sweep axes) -> build_scenario arguments. A field given
    both as a flag and by --set with another value is refused."""
    from ..errors import ConfigurationError
    from .cmd_sweep import parse_values
    from ..studies.sweep import AXIS_TYPES, canonical_axis, scenario_kwargs

    out: dict = {}
    for s in items or []:
        if "=" not in s:
            raise ConfigurationError(f"--set {s!r}: expected FIELD=VALUE (e.g. --set kv_cache_dtype=fp8)")
        name, text = s.split("=", 1)
        name = canonical_axis(name)
        if not name:
            raise ConfigurationError(f"--set {s!r}: no field name before '='")
        values = parse_values(text, AXIS_TYPES.get(name, object), name)
        if len(values) != 1:
            raise ConfigurationError(f"--set {s}: {len(values)} values; project takes one per field (several sweep: "
                                     f"rlsim sweep --set {s})")
        for key, v in scenario_kwargs({name: values[0]}).items():
            if flags.get(key) is not None and flags[key] != v:
                raise ConfigurationError(f"--set {s}: {key} is also given as a flag ({flags[key]!r}); give it once")
            out[key] = v
    return out


def write_projection(path: str, res, payload: dict) -> None:
    """``--out``: the JSON of --json (.json), or one CSV row: the scenario's descriptors and every per-phase time."""
    from pathlib import Path

    from ..inputs import dumps_strict, write_or_keep

    p = Path(path)
    if p.suffix.lower() == ".json":
        write_or_keep(p, lambda q: q.write_text(dumps_strict(payload, indent=2) + "\n"), "--out")
        return
    import pandas as pd

    sc = res.scenario
    row = {k: sc.get(k) for k in ("workload", "model", "hardware", "engine", "gpus", "gen_gpus_resolved",
                                   "train_gpus_resolved", "colocated", "n_replicas", "num_prompts_per_step",
                                   "num_generations_per_prompt", "num_speculative_tokens", "drafter", "drafter_network",
                                   "max_trajectory_age_steps", "seed", "calibration")}
    row.update(res.summary_row())
    row.update({f"speedup_{k}": v for k, v in res.speedup.items()})
    write_or_keep(p, lambda q: pd.DataFrame([row]).to_csv(q, index=False), "--out")


@user_errors
def iteration_cmd(
    model: str = typer.Option(..., "--model"),
    hardware: str = typer.Option("gb200-nvl72", "--hardware"),
    batch: int = typer.Option(..., "--batch", help="decoding sequences"),
    context: int = typer.Option(..., "--context", help="KV length of each sequence (tokens)"),
    k: int = typer.Option(0, "--k", help="0: one decode iteration; >0: verify k+1 tokens + k draft passes"),
    drafter: str = typer.Option("eagle3", "--drafter"),
    tp: int = typer.Option(1, "--tp", help="tensor_parallel_size"),
    ep: bool = typer.Option(False, "--ep/--no-ep", help="enable_expert_parallel"),
    dtype: str = typer.Option("bf16", "--dtype", help="bf16 | fp8"),
    calibration: str = typer.Option("auto", "--calibration"),
    engine: str = typer.Option("vllm-0.17.1", "--engine", help="rollout engine profile: vllm-0.17.1 | vllm-fixed | sglang-0.5.6 | sglang-0.5.6-nemo-rl | ideal"),
    max_num_seqs: int = typer.Option(1024, "--max-num-seqs", help="vLLM max_num_seqs (sets its CUDA-graph capture limit)"),
    acceptance_length: Optional[float] = typer.Option(None, "--acceptance-length", help="k > 0: mean tokens a round "
                                                      "emits (SGLang computes log-probs of the accepted rows only; "
                                                      "default k + 1)"),
    speculative_num_steps: Optional[int] = typer.Option(None, "--speculative-num-steps", help="draft tree (SGLang): steps"),
    speculative_eagle_topk: Optional[int] = typer.Option(None, "--speculative-eagle-topk", help="draft tree (SGLang): topk"),
    speculative_num_draft_tokens: Optional[int] = typer.Option(None, "--speculative-num-draft-tokens",
                                                               help="draft tree (SGLang): verified tokens, root included"),
    speculative_token_tree: Optional[str] = typer.Option(None, "--speculative-token-tree",
                                                         help="draft tree (vLLM speculative_token_tree)"),
    as_json: bool = typer.Option(False, "--json"),
):
    """Predicted time of one decode (k=0) or verify+draft (k>0) iteration, broken down by op and by part."""
    from ..catalog import EngineConfig, GenerationParallelism, load_engine, load_hardware, load_model
    from ..costmodel import IterationBatch, IterationCostModel, replica_layout
    from ..costmodel.select import get_timer
    from ..errors import ConfigurationError
    from ..speculation import resolve_drafter

    if batch < 1 or context < 1 or k < 0:
        raise ConfigurationError(f"--batch {batch}, --context {context}, --k {k}: allowed batch >= 1, context >= 1, k >= 0")
    k_max = EngineConfig().max_num_speculative_tokens
    if k > k_max:
        raise ConfigurationError(f"--k = {k} exceeds the engine's maximum num_speculative_tokens ({k_max}); allowed: 0..{k_max}")
    if tp < 1:
        raise ConfigurationError(f"--tp = {tp}; allowed: >= 1 (tensor_parallel_size)")
    if dtype not in ("bf16", "fp8"):
        raise ConfigurationError(f"--dtype = {dtype!r}; allowed: bf16, fp8")
    if max_num_seqs < 1:
        raise ConfigurationError(f"--max-num-seqs = {max_num_seqs}; allowed: >= 1")
    if acceptance_length is not None:
        from ..inputs import check_number

        if k == 0:
            raise ConfigurationError("--acceptance-length applies to a speculative round (--k >= 1); at --k 0 it would "
                                     "be ignored")
        check_number("--acceptance-length", acceptance_length, 1.0, k + 1.0, what="tokens per round, 1..k+1")
    m, hw, eng = load_model(model), load_hardware(hardware), load_engine(engine)
    if ep and not m.is_moe:
        raise ConfigurationError(f"--ep (enable_expert_parallel) applies to MoE models; {m.name} is dense (it would be "
                                 "ignored); allowed: --no-ep")
    layout = replica_layout(m, GenerationParallelism(tensor_parallel_size=tp, enable_expert_parallel=ep))
    tree = _iteration_tree(eng, m, drafter, k, speculative_num_steps, speculative_eagle_topk, speculative_num_draft_tokens,
                           speculative_token_tree)
    if tree is not None:
        k = tree.engine_k  # the tree's drafted tokens, all verified
    _check_iteration_fits(m, hw, layout, dtype, batch, context, k, drafter)
    d = resolve_drafter(m, drafter) if k > 0 else None
    cm = IterationCostModel(m, hw, layout, get_timer(hw, calibration), dtype=dtype,
                            method=d.method if d else "none", draft=d.network if d else None,
                            engine=None if eng.engine == "ideal" else eng,
                            engine_config=EngineConfig(max_num_seqs=max_num_seqs), configured_k=k,
                            expected_acceptance_length=acceptance_length, tree=tree)
    b = IterationBatch(n_decode=[batch], k=[k], decode_kv_tokens=[batch * context])
    br = cm.report(b)
    parts = cm.round_parts(b)
    out = {name: float(v[0]) if hasattr(v, "__len__") else float(v) for name, v in br.items()}
    round_parts = {name: (v[0].item() if hasattr(v, "__len__") else v) for name, v in parts.items()}
    tokens = batch * (k + 1)
    info = {"model": m.name, "hardware": hw.name, "engine": eng.name, "batch": batch, "context": context, "k": k,
            "tokens": tokens, "tensor_parallel_size": tp, "dtype": dtype,
            "cuda_graph": round_parts["graph_mode"] != "eager", "graph_mode": round_parts["graph_mode"],
            "calibration": cm.timer.describe(), "time_s": out["total"], "breakdown_s": out, "round": round_parts}
    if tree is not None:
        info["tree"] = tree.to_dict()
    if as_json:
        emit_json(info)
        return
    from ..report.tables import make_console
    from rich.table import Table

    t = Table(title=f"{m.name} on {hw.name}, engine {eng.name}: batch {batch}, context {context}, k {k} "
                    f"({tokens} tokens, TP {tp}, {dtype})", title_justify="left")
    t.add_column("op")
    t.add_column("ms", justify="right")
    t.add_column("share", justify="right")
    for name, v in out.items():
        if name == "total":
            continue
        t.add_row(name, f"{v*1e3:.3f}", f"{v/out['total']:.0%}")
    t.add_row("[bold]total[/bold]", f"[bold]{out['total']*1e3:.3f}[/bold]", "100%")
    make_console().print(t)
    rp = round_parts
    make_console().print(f"[dim]by part: target forward {rp['target_forward_s']*1e3:.3f} ms, draft {rp['draft_s']*1e3:.3f} ms, "
                    f"sampler {rp['sampler_s']*1e3:.3f} ms (GPU); host {rp['host_s']*1e3:.3f} ms of which exposed "
                    f"{rp['exposed_host_s']*1e3:.3f} ms; graph: {rp['graph_mode']}; async scheduling: "
                    f"{'on' if rp['async_scheduling'] else 'off'}; kernel costs: {info['calibration']}[/dim]")


def _iteration_tree(eng, m, drafter: str, k: int, steps, topk, draft_tokens, token_tree):
    """The draft tree of ``rlsim iteration`` (None: a chain of k). A tree's round cost depends on its shape only
    (SGLang: steps, topk, verified tokens; vLLM: the level sizes), not on the acceptance that picks its nodes."""
    from ..errors import ConfigurationError
    from ..speculation.trees import RankAcceptance, build_tree

    if steps is None and topk is None and draft_tokens is None and token_tree is None:
        return None
    if token_tree is not None and (steps or topk or draft_tokens):
        raise ConfigurationError("--speculative-token-tree (vLLM's static tree) and SGLang's --speculative-num-steps / "
                                 "--speculative-eagle-topk / --speculative-num-draft-tokens both set the tree; allowed: one")
    if token_tree is None and steps is None:
        raise ConfigurationError("--speculative-eagle-topk / --speculative-num-draft-tokens need --speculative-num-steps")
    if drafter not in ("eagle3", "mtp", "draft-model"):
        raise ConfigurationError(f"a draft tree is drafted by a model; --drafter {drafter!r} has none; allowed: eagle3, "
                                 "mtp, draft-model")
    if eng.engine != "ideal" and eng.tree_drafting == "static_cumulative" and token_tree is None and (topk or 1) > 1:
        raise ConfigurationError(f"--speculative-eagle-topk {topk}: engine {eng.name} drafts static trees only; allowed: "
                                 "--speculative-token-tree, or --engine ideal")
    t = build_tree(steps=steps, topk=topk or 1, draft_tokens=draft_tokens, token_tree=token_tree,
                   acc=RankAcceptance((0.8,), 0.7))
    if t.is_chain:
        raise ConfigurationError(f"the tree {t.describe()} is a chain: use --k {t.depth}")
    if m.is_mla and eng.engine != "ideal" and eng.tree_attention == "triton_unified_2d":
        raise ConfigurationError(f"a draft tree on {m.name} (MLA): vLLM 0.17.1's TREE_ATTN handles MHA/GQA only; allowed: "
                                 "a chain (--k), or --engine ideal")
    return t


def _check_iteration_fits(m, hw, layout, dtype: str, batch: int, context: int, k: int, drafter: str) -> None:
    """``rlsim iteration`` prices any batch x context; one that no GPU of the replica can hold is refused with
    the numbers (KV needed vs the memory left after weights and vLLM's reserve at the most vLLM can use)."""
    from ..catalog import EngineConfig
    from ..costmodel.memory import NON_KV_RESERVE_BYTES, replica_memory
    from ..errors import ConfigurationError
    from ..speculation import resolve_drafter

    util = next(c.le for c in EngineConfig.model_fields["gpu_memory_utilization"].metadata if hasattr(c, "le"))
    d = resolve_drafter(m, drafter) if k > 0 else None
    mem = replica_memory(m, hw, layout, dtype, "bf16", util, draft=d.network if d else None,
                         method=d.method if d else "none")
    need = batch * (context + k + 1)  # every sequence's KV, plus the k+1 tokens the iteration appends
    if need > mem.kv_capacity_tokens:
        tok = mem.kv_bytes_per_token_per_gpu
        free = mem.usable_bytes_per_gpu - mem.weight_bytes_per_gpu - mem.draft_weight_bytes_per_gpu - NON_KV_RESERVE_BYTES
        raise ConfigurationError(
            f"--batch {batch} x --context {context} does not fit: KV for {need:,} tokens needs {need * tok / 1e9:,.1f} GB "
            f"per GPU ({tok / 1e3:.1f} kB per token), available {max(free, 0) / 1e9:.1f} GB per GPU for KV on {hw.name} "
            f"({hw.hbm_capacity_bytes / 1e9:.0f} GB x {util} - weights {mem.weight_bytes_per_gpu / 1e9:.1f} GB - draft "
            f"{mem.draft_weight_bytes_per_gpu / 1e9:.1f} GB - reserve {NON_KV_RESERVE_BYTES / 1e9:.1f} GB), at most "
            f"{mem.kv_capacity_tokens:,} tokens in all; lower --batch or --context, or raise --tp (now "
            f"{layout.tensor_parallel_size})")
