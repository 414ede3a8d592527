"""GEMM, MoE, elementwise, sampling and launch-overhead microbenchmarks (torch,
imported lazily)."""
from __future__ import annotations

import math
import time

try:
    from . import _timing as T
    from .mb_common import percentile
    from .mb_grids import MOE_GLOBAL_EXPERTS
except ImportError:
    import _timing as T
    from mb_common import percentile
    from mb_grids import MOE_GLOBAL_EXPERTS


def _torch():
    import torch
    return torch


# ======================================================================= GEMM
class GemmBench:
    """y = x[m,k] @ W[k,n]; bf16 via torch.matmul, fp8 (e4m3) via torch._scaled_mm
    with row-wise scales (per-token activations, per-channel weights), bf16 out."""

    def __init__(self, device="cuda"):
        self.device = device
        self.fp8_mode = None      # "rowwise" | "tensorwise" | None (unsupported)
        self.fp8_pad16 = False    # pad m up to a multiple of 16 if small m is refused
        self._w = None
        self._wkey = None

    def weights(self, dtype: str, n: int, k: int):
        torch = _torch()
        key = (dtype, n, k)
        if self._wkey == key:
            return self._w
        self._w = None
        torch.cuda.empty_cache()
        wbytes = n * k * (1 if dtype == "fp8" else 2)
        n_sets = T.n_rotating_sets(wbytes, max_sets=32)
        if dtype == "bf16":
            # stored [n, k] like nn.Linear weights; y = F.linear(x, W) = x @ W.t()
            W = T.rand_tensor((n_sets, n, k), torch.bfloat16, self.device, scale=k ** -0.5)
            ws = [W[i] for i in range(n_sets)]
            sb = None
        else:
            # W stored [n, k] row-major; _scaled_mm wants mat2 [k, n] column-major
            W = T.rand_tensor((n_sets, n, k), torch.float8_e4m3fn, self.device)
            ws = [W[i].t() for i in range(n_sets)]
            sb = torch.rand((1, n), device=self.device, dtype=torch.float32) + 0.5
        self._w = (ws, sb, n_sets)
        self._wkey = key
        return self._w

    def _fp8_call(self, x, w, sa, sb):
        torch = _torch()
        return torch._scaled_mm(x, w, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16)

    def probe_fp8(self):
        """Find a working fp8 scaling mode (row-wise first) and whether small m works."""
        torch = _torch()
        if not hasattr(torch, "_scaled_mm") or not hasattr(torch, "float8_e4m3fn"):
            return
        k, n = 256, 512
        xr = torch.randn(32, k, device=self.device)
        wr = torch.randn(n, k, device=self.device)
        ref = xr @ wr.t()
        x8, w8 = xr.to(torch.float8_e4m3fn), wr.to(torch.float8_e4m3fn)
        for mode in ("rowwise", "tensorwise"):
            try:
                if mode == "rowwise":
                    sa = torch.ones((32, 1), device=self.device)
                    sb = torch.ones((1, n), device=self.device)
                else:
                    sa = torch.ones((), device=self.device)
                    sb = torch.ones((), device=self.device)
                y = self._fp8_call(x8, w8.t(), sa, sb).float()
                err = float((y - ref).norm() / ref.norm())
                print(f"  fp8 _scaled_mm {mode}: rel err vs fp32 {err:.3e} (e4m3 rounding)",
                      flush=True)
                if err < 0.1:
                    self.fp8_mode = mode
                    break
            except Exception as e:  # noqa: BLE001
                print(f"  fp8 _scaled_mm {mode} failed: {type(e).__name__}: {str(e)[:150]}",
                      flush=True)
        if self.fp8_mode is None:
            return
        try:
            sa = torch.ones((1, 1), device=self.device) if self.fp8_mode == "rowwise" else \
                torch.ones((), device=self.device)
            sb = torch.ones((1, n), device=self.device) if self.fp8_mode == "rowwise" else \
                torch.ones((), device=self.device)
            self._fp8_call(x8[:1].contiguous(), w8.t(), sa, sb)
            torch.cuda.synchronize()
        except Exception as e:  # noqa: BLE001
            self.fp8_pad16 = True
            print(f"  fp8 _scaled_mm refuses m=1 ({str(e)[:100]}); small m padded to 16",
                  flush=True)

    def measure(self, dtype: str, m: int, n: int, k: int) -> dict:
        torch = _torch()
        ws, sb, n_w = self.weights(dtype, n, k)
        m_run = m
        if dtype == "fp8":
            if self.fp8_mode is None:
                raise RuntimeError("fp8 unsupported")
            if self.fp8_pad16 and m % 16:
                m_run = (m + 15) // 16 * 16
        xbytes = m_run * k * (1 if dtype == "fp8" else 2)
        n_x = max(1, min(n_w, T.n_rotating_sets(xbytes, max_sets=8)))
        if dtype == "bf16":
            xs = [T.rand_tensor((m_run, k), torch.bfloat16, self.device) for _ in range(n_x)]

            lin = torch.nn.functional.linear

            def fn(i):
                return lin(xs[i % n_x], ws[i])
        else:
            xs = [T.rand_tensor((m_run, k), torch.float8_e4m3fn, self.device) for _ in range(n_x)]
            if self.fp8_mode == "rowwise":
                sa = torch.rand((m_run, 1), device=self.device, dtype=torch.float32) + 0.5
                sbb = sb
            else:
                sa = torch.tensor(0.7, device=self.device)
                sbb = torch.tensor(1.3, device=self.device)

            def fn(i):
                return self._fp8_call(xs[i % n_x], ws[i], sa, sbb)
        r = T.bench(fn, n_w)
        r["m_run"] = m_run
        return r


