"""Attention microbenchmarks: decode, verify (k+1 queries, bottom-right causal) and
prefill (whole prompt or a chunk at an offset) over a contiguous KV pool
[total_tokens, kv_heads, head_dim] holding variable-length sequences.

Backends (all exact):
* ``flash_varlen``: torch's FlashAttention-2 varlen kernel
  (``aten._flash_attention_forward`` with cumulative sequence offsets); GQA native.
  For one query token FA2 itself packs the query heads of a KV head together.
* ``flash_varlen_packed``: for q > 1 (verify) the GQA group is packed into the
  query dimension: one non-causal call over the cached prefix with G*q query rows
  per KV head (each KV head's cache is read once), plus a small causal call over
  the q new keys, merged by their log-sum-exps.
* ``sdpa_cudnn``: cuDNN attention through SDPA over the pool viewed as
  [B, kv_heads, L, D] (uniform lengths, q = 1 only), tried as a candidate.

The packing/merge logic is written against a provider interface so that it can be
checked on CPU with the float32 reference provider (``ref_varlen_attn``).
"""
from __future__ import annotations

import math

try:
    from . import _timing as T
    from .mb_grids import AttnPoint
except ImportError:
    import _timing as T
    from mb_grids import AttnPoint


def _torch():
    import torch
    return torch


# ---------------------------------------------------------------- providers
def ref_varlen_attn(q, k, v, cu_q, cu_k, max_q, max_k, causal, scale, seqused_k=None,
                    need_lse=True, compute_dtype=None):
    """Reference varlen attention (loop over sequences, float32 or float64).

    q [Tq, Hq, D], k/v [Tk, Hkv, D]; causal is bottom-right aligned. Returns
    (out [Tq, Hq, D] in q.dtype, lse [Tq, Hq] float32).
    """
    torch = _torch()
    cd = compute_dtype or torch.float32
    Hq, Hkv = q.shape[1], k.shape[1]
    G = Hq // Hkv
    out = torch.empty(q.shape, dtype=cd, device=q.device)
    lse = torch.empty((q.shape[0], Hq), dtype=torch.float32, device=q.device)
    cq, ck = cu_q.tolist(), cu_k.tolist()
    used = seqused_k.tolist() if seqused_k is not None else None
    for b in range(len(cq) - 1):
        qs = q[cq[b]:cq[b + 1]].to(cd)                     # [lq, Hq, D]
        lk = (ck[b + 1] - ck[b]) if used is None else used[b]
        ks = k[ck[b]:ck[b] + lk].to(cd).repeat_interleave(G, dim=1)
        vs = v[ck[b]:ck[b] + lk].to(cd).repeat_interleave(G, dim=1)
        s = torch.einsum("qhd,khd->hqk", qs, ks) * scale  # [Hq, lq, lk]
        lq = qs.shape[0]
        if causal:
            i = torch.arange(lq, device=q.device)[:, None]
            j = torch.arange(lk, device=q.device)[None, :]
            s = s.masked_fill(j > i + (lk - lq), float("-inf"))
        m = torch.logsumexp(s, dim=-1)                     # [Hq, lq]
        p = torch.exp(s - m[..., None])
        out[cq[b]:cq[b + 1]] = torch.einsum("hqk,khd->qhd", p, vs)
        lse[cq[b]:cq[b + 1]] = m.t().float()
    return out.to(q.dtype) if compute_dtype is None else out, (lse if need_lse else None)


def flash_varlen_attn(q, k, v, cu_q, cu_k, max_q, max_k, causal, scale, seqused_k=None,
                      need_lse=True):
    """torch's FA2 varlen forward. Returns (out, lse [Tq, Hq] view or None)."""
    torch = _torch()
    kw = {"scale": scale}
    if seqused_k is not None:
        kw["seqused_k"] = seqused_k
    res = torch.ops.aten._flash_attention_forward(q, k, v, cu_q, cu_k, max_q, max_k, 0.0, causal,
                                                  False, **kw)
    out, lse = res[0], res[1]
    if not need_lse:
        return out, None
    if lse.dim() == 2 and lse.shape[1] == q.shape[0]:      # [Hq, Tq]
        return out, lse.t()
    if lse.dim() == 3:                                     # [B, Hq, max_q] (older layout)
        cq = cu_q.tolist()
        rows = [lse[b, :, : cq[b + 1] - cq[b]].t() for b in range(len(cq) - 1)]
        return out, torch.cat(rows, 0)
    raise RuntimeError(f"unexpected lse shape {tuple(lse.shape)}")


