"""Turning a scenario into simulation objects: specs, layout, memory, cost models, acceptance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..catalog import EngineProfile, HardwareProfile, ModelSpec, load_engine, load_hardware, load_model
from ..costmodel import IterationCostModel, ReplicaLayout, ReplicaMemory, replica_layout, replica_memory
from ..costmodel.select import get_timer
from ..costmodel.timer import KernelTimer
from ..engine import ReplicaConfig, sample_lengths
from ..speculation.policy import SpecPolicy
from ..engine.lengths import sample_raw_lengths, scale_to_mean
from ..errors import ConfigurationError
from ..scenario import Scenario
from ..speculation import AcceptanceModel, Drafter, resolve_drafter


@dataclass
class Setup:
    scenario: Scenario
    model: ModelSpec
    hardware: HardwareProfile
    timer: KernelTimer
    layout: ReplicaLayout
    drafter: Drafter
    acceptance: AcceptanceModel
    gen_gpus: int
    train_gpus: int
    n_replicas: int
    memory_ar: ReplicaMemory
    memory_spec: ReplicaMemory
    cost_ar: IterationCostModel
    cost_spec: IterationCostModel
    placement_note: str
    engine: EngineProfile | None = None
    training_layout: object = None  # TrainingLayoutModel when the Megatron layout model prices training / log-prob
    disagg: object = None  # DisaggConfig (rlsim/engine/disagg.py) when a prefill pool serves the decode replicas
    agentic: object = None  # AgenticRollout when trajectories have several turns
    train_draft: bool = False  # the training phase also trains the draft online (options.online_draft_training)
    training_fit: object = None  # training_fit.TrainingFit: the training layout used and its memory per GPU
    tree: object = None  # rlsim.speculation.trees.DraftTree of a tree scenario (``acceptance`` is then its path model)
    tree_note: str = ""

    def replica_config(self, speculative: bool) -> ReplicaConfig:
        e = self.scenario.workload.engine
        mem = self.memory_spec if speculative else self.memory_ar
        eng = self.engine
        if eng is None or eng.engine == "ideal":
            return ReplicaConfig(e.max_num_batched_tokens, e.max_num_seqs, mem.kv_capacity_tokens)
        cost = self.cost_spec if speculative else self.cost_ar
        return ReplicaConfig(prefill_chunk_tokens(eng, self.hardware, e), cost.max_running_requests(),
                             mem.kv_capacity_tokens, eng.prefill_mixing == "mixed")

    def sample_turns(self, step: int, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-turn responses [n, turns] (the first turn's are ``first``, later turns drawn from the same response
        distribution) and tool outputs [n, turns - 1] of an agentic step; one column without turns."""
        ag = self.agentic
        if ag is None:
            return first.reshape(-1, 1), np.zeros((first.size, 0), np.int64)
        w = self.scenario.workload
        rng = np.random.default_rng([self.scenario.seed, step, 11])
        later = [sample_lengths(w.response_length, first.size, rng) for _ in range(ag.turns - 1)]
        tool = [sample_lengths(ag.tool_output_length, first.size, rng) for _ in range(ag.turns - 1)]
        return (np.column_stack([first, *later]).astype(np.int64),
                np.column_stack(tool).astype(np.int64) if tool else np.zeros((first.size, 0), np.int64))


    def policy(self, speculative: bool) -> SpecPolicy:
        if not speculative:
            return SpecPolicy(AcceptanceModel.none())
        sc = self.scenario
        sched = sc.num_speculative_tokens_per_batch_size
        k_for = None
        if sched:  # checked (sorted, within the engine's limits, speculation on) by build_scenario
            from ..speculation.adaptive import k_for_batch

            k_for = k_for_batch([tuple(e) for e in sched])
        # acceptance that varies across sequences / along the response (rlsim/speculation/variable_acceptance.py)
        spread = float(sc.options.acceptance_spread or 0.0)
        decay = float(sc.options.acceptance_response_decay or 0.0)
        if spread or decay:
            from ..speculation.variable_acceptance import VariableAcceptancePolicy

            return VariableAcceptancePolicy(self.acceptance, k_for, acceptance_spread=spread, response_decay=decay,
                                            reference_k=sc.k, reference_lengths=self.sample_step_lengths(0)[1],
                                            preserve_mean=sc.options.acceptance_preserve_mean is not False,
                                            seed=sc.seed)
        if self.tree is not None:  # every round verifies the tree; it advances by the accepted path + 1
            return SpecPolicy(self.acceptance, verify_k=self.tree.engine_k)
        return SpecPolicy(self.acceptance, k_for)

    def sample_step_lengths(self, step: int = 0) -> tuple[np.ndarray, np.ndarray]:
        w = self.scenario.workload
        rng = np.random.default_rng([self.scenario.seed, step, 1])
        n = w.sequences_per_step
        prompts = np.repeat(sample_lengths(w.prompt_length, w.num_prompts_per_step, rng), w.num_generations_per_prompt)
        gc = float(self.scenario.options.group_correlation or 0.0)
        if w.max_total_sequence_length is None and w.avg_seq_len is None:
            return prompts, sample_lengths(w.response_length, n, rng, group_size=w.num_generations_per_prompt,
                                           group_correlation=gc)
        raw = sample_raw_lengths(w.response_length, n, rng, group_size=w.num_generations_per_prompt, group_correlation=gc)
        return prompts, response_lengths(w, prompts, raw)


