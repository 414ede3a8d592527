"""Costs of the non-generation phases: log-prob recompute, training, weight sync (refit).

Training and log-prob time come from FLOPs over (GPUs x peak x model FLOPs utilisation). The
utilisation (MFU) is the explicit efficiency term of these phases: defaults are engineering
estimates (Megatron reaches ~40% MFU on dense 8-70B models on Hopper, MoE models lower), and a
workload may set ``training_mfu``/``logprob_mfu`` (``rlsim validate paper --refit`` fits them to a
measured AR baseline). Communication is inside the MFU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..catalog import HardwareProfile, ModelSpec
from .timer import BYTES

DEFAULT_MFU = {
    # (phase, architecture) -> model FLOPs utilisation. Engineering estimates, see module docstring.
    ("training", "dense"): 0.40,
    ("training", "moe"): 0.25,
    ("logprob", "dense"): 0.35,
    ("logprob", "moe"): 0.20,
}

# Weight sync into the rollout engine. Derived from NeMo-RL's measured refits (shared reference):
# Qwen3-4B (~8 GB bf16) 0.21-0.34 s and Qwen3-30B (~61 GB bf16) 0.74-1.0 s -> a line through the
# midpoints: 0.18 s fixed + 11.3 ms per GB moved per GPU (~88 GB/s effective, IPC + resharding).
REFIT = {"fixed_s": 0.18, "s_per_byte": 11.3e-3 / 1e9}
# Colocated engines sleep during training (vLLM sleep mode) and re-map their KV pool on wake-up;
# engineering estimate of the mapping rate of physical memory (cuMemMap + first touch).
WAKE_MAP_BYTES_PER_S = 100e9


def step_flops(model: ModelSpec, seq_tokens: np.ndarray, forward_only: bool) -> float:
    """FLOPs of a forward (+backward) over sequences of the given total lengths (causal attention)."""
    tok = float(np.sum(seq_tokens))
    dense = 2.0 * model.active_params * tok
    attn = 2.0 * model.num_hidden_layers * model.num_attention_heads * model.head_dim * float(np.sum(seq_tokens.astype(float) ** 2))
    fwd = dense + attn
    return fwd if forward_only else 3.0 * fwd


@dataclass(frozen=True)
class PhaseCost:
    seconds: float
    flops: float
    mfu: float


def training_time(model: ModelSpec, hw: HardwareProfile, gpus: int, seq_tokens: np.ndarray, dtype: str = "bf16",
                  mfu: float | None = None) -> PhaseCost:
    mfu = mfu or DEFAULT_MFU[("training", model.architecture)]
    f = step_flops(model, seq_tokens, forward_only=False)
    peak = hw.peak_flops.get(dtype, hw.peak_flops["bf16"])
    # optimizer: Adam reads/writes fp32 master weights + 2 moments + grads (16 B/param r+w), sharded over GPUs
    opt = model.total_params * 16.0 * 2 / gpus / (hw.hbm_bandwidth_bytes_per_s * 0.8)
    return PhaseCost(f / (gpus * peak * mfu) + opt, f, mfu)


def logprob_time(model: ModelSpec, hw: HardwareProfile, gpus: int, seq_tokens: np.ndarray, passes: int,
                 mfu: float | None = None) -> PhaseCost:
    mfu = mfu or DEFAULT_MFU[("logprob", model.architecture)]
    f = passes * step_flops(model, seq_tokens, forward_only=True)
    return PhaseCost(f / (gpus * hw.peak_flops["bf16"] * mfu), f, mfu)


def refit_time_s(weight_bytes_per_gen_gpu: float, colocated: bool, hw: HardwareProfile,
                 kv_pool_bytes_per_gpu: float = 0.0, cross_domain: bool = False) -> float:
    """Weight sync: colocated = IPC copy on the same GPUs + KV pool re-map on wake-up;
    separate pools = the same plus the transfer over the scale-out network. ``cross_domain``: a colocated
    refit whose resharding crosses NVLink domains (the training model's shards or the rollout replica span
    nodes, as for 235B-671B models on H100): each generation GPU's shard also crosses its NIC once (NeMo-RL's
    NCCL reshard; its measured DeepSeek-V3 refit is 2-2.8 s, shared/reference/hardware-and-models.md)."""
    t = REFIT["fixed_s"] + weight_bytes_per_gen_gpu * REFIT["s_per_byte"]
    if colocated:
        t += kv_pool_bytes_per_gpu / WAKE_MAP_BYTES_PER_S
        if cross_domain:
            t += weight_bytes_per_gen_gpu / hw.scaleout_bandwidth_bytes_per_s
    else:
        t += weight_bytes_per_gen_gpu / hw.scaleout_bandwidth_bytes_per_s
    return t


__all__ = ["DEFAULT_MFU", "PhaseCost", "REFIT", "logprob_time", "refit_time_s", "step_flops", "training_time", "BYTES"]