# ------------------------------------------------------- packed-GQA verify
def merge_lse(o1, l1, o2, l2):
    """Exact merge of two partial attentions over disjoint key sets.

    o1, o2 [T, H, D]; l1, l2 [T, H] (natural-log sum-exp).  The weight of part 1 is
    exp(l1) / (exp(l1) + exp(l2)) = sigmoid(l1 - l2).
    """
    torch = _torch()
    w = torch.sigmoid(l1 - l2).unsqueeze(-1).to(o1.dtype)
    return torch.lerp(o2, o1, w)


def verify_packed(provider, Q, Kc, Vc, Kn, Vn, geo: dict):
    """q>1 attention with the GQA group packed into the query dimension.

    Q [B*q, Hq, D] (rows: sequence-major, then query position).
    Kc/Vc: the cached prefix (keys [0, L-q) of each sequence); either the full pool
    read with ``seqused_k`` = prefix lengths, or a separate prefix pool.
    Kn/Vn [B*q, Hkv, D]: the q new keys/values of each sequence.
    """
    B, q, Hq, Hkv, D = geo["B"], geo["q"], geo["Hq"], geo["Hkv"], geo["D"]
    G = Hq // Hkv
    # [B, q, Hkv, G, D] -> [B, q, G, Hkv, D] -> rows (q, g) per sequence, Hkv heads
    Qp = Q.view(B, q, Hkv, G, D).permute(0, 1, 3, 2, 4).reshape(B * q * G, Hkv, D)
    o1, l1 = provider(Qp, Kc, Vc, geo["cu_qp"], geo["cu_kc"], q * G, geo["max_kc"], False,
                      geo["scale"], seqused_k=geo.get("used_kc"))
    o2, l2 = provider(Q, Kn, Vn, geo["cu_qn"], geo["cu_qn"], q, q, True, geo["scale"])
    o1 = o1.view(B, q, G, Hkv, D).permute(0, 1, 3, 2, 4).reshape(B * q, Hq, D)
    l1 = l1.reshape(B, q, G, Hkv).permute(0, 1, 3, 2).reshape(B * q, Hq)
    return merge_lse(o1, l1, o2, l2)


def make_geometry(kv_lens, q_lens, Hq, Hkv, D, device, separate_prefix: bool):
    torch = _torch()
    B = len(kv_lens)
    i32 = dict(dtype=torch.int32, device=device)

    def cums(xs):
        c = [0]
        for x in xs:
            c.append(c[-1] + x)
        return c

    geo = {"B": B, "Hq": Hq, "Hkv": Hkv, "D": D, "scale": 1.0 / math.sqrt(D),
           "kv_lens": list(kv_lens), "q_lens": list(q_lens)}
    geo["cu_k"] = torch.tensor(cums(kv_lens), **i32)
    geo["cu_q"] = torch.tensor(cums(q_lens), **i32)
    geo["max_k"], geo["max_q"] = max(kv_lens), max(q_lens)
    q = q_lens[0]
    if all(x == q for x in q_lens) and q > 1:
        G = Hq // Hkv
        pre = [L - q for L in kv_lens]
        geo["q"] = q
        geo["cu_qp"] = torch.tensor([b * q * G for b in range(B + 1)], **i32)
        geo["cu_qn"] = torch.tensor([b * q for b in range(B + 1)], **i32)
        geo["max_kc"] = max(pre)
        geo["prefix_lens"] = pre
        if separate_prefix:
            geo["cu_kc"] = torch.tensor(cums(pre), **i32)
            geo["used_kc"] = None
        else:
            geo["cu_kc"] = geo["cu_k"]
            geo["used_kc"] = torch.tensor(pre, **i32)
    return geo


