"""Measured eager vs CUDA-graph single steps (calibration/h200/eager_step.csv, rlsim/calibration/mb_eager_step.py) beside
what rlsim's cost model predicts for the same steps.

The measured step is one target step of the ground-truth harness's Qwen3-8B (forward, LM head, sampling; q = k+1 tokens
per sequence, each with ``context`` cached tokens; no draft pass, no engine host work). The prediction is the ideal
engine's (the harness is that engine) IterationCostModel on H200, TP 1, ``method="none"`` (no draft pass), the same B,
k = q-1 and KV (B x context before the step):

* graphed: ``enforce_eager=False`` with the capture limit raised to the step's tokens (the microbenchmark captures
  every point, 1024 tokens included; the profile's limit is 512), so every point is priced as a FULL graph;
* eager: ``enforce_eager=True``: max(GPU + gaps + short-kernel stalls, n_kernels x eager_rollout_launch_s) (the ideal
  engine, which models the harness's rollout loop: 39 us per kernel, fitted on its eager rollouts).

Both without the engine's per-step host residue (``host``: 250 us + 1 us per sequence), which the microbenchmark does
not run (``--with-host`` adds it). Measured eager = ``eager_wall`` (back-to-back eager steps, host free-running).
The implied host cost per kernel is ``eager_wall`` / rlsim's kernel count (442 for a Qwen3-8B step) on the steps
whose eager wall time is host-bound (eager_wall > 1.2 x the eager step's GPU-only time), to compare with the
``eager_rollout`` row of calibration/h200/overhead.csv (fitted from whole eager rollouts). The ``eager_forward`` row
(what vLLM under enforce_eager is priced with) is fitted from this CSV's host-bound points by
scripts/fit_eager_launch.py. Changes no constant.

    python scripts/check_eager_step.py [--csv calibration/h200/eager_step.csv] [--with-host] [--markdown]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rlsim.catalog import GenerationParallelism, load_hardware, load_model  # noqa: E402
from rlsim.costmodel import IterationBatch, IterationCostModel, replica_layout  # noqa: E402
from rlsim.costmodel.select import get_timer  # noqa: E402

CSV = ROOT / "calibration" / "h200" / "eager_step.csv"
HOST_BOUND = 1.2  # eager_wall / eager_gpu above which a step counts as host-bound


def predict(B: np.ndarray, q: np.ndarray, context: float, eager: bool, with_host: bool,
            model: str = "qwen3-8b", hardware: str = "h200-sxm") -> tuple[np.ndarray, dict]:
    m, hw = load_model(model), load_hardware(hardware)
    tokens = B * q
    hw = hw.model_copy(update={"cudagraph_capture_max_tokens": int(max(tokens.max(), hw.cudagraph_capture_max_tokens))})
    cm = IterationCostModel(m, hw, replica_layout(m, GenerationParallelism(tensor_parallel_size=1)), get_timer(hw, "auto"),
                            dtype="bf16", method="none", enforce_eager=eager)
    out = np.zeros(B.shape)
    parts = {"gpu": np.zeros(B.shape), "n_kernels": np.zeros(B.shape), "graph": np.zeros(B.shape)}
    for kk in np.unique(q - 1):  # one batch per k (k is per row, but keep the calls simple)
        sel = (q - 1) == kk
        b = IterationBatch(n_decode=B[sel].astype(float), k=np.full(sel.sum(), float(kk)),
                           decode_kv_tokens=B[sel] * float(context))
        o = cm.breakdown(b)
        out[sel] = o["total"] - (0.0 if with_host else o["host"])
        for key in parts:
            parts[key][sel] = np.broadcast_to(o[key], (sel.sum(),))
    parts["eager_rollout_launch_s"] = cm.timer.latency.get("eager_rollout_launch_s", np.nan)
    parts["eager_forward_launch_s"] = cm.timer.latency.get("eager_forward_launch_s", np.nan)
    parts["timer"] = cm.timer.describe()
    return out, parts


def table(csv: Path = CSV, with_host: bool = False) -> tuple[pd.DataFrame, dict]:
    d = pd.read_csv(csv)
    w = d.pivot_table(index=["B", "q"], columns="mode", values="time_s").reset_index()
    nk = d[d["mode"] == "eager_wall"].set_index(["B", "q"])["n_kernels"]
    w["n_kernels_meas"] = [nk.get((b, q), np.nan) for b, q in zip(w["B"], w["q"])]
    w = w.sort_values(["q", "B"]).reset_index(drop=True)
    context = float(d["context"].iloc[0])
    B, q = w["B"].to_numpy(float), w["q"].to_numpy(float)
    pg, parts_g = predict(B, q, context, eager=False, with_host=with_host)
    pe, parts_e = predict(B, q, context, eager=True, with_host=with_host)
    t = pd.DataFrame({"B": w["B"], "q": w["q"], "tokens": w["B"] * w["q"],
                      "meas_graph_ms": w["graph"] * 1e3, "meas_eager_ms": w["eager_wall"] * 1e3,
                      "meas_eager_gpu_ms": w["eager_gpu"] * 1e3, "meas_eager_host_ms": w["eager_host"] * 1e3})
    t["meas_ratio"] = t["meas_eager_ms"] / t["meas_graph_ms"]
    t["pred_graph_ms"] = pg * 1e3
    t["pred_eager_ms"] = pe * 1e3
    t["pred_ratio"] = t["pred_eager_ms"] / t["pred_graph_ms"]
    t["graph_err"] = t["pred_graph_ms"] / t["meas_graph_ms"] - 1
    t["eager_err"] = t["pred_eager_ms"] / t["meas_eager_ms"] - 1
    t["ratio_err"] = t["pred_ratio"] / t["meas_ratio"] - 1
    t["host_bound"] = t["meas_eager_ms"] > HOST_BOUND * t["meas_eager_gpu_ms"]
    # host: the GPU idles >= 1/6 of the eager wall time; mixed: the host's issue time of the step still reaches
    # the GPU's time (the two overlap); GPU: the GPU time dominates
    t["bound"] = np.where(t["host_bound"], "host", np.where(t["meas_eager_host_ms"] >= t["meas_eager_gpu_ms"], "mixed",
                                                            "GPU"))
    t["kernels_rlsim"] = parts_e["n_kernels"].astype(int)
    t["kernels_meas"] = w["n_kernels_meas"]
    t["us_per_kernel_rlsim"] = t["meas_eager_ms"] * 1e3 / t["kernels_rlsim"]
    t["us_per_kernel_meas"] = t["meas_eager_ms"] * 1e3 / t["kernels_meas"]
    t["host_us_per_kernel_meas"] = t["meas_eager_host_ms"] * 1e3 / t["kernels_meas"]
    hb = t[t["host_bound"]]
    summary = {
        "fitted_us_per_kernel": parts_e["eager_rollout_launch_s"] * 1e6,
        "forward_us_per_kernel": parts_e["eager_forward_launch_s"] * 1e6,
        "timer": parts_e["timer"],
        "host_bound_points": [(int(b), int(qq)) for b, qq in zip(hb["B"], hb["q"])],
        "implied_us_per_kernel_rlsim_count": (float(hb["us_per_kernel_rlsim"].median()) if len(hb) else np.nan,
                                              float(hb["us_per_kernel_rlsim"].min()) if len(hb) else np.nan,
                                              float(hb["us_per_kernel_rlsim"].max()) if len(hb) else np.nan),
        "implied_us_per_kernel_measured_count": (float(hb["us_per_kernel_meas"].median()) if len(hb) else np.nan,
                                                 float(hb["us_per_kernel_meas"].min()) if len(hb) else np.nan,
                                                 float(hb["us_per_kernel_meas"].max()) if len(hb) else np.nan),
        "host_issue_us_per_kernel_measured_count": (float(t["host_us_per_kernel_meas"].median()),
                                                    float(t["host_us_per_kernel_meas"].min()),
                                                    float(t["host_us_per_kernel_meas"].max())),
        "with_host": with_host,
    }
    return t, summary


def _pct(x: float) -> str:
    return f"{x * 100:+.0f}%"


def render(t: pd.DataFrame, s: dict, markdown: bool = False) -> str:
    head = ["B", "q", "tokens", "meas graph ms", "meas eager ms", "meas eager GPU ms", "meas eager host ms",
            "meas ratio", "pred graph ms", "pred eager ms", "pred ratio", "graph err", "eager err", "ratio err",
            "bound", "us/kernel (442)"]
    rows = []
    for _, r in t.iterrows():
        rows.append([f"{int(r.B)}", f"{int(r.q)}", f"{int(r.tokens)}", f"{r.meas_graph_ms:.2f}", f"{r.meas_eager_ms:.2f}",
                     f"{r.meas_eager_gpu_ms:.2f}", f"{r.meas_eager_host_ms:.2f}", f"{r.meas_ratio:.2f}",
                     f"{r.pred_graph_ms:.2f}", f"{r.pred_eager_ms:.2f}", f"{r.pred_ratio:.2f}", _pct(r.graph_err),
                     _pct(r.eager_err), _pct(r.ratio_err), r.bound,
                     f"{r.us_per_kernel_rlsim:.1f}"])
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" if i not in (14,) else ":---:"
                                                               for i in range(len(head))) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    else:
        wid = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
        lines = ["  ".join(h.rjust(w) for h, w in zip(head, wid))]
        lines += ["  ".join(c.rjust(w) for c, w in zip(r, wid)) for r in rows]
    a, b, c = s["implied_us_per_kernel_rlsim_count"]
    a2, b2, c2 = s["implied_us_per_kernel_measured_count"]
    a3, b3, c3 = s["host_issue_us_per_kernel_measured_count"]
    lines += ["",
              f"predictions: {s['timer']}; ideal engine, TP 1, no draft pass; "
              + ("with" if s["with_host"] else "without") + " the engine's per-step host residue",
              f"host-bound eager steps (eager wall > {HOST_BOUND} x its GPU-only time): "
              + ", ".join(f"B={b_}/q={q_}" for b_, q_ in s["host_bound_points"]),
              f"implied host cost per kernel, eager wall / 442 (rlsim's count): median {a:.1f} us "
              f"(range {b:.1f}-{c:.1f}); / kernels counted on the GPU: median {a2:.1f} us ({b2:.1f}-{c2:.1f}); "
              f"host issue time of one step / kernels counted: median {a3:.1f} us ({b3:.1f}-{c3:.1f}); "
              f"fitted from the eager rollouts (overhead.csv eager_rollout, the ideal engine's): "
              f"{s['fitted_us_per_kernel']:.1f} us; from these single steps (overhead.csv eager_forward, vLLM "
              f"enforce_eager's): {s['forward_us_per_kernel']:.1f} us"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csv", type=Path, default=CSV)
    ap.add_argument("--with-host", action="store_true", help="add the engine's per-step host residue to predictions")
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args(argv)
    t, s = table(a.csv, a.with_host)
    print(render(t, s, a.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
