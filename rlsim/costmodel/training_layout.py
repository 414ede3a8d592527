"""Training and log-prob time from the Megatron-core layout (NeMo-RL's Megatron policy), explained by component.

One RL step trains the step's sequences (``train_global_batch_size`` per optimizer step) and, before that,
runs forward-only log-prob passes (the policy's; the reference policy's too when the KL term is on). Each
pass is priced the way Megatron runs it on the layout ``TP x CP x PP (x VPP)`` with ``DP = GPUs / (TP CP PP)``
and experts laid out ``ETP x EP x EDP = TP x CP x DP``:

1. **Sequence packing** (NeMo-RL ``sequence_packing``): each sequence is padded to a multiple of
   ``sequence_length_round`` (and of 2 CP x TP when CP or SP shard it) and packed first-fit-decreasing into
   micro-batches of ``train_mb_tokens`` (default ``max_total_sequence_length x train_micro_batch_size``);
   the bins are dealt to the DP ranks (largest first, to the least-loaded rank). Every rank runs as many
   micro-batches as the fullest one (Megatron's schedule is collective); the slowest rank sets the time.
2. **Per micro-batch, per layer, one GPU** (tokens ``T / CP``): the GEMMs of attention (GQA, or MLA's down/up
   projections) and of the MLP or the MoE block, each through ``timer.gemm_s`` (the calibrated GEMM tables at
   training shapes); core attention through ``timer.attention_s`` (causal within each packed sequence,
   ``sum s(s+1)/2 / CP`` query-key pairs); norms, rope, residuals, activation through the elementwise
   predictors. MoE (token-dropless, all-to-all dispatcher): router GEMM, permute / unpermute, the all-to-all
   dispatch and combine over the EP group (``network.collective_s``: NVLink inside a domain, the NIC across
   domains), the routed experts as a grouped GEMM priced per expert at its row count (``T_r k / local
   experts``, uniform routing, every token kept), shared experts as a dense MLP. TP with sequence parallelism:
   all-gather + reduce-scatter around attention (and the dense MLP); without SP, two all-reduces. CP: the ring
   exchange of K/V chunks, hidden behind attention where it is shorter.
3. **Backward = 2x the forward's GEMM FLOPs** (weight and input gradients), 2.5x for FlashAttention's
   backward (five matmuls against the forward's two), the same collectives again; **activation
   checkpointing** (NeMo-RL: full recompute of every layer) adds one more forward.
4. **Host**: Megatron runs eagerly; a dropless MoE layer synchronises the host for the all-to-all split
   sizes, so within each MoE layer the time is the larger of the GPU's and the host's (kernels launched x the
   calibration's eager launch cost); dense layers let the host run ahead over the whole pass.
5. **Pipeline**: ``m`` micro-batches over ``PP`` stages (layers per stage from the recipe's first/last stage
   counts, embedding on the first, LM head + loss on the last), 1F1B: ``m x t_slowest + (PP - 1) / VPP x
   t_mean``, i.e. a bubble of ``(PP - 1) / (VPP m)``; stage-to-stage activations over the link between them.
6. **Distributed optimizer**: gradients reduce-scattered and parameters all-gathered over DP (dense) and EDP
   (experts) in bf16, overlapped with the last micro-batch's backward / the first's forward (NeMo-RL's
   ``overlap_grad_reduce`` / ``overlap_param_gather``): only the excess is exposed; the Adam update reads and
   writes the local shard (16 B per parameter: fp32 master, two moments, the gradient).
7. **Colocated**: NeMo-RL moves the optimizer state and the weights to host memory before generation and back
   after (``offload_before_refit`` / ``offload_after_refit``), over the host link; the reference policy's
   weights are swapped in for its pass.

No efficiency number lives here: every kernel time comes from the timer (calibrated or roofline), every link
from the hardware profile. ``LayoutCost.components`` is the explainable breakdown (seconds on the critical
rank; they add up to ``seconds``) and ``details`` the layout facts (micro-batches, bubble, implied MFU).
"""