def build_inputs(geo, dtype, device, n_sets: int = 1, separate_prefix: bool = False,
                 need_new: bool = False):
    """Random Q and KV pools for n_sets rotating sets (slices of one buffer)."""
    torch = _torch()
    kvl, ql = geo["kv_lens"], geo["q_lens"]
    Tk, Tq = sum(kvl), sum(ql)
    Hq, Hkv, D = geo["Hq"], geo["Hkv"], geo["D"]
    K = T.rand_tensor((n_sets * Tk, Hkv, D), dtype, device)
    V = T.rand_tensor((n_sets * Tk, Hkv, D), dtype, device)
    Q = T.rand_tensor((n_sets * Tq, Hq, D), dtype, device)
    idx = keep = None
    if need_new:
        q = geo["q"]
        ends, starts = [], []
        c = 0
        for L in kvl:
            starts.append(c)
            c += L
            ends.append(c)
        idx = torch.tensor([e - q + j for e in ends for j in range(q)], device=device)
        if separate_prefix:
            mask = torch.ones(Tk, dtype=torch.bool, device=device)
            mask[idx] = False
            keep = mask.nonzero().squeeze(1)
    sets = []
    for s in range(n_sets):
        d = {"Q": Q[s * Tq:(s + 1) * Tq], "K": K[s * Tk:(s + 1) * Tk], "V": V[s * Tk:(s + 1) * Tk]}
        if need_new:
            # the new keys of each sequence = the last q of its slice in the pool
            d["Kn"] = d["K"].index_select(0, idx).contiguous()
            d["Vn"] = d["V"].index_select(0, idx).contiguous()
            if separate_prefix:
                d["Kc"] = d["K"].index_select(0, keep).contiguous()
                d["Vc"] = d["V"].index_select(0, keep).contiguous()
            else:
                d["Kc"], d["Vc"] = d["K"], d["V"]
        sets.append(d)
    return sets


# ----------------------------------------------- split-KV (flash-decoding)
def add_split(geo, device, n_sm: int = 132, min_chunk: int = 256, align: int = 64,
              rows_factor: int = 4) -> bool:
    """Plan a split of each sequence's cached keys into chunks of C keys so that
    (chunks x kv heads) fills the GPU (flash-decoding).  Decode (q = 1) splits all
    keys; verify (q > 1) splits the cached prefix and adds the q new keys as one
    more part.  Returns False (no plan) when no sequence would be split."""
    torch = _torch()
    B, Hq, Hkv = geo["B"], geo["Hq"], geo["Hkv"]
    q = geo["q_lens"][0]
    if any(x != q for x in geo["q_lens"]):
        return False
    G = Hq // Hkv
    rows = q * G
    pre = [L - q for L in geo["kv_lens"]] if q > 1 else list(geo["kv_lens"])
    if min(pre) < 1:
        return False
    total = sum(pre)
    C = max(min_chunk, rows_factor * rows, math.ceil(total * Hkv / (2 * n_sm)))
    C = int(math.ceil(C / align) * align)
    if C >= max(pre):
        geo.pop("split", None)
        return False
    chunk_seq, cu_k, used, counts = [], [], [], []
    start = 0
    for b, (L, P) in enumerate(zip(geo["kv_lens"], pre)):
        n = math.ceil(P / C)
        counts.append(n)
        for j in range(n):
            chunk_seq.append(b)
            cu_k.append(start + j * C)
            used.append(min(C, P - j * C))
        start += L
    cu_k.append(start)
    cu_c = [0]
    for n in counts:
        cu_c.append(cu_c[-1] + n)
    NC = len(chunk_seq)
    i32 = dict(dtype=torch.int32, device=device)
    geo["split"] = {
        "C": C, "NC": NC, "rows": rows, "q": q, "has_new": q > 1, "max_chunks": max(counts),
        "chunk_seq": torch.tensor(chunk_seq, dtype=torch.long, device=device),
        "cu_q": torch.tensor([i * rows for i in range(NC + 1)], **i32),
        "cu_k": torch.tensor(cu_k, **i32), "used": torch.tensor(used, **i32),
        "cu_chunks": torch.tensor(cu_c, **i32),
    }
    if q > 1 and "cu_qn" not in geo:
        geo["cu_qn"] = torch.tensor([b * q for b in range(B + 1)], **i32)
    return True


def combine_torch(o1, l1, o2, l2, geo):
    """Reference combine of the split parts (segment log-sum-exp), torch ops."""
    torch = _torch()
    sp = geo["split"]
    B, Hq, Hkv, D = geo["B"], geo["Hq"], geo["Hkv"], geo["D"]
    G, q, rows, NC = Hq // Hkv, sp["q"], sp["rows"], sp["NC"]
    o1r = o1.view(NC, rows, Hkv, D).float()
    l1r = l1.reshape(NC, rows, Hkv).float()
    seq = sp["chunk_seq"]
    m = torch.full((B, rows, Hkv), float("-inf"), device=o1.device)
    m = m.scatter_reduce(0, seq.view(NC, 1, 1).expand(NC, rows, Hkv), l1r, "amax")
    w = torch.exp(l1r - m.index_select(0, seq))
    ssum = torch.zeros((B, rows, Hkv), device=o1.device).index_add_(0, seq, w)
    acc = torch.zeros((B, rows, Hkv, D), device=o1.device).index_add_(0, seq, o1r * w[..., None])
    o = acc / ssum[..., None]
    lse = m + torch.log(ssum)
    # unpack rows (qi, g) x kv -> tokens (b, qi) x heads (kv, g)
    o = o.view(B, q, G, Hkv, D).permute(0, 1, 3, 2, 4).reshape(B * q, Hq, D)
    lse = lse.view(B, q, G, Hkv).permute(0, 1, 3, 2).reshape(B * q, Hq)
    if o2 is None:
        return o.to(o1.dtype)
    return merge_lse(o.to(o1.dtype), lse, o2, l2)