# ======================================================================== MoE
class MoEBench:
    """One MoE layer's expert compute on one GPU holding E of 128 experts:
    router logits + top-8 + renormalise, keep the assignments to local experts,
    sort by expert, grouped GEMM gate_up, SiLU*mul, grouped GEMM down, weighted
    scatter-add back to tokens.  Uniform random routing (random router weights and
    random inputs).  Shapes inside the timed op are static per input set (the
    number of local assignments of each set is found once, untimed), so the op is
    CUDA-graph capturable."""

    def __init__(self, device="cuda"):
        self.device = device
        self.backend = None  # "grouped_mm" | "loop"
        self._wkey = None

    def _weights(self, E, hidden, inter):
        torch = _torch()
        key = (E, hidden, inter)
        if self._wkey != key:
            self.W1 = self.W2 = self.Wr = None
            torch.cuda.empty_cache()
            # stored [E, N, K] (K contiguous); passed to _grouped_mm transposed ([E, K, N])
            self.W1 = T.rand_tensor((E, 2 * inter, hidden), torch.bfloat16, self.device,
                                    scale=hidden ** -0.5)
            self.W2 = T.rand_tensor((E, hidden, inter), torch.bfloat16, self.device,
                                    scale=inter ** -0.5)
            self.Wr = T.rand_tensor((hidden, MOE_GLOBAL_EXPERTS), torch.bfloat16, self.device)
            self._wkey = key
        return self.W1, self.W2, self.Wr

    @staticmethod
    def route(x, Wr, top_k, E):
        torch = _torch()
        logits = x @ Wr
        probs = torch.softmax(logits, dim=-1, dtype=torch.float32)
        vals, ids = torch.topk(probs, top_k, dim=-1)
        vals = vals / vals.sum(-1, keepdim=True)
        flat = ids.reshape(-1)
        flat = torch.where(flat < E, flat, torch.full_like(flat, E))   # non-local -> sentinel
        order = torch.argsort(flat, stable=True)
        counts = torch.zeros(E + 1, dtype=torch.int32, device=x.device)
        counts.scatter_add_(0, flat, torch.ones_like(flat, dtype=torch.int32))
        offs = torch.cumsum(counts[:E], 0, dtype=torch.int32)
        return vals.reshape(-1), order, offs, counts

    def layer(self, x, W1, W2, Wr, top_k, E, n_local, backend=None, counts_host=None):
        torch = _torch()
        import torch.nn.functional as F

        backend = backend or self.backend
        T_ = x.shape[0]
        w, order, offs, _ = self.route(x, Wr, top_k, E)
        if n_local == 0:  # no token routed to this GPU's experts
            return torch.zeros_like(x)
        sel = order[:n_local]                      # local assignments, sorted by expert
        tok = torch.div(sel, top_k, rounding_mode="floor")
        xs = x.index_select(0, tok)
        if backend == "grouped_mm":
            h = torch._grouped_mm(xs, W1.transpose(-2, -1), offs=offs)
            inter = h.shape[-1] // 2
            a = F.silu(h[:, :inter]) * h[:, inter:]
            y = torch._grouped_mm(a, W2.transpose(-2, -1), offs=offs)
        else:  # loop over experts with host-known counts (static per set)
            outs = []
            start = 0
            for e in range(E):
                c = counts_host[e]
                if c == 0:
                    continue
                h = xs[start:start + c] @ W1[e].t()
                inter = h.shape[-1] // 2
                a = F.silu(h[:, :inter]) * h[:, inter:]
                outs.append(a @ W2[e].t())
                start += c
            y = torch.cat(outs, 0) if outs else xs[:0]
        y = y * w.index_select(0, sel).unsqueeze(-1).to(y.dtype)
        out = torch.zeros((T_, x.shape[1]), dtype=y.dtype, device=x.device)
        out.index_add_(0, tok, y)
        return out

    @staticmethod
    def reference(x, W1, W2, Wr, top_k, E):
        """Dense float32 reference of the same layer (local experts only)."""
        torch = _torch()
        import torch.nn.functional as F
        logits = (x @ Wr).float()
        probs = torch.softmax(logits, -1)
        vals, ids = torch.topk(probs, top_k, -1)
        vals = vals / vals.sum(-1, keepdim=True)
        out = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        for t in range(x.shape[0]):
            for j in range(top_k):
                e = int(ids[t, j])
                if e >= E:
                    continue
                h = x[t].float() @ W1[e].float().t()
                inter = h.shape[-1] // 2
                a = F.silu(h[:inter]) * h[inter:]
                out[t] += vals[t, j] * (a @ W2[e].float().t())
        return out

    def probe(self, hidden=256, inter=128, E=16, tokens=24, top_k=8):
        """Pick the grouped-GEMM backend and check it against the reference."""
        torch = _torch()
        x = T.rand_tensor((tokens, hidden), torch.bfloat16, self.device)
        W1 = T.rand_tensor((E, 2 * inter, hidden), torch.bfloat16, self.device, scale=hidden ** -0.5)
        W2 = T.rand_tensor((E, hidden, inter), torch.bfloat16, self.device, scale=inter ** -0.5)
        Wr = T.rand_tensor((hidden, MOE_GLOBAL_EXPERTS), torch.bfloat16, self.device)
        ref = self.reference(x, W1, W2, Wr, top_k, E)
        _, _, _, counts = self.route(x, Wr, top_k, E)
        ch = counts.tolist()
        n_local = sum(ch[:E])
        errs = {}
        for be in ("grouped_mm", "loop"):
            try:
                y = self.layer(x, W1, W2, Wr, top_k, E, n_local, backend=be, counts_host=ch).float()
                errs[be] = float((y - ref).norm() / ref.norm())
            except Exception as e:  # noqa: BLE001
                errs[be] = float("inf")
                print(f"  moe backend {be} failed: {type(e).__name__}: {str(e)[:150]}", flush=True)
        for be in ("grouped_mm", "loop"):
            if errs[be] < 2e-2:
                self.backend = be
                break
        print(f"  moe exactness vs fp32 reference: {errs}; backend {self.backend}", flush=True)
        return errs

    def measure(self, tokens, E, top_k, hidden, inter) -> dict:
        torch = _torch()
        W1, W2, Wr = self._weights(E, hidden, inter)
        n_sets = 4 if tokens <= 4096 else 2
        xs, n_loc, distinct, chs = [], [], [], []
        for _ in range(n_sets):
            x = T.rand_tensor((tokens, hidden), torch.bfloat16, self.device)
            _, _, _, counts = self.route(x, Wr, top_k, E)
            ch = counts.tolist()
            xs.append(x)
            chs.append(ch)
            n_loc.append(sum(ch[:E]))
            distinct.append(sum(1 for c in ch[:E] if c > 0))

        def fn(i):
            return self.layer(xs[i], W1, W2, Wr, top_k, E, n_loc[i], counts_host=chs[i])

        r = T.bench(fn, n_sets)
        r["distinct_experts"] = round(sum(distinct) / n_sets, 2)
        r["local_assignments"] = round(sum(n_loc) / n_sets, 1)
        r["backend"] = self.backend
        return r


