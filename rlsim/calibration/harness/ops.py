"""Fused elementwise kernels of the replica: Triton on CUDA, torch reference elsewhere.

* add_rmsnorm   residual = x + residual; out = RMSNorm(residual) * w   (vLLM fused_add_rms_norm)
* qkv_rope_cache  per-head QK RMSNorm, neox RoPE, store K/V into the paged cache, emit Q
                  (one kernel: vLLM does rotary + reshape_and_cache in 2-3 kernels)
* silu_mul      SiLU(gate) * up                                       (vLLM silu_and_mul)

The torch reference paths compute the same functions (used on CPU and as references).
Set ``FORCE_TRITON = True`` with TRITON_INTERPRET=1 to run the Triton kernels on CPU.
"""
from __future__ import annotations

import torch

try:  # Triton only matters on CUDA; the CPU path never needs it
    import triton
    import triton.language as tl

    HAVE_TRITON = True
except Exception:  # pragma: no cover - depends on the environment
    triton = None
    tl = None
    HAVE_TRITON = False

FORCE_TRITON = False


def use_triton(t: torch.Tensor) -> bool:
    return HAVE_TRITON and (t.is_cuda or FORCE_TRITON)


def next_pow2(x: int) -> int:
    return 1 << max(0, (int(x) - 1).bit_length())