_COMBINE = None


def _combine_kernel():
    global _COMBINE
    if _COMBINE is not None:
        return _COMBINE or None
    try:
        import triton
        import triton.language as tl
    except Exception:  # noqa: BLE001
        _COMBINE = False
        return None

    @triton.jit
    def combine_k(o1, l1, s1t, s1h, o2, l2, s2t, s2h, out, cu_c, rows, q, G, Hkv,
                  NMAX: tl.constexpr, HAS_NEW: tl.constexpr, D: tl.constexpr):
        pid = tl.program_id(0)
        kv = tl.program_id(1)
        b = pid // rows
        r = pid % rows
        qi = r // G
        g = r % G
        c0 = tl.load(cu_c + b)
        c1 = tl.load(cu_c + b + 1)
        d = tl.arange(0, D)
        t = c0 * rows + r
        m = tl.load(l1 + t * s1t + kv * s1h)
        acc = tl.load(o1 + (t * Hkv + kv) * D + d).to(tl.float32)
        s = m * 0.0 + 1.0
        n = c1 - c0
        for j in range(1, NMAX):  # fixed trip count, masked past this sequence's chunks
            ok = j < n
            t = (c0 + j) * rows + r
            lj = tl.load(l1 + t * s1t + kv * s1h, mask=ok, other=float("-inf"))
            oj = tl.load(o1 + (t * Hkv + kv) * D + d, mask=ok & (d < D), other=0.0).to(tl.float32)
            mn = tl.maximum(m, lj)
            a = tl.exp(m - mn)
            e = tl.exp(lj - mn)
            acc = acc * a + oj * e
            s = s * a + e
            m = mn
        h = kv * G + g
        tok = b * q + qi
        if HAS_NEW:
            l_n = tl.load(l2 + tok * s2t + h * s2h)
            o_n = tl.load(o2 + (tok * Hkv * G + h) * D + d).to(tl.float32)
            mn = tl.maximum(m, l_n)
            a = tl.exp(m - mn)
            e = tl.exp(l_n - mn)
            acc = acc * a + o_n * e
            s = s * a + e
        tl.store(out + (tok * Hkv * G + h) * D + d, (acc / s).to(out.dtype.element_ty))

    def combine(o1, l1, o2, l2, geo):
        torch = _torch()
        sp = geo["split"]
        B, Hq, Hkv, D = geo["B"], geo["Hq"], geo["Hkv"], geo["D"]
        q, rows = sp["q"], sp["rows"]
        out = torch.empty((B * q, Hq, D), dtype=o1.dtype, device=o1.device)
        has_new = o2 is not None
        if not has_new:
            o2, l2 = o1, l1
        combine_k[(B * rows, Hkv)](o1, l1, l1.stride(0), l1.stride(1), o2, l2, l2.stride(0),
                                   l2.stride(1), out, sp["cu_chunks"], rows, q, Hq // Hkv, Hkv,
                                   NMAX=triton.next_power_of_2(sp["max_chunks"]),
                                   HAS_NEW=has_new, D=D, num_warps=1)
        return out

    _COMBINE = combine
    return combine


def attn_split(provider, Q, K, V, Kn, Vn, geo, combine=None):
    """Split-KV attention with the GQA group packed into the query rows: one varlen
    call over all KV chunks (each chunk a 'sequence' reading its slice of the pool
    through seqused_k), one small causal call over the new keys (verify), and an
    exact log-sum-exp combine (Triton kernel, or torch ops as the fallback)."""
    sp = geo["split"]
    B, Hq, Hkv, D = geo["B"], geo["Hq"], geo["Hkv"], geo["D"]
    G, q, rows, NC = Hq // Hkv, sp["q"], sp["rows"], sp["NC"]
    Qp = Q.view(B, q, Hkv, G, D).index_select(0, sp["chunk_seq"])
    Qr = Qp.permute(0, 1, 3, 2, 4).reshape(NC * rows, Hkv, D)
    o1, l1 = provider(Qr, K, V, sp["cu_q"], sp["cu_k"], rows, sp["C"], False, geo["scale"],
                      seqused_k=sp["used"])
    o2 = l2 = None
    if sp["has_new"]:
        o2, l2 = provider(Q, Kn, Vn, geo["cu_qn"], geo["cu_qn"], q, q, True, geo["scale"])
    return (combine or combine_torch)(o1, l1, o2, l2, geo)


