"""GPU memory of a generation replica: weights + KV cache (+ draft weights and draft KV).

Decides how many KV tokens a replica holds; a configuration that does not fit fails with the
numbers (needed vs available).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..catalog import DraftSpec, HardwareProfile, ModelSpec
from ..errors import ConfigurationError
from . import mla
from .iteration import ReplicaLayout
from .timer import BYTES

# Memory vLLM keeps per GPU outside weights and KV: activations of the largest batch, CUDA-graph
# pools, NCCL buffers, sampler workspace. Engineering estimate (vLLM's profiling run typically
# reserves a few GiB on a 80-190 GB GPU); documented, not measured.
NON_KV_RESERVE_BYTES = 4.0e9


@dataclass(frozen=True)
class ReplicaMemory:
    weight_bytes_per_gpu: float
    draft_weight_bytes_per_gpu: float
    kv_bytes_per_token_per_gpu: float
    usable_bytes_per_gpu: float
    kv_capacity_tokens: int  # tokens of KV the whole replica holds (per data-parallel rank summed)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def weight_bytes_per_gpu(model: ModelSpec, layout: ReplicaLayout, dtype: str) -> float:
    b = BYTES[dtype]
    tp, ep = layout.tensor_parallel_size, layout.expert_parallel_size
    attn = model.num_hidden_layers * (mla.attention_params_per_gpu(model, tp) if model.is_mla
                                      else model.attention_params / tp)
    if model.is_moe:
        n_moe = model.n_moe_layers
        experts = n_moe * model.num_experts * 3 * model.hidden_size * model.moe_intermediate_size
        experts /= ep if ep > 1 else tp
        # shared experts and the leading dense layers' MLPs are split over TP
        experts += (n_moe * 3 * model.hidden_size * model.shared_expert_intermediate
                    + model.n_dense_layers * model.dense_mlp_params) / tp
        router = n_moe * model.hidden_size * model.num_experts
    else:
        experts = model.num_hidden_layers * model.mlp_params_per_layer / tp
        router = 0
    # embeddings and LM head stay in bf16 in FP8 checkpoints; vocab-parallel over TP
    emb = model.embedding_params / tp * 2.0
    return (attn + experts) * b + router * 2.0 + emb


def replica_memory(model: ModelSpec, hardware: HardwareProfile, layout: ReplicaLayout, dtype: str, kv_dtype: str,
                   gpu_memory_utilization: float, draft: DraftSpec | ModelSpec | None = None,
                   method: str = "none", min_tokens_needed: int = 1) -> ReplicaMemory:
    tp = layout.tensor_parallel_size
    w = weight_bytes_per_gpu(model, layout, dtype)
    if model.is_mla:  # the latent, replicated on every TP rank (rlsim/costmodel/mla.py)
        kv_tok = mla.kv_bytes_per_token_per_gpu(model, kv_dtype)
    else:
        kv_heads = max(model.num_key_value_heads // tp, 1)
        kv_tok = 2 * model.num_hidden_layers * kv_heads * model.head_dim * BYTES[kv_dtype]
    dw = 0.0
    if draft is not None and method in ("eagle3", "mtp", "draft-model"):
        if method == "mtp" and isinstance(draft, ModelSpec):  # the model's own MTP module(s), not a second model
            dw = draft.mtp_params * 2.0 / tp
            d_layers = draft.mtp_num_layers
        else:
            dw = (draft.params if isinstance(draft, DraftSpec) else draft.total_params) * 2.0 / tp
            d_layers = draft.num_hidden_layers
        if getattr(draft, "is_mla", False):
            kv_tok += mla.kv_bytes_per_token_per_gpu(draft, kv_dtype, d_layers)
        else:
            dkv = max(draft.num_key_value_heads // tp, 1)
            kv_tok += 2 * d_layers * dkv * draft.head_dim * BYTES[kv_dtype]
    usable = hardware.hbm_capacity_bytes * gpu_memory_utilization
    free = usable - w - dw - NON_KV_RESERVE_BYTES
    # one data-parallel rank's KV lives on its TP group; the replica holds dp of them
    cap = int(max(free, 0) // kv_tok) * layout.data_parallel_size
    if cap < min_tokens_needed:
        raise ConfigurationError(
            f"{model.name} does not fit: per GPU needs weights {w/1e9:.1f} GB + draft {dw/1e9:.1f} GB + reserve "
            f"{NON_KV_RESERVE_BYTES/1e9:.1f} GB + KV for one sequence ({min_tokens_needed} tokens x {kv_tok/1e3:.1f} kB "
            f"= {min_tokens_needed*kv_tok/1e9:.2f} GB); available {usable/1e9:.1f} GB "
            f"({hardware.hbm_capacity_bytes/1e9:.0f} GB x gpu_memory_utilization {gpu_memory_utilization}) on "
            f"{hardware.name}. Raise generation.tensor_parallel_size (now {tp}), use fp8, or raise gpu_memory_utilization")
    return ReplicaMemory(w, dw, kv_tok, usable, cap)
