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

from ..catalog import DraftSpec, GenerationParallelism, HardwareProfile, ModelSpec
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
_STATIC_KEYS = ("gpu", "n_kernels", "graph", "host", "n_small", "small_s", "n_gap")


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

    def __post_init__(self):
        self._static_cache: dict = {}
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
        n_layers = (d.num_hidden_layers if isinstance(d, DraftSpec) or self.method == "draft-model"
                    else self.model.mtp_num_layers)
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
        gpu_static, n_kernels, graph, host, n_small, small_s, n_gap = st
        dyn = self._decode_attention_s(float(n_decode), k, np.asarray(decode_kv_tokens, dtype=float))
        return self.timer.launch_overhead_s(n_kernels, bool(graph), gpu_static + dyn, n_small, small_s, n_gap) + host

    def _decode_attention_s(self, B, k: int, kv: np.ndarray):
        """The KV-dependent part of pure-decode iterations: target attention (k+1 queries per sequence over
        its own KV) and the draft passes' attention. ``B`` may be a scalar or an array like ``kv``."""
        dp, q, m = self.dp, k + 1.0, self.model
        kv_read = (kv + B * q) / dp
        dyn = self._attention_stack_s(B / dp, kv_read, (q * kv + B * q * (q + 1) / 2) / dp, B * q / dp, m,
                                      m.num_hidden_layers)
        if k > 0 and self.method in ("eagle3", "mtp", "draft-model"):
            d = self.draft
            n_layers = d.num_hidden_layers if (isinstance(d, DraftSpec) or self.method == "draft-model") else m.mtp_num_layers
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
        gpu_static, n_kernels, graph, host, n_small, small_s, n_gap = (table[pos, c] for c in range(len(_STATIC_KEYS)))
        dyn = self._decode_attention_s(n_decode.astype(float), k, kv)
        return self.timer.launch_overhead_s(n_kernels, graph > 0.5, gpu_static + dyn, n_small, small_s, n_gap) + host

    def breakdown(self, b: IterationBatch, attention: bool = True) -> dict[str, np.ndarray]:
        """Seconds per op class for each iteration (arrays). Keys sum to ``total``.
        With ``attention=False`` every attention kernel (target and draft) is left out."""
        m, t = self.model, self.timer
        dp = self.dp
        k = b.k
        # attention aggregates: each decoding sequence attends with q queries over its own KV (+ the q new)
        q, dec_tokens, T_engine, seqs, kv_read, qk_pairs = self._aggregates(b)
        T = T_engine / dp
        out: dict[str, np.ndarray] = {}
        gpu = self._layer_stack_s(T, seqs, kv_read, qk_pairs, T, m, m.n_moe_layers if m.is_moe else m.num_hidden_layers,
                                  m.is_moe, out, "", attention)
        if m.is_moe and m.n_dense_layers:  # leading dense layers of a MoE model (first_k_dense_replace)
            gpu = gpu + self._layer_stack_s(T, seqs, kv_read, qk_pairs, T, m, m.n_dense_layers, False, out, "", attention)
        # LM head + logits gather + sampling / rejection sampling
        rows = (dec_tokens + b.n_prefill_done) / dp
        lm = t.gemm_s(rows, m.vocab_size // self.tp, m.hidden_size, "bf16")
        lm = lm + self._coll("all_gather", rows * (m.vocab_size // self.tp) * 2.0, self.tp)
        spec_rows = np.where(k > 0, dec_tokens / dp, 0.0)
        plain_rows = rows - spec_rows
        samp = t.sampling_s("sample", plain_rows, m.vocab_size) + t.sampling_s("rejection_sample", spec_rows, m.vocab_size)
        out["lm_head"] = lm
        out["sampling"] = samp
        gpu = gpu + lm + samp
        n_kernels = m.num_hidden_layers * self.kernels_per_layer + KERNELS_OUTSIDE_LAYERS
        # drafting for the next round
        draft = self._draft_s(b, out, attention)
        gpu = gpu + draft
        n_kernels = n_kernels + np.where(k > 0, k * KERNELS_PER_DRAFT_PASS * (self.method in ("eagle3", "mtp", "draft-model")), 0.0)
        graph = (T_engine <= self.hardware.cudagraph_capture_max_tokens) & (not self.enforce_eager)
        # short kernels (norms, rope, residual adds, the dense activation, cache write: 6 or 5 per layer)
        n_small = (5.0 if m.is_moe else 6.0) * m.num_hidden_layers
        small_s = out["norm_rope_act"] / n_small
        # a measured MoE block's time holds the gaps between its own kernels: one gap per block remains
        n_gap = n_kernels - (m.num_hidden_layers * (t.moe_kernels_with_gaps_inside - 1)
                             if m.is_moe and t.moe_kernels_with_gaps_inside else 0)
        out["gpu"], out["n_kernels"], out["graph"] = gpu, n_kernels, graph
        out["n_gap"] = np.broadcast_to(n_gap, np.shape(gpu))
        out["n_small"], out["small_s"] = np.broadcast_to(n_small, np.shape(gpu)), small_s
        total_gpu = self.timer.launch_overhead_s(n_kernels, graph, gpu, n_small, small_s, n_gap)
        out["launch_gaps"] = total_gpu - gpu
        n_seq = b.n_decode + b.n_prefill_seqs
        if self.method == "ngram":
            host = np.where(n_seq > 0, self.host["sync_step_fixed_s"] + n_seq * (self.host["sync_per_seq_s"]
                            + np.where(k > 0, self.host["ngram_per_seq_s"], 0.0)), 0.0)
        else:
            host = np.where(n_seq > 0, self.host["step_fixed_s"] + n_seq * self.host["per_seq_s"], 0.0)
        out["host"] = host
        out["total"] = total_gpu + host
        return out

    def report(self, b: IterationBatch) -> dict[str, np.ndarray]:
        """``breakdown`` without the bookkeeping keys (for tables)."""
        return {k: v for k, v in self.breakdown(b).items()
                if k not in ("gpu", "n_kernels", "graph", "n_small", "small_s", "n_gap")}

    def _draft_s(self, b: IterationBatch, out: dict, attention: bool = True) -> np.ndarray:
        k = b.k
        zero = np.zeros_like(b.n_decode)
        if self.method in ("none", "ngram"):
            out["draft"] = zero
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
        if self.method in ("eagle3", "mtp"):
            n_layers = d.num_hidden_layers if isinstance(d, DraftSpec) else self.model.mtp_num_layers
            moe = self.method == "mtp" and self.model.is_moe
            vocab = d.draft_vocab_size if isinstance(d, DraftSpec) else self.model.vocab_size
            fused = d.fused_hidden_states if isinstance(d, DraftSpec) else 2
        else:  # draft-model: a whole small model
            n_layers, moe, vocab, fused = d.num_hidden_layers, d.is_moe, d.vocab_size, 0
        tmp: dict = {}
        t1 = self._layer_stack_s(first_T, seqs, kv_first, qk_first, first_T, d, n_layers, moe, tmp, "", False)
        # later passes: B tokens each (their attention over the sequence's context is in _draft_attention_s)
        tl = self._layer_stack_s(later_T, later_T, kv_later, kv_later, later_T, d, n_layers, moe, tmp, "", False)
        h = d.hidden_size
        fc = self.timer.gemm_s(first_T, h, fused * h, self.dtype) if fused > 1 else zero
        head = self.timer.gemm_s(later_T, vocab // self.tp if self.method == "draft-model" else vocab, h, "bf16")
        pick = self.timer.sampling_s("argmax", later_T, vocab)
        per_pass_head = head + pick
        total = t1 + fc + np.maximum(k - 1, 0) * tl + k * per_pass_head
        total = np.where(active, total, 0.0)
        if attention:
            total = total + self._draft_attention_s(b)
        out["draft"] = total
        return total

    def iteration_time_s(self, b: IterationBatch) -> np.ndarray:
        return self.breakdown(b)["total"]
