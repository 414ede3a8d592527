"""Paged attention over the KV pool, GQA packed (Triton flash-decoding) + float32 reference.

Work items.  One attention call serves a list of *work items*; item w is
  (row[w], qstart[w], nq[w], pos0[w]):
the query tokens qstart .. qstart+nq-1 of the token batch belong to the sequence whose
block-table row is `row`, at positions pos0 .. pos0+nq-1; they attend to the cached keys
0 .. pos0+nq-1 of that sequence, causally (query t sees keys <= pos0+t: bottom-right
aligned).  A decode/verify sequence is one item (nq = k+1); a prefill chunk is split into
items of 16 tokens.

GQA packing.  A program handles one (item, kv head, split): its query tile holds the
G = n_heads / n_kv_heads query heads that share the kv head times TILE_T tokens
(rows = G * TILE_T), so each KV block is read once per kv head, as vLLM's FA3 / FlashInfer
kernels do.  Keys are processed in blocks of 64 through the block table (pages of 16).

Flash-decoding split.  `nsplit` programs per (item, head) each take a contiguous part of
the key range and write a partial (out, lse); a second kernel merges them.  All lengths
and tables are device tensors and the grid depends only on python ints, so the call is
CUDA-graph capturable.
"""
from __future__ import annotations

import math

import torch

from . import ops
from .ops import HAVE_TRITON, next_pow2, use_triton

PAGE = 16
BLOCK_N = 64