# ------------------------------------------------------------ the op variants
def run_variant(name, provider, geo, d, causal):
    """One attention call of variant `name` on input set d."""
    if name == "flash_varlen_packed":
        return verify_packed(provider, d["Q"], d["Kc"], d["Vc"], d["Kn"], d["Vn"], geo)
    if name == "sdpa_cudnn":
        return sdpa_uniform(d, geo, "cudnn")
    if name in ("flash_split_packed", "flash_split_packed_torchcombine"):
        comb = _combine_kernel() if name == "flash_split_packed" else combine_torch
        if comb is None:
            raise RuntimeError("no Triton for the split-KV combine")
        return attn_split(provider, d["Q"], d["K"], d["V"], d.get("Kn"), d.get("Vn"), geo,
                          combine=comb)
    out, _ = provider(d["Q"], d["K"], d["V"], geo["cu_q"], geo["cu_k"], geo["max_q"],
                      geo["max_k"], causal, geo["scale"], need_lse=False)
    return out


def sdpa_uniform(d, geo, backend: str):
    torch = _torch()
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    B, Hq, Hkv, D = geo["B"], geo["Hq"], geo["Hkv"], geo["D"]
    L = geo["kv_lens"][0]
    q = geo["q_lens"][0]
    Q = d["Q"].view(B, q, Hq, D).transpose(1, 2)
    K = d["K"].view(B, L, Hkv, D).transpose(1, 2)
    V = d["V"].view(B, L, Hkv, D).transpose(1, 2)
    be = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION}[backend]
    with sdpa_kernel([be]):
        o = F.scaled_dot_product_attention(Q, K, V, enable_gqa=(Hq != Hkv))
    return o.transpose(1, 2).reshape(B * q, Hq, D)


# -------------------------------------------------------------- exactness
def check_exactness(provider, device, dtype=None, D: int = 128, verbose: bool = True,
                    try_seqused: bool = True, extra_variants=()):
    """Compare every variant with a float32 reference (float64 on CPU) at a small
    random shape.  Returns {variant: relative L2 error}."""
    torch = _torch()
    dtype = dtype or (torch.bfloat16 if str(device).startswith("cuda") else torch.float32)
    ref_cd = torch.float64 if not str(device).startswith("cuda") else torch.float32
    Hq, Hkv = 8, 2
    errs = {}
    gen = torch.Generator(device="cpu").manual_seed(1234)

    def rel(a, b):
        a, b = a.double(), b.double()
        e = (a - b).norm() / b.norm()
        return float(e) if torch.isfinite(e) else float("inf")

    cases = [
        ("decode", [37, 70, 5], [1, 1, 1], False),
        ("decode_uniform", [48, 48, 48], [1, 1, 1], False),
        ("verify", [37, 70, 9], [4, 4, 4], True),
        ("prefill", [37, 70, 5], [37, 70, 5], True),
        ("prefill_chunk", [37, 70, 20], [16, 16, 16], True),
    ]
    for case, kvl, ql, causal in cases:
        seps = (False, True) if case == "verify" else (False,)
        for sep in (seps if try_seqused else (True,)):
            geo = make_geometry(kvl, ql, Hq, Hkv, D, device, separate_prefix=sep)
            Tk, Tq = sum(kvl), sum(ql)
            K = torch.randn((Tk, Hkv, D), generator=gen).to(device=device, dtype=dtype)
            V = torch.randn((Tk, Hkv, D), generator=gen).to(device=device, dtype=dtype)
            Q = torch.randn((Tq, Hq, D), generator=gen).to(device=device, dtype=dtype)
            ref, _ = ref_varlen_attn(Q, K, V, geo["cu_q"], geo["cu_k"], geo["max_q"],
                                     geo["max_k"], causal, geo["scale"], compute_dtype=ref_cd)
            variants = ["flash_varlen"]
            if case == "verify":
                variants.append("flash_varlen_packed")
            if case == "decode_uniform":
                variants += list(extra_variants)
            if case in ("decode", "decode_uniform", "verify") and not sep:
                if add_split(geo, device, n_sm=10 ** 6, min_chunk=16, align=16, rows_factor=0):
                    variants += ["flash_split_packed", "flash_split_packed_torchcombine"]
            for var in variants:
                label = f"{case}:{var}" + ((":seqused" if not sep else ":prefix_pool")
                                           if var == "flash_varlen_packed" else "")
                if label in errs:
                    continue
                try:
                    d = {"Q": Q, "K": K, "V": V}
                    if var == "flash_varlen_packed" or (var.startswith("flash_split")
                                                         and case == "verify"):
                        q = ql[0]
                        idx = torch.cat([torch.arange(int(geo["cu_k"][b + 1]) - q,
                                                      int(geo["cu_k"][b + 1]))
                                         for b in range(len(kvl))]).to(device)
                        d["Kn"], d["Vn"] = K.index_select(0, idx), V.index_select(0, idx)
                        if sep:
                            keep = torch.cat([torch.arange(int(geo["cu_k"][b]),
                                                           int(geo["cu_k"][b + 1]) - q)
                                              for b in range(len(kvl))]).to(device)
                            d["Kc"], d["Vc"] = K.index_select(0, keep), V.index_select(0, keep)
                        else:
                            d["Kc"], d["Vc"] = K, V
                    out = torch.full_like(Q, float("nan"))
                    out.copy_(run_variant(var, provider, geo, d, causal))
                    errs[label] = rel(out, ref)
                except Exception as e:  # noqa: BLE001
                    errs[label] = float("inf")
                    if verbose:
                        print(f"    exactness {label}: {type(e).__name__}: {str(e)[:160]}",
                              flush=True)
    if verbose:
        for k_, v_ in errs.items():
            print(f"  attention exactness {k_:40s} rel err {v_:.3e}", flush=True)
    return errs