# ================================================================ elementwise
_TRITON = None


def _triton_kernels():
    """Fused Triton kernels (vLLM-like) for rmsnorm, silu_mul and rope; None if no Triton."""
    global _TRITON
    if _TRITON is not None:
        return _TRITON or None
    try:
        import triton
        import triton.language as tl
    except Exception:  # noqa: BLE001
        _TRITON = False
        return None

    @triton.jit
    def rmsnorm_k(x_ptr, w_ptr, y_ptr, H, eps, BLOCK: tl.constexpr):
        row = tl.program_id(0)
        offs = tl.arange(0, BLOCK)
        msk = offs < H
        x = tl.load(x_ptr + row * H + offs, mask=msk, other=0.0).to(tl.float32)
        var = tl.sum(x * x, axis=0) / H
        r = 1.0 / tl.sqrt(var + eps)
        w = tl.load(w_ptr + offs, mask=msk, other=0.0).to(tl.float32)
        tl.store(y_ptr + row * H + offs, (x * r * w).to(y_ptr.dtype.element_ty), mask=msk)

    @triton.jit
    def silu_mul_k(x_ptr, y_ptr, H, BLOCK: tl.constexpr):
        row = tl.program_id(0)
        col = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        msk = col < H
        a = tl.load(x_ptr + row * 2 * H + col, mask=msk, other=0.0).to(tl.float32)
        b = tl.load(x_ptr + row * 2 * H + H + col, mask=msk, other=0.0).to(tl.float32)
        y = a / (1.0 + tl.exp(-a)) * b
        tl.store(y_ptr + row * H + col, y.to(y_ptr.dtype.element_ty), mask=msk)

    @triton.jit
    def rope_k(x_ptr, pos_ptr, cos_ptr, sin_ptr, W, HALF: tl.constexpr):
        row = tl.program_id(0)
        h = tl.program_id(1)
        pos = tl.load(pos_ptr + row)
        j = tl.arange(0, HALF)
        c = tl.load(cos_ptr + pos * HALF + j)
        s = tl.load(sin_ptr + pos * HALF + j)
        base = x_ptr + row * W + h * (2 * HALF)
        x1 = tl.load(base + j).to(tl.float32)
        x2 = tl.load(base + HALF + j).to(tl.float32)
        tl.store(base + j, (x1 * c - x2 * s).to(x_ptr.dtype.element_ty))
        tl.store(base + HALF + j, (x2 * c + x1 * s).to(x_ptr.dtype.element_ty))

    def rmsnorm(x, w, eps=1e-6):
        import torch
        y = torch.empty_like(x)
        H = x.shape[-1]
        rmsnorm_k[(x.shape[0],)](x, w, y, H, eps, BLOCK=triton.next_power_of_2(H),
                                 num_warps=8 if H >= 4096 else 4)
        return y

    def silu_mul(x):
        import torch
        H = x.shape[-1] // 2
        y = torch.empty((x.shape[0], H), dtype=x.dtype, device=x.device)
        BLOCK = 1024
        silu_mul_k[(x.shape[0], triton.cdiv(H, BLOCK))](x, y, H, BLOCK=BLOCK, num_warps=4)
        return y

    def rope(x, pos, cos, sin):
        W = x.shape[-1]
        half = cos.shape[-1]
        nh = W // (2 * half)
        rope_k[(x.shape[0], nh)](x, pos, cos, sin, W, HALF=half, num_warps=1)
        return x

    _TRITON = {"rmsnorm": rmsnorm, "silu_mul": silu_mul, "rope": rope}
    return _TRITON


