"""Microbenchmarks of SGLang 0.5.6's sampler and verification ops (the ``sglang-0.5.6`` engine profile).

SGLang 0.5.6 is the release verl 0.7.x pins (``sglang[srt,openai]==0.5.6``). Each component is written op for
op as that release runs it at temperature 1.0 with log-probs returned (RL rollouts), on GPU tensors of the
real shapes, and timed as ``mb_engine.py`` times vLLM's (device time from a CUDA-graph replay, host issue
time back to back, one eager call); rows are appended to ``calibration/<gpu>/engine.csv``.

Components (``component`` column; file:line in the sglang 0.5.6 wheel, ``sglang/srt/...``):

* ``sglang_sampler_ar`` (batch B, vocab V): ``layers/logits_processor.py:917`` casts the logits to fp32;
  ``layers/sampler.py:114-131`` divides by the temperature in place and writes the softmax back into the
  logits; with no top-k/top-p/min-p (``can_sample_directly_from_probs``) ``sampling_from_probs_torch``
  (``sampler.py:390-402``) is ``torch.multinomial``; the log-probs are ``log(probs).clamp(min)``
  (``sampler.py:177``) and one gather per row (``sampler.py:200``).
* ``sglang_verify_sampler`` (B, k, V): ``speculative/eagle_info.py:306-346`` (non-greedy target-only
  tree sampling): the fp32 cast, the temperature repeated per draft token, ``softmax(logits / t)`` over
  [B(k+1), V], ``top_k_renorm_prob`` over [B(k+1), V] (sgl_kernel; top_k = all, one read and one write of
  every row: here a stand-in pass of the same traffic), a zero fp32 ``draft_probs`` [B, k+1, V], the
  uniform coins, and ``tree_speculative_sampling_target_only`` (sgl_kernel; per request it walks the k + 1
  candidates and samples the final token from relu(target - draft) over V at one position: here a Triton
  stand-in that reads those two rows twice, as the kernel's sum-then-sample does).
* ``sglang_accepted_logprobs`` (rows R = accepted tokens, V): ``speculative/eagle_worker.py:733-735,786-846``:
  the logits of the accepted rows gathered (a copy of [R, V] fp32), the temperature per accepted row,
  ``log_softmax(logits / t)`` and one gather per row.
* ``sglang_draft_choice`` (B, draft vocab): ``eagle_worker.py:647-651,1006-1011``: softmax over the draft
  vocabulary, ``fast_topk`` with topk = 1 (a max) and the ``hot_token_id`` map (draft -> target ids).

Without a GPU (tests) everything runs on the CPU with torch stand-ins of the Triton kernel.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import time
from pathlib import Path

try:
    from .mb_engine import CSV_COLS, _count_kernels, _cpu_model, _time_component, _version
except ImportError:  # script mode
    from mb_engine import CSV_COLS, _count_kernels, _cpu_model, _time_component, _version

SOURCES = {
    "sglang_sampler_ar": "sglang 0.5.6 srt/layers/logits_processor.py:917 (fp32 logits); srt/layers/sampler.py:85-205 "
                         "(temperature, in-place softmax, torch.multinomial via sampling_from_probs_torch 390-402, "
                         "log(probs).clamp, gather)",
    "sglang_verify_sampler": "sglang 0.5.6 srt/speculative/eagle_info.py:306-346 (softmax over [B(k+1), V], "
                             "top_k_renorm_prob, zero draft_probs, coins, tree_speculative_sampling_target_only); "
                             "the two sgl_kernel kernels as stand-ins of their memory traffic",
    "sglang_accepted_logprobs": "sglang 0.5.6 srt/speculative/eagle_worker.py:733-735 (accepted rows gathered), "
                                "786-846 add_logprob_values (log_softmax(logits / t) over the accepted rows, gather)",
    "sglang_draft_choice": "sglang 0.5.6 srt/speculative/eagle_worker.py:647-651, 1006-1011 (softmax over the draft "
                           "vocabulary, fast_topk with topk = 1, hot_token_id map)",
}

_TREE_KERNEL = None


def _tree_kernel():
    """Triton stand-in of tree_speculative_sampling_target_only's vocabulary traffic: one program per request
    reads the target and draft rows of its final position twice (sum of relu(t - d), then the inverse-CDF
    search), as the sgl_kernel kernel's two passes over V."""
    global _TREE_KERNEL
    if _TREE_KERNEL is not None:
        return _TREE_KERNEL
    import triton
    import triton.language as tl

    @triton.jit
    def tree_final_sample(target_ptr, draft_ptr, last_ptr, coin_ptr, out_ptr, V, stride_row, BLOCK: tl.constexpr):
        b = tl.program_id(0)
        row = tl.load(last_ptr + b).to(tl.int64)
        acc = tl.zeros([BLOCK], dtype=tl.float32)
        for start in range(0, V, BLOCK):
            offs = start + tl.arange(0, BLOCK)
            m = offs < V
            t = tl.load(target_ptr + row * stride_row + offs, mask=m, other=0.0)
            d = tl.load(draft_ptr + row * stride_row + offs, mask=m, other=0.0)
            acc += tl.maximum(t - d, 0.0)
        total = tl.sum(acc, axis=0)
        u = tl.load(coin_ptr + b) * total
        found = tl.zeros([BLOCK], dtype=tl.int32) + V
        run = 0.0
        for start in range(0, V, BLOCK):
            offs = start + tl.arange(0, BLOCK)
            m = offs < V
            t = tl.load(target_ptr + row * stride_row + offs, mask=m, other=0.0)
            d = tl.load(draft_ptr + row * stride_row + offs, mask=m, other=0.0)
            x = tl.maximum(t - d, 0.0)
            c = tl.cumsum(x, axis=0) + run
            hit = (c >= u) & m
            found = tl.minimum(found, tl.where(hit, offs, V))
            run += tl.sum(x, axis=0)
        tl.store(out_ptr + b, tl.min(found, axis=0))

    _TREE_KERNEL = tree_final_sample
    return _TREE_KERNEL


