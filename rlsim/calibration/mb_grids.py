"""Measurement grids of the calibration microbenchmarks (pure Python, no torch).

Model shapes come from the catalog YAMLs (workloads/models/*.yaml and
workloads/drafts/*.yaml), read with plain ``yaml.safe_load``.
"""
from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_WORKLOADS = REPO_ROOT / "workloads"

# ----------------------------------------------------------------------- GEMM
GEMM_M_FULL = [1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536,
               2048, 4096, 8192, 16384]
GEMM_M_QUICK = [1, 16, 128, 1024, 8192]
TP_FULL = [1, 2, 4, 8]
TP_QUICK = [1, 8]
GEMM_DTYPES = ["bf16", "fp8"]

# ------------------------------------------------------------------ attention
ATTN_HEADS_FULL = [(32, 8), (16, 4), (8, 2), (16, 1), (8, 1)]
ATTN_HEADS_QUICK = [(32, 8), (16, 1)]
ATTN_BATCH_FULL = [1, 4, 16, 64, 256, 512]
ATTN_BATCH_QUICK = [1, 64, 512]
ATTN_KV_FULL = [256, 1024, 4096, 16384]
ATTN_KV_QUICK = [1024, 16384]
VERIFY_Q_FULL = [2, 4, 6, 8]
VERIFY_Q_QUICK = [4]
CHUNK_Q = [512, 2048]
LOGNORMAL_SIGMA = 1.0
LOGNORMAL_CAP = 32768
KV_LIMIT_BYTES = 40e9
PREFILL_MAX_TOKENS = 65536
CHUNK_MAX_Q_TOKENS = 32768
CHUNK_BATCH = [1, 4, 16]
HEAD_DIM = 128

# ------------------------------------------------------------------------ MoE
MOE_MODELS = [(2048, 768), (4096, 1536)]  # Qwen3-30B-A3B, Qwen3-235B-A22B
MOE_GLOBAL_EXPERTS = 128
MOE_TOPK = 8
MOE_LOCAL_FULL = [128, 32, 16]
MOE_LOCAL_QUICK = [128, 16]
MOE_TOKENS_FULL = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384]
MOE_TOKENS_QUICK = [1, 16, 256, 4096]

# ---------------------------------------------------------------- elementwise
ELEM_OPS = ["rmsnorm", "silu_mul", "rope", "residual_add", "kv_cache_write"]
ELEM_TOKENS_FULL = [1, 8, 64, 512, 4096, 16384]
ELEM_TOKENS_QUICK = [1, 512, 16384]
ELEM_HIDDEN_FULL = [2048, 4096, 5120, 8192]
ELEM_HIDDEN_QUICK = [4096]

# ------------------------------------------------------------------- sampling
SAMPLING_OPS = ["lm_head_softmax", "sample", "rejection_sample", "argmax"]
SAMPLING_ROWS_FULL = [1, 8, 32, 128, 512, 2048, 8192]
SAMPLING_ROWS_QUICK = [1, 128, 8192]
SAMPLING_VOCAB_FULL = [32000, 128256, 151936]
SAMPLING_VOCAB_QUICK = [151936]

# ------------------------------------------------------------------- overhead
OVERHEAD_N = [100, 1000]

# ---------------------------------------------------------------- collectives
COLL_OPS = ["all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast"]
COLL_SIZES_FULL = sorted({4 ** i * 4096 for i in range(0, 10)} | {
    128 * 1024, 2 * 1024 ** 2, 32 * 1024 ** 2, 128 * 1024 ** 2})
COLL_SIZES_FULL = [s for s in COLL_SIZES_FULL if s <= 256 * 1024 ** 2]
COLL_SIZES_QUICK = [4096, 1024 ** 2, 64 * 1024 ** 2]


# ------------------------------------------------------------------ catalog IO
def load_catalog(workloads: Path | None = None) -> tuple[dict, dict]:
    """Returns ({model name: cfg}, {draft name: cfg}) read with yaml.safe_load."""
    import yaml  # pyyaml

    root = Path(workloads) if workloads else DEFAULT_WORKLOADS
    models, drafts = {}, {}
    for sub, dst in (("models", models), ("drafts", drafts)):
        d = root / sub
        if not d.is_dir():
            continue
        for p in sorted(d.glob("*.yaml")):
            with open(p) as f:
                cfg = yaml.safe_load(f) or {}
            dst[cfg.get("name", p.stem)] = cfg
    return models, drafts


