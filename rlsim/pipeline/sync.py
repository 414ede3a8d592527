"""Synchronous colocated RL step, NeMo-RL order: data -> refit (weights into the rollout engine)
-> generation -> log-prob recompute (policy, + reference with KL) -> training.

The phases run one after another on the same GPUs, so the step is their sum.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..costmodel.training import logprob_time, refit_time_s, training_time
from ..engine import RolloutResult, simulate_rollout
from .results import GenerationStats, StepResult
from .setup import Setup


def generation_stats(setup: Setup, ro: RolloutResult, speculative: bool, start_s: float = 0.0) -> GenerationStats:
    mem = setup.memory_spec if speculative else setup.memory_ar
    fin = np.sort(ro.finish_time_s - start_s)
    t90 = float(fin[int(0.9 * (len(fin) - 1))]) if len(fin) else 0.0
    return GenerationStats(
        iterations_max=ro.iterations_max, iterations_mean=ro.iterations_mean, tokens_generated=ro.tokens_generated,
        realized_acceptance_length=ro.realized_acceptance_length, preemptions=ro.preemptions,
        kv_capacity_tokens_per_replica=mem.kv_capacity_tokens, n_replicas=setup.n_replicas,
        sequences_per_replica=len(fin) / setup.n_replicas,
        replica_end_s_min=float(ro.replica_end_s.min() - start_s), replica_end_s_max=float(ro.replica_end_s.max() - start_s),
        time_to_90pct_sequences_s=t90, tail_s=ro.generation_time_s - t90, prefill_time_s=ro.prefill_time_s_max)


def train_and_logprob(setup: Setup, seq_tokens: np.ndarray) -> tuple[float, float, dict | None]:
    """(log-prob seconds, training seconds, per-component breakdown or None) of one step's sequences: the
    Megatron layout model (costmodel/training_layout.py), or the workload's MFU when it sets one."""
    w = setup.scenario.workload
    passes = 2 if w.reference_logprobs else 1
    if setup.train_draft:  # online draft training (NeMo-RL policy.draft.enabled): the draft trains with the policy
        from .draft_training import online_training_time_s

        lp_s, tr_s, bd = train_and_logprob(dataclasses.replace(setup, train_draft=False), seq_tokens)
        extra = online_training_time_s(setup, np.asarray(seq_tokens), np.zeros(len(seq_tokens)))
        if bd is not None:
            bd = dict(bd, online_draft_training_s=extra)
        return lp_s, tr_s + extra, bd
    tl = setup.training_layout
    if tl is not None:
        lp, tr = tl.logprob(seq_tokens, passes), tl.training(seq_tokens)
        peak = setup.train_gpus * setup.hardware.peak_flops.get(w.training_dtype, setup.hardware.peak_flops["bf16"])
        bd = {"model": "megatron layout (costmodel/training_layout.py)", "logprob": lp.to_dict(),
              "training": tr.to_dict(),
              "implied_mfu": {"logprob": lp.flops / (peak * lp.seconds) if lp.seconds else 0.0,
                              "training": tr.flops / (peak * tr.seconds) if tr.seconds else 0.0}}
        return lp.seconds, tr.seconds, bd
    train = training_time(setup.model, setup.hardware, setup.train_gpus, seq_tokens, w.training_dtype, w.training_mfu)
    lp = logprob_time(setup.model, setup.hardware, setup.train_gpus, seq_tokens, passes, w.logprob_mfu)
    return lp.seconds, train.seconds, None


def refit_crosses_domains(setup: Setup) -> bool:
    """Colocated refit whose resharding crosses NVLink domains: the rollout replica, or the GPUs holding one copy
    of the training model (TP x CP x PP, times the data-parallel ranks its experts are spread over), span more
    than one domain."""
    dom = setup.hardware.nvlink_domain_size
    if setup.layout.gpus > dom:
        return True
    tl = setup.training_layout
    if tl is None:
        return False
    L = tl.layout
    return L.tp * L.cp * L.pp * max(1, L.ep * L.etp // (L.tp * L.cp)) > dom


def non_generation_phases(setup: Setup, prompts: np.ndarray, responses: np.ndarray, speculative: bool,
                          breakdown: dict | None = None) -> dict[str, float]:
    w = setup.scenario.workload
    seq_tokens = prompts + responses
    lp_s, tr_s, bd = train_and_logprob(setup, seq_tokens)
    if breakdown is not None and bd is not None:
        breakdown.update(bd)
    mem = setup.memory_spec if speculative else setup.memory_ar
    kv_pool = mem.kv_capacity_tokens / setup.layout.data_parallel_size * mem.kv_bytes_per_token_per_gpu
    refit = refit_time_s(mem.weight_bytes_per_gpu + mem.draft_weight_bytes_per_gpu, w.colocated, setup.hardware, kv_pool,
                         cross_domain=refit_crosses_domains(setup))
    return {"data": w.data_loading_s, "refit": refit, "logprob": lp_s, "training": tr_s}


def simulate_sync_step(setup: Setup, speculative: bool, step: int = 0, keep_replicas: bool = False) -> tuple[StepResult, RolloutResult]:
    prompts, responses = setup.sample_step_lengths(step)
    cost = setup.cost_spec if speculative else setup.cost_ar
    extra_info = None
    if setup.disagg is not None or setup.agentic is not None:  # a prefill pool, or several turns (engine/disagg.py)
        from ..engine.disagg import AgenticConfig, simulate_rollout_multi

        turn_resp, tool = setup.sample_turns(step, responses)
        ag = None if setup.agentic is None else AgenticConfig(setup.agentic.turns, setup.agentic.tool_latency_s, tool)
        mem = setup.memory_spec if speculative else setup.memory_ar
        ro, extra_info = simulate_rollout_multi(prompts, turn_resp, setup.n_replicas, cost, setup.policy(speculative),
                                                setup.replica_config(speculative), setup.scenario.seed * 1000003 + step,
                                                setup.disagg, ag, mem.kv_bytes_per_token_per_gpu)
        responses = turn_resp.sum(axis=1) + tool.sum(axis=1)  # what training sees: every turn and tool output
    else:
        ro = simulate_rollout(prompts, responses, setup.n_replicas, cost, setup.policy(speculative),
                              setup.replica_config(speculative), seed=setup.scenario.seed * 1000003 + step,
                              keep_replicas=keep_replicas)
    bd: dict = {}
    phases = non_generation_phases(setup, prompts, responses, speculative, bd)
    phases = {"data": phases["data"], "refit": phases["refit"], "generation": ro.generation_time_s,
              "logprob": phases["logprob"], "training": phases["training"]}
    mode = "speculative" if speculative else "autoregressive"
    extra = {"training_breakdown": bd} if bd else {}
    if extra_info is not None:
        extra["rollout"] = extra_info
    return StepResult(mode, float(sum(phases.values())), phases, generation_stats(setup, ro, speculative), extra), ro

