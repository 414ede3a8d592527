"""GPU memory of the trainer (Megatron-core, as NeMo-RL drives it), per GPU and per phase, and the choice of a
training layout that fits.

What one training GPU holds (the pipeline stage that needs most; every number below is per GPU):

- **Weights, bf16** (2 B per parameter the GPU holds) and the **gradient buffer, bf16** (2 B per parameter, the
  whole local model: Megatron's DDP buffer, reduce-scattered in place). NeMo-RL v0.6.0 ``grpo_math_1B.yaml``:
  ``megatron_cfg.optimizer.bf16: true``, ``distributed_data_parallel_config.grad_reduce_in_fp32: false``.
- **Optimizer state, fp32, sharded (ZeRO-1)**: master weights + Adam ``exp_avg`` + ``exp_avg_sq`` = 12 B per
  parameter, divided over the data-parallel ranks that hold a copy of the parameter: DP x CP for dense
  parameters, EDP for expert parameters (the distributed optimizer shards over Megatron's data-parallel
  groups). Same file: ``optimizer: adam``, ``params_dtype: float32``, ``use_distributed_optimizer: true``,
  ``use_precision_aware_optimizer: true`` (TransformerEngine's FusedAdam keeps the fp32 master weights and reads
  the bf16 gradients itself, so no separate fp32 copy of the gradients is kept: 12 B, not 16 B, per sharded
  parameter).
- **Activations** saved for the backward pass, per token and layer (bf16): the norm input and the norm output
  feeding the QKV GEMM; q, k, v and the attention output that FlashAttention's backward reads (no score
  matrix); for a dense MLP its input, the fused gate/up output (SwiGLU reads both halves) and the activation
  output; for a MoE layer the router input, the router probabilities (fp64: NeMo-RL's ``moe_router_dtype:
  "fp64"``), and for each of the top-k experts the permuted token, its gate/up output and its activation
  output (the per-token form of Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer
  Models", arXiv 2205.05198, section 4, written for GQA/MLA, SwiGLU and MoE; no dropout in RL). Tensor
  parallelism divides the head / FFN parts; sequence parallelism (forced for MoE with TP > 1) divides the rest;
  context parallelism divides the tokens. With **activation checkpointing** (NeMo-RL: full recompute of every
  layer) only each layer's input is kept, plus one layer's activations while it is recomputed.
- **Micro-batches in flight**: packed micro-batches of ``train_mb_tokens`` tokens (NeMo-RL's default
  ``max_total_sequence_length x train_micro_batch_size``, as the layout model packs them). Under 1F1B the
  first stage holds ``PP`` micro-batches (at most as many as it runs); the interleaved schedule
  ``PP + (PP - 1) / VPP`` (Megatron-core's warm-up counts) -- so pipeline parallelism does not divide the first
  stage's activation memory.
- **Logits**: the last stage materialises fp32 logits over its vocabulary shard and keeps their softmax for the
  backward (2 x 4 B x tokens x vocab / TP; NeMo-RL's default ``defer_fp32_logits: false``).
- **Log-prob pass** (policy, and the reference policy whose weights NeMo-RL swaps in from host memory): forward
  only, one layer's activations of one ``logprob_mb_tokens`` micro-batch at a time plus the logits.
- **Reserve** (``TRAINER_RESERVE_BYTES``): CUDA context, NCCL communicator buffers and allocator fragmentation.

**Colocated** (generation and training share the GPUs; NeMo-RL's default): what NeMo-RL moves between phases
(``grpo_math_1B.yaml``: "colocated generation will always offload optimizer to cuda [sic: host] before refit",
``empty_unused_memory_level: 1`` "we almost always need to offload before beginning generation"; the Megatron
worker's ``offload_before_refit`` / ``offload_after_refit``, priced by ``training_layout.py``'s colocated
offload): during **training and log-prob** the vLLM engine sleeps (sleep level 1: weights to host memory, KV
cache discarded) and keeps its non-weight, non-KV memory (``memory.NON_KV_RESERVE_BYTES``: CUDA-graph pools,
workspaces); during the **refit** the optimizer state is on the host, the trainer's weights and gradient
buffer are on the GPU, and vLLM's weights (and the draft's) are awake to receive the new weights; during
**generation** the trainer keeps only its reserve and vLLM uses ``gpu_memory_utilization`` of the GPU. Every
phase must fit the GPU's memory (``hbm_capacity_bytes``, what the framework sees).

No efficiency or fitted number lives here; the one engineering estimate is the reserve.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from ..catalog import HardwareProfile, ModelSpec, TrainingParallelism
from ..errors import ConfigurationError
from . import mla
from .memory import NON_KV_RESERVE_BYTES

# CUDA context, NCCL communicators (one per TP / PP / DP / EP / CP group, each with its channel buffers) and the
# caching allocator's fragmentation, per training GPU. Engineering estimate, not measured: the same order as
# the rollout engine's reserve (memory.NON_KV_RESERVE_BYTES, 4 GB); 2 GB more for the trainer's larger set of
# communicators and its fragmentation over a step's varied packed micro-batches.
TRAINER_RESERVE_BYTES = 6.0e9
WEIGHT_BYTES = 2.0  # bf16 weights (grpo_math_1B.yaml megatron_cfg.optimizer.bf16: true)
GRAD_BYTES = 2.0  # bf16 gradient buffer (distributed_data_parallel_config.grad_reduce_in_fp32: false)
OPTIMIZER_BYTES = 12.0  # fp32 master weight + Adam exp_avg + exp_avg_sq (params_dtype float32, adam), ZeRO-1 sharded
ACT_BYTES = 2.0  # bf16 activations
LOGIT_BYTES = 2 * 4.0  # fp32 logits and their softmax kept for the backward, per token per vocabulary entry
ROUTER_PROB_BYTES = 8.0  # NeMo-RL megatron_cfg.moe_router_dtype: "fp64", per token per expert

GB = 1e9


@dataclass(frozen=True)
class Layout:
    """A Megatron layout (the knobs a layout search moves) resolved on a GPU count."""

    tp: int
    pp: int
    cp: int
    ep: int
    etp: int
    vpp: int
    dp: int
    edp: int
    sp: bool
    recompute: bool
    stage_layers: tuple[tuple[int, int], ...]

    def describe(self) -> str:
        s = f"TP {self.tp}, PP {self.pp}"
        if self.vpp > 1:
            s += f" (VPP {self.vpp})"
        if self.cp > 1:
            s += f", CP {self.cp}"
        if self.ep > 1:
            s += f", EP {self.ep}"
        if self.etp > 1:
            s += f", ETP {self.etp}"
        s += f", DP {self.dp}"
        return s + (", activation checkpointing" if self.recompute else "")


def resolve(model: ModelSpec, par: TrainingParallelism, gpus: int) -> Layout:
    """``training_layout.resolve_layout`` (the layout the time model uses), as a :class:`Layout`."""
    from .training_parallel import resolve_layout

    L = resolve_layout(model, par, gpus)
    return Layout(L.tp, L.pp, L.cp, L.ep, L.etp, L.vpp, L.dp, L.edp, L.sp, L.recompute, L.stage_layers)


def stage_params(model: ModelSpec, L: Layout) -> list[tuple[float, float]]:
    """(dense, expert) parameters one GPU of each pipeline stage holds (the layout model's ``params_per_gpu``
    per stage: attention and dense MLPs over TP, routed experts over EP x ETP, router and shared experts,
    embedding on the first stage, LM head on the last)."""
    m = model
    attn = mla.attention_params_per_gpu(m, L.tp) if m.is_mla else m.attention_params / L.tp
    out = []
    for s, (nd, nm) in enumerate(L.stage_layers):
        d = (nd + nm) * attn + nd * m.dense_mlp_params / L.tp
        e = 0.0
        if m.is_moe and nm:
            d += nm * (m.hidden_size * m.num_experts + 3 * m.hidden_size * m.shared_expert_intermediate / L.tp)
            e = nm * m.num_experts * 3 * m.hidden_size * m.moe_intermediate_size / (L.ep * L.etp)
        if s == 0:
            d += m.vocab_size * m.hidden_size / L.tp
        if s == L.pp - 1 and not m.tie_word_embeddings:
            d += m.vocab_size * m.hidden_size / L.tp
        out.append((d, e))
    return out


def activation_bytes_per_token(model: ModelSpec, L: Layout, moe: bool) -> float:
    """Bytes one layer keeps for its backward, per token of the micro-batch (before CP divides the tokens),
    on one GPU, without checkpointing."""
    m, t = model, L.tp
    h = m.hidden_size
    hs = h / t if L.sp else h  # the sequence-parallel region (norms, residual stream)
    if m.is_mla:
        n = m.num_attention_heads / t
        qk = m.qk_nope_head_dim + m.qk_rope_head_dim
        # down projections' outputs (replicated), then q, k, v and the output per local head
        attn = 2 * hs + (m.q_lora_rank or 0) + m.kv_lora_rank + m.qk_rope_head_dim + n * (2 * qk + 2 * m.v_head_dim)
    else:
        nq, nkv = m.num_attention_heads / t, max(m.num_key_value_heads / t, 1.0)
        attn = 2 * hs + (2 * nq + 2 * nkv) * m.head_dim  # norm in/out, q, k, v, attention output
    if moe:
        k, f = m.num_experts_per_tok, m.moe_intermediate_size / L.etp
        routed = k * (h + 3 * f) / (t if t > 1 else 1)  # each GPU routes its sequence-parallel shard of tokens
        mlp = 2 * hs + m.num_experts * ROUTER_PROB_BYTES / ACT_BYTES + routed
        if m.shared_expert_intermediate:
            mlp += 3 * m.shared_expert_intermediate / t
    else:
        mlp = 2 * hs + 3 * m.intermediate_size / t  # input, gate/up output, activation output
    return ACT_BYTES * (attn + mlp)


@dataclass(frozen=True)
class TrainingMemory:
    """Per-GPU memory of the trainer (and, colocated, of the sleeping / waking rollout engine), by phase."""

    layout: Layout
    capacity_bytes: float
    weights_bytes: float
    grads_bytes: float
    optimizer_bytes: float
    activations_bytes: float
    logits_bytes: float
    logprob_transient_bytes: float
    reserve_bytes: float
    phases: dict[str, float]  # phase -> bytes needed per GPU (the stage that needs most)
    colocated: bool
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def binding_phase(self) -> str:
        return max(self.phases, key=self.phases.get)

    @property
    def need_bytes(self) -> float:
        return max(self.phases.values())

    @property
    def fits(self) -> bool:
        return self.need_bytes <= self.capacity_bytes

    def breakdown(self) -> str:
        """'bf16 weights 4.4 + grads 4.4 + optimizer 5.1 + activations 7.2 + logits 1.1 + reserve 6.0 GB'."""
        parts = [("bf16 weights", self.weights_bytes), ("grads", self.grads_bytes),
                 ("fp32 optimizer (sharded)", self.optimizer_bytes), ("activations", self.activations_bytes),
                 ("logits", self.logits_bytes), ("reserve", self.reserve_bytes)]
        return " + ".join(f"{n} {v / GB:.1f}" for n, v in parts if v > 0) + " GB"

    def to_dict(self) -> dict:
        L = self.layout
        return {"layout": {"TP": L.tp, "PP": L.pp, "VPP": L.vpp, "CP": L.cp, "EP": L.ep, "ETP": L.etp, "DP": L.dp,
                           "EDP": L.edp, "sequence_parallel": L.sp, "activation_checkpointing": L.recompute},
                "capacity_gb": self.capacity_bytes / GB, "need_gb": self.need_bytes / GB,
                "binding_phase": self.binding_phase, "fits": self.fits, "colocated": self.colocated,
                "phases_gb": {k: v / GB for k, v in self.phases.items()},
                "training_gb": {"weights": self.weights_bytes / GB, "grads": self.grads_bytes / GB,
                                "optimizer": self.optimizer_bytes / GB, "activations": self.activations_bytes / GB,
                                "logits": self.logits_bytes / GB, "reserve": self.reserve_bytes / GB},
                "notes": list(self.notes)}


@dataclass(frozen=True)
class RolloutFootprint:
    """What the colocated rollout engine needs per GPU beside the trainer (bytes)."""

    weight_bytes: float  # target + draft weights, awake during the refit
    gpu_memory_utilization: float


def training_memory(model: ModelSpec, hw: HardwareProfile, par: TrainingParallelism, gpus: int,
                    max_total_sequence_length: int, *, colocated: bool, rollout: RolloutFootprint | None = None,
                    tokens_per_optimizer_step: float | None = None, layout: Layout | None = None) -> TrainingMemory:
    """Memory per GPU of training ``model`` on ``gpus`` GPUs with layout ``par`` (resolved; a layout that does
    not divide the GPUs raises). ``tokens_per_optimizer_step`` (the step's packed tokens per optimizer step)
    bounds the micro-batches in flight by the number each data-parallel rank runs (None: a full pipeline)."""
    L = layout or resolve(model, par, gpus)
    mb_tokens = par.train_mb_tokens or max_total_sequence_length * par.train_micro_batch_size
    lp_tokens = par.logprob_mb_tokens or max_total_sequence_length * (par.logprob_batch_size or par.train_micro_batch_size)
    # a packed bin holds at least the longest sequence (a longer one gets a bin of its own)
    mb_tokens = max(mb_tokens, max_total_sequence_length)
    lp_tokens = max(lp_tokens, max_total_sequence_length)
    a_dense = activation_bytes_per_token(model, L, moe=False) if (not model.is_moe or model.n_dense_layers) else 0.0
    a_moe = activation_bytes_per_token(model, L, moe=True) if model.is_moe else 0.0
    m = math.inf if tokens_per_optimizer_step is None else math.ceil(tokens_per_optimizer_step / L.dp / mb_tokens)
    stages = stage_params(model, L)
    best = None
    for s, ((dense, expert), (nd, nm)) in enumerate(zip(stages, L.stage_layers)):
        params = dense + expert
        w = WEIGHT_BYTES * params
        g = GRAD_BYTES * params
        opt = OPTIMIZER_BYTES * (dense / (L.dp * L.cp) + expert / max(L.edp, 1))
        # micro-batches whose activations this stage holds at once (1F1B / interleaved warm-up + 1)
        if L.vpp > 1:
            inflight = min(((L.pp - s - 1) * 2 + (L.vpp - 1) * L.pp + 1) / L.vpp, max(m, 1))
        else:
            inflight = min(L.pp - s, max(m, 1))
        tok = mb_tokens / L.cp
        per_layer = nd * a_dense + nm * a_moe  # bytes per token over the stage's layers
        one_layer = max(a_dense if nd else 0.0, a_moe if nm else 0.0)
        if L.recompute:  # each layer's input kept; one layer's activations live while it is recomputed
            kept = (nd + nm) * ACT_BYTES * (model.hidden_size / L.tp if L.sp else model.hidden_size)
            act = tok * (inflight * kept + one_layer)
        else:
            act = tok * inflight * per_layer
        last = s == L.pp - 1
        logits = tok * model.vocab_size / L.tp * LOGIT_BYTES if last else 0.0
        lp_tok = lp_tokens / L.cp
        lp_transient = lp_tok * one_layer + (lp_tok * model.vocab_size / L.tp * LOGIT_BYTES if last else 0.0)
        train = w + g + opt + act + logits + TRAINER_RESERVE_BYTES
        # log-prob: forward only; colocated, the optimizer state is on the host until training starts
        logprob = w + g + (0.0 if colocated else opt) + lp_transient + TRAINER_RESERVE_BYTES
        if best is None or max(train, logprob) > max(best[0]["training"], best[0]["logprob"]):
            best = ({"training": train, "logprob": logprob}, w, g, opt, act, logits, lp_transient)
    phases, w, g, opt, act, logits, lp_transient = best
    notes = []
    if colocated:
        sleep = NON_KV_RESERVE_BYTES  # vLLM asleep: weights on the host, KV discarded, its other memory kept
        phases = {"training": phases["training"] + sleep, "logprob": phases["logprob"] + sleep}
        if rollout is not None:
            phases["refit"] = w + g + TRAINER_RESERVE_BYTES + rollout.weight_bytes + NON_KV_RESERVE_BYTES
            phases["generation"] = hw.hbm_capacity_bytes * rollout.gpu_memory_utilization + TRAINER_RESERVE_BYTES
        notes.append("colocated: the rollout engine sleeps (weights on the host, KV freed) during log-prob and "
                     "training; the optimizer state is on the host during refit and generation")
    return TrainingMemory(L, hw.hbm_capacity_bytes, w, g, opt, act, logits, lp_transient, TRAINER_RESERVE_BYTES,
                          phases, colocated, tuple(notes))


# ---------------------------------------------------------------------------------------- layout search
def _powers(limit: int) -> list[int]:
    return [1 << i for i in range(0, max(limit, 1).bit_length()) if (1 << i) <= limit]


def _knob_values(model: ModelSpec, hw: HardwareProfile, gpus: int) -> dict[str, list[int]]:
    """Values each knob may take in a search: TP within a node (Megatron's TP all-reduces every layer), PP up to
    the layer count, EP over the experts, CP (ring attention) up to 8."""
    tp = [t for t in _powers(min(gpus, hw.gpus_per_node if hw.gpus_per_node > 1 else 8, 8))
          if model.num_attention_heads % t == 0]
    pp = [p for p in _powers(min(gpus, model.num_hidden_layers)) if p <= model.num_hidden_layers]
    ep = [e for e in _powers(min(gpus, model.num_experts)) if model.num_experts % e == 0] if model.is_moe else [1]
    cp = _powers(min(gpus, 8))
    return {"tp": tp, "pp": pp, "ep": ep, "cp": cp}


def _with(par: TrainingParallelism, tp: int, pp: int, ep: int, cp: int, recompute: bool) -> TrainingParallelism:
    upd = dict(tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp, expert_model_parallel_size=ep,
               context_parallel_size=cp, activation_checkpointing=recompute)
    if pp != par.pipeline_model_parallel_size:  # explicit first/last stage sizes belong to the original PP
        upd.update(num_layers_in_first_pipeline_stage=None, num_layers_in_last_pipeline_stage=None,
                   virtual_pipeline_model_parallel_size=1)
    return par.model_copy(update=upd)


def _key(par: TrainingParallelism) -> tuple:
    return (par.tensor_model_parallel_size, par.pipeline_model_parallel_size, par.expert_model_parallel_size,
            par.context_parallel_size, par.activation_checkpointing)


def candidate_layouts(model: ModelSpec, hw: HardwareProfile, par: TrainingParallelism, gpus: int):
    """Every layout of the search space valid on ``gpus`` GPUs, as (changes from ``par``, layout): the number of
    knobs (TP, PP, EP, CP, activation checkpointing) that differ from the given layout."""
    kv = _knob_values(model, hw, gpus)
    base = _key(par)
    out = []
    for tp, pp, ep, cp, rc in itertools.product(kv["tp"], kv["pp"], kv["ep"], kv["cp"], (False, True)):
        if (gpus % (tp * pp * cp)) or ((tp * cp * (gpus // (tp * pp * cp))) % ep):
            continue
        cand = _with(par, tp, pp, ep, cp, rc) if (tp, pp, ep, cp, rc) != base else par
        changes = sum(a != b for a, b in zip((tp, pp, ep, cp, rc), base))
        out.append((changes, cand))
    if base not in {_key(c) for _, c in out}:
        out.append((0, par))  # the given layout even where a knob lies outside the search grid
    return out


def _preference(par: TrainingParallelism) -> tuple:
    """Among layouts that fit with equally few changes: no recompute first (a third more compute), then the
    least model parallelism (PP bubbles, TP / CP collectives every layer), experts spread widest."""
    return (par.activation_checkpointing, par.pipeline_model_parallel_size * par.context_parallel_size,
            par.tensor_model_parallel_size, par.pipeline_model_parallel_size, -par.expert_model_parallel_size)


def fitting_layouts(model: ModelSpec, hw: HardwareProfile, par: TrainingParallelism, gpus: int, max_total: int, *,
                    colocated: bool, rollout: RolloutFootprint | None = None, tokens_per_optimizer_step: float | None = None):
    """The layouts that fit, each with its memory, nearest to ``par`` first (fewest changed knobs, then
    :func:`_preference`)."""
    fits = []
    for changes, cand in candidate_layouts(model, hw, par, gpus):
        try:
            mem = training_memory(model, hw, cand, gpus, max_total, colocated=colocated, rollout=rollout,
                                  tokens_per_optimizer_step=tokens_per_optimizer_step)
        except ConfigurationError:
            continue
        if mem.fits:
            fits.append((changes, _preference(cand), cand, mem))
    fits.sort(key=lambda x: (x[0], x[1]))
    return [(c, cand, mem) for c, _, cand, mem in fits]


def smallest_fitting_gpus(model: ModelSpec, hw: HardwareProfile, par: TrainingParallelism, gpus: int, max_total: int,
                          *, colocated: bool, rollout: RolloutFootprint | None = None, step: int = 1,
                          limit: int = 1 << 20, tokens_per_optimizer_step: float | None = None) -> tuple[int, TrainingParallelism, TrainingMemory] | None:
    """The smallest GPU count above ``gpus`` (a multiple of ``step``) at which some layout fits."""
    n = (gpus // step + 1) * step
    # grow in whole steps, then in larger strides once far beyond (the answer's magnitude is what counts)
    while n <= limit:
        found = fitting_layouts(model, hw, par, n, max_total, colocated=colocated, rollout=rollout,
                                tokens_per_optimizer_step=tokens_per_optimizer_step)
        if found:
            _, cand, mem = found[0]
            return n, cand, mem
        n += step if n < 64 * step else max(step, (n // 8) // step * step)
    return None


def lower_bound_bytes(model: ModelSpec, gpus: int) -> float:
    """Weights + gradients + optimizer state of the whole model spread evenly over ``gpus`` GPUs: no layout
    needs less per GPU (activations, logits and the reserve come on top)."""
    return model.total_params * (WEIGHT_BYTES + GRAD_BYTES + OPTIMIZER_BYTES) / gpus


__all__ = ["GB", "Layout", "RolloutFootprint", "TRAINER_RESERVE_BYTES", "TrainingMemory", "activation_bytes_per_token",
           "candidate_layouts", "fitting_layouts", "lower_bound_bytes", "resolve", "smallest_fitting_gpus",
           "stage_params", "training_memory"]
