"""Fit the host cost per kernel of eager steps: a whole eager model forward (single steps) and an eager rollout
iteration of the harness (everything its loop does per step, host-bound).

The bare-op launch loop (calibration/h200/overhead.csv, mode ``eager``: 6.2 us per kernel) is a lower bound: a
real eager forward pays, per kernel, the Python of the model code, torch's dispatcher and Triton's launcher. The
harness's eager runs (calibration/h200/rollouts-eager, ``run_grid.py --no-graphs``) measure it: at a handful of
sequences an eager decode step is host-bound (its graphed twin takes 5.4 ms on the GPU, the eager step 13-18 ms),
so the step's time divided by the kernels rlsim counts for it (36 layers x 12 + 10 = 442 for Qwen3-8B, k = 0) is
the host cost per kernel.

Two rows of calibration/h200/overhead.csv (replacing older ones), with calibration/h200/meta_eager_forward.json:
- ``eager_rollout``: the rollouts' fit set, the k = 0 runs of 16 and 64 sequences (decode-only iterations at 3-16
  running sequences); every other eager run (k = 3, and 256 / 512 sequences) is held out and replayed by
  ``rlsim validate measured --gpu h200-eager``. The ideal engine (the harness) prices an eager iteration with it.
- ``eager_forward``: one eager target step alone (calibration/h200/eager_step.csv, rlsim/calibration/mb_eager_step.py:
  forward, LM head, sampling, back to back), the host-bound points (B <= 16, q = 1 and 4): eager wall time / 442.
  An engine whose per-step host work is measured separately (vLLM 0.17.1 under ``enforce_eager``) prices its
  forward's launches with it. The rollout's per-kernel cost is larger (39 vs 23 us): the harness's loop adds host
  work per iteration that a single step does not have (docs/validation.md).

    python scripts/fit_eager_launch.py [--check]   # --check: print, write nothing
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rlsim.catalog import load_model  # noqa: E402
from rlsim.costmodel.iteration import KERNELS_OUTSIDE_LAYERS, KERNELS_PER_DENSE_LAYER  # noqa: E402

SET = ROOT / "calibration" / "h200" / "rollouts-eager"
STEP_CSV = ROOT / "calibration" / "h200" / "eager_step.csv"
FIT_RUNS = ("h200-short-N16-k0", "h200-short-N64-k0")
OVERHEAD = ROOT / "calibration" / "h200" / "overhead.csv"
META = ROOT / "calibration" / "h200" / "meta_eager_forward.json"


def fit() -> dict:
    it = pd.read_csv(SET / "iterations.csv.gz")
    runs = pd.read_csv(SET / "runs.csv")
    model = runs["model"].iloc[0]
    m = load_model(model)
    n_kernels = m.num_hidden_layers * KERNELS_PER_DENSE_LAYER + KERNELS_OUTSIDE_LAYERS
    d = it[it["run_id"].isin(FIT_RUNS) & (it["n_prefill_tokens"] == 0) & (it["n_decode_seqs"] > 0)]
    if d.empty:
        raise SystemExit(f"no decode-only iterations of {FIT_RUNS} in {SET}")
    per_kernel = d["time_s"].to_numpy(float) / n_kernels
    q25, q50, q75 = np.percentile(per_kernel, [25, 50, 75])
    return {
        "eager_rollout_s_per_kernel": float(q50),
        "iqr_s_per_kernel": [float(q25), float(q75)],
        "step_median_s": float(np.median(d["time_s"])),
        "kernels_per_step": int(n_kernels),
        "model": model,
        "fit_runs": list(FIT_RUNS),
        "n_iterations": int(len(d)),
        "running_sequences": [int(d["n_decode_seqs"].min()), int(d["n_decode_seqs"].max())],
        "how": ("median over the fit runs' decode-only iterations of (step time / kernels rlsim counts for the "
                "step); host-bound: the graphed twins of these steps take 5.3-5.5 ms on the GPU "
                "(calibration/h200/rollouts-eager-graphed)"),
        "source": str(SET.relative_to(ROOT)),
        "script": "scripts/fit_eager_launch.py",
    }


def fit_step(n_kernels: int) -> dict:
    """Host cost per kernel of one eager step alone (the microbenchmark's host-bound points)."""
    e = pd.read_csv(STEP_CSV)
    hb = e[(e["mode"] == "eager_wall") & (e["B"] <= 16)]
    if hb.empty:
        raise SystemExit(f"no host-bound eager_wall rows in {STEP_CSV}")
    per_kernel = hb["time_s"].to_numpy(float) / n_kernels
    return {"eager_step_s_per_kernel": float(np.median(per_kernel)),
            "range_s_per_kernel": [float(per_kernel.min()), float(per_kernel.max())],
            "points": [f"B={int(b)} q={int(q)}" for b, q in zip(hb["B"], hb["q"])],
            "step_source": str(STEP_CSV.relative_to(ROOT)),
            "step_how": ("median over the host-bound points (B <= 16; graphed 5.2-6.6 ms, eager 9.8-11.6 ms) of eager "
                         "wall time per step (median of 25 repeats of 5 back-to-back steps) / rlsim's kernel count")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="print the fit, write nothing")
    a = ap.parse_args(argv)
    f = fit()
    f.update(fit_step(f["kernels_per_step"]))
    print(f"eager rollout iteration: {f['eager_rollout_s_per_kernel'] * 1e6:.1f} us per kernel (IQR "
          f"{f['iqr_s_per_kernel'][0] * 1e6:.1f}-{f['iqr_s_per_kernel'][1] * 1e6:.1f}), median step "
          f"{f['step_median_s'] * 1e3:.2f} ms / {f['kernels_per_step']} kernels, {f['n_iterations']} iterations "
          f"of {', '.join(f['fit_runs'])}")
    print(f"eager forward alone: {f['eager_step_s_per_kernel'] * 1e6:.1f} us per kernel (range "
          f"{f['range_s_per_kernel'][0] * 1e6:.1f}-{f['range_s_per_kernel'][1] * 1e6:.1f}) over {len(f['points'])} "
          f"host-bound single steps")
    if a.check:
        return 0
    o = pd.read_csv(OVERHEAD)
    o = o[~o["mode"].isin(["eager_forward", "eager_rollout"])]
    gpu = o["gpu"].iloc[0]
    rows = [{"gpu": gpu, "mode": "eager_rollout", "n_kernels": f["kernels_per_step"],
             "time_per_kernel_s": float(f"{f['eager_rollout_s_per_kernel']:.4e}"),
             "time_s": float(f"{f['step_median_s']:.4e}"), "repeats": f["n_iterations"]},
            {"gpu": gpu, "mode": "eager_forward", "n_kernels": f["kernels_per_step"],
             "time_per_kernel_s": float(f"{f['eager_step_s_per_kernel']:.4e}"),
             "time_s": float(f"{f['eager_step_s_per_kernel'] * f['kernels_per_step']:.4e}"),
             "repeats": len(f["points"])}]
    o = pd.concat([o, pd.DataFrame(rows)], ignore_index=True)
    o.to_csv(OVERHEAD, index=False)
    META.write_text(json.dumps(f, indent=1) + "\n")
    print(f"wrote the eager_rollout and eager_forward rows of {OVERHEAD.relative_to(ROOT)} and {META.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