def torch_rmsnorm(x, w, eps=1e-6):
    torch = _torch()
    return torch.nn.functional.rms_norm(x, (x.shape[-1],), w, eps)


def torch_silu_mul(x):
    torch = _torch()
    H = x.shape[-1] // 2
    return torch.nn.functional.silu(x[:, :H]) * x[:, H:]


def torch_rope(x, pos, cos, sin):
    """Neox-style rotary embedding in place over heads of 2*half."""
    torch = _torch()
    half = cos.shape[-1]
    xv = x.view(x.shape[0], -1, 2 * half)
    c = cos.index_select(0, pos).unsqueeze(1)
    s = sin.index_select(0, pos).unsqueeze(1)
    x1, x2 = xv[..., :half].float(), xv[..., half:].float()
    out = torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1).to(x.dtype)
    xv.copy_(out)
    return x


class ElementwiseBench:
    """rmsnorm [T,H]; silu_mul [T,2H]->[T,H]; rope in place on [T,H] (H/128 heads of
    128, neox, positions gathered from a cos/sin cache); residual_add x += r [T,H];
    kv_cache_write: K and V of [T,H] each scattered into a [slots,H] cache pair at a
    random slot mapping.  The cost model passes H = (q+kv heads)*head_dim for rope and
    H = kv_heads*head_dim for kv_cache_write."""

    def __init__(self, device="cuda"):
        self.device = device
        self.impl = {}

    def probe(self):
        torch = _torch()
        kern = _triton_kernels()
        T_, H = 37, 4096
        x = T.rand_tensor((T_, 2 * H), torch.bfloat16, self.device)
        w = T.rand_tensor((H,), torch.bfloat16, self.device)
        cos = torch.rand((4096, 64), device=self.device) + 0.1
        sin = torch.rand((4096, 64), device=self.device) + 0.1
        pos = torch.randint(0, 4096, (T_,), device=self.device)
        refs = {
            "rmsnorm": lambda f: f(x[:, :H].contiguous(), w),
            "silu_mul": lambda f: f(x),
            "rope": lambda f: f(x[:, :H].contiguous(), pos, cos, sin),
        }
        torch_impl = {"rmsnorm": torch_rmsnorm, "silu_mul": torch_silu_mul, "rope": torch_rope}
        for op, call in refs.items():
            self.impl[op] = ("torch", torch_impl[op])
            if not kern:
                continue
            try:
                a = call(kern[op]).float()
                b = call(torch_impl[op]).float()
                err = float((a - b).norm() / b.norm())
                print(f"  elementwise {op}: triton vs torch rel err {err:.2e}", flush=True)
                if err < 2e-2:
                    self.impl[op] = ("triton", kern[op])
            except Exception as e:  # noqa: BLE001
                print(f"  elementwise {op} triton failed: {type(e).__name__}: {str(e)[:150]}",
                      flush=True)
        self.impl["residual_add"] = ("torch", None)
        self.impl["kv_cache_write"] = ("torch", None)

    def measure(self, op, tokens, hidden) -> dict:
        torch = _torch()
        if not self.impl:
            self.probe()
        name, f = self.impl[op]
        dt = torch.bfloat16
        if op == "rmsnorm":
            set_bytes = tokens * hidden * 4
        elif op == "silu_mul":
            set_bytes = tokens * hidden * 6
        elif op == "kv_cache_write":
            set_bytes = tokens * hidden * 8
        else:
            set_bytes = tokens * hidden * 6
        n = T.n_rotating_sets(set_bytes, max_sets=64)
        if op == "rmsnorm":
            xs = [T.rand_tensor((tokens, hidden), dt, self.device) for _ in range(n)]
            w = T.rand_tensor((hidden,), dt, self.device)
            fn = lambda i: f(xs[i], w)  # noqa: E731
        elif op == "silu_mul":
            xs = [T.rand_tensor((tokens, 2 * hidden), dt, self.device) for _ in range(n)]
            fn = lambda i: f(xs[i])  # noqa: E731
        elif op == "rope":
            xs = [T.rand_tensor((tokens, hidden), dt, self.device) for _ in range(n)]
            cos = torch.rand((32768, 64), device=self.device) + 0.1
            sin = torch.rand((32768, 64), device=self.device) + 0.1
            pos = torch.randint(0, 32768, (tokens,), device=self.device)
            fn = lambda i: f(xs[i], pos, cos, sin)  # noqa: E731
        elif op == "residual_add":
            xs = [T.rand_tensor((tokens, hidden), dt, self.device) for _ in range(n)]
            rs = [T.rand_tensor((tokens, hidden), dt, self.device) for _ in range(n)]
            fn = lambda i: xs[i].add_(rs[i])  # noqa: E731
        elif op == "kv_cache_write":
            slots = max(4 * tokens, 65536)
            ks = [T.rand_tensor((tokens, hidden), dt, self.device) for _ in range(n)]
            vs = [T.rand_tensor((tokens, hidden), dt, self.device) for _ in range(n)]
            kc = T.rand_tensor((slots, hidden), dt, self.device)
            vc = T.rand_tensor((slots, hidden), dt, self.device)
            sm = torch.randperm(slots, device=self.device)[:tokens]

            def fn(i):
                kc.index_copy_(0, sm, ks[i])
                vc.index_copy_(0, sm, vs[i])
        else:
            raise ValueError(op)
        r = T.bench(fn, n)
        r["impl"] = name
        return r


