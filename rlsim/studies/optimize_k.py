"""The batch-adaptive k schedule of a workload, against the best fixed k.

The optimiser (rlsim/speculation/adaptive.py) picks, for every live batch size, the k that maximises
goodput per iteration (tokens per round over round cost); both the schedule and every fixed k are
then simulated (synchronous steps, the same sampled lengths) and compared on rollout (generation)
and end-to-end step time. The schedule's extra CUDA-graph tiers are charged: their memory comes
out of every replica's KV cache in the simulation, their capture time (once per engine start) is
amortised over ``--amortise-steps`` steps in the end-to-end figure.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

REFERENCE_SCHEDULE = [(1, 16, 5), (17, 64, 3), (65, 128, 1), (129, 100000, 0)]  # vLLM's example for an 8B EAGLE-3


def _acceptance_inputs(al_curve: str | None, acceptance_from: str | None) -> tuple[list[float] | None, str | None]:
    from ..errors import ConfigurationError
    from ..speculation.traces import STUDY_AL_CURVES, fit_al_curve, load_acceptance_trace, parse_al_curve

    if al_curve and acceptance_from:
        raise ConfigurationError("give --al-curve or --acceptance-from, not both")
    if al_curve:
        if al_curve in STUDY_AL_CURVES:
            return fit_al_curve(STUDY_AL_CURVES[al_curve]), f"study AL curve {al_curve} {STUDY_AL_CURVES[al_curve]}"
        return fit_al_curve(parse_al_curve(al_curve)), f"AL curve {al_curve}"
    if acceptance_from:
        fit = load_acceptance_trace(acceptance_from)
        return fit.unconditional_rates, (f"{fit.describe()}; k above {fit.k} extrapolated (the last measured conditional "
                                         "rate repeated)")
    return None, None


def _simulate(sc, samples: int, kv_reserve_bytes: float = 0.0) -> dict:
    """Mean over ``samples`` sampled steps of the AR and speculative sync step (pipeline API)."""
    from ..pipeline import build_setup
    from .seeds import step_means

    setup = build_setup(sc)
    if kv_reserve_bytes > 0:
        mem = setup.memory_spec
        lost = int(math.ceil(kv_reserve_bytes / mem.kv_bytes_per_token_per_gpu)) * setup.layout.data_parallel_size
        setup.memory_spec = dataclasses.replace(mem, kv_capacity_tokens=max(mem.kv_capacity_tokens - lost, 1))
    out = {"gen_ar": [], "step_ar": [], "gen": [], "step": [], "al": [], "preempt": []}
    ars, _ = step_means(setup, False, range(samples))
    sps, _ = step_means(setup, True, range(samples))
    for ar, sp in zip(ars, sps):
        out["gen_ar"].append(ar.phases_s["generation"]); out["step_ar"].append(ar.step_s)
        out["gen"].append(sp.phases_s["generation"]); out["step"].append(sp.step_s)
        out["al"].append(sp.generation.realized_acceptance_length); out["preempt"].append(sp.generation.preemptions)
    res = {k: float(np.mean(v)) for k, v in out.items()}
    res["kv_capacity_tokens"] = setup.memory_spec.kv_capacity_tokens
    return res


def optimize_k(workload: str | None = None, model: str | None = None, hardware: str | None = None,
               gpus: int | None = None, k_max: int = 7, max_tiers: int | None = None, samples: int = 1,
               al_curve: str | None = None, acceptance_from: str | None = None, draft_quality: float | None = None,
               amortise_steps: int = 100, seed: int = 0, calibration: str = "auto", reference: bool = True) -> dict:
    """Optimise the k schedule of a workload and simulate it against every fixed k in 1..k_max."""
    from ..engine import assign_to_replicas
    from ..errors import ConfigurationError
    from ..pipeline import build_setup
    from ..scenario import build_scenario
    from ..speculation.adaptive import (context_by_batch, cuda_graph_cost, decode_time_estimate_s, format_k_schedule,
                                        goodput_table, k_for_batch, optimal_schedule, validate_k_schedule)

    if k_max < 1:
        raise ConfigurationError(f"--k-max = {k_max}; allowed: >= 1")
    from ..inputs import MAX_OPTIMIZE_SAMPLES, OPTIMIZE_SAMPLES_WHY, check_count

    check_count("--samples", samples, 1, MAX_OPTIMIZE_SAMPLES, OPTIMIZE_SAMPLES_WHY)
    if max_tiers is not None and max_tiers < 0:
        raise ConfigurationError(f"--max-tiers = {max_tiers}; allowed: >= 0 (0 = unlimited)")
    if amortise_steps < 1:
        raise ConfigurationError(f"--amortise-steps = {amortise_steps}; allowed: >= 1")
    if draft_quality is not None and (al_curve or acceptance_from):
        raise ConfigurationError(f"--draft-quality and {'--al-curve' if al_curve else '--acceptance-from'} both set the "
                                 "draft's acceptance (one would be dropped); allowed: one of them")
    rates, acc_source = _acceptance_inputs(al_curve, acceptance_from)
    common = dict(workload=workload, model=model, hardware=hardware, gpus=gpus, seed=seed, calibration=calibration,
                  acceptance_rates_per_position=rates, draft_quality=draft_quality)
    # the draft at k_max: per-position rates are kept up to k_max (beyond a curve's last k: its last rate)
    sc_max = build_scenario(k=k_max, **common)
    if sc_max.lag > 0:
        raise ConfigurationError("optimize-k simulates synchronous steps; use a workload with lag 0")
    setup = build_setup(sc_max)
    w = sc_max.workload
    e = w.engine
    if k_max > e.max_num_speculative_tokens:
        raise ConfigurationError(f"--k-max = {k_max} exceeds the engine's max_num_speculative_tokens ({e.max_num_speculative_tokens})")
    prompts, responses = setup.sample_step_lengths(0)
    shards = assign_to_replicas(len(prompts), setup.n_replicas)
    b_top = int(min(e.max_num_seqs, max(len(s) for s in shards)))
    ctx, span = context_by_batch(prompts, responses, shards, b_top)
    table = goodput_table(setup.cost_spec, setup.acceptance, range(1, b_top + 1), range(0, k_max + 1), ctx)
    sched = validate_k_schedule(optimal_schedule(table, span, max_tiers=max_tiers, max_batch=e.max_num_seqs),
                                e.max_num_speculative_tokens, e.max_num_seqs)
    hw, m = setup.hardware, setup.model
    d_layers = getattr(setup.drafter.network, "num_hidden_layers", 0) if setup.drafter.method in ("eagle3", "draft-model") else (
        m.mtp_num_layers if setup.drafter.method == "mtp" else 0)

    def graphs(s):
        return cuda_graph_cost(s, hw.cudagraph_capture_max_tokens, m.num_hidden_layers, d_layers, e.max_num_seqs)

    from ..report.progress import StageProgress

    fixed = {}
    with StageProgress(f"optimize-k: {w.name}", total=k_max + 1) as bar:
        for k in range(1, k_max + 1):
            r = _simulate(build_scenario(k=k, **common), samples)
            r["graphs"] = graphs([(1, e.max_num_seqs, k)]).as_dict()
            r["estimate_decode_s"] = decode_time_estimate_s(table, span, lambda b, _k=k: _k)
            fixed[k] = r
            bar.advance(f"k = {k}")
        best_k = min(fixed, key=lambda k: fixed[k]["gen"])
        g_sched = graphs(sched)
        extra = g_sched.minus(graphs([(1, e.max_num_seqs, best_k)]))
        adaptive = _simulate(build_scenario(k=k_max, num_speculative_tokens_per_batch_size=[list(x) for x in sched],
                                            **common), samples, kv_reserve_bytes=extra.bytes_per_gpu)
        bar.advance("batch-adaptive schedule")
    adaptive["graphs"] = g_sched.as_dict()
    adaptive["extra_graphs_vs_best_fixed"] = extra.as_dict()
    adaptive["estimate_decode_s"] = decode_time_estimate_s(table, span, k_for_batch(sched))
    amort = extra.capture_s / amortise_steps
    adaptive["step_with_capture"] = adaptive["step"] + amort
    out = {
        "workload": w.name, "model": w.model, "hardware": w.hardware, "gpus": w.gpus, "n_replicas": setup.n_replicas,
        "sequences_per_replica_max": b_top, "k_max": k_max, "samples": samples, "acceptance": acc_source or
        ("draft quality" if draft_quality is not None else f"workload AL {w.speculation.acceptance_length} at k = "
                                                            f"{w.speculation.num_speculative_tokens} (constant per-token rate)"),
        "acceptance_length_by_k": {int(k): float(a) for k, a in zip(table.ks, table.tokens_per_round)},
        "schedule": [list(x) for x in sched], "schedule_text": format_k_schedule(sched),
        "best_k_by_batch": {int(b): int(k) for b, k in zip(table.batch_sizes, table.best_k)},
        "fixed": fixed, "best_fixed_k": best_k, "adaptive": adaptive,
        "speedup_vs_best_fixed": {
            "generation": fixed[best_k]["gen"] / adaptive["gen"],
            "step": fixed[best_k]["step"] / adaptive["step_with_capture"],
        },
        "speedup_vs_ar": {"generation": adaptive["gen_ar"] / adaptive["gen"],
                          "step": adaptive["step_ar"] / adaptive["step_with_capture"]},
        "switching_cost_charged": (
            f"{extra.graphs_target + extra.graphs_draft} extra CUDA graphs (target {extra.graphs_target}, draft "
            f"{extra.graphs_draft}) over the best fixed k: {extra.bytes_per_gpu / 1e9:.2f} GB per GPU taken from the KV "
            f"cache; {extra.capture_s:.1f} s of capture at engine start, amortised over {amortise_steps} steps "
            f"(+{amort:.3f} s per step)"),
        "amortise_steps": amortise_steps,
    }
    if reference:
        ref = [(lo, hi, min(k, k_max)) for lo, hi, k in REFERENCE_SCHEDULE]
        ref[-1] = (ref[-1][0], max(ref[-1][1], e.max_num_seqs), ref[-1][2])
        g_ref = graphs(ref).minus(graphs([(1, e.max_num_seqs, best_k)]))
        r = _simulate(build_scenario(k=k_max, num_speculative_tokens_per_batch_size=[list(x) for x in ref], **common),
                      samples, kv_reserve_bytes=g_ref.bytes_per_gpu)
        r["schedule_text"] = format_k_schedule(ref)
        r["step_with_capture"] = r["step"] + g_ref.capture_s / amortise_steps
        out["reference_schedule"] = r
    return out


def optimize_tree(workload: str | None = None, model: str | None = None, hardware: str | None = None,
                  gpus: int | None = None, engine: str | None = None, steps_max: int = 7,
                  topks: tuple = (2, 4, 8), draft_tokens: tuple = (4, 8, 16, 32, 64), memory_limit_gib: float | None = None,
                  tree_verification: str | None = None, tree_rank_decay: float | None = None,
                  al_curve: str | None = None, acceptance_from: str | None = None, draft_quality: float | None = None,
                  samples: int = 1, seed: int = 0, calibration: str = "auto", simulate: bool = True,
                  batch_max: int | None = None) -> dict:
    """The best chain (steps) and the best tree (steps, topk, draft tokens) per live batch size, by goodput per
    iteration, among the shapes that fit the memory limit; the batch size past which the tree stops paying; and
    (``simulate``) the best fixed chain and tree simulated over a whole step (synchronous, same lengths)."""
    import dataclasses as dc

    from ..costmodel.memory import replica_memory
    from ..engine import assign_to_replicas
    from ..errors import ConfigurationError
    from ..inputs import MAX_OPTIMIZE_SAMPLES, OPTIMIZE_SAMPLES_WHY, check_count, check_number
    from ..pipeline import build_setup
    from ..scenario import build_scenario
    from ..speculation.adaptive import context_by_batch, shape_candidates, shape_table
    from ..speculation.trees import MAX_TOPK, MAX_TREE_DEPTH, MAX_TREE_TOKENS, TOPK_WHY, TREE_DEPTH_WHY, TREE_TOKENS_WHY

    check_count("--samples", samples, 1, MAX_OPTIMIZE_SAMPLES, OPTIMIZE_SAMPLES_WHY)
    steps_max = check_count("--steps-max", steps_max, 1, MAX_TREE_DEPTH, TREE_DEPTH_WHY)
    topks = tuple(check_count("--topk", x, 1, MAX_TOPK, TOPK_WHY) for x in topks)
    draft_tokens = tuple(check_count("--draft-tokens", x, 2, MAX_TREE_TOKENS, TREE_TOKENS_WHY) for x in draft_tokens)
    if tree_verification is not None and tree_verification not in ("tree", "chain"):
        raise ConfigurationError(f"--tree-verification = {tree_verification!r}; allowed: tree, chain")
    if tree_rank_decay is not None:
        check_number("--tree-rank-decay", tree_rank_decay, 0.0, 0.999)
    if draft_quality is not None and (al_curve or acceptance_from):
        raise ConfigurationError("--draft-quality and --al-curve / --acceptance-from both set the draft's acceptance; "
                                 "allowed: one of them")
    rates, acc_source = _acceptance_inputs(al_curve, acceptance_from)
    common = dict(workload=workload, model=model, hardware=hardware, gpus=gpus, seed=seed, calibration=calibration,
                  engine=engine)
    sc = build_scenario(k=steps_max, acceptance_rates_per_position=rates, draft_quality=draft_quality, **common)
    if sc.lag > 0:
        raise ConfigurationError("optimize-k simulates synchronous steps; use a workload with lag 0")
    setup = build_setup(sc)
    if setup.drafter.method not in ("eagle3", "mtp", "draft-model"):
        raise ConfigurationError(f"optimize-k --tree: drafter {setup.drafter.method!r} drafts no tree; allowed: eagle3, "
                                 "mtp, draft-model")
    w, eng = sc.workload, setup.engine
    vllm_static = eng.engine != "ideal" and eng.tree_drafting == "static_cumulative"
    verification = tree_verification or (eng.tree_verification if eng.engine != "ideal" else None) or "tree"
    if vllm_static and setup.model.is_mla:
        raise ConfigurationError(f"optimize-k --tree on {setup.model.name} (MLA) under {eng.name}: vLLM 0.17.1's tree "
                                 "attention backend handles MHA/GQA only; allowed: --engine ideal")
    chain = setup.acceptance  # the draft as a chain at steps_max
    shapes = shape_candidates(chain.conditional_rates, steps_max, topks, draft_tokens, dynamic=not vllm_static,
                              verification=verification, rank_decay=tree_rank_decay)
    # the memory limit: KV capacity of a replica when the engine may use ``memory_limit_gib`` per GPU
    mem = setup.memory_spec
    util = w.engine.gpu_memory_utilization
    if memory_limit_gib is not None:
        check_number("--memory-limit-gib", memory_limit_gib, 0.0, setup.hardware.hbm_capacity_bytes / 2**30, lo_open=True,
                     what=f"GPU memory the engine may use, at most the {setup.hardware.name}'s HBM")
        util = memory_limit_gib * 2**30 / setup.hardware.hbm_capacity_bytes
        mem = replica_memory(setup.model, setup.hardware, setup.layout, w.generation_dtype, w.kv_cache_dtype, util,
                             setup.drafter.network, setup.drafter.method, 1)
    prompts, responses = setup.sample_step_lengths(0)
    shards = assign_to_replicas(len(prompts), setup.n_replicas)
    b_top = b_step = int(min(w.engine.max_num_seqs, max(len(x) for x in shards)))
    if batch_max is not None:  # beyond the step's shards: batch sizes at the start of decoding
        b_top = check_count("--batch-max", batch_max, 1, w.engine.max_num_seqs, what="(at most the engine's max_num_seqs)")
    ctx, span = context_by_batch(prompts, responses, shards, b_top)
    base = setup.cost_spec

    def cost_for(shape):
        if shape.is_chain:
            return dc.replace(base, tree=None, configured_k=shape.steps)
        return dc.replace(base, tree=shape.tree, configured_k=shape.engine_k)

    table = shape_table(cost_for, shapes, range(1, b_top + 1), ctx, mem.kv_capacity_tokens, w.engine.max_num_batched_tokens)
    ic, gc = table.best("chain")
    it, gt = table.best("tree")
    rows = []
    for j, B in enumerate(table.batch_sizes):
        rows.append({"batch": int(B), "context_tokens": float(ctx[j]),
                     "chain": None if ic[j] < 0 else shapes[ic[j]].as_dict() | {"goodput_tok_s": float(gc[j])},
                     "tree": None if it[j] < 0 else shapes[it[j]].as_dict() | {"goodput_tok_s": float(gt[j])},
                     "tree_over_chain": float(gt[j] / gc[j]) if gc[j] > 0 else None,
                     "feasible_shapes": int(table.feasible[j].sum())})
    # the best fixed chain and tree over the whole rollout: decode time sum_B span_B x t_iter / AL
    tpt = table.iteration_s / np.array([x.acceptance_length for x in shapes])[None, :]
    sp = np.zeros(table.batch_sizes.size)
    sp[: len(span)] = np.asarray(span)[: table.batch_sizes.size]
    # batch sizes the step never reaches (span 0) do not count, feasible or not
    with np.errstate(invalid="ignore"):
        est = np.where(sp[:, None] > 0, np.where(table.feasible, tpt, np.inf) * sp[:, None], 0.0).sum(axis=0)
    fixed = {}
    for which in ("chain", "tree"):
        idx = [i for i, x in enumerate(shapes) if x.is_chain == (which == "chain") and np.isfinite(est[i])]
        if idx:
            i = min(idx, key=lambda i: est[i])
            fixed[which] = shapes[i].as_dict() | {"estimate_decode_s": float(est[i])}
    out = {"workload": w.name, "model": w.model, "hardware": w.hardware, "gpus": w.gpus, "engine": eng.name,
           "n_replicas": setup.n_replicas, "sequences_per_replica_max": b_step, "batch_max": b_top,
           "memory_limit_gib": memory_limit_gib if memory_limit_gib is not None else
           round(setup.hardware.hbm_capacity_bytes * util / 2**30, 2),
           "kv_capacity_tokens": mem.kv_capacity_tokens, "verification": verification,
           "acceptance": acc_source or ("draft quality" if draft_quality is not None else
                                        f"workload AL {w.speculation.acceptance_length} at k = {w.speculation.num_speculative_tokens}"),
           "rank_decay": tree_rank_decay, "tree_family": "static bundles (vLLM propose_tree)" if vllm_static else
           "SGLang (steps, topk, draft tokens)", "shapes": [x.as_dict() for x in shapes], "by_batch": rows,
           "crossover_batch": table.crossover(), "best_fixed": fixed}
    if simulate and fixed:
        rates_u = [float(x) for x in chain.unconditional_rates]
        for which, f in fixed.items():
            kw = dict(common, acceptance_rates_per_position=rates_u)
            if which == "chain":
                kw["k"] = f["num_steps"]
            else:
                kw.update(k=steps_max, tree_verification=tree_verification, tree_rank_decay=tree_rank_decay)
                if f["kind"] == "sglang":
                    kw.update(speculative_num_steps=f["num_steps"], speculative_eagle_topk=f["eagle_topk"],
                              speculative_num_draft_tokens=f["num_draft_tokens"])
                else:
                    kw["speculative_token_tree"] = f["speculative_token_tree"]
            r = _simulate(build_scenario(**kw), samples)
            f.update(generation_s=r["gen"], step_s=r["step"], ar_generation_s=r["gen_ar"], ar_step_s=r["step_ar"],
                     al_realised=r["al"])
    return out


__all__ = ["REFERENCE_SCHEDULE", "optimize_k", "optimize_tree"]
