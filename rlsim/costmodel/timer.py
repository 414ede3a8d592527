"""Kernel timers: FLOPs and bytes of one op -> seconds.

This is the ONE place where efficiency enters the cost model. :class:`KernelTimer` (here) is the
roofline timer: datasheet peaks times explicit per-op-class efficiency terms (``ROOFLINE_EFFICIENCY``)
plus fixed latencies (``FIXED_LATENCY_S``). Its subclass :class:`~rlsim.costmodel.calib_timer.CalibratedTimer`
overrides the op classes with predictors fitted on measured tables and falls back to these roofline
terms where nothing was measured (collectives without a measured curve, scale-out links).
``select.get_timer`` picks one of the two for a hardware profile. The module also holds the shared
helpers of both: ``BYTES`` per dtype, the MoE routing's ``expected_distinct_experts`` and the collectives'
``ring_factor``.

Every method is vectorised: size arguments may be numpy arrays, and an array of seconds comes back.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field

import numpy as np

from ..catalog import HardwareProfile

BYTES = {"bf16": 2.0, "fp8": 1.0, "fp32": 4.0}

# Roofline efficiency terms: the fraction of the datasheet peak each op class reaches.
# Sources: shared/reference/hardware-and-models.md and gpu-measurement-notes.md measured on the
# lent Hopper GPUs an 8192^3 bf16 GEMM at 744-798 TFLOP/s of 989 (0.80) and a device copy at
# ~2.97-3.0 TB/s of 3.35 on H100 and 4.3 of 4.8 on H200 (0.89). Attention and the rest are
# engineering estimates (FlashAttention-2/3 reach 40-60% of peak in prefill, flash-decoding ~75%
# of bandwidth) until the calibration tables replace them.
ROOFLINE_EFFICIENCY = {
    "gemm_compute": 0.80,
    "gemm_memory": 0.89,
    "attention_compute": 0.50,
    "attention_memory": 0.75,
    "moe_compute": 0.60,
    "moe_memory": 0.75,
    "elementwise_memory": 0.80,
    "sampling_memory": 0.70,
}

# Fixed latencies (seconds). Engineering estimates, replaced by calibration where measured:
#  - kernel_floor_s: the shortest a kernel runs on a Hopper/Blackwell GPU (launch ramp, one wave).
#  - graph_gap_s: the gap between consecutive kernels replayed from a CUDA graph.
#  - eager_launch_s: host time to launch one kernel from PyTorch eagerly (a tight loop of one bare op).
#  - eager_forward_launch_s: host time per kernel of one whole eager model forward alone (Python module code,
#    the dispatcher, Triton's launcher): calibration/h200/overhead.csv mode eager_forward (the single-step
#    microbenchmark, scripts/fit_eager_launch.py); used by engines whose per-step host work is priced apart.
#  - eager_rollout_launch_s: host time per kernel of an eager iteration of the ground-truth harness's rollout
#    loop (mode eager_rollout, fitted on its eager runs): the ideal engine's eager floor (it models the harness).
#    Uncalibrated timers use eager_launch_s for both.
#  - collective_latency_nvlink_s / _scaleout_s: NCCL / custom all-reduce small-message latency.
FIXED_LATENCY_S = {
    "kernel_floor_s": 2.5e-6,
    "graph_gap_s": 1.0e-6,
    "eager_launch_s": 5.0e-6,
    "eager_forward_launch_s": 5.0e-6,
    "eager_rollout_launch_s": 5.0e-6,
    "collective_latency_nvlink_s": 8.0e-6,
    "collective_latency_scaleout_s": 20.0e-6,
}


# Launches of an engine's MoE block (vLLM fused MoE: router GEMM, top-k softmax, block alignment, expert
# GEMM 1, SiLU x mul, expert GEMM 2, top-k sum), as the fused-MoE microbenchmark runs it.
KERNELS_PER_FUSED_MOE = 7


@functools.lru_cache(maxsize=64)
def _expert_pick_probabilities(num_experts_total: int, top_k: int, skew: float) -> tuple:
    """Per expert (by popularity rank), the probability that one token picks it: k x Zipf(skew), capped at 1
    with the excess handed to the others (a token picks k distinct experts)."""
    r = np.arange(1, num_experts_total + 1, dtype=float) ** -skew
    q = top_k * r / r.sum()
    for _ in range(num_experts_total):
        over = q > 1.0
        if not over.any():
            break
        excess = float((q[over] - 1.0).sum())
        q[over] = 1.0
        rest = q < 1.0
        q[rest] += excess * q[rest] / q[rest].sum()
    return tuple(q)


def expected_distinct_experts(n_local: float, num_experts_total: int, top_k: int, tokens, skew: float = 0.0):
    """Expected distinct local experts that ``tokens`` tokens touch in one MoE layer.

    Uniform routing (``skew`` 0): each token picks ``top_k`` of ``num_experts_total``, so an expert is
    touched with probability 1 - (1 - k/E)^T (shared/reference/gpu-measurement-notes.md). Real routers
    are not uniform: with ``skew`` s > 0 expert popularity follows a Zipf law p_r ~ r^-s over the E
    experts, an expert is picked by a token with probability k p_r (capped at 1, the excess handed to the
    others so that each token still picks k), and the local experts are a
    random subset of the E (EP places experts without regard to popularity), so the local count is the
    global expectation x n_local / E. Fewer distinct experts means less weight traffic per iteration."""
    tokens = np.asarray(tokens, dtype=float)
    if not num_experts_total:
        return np.full(tokens.shape, float(n_local))
    frac = top_k / num_experts_total
    if skew <= 0:
        return n_local * (1.0 - np.power(1.0 - frac, tokens))
    q = np.asarray(_expert_pick_probabilities(num_experts_total, top_k, float(skew)))
    touched = 1.0 - np.power(1.0 - q[:, None], tokens.reshape(1, -1))
    return (touched.sum(axis=0) * n_local / num_experts_total).reshape(tokens.shape)


def ring_factor(op: str, ranks: int) -> float:
    """Bytes each rank sends per byte of ``bytes_per_rank`` in a ring (nccl-tests' conventions):
    all_reduce and broadcast: the tensor; all_gather: each rank's contribution (the output is ``ranks``
    times it); reduce_scatter: each rank's input; all_to_all: each rank's whole send buffer."""
    n = ranks
    if op.startswith("all_reduce"):  # NCCL's ring, or an engine's one-/two-shot all-reduce
        return 2.0 * (n - 1) / n
    return {"all_gather": float(n - 1), "reduce_scatter": (n - 1) / n, "all_to_all": (n - 1) / n, "broadcast": 1.0}[op]


@dataclass
class KernelTimer:
    """Roofline timer. Subclasses (calibrated timers) override per op class."""

    hardware: HardwareProfile
    efficiency: dict[str, float] = field(default_factory=lambda: dict(ROOFLINE_EFFICIENCY))
    latency: dict[str, float] = field(default_factory=lambda: dict(FIXED_LATENCY_S))
    label: str = "roofline (datasheet peaks x explicit efficiency terms; uncalibrated)"
    extrapolated: set = field(default_factory=set)
    # launches inside one moe_s call whose gaps its time already contains (a measured, graph-replayed MoE
    # block); the roofline's moe_s is pure device work, so 0 here
    moe_kernels_with_gaps_inside: int = 0

    # ---------------------------------------------------------------- batched evaluation
    @contextlib.contextmanager
    def call_groups(self, sizes):
        """Inside this context, every ``attention_s`` call evaluates consecutive groups of ``sizes`` elements
        (the rollout engine costing many replicas' events at once) exactly as if each group were its own call.
        The roofline's ops are elementwise, so only calibrated timers (whose few-point attention lookups
        depend on the call) read it."""
        prev = self._call_groups
        self._call_groups = np.asarray(sizes, np.int64)
        try:
            yield
        finally:
            self._call_groups = prev

    _call_groups = None

    # ---------------------------------------------------------------- helpers
    def _roof(self, flops, bytes_, dtype: str, cls: str):
        peak = self.hardware.peak_flops.get(dtype, self.hardware.peak_flops["bf16"])
        t_c = np.asarray(flops, dtype=float) / (peak * self.efficiency[f"{cls}_compute"])
        t_m = np.asarray(bytes_, dtype=float) / (self.hardware.hbm_bandwidth_bytes_per_s * self.efficiency[f"{cls}_memory"])
        return np.maximum(t_c, t_m)

    def _mem(self, bytes_, cls: str):
        return np.asarray(bytes_, dtype=float) / (self.hardware.hbm_bandwidth_bytes_per_s * self.efficiency[f"{cls}_memory"])

    # ---------------------------------------------------------------- op classes
    def gemm_s(self, m, n: int, k: int, dtype: str = "bf16"):
        """y[m, n] = x[m, k] @ W[k, n]; weights and activations in ``dtype``, output bf16."""
        m = np.asarray(m, dtype=float)
        b = BYTES[dtype]
        flops = 2.0 * m * n * k
        bytes_ = (m * k + k * n) * b + m * n * 2.0
        t = self._roof(flops, bytes_, dtype, "gemm")
        return np.where(m > 0, np.maximum(t, self.latency["kernel_floor_s"]), 0.0)

    def attention_s(self, phase: str, n_seqs, kv_read_tokens, qk_pairs, q_tokens,
                    n_q_heads: int, n_kv_heads: int, head_dim: int, kv_dtype: str = "bf16", kv_spread: float = 1.0):
        """Attention of one layer on one GPU over a batch.

        kv_read_tokens: sum over sequences of the KV length each reads (every sequence's own length).
        qk_pairs: sum over sequences of (query tokens x keys attended), causal masking included.
        q_tokens: total query tokens (for Q/O traffic).
        kv_spread: max / mean KV length in the batch (the roofline ignores it; measured kernels differ).
        """
        kv_b = np.asarray(kv_read_tokens, dtype=float) * 2 * n_kv_heads * head_dim * BYTES[kv_dtype]
        qo_b = np.asarray(q_tokens, dtype=float) * 2 * n_q_heads * head_dim * 2.0
        flops = 4.0 * np.asarray(qk_pairs, dtype=float) * n_q_heads * head_dim
        t = self._roof(flops, kv_b + qo_b, "bf16", "attention")
        return np.where(np.asarray(n_seqs) > 0, np.maximum(t, self.latency["kernel_floor_s"]), 0.0)

    def moe_s(self, tokens, n_local_experts: int, top_k_local, hidden: int, moe_inter: int,
              dtype: str = "bf16", num_experts_total: int = 0, top_k: int = 0, routing_skew: float = 0.0):
        """One MoE block on one GPU, as an engine runs it: router GEMM, routing (top-k, alignment), the
        routed experts (gate_up + act + down) and the weighted combine.

        tokens: tokens routed by this GPU's router (all tokens of the batch under TP/EP).
        top_k_local: expected expert assignments per token that land on this GPU's experts.
        Weight traffic counts the distinct local experts the batch touches:
        ``expected_distinct_experts`` (uniform routing, or Zipf-skewed with ``routing_skew``).
        """
        tokens = np.asarray(tokens, dtype=float)
        b = BYTES[dtype]
        assignments = tokens * top_k_local
        distinct = expected_distinct_experts(n_local_experts, num_experts_total, top_k, tokens, routing_skew)
        w_bytes = distinct * 3.0 * hidden * moe_inter * b
        a_bytes = assignments * (hidden * b * 2 + 3 * moe_inter * 2.0)
        flops = 2.0 * assignments * 3.0 * hidden * moe_inter
        t = self._roof(flops, w_bytes + a_bytes, dtype, "moe")
        router = self.gemm_s(tokens, max(num_experts_total, n_local_experts), hidden, "bf16")
        return np.where(tokens > 0, np.maximum(t, 3 * self.latency["kernel_floor_s"]) + router, 0.0)

    def elementwise_s(self, bytes_, n_kernels: int = 1):
        bytes_ = np.asarray(bytes_, dtype=float)
        t = self._mem(bytes_, "elementwise")
        return np.where(bytes_ > 0, np.maximum(t, n_kernels * self.latency["kernel_floor_s"]), 0.0)

    def elementwise_ops_s(self, tokens, ops):
        """Elementwise kernels over ``tokens`` rows: ops = [(op, width, count)], op in rmsnorm, rope,
        residual_add, silu_mul, kv_cache_write (bytes read + written = width x 2 B x a per-op factor)."""
        factor = {"rmsnorm": 2.0, "silu_mul": 3.0, "rope": 2.0, "residual_add": 3.0, "kv_cache_write": 2.0}
        tokens = np.asarray(tokens, dtype=float)
        bytes_ = sum(c * tokens * w * 2.0 * factor.get(o, 2.0) for o, w, c in ops)
        return self.elementwise_s(bytes_, n_kernels=int(sum(c for _, _, c in ops)))

    def sampling_s(self, op: str, rows, vocab: int):
        """Softmax/sampling (``sample``), ``argmax`` or ``rejection_sample`` over fp32 logits."""
        passes = {"sample": 3.0, "argmax": 1.0, "rejection_sample": 6.0}[op]
        rows = np.asarray(rows, dtype=float)
        t = self._mem(rows * vocab * 4.0 * passes, "sampling")
        return np.where(rows > 0, np.maximum(t, 2 * self.latency["kernel_floor_s"]), 0.0)

    def collective_s(self, op: str, bytes_per_rank, ranks: int, bandwidth_bytes_per_s: float, scaleout: bool = False):
        """NCCL-style collective (ring algorithm bandwidth term + a latency term); ``bytes_per_rank`` as in
        ``ring_factor``."""
        if ranks <= 1:
            return np.zeros_like(np.asarray(bytes_per_rank, dtype=float))
        factor = ring_factor(op, ranks)
        lat = self.latency["collective_latency_scaleout_s" if scaleout else "collective_latency_nvlink_s"]
        b = np.asarray(bytes_per_rank, dtype=float)
        return np.where(b > 0, lat + factor * b / bandwidth_bytes_per_s, 0.0)

    def launch_overhead_s(self, n_kernels, graph, gpu_time_s, n_small=0.0, small_time_s=0.0, n_gap_kernels=None):
        """Iteration time once kernel launches are accounted: with a CUDA graph the kernels replay
        back to back (a small gap each). Eagerly the host must launch each one: the iteration takes at
        least the host's launches, and the GPU cannot run ahead of the host through a run of small
        kernels, so each of the ``n_small`` short kernels (``small_time_s`` each) takes at least one
        launch time."""
        n_kernels = np.asarray(n_kernels, dtype=float)
        launch = self.latency["eager_launch_s"]
        forward_launch = self.latency.get("eager_rollout_launch_s", launch)
        # ``n_gap_kernels``: the kernels whose gaps are not already inside measured times (default: all)
        gaps = n_kernels if n_gap_kernels is None else np.asarray(n_gap_kernels, dtype=float)
        with_gaps = gpu_time_s + gaps * self.latency["graph_gap_s"]
        stall = np.asarray(n_small, float) * np.maximum(launch - np.asarray(small_time_s, float), 0.0)
        eager = np.maximum(with_gaps + stall, n_kernels * forward_launch)  # the host's launches of the forward
        return np.where(graph, with_gaps, eager)

    def describe(self) -> str:
        return self.label
