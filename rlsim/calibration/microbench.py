"""Calibration microbenchmarks of rlsim (torch, run on a GPU machine).

    python -m rlsim.calibration.microbench --out DIR [--quick] [--ops gemm,attention,...]
    python rlsim/calibration/microbench.py --out DIR ...      (no rlsim package import)

Writes one CSV per op class into DIR (gemm, attention, moe, elementwise, sampling,
overhead, collectives) plus meta.json.  Rows are written and flushed one by one and
the run is resumable: rows already in a CSV (same key columns) are skipped.  torch
is imported lazily, inside the functions that measure (the simulator never needs it).
See docs/calibration-measurement.md for the method.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

if __package__ in (None, ""):  # script mode: import the sibling modules directly
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _timing as T
    import mb_grids as G
    from mb_common import Budget, CsvTable, Progress
else:
    from . import _timing as T
    from . import mb_grids as G
    from .mb_common import Budget, CsvTable, Progress

ALL_OPS = ["gemm", "attention", "moe", "moe_fused", "elementwise", "sampling", "overhead", "collectives",
           "attention_long"]
# share of a wall-clock budget (--budget-s) per op class; unused time rolls over
BUDGET_SHARES = {"gemm": 0.33, "attention": 0.37, "moe": 0.12, "moe_fused": 0.1, "elementwise": 0.05,
                 "sampling": 0.09, "overhead": 0.02, "collectives": 0.3,
                 "attention_long": 0.1}


def _mod(name):
    if __package__ in (None, ""):
        return __import__(name)
    import importlib
    return importlib.import_module(f"{__package__}.{name}")


# ---------------------------------------------------------------- per-op runs
def _loop(kind, points, out_dir, gpu, resume, progress, deadline, measure, key_row=None):
    """Generic loop: skip done rows, measure, write; stop at the deadline."""
    import torch

    stats = {"measured": 0, "failed": 0, "errors": []}
    with CsvTable(out_dir, kind, resume) as tab:
        prog = Progress(kind, len(points), enabled=progress)
        for pt in points:
            base = {"gpu": gpu, **(key_row(pt) if key_row else pt)}
            if tab.has(base):
                prog.step(skipped=True)
                continue
            if time.monotonic() > deadline:
                print(f"[{kind}] time budget reached: {prog.n}/{prog.total} visited", flush=True)
                stats["budget_stopped_at"] = prog.n
                break
            try:
                res = measure(pt)
                row = {**base, **res}
                tab.write(row)
                stats["measured"] += 1
                prog.step()
            except Exception as e:  # noqa: BLE001
                stats["failed"] += 1
                msg = f"{type(e).__name__}: {str(e)[:200]}"
                if len(stats["errors"]) < 20:
                    stats["errors"].append({"point": {k: v for k, v in base.items()
                                                      if not isinstance(v, list)}, "error": msg})
                print(f"[{kind}] FAILED {base}: {msg}", flush=True)
                if "out of memory" in msg.lower():
                    torch.cuda.empty_cache()
                try:
                    torch.cuda.synchronize()
                except Exception:  # noqa: BLE001
                    pass
                prog.step(failed=True)
        stats["progress"] = prog.summary()
    return stats


def run_gemm(out_dir, quick, resume, progress, deadline, gpu, workloads=None):
    ops = _mod("mb_ops")
    models, drafts = G.load_catalog(workloads)
    pts = G.gemm_grid(models, drafts, quick)
    gb = ops.GemmBench()
    gb.probe_fp8()
    info = {"fp8_mode": gb.fp8_mode, "fp8_pad_small_m_to_16": gb.fp8_pad16,
            "n_shapes": len(G.gemm_shapes(models, drafts, G.TP_QUICK if quick else G.TP_FULL))}
    # group by weights so each weight set is allocated once
    pts.sort(key=lambda p: (p["dtype"], p["n"], p["k"], p["m"]))

    def measure(p):
        if p["dtype"] == "fp8" and gb.fp8_mode is None:
            raise RuntimeError("fp8 _scaled_mm unsupported here")
        r = gb.measure(p["dtype"], p["m"], p["n"], p["k"])
        return {**r, "source": p["source"]}

    st = _loop("gemm", pts, out_dir, gpu, resume, progress, deadline, measure,
               key_row=lambda p: {k: p[k] for k in ("dtype", "m", "n", "k")})
    gb._w = None
    return {**st, **info}


def run_attention(out_dir, quick, resume, progress, deadline, gpu, long: bool = False):
    """The attention grid (``long``: the 32K-128K-token contexts of ``attention_long_grid``, appended to the same
    attention.csv)."""
    import torch

    A = _mod("mb_attention")
    cfg = {"max_sets": 64}
    errs = A.check_exactness(A.flash_varlen_attn, "cuda", extra_variants=("sdpa_cudnn",))
    cfg["packed_ok"] = errs.get("verify:flash_varlen_packed:seqused", 1) < 2e-2 or \
        errs.get("verify:flash_varlen_packed:prefix_pool", 1) < 2e-2
    cfg["seqused_ok"] = errs.get("verify:flash_varlen_packed:seqused", 1) < 2e-2
    cfg["cudnn_ok"] = errs.get("decode_uniform:sdpa_cudnn", 1) < 2e-2
    split_ok = {v: all(errs.get(f"{c}:{v}", 1) < 2e-2 for c in ("decode", "decode_uniform",
                                                                "verify"))
                for v in ("flash_split_packed", "flash_split_packed_torchcombine")}
    cfg["split_variant"] = next((v for v, ok in split_ok.items() if ok), None)
    cfg["n_sm"] = torch.cuda.get_device_properties(0).multi_processor_count
    bad = [k for k, v in errs.items() if "flash_varlen" == k.split(":")[1] and not v < 2e-2]
    if bad:
        print(f"[attention] WARNING: flash varlen inexact for {bad}", flush=True)
    total_mem = torch.cuda.get_device_properties(0).total_memory
    kv_limit = min(G.KV_LIMIT_BYTES, 0.45 * total_mem)
    if not cfg["seqused_ok"]:
        kv_limit = min(kv_limit, 0.3 * total_mem)
    pts = G.attention_long_grid(kv_limit) if long else G.attention_grid(quick, kv_limit_bytes=kv_limit)

    def key_row(p):
        r = p.row()
        return {k: r[k] for k in ("phase", "batch", "q_len", "kv_len_mean", "kv_dist",
                                  "n_q_heads", "n_kv_heads", "head_dim", "chunked")}

    def measure(p):
        row = A.measure_point(p, cfg)
        return {k: v for k, v in row.items()}

    st = _loop("attention", pts, out_dir, gpu, resume, progress, deadline, measure, key_row)
    torch.cuda.empty_cache()
    return {**st, "exactness_rel_err": errs, "config": cfg, "kv_limit_bytes": kv_limit}


def run_moe(out_dir, quick, resume, progress, deadline, gpu):
    ops = _mod("mb_ops")
    mb = ops.MoEBench()
    errs = mb.probe()
    pts = G.moe_grid(quick)
    pts.sort(key=lambda p: (p["hidden"], p["num_experts"], p["tokens"]))

    def measure(p):
        if mb.backend is None:
            raise RuntimeError("no MoE backend passed the exactness check")
        return mb.measure(p["tokens"], p["num_experts"], p["top_k"], p["hidden"],
                          p["moe_intermediate"])

    st = _loop("moe", pts, out_dir, gpu, resume, progress, deadline, measure)
    mb.W1 = mb.W2 = mb.Wr = None
    return {**st, "backend": mb.backend, "exactness_rel_err": errs}


def run_moe_fused(out_dir, quick, resume, progress, deadline, gpu):
    """The engine-style fused MoE (Triton, ``mb_fused_moe``) over the MoE grid -> moe_fused.csv."""
    fm = _mod("mb_fused_moe").FusedMoEBench()
    errs = fm.probe()
    pts = [{**p, "dtype": dt} for dt in ("bf16", "fp8") for p in G.moe_grid(quick)]  # fp8: w8a8, as vLLM
    pts.sort(key=lambda p: (p["dtype"], p["hidden"], p["num_experts"], p["tokens"]))
    st = _loop("moe_fused", pts, out_dir, gpu, resume, progress, deadline,
               lambda p: fm.measure(p["tokens"], p["num_experts"], p["top_k"], p["hidden"], p["moe_intermediate"],
                                    p["dtype"]))
    fm.W1 = fm.W2 = fm.Wr = fm._f8 = None
    return {**st, "exactness_rel_err": errs}


def run_elementwise(out_dir, quick, resume, progress, deadline, gpu):
    ops = _mod("mb_ops")
    eb = ops.ElementwiseBench()
    eb.probe()
    st = _loop("elementwise", G.elementwise_grid(quick), out_dir, gpu, resume, progress,
               deadline, lambda p: eb.measure(p["op"], p["tokens"], p["hidden"]))
    return {**st, "impl": {k: v[0] for k, v in eb.impl.items()}}


def run_sampling(out_dir, quick, resume, progress, deadline, gpu):
    ops = _mod("mb_ops")
    sb = ops.SamplingBench()
    return _loop("sampling", G.sampling_grid(quick), out_dir, gpu, resume, progress, deadline,
                 lambda p: sb.measure(p["op"], p["rows"], p["vocab"]))


def run_overhead(out_dir, quick, resume, progress, deadline, gpu):
    ops = _mod("mb_ops")
    return _loop("overhead", G.overhead_grid(quick), out_dir, gpu, resume, progress, deadline,
                 lambda p: ops.measure_overhead(p["mode"], p["n_kernels"]))


# ------------------------------------------------------------------ metadata
def _sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception:  # noqa: BLE001
        return ""


def device_info() -> dict:
    import torch

    p = torch.cuda.get_device_properties(0)
    return {
        "gpu": torch.cuda.get_device_name(0),
        "gpu_count": torch.cuda.device_count(),
        "sm_count": p.multi_processor_count,
        "l2_cache_bytes": getattr(p, "L2_cache_size", None),
        "total_memory_bytes": p.total_memory,
        "compute_capability": f"{p.major}.{p.minor}",
        "driver": (_sh(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
                   .splitlines() or [None])[0],
        "nvidia_smi_clocks": _sh(["nvidia-smi", "--query-gpu=clocks.sm,clocks.max.sm,clocks.mem,"
                                  "power.limit,temperature.gpu", "--format=csv"]),
        "cuda": torch.version.cuda,
        "torch": torch.__version__,
        "cudnn": torch.backends.cudnn.version(),
        "triton": _version("triton"),
        "python": platform.python_version(),
        "host": platform.node(),
    }


def _version(mod):
    try:
        return __import__(mod).__version__
    except Exception:  # noqa: BLE001
        return None


def grid_summary(quick: bool, workloads=None) -> dict:
    models, drafts = G.load_catalog(workloads)
    tps = G.TP_QUICK if quick else G.TP_FULL
    return {
        "quick": quick,
        "gemm": {"m": G.GEMM_M_QUICK if quick else G.GEMM_M_FULL, "tp": tps,
                 "dtypes": G.GEMM_DTYPES, "n_shapes": len(G.gemm_shapes(models, drafts, tps)),
                 "models": sorted(models), "drafts": sorted(drafts)},
        "attention": {"heads": G.ATTN_HEADS_QUICK if quick else G.ATTN_HEADS_FULL,
                      "batch": G.ATTN_BATCH_QUICK if quick else G.ATTN_BATCH_FULL,
                      "kv_len_mean": G.ATTN_KV_QUICK if quick else G.ATTN_KV_FULL,
                      "verify_q": G.VERIFY_Q_QUICK if quick else G.VERIFY_Q_FULL,
                      "chunk_q": G.CHUNK_Q, "lognormal_sigma": G.LOGNORMAL_SIGMA,
                      "lognormal_cap": G.LOGNORMAL_CAP, "head_dim": G.HEAD_DIM,
                      "prefill_max_tokens": G.PREFILL_MAX_TOKENS,
                      "n_points": len(G.attention_grid(quick))},
        "moe": {"models_hidden_inter": G.MOE_MODELS, "local_experts":
                G.MOE_LOCAL_QUICK if quick else G.MOE_LOCAL_FULL, "top_k": G.MOE_TOPK,
                "tokens": G.MOE_TOKENS_QUICK if quick else G.MOE_TOKENS_FULL},
        "elementwise": {"ops": G.ELEM_OPS, "tokens": G.ELEM_TOKENS_QUICK if quick else
                        G.ELEM_TOKENS_FULL, "hidden": G.ELEM_HIDDEN_QUICK if quick else
                        G.ELEM_HIDDEN_FULL},
        "sampling": {"ops": G.SAMPLING_OPS, "rows": G.SAMPLING_ROWS_QUICK if quick else
                     G.SAMPLING_ROWS_FULL, "vocab": G.SAMPLING_VOCAB_QUICK if quick else
                     G.SAMPLING_VOCAB_FULL},
        "overhead": {"n_kernels": G.OVERHEAD_N},
        "collectives": {"ops": G.COLL_OPS, "bytes": G.COLL_SIZES_QUICK if quick else
                        G.COLL_SIZES_FULL},
    }


def _write_meta(path: Path, meta: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=1, default=str))
    tmp.replace(path)


# ---------------------------------------------------------------------- main
def run_calibration(out_dir: Path, quick: bool = False, ops: list[str] | None = None,
                    resume: bool = True, progress: bool = True, budget_s: float | None = None,
                    device_kind: str | None = None, meta_name: str = "meta.json",
                    workloads: Path | None = None, ceilings: bool = True,
                    collective_ranks: list[int] | None = None) -> None:
    """Run the calibration microbenchmarks and write CSVs + meta into out_dir."""
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ops = list(ops) if ops else [o for o in ALL_OPS]
    unknown = [o for o in ops if o not in ALL_OPS]
    if unknown:
        raise ValueError(f"unknown ops {unknown}; known: {ALL_OPS}")
    if not torch.cuda.is_available():
        raise RuntimeError("the calibration microbenchmarks need a CUDA GPU")
    torch.backends.cuda.matmul.allow_tf32 = False
    if "collectives" in ops and torch.cuda.device_count() < 2:
        print("[collectives] fewer than 2 GPUs: skipped", flush=True)
        ops.remove("collectives")
    budget = Budget(budget_s, BUDGET_SHARES)
    meta_path = out_dir / meta_name
    meta = {}
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
        except Exception:  # noqa: BLE001
            meta = {}
    run = {
        "command": " ".join([sys.executable, *sys.argv]) if sys.argv and sys.argv[0] else None,
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "quick": quick, "ops": ops, "budget_s": budget_s,
        "device_kind": device_kind or os.environ.get("RLSIM_DEVICE_KIND"),
    }
    info = device_info()
    meta.update(info)
    meta["device_kind"] = run["device_kind"] or meta.get("device_kind")
    meta["dtypes"] = {"gemm": G.GEMM_DTYPES, "attention": ["bf16"], "moe": ["bf16"],
                      "elementwise": ["bf16"], "sampling": ["fp32 (bf16 logits in)"]}
    meta["date"] = run["started"][:10]
    meta.setdefault("runs", []).append(run)
    meta["grid"] = grid_summary(quick=False, workloads=workloads)
    gpu = info["gpu"]
    print(f"[calibration] {gpu} ({info['sm_count']} SMs, L2 {info['l2_cache_bytes']}, "
          f"{info['total_memory_bytes'] / 2**30:.1f} GiB), torch {info['torch']}, CUDA "
          f"{info['cuda']}, driver {info['driver']}; ops {ops}; quick={quick}", flush=True)
    if ceilings:
        c = T.measure_ceilings()
        meta.setdefault("ceilings_runs", []).append(c)
        meta["ceilings"] = c
        print(f"[ceilings] copy {c['copy_bw_rw_bytes_per_s'] / 1e12:.2f} TB/s (read+write), "
              f"bf16 8192^3 matmul {c['matmul_8192_bf16_flops_per_s'] / 1e12:.0f} TFLOP/s",
              flush=True)
    _write_meta(meta_path, meta)
    runners = {"gemm": lambda d: run_gemm(out_dir, quick, resume, progress, d, gpu, workloads),
               "attention": lambda d: run_attention(out_dir, quick, resume, progress, d, gpu),
               "attention_long": lambda d: run_attention(out_dir, quick, resume, progress, d, gpu, long=True),
               "moe": lambda d: run_moe(out_dir, quick, resume, progress, d, gpu),
               "moe_fused": lambda d: run_moe_fused(out_dir, quick, resume, progress, d, gpu),
               "elementwise": lambda d: run_elementwise(out_dir, quick, resume, progress, d, gpu),
               "sampling": lambda d: run_sampling(out_dir, quick, resume, progress, d, gpu),
               "overhead": lambda d: run_overhead(out_dir, quick, resume, progress, d, gpu)}
    results = meta.setdefault("results", {})
    for i, op in enumerate(ops):
        t0 = time.monotonic()
        try:
            if op == "collectives":
                C = _mod("mb_collectives")
                n = C.run_collectives(out_dir, quick, resume, progress, collective_ranks)
                st = {"ranks": collective_ranks or n}
            else:
                st = runners[op](budget.deadline(op, ops[i:]))
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            st = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
        st["elapsed_s"] = round(time.monotonic() - t0, 1)
        st["quick"] = quick
        results[op + (":quick" if quick else "")] = st
        try:
            import torch as _t
            _t.cuda.empty_cache()
        except Exception:  # noqa: BLE001
            pass
        _write_meta(meta_path, meta)
        print(f"[{op}] done in {st['elapsed_s']}s: "
              f"{ {k: v for k, v in st.items() if k not in ('errors', 'exactness_rel_err')} }",
              flush=True)
    run["finished"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    _write_meta(meta_path, meta)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--quick", action="store_true", help="small grid (a subset of the full one)")
    ap.add_argument("--ops", default=None, help=f"comma list of {','.join(ALL_OPS)}")
    ap.add_argument("--no-resume", action="store_true", help="start the CSVs anew")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="wall-clock budget shared among the op classes")
    ap.add_argument("--device-kind", default=None, help="recorded in meta.json")
    ap.add_argument("--meta-name", default="meta.json")
    ap.add_argument("--workloads", type=Path, default=None)
    ap.add_argument("--no-ceilings", action="store_true")
    ap.add_argument("--ranks", default=None,
                    help="collectives: comma list of participant counts (default: every GPU)")
    a = ap.parse_args(argv)
    ranks = [int(r) for r in a.ranks.split(",") if r.strip()] if a.ranks else None
    ops = [o.strip() for o in a.ops.split(",") if o.strip()] if a.ops else None
    run_calibration(a.out, quick=a.quick, ops=ops, resume=not a.no_resume,
                    progress=not a.no_progress, budget_s=a.budget_s, device_kind=a.device_kind,
                    meta_name=a.meta_name, workloads=a.workloads, ceilings=not a.no_ceilings,
                    collective_ranks=ranks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