from __future__ import annotations

import copy
import heapq
import math
from dataclasses import dataclass, field

import numpy as np

from ..catalog import HardwareProfile, ModelSpec, TrainingParallelism
from . import mla, network
from .training_memory import stage_params
from .training_parallel import TrainingLayout, resolve_layout
from .timer import BYTES, KernelTimer

# Kernels Megatron-core + Transformer Engine launch per layer and forward pass (fused norm+linear, rope,
# attention, residuals, activation; MoE: router, top-k and softmax, permute, count exchange, grouped GEMMs,
# unpermute), counted from Megatron-core's layer code paths; a backward launches about twice as many.
KERNELS_PER_LAYER_FWD = {"dense": 16, "moe": 34}
BACKWARD_GEMM_FACTOR = 2.0  # weight + input gradients: 2x the forward FLOPs
BACKWARD_ATTENTION_FACTOR = 2.5  # FlashAttention backward: 5 matmuls (recomputed scores) vs the forward's 2
ADAM_BYTES_PER_PARAM = 16.0  # read + write of fp32 master weight, two fp32 moments; the bf16 gradient


@dataclass
class LayoutCost:
    seconds: float
    components: dict[str, float]
    details: dict = field(default_factory=dict)
    flops: float = 0.0

    def to_dict(self) -> dict:
        return {"seconds": self.seconds, "components_s": dict(self.components), "details": dict(self.details),
                "flops": self.flops}


