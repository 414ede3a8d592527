"""One target step of the ground-truth harness's model, eager vs CUDA-graph replay (microbenchmark).

    python3 rlsim/calibration/mb_eager_step.py --device cuda --out DIR [--budget-s 240]
    python3 rlsim/calibration/mb_eager_step.py --device cpu --tiny --out DIR      # smoke test, seconds

The step is the harness's own target forward (``harness/model.py``: Qwen3-8B shapes, random bf16
weights, its fused Triton norms / QK-norm+RoPE+KV-store / SiLU*up, its paged GQA-packed flash-decoding
attention, cuBLAS GEMMs), then the LM head and sampling exactly as ``Replica.step`` does them: softmax
over the full vocabulary in float32, exponential race, argmax; a verify step (q = k+1 > 1) adds the
harness's accept test of the k draft tokens. No draft pass, no H2D metadata copy, no D2H copy: one
step of the target, what rlsim counts as 36 x 12 + 10 = 442 kernels for a k = 0 step.

Each of B sequences has ``--context`` tokens (default 2048) in a paged KV pool (its own blocks, in a
random order over the pool, random bf16 values) and adds q tokens (q = 1: decode; q = 4: verify of
k = 3 drafts). Per (B, q), after warm-up, rows of the CSV (``mode``):

* ``graph``       CUDA-graph replay of the step (graph captured at exactly B), CUDA events around each
                  replay, replays back to back: the GPU time of the graphed step;
* ``graph_wall``  host wall time per replay over back-to-back replays (synchronize at the ends);
* ``eager_wall``  the eager step with the host free-running: wall time of ``--steps`` back-to-back eager
                  steps (torch.cuda.synchronize only at the two ends) / steps; what an eager step costs;
* ``eager_gpu``   the GPU-only time of the eager step: CUDA events around it while the GPU first runs
                  a sleep kernel longer than the host needs to issue the step, so every kernel of the
                  step is queued before the GPU reaches it (no launch stalls inside the events);
* ``eager_host``  the host time to issue one eager step (after a synchronize, no sync inside).

Every time is the median over ``--repeats`` (>= 20) repeats; p25 / p75 beside it. ``n_kernels`` is the
number of GPU kernels of one eager step (torch.profiler, CUDA activity), where it could be counted.
On a CPU only ``eager_wall`` and ``eager_host`` exist (there is no graph and no separate device).

Outputs (flushed after every (B, q)): ``eager_step.csv`` and ``meta_eager_step.json``.  A time budget
(``--budget-s``) skips the (B, q) points that would not finish in time (listed in the meta file).
Runs on a machine with only torch, triton and numpy/pyyaml: the harness is imported as the package
``harness`` (nothing else of rlsim).
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import math
import platform
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # script mode: import the harness folder as the package ``harness``
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from harness import ops as hops  # noqa: E402
    from harness.attention import PAGE, choose_nsplit  # noqa: E402
    from harness.config import load_target, tiny_target  # noqa: E402
    from harness.model import Caps, Replica  # noqa: E402
else:
    from .harness import ops as hops
    from .harness.attention import PAGE, choose_nsplit
    from .harness.config import load_target, tiny_target
    from .harness.model import Caps, Replica

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

COLUMNS = ["gpu", "device_name", "model", "B", "q", "tokens", "context", "mode", "time_s", "p25_s", "p75_s",
           "repeats", "steps_per_repeat", "n_kernels"]
# priority order: the ends of the batch range first, so a budget cut keeps the informative points
DEFAULT_BATCHES = (1, 64, 256, 16, 128, 4)
DEFAULT_QS = (1, 4)


class StepBench:
    """The harness replica (target only) with B sequences at a fixed context, and its one-step function."""

    def __init__(self, tiny: bool, device: str, context: int, max_B: int, max_q: int, seed: int = 0):
        self.device = torch.device(device)
        self.is_cuda = self.device.type == "cuda"
        self.tgt = tiny_target() if tiny else load_target("qwen3-8b")
        self.dtype = torch.bfloat16 if self.is_cuda else torch.float32
        self.context = context
        self.max_B, self.max_q = max_B, max_q
        self.caps = Caps(max_num_seqs=max_B, max_num_batched_tokens=max(max_B * max_q, 16),
                         max_model_len=context + max_q + 16, k_max=max(max_q - 1, 1), max_updates=16)
        n_sm = torch.cuda.get_device_properties(self.device).multi_processor_count if self.is_cuda else 1
        self.rp = Replica(self.tgt, None, device, self.dtype, self.caps, seed=seed, n_sm=n_sm)
        # blocks per sequence: the context and the q new tokens; each sequence owns its blocks, spread over the
        # pool in a random order (a pool that has served many sequences), block 0 stays the null block
        self.bps = (context + max_q + PAGE - 1) // PAGE
        self.rp.allocate_kv(max_B * self.bps + 1)
        rng = np.random.default_rng(seed)
        blocks = rng.permutation(max_B * self.bps) + 1
        self.bt_h = np.zeros((max_B + 1, self.caps.max_blocks_per_seq), dtype=np.int64)
        self.bt_h[:max_B, : self.bps] = blocks.reshape(max_B, self.bps)
        self.rp.bt.copy_(torch.from_numpy(self.bt_h).to(torch.int32))
        km = max(max_q - 1, 1)
        g = torch.Generator(device=self.device).manual_seed(seed + 1)
        self.dtok = torch.randint(0, self.tgt.vocab, (max_B, km), device=self.device, generator=g)
        self.dprob = torch.rand((max_B, km), device=self.device, generator=g) * 0.5 + 0.5
        self.rng = rng

    def set_batch(self, B: int, q: int):
        """Metadata of a pure decode/verify step: B sequences (rows 0..B-1), q tokens each at positions
        context .. context+q-1, their cache slots through the block table; one H2D copy, untimed."""
        rp, off = self.rp, self.rp.layout.off
        m = rp.meta_h
        m[:] = 0
        rows = np.arange(B)
        pos = self.context + np.arange(q)[None, :] + np.zeros((B, 1), np.int64)
        slot = self.bt_h[rows[:, None], pos // PAGE] * PAGE + pos % PAGE
        T = B * q
        m[off["ids"]: off["ids"] + T] = self.rng.integers(0, self.tgt.vocab, T)
        m[off["pos"]: off["pos"] + T] = pos.ravel()
        m[off["slot"]: off["slot"] + T] = slot.ravel()
        m[off["drow"]: off["drow"] + B] = rows
        m[off["dpos0"]: off["dpos0"] + B] = self.context
        rp.meta_d.copy_(rp.meta_h_t)
        if self.is_cuda:
            torch.cuda.synchronize()

    def step(self, B: int, q: int) -> torch.Tensor:
        """One target step: ``Replica.step``'s target forward, LM head, sampling and (q > 1) accept test,
        without the draft; every tensor it reads is static, so it is graph-capturable."""
        rp, t = self.rp, self.tgt
        T = B * q
        ids, pos, slots = rp.sec("ids", T), rp.sec("pos", T), rp.sec("slot", T)
        groups = rp._groups(B, q, 0, choose_nsplit(B, t.n_kv_heads, rp.n_sm))
        x = F.embedding(ids, rp.embed)
        res = None
        for li, lw in enumerate(rp.layers):
            h, res = hops.add_rmsnorm(x, res, lw["ln1"], t.rms_eps)
            x = rp._attn_block(h, lw, li, pos, slots, groups, t.n_heads, t.n_kv_heads, t.qk_norm)
            h, res = hops.add_rmsnorm(x, res, lw["ln2"], t.rms_eps)
            if t.is_moe:
                x = hops.moe(h, lw["wr"], lw["w1"], lw["w2"], t.top_k)
            else:
                x = hops.silu_mul(h @ lw["wgu"].t()) @ lw["wd"].t()
        h, _ = hops.add_rmsnorm(x, res, rp.final_norm, t.rms_eps)
        logits = h @ rp.lm_head.t()
        probs = torch.softmax(logits, dim=-1, dtype=torch.float32)
        outs = []
        if q > 1:  # the harness's accept test of the k = q-1 draft tokens (min(1, p/q) rule)
            k = q - 1
            dtok = self.dtok[:B, :k]
            pt = probs.view(B, q, -1)[:, :k].gather(2, dtok.unsqueeze(-1)).squeeze(-1)
            u = torch.rand((B, k), device=self.device)
            outs.append((u * self.dprob[:B, :k] <= pt).to(torch.int32).view(-1))
        noise = torch.empty_like(probs).exponential_()
        sampled = probs.div_(noise).argmax(dim=-1).to(torch.int32)
        return torch.cat([sampled] + outs) if outs else sampled


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def _stats(xs) -> tuple[float, float, float]:
    a = np.asarray(xs, float)
    return float(np.median(a)), float(np.percentile(a, 25)), float(np.percentile(a, 75))


def same_as_harness_step(sb: StepBench, B: int, seed: int = 7) -> bool:
    """The decode step (q = 1) samples the same tokens as the harness's own ``Replica.step`` (k = 0, no prefill)
    under the same random seed: this benchmark times the harness's step, not a look-alike."""
    sb.set_batch(B, 1)
    torch.manual_seed(seed)
    a = sb.step(B, 1).clone()
    torch.manual_seed(seed)
    b = sb.rp.step(B, 0, 0, 0, 0).clone()
    ok = bool(torch.equal(a, b)) and bool(((a >= 0) & (a < sb.tgt.vocab)).all())
    return ok