# =================================================================== sampling
class SamplingBench:
    """lm_head_softmax: bf16 logits -> fp32 probs.  sample: fp32 logits -> softmax ->
    exponential-race (Gumbel-max equivalent) sampling.  argmax: greedy over fp32
    logits.  rejection_sample (vLLM-style, rows = B*(k+1)): given target probs p and
    draft probs q and draft tokens, accept with u < min(1, p/q), sample recovered
    tokens from max(p-q, 0) (normalisation-free exponential race), select."""

    def __init__(self, device="cuda"):
        self.device = device

    def measure(self, op, rows, vocab) -> dict:
        torch = _torch()
        f32 = torch.float32
        per_row = vocab * (2 if op == "lm_head_softmax" else 4) * (2 if op == "rejection_sample" else 1)
        n = T.n_rotating_sets(rows * per_row, max_sets=32)
        dev = self.device
        if op == "lm_head_softmax":
            xs = [T.rand_tensor((rows, vocab), torch.bfloat16, dev, 3.0) for _ in range(n)]
            fn = lambda i: torch.softmax(xs[i], dim=-1, dtype=f32)  # noqa: E731
        elif op == "argmax":
            xs = [T.rand_tensor((rows, vocab), f32, dev, 3.0) for _ in range(n)]
            fn = lambda i: xs[i].argmax(dim=-1)  # noqa: E731
        elif op == "sample":
            xs = [T.rand_tensor((rows, vocab), f32, dev, 3.0) for _ in range(n)]

            def fn(i):
                p = torch.softmax(xs[i], dim=-1)
                e = torch.empty_like(p).exponential_()
                return p.div_(e).argmax(dim=-1)
        elif op == "rejection_sample":
            ps = [torch.softmax(T.rand_tensor((rows, vocab), f32, dev, 3.0), -1) for _ in range(n)]
            qs = [torch.softmax(T.rand_tensor((rows, vocab), f32, dev, 3.0), -1) for _ in range(n)]
            toks = [torch.randint(0, vocab, (rows, 1), device=dev) for _ in range(n)]

            def fn(i):
                p, q, t = ps[i], qs[i], toks[i]
                px = p.gather(1, t)
                qx = q.gather(1, t)
                u = torch.rand_like(px)
                accept = u < torch.clamp(px / qx, max=1.0)
                resid = (p - q).clamp_(min=0.0)
                e = torch.empty_like(resid).exponential_()
                rec = resid.div_(e).argmax(dim=-1, keepdim=True)
                return torch.where(accept, t, rec)
        else:
            raise ValueError(op)
        return T.bench(fn, n)