if HAVE_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _paged_attn_kernel(Q, KC, VC, O, OP, LSE, BT, W_ROW, W_QS, W_NQ, W_POS,
                           nsplit, sm_scale, bt_stride,
                           HQ: tl.constexpr, HKV: tl.constexpr, G: tl.constexpr,
                           D: tl.constexpr, TILE_T: tl.constexpr, BLOCK_N: tl.constexpr,
                           PAGE: tl.constexpr):
        w = tl.program_id(0)
        hk = tl.program_id(1)
        sid = tl.program_id(2)
        M: tl.constexpr = G * TILE_T
        row = tl.load(W_ROW + w).to(tl.int64)
        qs = tl.load(W_QS + w)
        nq = tl.load(W_NQ + w)
        pos0 = tl.load(W_POS + w)
        kv_end = pos0 + nq
        per = tl.cdiv(tl.cdiv(kv_end, nsplit), BLOCK_N) * BLOCK_N
        lo = sid * per
        hi = tl.minimum(lo + per, kv_end)
        offs_m = tl.arange(0, M)
        t = offs_m // G
        g = offs_m % G
        qvalid = t < nq
        offs_d = tl.arange(0, D)
        tok = (qs + t).to(tl.int64)
        head = hk * G + g
        q_ptr = Q + tok[:, None] * (HQ * D) + head[:, None] * D + offs_d[None, :]
        q = tl.load(q_ptr, mask=qvalid[:, None], other=0.0)
        qpos = pos0 + t
        m_i = tl.full([M], float("-inf"), tl.float32)
        l_i = tl.zeros([M], tl.float32)
        acc = tl.zeros([M, D], tl.float32)
        offs_n = tl.arange(0, BLOCK_N)
        for start in range(lo, hi, BLOCK_N):
            kp = start + offs_n
            km = kp < hi
            page = tl.load(BT + row * bt_stride + kp // PAGE, mask=km, other=0).to(tl.int64)
            slot = page * PAGE + (kp % PAGE)
            kv_off = slot[:, None] * (HKV * D) + hk * D + offs_d[None, :]
            k = tl.load(KC + kv_off, mask=km[:, None], other=0.0)
            s = tl.dot(q, tl.trans(k)) * sm_scale
            ok = (kp[None, :] <= qpos[:, None]) & km[None, :]
            s = tl.where(ok, s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, axis=1))
            m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
            alpha = tl.exp(m_i - m_use)
            p = tl.exp(s - m_use[:, None])
            l_i = l_i * alpha + tl.sum(p, axis=1)
            v = tl.load(VC + kv_off, mask=km[:, None], other=0.0)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
            m_i = m_new
        l_safe = tl.where(l_i == 0.0, 1.0, l_i)
        out = acc / l_safe[:, None]
        if nsplit == 1:
            o_ptr = O + tok[:, None] * (HQ * D) + head[:, None] * D + offs_d[None, :]
            tl.store(o_ptr, out.to(O.dtype.element_ty), mask=qvalid[:, None])
        else:
            base = ((w * nsplit + sid) * HKV + hk).to(tl.int64)
            tl.store(OP + base * (M * D) + offs_m[:, None] * D + offs_d[None, :], out)
            lse = tl.where(l_i == 0.0, float("-inf"), m_i + tl.log(l_safe))
            tl.store(LSE + base * M + offs_m, lse)

    @triton.jit
    def _attn_merge_kernel(OP, LSE, O, W_QS, W_NQ, nsplit,
                           HQ: tl.constexpr, HKV: tl.constexpr, G: tl.constexpr,
                           D: tl.constexpr, TILE_T: tl.constexpr):
        w = tl.program_id(0)
        hk = tl.program_id(1)
        M: tl.constexpr = G * TILE_T
        offs_m = tl.arange(0, M)
        offs_d = tl.arange(0, D)
        t = offs_m // G
        g = offs_m % G
        qs = tl.load(W_QS + w)
        nq = tl.load(W_NQ + w)
        qvalid = t < nq
        m = tl.full([M], float("-inf"), tl.float32)
        for s in range(0, nsplit):
            base = ((w * nsplit + s) * HKV + hk).to(tl.int64)
            m = tl.maximum(m, tl.load(LSE + base * M + offs_m))
        m_use = tl.where(m == float("-inf"), 0.0, m)
        acc = tl.zeros([M, D], tl.float32)
        den = tl.zeros([M], tl.float32)
        for s in range(0, nsplit):
            base = ((w * nsplit + s) * HKV + hk).to(tl.int64)
            wt = tl.exp(tl.load(LSE + base * M + offs_m) - m_use)
            o = tl.load(OP + base * (M * D) + offs_m[:, None] * D + offs_d[None, :])
            acc += wt[:, None] * o
            den += wt
        out = acc / tl.where(den == 0.0, 1.0, den)[:, None]
        tok = (qs + t).to(tl.int64)
        head = hk * G + g
        tl.store(O + tok[:, None] * (HQ * D) + head[:, None] * D + offs_d[None, :],
                 out.to(O.dtype.element_ty), mask=qvalid[:, None])


def tile_for(nq_max: int, group: int) -> int:
    """Query tokens per tile: a power of two >= nq_max with group * tile >= 16 (tl.dot)."""
    return max(next_pow2(nq_max), next_pow2(max(1, math.ceil(16 / group))))


def choose_nsplit(n_items: int, n_kv_heads: int, n_sm: int = 132, max_split: int = 16) -> int:
    """Split the key range so that about 2 programs per SM run (flash-decoding)."""
    progs = max(1, n_items * n_kv_heads)
    return int(max(1, min(max_split, math.ceil(2 * n_sm / progs))))