def prefill_chunk_tokens(engine: EngineProfile | None, hw: HardwareProfile, engine_config) -> int:
    """Prefill tokens per step: the workload's max_num_batched_tokens, or SGLang's chunked_prefill_size."""
    if engine is not None and engine.engine != "ideal" and engine.prefill_chunk_tokens == "sglang":
        from ..costmodel.sglang import chunked_prefill_size

        return chunked_prefill_size(hw.hbm_capacity_bytes)
    return engine_config.max_num_batched_tokens


def response_caps(w, prompts: np.ndarray) -> np.ndarray:
    """Each sequence's largest response: max_tokens, and at most max_total_sequence_length - prompt (vLLM's
    max_model_len bounds prompt + response)."""
    cap = np.full(prompts.shape, float(w.response_length.max_tokens))
    if w.max_total_sequence_length is not None:
        cap = np.minimum(cap, np.maximum(w.max_total_sequence_length - prompts, w.response_length.min_tokens))
    return cap


def response_lengths(w, prompts: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Responses from unrounded draws: capped per sequence, and scaled to the workload's ``avg_seq_len`` if set
    (one factor per step, so the step's mean prompt + response length is the measured one)."""
    caps = response_caps(w, prompts)
    if w.avg_seq_len is not None:
        return scale_to_mean(prompts, raw, w.response_length, caps, w.avg_seq_len)
    return np.clip(np.rint(raw), w.response_length.min_tokens, caps).astype(np.int64)


def resolve_acceptance(sc: Scenario) -> AcceptanceModel:
    k = sc.k
    if k == 0:
        return AcceptanceModel.none()
    if sc.acceptance_rates_per_position is not None:
        return AcceptanceModel.from_unconditional_rates(sc.acceptance_rates_per_position).at_k(k)
    if sc.draft_quality is not None:
        return AcceptanceModel.from_quality(k, sc.draft_quality, sc.draft_quality_decay)
    if sc.acceptance_length is not None:
        return AcceptanceModel.from_acceptance_length(k, sc.acceptance_length)
    s = sc.workload.speculation
    if s.acceptance_rates_per_position is not None:
        return AcceptanceModel.from_unconditional_rates(s.acceptance_rates_per_position).at_k(k)
    # the workload's AL at its own k -> a constant per-token rate -> the same draft at this k
    return AcceptanceModel.from_acceptance_length(s.num_speculative_tokens, s.acceptance_length).at_k(k)


def choose_split(total: int, replica_gpus: int, train_unit: int, gen_fraction: float = 0.75) -> tuple[int, int, str]:
    """A generation/training split for non-colocated runs given only a total: about ``gen_fraction``
    of the GPUs generate (the study's async 8B run used 12 generation + 4 training nodes), rounded to
    whole replicas and whole training units."""
    best = None
    for g in range(replica_gpus, total, replica_gpus):
        t = total - g
        if t % train_unit:
            continue
        score = abs(g / total - gen_fraction)
        if best is None or score < best[0]:
            best = (score, g, t)
    if best is None:
        raise ConfigurationError(
            f"cannot split {total} GPUs into whole generation replicas of {replica_gpus} GPUs and training groups of "
            f"{train_unit}; pass --gen-gpus and --train-gpus")
    _, g, t = best
    return g, t, (f"split chosen: {g} generation + {t} training GPUs (~{gen_fraction:.0%} generating, as the study's "
                  f"async run: 12 + 4 nodes); override with --gen-gpus/--train-gpus")


def build_setup(sc: Scenario) -> Setup:
    w = sc.workload
    model = load_model(w.model)
    hw = load_hardware(w.hardware)
    timer = get_timer(hw, sc.calibration)
    layout = replica_layout(model, w.generation)
    drafter = resolve_drafter(model, sc.drafter, sc.draft_model)
    if sc.k == 0:  # k = 0 is exactly autoregressive decoding: no draft weights, no draft passes
        drafter = Drafter("none", None)
    acceptance = resolve_acceptance(sc)
    rg = layout.gpus
    note = "colocated: generation and training share all GPUs, phases run one after another"
    if w.colocated:
        gen_gpus = train_gpus = w.gpus
    else:
        train_unit = max(w.training.tensor_model_parallel_size * w.training.pipeline_model_parallel_size
                         * w.training.context_parallel_size, 1)
        if w.gen_gpus is None and w.train_gpus is None:
            gen_gpus, train_gpus, note = choose_split(w.gpus, rg, train_unit)
        else:
            gen_gpus = w.gen_gpus if w.gen_gpus is not None else w.gpus - (w.train_gpus or 0)
            train_gpus = w.train_gpus if w.train_gpus is not None else w.gpus - gen_gpus
            if gen_gpus < 1 or train_gpus < 1:
                raise ConfigurationError(
                    f"--gen-gpus {gen_gpus} + --train-gpus {train_gpus} must both be >= 1 (total {w.gpus})")
            note = f"non-colocated: {gen_gpus} generation + {train_gpus} training GPUs"
        if train_gpus % train_unit:
            raise ConfigurationError(
                f"--train-gpus = {train_gpus} is not a whole number of training model-parallel groups of {train_unit} GPUs "
                f"(TP x PP x CP of the workload); use a multiple of {train_unit}")
    if gen_gpus % rg:
        raise ConfigurationError(
            f"generation GPUs = {gen_gpus} do not divide into replicas of {rg} GPUs "
            f"(tensor_parallel_size {layout.tensor_parallel_size} x data_parallel_size {layout.data_parallel_size}); "
            f"use a multiple of {rg}, e.g. " + " or ".join(str(g) for g in sorted({max(rg, gen_gpus // rg * rg),
                                                                                   (gen_gpus // rg + 1) * rg})))
    n_rep = gen_gpus // rg
    from ..engine.disagg import agentic_from

    agentic = agentic_from(w, sc.options)
    disagg_opts = sc.options.prefill_gpus
    if (disagg_opts is not None or agentic is not None) and sc.lag > 0:
        what = "--prefill-gpus (a prefill pool)" if disagg_opts is not None else "multi-turn rollouts (--turns / agentic)"
        raise ConfigurationError(f"{what} with --lag {sc.lag}: modelled for synchronous steps only; allowed: --lag 0")
    n_prefill = 0
    if disagg_opts is not None:
        pg = int(disagg_opts)
        if pg % rg or pg >= gen_gpus:
            raise ConfigurationError(
                f"--prefill-gpus = {pg}: allowed a multiple of the replica size {rg} (TP x DP) below the {gen_gpus} "
                f"generation GPUs, leaving decode replicas (e.g. {rg}..{max(gen_gpus - rg, rg)})")
        n_prefill = pg // rg
        n_rep = (gen_gpus - pg) // rg
    # vLLM refuses a request whose prompt + max new tokens exceed what one replica's KV cache can hold
    prompts_max = w.prompt_length.max_tokens + w.response_length.max_tokens
    if w.max_total_sequence_length is not None:
        prompts_max = min(prompts_max, w.max_total_sequence_length)
    if agentic is not None:
        prompts_max = w.model_copy(update={"agentic": agentic}).longest_context_tokens()
    mem_ar = replica_memory(model, hw, layout, w.generation_dtype, w.kv_cache_dtype, w.engine.gpu_memory_utilization,
                            None, "none", prompts_max)
    mem_spec = replica_memory(model, hw, layout, w.generation_dtype, w.kv_cache_dtype, w.engine.gpu_memory_utilization,
                              drafter.network, drafter.method, prompts_max)
    engine = load_engine(sc.engine)
    common = dict(model=model, hardware=hw, layout=layout, timer=timer, dtype=w.generation_dtype,
                  kv_dtype=w.kv_cache_dtype, enforce_eager=w.engine.enforce_eager,
                  moe_routing_skew=float(sc.options.moe_routing_skew or 0.0),
                  engine=None if engine.engine == "ideal" else engine, engine_config=w.engine)
    # an AR run's engine is configured without speculation; a speculative one with the scenario's k (its
    # captured CUDA-graph sizes depend on it)
    cost_ar = IterationCostModel(method="none", configured_k=0, **common)
    tree, tree_note = (None, "")
    configured_k = sc.k
    if sc.has_tree and sc.k > 0:
        tree, acceptance, tree_note = resolve_tree(sc, acceptance, engine)
        configured_k = tree.engine_k if tree is not None else acceptance.k
    cost_spec = IterationCostModel(method=drafter.method, draft=drafter.network, configured_k=configured_k, tree=tree,
                                   **common)
    setup = Setup(sc, model, hw, timer, layout, drafter, acceptance, gen_gpus, train_gpus, n_rep, mem_ar, mem_spec,
                  cost_ar, cost_spec, note, engine=engine, tree=tree, tree_note=tree_note)
    from .training_fit import resolve_training, uses_layout_model

    # the trainer must fit (costmodel/training_memory.py): the workload's layout, or one chosen to fit, or refused
    setup.training_fit = fit = resolve_training(setup)
    tl = None
    if uses_layout_model(w):
        from ..costmodel.training_layout import TrainingLayoutModel

        max_total = w.max_total_sequence_length or (w.prompt_length.max_tokens + w.response_length.max_tokens)
        try:
            tl = TrainingLayoutModel(model, hw, timer, fit.par, train_gpus, max_total, w.colocated, w.training_dtype)
        except ConfigurationError as e:
            if w.training_model == "layout":  # asked for (a recipe's layout): its errors are the user's
                raise
            # a catalog workload's illustrative layout that does not fit this GPU count: the MFU model, said so
            note += (f"; training / log-prob by the MFU model (workload {w.name}'s Megatron layout does not fit "
                     f"{train_gpus} training GPUs: {e})")
    cost_spec.expected_acceptance_length = float(acceptance.acceptance_length) if sc.k > 0 else None
    disagg = None
    if n_prefill:
        from ..engine.disagg import DisaggConfig

        gbps = sc.options.kv_link_gbps
        bw = float(gbps) * 1e9 / 8 if gbps is not None else hw.scaleout_bandwidth_bytes_per_s
        lat_ms = sc.options.kv_link_latency_ms
        eng_for_transfer = engine
        disagg = DisaggConfig(int(disagg_opts), n_prefill, bw, (DEFAULT_KV_LINK_LATENCY_MS if lat_ms is None
                                                                 else float(lat_ms)) / 1e3,
                              eng_for_transfer.kv_transfer, prefill_chunk_tokens(engine, hw, w.engine))
        note += (f"; prefill/decode disaggregated: {n_prefill} prefill replica(s) ({disagg_opts} GPUs) send KV to "
                 f"{n_rep} decode replica(s) over {bw * 8 / 1e9:g} Gb/s per GPU, {disagg.latency_s * 1e3:g} ms "
                 f"({engine.kv_transfer.replace('_', ' ')}, engine {engine.name})")
    if agentic is not None:
        note += (f"; {agentic.turns} turns per trajectory, tool latency {agentic.tool_latency_s:g} s, tool outputs "
                 f"median {agentic.tool_output_length.median_tokens:g} tokens")
    setup.placement_note, setup.training_layout, setup.disagg, setup.agentic = note, tl, disagg, agentic
    return setup


# One-way latency of a KV transfer when --kv-link-latency-ms is not given: a few microseconds of an RDMA write
# inside one data centre (InfiniBand NDR switch hop ~0.1-1 us plus NIC processing); chosen, not measured.
DEFAULT_KV_LINK_LATENCY_MS = 0.005


def rank_acceptance(sc: Scenario, chain: AcceptanceModel, depth: int):
    """The per-depth, per-rank acceptance of a tree scenario: the user's table, or the chain's per-position rates
    at ``depth`` with the rank decay (rlsim/speculation/trees.py)."""
    from ..speculation.trees import DEFAULT_RANK_DECAY, RankAcceptance

    if sc.tree_acceptance is not None:
        return RankAcceptance(table=tuple(tuple(r) for r in sc.tree_acceptance))
    decay = DEFAULT_RANK_DECAY if sc.tree_rank_decay is None else sc.tree_rank_decay
    return RankAcceptance(chain.at_k(max(depth, 1)).conditional_rates, decay)


def resolve_tree(sc: Scenario, chain: AcceptanceModel, engine: EngineProfile):
    """(DraftTree or None for a chain-shaped one, the round's acceptance model, a note) of a tree scenario."""
    from ..speculation.trees import build_tree, retrieval_model, tree_acceptance

    depth = sc.speculative_num_steps or max(len(n) for n in __import__("ast").literal_eval(sc.speculative_token_tree))
    acc = rank_acceptance(sc, chain, depth)
    tree = build_tree(steps=sc.speculative_num_steps, topk=sc.speculative_eagle_topk,
                      draft_tokens=sc.speculative_num_draft_tokens, token_tree=sc.speculative_token_tree, acc=acc,
                      retrieval_tokens=sc.retrieval_tokens)
    if tree.is_chain:  # one node per level: exactly a chain of that depth (no tree machinery in any engine)
        m = chain.at_k(tree.depth) if sc.tree_acceptance is None else tree_acceptance(tree, acc, "tree")
        return None, m, (f"draft tree {tree.describe()} is a chain: run as k = {tree.depth}")
    verification = sc.tree_verification or (engine.tree_verification if engine.engine != "ideal" else None) or "tree"
    retr = retrieval_model(tree.retrieval_tokens, sc.retrieval_acceptance_length) if tree.retrieval_tokens else None
    m = tree_acceptance(tree, acc, verification, retr)
    chain_al = chain.at_k(tree.depth).acceptance_length
    note = (f"draft tree: {tree.describe()}, {tree.engine_k + 1} tokens verified per sequence; {acc.describe()}; "
            f"verification {verification}" + (" (vLLM 0.17.1's rejection sampler verifies the flattened tree as a chain: "
                                               "the accepted path stops at the first branching)" if verification == "chain" else "")
            + f"; expected AL {m.acceptance_length:.3f} (the chain of depth {tree.depth}: {chain_al:.3f})")
    return tree, m, note
