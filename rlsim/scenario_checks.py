"""The checks of ``build_scenario``'s arguments (rlsim/scenario.py): conflicting or out-of-bound arguments refused
before resolution, settings that the resolved scenario would silently ignore refused after it, and the context
length. They read the catalog, the cost model's replica layout and the agentic turns, so they sit above those
stages (``rlsim/inputs.py``, which the catalog imports, keeps the generic checks and bounds)."""

from __future__ import annotations

import functools

from .errors import ConfigurationError
from .inputs import (LAG_WHY, MAX_GENERATION_REPLICAS, MAX_LAG, REPLICAS_WHY, _is_seq, as_int, typed_arguments)


def _workload_field_type(name: str):
    from .catalog import Workload

    f = Workload.model_fields.get(name)
    return None if f is None else f.annotation


def _scenario_conflicts(a: dict) -> None:
    """Arguments of ``build_scenario`` that contradict each other or exceed a bound."""
    acc = [(n, f) for n, f in (("acceptance_length", "--acceptance-length"), ("draft_quality", "--draft-quality"),
                               ("acceptance_rates_per_position", "--acceptance-from / acceptance_rates_per_position"))
           if a.get(n) is not None]
    if len(acc) > 1:
        (n1, f1), (n2, f2) = acc[:2]
        raise ConfigurationError(
            f"{f1} ({n1} = {a[n1]!r}) and {f2} ({n2} = {a[n2]!r}) both set the draft's acceptance and one would be "
            "silently dropped; allowed: one of them")
    decay = a.get("draft_quality_decay", 1.0)
    if decay is not None and decay != 1.0 and a.get("draft_quality") is None:
        raise ConfigurationError(f"draft_quality_decay = {decay!r} shapes draft_quality, which is not given; allowed: "
                                 "draft_quality_decay together with draft_quality (--draft-quality-decay with --draft-quality)")
    for i, row in enumerate(a.get("num_speculative_tokens_per_batch_size") or []):
        if not _is_seq(row) or len(row) != 3:
            raise ConfigurationError(f"num_speculative_tokens_per_batch_size[{i}] = {row!r}; allowed: (min_batch, "
                                     "max_batch, k), three integers")
        for x in row:
            as_int(f"num_speculative_tokens_per_batch_size[{i}]", x, "(min_batch, max_batch, k), three integers")
    lag = a.get("lag")
    if lag is not None and lag > MAX_LAG:
        raise ConfigurationError(f"--lag = {lag}; allowed: 0..{MAX_LAG} ({LAG_WHY})")


def _scenario_resolved(sc, a: dict) -> None:
    """What only the resolved scenario shows: settings that would otherwise be ignored without a word."""
    from .catalog import load_model

    w = sc.workload
    if w.generation.enable_expert_parallel and not load_model(w.model).is_moe:
        raise ConfigurationError(
            f"generation.enable_expert_parallel = true (--ep) applies to MoE models; {w.model} is dense (it would be "
            "ignored); allowed: false")
    if a.get("draft_model") is not None and sc.drafter != "draft-model":
        raise ConfigurationError(
            f"--draft-model {a['draft_model']} applies to --drafter draft-model; the drafter is {sc.drafter!r} (the draft "
            "model would be ignored); allowed: --drafter draft-model, or drop --draft-model")
    from .costmodel import replica_layout

    rg = replica_layout(load_model(w.model), w.generation).gpus
    gen = w.gen_gpus if w.gen_gpus is not None else w.gpus
    if gen // rg > MAX_GENERATION_REPLICAS:
        raise ConfigurationError(
            f"{gen:,} generation GPUs = {gen // rg:,} replicas of {rg} GPUs (workload {w.name}); allowed: up to "
            f"{MAX_GENERATION_REPLICAS:,} replicas, i.e. {MAX_GENERATION_REPLICAS * rg:,} generation GPUs ({REPLICAS_WHY})")
    _check_context(sc)
    if sc.max_trajectory_age_steps > MAX_LAG:
        raise ConfigurationError(f"max_trajectory_age_steps = {sc.max_trajectory_age_steps} (workload {w.name}); allowed: "
                                 f"0..{MAX_LAG} ({LAG_WHY})")


def _check_context(sc) -> None:
    """Prompt + response (every turn of an agentic trajectory) within the model's context: max_position_embeddings,
    or its YaRN length when the workload turns rope scaling on; lengths beyond are refused, not simulated."""
    from .catalog import load_model
    from .engine.disagg import agentic_from

    w = sc.workload
    m = load_model(w.model)
    ag = agentic_from(w, sc.options)
    w2 = w.model_copy(update={"agentic": ag}) if ag is not w.agentic else w
    longest = w2.longest_context_tokens()
    if w.rope_scaling == "yarn" and m.rope_scaling is None:
        raise ConfigurationError(f"rope_scaling = yarn (workload {w.name}): {m.name} has no rope scaling in the catalog "
                                 f"(workloads/models/); allowed: rope_scaling none")
    limit = m.max_context_tokens(w.rope_scaling)
    if limit is None or longest <= limit:
        return
    what = "prompt + response" if ag is None else f"prompt + {ag.turns} turns of response and tool output"
    if w.rope_scaling == "yarn":
        raise ConfigurationError(
            f"{what} reach {longest:,} tokens (workload {w.name}), beyond {m.name}'s {limit:,} even with YaRN (factor "
            f"{m.rope_scaling.factor:g} x {m.rope_scaling.original_max_position_embeddings:,}); allowed: up to {limit:,} "
            "(lower --max-new-tokens, the prompt cap or the turns)")
    yarn = (f"; with YaRN (workload rope_scaling: yarn) up to {m.rope_scaling.max_tokens:,}" if m.rope_scaling is not None
            else "")
    raise ConfigurationError(
        f"{what} reach {longest:,} tokens (workload {w.name}), beyond {m.name}'s context of {limit:,} "
        f"(max_position_embeddings){yarn}; allowed: up to {limit:,} (lower --max-new-tokens or the prompt cap)")


scenario_arguments = functools.partial(typed_arguments, extra_types=_workload_field_type,
                                       not_finite_ok=("acceptance_length", "draft_quality"),
                                       pre=_scenario_conflicts, post=_scenario_resolved)

__all__ = ["scenario_arguments"]