def first_fit_decreasing(lengths: np.ndarray, capacity: int) -> list[list[int]]:
    """NeMo-RL's ``modified_first_fit_decreasing`` in its plain form: sequences (longest first) into the first bin
    with room; a sequence longer than a bin gets a bin of its own.

    Computed a run of equal lengths at a time (padded lengths repeat): first fit places equal items into the bins
    with room for one, from the left, each bin taking as many as fit, then opens new bins each holding
    ``capacity // n`` (at least one). The same bins as the one-at-a-time scan, in the same order."""
    lengths = np.asarray(lengths)
    order = np.argsort(-lengths, kind="stable")
    sizes = lengths[order]
    if sizes.dtype.kind not in "iu":
        sizes = np.array([int(v) for v in sizes.tolist()], np.int64)
    sizes = sizes.astype(np.int64)
    items = order.tolist()
    bins: list[list[int]] = []
    if not items:
        return bins
    rooms = np.zeros(max(len(items), 1), np.int64)  # free room of each open bin
    cuts = np.flatnonzero(np.diff(sizes)) + 1
    for a, b in zip(np.concatenate([[0], cuts]).tolist(), np.concatenate([cuts, [len(items)]]).tolist()):
        n, m, pos = int(sizes[a]), b - a, a
        nb = len(bins)
        elig = np.flatnonzero(rooms[:nb] >= n)
        if n <= 0:  # empty items all go to the first bin with room (or a new one)
            if elig.size:
                bins[int(elig[0])].extend(items[a:b])
            else:
                rooms[nb] = capacity - n
                bins.append(items[a:b])
            continue
        if elig.size:
            fit = rooms[elig] // n  # items each of these bins takes, left to right, until the run is placed
            done = np.cumsum(fit)
            last = int(np.searchsorted(done, m, side="left"))
            take = fit[: last + 1].copy()
            if last < take.size:
                take[-1] = m - (int(done[last - 1]) if last else 0)
            for e, t in zip(elig[: take.size].tolist(), take.tolist()):
                bins[e].extend(items[pos: pos + t])
                rooms[e] -= t * n
                pos += t
        per_bin = max(capacity // n, 1)
        while pos < b:
            t = min(per_bin, b - pos)
            rooms[len(bins)] = capacity - t * n
            bins.append(items[pos: pos + t])
            pos += t
    return bins


@dataclass
class TrainingLayoutModel:
    model: ModelSpec
    hardware: HardwareProfile
    timer: KernelTimer
    par: TrainingParallelism
    gpus: int
    max_total_sequence_length: int
    colocated: bool = True
    dtype: str = "bf16"

    def __post_init__(self):
        self.layout = resolve_layout(self.model, self.par, self.gpus)
        self._memo: dict = {}  # (pass, lengths) -> LayoutCost: steps that train the same sequences (the AR and the
        # speculative run of one step, async steps) are priced once

    def _memoized(self, key: tuple, lengths: np.ndarray, compute) -> LayoutCost:
        lengths = np.asarray(lengths)
        key = key + (lengths.dtype.str, lengths.shape, lengths.tobytes())
        c = self._memo.get(key)
        if c is None:
            c = self._memo[key] = compute(lengths)
        return copy.deepcopy(c)

    # ------------------------------------------------------------------ packing
    def _pad(self, lengths: np.ndarray) -> np.ndarray:
        L = self.layout
        mult = self.par.sequence_length_round
        shard = 2 * L.cp * L.tp if (L.cp > 1) else (L.tp if L.sp else 1)
        mult = mult * shard // math.gcd(mult, shard)
        return (np.ceil(np.asarray(lengths, float) / mult) * mult).astype(np.int64)

    def micro_batches(self, lengths: np.ndarray, mb_tokens: int, mb_seqs: int) -> list[list[list[int]]]:
        """Per DP rank, its micro-batches as lists of padded sequence lengths."""
        L = self.layout
        padded = self._pad(lengths)
        pl = padded.tolist()
        if self.par.sequence_packing:
            bins = [[pl[i] for i in b] for b in first_fit_decreasing(padded, max(mb_tokens, int(padded.max())))]
        elif getattr(self.par, "dynamic_batching", False):
            bins = _dynamic_batches(padded, mb_tokens)
        else:
            bins = [pl[j:j + mb_seqs] for j in range(0, len(pl), mb_seqs)]
        ranks: list[list[list[int]]] = [[] for _ in range(L.dp)]
        # each bin (largest first) to the least-loaded rank, the lowest index among equals (a heap of (load, rank))
        heap = [(0.0, r) for r in range(L.dp)]
        for b in sorted(bins, key=lambda x: -sum(x)):
            load, r = heapq.heappop(heap)
            ranks[r].append(b)
            heapq.heappush(heap, (load + sum(b), r))
        return ranks

    # ------------------------------------------------------------------ one layer, micro-batches, forward
    def _coll(self, op, b, ranks):
        b = np.asarray(b, float)
        return network.collective_s(self.timer, self.hardware, op, b, ranks) if ranks > 1 else np.zeros_like(b)

    def _layer_fwd(self, T: np.ndarray, pairs: np.ndarray, n_seqs: np.ndarray, moe: bool) -> tuple[dict, float]:
        """Seconds per component of one layer's forward on one GPU, for each micro-batch (arrays: packed tokens,
        causal query-key pairs, sequences), and the host's launch time for it."""
        m, L, t, dt = self.model, self.layout, self.timer, self.dtype
        Tc = T / L.cp  # tokens of this CP rank
        Ts = Tc / L.tp if L.sp else Tc  # tokens of the sequence-parallel region
        h = m.hidden_size
        out: dict[str, np.ndarray] = {}
        heads = m.num_attention_heads / L.tp
        pc = pairs / L.cp
        if m.is_mla:
            out["attn_gemm"] = mla.projections_s(t, m, L.tp, Tc, dt, absorbed=False)
            out["attn_core"] = mla.mha_attention_s(t, m, heads, n_seqs, Tc, pc, Tc)
            ew = mla.elementwise_ops(m, L.tp)
            kv_bytes_tok = (m.qk_nope_head_dim + m.qk_rope_head_dim + m.v_head_dim) * heads * 2.0
        else:
            qh, kvh = m.num_attention_heads / L.tp, max(m.num_key_value_heads / L.tp, 1.0)
            hd = m.head_dim
            out["attn_gemm"] = t.gemm_s(Tc, int((qh + 2 * kvh) * hd), h, dt) + t.gemm_s(Tc, h, int(qh * hd), dt)
            out["attn_core"] = t.attention_s("prefill", n_seqs, Tc, pc, Tc, qh, kvh, hd, "bf16")
            ew = [("rmsnorm", (qh + kvh) * hd, 1), ("rope", (qh + kvh) * hd, 1)]
            kv_bytes_tok = 2 * kvh * hd * 2.0
        ew_tokens = [("rmsnorm", h, 2), ("residual_add", h, 2)]

        def tp_pair():
            if L.tp == 1:
                return np.zeros_like(T)
            if L.sp:
                return self._coll("all_gather", Ts * h * 2.0, L.tp) + self._coll("reduce_scatter", Tc * h * 2.0, L.tp)
            return self._coll("all_reduce", Tc * h * 2.0, L.tp)

        comm = tp_pair()  # around attention: AG + RS with SP, else an all-reduce
        if L.cp > 1:  # ring exchange of K/V chunks, overlapped with attention compute
            ring = (L.cp - 1) * network.collective_s(self.timer, self.hardware, "broadcast", Tc * kv_bytes_tok, 2)
            out["cp_comm"] = np.maximum(0.0, ring - out["attn_core"])
        if moe:
            k, E = m.num_experts_per_tok, m.num_experts
            Tr = Ts if L.tp > 1 else Tc  # tokens this GPU routes (its SP shard)
            n_local = E // L.ep
            assign = Tr * k  # token-expert pairs this GPU computes (uniform routing, dropless)
            rows = assign / n_local
            inter = m.moe_intermediate_size // L.etp
            out["router"] = t.gemm_s(Tr, E, h, "bf16")
            out["moe_gemm"] = n_local * (t.gemm_s(rows, 2 * inter, h, dt) + t.gemm_s(rows, h, inter, dt))
            out["moe_permute"] = t.elementwise_s(4 * assign * h * 2.0, n_kernels=4)
            out["ep_a2a"] = 2 * self._coll("all_to_all", assign * h * BYTES[dt], L.ep)
            ew_extra = t.elementwise_ops_s(assign, [("silu_mul", inter, 1)])
            if m.shared_expert_intermediate:
                si = m.shared_expert_intermediate // L.tp
                out["mlp_gemm"] = t.gemm_s(Tc, 2 * si, h, dt) + t.gemm_s(Tc, h, si, dt)
                ew_extra = ew_extra + t.elementwise_ops_s(Tc, [("silu_mul", si, 1)])
        else:
            inter = m.intermediate_size // L.tp
            out["mlp_gemm"] = t.gemm_s(Tc, 2 * inter, h, dt) + t.gemm_s(Tc, h, inter, dt)
            ew_extra = t.elementwise_ops_s(Tc, [("silu_mul", inter, 1)])
            comm = comm + tp_pair()
        out["elementwise"] = t.elementwise_ops_s(Ts, ew_tokens) + t.elementwise_ops_s(Tc, ew) + ew_extra
        out["tp_comm"] = comm
        host = KERNELS_PER_LAYER_FWD["moe" if moe else "dense"] * self.timer.latency["eager_launch_s"]
        return {k_: np.broadcast_to(np.asarray(v, float), T.shape) for k_, v in out.items()}, host

    def _head_fwd(self, T: np.ndarray) -> dict:
        """LM head and the log-prob / loss over the vocabulary (last stage), forward."""
        m, L, t = self.model, self.layout, self.timer
        Tc = T / L.cp
        v = m.vocab_size // L.tp
        out = {"lm_head": t.gemm_s(Tc, v, m.hidden_size, self.dtype),
               # fp32 logits: cast, log-softmax (max, exp-sum, normalise), gather: ~5 passes over [T, V/TP] in fp32
               "logprob_softmax": t.elementwise_s(Tc * v * 4.0 * 5, n_kernels=5)}
        if L.tp > 1:
            out["tp_comm"] = 3 * self._coll("all_reduce", Tc * 4.0, L.tp)
        return out

    def _stage_time(self, stage: int, T: np.ndarray, pairs: np.ndarray, n_seqs: np.ndarray, passes: str) -> dict:
        """Components (arrays over micro-batches) of each micro-batch on one pipeline stage. ``passes``: 'fwd'
        (log-prob) or 'train' (forward, backward, recompute)."""
        L = self.layout
        n_dense, n_moe = L.stage_layers[stage]
        train = passes == "train"
        fwd_mult = 1.0 + (1.0 if (train and L.recompute) else 0.0)
        comm_keys = ("tp_comm", "ep_a2a", "cp_comm")
        out: dict[str, np.ndarray] = {}
        zero = np.zeros_like(T)

        def add(k, v):
            out[k] = out.get(k, zero) + v

        dense_host, dense_gpu = zero, zero
        for moe, n in ((False, n_dense), (True, n_moe)):
            if n == 0:
                continue
            memo = getattr(self, "_layer_memo", None)  # the stages of one pass share their layers' forward
            if memo is not None and moe in memo:
                comp, host = memo[moe]
            else:
                comp, host = self._layer_fwd(T, pairs, n_seqs, moe)
                if memo is not None:
                    memo[moe] = (comp, host)
            gpu_layer = zero
            for k_, v in comp.items():
                f = fwd_mult
                if train:
                    f += BACKWARD_ATTENTION_FACTOR if k_ == "attn_core" else (1.0 if k_ in comm_keys else
                                                                              BACKWARD_GEMM_FACTOR)
                add(k_, n * f * v)
                gpu_layer = gpu_layer + f * v
            host_layer = host * (fwd_mult + (2.0 if train else 0.0))
            if moe:  # the host syncs every MoE layer: it cannot run ahead of the GPU across layers
                add("host_launch", n * np.maximum(0.0, host_layer - gpu_layer))
            else:
                dense_host, dense_gpu = dense_host + n * host_layer, dense_gpu + n * gpu_layer
        if stage == L.pp - 1:
            for k_, v in self._head_fwd(T).items():
                add(k_, v * ((1.0 + BACKWARD_GEMM_FACTOR) if (train and k_ == "lm_head") else (2.0 if train else 1.0)))
        if L.pp > 1:  # activations to the next stage (and gradients back), over the link between stages
            Tc = T / L.cp
            act = (Tc / L.tp if L.sp else Tc) * self.model.hidden_size * 2.0
            intra = L.tp * L.cp * L.dp < self.hardware.nvlink_domain_size
            link = self.hardware.nvlink_bandwidth_bytes_per_s if intra else self.hardware.scaleout_bandwidth_bytes_per_s
            lat = self.timer.latency["collective_latency_nvlink_s" if intra else "collective_latency_scaleout_s"]
            add("pp_p2p", (2.0 if train else 1.0) * (lat + act / link))
        if n_dense:  # dense layers: the host runs ahead over the whole pass, exposed only if slower
            add("host_launch", np.maximum(0.0, dense_host - dense_gpu))
        return out

    # ------------------------------------------------------------------ a pass over the step's sequences
    def _pass(self, lengths: np.ndarray, passes: str, n_opt_steps: int) -> LayoutCost:
        L = self.layout
        train = passes == "train"
        mbs = (self.par.train_micro_batch_size if train else (self.par.logprob_batch_size
                                                                or self.par.train_micro_batch_size))
        mb_tokens = ((self.par.train_mb_tokens if train else self.par.logprob_mb_tokens)
                     or self.max_total_sequence_length * mbs)
        comp_total: dict[str, float] = {}
        m_counts, bubbles = [], []
        for g in np.array_split(np.asarray(lengths), n_opt_steps):
            if g.size == 0:  # nothing to train (partial rollouts may hand over an empty batch)
                continue
            ranks = self.micro_batches(g, mb_tokens, mbs)
            n_mb = max(len(r) for r in ranks)
            m_counts.append(n_mb)
            flat = [(ri, mb) for ri, r in enumerate(ranks) for mb in r]
            owner = np.array([ri for ri, _ in flat])
            T = np.array([float(sum(mb)) for _, mb in flat])
            pairs = np.array([sum(s * (s + 1) / 2.0 for s in mb) for _, mb in flat])
            nseq = np.array([float(len(mb)) for _, mb in flat])
            self._layer_memo = {}
            try:
                stages = [self._stage_time(s, T, pairs, nseq, passes) for s in range(L.pp)]
            finally:
                self._layer_memo = None
            tot = np.stack([sum(c.values()) for c in stages])  # [stage, micro-batch]
            slow = np.argmax(tot, axis=0)
            t_max_mb = tot[slow, np.arange(T.size)]
            best = None
            for ri in range(L.dp):  # the slowest rank sets the pace (collectives close the step)
                sel = owner == ri
                if not sel.any():
                    continue
                t_mean = float(tot[:, sel].mean())
                bubble = (L.pp - 1) / L.vpp * t_mean + (n_mb - int(sel.sum())) * t_mean
                total = float(t_max_mb[sel].sum()) + bubble
                if best is None or total > best[0]:
                    best = (total, sel, bubble)
            total, sel, bubble = best
            for k_ in dict.fromkeys(k for c in stages for k in c):  # first-seen order: the same sum every run
                v = sum(float(stages[s][k_][j]) for j, s in zip(np.flatnonzero(sel), slow[sel]) if k_ in stages[s])
                comp_total[k_] = comp_total.get(k_, 0.0) + v
            comp_total["pipeline_bubble"] = comp_total.get("pipeline_bubble", 0.0) + bubble
            bubbles.append(bubble / total if total else 0.0)
        details = {"layout": L.as_dict(), "optimizer_steps": n_opt_steps, "micro_batches_per_rank": m_counts,
                   "micro_batch_tokens": int(mb_tokens), "bubble_fraction": float(np.mean(bubbles)) if bubbles else 0.0}
        return LayoutCost(sum(comp_total.values()), comp_total, details)

    # ------------------------------------------------------------------ parameters per GPU
    def params_per_gpu(self) -> tuple[float, float]:
        """(dense parameters, expert parameters) held by one GPU (its largest stage)."""
        return max(stage_params(self.model, self.layout), key=sum)  # the first largest stage on ties

    def _optimizer(self, backward_last_s: float, forward_first_s: float, n_opt_steps: int) -> dict[str, float]:
        L, t = self.layout, self.timer
        dense, expert = self.params_per_gpu()
        out = {}
        # gradient reduce-scatter + parameter all-gather in bf16 over the data-parallel groups (dense params over
        # DP x CP, expert params over EDP), overlapped with the last backward / first forward
        dp_dense = L.dp * L.cp
        rs = float(self._coll("reduce_scatter", dense * 2.0, dp_dense) + self._coll("reduce_scatter", expert * 2.0, L.edp))
        ag = float(self._coll("all_gather", dense * 2.0 / dp_dense, dp_dense)
                   + self._coll("all_gather", expert * 2.0 / max(L.edp, 1), L.edp))
        out["dp_grad_reduce_scatter"] = n_opt_steps * max(0.0, rs - backward_last_s)
        out["dp_param_all_gather"] = n_opt_steps * max(0.0, ag - forward_first_s)
        shard = dense / dp_dense + expert / max(L.edp, 1)
        out["optimizer_step"] = n_opt_steps * float(t.elementwise_s(shard * ADAM_BYTES_PER_PARAM, n_kernels=4))
        return out

    def _offload_s(self) -> float:
        """Colocated: optimizer state and weights to host memory and back once per step."""
        bw = getattr(self.hardware, "host_link_bandwidth_bytes_per_s", None)
        if not self.colocated or not bw:
            return 0.0
        L = self.layout
        dense, expert = self.params_per_gpu()
        state = (dense / (L.dp * L.cp) + expert / max(L.edp, 1)) * 12.0  # fp32 master + two moments (sharded)
        weights = (dense + expert) * 2.0  # bf16 weights (+ as much gradient buffer)
        return 2.0 * (state + 2.0 * weights) / bw

    # ------------------------------------------------------------------ public
    def training(self, lengths: np.ndarray) -> LayoutCost:
        return self._memoized(("train",), lengths, self._training)

    def logprob(self, lengths: np.ndarray, passes: int) -> LayoutCost:
        return self._memoized(("logprob", passes), lengths, lambda x: self._logprob(x, passes))

    def _training(self, lengths: np.ndarray) -> LayoutCost:
        gbs = self.par.train_global_batch_size or max(len(lengths), 1)
        n_opt = max(1, math.ceil(len(lengths) / gbs))
        c = self._pass(lengths, "train", n_opt)
        # overlap windows of the optimizer collectives: one micro-batch's backward / forward on the slowest stage
        if lengths.size == 0:
            return LayoutCost(0.0, {}, c.details, 0.0)
        n_mb = max(1, sum(c.details["micro_batches_per_rank"]))
        per_mb = (c.seconds - c.components.get("pipeline_bubble", 0.0)) / n_mb
        opt = self._optimizer(per_mb * 2 / 3, per_mb / 3, n_opt)
        off = self._offload_s()
        comps = dict(c.components)
        comps.update(opt)
        if off:
            comps["offload_onload"] = off
        secs = sum(comps.values())
        c.details["optimizer_steps"] = n_opt
        return LayoutCost(secs, comps, c.details, self.flops(lengths, train=True))

    def _logprob(self, lengths: np.ndarray, passes: int) -> LayoutCost:
        c = self._pass(lengths, "fwd", 1)
        if lengths.size == 0:
            return LayoutCost(0.0, {}, c.details, 0.0)
        comps = {k: passes * v for k, v in c.components.items()}
        bw = getattr(self.hardware, "host_link_bandwidth_bytes_per_s", None)
        if passes > 1 and bw:  # the reference weights swapped in from host memory and the policy's back
            dense, expert = self.params_per_gpu()
            comps["reference_swap"] = 2.0 * (dense + expert) * 2.0 / bw
        c.details["passes"] = passes
        return LayoutCost(sum(comps.values()), comps, c.details, passes * self.flops(lengths, train=False))

    def flops(self, lengths: np.ndarray, train: bool) -> float:
        """Model FLOPs (no recompute) of a pass over the sequences: 2 x active params per token + causal attention."""
        m = self.model
        tok = float(np.sum(lengths))
        width = (m.qk_nope_head_dim + m.qk_rope_head_dim + m.v_head_dim) / 2.0 if m.is_mla else m.head_dim
        attn = 2.0 * m.num_hidden_layers * m.num_attention_heads * width * float(np.sum(np.asarray(lengths, float) ** 2))
        f = 2.0 * m.active_params * tok + attn
        return 3.0 * f if train else f


def _dynamic_batches(padded: np.ndarray, mb_tokens: int) -> list[list[int]]:
    """NeMo-RL dynamic batching: sequences sorted longest first, each micro-batch filled while (sequences x its
    longest) stays within ``mb_tokens``; every sequence is padded to the micro-batch's longest."""
    out: list[list[int]] = []
    cur: list[int] = []
    for s in sorted((int(x) for x in padded), reverse=True):
        if cur and (len(cur) + 1) * cur[0] > mb_tokens:
            out.append([cur[0]] * len(cur))
            cur = []
        cur.append(s)
    if cur:
        out.append([cur[0]] * len(cur))
    return out


__all__ = ["LayoutCost", "TrainingLayout", "TrainingLayoutModel", "first_fit_decreasing", "resolve_layout"]
