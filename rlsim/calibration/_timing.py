"""GPU timing helpers (torch imported lazily).

`bench(fn, n_sets)` times `fn(i)` (i = index of the input set to use) with CUDA
events after warm-up and reports the median and p10/p90 over repeats:

* ops shorter than `graph_below_s` are captured N times back to back (cycling
  through the input sets) into a CUDA graph; each replay is timed with events and
  divided by N (timing = "graph");
* longer ops are launched eagerly, each launch between its own pair of events,
  launches queued back to back (timing = "events").
"""
from __future__ import annotations

import math

try:
    from .mb_common import percentile
except ImportError:  # loaded as a top-level module (script mode)
    from mb_common import percentile

L2_ROTATE_BYTES = 128 * 1024 ** 2  # rotate input sets until their total exceeds this


def n_rotating_sets(set_bytes: float, max_sets: int = 64, target: float = L2_ROTATE_BYTES) -> int:
    """How many input sets to rotate among so that together they exceed the L2."""
    if set_bytes <= 0:
        return 1
    return int(min(max_sets, max(1, math.ceil(target / set_bytes))))


def _torch():
    import torch
    return torch


def sync():
    _torch().cuda.synchronize()


def _elapsed(pairs, div: float) -> list[float]:
    return [a.elapsed_time(b) / 1e3 / div for a, b in pairs]


def time_events(fn, n_sets: int, repeats: int) -> list[float]:
    torch = _torch()
    ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
          for _ in range(repeats)]
    for r, (a, b) in enumerate(ev):
        a.record()
        fn(r % n_sets)
        b.record()
    torch.cuda.synchronize()
    return _elapsed(ev, 1.0)


def capture_graph(fn, n_sets: int, n_calls: int):
    torch = _torch()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for i in range(min(n_sets, 2)):
            fn(i)
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for j in range(n_calls):
            fn(j % n_sets)
    return g


def time_graph(g, n_calls: int, repeats: int) -> list[float]:
    torch = _torch()
    ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
          for _ in range(repeats)]
    for a, b in ev:
        a.record()
        g.replay()
        b.record()
    torch.cuda.synchronize()
    return _elapsed(ev, float(n_calls))


def bench(fn, n_sets: int = 1, *, allow_graph: bool = True, graph_below_s: float = 1e-3,
          graph_target_s: float = 1.5e-3, target_total_s: float = 0.015, min_repeats: int = 5,
          max_repeats: int = 20, max_calls: int = 256, warmup: int = 2) -> dict:
    """Time fn(i); returns dict(time_s, time_p10_s, time_p90_s, repeats, timing)."""
    torch = _torch()
    n_sets = max(1, int(n_sets))
    if not torch.cuda.is_available():  # CPU (tests): wall clock, a few repeats
        return bench_cpu(fn, n_sets, repeats=min_repeats)
    for i in range(max(warmup, 1)):
        fn(i % n_sets)
    torch.cuda.synchronize()
    # rough estimate of one call (eager, so launch gaps included for tiny ops)
    n_est = min(n_sets, 8) if n_sets > 1 else 2
    est = sorted(time_events(fn, n_sets, n_est))[n_est // 2]
    est = max(est, 1e-6)
    if allow_graph and est < graph_below_s:
        n_calls = int(min(max_calls, max(math.ceil(graph_target_s / est), min(n_sets, 16), 1)))
        g = None
        try:
            g = capture_graph(fn, n_sets, n_calls)
            g.replay()
            torch.cuda.synchronize()
            t1 = time_graph(g, n_calls, 2)
            per_replay = max(min(t1) * n_calls, 1e-6)
            reps = int(min(max_repeats, max(min_repeats, math.ceil(target_total_s / per_replay))))
            ts = time_graph(g, n_calls, reps)
            return _summ(ts, "graph", reps)
        except Exception as e:  # capture not possible: fall back to events
            print(f"    (graph capture failed: {type(e).__name__}: {str(e)[:120]}; using events)",
                  flush=True)
            try:
                torch.cuda.synchronize()
            except Exception:
                pass
        finally:
            del g
    reps = int(min(max_repeats, max(min_repeats, math.ceil(target_total_s / est))))
    if est > 0.05:
        reps = min_repeats if est < 0.2 else max(3, min_repeats // 2)
    ts = time_events(fn, n_sets, reps)
    return _summ(ts, "events", reps)


def bench_cpu(fn, n_sets: int, repeats: int = 3) -> dict:
    import time
    fn(0)
    ts = []
    for r in range(repeats):
        t0 = time.perf_counter()
        fn(r % n_sets)
        ts.append(time.perf_counter() - t0)
    return _summ(ts, "cpu_wall", repeats)


def _summ(ts: list[float], mode: str, reps: int) -> dict:
    return {"time_s": percentile(ts, 50), "time_p10_s": percentile(ts, 10),
            "time_p90_s": percentile(ts, 90), "repeats": reps, "timing": mode}


def rand_tensor(shape, dtype, device, scale: float = 1.0, chunk: int = 1 << 26):
    """Random, never-zero inputs: N(0, scale^2) pushed away from 0 by 1% of scale
    (so that fp8 rounding cannot produce zeros either).  Filled chunk by chunk so a
    tensor of tens of GB needs only a small temporary."""
    torch = _torch()
    if dtype in (torch.int32, torch.int64):
        raise TypeError("use torch.randint for integer tensors")
    out = torch.empty(shape, dtype=dtype, device=device)
    flat = out.view(-1)
    eps = 1e-2 * scale
    for s in range(0, flat.numel(), chunk):
        n = min(chunk, flat.numel() - s)
        c = torch.randn(n, device=device, dtype=torch.float32)
        if scale != 1.0:
            c.mul_(scale)
        c.add_(torch.where(c >= 0, eps, -eps))
        flat[s:s + n].copy_(c)
    return out


def measure_ceilings(device="cuda") -> dict:
    """Device-to-device copy bandwidth (read + write) and 8192^3 bf16 matmul rate."""
    torch = _torch()
    out = {}
    nbytes = 2 * 1024 ** 3
    a = torch.empty(nbytes, dtype=torch.uint8, device=device).random_(1, 255)
    b = torch.empty_like(a)
    r = bench(lambda i: b.copy_(a), 1, allow_graph=False, target_total_s=0.05, min_repeats=10,
              max_repeats=20)
    out["copy_bytes"] = nbytes
    out["copy_time_s"] = r["time_s"]
    out["copy_bw_rw_bytes_per_s"] = 2 * nbytes / r["time_s"]
    del a, b
    n = 8192
    x = rand_tensor((n, n), torch.bfloat16, device)
    w = rand_tensor((n, n), torch.bfloat16, device)
    r = bench(lambda i: torch.matmul(x, w), 1, allow_graph=False, target_total_s=0.05,
              min_repeats=10, max_repeats=20, warmup=3)
    out["matmul_8192_bf16_time_s"] = r["time_s"]
    out["matmul_8192_bf16_flops_per_s"] = 2 * n ** 3 / r["time_s"]
    del x, w
    torch.cuda.empty_cache()
    return out