# ---------------------------------------------------------------------------
# Triton kernels
# ---------------------------------------------------------------------------
if HAVE_TRITON:

    @triton.jit
    def _add_rmsnorm_kernel(X, R, W, OUT, RES_OUT, H, eps,
                            HAS_RES: tl.constexpr, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        offs = tl.arange(0, BLOCK)
        m = offs < H
        x = tl.load(X + row * H + offs, mask=m, other=0.0).to(tl.float32)
        if HAS_RES:
            x = x + tl.load(R + row * H + offs, mask=m, other=0.0).to(tl.float32)
            xr = x.to(RES_OUT.dtype.element_ty)
            tl.store(RES_OUT + row * H + offs, xr, mask=m)
            x = xr.to(tl.float32)
        var = tl.sum(x * x, axis=0) / H
        r = 1.0 / tl.sqrt(var + eps)
        w = tl.load(W + offs, mask=m, other=0.0).to(tl.float32)
        y = (x * r).to(OUT.dtype.element_ty).to(tl.float32) * w
        tl.store(OUT + row * H + offs, y.to(OUT.dtype.element_ty), mask=m)

    @triton.jit
    def _qkv_rope_cache_kernel(QKV, POS, SLOT, CS, QW, KW, QOUT, KC, VC, eps, stride_qkv,
                               HQ: tl.constexpr, HKV: tl.constexpr, HQP: tl.constexpr,
                               HKP: tl.constexpr, D: tl.constexpr, HAS_NORM: tl.constexpr):
        t = tl.program_id(0).to(tl.int64)
        HALF: tl.constexpr = D // 2
        pos = tl.load(POS + t).to(tl.int64)
        slot = tl.load(SLOT + t).to(tl.int64)
        od = tl.arange(0, HALF)
        cos = tl.load(CS + pos * D + od)
        sin = tl.load(CS + pos * D + HALF + od)
        base = QKV + t * stride_qkv
        # ---- q heads
        hq = tl.arange(0, HQP)
        mq = (hq < HQ)[:, None]
        p = base + hq[:, None] * D + od[None, :]
        x1 = tl.load(p, mask=mq, other=0.0).to(tl.float32)
        x2 = tl.load(p + HALF, mask=mq, other=0.0).to(tl.float32)
        if HAS_NORM:
            r = 1.0 / tl.sqrt((tl.sum(x1 * x1, axis=1) + tl.sum(x2 * x2, axis=1)) / D + eps)
            w1 = tl.load(QW + od).to(tl.float32)
            w2 = tl.load(QW + HALF + od).to(tl.float32)
            x1 = x1 * r[:, None] * w1[None, :]
            x2 = x2 * r[:, None] * w2[None, :]
        o1 = x1 * cos[None, :] - x2 * sin[None, :]
        o2 = x2 * cos[None, :] + x1 * sin[None, :]
        qo = QOUT + t * (HQ * D) + hq[:, None] * D + od[None, :]
        tl.store(qo, o1.to(QOUT.dtype.element_ty), mask=mq)
        tl.store(qo + HALF, o2.to(QOUT.dtype.element_ty), mask=mq)
        # ---- k heads -> cache
        hk = tl.arange(0, HKP)
        mk = (hk < HKV)[:, None]
        p = base + HQ * D + hk[:, None] * D + od[None, :]
        x1 = tl.load(p, mask=mk, other=0.0).to(tl.float32)
        x2 = tl.load(p + HALF, mask=mk, other=0.0).to(tl.float32)
        if HAS_NORM:
            r = 1.0 / tl.sqrt((tl.sum(x1 * x1, axis=1) + tl.sum(x2 * x2, axis=1)) / D + eps)
            w1 = tl.load(KW + od).to(tl.float32)
            w2 = tl.load(KW + HALF + od).to(tl.float32)
            x1 = x1 * r[:, None] * w1[None, :]
            x2 = x2 * r[:, None] * w2[None, :]
        o1 = x1 * cos[None, :] - x2 * sin[None, :]
        o2 = x2 * cos[None, :] + x1 * sin[None, :]
        ko = KC + slot * (HKV * D) + hk[:, None] * D + od[None, :]
        tl.store(ko, o1.to(KC.dtype.element_ty), mask=mk)
        tl.store(ko + HALF, o2.to(KC.dtype.element_ty), mask=mk)
        # ---- v heads -> cache
        p = base + (HQ + HKV) * D + hk[:, None] * D + od[None, :]
        v1 = tl.load(p, mask=mk, other=0.0)
        v2 = tl.load(p + HALF, mask=mk, other=0.0)
        vo = VC + slot * (HKV * D) + hk[:, None] * D + od[None, :]
        tl.store(vo, v1.to(VC.dtype.element_ty), mask=mk)
        tl.store(vo + HALF, v2.to(VC.dtype.element_ty), mask=mk)

    @triton.jit
    def _silu_mul_kernel(GU, OUT, I, BLOCK: tl.constexpr):
        t = tl.program_id(0).to(tl.int64)
        b = tl.program_id(1)
        offs = b * BLOCK + tl.arange(0, BLOCK)
        m = offs < I
        g = tl.load(GU + t * 2 * I + offs, mask=m, other=0.0).to(tl.float32)
        u = tl.load(GU + t * 2 * I + I + offs, mask=m, other=0.0).to(tl.float32)
        y = g / (1.0 + tl.exp(-g)) * u
        tl.store(OUT + t * I + offs, y.to(OUT.dtype.element_ty), mask=m)


# ---------------------------------------------------------------------------
# Python entry points
# ---------------------------------------------------------------------------
def add_rmsnorm(x: torch.Tensor, res: torch.Tensor | None, w: torch.Tensor, eps: float):
    """Returns (normed, new_residual). new_residual is a NEW tensor (x + res), or x if res is None."""
    if use_triton(x):
        T, H = x.shape
        out = torch.empty_like(x)
        if res is None:
            _add_rmsnorm_kernel[(T,)](x, x, w, out, out, H, eps, HAS_RES=False,
                                      BLOCK=next_pow2(H), num_warps=8)
            return out, x
        res_out = torch.empty_like(x)
        _add_rmsnorm_kernel[(T,)](x, res, w, out, res_out, H, eps, HAS_RES=True,
                                  BLOCK=next_pow2(H), num_warps=8)
        return out, res_out
    return add_rmsnorm_ref(x, res, w, eps)


def add_rmsnorm_ref(x, res, w, eps):
    if res is not None:
        s = (x.float() + res.float()).to(x.dtype)
    else:
        s = x
    xf = s.float()
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return (y.to(x.dtype).float() * w.float()).to(x.dtype), s


def rope_table(max_pos: int, head_dim: int, theta: float, device) -> torch.Tensor:
    """[max_pos, head_dim] float32: cos in the first half, sin in the second (neox style)."""
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    ang = torch.arange(max_pos, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cat([ang.cos(), ang.sin()], dim=1).to(torch.float32).to(device)


def qkv_rope_cache(qkv, pos, slots, cs, qw, kw, kc, vc, hq: int, hkv: int, d: int,
                   eps: float, has_norm: bool):
    """qkv [T, (hq+2hkv)*d] -> q [T, hq, d]; writes k, v of every token into kc/vc[slot]."""
    T = qkv.shape[0]
    if use_triton(qkv):
        q = torch.empty((T, hq, d), dtype=qkv.dtype, device=qkv.device)
        if T > 0:
            _qkv_rope_cache_kernel[(T,)](qkv, pos, slots, cs, qw, kw, q, kc, vc, eps,
                                         qkv.stride(0), HQ=hq, HKV=hkv, HQP=next_pow2(hq),
                                         HKP=next_pow2(hkv), D=d, HAS_NORM=has_norm,
                                         num_warps=4)
        return q
    return qkv_rope_cache_ref(qkv, pos, slots, cs, qw, kw, kc, vc, hq, hkv, d, eps, has_norm)


def _head_norm(x, w, eps):
    xf = x.float()
    return xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * w.float()


def _rope(x, cos, sin):
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def qkv_rope_cache_ref(qkv, pos, slots, cs, qw, kw, kc, vc, hq, hkv, d, eps, has_norm):
    T = qkv.shape[0]
    q = qkv[:, : hq * d].reshape(T, hq, d).float()
    k = qkv[:, hq * d: (hq + hkv) * d].reshape(T, hkv, d).float()
    v = qkv[:, (hq + hkv) * d:].reshape(T, hkv, d)
    if has_norm:
        q = _head_norm(q, qw, eps)
        k = _head_norm(k, kw, eps)
    c = cs[pos.long()]
    cos, sin = c[:, None, : d // 2], c[:, None, d // 2:]
    q = _rope(q, cos, sin)
    k = _rope(k, cos, sin)
    sl = slots.long()
    kc[sl] = k.to(kc.dtype)
    vc[sl] = v.to(vc.dtype)
    return q.to(qkv.dtype)


def silu_mul(gu: torch.Tensor) -> torch.Tensor:
    T, I2 = gu.shape
    inter = I2 // 2
    if use_triton(gu):
        out = torch.empty((T, inter), dtype=gu.dtype, device=gu.device)
        if T > 0:
            BLOCK = 1024 if inter >= 1024 else next_pow2(inter)
            _silu_mul_kernel[(T, triton.cdiv(inter, BLOCK))](gu, out, inter, BLOCK=BLOCK,
                                                             num_warps=4)
        return out
    return silu_mul_ref(gu)


def silu_mul_ref(gu):
    inter = gu.shape[1] // 2
    g, u = gu[:, :inter].float(), gu[:, inter:].float()
    return (torch.nn.functional.silu(g) * u).to(gu.dtype)


def _calibration_module(name: str):
    """A microbenchmark module of rlsim/calibration (next to this package), e.g. the fused MoE."""
    import importlib
    import sys
    from pathlib import Path

    calib = str(Path(__file__).resolve().parents[1])
    if calib not in sys.path:
        sys.path.insert(0, calib)
    return importlib.import_module(name)


def moe(x: torch.Tensor, wr: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, top_k: int) -> torch.Tensor:
    """MoE experts of one layer: the fused Triton kernel (``mb_fused_moe.fused_moe``) on a GPU, elsewhere
    the float32 reference of the MoE microbenchmark (``mb_ops.MoEBench.reference``)."""
    if use_triton(x):
        return _calibration_module("mb_fused_moe").fused_moe(x, w1, w2, wr, top_k, w1.shape[0])
    return _calibration_module("mb_ops").MoEBench.reference(x, w1, w2, wr, top_k, w1.shape[0]).to(x.dtype)
