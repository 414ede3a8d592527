"""Cost of one engine iteration of one generation replica, per GPU, from first principles.

An iteration (vLLM V1, chunked prefill) runs the target over ``n_tokens`` tokens: each decoding
sequence contributes k+1 tokens (its last token plus k drafts to verify; k = 0 is plain decoding)
and prefilling sequences contribute their chunk. It then samples (or rejection-samples) and, for
model-based drafters, runs the k draft passes for the next round (vLLM: the first over all
B*(k+1) positions, the other k-1 over B tokens each).

Every function is vectorised over iterations: pass numpy arrays of per-iteration aggregates and
get an array of seconds back, so the rollout engine can cost thousands of iterations per call.
Attention is charged from every sequence's own KV length (sums over the batch), never from a
mean length.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..catalog import DraftSpec, EngineConfig, EngineProfile, GenerationParallelism, HardwareProfile, ModelSpec
from ..errors import ConfigurationError
from . import mla, network
from .timer import BYTES, KERNELS_PER_FUSED_MOE, KernelTimer

# Host-side engine overhead per iteration (scheduler, input preparation, output processing).
# vLLM V1 overlaps most of it with GPU work (async scheduling); the residue below is an engineering
# estimate until calibrated. n-gram drafting turns async scheduling off (shared reference), so
# its host work is fully exposed.
HOST_OVERHEAD = {
    "step_fixed_s": 250e-6,
    "per_seq_s": 1.0e-6,
    "sync_step_fixed_s": 1.0e-3,
    "sync_per_seq_s": 6.0e-6,
    "ngram_per_seq_s": 15e-6,
}

# Kernel launches per decoder layer (dense: norm, qkv, qk-norm, rope+cache write, attention, o,
# all-reduce, add+norm, gate_up, act, down, all-reduce; MoE: the 9 that are not the MLP, and the fused
# MoE block's KERNELS_PER_FUSED_MOE) and per iteration outside the layers (embedding, final norm, LM head,
# gather, sampling). Counted from vLLM's Qwen3/Llama model code paths.
KERNELS_PER_DENSE_LAYER = 12
KERNELS_PER_MOE_LAYER = 9 + KERNELS_PER_FUSED_MOE
KERNELS_OUTSIDE_LAYERS = 10
KERNELS_PER_DRAFT_PASS = 16
_STATIC_KEYS = ("gpu", "n_kernels", "graph", "host", "n_small", "small_s", "n_gap", "host_in", "async_sched")

# graph modes of one step (``graph`` in a breakdown): no graph, PIECEWISE (graph around eager attention), FULL
EAGER, PIECEWISE, FULL = 0, 1, 2
GRAPH_MODE_NAMES = {EAGER: "eager", PIECEWISE: "piecewise", FULL: "full"}
# vLLM's CUDAGraphWrapper replays one graph per piece; a decoder layer's attention splits the graph, so a
# PIECEWISE forward of n layers replays n + 1 pieces and launches each layer's attention op eagerly (the
# KV-cache write and the attention kernel: 2 launches). vllm 0.17.1 compilation/backends.py (split at
# unified_attention_with_output), model_executor/layers/attention.
ATTENTION_LAUNCHES_PER_LAYER = 2


def vllm_capture_sizes(max_capture_tokens: int, k: int) -> np.ndarray:
    """vLLM 0.17.1's captured CUDA-graph sizes in tokens: [1, 2, 4] + 8..248 step 8 + 256..max step 16
    (config/vllm.py:1332-1424), each rounded up to a multiple of k + 1 and kept if <= max
    (config/compilation.py:1146-1191)."""
    base = [1, 2, 4] + list(range(8, 256, 8)) + list(range(256, max_capture_tokens + 1, 16))
    q = k + 1
    sizes = sorted({-(-s // q) * q for s in base if -(-s // q) * q <= max_capture_tokens})
    if not sizes and q <= max_capture_tokens:
        sizes = [q]
    return np.asarray(sizes, dtype=float)


@dataclass
class IterationBatch:
    """Per-iteration aggregates over one replica's batch (numpy arrays of one length)."""

    n_decode: np.ndarray  # decoding sequences
    k: np.ndarray  # speculative tokens per decoding sequence this iteration (0 = plain decode)
    decode_kv_tokens: np.ndarray  # sum of decoding sequences' KV lengths before this iteration
    n_prefill_tokens: np.ndarray = None  # prefill chunk tokens
    n_prefill_seqs: np.ndarray = None
    prefill_kv_tokens: np.ndarray = None  # sum over prefill seqs of (offset + chunk)
    prefill_qk_pairs: np.ndarray = None  # sum over prefill seqs of chunk*offset + chunk*(chunk+1)/2
    n_prefill_done: np.ndarray = None  # sequences whose prefill completes (they sample a token)

    def __post_init__(self):
        self.n_decode = np.asarray(self.n_decode, dtype=float)
        n = self.n_decode.shape
        self.k = np.broadcast_to(np.asarray(self.k, dtype=float), n)
        self.decode_kv_tokens = np.asarray(self.decode_kv_tokens, dtype=float)
        for name in ("n_prefill_tokens", "n_prefill_seqs", "prefill_kv_tokens", "prefill_qk_pairs", "n_prefill_done"):
            v = getattr(self, name)
            setattr(self, name, np.zeros(n) if v is None else np.broadcast_to(np.asarray(v, dtype=float), n))


@dataclass
class ReplicaLayout:
    """How one generation replica (a vLLM engine) maps onto GPUs."""

    tensor_parallel_size: int
    data_parallel_size: int
    expert_parallel_size: int

    @property
    def gpus(self) -> int:
        return self.tensor_parallel_size * self.data_parallel_size


def replica_layout(model: ModelSpec, par: GenerationParallelism) -> ReplicaLayout:
    tp, dp = par.tensor_parallel_size, par.data_parallel_size
    if dp > 1 and not model.is_moe:
        raise ConfigurationError(
            f"generation.data_parallel_size = {dp} (attention data parallelism inside one engine) applies to MoE "
            f"models; {model.name} is dense: use more replicas instead (allowed: 1)")
    ep = tp * dp if (model.is_moe and par.enable_expert_parallel) else 1
    if model.is_moe and model.num_experts % ep:
        raise ConfigurationError(f"expert parallel size {ep} does not divide num_experts = {model.num_experts} of {model.name}")
    if model.num_attention_heads % tp:
        raise ConfigurationError(
            f"generation.tensor_parallel_size = {tp} does not divide num_attention_heads = {model.num_attention_heads} "
            f"of {model.name}; allowed: {[t for t in (1, 2, 4, 8, 16) if model.num_attention_heads % t == 0]}")
    return ReplicaLayout(tp, dp, ep)