# ------------------------------------------------------------------ driver
def measure_point(p: AttnPoint, cfg: dict, device="cuda") -> dict:
    """Time one grid point with every applicable variant; return the fastest."""
    torch = _torch()
    dtype = torch.bfloat16
    provider = cfg.get("provider", flash_varlen_attn)
    sep = not cfg.get("seqused_ok", False)
    geo = make_geometry(p.kv_lens, p.q_lens, p.n_q_heads, p.n_kv_heads, p.head_dim, device,
                        separate_prefix=sep)
    if p.phase == "decode":
        variants = ["flash_varlen"]
        if p.kv_dist == "uniform" and cfg.get("cudnn_ok"):
            variants.append("sdpa_cudnn")
        causal = False
    elif p.phase == "verify":
        variants = ["flash_varlen"]
        if cfg.get("packed_ok"):
            variants.insert(0, "flash_varlen_packed")
        causal = True
    else:
        variants = ["flash_varlen"]
        causal = True
    sv = cfg.get("split_variant")
    if sv and p.phase in ("decode", "verify") and cfg.get("seqused_ok"):
        if add_split(geo, device, n_sm=cfg.get("n_sm", 132)):
            variants.append(sv)
    need_new = "flash_varlen_packed" in variants or (p.phase == "verify" and sv in variants)
    set_bytes = p.kv_bytes() * (2 if (need_new and sep) else 1)
    n_sets = T.n_rotating_sets(set_bytes, max_sets=cfg.get("max_sets", 64))
    sets = build_inputs(geo, dtype, device, n_sets, separate_prefix=sep, need_new=need_new)
    results = {}
    for var in variants:
        try:
            r = T.bench(lambda i, var=var: run_variant(var, provider, geo, sets[i], causal),
                        n_sets)
            results[var] = r
        except Exception as e:  # noqa: BLE001
            print(f"    attention {p.phase} b{p.batch} q{p.q_len} {var}: {type(e).__name__}: "
                  f"{str(e)[:160]}", flush=True)
            if var == "sdpa_cudnn":
                cfg["cudnn_ok"] = False
            torch.cuda.synchronize()
    del sets
    if not results:
        raise RuntimeError("no attention variant ran")
    best = min(results, key=lambda v: results[v]["time_s"])
    alt = sorted((v for v in results if v != best), key=lambda v: results[v]["time_s"])
    row = dict(p.row())
    row.update(results[best])
    row["backend"] = best
    row["alt_backend"] = alt[0] if alt else ""
    row["alt_time_s"] = results[alt[0]]["time_s"] if alt else float("nan")
    return row