def count_kernels(sb: StepBench, B: int, q: int) -> int:
    """GPU kernels of one eager step (torch.profiler, CUDA activity); -1 where it cannot be counted."""
    if not sb.is_cuda:
        return -1
    try:
        from torch.autograd import DeviceType
        from torch.profiler import ProfilerActivity, profile

        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            sb.step(B, q)
            torch.cuda.synchronize()
        return int(sum(1 for e in prof.events() if e.device_type == DeviceType.CUDA))
    except Exception as e:  # noqa: BLE001 - a count is a bonus, the timings are the result
        print(f"[kernels] not counted: {e!r}", flush=True)
        return -1


def sleep_rate(dev) -> float:
    """Cycles per second of torch.cuda._sleep (to hold the GPU a chosen time)."""
    n = 20_000_000
    torch.cuda._sleep(n // 10)
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    torch.cuda._sleep(n)
    e1.record()
    e1.synchronize()
    return n / (e0.elapsed_time(e1) / 1e3)


def bench_point(sb: StepBench, B: int, q: int, repeats: int, steps: int, cyc_per_s: float) -> tuple[list, dict]:
    dev = sb.device
    sb.set_batch(B, q)
    # warm-up: Triton JIT of this shape's kernels, cuBLAS heuristics, the caching allocator
    for _ in range(3):
        sb.step(B, q)
    _sync(dev)
    info = {"n_kernels": -1}  # counted after every timing (a profiler session may slow later launches)
    res = {}
    # eager, host issue time of one step (queue empty, no sync inside)
    xs = []
    for _ in range(repeats):
        _sync(dev)
        t0 = time.perf_counter()
        sb.step(B, q)
        xs.append(time.perf_counter() - t0)
        _sync(dev)
    res["eager_host"] = (_stats(xs), 1)
    # eager, host free-running: back-to-back steps, synchronize at the ends only
    xs = []
    for _ in range(repeats):
        _sync(dev)
        t0 = time.perf_counter()
        for _ in range(steps):
            sb.step(B, q)
        _sync(dev)
        xs.append((time.perf_counter() - t0) / steps)
    res["eager_wall"] = (_stats(xs), steps)
    if sb.is_cuda:
        # eager, GPU only: a sleep kernel keeps the GPU busy while the host queues the whole step
        hold = 1.5 * max(res["eager_host"][0][2], res["eager_host"][0][0]) + 2e-3
        cyc = int(hold * cyc_per_s)
        evs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeats)]
        for e0, e1 in evs:
            torch.cuda.synchronize()
            torch.cuda._sleep(cyc)
            e0.record()
            sb.step(B, q)
            e1.record()
        torch.cuda.synchronize()
        res["eager_gpu"] = (_stats([e0.elapsed_time(e1) / 1e3 for e0, e1 in evs]), 1)
        info["sleep_s"] = hold
        # graph: captured at exactly B (no padding), replayed back to back
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            sb.step(B, q)
        for _ in range(3):
            g.replay()
        torch.cuda.synchronize()
        evs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeats)]
        for e0, e1 in evs:
            e0.record()
            g.replay()
            e1.record()
        torch.cuda.synchronize()
        res["graph"] = (_stats([e0.elapsed_time(e1) / 1e3 for e0, e1 in evs]), 1)
        xs = []
        for _ in range(repeats):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(steps):
                g.replay()
            torch.cuda.synchronize()
            xs.append((time.perf_counter() - t0) / steps)
        res["graph_wall"] = (_stats(xs), steps)
        del g
        torch.cuda.empty_cache()
    rows = []
    for mode in ("graph", "graph_wall", "eager_wall", "eager_gpu", "eager_host"):
        if mode not in res:
            continue
        (med, p25, p75), spr = res[mode]
        rows.append({"B": B, "q": q, "tokens": B * q, "context": sb.context, "mode": mode, "time_s": med,
                     "p25_s": p25, "p75_s": p75, "repeats": repeats, "steps_per_repeat": spr,
                     "n_kernels": -1 if mode.startswith("eager") else ""})
    return rows, info


