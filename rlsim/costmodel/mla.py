"""Multi-head latent attention (DeepSeek-V2/V3) priced for generation (vLLM) and training (Megatron).

An MLA layer projects the hidden state down to a query latent (``q_lora_rank``) and a KV latent
(``kv_lora_rank``) plus one shared rope key (``qk_rope_head_dim``), and back up per head. What it costs:

- KV cache: only the latent and the rope key are cached, ``kv_lora_rank + qk_rope_head_dim`` values per
  token per layer (576 for DeepSeek-V3: 70 KB per token at bf16 over 61 layers), not heads x head_dim. The
  latent is one "head" shared by all query heads, so tensor parallelism splits the query heads but every
  TP rank caches the whole latent (vLLM's MLA with TP): the KV bytes per token per GPU do not shrink with TP.
- Decode (vLLM's MLA decode, FlashMLA-style, "absorbed"): the key up-projection W_UK is folded into each
  query (q_nope -> the latent space, a per-head 128 -> 512 GEMM), attention runs MQA-like over the cached
  latent + rope key (scores over 576 values, output over 512, per local head), and W_UV maps the output
  latent back to v_head_dim before o_proj. Per (query head, cached token): 2 x 576 + 2 x 512 FLOPs; the
  cache is read once per sequence for all local heads.
- Prefill and training ("uncompressed"): k_nope and v are expanded from the latent by kv_b (a GEMM) and
  attention is ordinary MHA with query/key width qk_nope + qk_rope (192) and value width v_head_dim (128).
- Projections as GEMMs: q_a (h -> q_lora) and kv_a (h -> kv_lora + rope) are replicated on every TP rank
  (vLLM's fused_qkv_a_proj, Megatron's down projections), q_b, kv_b and o are split over TP.

The attention kernels go through the timer's attention predictor (calibrated on FlashAttention over
head_dim 128; MLA's kernels are priced at the efficiency measured for the nearest GQA shapes, the roofline
carrying the magnitude), with head counts and widths chosen so that its FLOPs and KV bytes are MLA's exactly:
decode as one KV head of width (kv_lora + rope) / 2 read twice (= the latent read once) and
``heads x 2176 / (4 x 288)`` effective query heads; prefill as MHA of width (qk + v) / 2.
Rollout iterations that mix prefill chunks with decode are priced with the decode (absorbed) form; the
prompts of RL math data sets are short, so the prefill share is small.
"""

from __future__ import annotations

from ..catalog import ModelSpec
from .timer import BYTES, KernelTimer


def latent_width(m: ModelSpec) -> int:
    return m.kv_lora_rank + m.qk_rope_head_dim


def kv_bytes_per_token_per_gpu(m: ModelSpec, kv_dtype: str = "bf16", n_layers: int | None = None) -> float:
    """Cached bytes per token on each GPU of a replica (the latent is replicated over TP ranks)."""
    return (m.num_hidden_layers if n_layers is None else n_layers) * latent_width(m) * BYTES[kv_dtype]


def attention_params_per_gpu(m: ModelSpec, tp: int) -> float:
    """Attention parameters of one layer held by one TP rank (down projections replicated)."""
    h, n = m.hidden_size, m.num_attention_heads
    qk = m.qk_nope_head_dim + m.qk_rope_head_dim
    replicated = h * latent_width(m) + (h * m.q_lora_rank if m.q_lora_rank else 0)
    split = ((m.q_lora_rank or h) * n * qk + m.kv_lora_rank * n * (m.qk_nope_head_dim + m.v_head_dim)
             + n * m.v_head_dim * h)
    return replicated + split / tp


def heads_per_gpu(m: ModelSpec, tp: int) -> float:
    return max(m.num_attention_heads / tp, 1.0)


def decode_attention_s(timer: KernelTimer, m: ModelSpec, tp: int, seqs, kv_read, qk_pairs, q_tokens,
                       kv_dtype: str = "bf16"):
    """Absorbed MLA attention of one layer on one GPU (MQA over the latent cache)."""
    w = latent_width(m)
    hd = w / 2.0  # one KV "head" of this width, read as K and V = the latent read once
    flops_per_pair_head = 2.0 * w + 2.0 * m.kv_lora_rank
    n_q = heads_per_gpu(m, tp) * flops_per_pair_head / (4.0 * hd)
    return timer.attention_s("decode", seqs, kv_read, qk_pairs, q_tokens, n_q, 1, hd, kv_dtype)


def mha_attention_s(timer: KernelTimer, m: ModelSpec, heads: float, seqs, kv_read, qk_pairs, q_tokens):
    """Uncompressed MLA attention (prefill / training forward): MHA of query/key width qk_nope + qk_rope and
    value width v_head_dim over ``heads`` local heads."""
    hd = (m.qk_nope_head_dim + m.qk_rope_head_dim + m.v_head_dim) / 2.0
    return timer.attention_s("prefill", seqs, kv_read, qk_pairs, q_tokens, heads, heads, hd, "bf16")


def projection_gemms(m: ModelSpec, tp: int, absorbed: bool) -> list[tuple[int, int]]:
    """(n, k) of the GEMMs of one MLA layer per token on one TP rank: y[T, n] = x[T, k] @ W[k, n].
    ``absorbed``: decode (W_UK into the query, W_UV after attention) instead of expanding K/V with kv_b."""
    h = m.hidden_size
    hl = int(max(m.num_attention_heads // tp, 1))
    qk = m.qk_nope_head_dim + m.qk_rope_head_dim
    g = [(latent_width(m), h)]  # kv_a: latent + rope key (replicated)
    if m.q_lora_rank:
        g += [(m.q_lora_rank, h), (hl * qk, m.q_lora_rank)]  # q_a (replicated), q_b
    else:
        g += [(hl * qk, h)]
    if absorbed:  # per-head bmm's priced as one GEMM of the same FLOPs and weight bytes
        g += [(hl * m.kv_lora_rank, m.qk_nope_head_dim), (hl * m.v_head_dim, m.kv_lora_rank)]
    else:
        g += [(hl * (m.qk_nope_head_dim + m.v_head_dim), m.kv_lora_rank)]  # kv_b
    g += [(h, hl * m.v_head_dim)]  # o_proj
    return g


def projections_s(timer: KernelTimer, m: ModelSpec, tp: int, T, dtype: str, absorbed: bool):
    return sum(timer.gemm_s(T, n, k, dtype) for n, k in projection_gemms(m, tp, absorbed))


def elementwise_ops(m: ModelSpec, tp: int) -> list[tuple[str, int, int]]:
    """Elementwise kernels of an MLA layer per token: the layer's two norms plus the q and kv latent norms,
    rope over the local heads' rope dims and the shared rope key, residual adds, the latent cache write."""
    h = m.hidden_size
    hl = int(max(m.num_attention_heads // tp, 1))
    ops = [("rmsnorm", h, 2), ("rmsnorm", m.kv_lora_rank, 1), ("rope", (hl + 1) * m.qk_rope_head_dim, 1),
           ("residual_add", h, 2), ("kv_cache_write", latent_width(m) // 2, 1)]
    if m.q_lora_rank:
        ops.append(("rmsnorm", m.q_lora_rank, 1))
    return ops


__all__ = ["attention_params_per_gpu", "decode_attention_s", "elementwise_ops", "heads_per_gpu",
           "kv_bytes_per_token_per_gpu", "latent_width", "mha_attention_s", "projection_gemms", "projections_s"]
