"""Measure real speculative rollouts on one GPU and write runs / sequences / iterations CSVs.

    python3 rlsim/calibration/harness/run_grid.py --device cuda --grid h100 --out DIR
    python3 rlsim/calibration/harness/run_grid.py --device cpu --tiny --out DIR

The script puts rlsim/calibration on sys.path and imports this folder as the package
``harness``, so nothing else of rlsim (nor its dependencies) is imported.
Outputs (flushed after every run): runs.csv, sequences.csv, iterations.csv.gz (one gzip
member per run), meta.json.
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import gzip
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "harness"  # noqa: A001

import numpy as np  # noqa: E402
import torch  # noqa: E402

from .attention import PAGE, exactness_check, fused_ops_check  # noqa: E402
from .config import load_draft, load_target, tiny_draft, tiny_moe_target, tiny_target  # noqa: E402
from .engine import ITER_COLUMNS, Engine  # noqa: E402
from .model import Caps, Replica  # noqa: E402
from .workload import LengthSpec, expected_al, sample_lengths, solve_rate  # noqa: E402

# Lengths are the brief's scaled by 1/2 so that the whole grid fits the device time:
# prompts ~128 (cap 512), short responses ~256 (cap 1024), long ~1024 (cap 4096).
LENGTHS = {
    "short": LengthSpec(128, 0.6, 16, 512, 256, 0.8, 8, 1024),
    "long": LengthSpec(128, 0.6, 16, 512, 1024, 0.8, 8, 4096),
    "tiny": LengthSpec(12, 0.5, 2, 40, 24, 0.6, 1, 60),
    "tinylong": LengthSpec(12, 0.5, 2, 40, 120, 0.3, 60, 200),
}
AL_FRACTIONS = (0.5, 0.7, 0.9)

RUN_COLUMNS = ["run_id", "gpu", "model", "draft", "k", "acceptance_rates", "target_al",
               "realized_al", "n_seqs", "prompt_len_mean", "response_len_mean",
               "response_len_max", "seed", "kv_capacity_tokens", "max_num_batched_tokens",
               "max_num_seqs", "cudagraph_max_tokens", "total_time_s", "iterations",
               "graph_iterations", "preemptions", "tokens_generated",
               # extras
               "length_kind", "al_fraction", "sum_iter_time_s", "prompt_len_max",
               "block_size", "dtype", "device_name"]
SEQ_COLUMNS = ["run_id", "seq_id", "prompt_len", "response_len", "finish_time_s", "rounds",
               "accepted_drafts", "preemptions"]


def plan_grid(name: str) -> list[dict]:
    """Runs in priority order (most important first)."""
    runs = []

    def add(length, N, k, frac):
        runs.append(dict(length=length, N=N, k=k, frac=frac))

    if name in ("h100", "full"):
        Ns = [16, 256, 64, 512]
        for N in Ns:                       # tier 1: AR and k=3 at AL 0.7
            add("short", N, 0, None)
            add("short", N, 3, 0.7)
        for k in (1, 5, 7):                # tier 2: the other k at AL 0.7
            for N in Ns:
                add("short", N, k, 0.7)
        for N in (16, 256):                # tier 3: long responses
            add("long", N, 0, None)
            add("long", N, 3, 0.7)
        for frac in (0.5, 0.9):            # tier 4: the other acceptance levels
            for k in (3, 1, 5, 7):
                for N in Ns:
                    add("short", N, k, frac)
    elif name == "h200":
        for N in (16, 256):
            add("short", N, 0, None)
            add("short", N, 3, 0.7)
            add("short", N, 7, 0.7)
        for N in (16, 256):
            add("short", N, 3, 0.5)
            add("short", N, 3, 0.9)
        for N in (64, 512):
            add("short", N, 0, None)
            add("short", N, 3, 0.7)
    elif name == "moe":  # an MoE target (--model qwen3-30b-a3b --draft eagle3-qwen3-30b-a3b) on one GPU
        for N in (16, 64, 256):            # tier 1: AR and k=3 at AL 0.7
            add("short", N, 0, None)
            add("short", N, 3, 0.7)
        add("short", 512, 0, None)         # tier 2: a larger batch, long responses
        add("short", 512, 3, 0.7)
        for N in (16, 256):
            add("long", N, 0, None)
            add("long", N, 3, 0.7)
        for k in (1, 7):                   # tier 3: other k, other acceptance
            for N in (16, 256):
                add("short", N, k, 0.7)
        for frac in (0.5, 0.9):
            for N in (16, 256):
                add("short", N, 3, frac)
    elif name == "quick":
        add("short", 16, 0, None)
        add("short", 16, 3, 0.7)
    elif name == "tiny":
        for k in (0, 3):
            add("tiny", 6, k, None if k == 0 else 0.7)
    else:
        raise ValueError(name)
    return runs


def gpu_label(device_name: str) -> str:
    n = device_name.lower()
    for lab in ("h200", "h100", "a100", "b200", "gb200", "l40s"):
        if lab in n:
            return lab
    return "cpu" if "cpu" in n else n.replace(" ", "_")


def driver_version() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=driver_version",
                               "--format=csv,noheader"], capture_output=True, text=True,
                              timeout=20).stdout.strip()
    except Exception:
        return ""


class Writer:
    def __init__(self, out: Path):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.runs = out / "runs.csv"
        self.seqs = out / "sequences.csv"
        self.iters = out / "iterations.csv.gz"
        for p, cols in ((self.runs, RUN_COLUMNS), (self.seqs, SEQ_COLUMNS)):
            if not p.exists():
                with open(p, "w", newline="") as f:
                    csv.writer(f).writerow(cols)
        if not self.iters.exists():
            with gzip.open(self.iters, "wt", newline="") as f:
                csv.writer(f).writerow(["run_id", *ITER_COLUMNS])

    def write(self, row: dict, seqs, iters):
        rid = row["run_id"]
        with open(self.runs, "a", newline="") as f:
            csv.writer(f).writerow([_fmt(row[c]) for c in RUN_COLUMNS])
        with open(self.seqs, "a", newline="") as f:
            w = csv.writer(f)
            for sid, P, R, g, fin, rounds, acc, pre in seqs:
                assert g == R
                w.writerow([rid, sid, P, R, f"{fin:.6f}", rounds, acc, pre])
        with gzip.open(self.iters, "at", newline="") as f:
            w = csv.writer(f)
            for it in iters:
                w.writerow([rid] + [_fmt(v) for v in it])


def _fmt(v):
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return f"{v:.7g}"
    return v


def size_kv(rp: Replica, caps: Caps, util: float, max_B: int, k_max: int,
            graph_reserve: float) -> dict:
    """vLLM-style sizing: profile the peak activation memory of the largest eager steps on a
    small temporary pool, then give the KV pool util * total - weights - peak - non-torch -
    graph reserve."""
    dev = rp.device
    rp.allocate_kv(64)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    m, off = rp.meta_h, rp.layout.off
    m[:] = 0
    n_items = caps.max_num_batched_tokens // 16
    m[off["pqs"]: off["pqs"] + n_items] = np.arange(n_items) * 16
    m[off["pnq"]: off["pnq"] + n_items] = 16
    rp.meta_d.copy_(rp.meta_h_t)
    n_c = min(64, caps.max_num_seqs)
    rp.step(0, k_max, caps.max_num_batched_tokens, n_items, n_c)
    Q = k_max + 1
    B = min(max_B, caps.max_num_batched_tokens // Q, caps.max_num_seqs)
    rp.meta_h[:] = 0
    rp.meta_d.zero_()
    rp.step(B, k_max, 0, 0, 0)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    kv_tmp = rp.kv.numel() * rp.kv.element_size()
    rp.kv = None
    torch.cuda.empty_cache()
    free, total = torch.cuda.mem_get_info()
    reserved = torch.cuda.memory_reserved()
    non_torch = (total - free) - reserved
    weights = rp.weight_bytes()
    avail = util * total - weights - peak - max(non_torch, 0) - graph_reserve
    nb = int(avail // rp.kv_bytes_per_block())
    rp.allocate_kv(nb)
    info = dict(total_bytes=total, weights_bytes=weights, peak_activation_bytes=peak,
                non_torch_bytes=non_torch, graph_reserve_bytes=graph_reserve,
                kv_bytes=nb * rp.kv_bytes_per_block(), num_blocks=nb,
                kv_capacity_tokens=(nb - 1) * PAGE, tmp_pool_bytes=kv_tmp,
                profile_max_decode_batch=B, gpu_memory_utilization=util)
    print(f"[memory] total={total/2**30:.1f}GiB weights={weights/2**30:.2f}GiB "
          f"peak_act={peak/2**30:.2f}GiB non_torch={non_torch/2**30:.2f}GiB "
          f"kv={info['kv_bytes']/2**30:.1f}GiB -> {nb} blocks = "
          f"{info['kv_capacity_tokens']} tokens", flush=True)
    return info


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="tiny model config (tests)")
    ap.add_argument("--grid", default=None, help="h100 | h200 | moe | quick | tiny")
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget-s", type=float, default=1e9,
                    help="stop starting runs that would not end within this many seconds "
                         "of the program start")
    ap.add_argument("--deadline", type=float, default=0.0,
                    help="absolute time.time() after which no run may end (overrides "
                         "--budget-s when earlier)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--model", default="qwen3-8b", help="a catalog model (dense or MoE); with --tiny: tiny-moe")
    ap.add_argument("--draft", default="eagle3-qwen3-8b")
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.85)
    ap.add_argument("--kv-blocks", type=int, default=0, help="CPU / override pool size")
    ap.add_argument("--no-graphs", action="store_true")
    ap.add_argument("--max-num-seqs", type=int, default=1024)
    ap.add_argument("--max-num-batched-tokens", type=int, default=8192)
    ap.add_argument("--cudagraph-max-tokens", type=int, default=512)
    ap.add_argument("--runs", default="", help="comma list of run_ids to run (subset)")
    ap.add_argument("--skip-done", action="store_true",
                    help="skip run_ids already in OUT/runs.csv")
    ap.add_argument("--n-seqs", type=int, default=0, help="tiny: override N")
    ap.add_argument("--length", default="", help="tiny: override length kind")
    args = ap.parse_args(argv)
    t_prog = time.perf_counter()

    dev = torch.device(args.device)
    is_cuda = dev.type == "cuda"
    if not is_cuda and args.tiny:
        torch.set_num_threads(1)  # tiny CPU kernels: threading only adds overhead
    grid_name = args.grid or ("tiny" if args.tiny else "h100")
    runs = plan_grid(grid_name)
    if args.n_seqs or args.length:
        for r in runs:
            r["N"] = args.n_seqs or r["N"]
            r["length"] = args.length or r["length"]
    if args.tiny:
        tgt = tiny_moe_target() if args.model == "tiny-moe" else tiny_target()
        dft = tiny_draft(tgt)
    else:
        tgt = load_target(args.model)
        dft = load_draft(args.draft, tgt)
    dtype = torch.bfloat16 if is_cuda else torch.float32
    dev_name = torch.cuda.get_device_name(dev) if is_cuda else f"cpu-{platform.machine()}"
    gpu = gpu_label(dev_name)
    k_max = max(r["k"] for r in runs)
    max_len = max(LENGTHS[r["length"]].prompt_cap + LENGTHS[r["length"]].resp_cap
                  for r in runs)
    caps = Caps(max_num_seqs=args.max_num_seqs,
                max_num_batched_tokens=args.max_num_batched_tokens,
                max_model_len=max_len + 16, k_max=max(k_max, 1))
    n_sm = torch.cuda.get_device_properties(dev).multi_processor_count if is_cuda else 1
    out = Path(args.out)
    writer = Writer(out)
    done_ids = set()
    if args.skip_done and writer.runs.exists():
        with open(writer.runs) as f:
            done_ids = {r["run_id"] for r in csv.DictReader(f)}
    meta = dict(
        gpu=gpu, device_name=dev_name, driver=driver_version() if is_cuda else "",
        cuda=torch.version.cuda, torch=torch.__version__,
        triton=_triton_version(), python=platform.python_version(),
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(), command=" ".join(sys.argv),
        grid_name=grid_name, grid=runs, lengths={k: v.__dict__ for k, v in LENGTHS.items()},
        dtype=str(dtype).replace("torch.", ""), target=tgt.to_dict(), draft=dft.to_dict(),
        caps=dict(max_num_seqs=caps.max_num_seqs,
                  max_num_batched_tokens=caps.max_num_batched_tokens,
                  max_model_len=caps.max_model_len, block_size=PAGE,
                  cudagraph_max_tokens=args.cudagraph_max_tokens,
                  cudagraphs=not args.no_graphs and is_cuda),
        n_sm=n_sm, seed=args.seed,
        notes=("Random bf16 weights; synthetic acceptance (per-position conditional rates); "
               "one host sync per iteration (sampled tokens copied to the host); "
               "see docs/ground-truth-harness.md"),
        completed=[], skipped=[])
    meta_path = out / "meta.json"
    if meta_path.exists() and args.skip_done:
        old = json.loads(meta_path.read_text())
        meta["previous"] = {k: old.get(k) for k in ("date", "command", "completed", "skipped")}

    def dump_meta():
        meta_path.write_text(json.dumps(meta, indent=1, default=str))

    print(f"[setup] {dev_name} torch {torch.__version__} cuda {torch.version.cuda} "
          f"grid={grid_name} runs={len(runs)} model={tgt.name} draft={dft.name}", flush=True)
    # ---- exactness of the kernels (CUDA) on random data
    if is_cuda:
        t0 = time.perf_counter()
        meta["exactness_attention_rel_err"] = exactness_check(dev, torch.bfloat16,
                                                              tgt.n_kv_heads, tgt.group,
                                                              tgt.head_dim)
        meta["exactness_fused_ops_rel_err"] = fused_ops_check(dev, torch.bfloat16)
        meta["exactness_check_s"] = time.perf_counter() - t0
        bad = [k for k, v in meta["exactness_attention_rel_err"].items() if not v < 2e-2]
        if bad:
            dump_meta()
            raise SystemExit(f"attention kernel inexact: {bad}")
    # ---- the replica
    t0 = time.perf_counter()
    rp = Replica(tgt, dft, args.device, dtype, caps, seed=args.seed, n_sm=n_sm)
    if is_cuda:
        torch.cuda.synchronize()
    meta["init_weights_s"] = time.perf_counter() - t0
    meta["weights_bytes"] = rp.weight_bytes()
    max_B = max(r["N"] for r in runs)
    if is_cuda and not args.kv_blocks:
        meta["memory"] = size_kv(rp, caps, args.gpu_memory_utilization, max_B, caps.k_max,
                                 2.0 * 2**30)
    else:
        nb = args.kv_blocks or 4096
        rp.allocate_kv(nb)
        meta["memory"] = dict(num_blocks=nb, kv_capacity_tokens=(nb - 1) * PAGE,
                              weights_bytes=rp.weight_bytes())
    kv_cap = meta["memory"]["kv_capacity_tokens"]
    eng = Engine(rp, caps, use_graphs=not args.no_graphs,
                 graph_max_tokens=args.cudagraph_max_tokens)
    meta["capture_s"] = {}
    dump_meta()
    want = set(x for x in args.runs.split(",") if x)
    ar_time: dict = {}
    measured: dict = {}
    warmed = set()
    budget = args.budget_s
    if args.deadline:
        budget = min(budget, args.deadline - time.time() + (time.perf_counter() - t_prog))
    for r in runs:
        length, N, k, frac = r["length"], r["N"], r["k"], r["frac"]
        al = 1.0 if k == 0 else frac * (k + 1)
        a = solve_rate(k, al)
        rates = [a] * k
        rid = f"{gpu}-{length}-N{N}-k{k}" + (f"-al{frac}" if k else "")
        if (want and rid not in want) or rid in done_ids:
            continue
        # ---- budget: estimate from measured runs of the same (length, N)
        elapsed = time.perf_counter() - t_prog
        est = measured.get((length, N, k))
        if est is None:
            base = ar_time.get((length, N))
            est = 1.3 * base if base is not None else (
                2.0 * max(ar_time.values()) if ar_time else 0.0)
        setup_est = 0.0 if k in warmed else (12.0 if is_cuda else 0.0)
        if elapsed + est + setup_est > budget:
            print(f"[skip] {rid}: est {est:.1f}s + setup {setup_est:.0f}s does not fit "
                  f"({elapsed:.0f}s of {budget:.0f}s used)", flush=True)
            meta["skipped"].append(rid)
            dump_meta()
            continue
        if k not in warmed:
            t0 = time.perf_counter()
            cap_s = eng.capture(k)
            # untimed warm-up run (JIT of the eager variants, allocator)
            wp, wr = sample_lengths(LENGTHS["tiny"], 8, 99, "tiny")
            eng.run(wp, wr, k, rates, 99, iter_log=False)
            meta["capture_s"][str(k)] = dict(capture=cap_s, total=time.perf_counter() - t0,
                                             sizes=eng.capture_sizes(k) if eng.use_graphs
                                             else [])
            warmed.add(k)
            print(f"[graphs] k={k}: captured {len(eng.capture_sizes(k)) if eng.use_graphs else 0}"
                  f" sizes in {cap_s:.1f}s (+warm-up {time.perf_counter() - t0 - cap_s:.1f}s)",
                  flush=True)
        P, R = sample_lengths(LENGTHS[length], N, args.seed, length)
        res = eng.run(P, R, k, rates, args.seed, run_id=rid, progress_every=20.0)
        row = dict(run_id=rid, gpu=gpu, model=tgt.name, draft=dft.name if k else "",
                   k=k, acceptance_rates=";".join(f"{x:.6f}" for x in rates),
                   target_al=expected_al(rates), realized_al=res["realized_al"], n_seqs=N,
                   prompt_len_mean=float(np.mean(P)), response_len_mean=float(np.mean(R)),
                   response_len_max=int(np.max(R)), seed=args.seed, kv_capacity_tokens=kv_cap,
                   max_num_batched_tokens=caps.max_num_batched_tokens,
                   max_num_seqs=caps.max_num_seqs,
                   cudagraph_max_tokens=args.cudagraph_max_tokens if eng.use_graphs else 0,
                   total_time_s=res["total_time_s"], iterations=res["iterations"],
                   graph_iterations=res["graph_iterations"], preemptions=res["preemptions"],
                   tokens_generated=res["tokens_generated"], length_kind=length,
                   al_fraction=frac if k else "",
                   sum_iter_time_s=float(np.nansum([it[9] for it in res["iters"]])),
                   prompt_len_max=int(np.max(P)), block_size=PAGE,
                   dtype=str(dtype).replace("torch.", ""), device_name=dev_name)
        assert res["tokens_generated"] == int(np.sum(R))
        writer.write(row, res["seqs"], res["iters"])
        if k == 0:
            ar_time[(length, N)] = res["total_time_s"]
        measured[(length, N, k)] = max(measured.get((length, N, k), 0.0), res["total_time_s"])
        spd = ""
        if (length, N) in ar_time and k:
            spd = f" speedup_vs_AR={ar_time[(length, N)] / res['total_time_s']:.2f}"
        print(f"[run] {rid}: {res['total_time_s']:.2f}s iters={res['iterations']} "
              f"graph={res['graph_iterations']} AL={res['realized_al']:.2f} "
              f"(target {row['target_al']:.2f}) preempt={res['preemptions']}{spd} "
              f"[t={time.perf_counter() - t_prog:.0f}s]", flush=True)
        meta["completed"].append(rid)
        dump_meta()
    meta["program_s"] = time.perf_counter() - t_prog
    dump_meta()
    print(f"[done] {len(meta['completed'])} runs, {len(meta['skipped'])} skipped, "
          f"{meta['program_s']:.0f}s", flush=True)
    return meta


def _triton_version():
    try:
        import triton

        return triton.__version__
    except Exception:
        return ""


if __name__ == "__main__":
    main()