def _host_cpu() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _fmt(v):
    return f"{v:.6g}" if isinstance(v, float) else v


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="tiny model (CPU smoke test)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--batches", default=",".join(map(str, DEFAULT_BATCHES)))
    ap.add_argument("--qs", default=",".join(map(str, DEFAULT_QS)), help="tokens per sequence (1 = decode, k+1)")
    ap.add_argument("--context", type=int, default=2048, help="cached tokens per sequence")
    ap.add_argument("--repeats", type=int, default=25)
    ap.add_argument("--steps", type=int, default=5, help="back-to-back steps per wall-time repeat")
    ap.add_argument("--budget-s", type=float, default=240.0,
                    help="skip (B, q) points that would not end within this many seconds of the start")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    t_prog = time.perf_counter()
    dev = torch.device(a.device)
    is_cuda = dev.type == "cuda"
    if not is_cuda:
        torch.set_num_threads(1)  # tiny CPU kernels: threading only adds overhead
    batches = [int(x) for x in a.batches.split(",") if x]
    qs = [int(x) for x in a.qs.split(",") if x]
    points = [(B, q) for B in batches for q in qs]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    dev_name = torch.cuda.get_device_name(dev) if is_cuda else f"cpu-{platform.machine()}"
    gpu = next((g for g in ("h200", "h100", "a100", "b200", "l40s") if g in dev_name.lower()), "cpu" if not is_cuda
               else dev_name.replace(" ", "_"))
    t0 = time.perf_counter()
    sb = StepBench(a.tiny, a.device, a.context, max(batches), max(qs), seed=a.seed)
    _sync(dev)
    init_s = time.perf_counter() - t0
    cyc = sleep_rate(dev) if is_cuda else 0.0
    meta = {
        "gpu": gpu, "device_name": dev_name, "host_cpu": _host_cpu(), "torch": torch.__version__,
        "cuda": torch.version.cuda, "triton": _triton_version(), "python": platform.python_version(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(), "command": " ".join(sys.argv),
        "model": sb.tgt.name, "target": sb.tgt.to_dict(), "dtype": str(sb.dtype).replace("torch.", ""),
        "context": a.context, "points": points, "repeats": a.repeats, "steps_per_wall_repeat": a.steps,
        "kv_blocks": sb.rp.num_blocks, "kv_bytes": sb.rp.kv.numel() * sb.rp.kv.element_size(),
        "weights_bytes": sb.rp.weight_bytes(), "init_s": init_s, "sleep_cycles_per_s": cyc,
        "method": ("one target step of the ground-truth harness's model (rlsim/calibration/harness/model.py: forward, "
                   "LM head, fp32 softmax + exponential-race sampling, accept test when q > 1; no draft, no H2D/D2H). "
                   "graph: CUDA-event time per replay of a graph captured at exactly B; graph_wall: wall per replay, "
                   "back to back; eager_wall: wall per step over back-to-back eager steps, synchronize at the ends; "
                   "eager_gpu: CUDA events around an eager step queued behind a sleep kernel longer than its issue "
                   "time (GPU-only time); eager_host: host issue time of one eager step. Medians over the repeats."),
        "script": "rlsim/calibration/mb_eager_step.py", "completed": [], "skipped": [], "point_s": {},
        "n_kernels": {},
    }
    csv_p, meta_p = out / "eager_step.csv", out / "meta_eager_step.json"
    all_rows: list = []

    def write_csv():
        with open(csv_p, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(COLUMNS)
            for r in all_rows:
                w.writerow([_fmt(v) for v in [gpu, dev_name, sb.tgt.name, *[r[c] for c in COLUMNS[3:]]]])

    def dump():
        meta["program_s"] = time.perf_counter() - t_prog
        meta_p.write_text(json.dumps(meta, indent=1, default=str) + "\n")

    meta["same_as_harness_step"] = same_as_harness_step(sb, min(batches))
    write_csv()
    dump()
    print(f"[setup] {dev_name} torch {torch.__version__} model={sb.tgt.name} context={a.context} "
          f"kv={meta['kv_bytes'] / 2**30:.1f}GiB weights={meta['weights_bytes'] / 2**30:.1f}GiB "
          f"init={init_s:.1f}s points={len(points)}", flush=True)
    last = {}
    for B, q in points:
        elapsed = time.perf_counter() - t_prog
        # estimate: the last point's time scaled by tokens (GPU-bound) or equal (host-bound), whichever is larger
        est = max((s * max(1.0, B * q / tok) for tok, s in last.items()), default=0.0)
        if elapsed + est > a.budget_s:
            print(f"[skip] B={B} q={q}: est {est:.1f}s does not fit ({elapsed:.0f}s of {a.budget_s:.0f}s)", flush=True)
            meta["skipped"].append([B, q])
            dump()
            continue
        t0 = time.perf_counter()
        rows, info = bench_point(sb, B, q, a.repeats, a.steps, cyc)
        dt = time.perf_counter() - t0
        last = {B * q: dt}
        all_rows.extend(rows)
        write_csv()
        meta["completed"].append([B, q])
        meta["point_s"][f"{B}x{q}"] = dt
        dump()
        t = {r["mode"]: r["time_s"] * 1e3 for r in rows}
        print(f"[point] B={B:4d} q={q} tokens={B * q:5d} " + " ".join(f"{m}={v:.3f}ms" for m, v in t.items())
              + f" [{dt:.1f}s, t={time.perf_counter() - t_prog:.0f}s]", flush=True)
    # kernels per eager step, after all the timings
    if is_cuda and time.perf_counter() - t_prog < a.budget_s + 30:
        for B, q in meta["completed"]:
            sb.set_batch(B, q)
            n = count_kernels(sb, B, q)
            meta["n_kernels"][f"{B}x{q}"] = n
            for r in all_rows:
                if r["B"] == B and r["q"] == q and r["mode"].startswith("eager"):
                    r["n_kernels"] = n
        write_csv()
        print("[kernels] " + " ".join(f"{k}={v}" for k, v in meta["n_kernels"].items()), flush=True)
    dump()
    print(f"[done] {len(meta['completed'])} points, {len(meta['skipped'])} skipped, {meta['program_s']:.0f}s",
          flush=True)
    return meta


def _triton_version() -> str:
    try:
        import triton

        return triton.__version__
    except Exception:  # noqa: BLE001
        return ""


if __name__ == "__main__":
    main()