@dataclass
class IterationCostModel:
    model: ModelSpec
    hardware: HardwareProfile
    layout: ReplicaLayout
    timer: KernelTimer
    dtype: str = "bf16"
    kv_dtype: str = "bf16"
    method: str = "none"  # none | eagle3 | mtp | draft-model | ngram
    draft: DraftSpec | ModelSpec | None = None
    enforce_eager: bool = False
    host: dict[str, float] = field(default_factory=lambda: dict(HOST_OVERHEAD))
    moe_routing_skew: float = 0.0  # Zipf exponent of expert popularity (0: uniform routing)
    # the rollout engine's mechanisms (engine_profiles/*.yaml); None = the ideal engine (as before profiles)
    engine: EngineProfile | None = None
    engine_config: EngineConfig | None = None  # vLLM knobs (max_num_seqs, max_num_batched_tokens)
    configured_k: int = 0  # the engine's num_speculative_tokens (fixes its captured graph sizes)
    # mean tokens a speculative round emits per sequence (an SGLang-style sampler computes log-probs of the accepted
    # rows only); None: k + 1, every row
    expected_acceptance_length: float | None = None
    # a draft tree (rlsim.speculation.trees.DraftTree; None: a chain of k drafts). With a tree an iteration's k is
    # the tree's verified draft tokens per sequence (drafted + retrieved); the draft passes follow the tree
    tree: object = None

    def __post_init__(self):
        self._static_cache: dict = {}
        self._setup_engine()
        m, L = self.model, self.layout
        tp = L.tensor_parallel_size
        self.q_heads = m.num_attention_heads // tp
        self.kv_heads = max(m.num_key_value_heads // tp, 1)
        self.dp = L.data_parallel_size
        self.tp = tp
        # a replica larger than one NVLink domain (TP / DP x TP over nodes): its groups that span domains are
        # priced hierarchically over the NICs, those inside one domain over NVLink (``_coll``)
        self.comm_scaleout = L.gpus > self.hardware.nvlink_domain_size
        self.kernels_per_layer = KERNELS_PER_MOE_LAYER if m.is_moe else KERNELS_PER_DENSE_LAYER
        if self.method in ("eagle3", "mtp", "draft-model") and self.draft is None:
            raise ConfigurationError(f"drafter {self.method!r} needs a draft network")
        self._setup_tree()


    # ------------------------------------------------------------ engine profile
    def _setup_engine(self) -> None:
        e = self.engine
        self.is_ideal = e is None or e.engine == "ideal"
        # the ideal engine's host model: kernels with their launch costs plus an exposed residue per step
        self.residue_host = self.is_ideal or e.host == "ideal_residue"
        self.engine_tables = self.host_model = None
        self.capture_sizes = None
        if self.is_ideal:
            return
        from .engine_tables import load_engine_tables, load_host_model

        src = self.hardware.calibration_source if (self.hardware.calibration_source in ("h100", "h200")) else "h200"
        try:
            self.engine_tables = load_engine_tables(src)
        except Exception:  # noqa: BLE001 - a GPU measured without the engine table borrows the H200's
            self.engine_tables = load_engine_tables("h200")
        if e.host in ("measured", "vllm_measured_proxy"):
            from ..errors import CalibrationDataError

            try:
                self.host_model = load_host_model()
            except CalibrationDataError as err:  # not shipped: the per-step host work falls back to the residue
                self.timer.extrapolated.add(f"engine host work per step: {err}; the ideal residue used instead")
        ec = self.engine_config or EngineConfig()
        kc = int(self.configured_k)
        self.sglang_graphs = e.graphs.capture_limit == "sglang"
        if self.sglang_graphs:  # graphs per batch size in requests (rlsim/costmodel/sglang.py); tokens = bs x (k+1)
            from . import sglang

            max_bs = sglang.cuda_graph_max_bs(e.graphs.max_capture_batch, self.hardware.hbm_capacity_bytes,
                                              self.layout.tensor_parallel_size)
            pool = self.max_running_requests()
            bs = sglang.capture_batch_sizes(max_bs, kc > 0, pool)
            self.capture_sizes = bs * (kc + 1)
            self.capture_limit_tokens = float(self.capture_sizes[-1])
            self.async_scheduling = (self.method == "none" or kc == 0) if e.async_scheduling == "sglang" else True
            self.trtllm_verify = (e.verify_attention_blackwell == "trtllm_gen_tile"
                                  and self.hardware.gpu.upper().startswith(("GB200", "B200", "GB300", "B300")))
            return
        if e.graphs.capture_limit == "vllm":
            limit = min(ec.max_num_seqs * (1 + kc) * 2, e.graphs.max_capture_tokens, ec.max_num_batched_tokens)
        else:
            limit = self.hardware.cudagraph_capture_max_tokens
        self.capture_sizes = vllm_capture_sizes(int(limit), kc) if e.graphs.pad_to_capture_sizes else \
            np.asarray([float(limit)])
        self.capture_limit_tokens = float(self.capture_sizes[-1]) if self.capture_sizes.size else 0.0
        # async scheduling (vllm 0.17.1 config/vllm.py:688-749): off for n-gram and for the Ray executor, which
        # NeMo-RL uses whenever TP x PP > 1 (vllm_worker.py:448-451)
        if e.async_scheduling == "always":
            self.async_scheduling = True
        else:
            self.async_scheduling = self.method != "ngram" and self.layout.tensor_parallel_size == 1
        # Blackwell verification attention (FlashInfer TRTLLM-gen decode kernel, query tile grows with k + 1)
        self.trtllm_verify = (e.verify_attention_blackwell == "trtllm_gen_tile"
                              and self.hardware.gpu.upper().startswith(("GB200", "B200", "GB300", "B300")))

    def max_running_requests(self) -> int:
        """Running requests the engine admits: the workload's max_num_seqs, or the profile's cap under speculation
        when the caller leaves it unset (SGLang with EAGLE: 48)."""
        ec = self.engine_config or EngineConfig()
        cap = getattr(self.engine, "speculative_max_running_requests", None) if self.engine is not None else None
        if cap is not None and int(self.configured_k) > 0:
            return int(min(ec.max_num_seqs, cap))
        return int(ec.max_num_seqs)

    def _setup_tree(self) -> None:
        """How this engine drafts and verifies a tree (engine profile fields, docs/speculation-trees.md). Drafting:
        an SGLang tree runs steps passes, the later ones topk tokens per sequence; a static tree (vLLM's
        speculative_token_tree) runs one pass per level, over the level's new tokens (``new_tokens``) or, as vLLM
        0.17.1's propose_tree does (``static_cumulative``, eagle.py:1006-1100), over every tree token drafted so
        far. Attention: the engine's verify kernel with the tree's query rows, or vLLM's TREE_ATTN backend
        (``triton_unified_2d``: the Triton unified attention kernel, no split-KV, each query block of BLOCK_Q
        tokens streaming its sequence's KV; the backend declares no CUDA-graph support, so no FULL graphs)."""
        t = self.tree
        e = None if self.is_ideal else self.engine
        self.tree_drafting = getattr(e, "tree_drafting", None) or "new_tokens"
        self.tree_attention = getattr(e, "tree_attention", None) or "verify_kernel"
        self._tree_triton = t is not None and self.tree_attention == "triton_unified_2d" and not self.is_ideal
        self.retrieval_tokens = int(getattr(t, "retrieval_tokens", 0) or 0)
        self.tree_passes = None
        if t is None:
            return
        if self.method not in ("eagle3", "mtp", "draft-model"):
            raise ConfigurationError(f"a draft tree needs a model-based drafter (eagle3, mtp, draft-model); got {self.method!r}")
        # later draft passes: (tokens per sequence, LM-head rows per sequence); the first pass runs over every
        # verified position (vLLM's padded drafter batch; SGLang's draft extend at the tree's full width,
        # eagle_draft_extend_cuda_graph_runner.py:150-153) and computes one row of logits per sequence
        if t.kind == "sglang":
            self.tree_passes = [(float(t.topk), float(t.topk))] * max(t.steps - 1, 0)
        else:
            lv = [float(x) for x in t.level_counts]
            width = np.cumsum(lv) if self.tree_drafting == "static_cumulative" else np.asarray(lv)
            self.tree_passes = [(float(width[i]), lv[i]) for i in range(len(lv) - 1)]
        # vLLM's TREE_ATTN backend: BLOCK_M = 16 query rows (or the next power of two above the GQA group), so a
        # query block holds BLOCK_Q = BLOCK_M // group tokens of one sequence (v1/attention/ops/
        # triton_unified_attention.py:942-956)
        g = max(self.q_heads // self.kv_heads, 1)
        block_m = 16 if g <= 16 else 1 << (g - 1).bit_length()
        self._tree_block_q = max(block_m // g, 1)

    def _graph_mode(self, T_engine, n_prefill_tokens):
        """Graph mode per step (array): FULL, PIECEWISE or EAGER."""
        T = np.asarray(T_engine, float)
        if self.is_ideal:
            g = (T <= self.hardware.cudagraph_capture_max_tokens) & (not self.enforce_eager)
            return np.where(g, FULL, EAGER)
        if self.enforce_eager:
            return np.full(T.shape, EAGER)
        fits = T <= self.capture_limit_tokens
        mixed = np.asarray(n_prefill_tokens, float) > 0
        if getattr(self, "sglang_graphs", False):  # an extend (prefill) batch runs with no graph (piecewise graphs off)
            return np.where(fits & ~mixed, FULL, EAGER)
        full = fits & ~(mixed & self.engine.graphs.uniform_decode_for_full_graph)
        if self._tree_triton:  # TREE_ATTN declares no CUDA-graph support: FULL graphs off (tree_attn.py, backend.py:463)
            full = full & False
        return np.where(full, FULL, np.where(fits, PIECEWISE, EAGER))

    def _padded_tokens(self, T_engine, mode):
        """Tokens a graphed step runs at (the next captured size); eager steps run at their own size."""
        T = np.asarray(T_engine, float)
        if self.is_ideal or not self.engine.graphs.pad_to_capture_sizes:
            return T
        i = np.minimum(np.searchsorted(self.capture_sizes, T, side="left"), self.capture_sizes.size - 1)
        return np.where(mode > EAGER, np.maximum(self.capture_sizes[i], T), T)

    def _trtllm_factor(self, q) -> np.ndarray:
        """Main-loop cost of the TRTLLM-gen decode kernel at q queries per sequence relative to q = 1:
        the query tile is the smallest of 8..128 holding numHeadsQPerKv x q rows (FlashInfer 0.6.4
        fmhaKernels.cuh:672-708), each priced by FlashInfer's own per-tile cost (566-581)."""
        tiles = sorted(self.engine.trtllm_tile_cost)
        cost = np.array([self.engine.trtllm_tile_cost[t] for t in tiles])
        tiles = np.array(tiles, float)
        group = max(self.model.num_attention_heads // self.model.num_key_value_heads, 1)

        def c(rows):
            i = np.minimum(np.searchsorted(tiles, np.asarray(rows, float), side="left"), tiles.size - 1)
            return cost[i]

        return c(group * np.asarray(q, float)) / c(group)

    def _engine_component(self, name: str, B, k: int = 0, vocab: int = 0):
        """(device s on this GPU, host s) of a measured engine component."""
        return self.engine_tables.device_on(self.hardware, name, B, k, vocab)

    def _coll(self, op: str, bytes_per_rank, ranks: int):
        """A collective of this replica: the timer's inside one NVLink domain; hierarchical over the NICs when
        the group spans domains (rlsim/costmodel/network.py)."""
        return network.collective_s(self.timer, self.hardware, op, bytes_per_rank, ranks)

    # ------------------------------------------------------------ target forward pieces
    def _attention_stack_s(self, seqs, kv_read, qk_pairs, q_tokens, spec: ModelSpec | DraftSpec, n_layers: int):
        if getattr(spec, "is_mla", False):  # latent attention, absorbed (rlsim/costmodel/mla.py)
            return n_layers * mla.decode_attention_s(self.timer, spec, self.tp, seqs, kv_read, qk_pairs, q_tokens,
                                                     self.kv_dtype)
        qh = max(spec.num_attention_heads // self.tp, 1)
        kvh = max(spec.num_key_value_heads // self.tp, 1)
        return n_layers * self.timer.attention_s("mixed", seqs, kv_read, qk_pairs, q_tokens, qh, kvh, spec.head_dim,
                                                 self.kv_dtype)

    def _layer_stack_s(self, T, seqs, kv_read, qk_pairs, q_tokens, spec: ModelSpec | DraftSpec, n_layers: int,
                       moe: bool, out: dict, prefix: str, attention: bool = True):
        """Time of ``n_layers`` decoder layers of ``spec`` over T tokens on one GPU (T, etc. already per dp rank).
        With ``attention=False`` the attention kernels are left out (costed separately per iteration)."""
        t = self.timer
        h, hd = spec.hidden_size, spec.head_dim
        qh = max(spec.num_attention_heads // self.tp, 1)
        kvh = max(spec.num_key_value_heads // self.tp, 1)
        dt = self.dtype
        is_mla = getattr(spec, "is_mla", False)
        if is_mla:  # q/kv down and up projections, absorbed decode form (rlsim/costmodel/mla.py)
            qkv, o = mla.projections_s(t, spec, self.tp, T, dt, absorbed=True), 0.0
        else:
            qkv = t.gemm_s(T, (qh + 2 * kvh) * hd, h, dt)
            o = t.gemm_s(T, h, qh * hd, dt)
        attn = self._attention_stack_s(seqs, kv_read, qk_pairs, q_tokens, spec, 1) if attention else 0.0
        if moe:
            m = self.model
            ep = self.layout.expert_parallel_size
            n_local = m.num_experts // ep
            inter = m.moe_intermediate_size if ep > 1 else m.moe_intermediate_size // self.tp
            routed_tokens = T * self.dp  # every token of the engine is routed; experts see them all
            # the whole MoE block (router, routing, experts with their activation, combine)
            mlp = t.moe_s(routed_tokens, n_local, m.num_experts_per_tok / ep, h, inter, dt, m.num_experts, m.num_experts_per_tok,
                          self.moe_routing_skew)
            act = []
            if m.shared_expert_intermediate:  # always-active shared expert(s): a dense MLP split over TP
                si = m.shared_expert_intermediate // self.tp
                mlp = mlp + t.gemm_s(T, 2 * si, h, dt) + t.gemm_s(T, h, si, dt)
                act = [("silu_mul", si, 1)]
        else:
            inter = spec.intermediate_size // self.tp
            mlp = t.gemm_s(T, 2 * inter, h, dt) + t.gemm_s(T, h, inter, dt)
            act = [("silu_mul", inter, 1)]
        # norms (2), rope over q and k heads, residual adds (2), the dense MLP's activation, KV-cache write
        ew = t.elementwise_ops_s(T, [*mla.elementwise_ops(spec, self.tp), *act] if is_mla else
                                 [("rmsnorm", h, 2), ("rope", (qh + kvh) * hd, 1), ("residual_add", h, 2), *act,
                                  ("kv_cache_write", 2 * kvh * hd, 1)])
        # communication: all-reduce after attention and after the MLP (TP), or MoE all-to-all (DP attention)
        ar_bytes = T * h * 2.0
        comm = 2 * self._coll("all_reduce", ar_bytes, self.tp)
        if moe and self.dp > 1:
            a2a = T * self.model.num_experts_per_tok * h * BYTES[self.dtype]
            comm = self._coll("all_reduce", ar_bytes, self.tp) + 2 * self._coll("all_to_all", a2a, self.layout.gpus)
        for name, v in (("qkv_proj", qkv), ("attention", attn), ("o_proj", o), ("mlp" if not moe else "moe_experts", mlp),
                        ("norm_rope_act", ew), ("tp_comm", comm)):
            out[prefix + name] = out.get(prefix + name, 0.0) + n_layers * v
        return n_layers * (qkv + o + attn + mlp + ew + comm)

    def _aggregates(self, b: IterationBatch):
        dp = self.dp
        q = b.k + 1.0
        dec_tokens = b.n_decode * q
        T_engine = dec_tokens + b.n_prefill_tokens
        seqs = (b.n_decode + b.n_prefill_seqs) / dp
        kv_read = (b.decode_kv_tokens + b.n_decode * q + b.prefill_kv_tokens) / dp
        qk_pairs = (q * b.decode_kv_tokens + b.n_decode * q * (q + 1) / 2 + b.prefill_qk_pairs) / dp
        return q, dec_tokens, T_engine, seqs, kv_read, qk_pairs

    def _draft_attention_s(self, b: IterationBatch) -> np.ndarray:
        """KV-dependent part of the draft passes (its attention over each sequence's own context)."""
        if self.method not in ("eagle3", "mtp", "draft-model"):
            return 0.0
        d, dp, k = self.draft, self.dp, b.k
        q = k + 1.0
        if self.tree is not None:
            first = self._tree_draft_attention_s((b.n_decode + b.n_prefill_seqs) / dp, (b.n_decode * q + b.n_prefill_tokens) / dp,
                                                 (b.decode_kv_tokens + b.n_decode * q + b.prefill_kv_tokens) / dp,
                                                 (q * b.decode_kv_tokens + b.prefill_qk_pairs) / dp, b.n_decode,
                                                 b.decode_kv_tokens, b.n_prefill_tokens > 0)
            return np.where(k > 0, first + self._retrieval_search_s(b.n_decode, b.decode_kv_tokens), 0.0)
        n_layers = self._draft_net()[0]
        seqs = (b.n_decode + b.n_prefill_seqs) / dp
        first_T = (b.n_decode * q + b.n_prefill_tokens) / dp
        kv_first = (b.decode_kv_tokens + b.n_decode * q + b.prefill_kv_tokens) / dp
        qk_first = (q * b.decode_kv_tokens + b.prefill_qk_pairs) / dp
        later_T = b.n_decode / dp
        kv_later = (b.decode_kv_tokens + b.n_decode * q) / dp
        first = self._attention_stack_s(seqs, kv_first, qk_first, first_T, d, n_layers)
        later = self._attention_stack_s(later_T, kv_later, kv_later, later_T, d, n_layers)
        return np.where(k > 0, first + np.maximum(k - 1, 0) * later, 0.0)

    def decode_segment_time_s(self, n_decode: int, k: int, decode_kv_tokens: np.ndarray) -> np.ndarray:
        """Times of consecutive pure-decode iterations with a fixed batch (``n_decode`` sequences, ``k``)
        whose KV lengths differ per iteration. The KV-independent part is computed once per (B, k) and
        cached; only attention is evaluated per iteration. Equal to ``iteration_time_s`` (tested)."""
        key = (n_decode, k)
        st = self._static_cache.get(key)
        if st is None:
            b0 = IterationBatch(n_decode=[n_decode], k=[k], decode_kv_tokens=[0.0])
            parts = self.breakdown(b0, attention=False)
            st = self._static_cache[key] = tuple(float(np.asarray(parts[x])[0]) if np.ndim(parts[x]) else float(parts[x])
                                                 for x in _STATIC_KEYS)
        dyn = self._decode_attention_s(float(n_decode), k, np.asarray(decode_kv_tokens, dtype=float))
        return self._finish(*(np.asarray(x) for x in st), dyn)

    def _finish(self, gpu_static, n_kernels, graph, host, n_small, small_s, n_gap, host_in, async_sched, dyn):
        """Step time from its KV-independent parts and its attention (``dyn``).

        Ideal engine: the kernels' time with their launch costs (CUDA-graph gaps, or eager launches) plus the
        exposed host residue. Other engines: the GPU's work G (kernels, graph gaps, sampler, draft passes)
        and the host's work H (per-step host ``host`` and the launches and per-round work ``host_in``): with
        async scheduling the host runs a step ahead, so a step takes max(G, H); without it the per-step
        host work is exposed: host + max(G, host_in)."""
        if self.residue_host:
            return self.timer.launch_overhead_s(n_kernels, graph >= PIECEWISE - 0.5, gpu_static + dyn, n_small, small_s,
                                                n_gap) + host
        G = gpu_static + dyn + n_gap * self.timer.latency["graph_gap_s"]
        return np.where(async_sched > 0.5, np.maximum(G, host + host_in), host + np.maximum(G, host_in))

    def _target_decode_attention_s(self, B, q, kv, n_layers: int, spec):
        """Target attention of pure-decode steps: B sequences, q queries each over their own KV (sum ``kv``).
        On Blackwell under an engine with FlashInfer's TRTLLM-gen decode kernel: the decode kernel (one query
        row per sequence) times the tile cost factor; otherwise the timer's verify rule (decode + query FLOPs)."""
        dp = self.dp
        kv_read = (kv + B * q) / dp
        if self._tree_triton and not getattr(spec, "is_mla", False):  # vLLM's TREE_ATTN kernel
            return self._tree_attention_s(B, q, kv, spec, n_layers)
        if not self.is_ideal and self.trtllm_verify and np.any(np.asarray(q) > 1) and not getattr(spec, "is_mla", False):
            base = self._attention_stack_s(B / dp, kv_read, kv_read, B / dp, spec, n_layers)
            return base * self._trtllm_factor(q)
        return self._attention_stack_s(B / dp, kv_read, (q * kv + B * q * (q + 1) / 2) / dp, B * q / dp, spec,
                                       n_layers)

    def _decode_attention_s(self, B, k: int, kv: np.ndarray):
        """The KV-dependent part of pure-decode iterations: target attention (k+1 queries per sequence over
        its own KV) and the draft passes' attention. ``B`` may be a scalar or an array like ``kv``."""
        dp, q, m = self.dp, k + 1.0, self.model
        kv_read = (kv + B * q) / dp
        dyn = self._target_decode_attention_s(B, q, kv, m.num_hidden_layers, m)
        if k > 0 and self.tree is not None:
            return dyn + self._tree_draft_attention_s(B / dp, B * q / dp, kv_read, q * kv / dp, B, kv) \
                + self._retrieval_search_s(B, kv)
        if k > 0 and self.method in ("eagle3", "mtp", "draft-model"):
            d = self.draft
            n_layers = self._draft_net()[0]
            dyn = dyn + self._attention_stack_s(B / dp, kv_read, q * kv / dp, B * q / dp, d, n_layers)
            if k > 1:
                dyn = dyn + (k - 1) * self._attention_stack_s(B / dp, kv_read, kv_read, B / dp, d, n_layers)
        return dyn

    def decode_iterations_time_s(self, n_decode: np.ndarray, k: int, decode_kv_tokens: np.ndarray,
                                 stride: int = 8) -> np.ndarray:
        """Times of consecutive pure-decode iterations whose batch size varies (``n_decode`` array, fixed k).

        KV-independent parts are computed once per distinct batch size. Long sequences are costed
        exactly at every ``stride``-th iteration and at both ends of each run of equal batch size, and
        linearly interpolated in between (an iteration's cost is smooth in its KV length; the error on a
        rollout's total is far below 0.1%, see tests/test_costmodel.py). ``stride=1`` costs every one."""
        n_decode = np.asarray(n_decode, dtype=np.int64)
        kv = np.asarray(decode_kv_tokens, dtype=float)
        n = n_decode.size
        if stride > 1 and n > 4 * stride:
            change = np.flatnonzero(np.diff(n_decode))
            pts = np.unique(np.concatenate([np.arange(0, n, stride), change, change + 1, [n - 1]]))
            # a run's ends are both sampled, so interpolation never crosses a change of batch size
            vals = self.decode_iterations_time_s(n_decode[pts], k, kv[pts], stride=1)
            return np.interp(np.arange(n), pts, vals)
        change = np.flatnonzero(np.diff(n_decode)) + 1  # runs of equal batch size
        run_start = np.concatenate([[0], change])
        sizes = n_decode[run_start]
        missing = sorted({int(x) for x in sizes if (int(x), k) not in self._static_cache})
        if missing:
            b0 = IterationBatch(n_decode=np.asarray(missing, float), k=np.full(len(missing), k),
                                decode_kv_tokens=np.zeros(len(missing)))
            parts = self.breakdown(b0, attention=False)
            for j, bsz in enumerate(missing):
                self._static_cache[(bsz, k)] = tuple(float(np.broadcast_to(parts[x], (len(missing),))[j])
                                                     for x in _STATIC_KEYS)
        table = np.array([self._static_cache[(int(x), k)] for x in sizes])
        pos = np.repeat(np.arange(sizes.size), np.diff(np.concatenate([run_start, [n_decode.size]])))
        cols = [table[pos, c] for c in range(len(_STATIC_KEYS))]
        dyn = self._decode_attention_s(n_decode.astype(float), k, kv)
        return self._finish(*cols, dyn)

    def breakdown(self, b: IterationBatch, attention: bool = True) -> dict[str, np.ndarray]:
        """Seconds per op class for each iteration (arrays). Keys sum to ``total``.
        With ``attention=False`` every attention kernel (target and draft) is left out."""
        m, t = self.model, self.timer
        dp = self.dp
        k = b.k
        # attention aggregates: each decoding sequence attends with q queries over its own KV (+ the q new)
        q, dec_tokens, T_engine, seqs, kv_read, qk_pairs = self._aggregates(b)
        mode = self._graph_mode(T_engine, b.n_prefill_tokens)
        T_run = self._padded_tokens(T_engine, mode)  # a graphed step runs at its captured size
        T = T_run / dp
        out: dict[str, np.ndarray] = {}
        custom_attention = attention and not self.is_ideal and (self.trtllm_verify or self._tree_triton) and not m.is_mla
        n_main = m.n_moe_layers if m.is_moe else m.num_hidden_layers
        gpu = self._layer_stack_s(T, seqs, kv_read, qk_pairs, T_engine / dp, m, n_main, m.is_moe, out, "",
                                  attention and not custom_attention)
        if m.is_moe and m.n_dense_layers:  # leading dense layers of a MoE model (first_k_dense_replace)
            gpu = gpu + self._layer_stack_s(T, seqs, kv_read, qk_pairs, T_engine / dp, m, m.n_dense_layers, False, out,
                                            "", attention and not custom_attention)
        if custom_attention:  # decode-only steps on the TRTLLM-gen kernel; mixed steps as before
            att_dec = self._target_decode_attention_s(b.n_decode, q, b.decode_kv_tokens, m.num_hidden_layers, m)
            att_mix = self._attention_stack_s(seqs, kv_read, qk_pairs, T_engine / dp, m, m.num_hidden_layers)
            att = np.where(b.n_prefill_tokens > 0, att_mix, att_dec)
            out["attention"] = out.get("attention", 0.0) + att
            gpu = gpu + att
        # LM head + logits gather + sampling / rejection sampling
        rows = (dec_tokens + b.n_prefill_done) / dp
        lm = t.gemm_s(rows, m.vocab_size // self.tp, m.hidden_size, "bf16")
        lm = lm + self._coll("all_gather", rows * (m.vocab_size // self.tp) * 2.0, self.tp)
        spec_rows = np.where(k > 0, dec_tokens / dp, 0.0)
        plain_rows = rows - spec_rows
        sampler_host = np.zeros_like(b.n_decode)
        if self.is_ideal or self.engine.sampler == "ideal":
            samp = t.sampling_s("sample", plain_rows, m.vocab_size) + t.sampling_s("rejection_sample", spec_rows,
                                                                                       m.vocab_size)
        else:
            samp, sampler_host = self._engine_sampler_s(b, k)
        out["lm_head"] = lm
        out["sampling"] = samp
        out["target_forward"] = gpu + lm
        gpu = gpu + lm + samp
        n_kernels = m.num_hidden_layers * self.kernels_per_layer + KERNELS_OUTSIDE_LAYERS
        # drafting for the next round
        draft = self._draft_s(b, out, attention)
        draft_host = out.pop("_draft_host")
        gpu = gpu + draft
        passes = k if self.tree is None else float(len(self.tree_passes) + 1)
        n_kernels = n_kernels + np.where(k > 0, passes * KERNELS_PER_DRAFT_PASS * (self.method in ("eagle3", "mtp", "draft-model")), 0.0)
        graph = mode
        # short kernels (norms, rope, residual adds, the dense activation, cache write: 6 or 5 per layer)
        n_small = (5.0 if m.is_moe else 6.0) * m.num_hidden_layers
        small_s = out["norm_rope_act"] / n_small
        # a measured MoE block's time holds the gaps between its own kernels: one gap per block remains
        n_gap = n_kernels - (m.num_hidden_layers * (t.moe_kernels_with_gaps_inside - 1)
                             if m.is_moe and t.moe_kernels_with_gaps_inside else 0)
        out["gpu"], out["n_kernels"], out["graph"] = gpu, n_kernels, graph
        out["n_gap"] = np.broadcast_to(n_gap, np.shape(gpu))
        out["n_small"], out["small_s"] = np.broadcast_to(n_small, np.shape(gpu)), small_s
        n_seq = b.n_decode + b.n_prefill_seqs
        if self.residue_host:
            total_gpu = self.timer.launch_overhead_s(n_kernels, graph >= PIECEWISE, gpu, n_small, small_s, n_gap)
            out["launch_gaps"] = total_gpu - gpu
            if self.method == "ngram":
                host = np.where(n_seq > 0, self.host["sync_step_fixed_s"] + n_seq * (self.host["sync_per_seq_s"]
                                + np.where(k > 0, self.host["ngram_per_seq_s"], 0.0)), 0.0)
            else:
                host = np.where(n_seq > 0, self.host["step_fixed_s"] + n_seq * self.host["per_seq_s"], 0.0)
            if self.retrieval_tokens:  # the retrieval search's per-step and per-sequence CPU time, exposed
                host = host + np.where(k > 0, self._retrieval_search_static_s(b.n_decode), 0.0)
            host_in = np.zeros_like(host)
            async_sched = np.zeros_like(host)
            out["host"] = host
            out["host_in"] = host_in
            out["exposed_host"] = host
            out["total"] = total_gpu + host
        else:
            host, host_in = self._engine_host_s(b, k, mode, n_kernels, T_engine, sampler_host, draft_host)
            if self.retrieval_tokens:
                host = host + np.where(k > 0, self._retrieval_search_static_s(b.n_decode), 0.0)
            async_sched = np.full(np.shape(gpu), 1.0 if self.async_scheduling else 0.0)
            G = gpu + n_gap * t.latency["graph_gap_s"]
            out["launch_gaps"] = G - gpu
            total = self._finish(gpu, n_kernels, graph, host, n_small, small_s, n_gap, host_in, async_sched, 0.0)
            out["host"] = host
            out["host_in"] = host_in
            out["exposed_host"] = total - G
            out["total"] = total
        out["async_sched"] = np.broadcast_to(async_sched, np.shape(gpu))
        return out

    # ------------------------------------------------------------ engine mechanisms (non-ideal engines)
    def _engine_sampler_s(self, b: IterationBatch, k):
        """(device s, host s) of the engine's sampler per step: the plain sampler on decode rows without
        speculation (and on prefill completions), the rejection sampler on speculative rows."""
        if self.engine.sampler == "sglang-0.5.6":
            return self._sglang_sampler_s(b, k)
        m = self.model
        dp = self.dp
        lean = self.engine.sampler == "lean"
        B_plain = np.where(k > 0, 0.0, b.n_decode) / dp + b.n_prefill_done / dp
        B_spec = np.where(k > 0, b.n_decode / dp, 0.0)
        dev = np.zeros_like(b.n_decode)
        host = np.zeros_like(b.n_decode)
        d, h = self._engine_component("sampler_ar", np.maximum(B_plain, 1.0), 0, m.vocab_size)
        dev = dev + np.where(B_plain > 0, d, 0.0)
        host = host + np.where((B_plain > 0) & (B_spec <= 0), h, 0.0)
        for kk in np.unique(k[k > 0]).astype(int) if np.any(k > 0) else []:
            sel = (k == kk) & (B_spec > 0)
            comp = "rejection_sampler_lean" if lean and self.engine_tables.has_component("rejection_sampler_lean") \
                else "rejection_sampler"
            d, h = self._engine_component(comp, np.maximum(B_spec, 1.0), int(kk), m.vocab_size)
            dev = dev + np.where(sel, d, 0.0)
            host = host + np.where(sel, h, 0.0)
        return dev, host

    def _sglang_sampler_s(self, b: IterationBatch, k):
        """(device s, host s) of SGLang 0.5.6's sampling per step (engine_sglang.csv): the sampler on plain decode
        rows and prefill completions; with speculation the target-only tree verification over B(k+1) rows plus the
        log-probs of the accepted rows (B x the expected acceptance length)."""
        m, dp = self.model, self.dp
        B_plain = np.where(k > 0, 0.0, b.n_decode) / dp + b.n_prefill_done / dp
        B_spec = np.where(k > 0, b.n_decode / dp, 0.0)
        dev = np.zeros_like(b.n_decode)
        host = np.zeros_like(b.n_decode)
        d, h = self._engine_component("sglang_sampler_ar", np.maximum(B_plain, 1.0), 0, m.vocab_size)
        dev = dev + np.where(B_plain > 0, d, 0.0)
        host = host + np.where(B_plain > 0, h, 0.0)
        for kk in np.unique(k[k > 0]).astype(int) if np.any(k > 0) else []:
            sel = (k == kk) & (B_spec > 0)
            d, h = self._engine_component("sglang_verify_sampler", np.maximum(B_spec, 1.0), int(kk), m.vocab_size)
            al = kk + 1.0 if self.expected_acceptance_length is None else min(float(self.expected_acceptance_length), kk + 1.0)
            d2, h2 = self._engine_component("sglang_accepted_logprobs", np.maximum(B_spec * al, 1.0), 0, m.vocab_size)
            dev = dev + np.where(sel, d + d2, 0.0)
            host = host + np.where(sel, h + h2, 0.0)
        return dev, host

    def _engine_host_s(self, b: IterationBatch, k, mode, n_kernels, T_engine, sampler_host, draft_host):
        """Host seconds of one step: (per-step work exposed without async scheduling, launches and per-round
        work that overlap the GPU within the step)."""
        lat = self.timer.latency
        n_seq = (b.n_decode + b.n_prefill_seqs) / self.dp
        hm = self.host_model
        if hm is not None:
            # vLLM 0.17.1's host work of one engine step, measured on its own code (calibration/host): the
            # scheduler, the model runner's input preparation and bookkeeping, output processing and
            # serialisation; async scheduler + async runner, or the synchronous pair (TP > 1, n-gram)
            sched = "async" if self.async_scheduling else ("sync_ngram" if self.method == "ngram" else "sync")
            spec = k > 0
            per_step = np.where(spec, hm.seconds(f"engine_step_host_total@{sched}@spec", n_seq, k),
                                hm.seconds(f"engine_step_host_total@{'async' if sched == 'async' else 'sync'}@ar", n_seq, 0))
            if self.method == "ngram":  # the n-gram search over each request's whole context (measured at ~600
                ctx = np.where(spec, b.decode_kv_tokens / np.maximum(b.n_decode, 1.0), 0.0)  # tokens inside the step)
                nd = b.n_decode / self.dp
                search = hm.seconds("ngram_propose@repetitive", nd, 0, ctx) \
                    - hm.seconds("ngram_propose_engine@sync_ngram@spec", nd, k)
                per_step = per_step + np.where(spec, np.maximum(search, 0.0), 0.0)
        else:
            per_step = np.where(n_seq > 0, self.host["step_fixed_s"] + n_seq * self.host["per_seq_s"], 0.0)
        # launching the target forward: one graph replay (FULL), the pieces and the eager attention ops
        # (PIECEWISE), or every kernel (no graph). Without a graph, enforce_eager runs the plain PyTorch modules:
        # an eager forward's host cost per kernel (one eager step of the harness's model measured alone, 23 us on
        # H200; the engine's other per-step host work is the measured ``per_step`` above); a
        # step above the capture size still runs vLLM's torch.compile'd forward (Inductor's generated wrapper
        # launches the kernels): the bare launch cost, not measured for Inductor (a lower bound)
        replay = self._replay_host_s()
        per_kernel = self._no_graph_launch_s()
        n_layers = self.model.num_hidden_layers
        launch = np.where(mode == FULL, replay,
                          np.where(mode == PIECEWISE, (n_layers + 1) * replay
                                   + n_layers * ATTENTION_LAUNCHES_PER_LAYER * lat["eager_launch_s"],
                                   n_kernels * per_kernel))
        host_in = np.where(n_seq > 0, launch + sampler_host + draft_host, 0.0)
        return np.where(n_seq > 0, per_step, 0.0), host_in

    def _replay_host_s(self) -> float:
        d, h = self._engine_component("graph_replay", 1.0, 0, 0) if self.engine_tables.has_component("graph_replay") \
            else (0.0, 10e-6)
        return float(np.asarray(h).reshape(-1)[0])

    def _no_graph_launch_s(self) -> float:
        """Host seconds per kernel of a forward that runs with no graph: the plain modules' eager forward under
        enforce_eager (measured), else the compiled forward's bare launch (a lower bound)."""
        lat = self.timer.latency
        return lat["eager_forward_launch_s"] if self.enforce_eager else lat["eager_launch_s"]

    def _draft_host_s(self, B, k, first_T, n_later=None):
        """Host seconds of the k draft passes of a round (vLLM's EagleProposer): the first pass's input
        preparation (per-request loops), then per pass its bookkeeping ops (passes 2..k), its forward's launch
        (PIECEWISE: pieces replayed, attention eager; no graph above the capture limit) and its token choice."""
        e, lat = self.engine, self.timer.latency
        n_layers = self._draft_net()[0]
        replay = self._replay_host_s()
        if getattr(self, "sglang_graphs", False):
            # SGLang (eagle_worker.py:505-586, 917-1004): the k - 1 draft steps replay ONE graph, the draft extend
            # another (both FULL, up to cuda_graph_max_bs requests); above it every kernel is launched. Each of the
            # two forwards prepares a ForwardBatch (a handful of small tensor ops, priced as one draft_step_ops
            # issue), the draft steps end in build_tree_kernel_efficient (one launch).
            _, h_ops = self._engine_component("draft_step_ops", np.maximum(B, 1.0), 0, 0)
            graphed = (first_T * self.dp <= self.capture_limit_tokens) & (not self.enforce_eager)
            eager_pass = (n_layers * self.kernels_per_layer + 4) * lat["eager_forward_launch_s"]
            draft_steps = np.where(graphed, replay, np.maximum(k - 1, 0) * eager_pass)
            extend = np.where(graphed, replay, eager_pass)
            total = 2 * h_ops + draft_steps + extend + lat["eager_launch_s"]
            return np.where((k > 0) & (B > 0), total, 0.0)
        # enforce_eager: no graph for the drafter either (vLLM's CUDAGraphMode NONE)
        fits = (first_T * self.dp <= self.capture_limit_tokens) & (not self.enforce_eager)
        per_kernel = self._no_graph_launch_s()
        if e.graphs.drafter == "piecewise":
            fwd_first = np.where(fits, (n_layers + 1) * replay + n_layers * ATTENTION_LAUNCHES_PER_LAYER * lat["eager_launch_s"],
                                 (n_layers * self.kernels_per_layer + 4) * per_kernel)
            fwd_later = (n_layers + 1) * replay + n_layers * ATTENTION_LAUNCHES_PER_LAYER * lat["eager_launch_s"]
            if self.enforce_eager:
                fwd_later = (n_layers * self.kernels_per_layer + 4) * per_kernel
        else:
            fwd_first = fwd_later = replay
        choice = "draft_choice_full_vocab" if e.draft_token_choice == "full_vocab_scatter" else "draft_choice_draft_vocab"
        _, h_choice = self._engine_component(choice, np.maximum(B, 1.0), 0, self.model.vocab_size)
        _, h_ops = self._engine_component("draft_step_ops", np.maximum(B, 1.0), 0, 0)
        # the first pass's input preparation launches about as many small ops as a later pass's bookkeeping (its
        # per-request Python loops are in the measured engine step, calibration/host)
        first_prep = h_ops
        lm_launch = lat["eager_launch_s"]
        n_later = np.maximum(k - 1, 0) if n_later is None else n_later
        total = first_prep + fwd_first + h_choice + lm_launch + n_later * (h_ops + fwd_later + h_choice + lm_launch)
        return np.where((k > 0) & (B > 0), total, 0.0)

    def report(self, b: IterationBatch) -> dict[str, np.ndarray]:
        """``breakdown`` without the bookkeeping keys (for tables); the keys sum to ``total``: ``host`` is the
        host time the GPU does not hide (all of it for the ideal engine's residue)."""
        p = self.breakdown(b)
        p["host"] = p["exposed_host"]
        return {k: v for k, v in p.items()
                if k not in ("gpu", "n_kernels", "graph", "n_small", "small_s", "n_gap", "host_in", "async_sched",
                             "target_forward", "exposed_host")}

    def round_parts(self, b: IterationBatch) -> dict[str, np.ndarray]:
        """One step by part (``rlsim iteration --json``): target forward, draft passes, sampler (GPU seconds),
        host work, the host time the GPU does not hide, and the graph mode the target ran in."""
        p = self.breakdown(b)
        return {"target_forward_s": p["target_forward"], "draft_s": p["draft"], "sampler_s": p["sampling"],
                "launch_gaps_s": p["launch_gaps"], "host_s": p["host"] + p["host_in"], "exposed_host_s": p["exposed_host"],
                "total_s": p["total"], "graph_mode": np.vectorize(GRAPH_MODE_NAMES.get)(np.asarray(p["graph"], int)),
                "async_scheduling": np.asarray(p["async_sched"]) > 0.5}

    def _draft_net(self):
        """(layers per draft pass, MoE?, LM-head vocabulary, fused hidden states) of the drafter. An MTP pass runs
        ONE module (vLLM chains the model's modules, spec_step_idx % num_mtp_layers: deepseek_mtp.py:160), a MoE
        layer for a MoE model, with the target's full vocabulary."""
        d = self.draft
        if self.method == "eagle3":
            return d.num_hidden_layers, False, d.draft_vocab_size, d.fused_hidden_states
        if self.method == "mtp":
            if isinstance(d, DraftSpec):  # an MTP head given as a draft network
                return d.num_hidden_layers, False, d.draft_vocab_size, d.fused_hidden_states
            return 1, self.model.is_moe, self.model.vocab_size, 2
        return d.num_hidden_layers, d.is_moe, d.vocab_size, 0  # draft-model: a whole small model

    def _draft_head_s(self, rows, vocab: int):
        """LM head and token choice of one draft pass over ``rows`` positions (per dp rank)."""
        d = self.draft
        if self.method == "mtp" and not isinstance(d, DraftSpec):
            # the target's shared head: its final norm, a vocabulary-parallel GEMM, the logits gathered over TP
            # (vLLM LogitsProcessor), argmax over the full vocabulary (deepseek_mtp.py:169-179, eagle.py _greedy_sample)
            h = d.hidden_size
            head = self.timer.gemm_s(rows, vocab // self.tp, h, "bf16") \
                + self._coll("all_gather", rows * (vocab // self.tp) * 2.0, self.tp) \
                + self.timer.elementwise_ops_s(rows, [("rmsnorm", h, 1)])
            return head + self.timer.sampling_s("argmax", rows, vocab)
        head = self.timer.gemm_s(rows, vocab // self.tp if self.method == "draft-model" else vocab, d.hidden_size, "bf16")
        full_vocab = (not self.is_ideal and self.engine.draft_token_choice == "full_vocab_scatter"
                      and isinstance(d, DraftSpec) and vocab < self.model.vocab_size)
        sglang_pick = (not self.is_ideal and self.engine.draft_token_choice == "draft_vocab_softmax_topk"
                       and self.engine_tables.has_component("sglang_draft_choice"))
        if sglang_pick:  # softmax over the draft vocabulary, top-1, hot-token map (measured: sglang_draft_choice)
            pick, _ = self._engine_component("sglang_draft_choice", np.maximum(rows, 1.0), 0, 0)
            pick = np.where(rows > 0, pick, 0.0)
        elif full_vocab:  # a [B, V_target] -inf tensor, the draft logits scattered in, argmax over V_target
            pick, _ = self._engine_component("draft_choice_full_vocab", np.maximum(rows, 1.0), 0, self.model.vocab_size)
            pick = np.where(rows > 0, pick, 0.0)
        else:
            pick = self.timer.sampling_s("argmax", rows, vocab)
        return head + pick

    def _mtp_input_s(self, T):
        """An MTP pass's input over T tokens: the embedding lookup (vocabulary-parallel: an all-reduce over TP),
        enorm and hnorm, and eh_proj over [embedding; hidden] (2h -> h, replicated) (deepseek_mtp.py:60-120)."""
        h = self.draft.hidden_size
        return (self.timer.gemm_s(T, h, 2 * h, self.dtype) + self.timer.elementwise_ops_s(T, [("rmsnorm", h, 2)])
                + self._coll("all_reduce", T * h * 2.0, self.tp))

    def _draft_s(self, b: IterationBatch, out: dict, attention: bool = True) -> np.ndarray:
        k = b.k
        zero = np.zeros_like(b.n_decode)
        if self.method in ("none", "ngram"):
            out["draft"] = zero
            out["_draft_host"] = zero
            return zero
        d = self.draft
        dp = self.dp
        q = k + 1.0
        active = k > 0
        # first pass: all positions of this step (verified tokens + prefill tokens); then k-1 passes over B tokens
        first_T = (b.n_decode * q + b.n_prefill_tokens) / dp
        later_T = b.n_decode / dp
        seqs = (b.n_decode + b.n_prefill_seqs) / dp
        kv_first = (b.decode_kv_tokens + b.n_decode * q + b.prefill_kv_tokens) / dp
        qk_first = (q * b.decode_kv_tokens + b.prefill_qk_pairs) / dp
        kv_later = (b.decode_kv_tokens + b.n_decode * q) / dp
        n_layers, moe, vocab, fused = self._draft_net()
        mtp_shared = self.method == "mtp" and not isinstance(d, DraftSpec)
        tmp: dict = {}
        t1 = self._layer_stack_s(first_T, seqs, kv_first, qk_first, first_T, d, n_layers, moe, tmp, "", False)
        h = d.hidden_size
        if self.tree is not None:  # a draft tree: the later passes follow the engine's tree drafting
            later = zero
            for w, rows in self.tree_passes:
                T_l = later_T * w
                later = later + self._layer_stack_s(T_l, later_T, kv_later, kv_later, T_l, d, n_layers, moe, tmp, "", False) \
                    + self._draft_head_s(later_T * rows, vocab) + (self._mtp_input_s(T_l) if mtp_shared else 0.0)
            fc = self._mtp_input_s(first_T) if mtp_shared else (
                self.timer.gemm_s(first_T, h, fused * h, self.dtype) if fused > 1 else zero)
            total = t1 + fc + self._draft_head_s(later_T, vocab) + later
        elif mtp_shared:  # chained MTP: every pass embeds, projects [embedding; hidden] and runs the target's head
            tl = self._layer_stack_s(later_T, later_T, kv_later, kv_later, later_T, d, n_layers, moe, tmp, "", False)
            total = (t1 + self._mtp_input_s(first_T) + np.maximum(k - 1, 0) * (tl + self._mtp_input_s(later_T))
                     + k * self._draft_head_s(later_T, vocab))
        else:
            # later passes: B tokens each (their attention over the sequence's context is in _draft_attention_s)
            tl = self._layer_stack_s(later_T, later_T, kv_later, kv_later, later_T, d, n_layers, moe, tmp, "", False)
            fc = self.timer.gemm_s(first_T, h, fused * h, self.dtype) if fused > 1 else zero
            per_pass_head = self._draft_head_s(later_T, vocab)
            total = t1 + fc + np.maximum(k - 1, 0) * tl + k * per_pass_head
        total = np.where(active, total, 0.0)
        if attention:
            total = total + self._draft_attention_s(b)
        out["draft"] = total
        n_later = np.maximum(k - 1, 0) if self.tree is None else float(len(self.tree_passes))
        out["_draft_host"] = zero if self.residue_host else self._draft_host_s(later_T, k, first_T, n_later)
        return total

    # ------------------------------------------------------------ draft trees (rlsim/speculation/trees.py)
    def _tree_attention_s(self, B, w, kv, spec, n_layers: int):
        """Attention of B sequences (engine total) with w query tokens each over their own KV (sum ``kv``) on vLLM's
        TREE_ATTN kernel (Triton unified attention, 2D grid: one program per (query block of BLOCK_Q tokens, KV
        head), each streaming its sequence's whole KV): the decode kernel's time at the same KV (one query row per
        sequence: the KV read once) times the query blocks per sequence, never below the verify rule (decode + the
        query FLOPs). Not measured: the calibrated tables hold FlashAttention, not this kernel."""
        dp = self.dp
        w = np.asarray(w, float)
        kv_read = (kv + B * w) / dp
        verify = self._attention_stack_s(B / dp, kv_read, (w * kv + B * w * (w + 1) / 2) / dp, B * w / dp, spec, n_layers)
        if getattr(spec, "is_mla", False):
            return verify
        base = self._attention_stack_s(B / dp, kv_read, kv_read, B / dp, spec, n_layers)
        return np.maximum(base * np.ceil(w / self._tree_block_q), verify)

    def _tree_draft_attention_s(self, seqs, first_T, kv_first, qk_first, B, kv, mixed=False):
        """The draft passes' attention in a tree round: the first pass over every verified position (per dp rank
        ``seqs``, ``first_T``, ``kv_first``, ``qk_first``), then each later pass, w query tokens per sequence over
        the sequence's context and the round's positions (engine totals ``B``, ``kv``). A later pass of one token
        per sequence is priced exactly as a chain's."""
        d = self.draft
        n_layers = self._draft_net()[0]
        dp = self.dp
        q = np.where(B > 0, first_T * dp / np.maximum(B, 1.0), 1.0)
        triton = self._tree_triton and not getattr(d, "is_mla", False)
        first = self._attention_stack_s(seqs, kv_first, qk_first, first_T, d, n_layers)
        if triton:  # steps with prefill keep the general rule (as the target's attention does)
            first = np.where(mixed, first, self._tree_attention_s(B, q, kv, d, n_layers))
        kv_l = (kv + B * q) / dp
        base = self._attention_stack_s(B / dp, kv_l, kv_l, B / dp, d, n_layers) if triton else 0.0
        later = 0.0
        for w, _ in self.tree_passes:
            a = self._attention_stack_s(B / dp, kv_l, w * kv_l, B * w / dp, d, n_layers)
            later = later + (np.maximum(base * np.ceil(w / self._tree_block_q), a) if triton else a)
        return first + later

    def _retrieval_search_s(self, B, kv):
        """The context-dependent part of the CPU search for retrieved candidates (vLLM 0.17.1's numba n-gram search,
        measured: host_fit.json ``ngram_propose@repetitive``, d x B x context); exposed host time, no overlap
        assumed. The per-step and per-sequence parts are in the step's host time (``_retrieval_search_static_s``)."""
        if not self.retrieval_tokens:
            return 0.0
        c = self._search_model().coefficients["ngram_propose@repetitive"]
        return c["d"] * np.asarray(kv, float) / self.dp * self._search_model().scale

    def _retrieval_search_static_s(self, B):
        if not self.retrieval_tokens:
            return 0.0
        c = self._search_model().coefficients["ngram_propose@repetitive"]
        Bd = np.asarray(B, float) / self.dp
        return np.where(Bd > 0, c["a"] + c["b"] * Bd + c["e"] * Bd * Bd, 0.0) * self._search_model().scale

    def _search_model(self):
        hm = self.__dict__.get("_search_hm")
        if hm is None:
            from .engine_tables import load_host_model

            hm = self.__dict__["_search_hm"] = load_host_model()
        return hm

    def iteration_time_s(self, b: IterationBatch) -> np.ndarray:
        return self.breakdown(b)["total"]