def sampler_ar(torch, logits_bf16, temperature):
    logits = logits_bf16.float()  # logits_processor.py:917
    logits.div_(temperature)  # sampler.py:114
    logits[:] = torch.softmax(logits, dim=-1)  # sampler.py:117-121
    probs = logits
    ids = torch.multinomial(probs, num_samples=1).view(-1).to(torch.int32)  # sampler.py:400
    logprobs = torch.log(probs).clamp(min=torch.finfo(probs.dtype).min)  # sampler.py:177
    out = logprobs[torch.arange(ids.shape[0], device=ids.device), ids.long()]  # sampler.py:200
    return ids, out


class VerifyInputs:
    def __init__(self, torch, B, k, V, device):
        Q = k + 1
        self.B, self.k, self.V, self.Q = B, k, V, Q
        self.logits = torch.randn((B * Q, V), device=device, dtype=torch.bfloat16)
        self.temperatures = torch.ones((B, 1), device=device, dtype=torch.float32)
        self.candidates = torch.randint(0, V, (B, Q), device=device, dtype=torch.int64)
        self.last = (torch.arange(B, device=device, dtype=torch.int32) * Q + (Q - 1)).contiguous()
        self.out = torch.empty(B, device=device, dtype=torch.int32)
        self.device = device


def verify_sampler(torch, x: VerifyInputs, use_triton: bool):
    logits = x.logits.float()  # logits_processor.py:917
    t = torch.repeat_interleave(x.temperatures, x.Q, dim=0)  # eagle_info.py:307-309
    target_probs = torch.softmax(logits / t, dim=-1)  # eagle_info.py:311-313
    target_probs = torch.mul(target_probs, 1.0)  # top_k_renorm_prob stand-in (one read + one write per row)
    target_probs = target_probs.reshape(x.B, x.Q, -1)  # eagle_info.py:326
    draft_probs = torch.zeros(target_probs.shape, dtype=torch.float32, device=x.device)  # 328-330
    coins = torch.rand_like(x.candidates, dtype=torch.float32, device=x.device)  # 333-335
    coins_final = torch.rand((x.B,), dtype=torch.float32, device=x.device)  # 337-339
    tp = target_probs.view(x.B * x.Q, -1)
    dp = draft_probs.view(x.B * x.Q, -1)
    _ = coins.gather(1, torch.zeros((x.B, 1), device=x.device, dtype=torch.int64))
    if use_triton:
        _tree_kernel()[(x.B,)](tp, dp, x.last, coins_final, x.out, x.V, tp.stride(0), BLOCK=4096)
        return x.out
    rows = x.last.long()
    r = torch.relu(tp[rows] - dp[rows])
    c = torch.cumsum(r, dim=-1)
    return torch.searchsorted(c, (coins_final * c[:, -1]).unsqueeze(-1)).view(-1)


class AcceptedInputs:
    def __init__(self, torch, R, V, device):
        self.logits = torch.randn((2 * R, V), device=device, dtype=torch.float32)
        self.accepted = torch.arange(R, device=device, dtype=torch.int64) * 2
        self.temperatures = torch.ones((R, 1), device=device, dtype=torch.float32)
        self.ids = torch.randint(0, V, (R,), device=device, dtype=torch.int64)
        self.arange = torch.arange(R, device=device)


