"""Fit the host cost per kernel of a whole eager model forward from the eager ground truth.

The bare-op launch loop (calibration/h200/overhead.csv, mode ``eager``: 6.2 us per kernel) is a lower bound: a
real eager forward pays, per kernel, the Python of the model code, torch's dispatcher and Triton's launcher. The
harness's eager runs (calibration/h200/rollouts-eager, ``run_grid.py --no-graphs``) measure it: at a handful of
sequences an eager decode step is host-bound (its graphed twin takes 5.4 ms on the GPU, the eager step 13-18 ms),
so the step's time divided by the kernels rlsim counts for it (36 layers x 12 + 10 = 442 for Qwen3-8B, k = 0) is
the host cost per kernel.

Fit set: the k = 0 runs of 16 and 64 sequences (decode-only iterations: 2,152 steps at 3-16 running sequences);
every other eager run (k = 3, and 256 / 512 sequences) is held out and replayed by ``rlsim validate measured --gpu
h200-eager``. Writes the ``eager_forward`` row of calibration/h200/overhead.csv (replacing an older one) and
calibration/h200/meta_eager_forward.json.

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
        "eager_forward_s_per_kernel": float(q50),
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="print the fit, write nothing")
    a = ap.parse_args(argv)
    f = fit()
    print(f"eager forward: {f['eager_forward_s_per_kernel'] * 1e6:.1f} us per kernel (IQR "
          f"{f['iqr_s_per_kernel'][0] * 1e6:.1f}-{f['iqr_s_per_kernel'][1] * 1e6:.1f}), median step "
          f"{f['step_median_s'] * 1e3:.2f} ms / {f['kernels_per_step']} kernels, {f['n_iterations']} iterations "
          f"of {', '.join(f['fit_runs'])}")
    if a.check:
        return 0
    o = pd.read_csv(OVERHEAD)
    o = o[o["mode"] != "eager_forward"]
    gpu = o["gpu"].iloc[0]
    row = {"gpu": gpu, "mode": "eager_forward", "n_kernels": f["kernels_per_step"],
           "time_per_kernel_s": float(f"{f['eager_forward_s_per_kernel']:.4e}"),
           "time_s": float(f"{f['step_median_s']:.4e}"), "repeats": f["n_iterations"]}
    o = pd.concat([o, pd.DataFrame([row])], ignore_index=True)
    o.to_csv(OVERHEAD, index=False)
    META.write_text(json.dumps(f, indent=1) + "\n")
    print(f"wrote the eager_forward row of {OVERHEAD.relative_to(ROOT)} and {META.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