def _i(cfg: dict, key: str, default: int = 0) -> int:
    v = cfg.get(key, default)
    return int(v) if v is not None else default


# ------------------------------------------------------------------------ GEMM
def gemm_shapes(models: dict, drafts: dict, tps=TP_FULL) -> list[tuple[int, int, str]]:
    """Deduplicated (n, k, first label) of the linear layers of every model at each TP,
    plus EAGLE-3 draft shapes (fc, draft layer, reduced-vocab LM head) at TP 1."""
    seen: dict[tuple[int, int], str] = {}

    def add(n: int, k: int, label: str) -> None:
        if n > 0 and k > 0 and (n, k) not in seen:
            seen[(n, k)] = label

    for name, c in models.items():
        h = _i(c, "hidden_size")
        qh = _i(c, "num_attention_heads")
        kvh = _i(c, "num_key_value_heads", qh)
        hd = _i(c, "head_dim") or (h // qh if qh else 0)
        inter = _i(c, "intermediate_size")
        vocab = _i(c, "vocab_size")
        ne = _i(c, "num_experts")
        for tp in tps:
            if qh % tp:
                continue
            q_l = qh // tp
            kv_l = max(kvh // tp, 1)
            add((q_l + 2 * kv_l) * hd, h, f"{name}:qkv:tp{tp}")
            add(h, q_l * hd, f"{name}:o:tp{tp}")
            if inter > 0 and inter % tp == 0:
                add(2 * inter // tp, h, f"{name}:gate_up:tp{tp}")
                add(h, inter // tp, f"{name}:down:tp{tp}")
            if vocab > 0 and vocab % tp == 0:
                add(vocab // tp, h, f"{name}:lm_head:tp{tp}")
        if ne > 0:
            add(ne, h, f"{name}:router:tp1")
    for name, c in drafts.items():
        h = _i(c, "hidden_size")
        qh = _i(c, "num_attention_heads")
        kvh = _i(c, "num_key_value_heads", qh)
        hd = _i(c, "head_dim") or (h // qh if qh else 0)
        inter = _i(c, "intermediate_size")
        nf = _i(c, "fused_hidden_states", 3)
        dv = _i(c, "draft_vocab_size") or _i(c, "vocab_size")
        add(h, nf * h, f"{name}:fc:tp1")
        add(dv, h, f"{name}:lm_head:tp1")
        # EAGLE-3's decoder layer takes [embedding; fused hidden] = 2*hidden as input
        add((qh + 2 * kvh) * hd, 2 * h, f"{name}:qkv:tp1")
        add(h, qh * hd, f"{name}:o:tp1")
        if inter > 0:
            add(2 * inter, h, f"{name}:gate_up:tp1")
            add(h, inter, f"{name}:down:tp1")
    return [(n, k, lab) for (n, k), lab in seen.items()]


def gemm_grid(models: dict, drafts: dict, quick: bool = False) -> list[dict]:
    tps = TP_QUICK if quick else TP_FULL
    ms = GEMM_M_QUICK if quick else GEMM_M_FULL
    shapes = gemm_shapes(models, drafts, tps)
    pts = []
    for dtype in GEMM_DTYPES:
        for n, k, lab in shapes:
            for m in ms:
                pts.append({"dtype": dtype, "m": m, "n": n, "k": k, "source": lab})
    return pts


# ------------------------------------------------------------------- attention
def kv_lengths(dist: str, batch: int, mean: int, min_len: int, seed_key: str,
               sigma: float = LOGNORMAL_SIGMA, cap: int = LOGNORMAL_CAP) -> list[int]:
    """Per-sequence KV lengths (deterministic given the key)."""
    if dist == "uniform":
        return [int(mean)] * batch
    rng = random.Random(zlib.crc32(seed_key.encode()))
    mu = math.log(mean) - sigma * sigma / 2.0
    return [int(min(max(round(rng.lognormvariate(mu, sigma)), min_len), cap))
            for _ in range(batch)]


@dataclass
class AttnPoint:
    phase: str
    batch: int
    q_len: int          # queries per sequence (prefill full: mean prompt length)
    kv_lens: list       # total keys per sequence (including the new queries)
    q_lens: list        # queries per sequence
    kv_dist: str
    n_q_heads: int
    n_kv_heads: int
    head_dim: int
    chunked: int

    def row(self) -> dict:
        tot_kv = sum(self.kv_lens)
        return {
            "phase": self.phase, "batch": self.batch, "q_len": self.q_len,
            "kv_len_mean": round(tot_kv / self.batch, 1),
            "kv_len_min": min(self.kv_lens), "kv_len_max": max(self.kv_lens),
            "kv_dist": self.kv_dist, "total_kv_tokens": tot_kv,
            "total_q_tokens": sum(self.q_lens), "n_q_heads": self.n_q_heads,
            "n_kv_heads": self.n_kv_heads, "head_dim": self.head_dim, "chunked": self.chunked,
        }

    def kv_bytes(self) -> float:
        return sum(self.kv_lens) * self.n_kv_heads * self.head_dim * 2 * 2


def attention_grid(quick: bool = False, kv_limit_bytes: float = KV_LIMIT_BYTES) -> list[AttnPoint]:
    heads = ATTN_HEADS_QUICK if quick else ATTN_HEADS_FULL
    batches = ATTN_BATCH_QUICK if quick else ATTN_BATCH_FULL
    kvs = ATTN_KV_QUICK if quick else ATTN_KV_FULL
    vq = VERIFY_Q_QUICK if quick else VERIFY_Q_FULL
    pts: list[AttnPoint] = []
    for hq, hkv in heads:
        # decode and verify
        for phase, qs in (("decode", [1]), ("verify", vq)):
            for q in qs:
                for b in batches:
                    for mean in kvs:
                        for dist in ("uniform", "lognormal"):
                            if dist == "lognormal" and b < 4:
                                continue
                            lens = kv_lengths(dist, b, mean, max(q + 16, 32),
                                              f"{phase}-{b}-{mean}-{q}-{dist}")
                            pts.append(AttnPoint(phase, b, q, lens, [q] * b, dist, hq, hkv,
                                                 HEAD_DIM, 0))
        # prefill over the whole prompt (q_len = kv_len per sequence)
        for b in batches:
            for mean in kvs:
                if b * mean > PREFILL_MAX_TOKENS:
                    continue
                for dist in ("uniform", "lognormal"):
                    if dist == "lognormal" and b < 4:
                        continue
                    lens = kv_lengths(dist, b, mean, 16, f"prefill-{b}-{mean}-{dist}")
                    # keep total tokens within the cap (lognormal tails)
                    pts.append(AttnPoint("prefill", b, mean, lens, list(lens), dist, hq, hkv,
                                         HEAD_DIM, 0))
        # chunked prefill: a chunk of c new tokens at the end of a longer context
        for c in (CHUNK_Q[:1] if quick else CHUNK_Q):
            for b in CHUNK_BATCH if not quick else [1, 4]:
                if b * c > CHUNK_MAX_Q_TOKENS:
                    continue
                for mean in kvs:
                    if mean <= c:
                        continue
                    for dist in ("uniform", "lognormal"):
                        if dist == "lognormal" and b < 4:
                            continue
                        lens = kv_lengths(dist, b, mean, c + 16, f"chunk-{b}-{mean}-{c}-{dist}")
                        pts.append(AttnPoint("prefill", b, c, lens, [c] * b, dist, hq, hkv,
                                             HEAD_DIM, 1))
    return [p for p in pts if p.kv_bytes() <= kv_limit_bytes]


# long contexts (reasoning RL at 32K-128K tokens): decode, whole-prompt prefill and chunked prefill at the end of
# a long context, for the head layouts of Qwen3-8B (TP 1) and Qwen3-235B-A22B (TP 4 / 8)
ATTN_KV_LONG = [32768, 65536, 131072]
ATTN_HEADS_LONG = [(32, 8), (16, 1), (8, 1)]
ATTN_BATCH_LONG = [1, 4, 16, 64]


def attention_long_grid(kv_limit_bytes: float = KV_LIMIT_BYTES) -> list[AttnPoint]:
    pts: list[AttnPoint] = []
    for hq, hkv in ATTN_HEADS_LONG:
        for b in ATTN_BATCH_LONG:
            for mean in ATTN_KV_LONG:
                lens = kv_lengths("uniform", b, mean, 32, f"decode-long-{b}-{mean}")
                pts.append(AttnPoint("decode", b, 1, lens, [1] * b, "uniform", hq, hkv, HEAD_DIM, 0))
        for mean in ATTN_KV_LONG:
            if mean <= PREFILL_MAX_TOKENS:
                lens = kv_lengths("uniform", 1, mean, 16, f"prefill-long-1-{mean}")
                pts.append(AttnPoint("prefill", 1, mean, lens, list(lens), "uniform", hq, hkv, HEAD_DIM, 0))
            for b in (1, 4):
                c = 2048
                lens = kv_lengths("uniform", b, mean, c + 16, f"chunk-long-{b}-{mean}-{c}")
                pts.append(AttnPoint("prefill", b, c, lens, [c] * b, "uniform", hq, hkv, HEAD_DIM, 1))
    return [p for p in pts if p.kv_bytes() <= kv_limit_bytes]


# ------------------------------------------------------------------------ MoE
def moe_grid(quick: bool = False) -> list[dict]:
    pts = []
    for hidden, inter in MOE_MODELS:
        for e in (MOE_LOCAL_QUICK if quick else MOE_LOCAL_FULL):
            for t in (MOE_TOKENS_QUICK if quick else MOE_TOKENS_FULL):
                pts.append({"dtype": "bf16", "tokens": t, "num_experts": e, "top_k": MOE_TOPK,
                            "hidden": hidden, "moe_intermediate": inter})
    return pts


def expected_distinct_experts(tokens: int, experts: int = MOE_GLOBAL_EXPERTS,
                              top_k: int = MOE_TOPK, local: int | None = None) -> float:
    """E * (1 - (1 - k/E)^T) over the global experts, scaled to the local share."""
    g = experts * (1.0 - (1.0 - top_k / experts) ** tokens)
    return g * (local if local is not None else experts) / experts


# --------------------------------------------------------------- small tables
def elementwise_grid(quick: bool = False) -> list[dict]:
    return [{"op": op, "tokens": t, "hidden": h}
            for op in ELEM_OPS
            for h in (ELEM_HIDDEN_QUICK if quick else ELEM_HIDDEN_FULL)
            for t in (ELEM_TOKENS_QUICK if quick else ELEM_TOKENS_FULL)]


def sampling_grid(quick: bool = False) -> list[dict]:
    return [{"op": op, "rows": r, "vocab": v}
            for op in SAMPLING_OPS
            for v in (SAMPLING_VOCAB_QUICK if quick else SAMPLING_VOCAB_FULL)
            for r in (SAMPLING_ROWS_QUICK if quick else SAMPLING_ROWS_FULL)]


def overhead_grid(quick: bool = False) -> list[dict]:
    pts = [{"mode": mode, "n_kernels": n} for mode in ("eager", "graph") for n in OVERHEAD_N]
    pts += [{"mode": "python_step", "n_kernels": 0}, {"mode": "sync", "n_kernels": 1}]
    return pts


def collectives_grid(ranks: int, quick: bool = False) -> list[dict]:
    sizes = COLL_SIZES_QUICK if quick else COLL_SIZES_FULL
    return [{"op": op, "ranks": ranks, "bytes": s} for op in COLL_OPS for s in sizes
            if s % (ranks * 2) == 0]


def busbw(op: str, nbytes: int, ranks: int, t: float) -> tuple[float, float]:
    """(algbw, busbw) in bytes/s, nccl-tests conventions.

    `nbytes` is the per-rank message: the tensor all-reduced / broadcast / sent by
    all_to_all, each rank's contribution to all_gather, each rank's input of
    reduce_scatter.
    """
    n = ranks
    if op == "all_gather":
        alg = nbytes * n / t
        return alg, alg * (n - 1) / n
    alg = nbytes / t
    if op == "all_reduce":
        return alg, alg * 2 * (n - 1) / n
    if op in ("reduce_scatter", "all_to_all"):
        return alg, alg * (n - 1) / n
    return alg, alg  # broadcast