def paged_attention(q, kc, vc, out, bt, w_row, w_qs, w_nq, w_pos, n_items: int,
                    tile_t: int, nsplit: int, scale: float, n_kv_heads: int):
    """q [T, HQ, D]; kc, vc [slots, HKV, D]; writes out[qstart:qstart+nq] of every item."""
    if n_items == 0:
        return out
    T, HQ, D = q.shape
    G = HQ // n_kv_heads
    if use_triton(q):
        M = G * tile_t
        if nsplit > 1:
            op = torch.empty((n_items * nsplit * n_kv_heads * M * D,), dtype=torch.float32,
                             device=q.device)
            lse = torch.empty((n_items * nsplit * n_kv_heads * M,), dtype=torch.float32,
                              device=q.device)
        else:
            op = lse = out  # unused
        nw = 4 if M <= 32 else 8
        _paged_attn_kernel[(n_items, n_kv_heads, nsplit)](
            q, kc, vc, out, op, lse, bt, w_row, w_qs, w_nq, w_pos, nsplit, scale, bt.stride(0),
            HQ=HQ, HKV=n_kv_heads, G=G, D=D, TILE_T=tile_t, BLOCK_N=BLOCK_N, PAGE=PAGE,
            num_warps=nw, num_stages=2)
        if nsplit > 1:
            _attn_merge_kernel[(n_items, n_kv_heads)](op, lse, out, w_qs, w_nq, nsplit,
                                                      HQ=HQ, HKV=n_kv_heads, G=G, D=D,
                                                      TILE_T=tile_t, num_warps=4)
        return out
    return paged_attention_ref(q, kc, vc, out, bt, w_row, w_qs, w_nq, w_pos, n_items, scale,
                               n_kv_heads)