# =================================================================== overhead
def measure_overhead(mode: str, n_kernels: int, device="cuda") -> dict:
    torch = _torch()
    x = torch.ones(1, device=device)
    if mode in ("eager", "graph"):
        def chain(_i=0):
            for _ in range(n_kernels):
                x.add_(1e-7)
        if mode == "eager":
            chain()
            torch.cuda.synchronize()
            ts = []
            for _ in range(10):
                torch.cuda.synchronize()
                a = torch.cuda.Event(enable_timing=True)
                b = torch.cuda.Event(enable_timing=True)
                a.record()
                chain()
                b.record()
                b.synchronize()
                ts.append(a.elapsed_time(b) / 1e3)
        else:
            g = T.capture_graph(chain, 1, 1)
            g.replay()
            torch.cuda.synchronize()
            ts = T.time_graph(g, 1, 10)
            del g
        t = percentile(ts, 50)
        return {"time_s": t, "time_per_kernel_s": t / n_kernels, "repeats": len(ts)}
    if mode == "sync":
        ts = []
        for _ in range(200):
            x.add_(1e-7)
            t0 = time.perf_counter()
            torch.cuda.synchronize()
            ts.append(time.perf_counter() - t0)
        t = percentile(ts, 50)
        return {"time_s": t, "time_per_kernel_s": t, "repeats": len(ts)}
    if mode == "python_step":
        # host-side input preparation of a 256-sequence decode step: build positions,
        # slot mapping and sequence lengths in Python, copy through pinned memory, sync.
        ts = []
        for it in range(50):
            t0 = time.perf_counter()
            pos = [1000 + i + it for i in range(256)]
            slots = [i * 16 + (p % 16) for i, p in enumerate(pos)]
            lens = [p + 1 for p in pos]
            h = torch.tensor([pos, slots, lens], dtype=torch.int64).pin_memory()
            d = h.to(device, non_blocking=True)
            torch.cuda.synchronize()
            ts.append(time.perf_counter() - t0)
            del d
        t = percentile(ts, 50)
        return {"time_s": t, "time_per_kernel_s": t, "repeats": len(ts)}
    raise ValueError(mode)