def accepted_logprobs(torch, x: AcceptedInputs):
    rows = x.logits[x.accepted]  # eagle_worker.py:733-735
    temps = x.temperatures[x.accepted // 2]  # eagle_worker.py:802
    logprobs = torch.nn.functional.log_softmax(rows / temps, dim=-1)  # 808-810
    return logprobs[x.arange, x.ids]  # 840-843


def draft_choice(torch, logits, hot):
    probs = torch.softmax(logits.float(), dim=-1)  # eagle_worker.py:647, 1009
    p, idx = torch.max(probs, dim=-1, keepdim=True)  # fast_topk, topk = 1
    return p, hot[idx]  # hot_token_id map


def grid(quick: bool):
    batches = [1, 16, 64] if quick else [1, 4, 16, 32, 64, 128, 256, 512]
    ks = [3] if quick else [1, 3, 5, 7]
    vocabs = [151936] if quick else [151936, 128256]
    rows = [1, 64, 256] if quick else [1, 4, 16, 64, 128, 256, 512, 1024, 2048]
    pts = []
    for V in vocabs:
        for B in batches:
            pts.append(("sglang_sampler_ar", B, 0, V, 0))
            for k in ks:
                pts.append(("sglang_verify_sampler", B, k, V, 0))
        for R in rows:
            pts.append(("sglang_accepted_logprobs", R, 0, V, 0))
    for B in batches:
        pts.append(("sglang_draft_choice", B, 0, 151936, 32000))
    return pts


def run(out_dir: Path, quick: bool = False, small_cpu: bool = False) -> Path:
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gpu = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    use_triton = device.type == "cuda"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "engine_sglang.csv"
    pts = grid(quick)
    if small_cpu:  # tests: tiny vocabulary and batches
        pts = [(c, min(B, 4), k, min(V, 1000), min(dv, 100)) for c, B, k, V, dv in pts[:6]] + \
              [("sglang_draft_choice", 2, 0, 1000, 100)]
    rows = []
    failures: list[str] = []
    t_start = time.time()
    for i, (comp, B, k, V, dv) in enumerate(pts):
        torch.manual_seed(0)
        if comp == "sglang_sampler_ar":
            logits = torch.randn((B, V), device=device, dtype=torch.bfloat16)
            temp = torch.ones((B, 1), device=device)

            def fn(logits=logits, temp=temp):
                return sampler_ar(torch, logits, temp)
        elif comp == "sglang_verify_sampler":
            x = VerifyInputs(torch, B, k, V, device)

            def fn(x=x):
                return verify_sampler(torch, x, use_triton)
        elif comp == "sglang_accepted_logprobs":
            x = AcceptedInputs(torch, B, V, device)

            def fn(x=x):
                return accepted_logprobs(torch, x)
        elif comp == "sglang_draft_choice":
            dl = torch.randn((B, dv), device=device, dtype=torch.bfloat16)
            hot = torch.randint(0, V, (dv,), device=device)

            def fn(dl=dl, hot=hot):
                return draft_choice(torch, dl, hot)
        else:
            raise ValueError(comp)
        try:
            nk = _count_kernels(torch, fn, device)
            r = _time_component(torch, fn, device, nk or 40, repeats=5 if small_cpu else 15)
        except Exception as e:  # noqa: BLE001 - one failed component must not lose the others
            print(f"[{i + 1}/{len(pts)}] {comp} B={B} k={k} V={V}: FAILED {type(e).__name__}: {str(e)[:300]}", flush=True)
            if comp == "sglang_verify_sampler" and use_triton:
                use_triton = False  # the Triton stand-in failed: the torch stand-in from here on (said in meta)
                failures.append(f"triton stand-in failed ({type(e).__name__}); torch stand-in used")
            if device.type == "cuda":
                torch.cuda.synchronize()
            continue
        row = {"gpu": gpu, "component": comp, "batch": B, "k": k, "vocab": V, "draft_vocab": dv, "n_kernels": nk, **r}
        rows.append(row)
        print(f"[{i + 1}/{len(pts)}] {comp} B={B} k={k} V={V}: device {r['device_s'] * 1e6:.1f} us, host "
              f"{r['host_s'] * 1e6:.1f} us, eager {r['eager_s'] * 1e6:.1f} us, {nk} kernels "
              f"({time.time() - t_start:.0f} s)", flush=True)
        del fn
        if device.type == "cuda":
            torch.cuda.empty_cache()
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLS)
        w.writeheader()
        for r in rows:
            w.writerow({c: (f"{r[c]:.6e}" if isinstance(r[c], float) else r[c]) for c in CSV_COLS})
    meta = {"gpu": gpu, "torch": torch.__version__, "cuda": torch.version.cuda, "triton": _version("triton"),
            "python": platform.python_version(), "host_cpu": _cpu_model(), "date": time.strftime("%Y-%m-%d"),
            "quick": quick, "sources": SOURCES, "failures": failures, "engine": "sglang 0.5.6 (verl 0.7.x pin)",
            "method": "as mb_engine.py: device_s CUDA-graph replay (kernels only); host_s eager issue time per call, "
                      "back to back; eager_s one eager call + synchronize; medians. top_k_renorm_prob and "
                      "tree_speculative_sampling_target_only (sgl_kernel, not installable on the device) are "
                      "stand-ins of their memory traffic"}
    (out_dir / "meta_engine_sglang.json").write_text(json.dumps(meta, indent=1) + "\n")
    return path


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    run(Path(a.out), quick=a.quick)
    print("done", flush=True)