def paged_attention_ref(q, kc, vc, out, bt, w_row, w_qs, w_nq, w_pos, n_items, scale,
                        n_kv_heads):
    """float32 reference of the same function (loops over items on the host)."""
    T, HQ, D = q.shape
    G = HQ // n_kv_heads
    rows = w_row[:n_items].tolist()
    qss = w_qs[:n_items].tolist()
    nqs = w_nq[:n_items].tolist()
    poss = w_pos[:n_items].tolist()
    ar = torch.arange(PAGE, device=q.device)
    for row, qs, nq, pos0 in zip(rows, qss, nqs, poss):
        if nq <= 0:
            continue
        L = pos0 + nq
        pages = bt[row, : (L + PAGE - 1) // PAGE].long()
        slots = (pages[:, None] * PAGE + ar[None, :]).reshape(-1)[:L]
        K = kc[slots].float().repeat_interleave(G, dim=1)  # [L, HQ, D]
        V = vc[slots].float().repeat_interleave(G, dim=1)
        Qm = q[qs: qs + nq].float()  # [nq, HQ, D]
        s = torch.einsum("qhd,khd->hqk", Qm, K) * scale
        kp = torch.arange(L, device=q.device)
        qp = pos0 + torch.arange(nq, device=q.device)
        s = s.masked_fill(~(kp[None, :] <= qp[:, None])[None], float("-inf"))
        p = torch.softmax(s, dim=-1)
        o = torch.einsum("hqk,khd->qhd", p, V)
        out[qs: qs + nq] = o.to(out.dtype)
    return out


def exactness_check(device, dtype=torch.bfloat16, n_kv_heads=8, group=4, head_dim=128,
                    seed=0, verbose=True) -> dict:
    """Random paged cache + random items (decode q=1, verify q=4/8, prefill chunks, splits):
    Triton vs the float32 reference.  Returns {case: relative error}."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    HQ = n_kv_heads * group
    D = head_dim
    n_blocks = 1024
    kc = torch.randn(n_blocks * PAGE, n_kv_heads, D, generator=g).to(device, dtype)
    vc = torch.randn(n_blocks * PAGE, n_kv_heads, D, generator=g).to(device, dtype)
    n_rows = 8
    max_bps = 64
    perm = torch.randperm(n_blocks - 1, generator=g)[: n_rows * max_bps] + 1
    bt = perm.reshape(n_rows, max_bps).to(torch.int32).to(device)
    scale = 1.0 / math.sqrt(D)
    res = {}
    cases = [("decode_q1", 1, 1), ("decode_q1_split", 1, 8), ("verify_q4", 4, 1),
             ("verify_q4_split", 4, 4), ("verify_q8_split", 8, 3), ("prefill_t16", 16, 1)]
    for name, nq, nsplit in cases:
        items = []
        qs = 0
        for r in range(n_rows):
            L = int(torch.randint(nq, 1000, (1,), generator=g))
            if name.startswith("prefill"):
                # a chunk of several 16-token tiles ending at L (chunked prefill, pos0 > 0)
                chunk = min(L, 40)
                start = L - chunk
                for p0 in range(start, L, 16):
                    n = min(16, L - p0)
                    items.append((r, qs, n, p0))
                    qs += n
            else:
                items.append((r, qs, nq, L - nq))
                qs += nq
        T = qs
        q = torch.randn(T, HQ, D, generator=g).to(device, dtype)
        arr = torch.tensor(items, dtype=torch.int32).to(device)
        w_row, w_qs, w_nq, w_pos = (arr[:, i].contiguous() for i in range(4))
        tile = tile_for(nq, group)
        out = torch.full((T, HQ, D), float("nan"), dtype=dtype, device=device)
        paged_attention(q, kc, vc, out, bt, w_row, w_qs, w_nq, w_pos, len(items), tile,
                        nsplit, scale, n_kv_heads)
        ref = torch.zeros((T, HQ, D), dtype=torch.float32, device=device)
        paged_attention_ref(q, kc, vc, ref, bt, w_row, w_qs, w_nq, w_pos, len(items), scale,
                            n_kv_heads)
        err = float((out.float() - ref).norm() / ref.norm())
        if not math.isfinite(err):
            err = float("inf")
        res[name] = err
        if verbose:
            print(f"[exactness] attention {name:18s} items={len(items):3d} nsplit={nsplit} "
                  f"rel_err={err:.2e}", flush=True)
    return res


def fused_ops_check(device, dtype=torch.bfloat16, seed=0, verbose=True) -> dict:
    """Fused Triton elementwise kernels vs the torch references."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    res = {}
    T, H = 37, 4096
    x = torch.randn(T, H, generator=g).to(device, dtype)
    r = torch.randn(T, H, generator=g).to(device, dtype)
    w = (1 + 0.1 * torch.randn(H, generator=g)).to(device, dtype)
    o, ro = ops.add_rmsnorm(x, r, w, 1e-6)
    o2, ro2 = ops.add_rmsnorm_ref(x, r, w, 1e-6)
    res["add_rmsnorm"] = float((o.float() - o2.float()).norm() / o2.float().norm())
    gu = torch.randn(T, 2 * 1536, generator=g).to(device, dtype)
    a = ops.silu_mul(gu)
    b = ops.silu_mul_ref(gu)
    res["silu_mul"] = float((a.float() - b.float()).norm() / b.float().norm())
    hq, hkv, d = 32, 8, 128
    qkv = torch.randn(T, (hq + 2 * hkv) * d, generator=g).to(device, dtype)
    pos = torch.randint(0, 5000, (T,), generator=g).to(torch.int32).to(device)
    slots = torch.randperm(256, generator=g)[:T].to(torch.int32).to(device)
    cs = ops.rope_table(8192, d, 1e6, device)
    qw = (1 + 0.1 * torch.randn(d, generator=g)).to(device, dtype)
    kw = (1 + 0.1 * torch.randn(d, generator=g)).to(device, dtype)
    kc1 = torch.zeros(256, hkv, d, device=device, dtype=dtype)
    vc1 = torch.zeros_like(kc1)
    kc2 = torch.zeros_like(kc1)
    vc2 = torch.zeros_like(kc1)
    q1 = ops.qkv_rope_cache(qkv, pos, slots, cs, qw, kw, kc1, vc1, hq, hkv, d, 1e-6, True)
    q2 = ops.qkv_rope_cache_ref(qkv, pos, slots, cs, qw, kw, kc2, vc2, hq, hkv, d, 1e-6, True)
    res["rope_q"] = float((q1.float() - q2.float()).norm() / q2.float().norm())
    res["rope_k_cache"] = float((kc1.float() - kc2.float()).norm() / kc2.float().norm())
    res["v_cache"] = float((vc1.float() - vc2.float()).norm() / vc2.float().norm())
    if verbose:
        for k, v in res.items():
            print(f"[exactness] {k:18s} rel_err={v:.2e}", flush=True)
    return res
