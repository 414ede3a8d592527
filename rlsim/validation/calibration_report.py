"""Held-out accuracy of the predictors the timer uses: each measured point is predicted by a fit that did
not see it (leave-one-out everywhere: GEMM and collectives interior points from their neighbours, the
k-NN fits without the point itself), and the relative error |pred - meas| / meas is summarised per op
class (median, p90, max). Attention is scored on the decode and prefill rows the timer is fitted on;
verification is priced as the decode kernel plus the extra query FLOPs (not fitted on the verify rows),
so no verify predictor is scored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..costmodel.calib_fit import ATTENTION_FIT_PHASES, CalibrationTables, fit_tables
from ..costmodel.calib_knn import LogRatioKNN
from ..costmodel.calib_timer import gemm_interp


def _errors_gemm(t: CalibrationTables) -> np.ndarray:
    errs = []
    for (dt, n, k), (m, y) in t.gemm.items():
        for i in range(1, len(m) - 1):  # interior points: interpolation from the neighbours
            keep = np.arange(len(m)) != i
            pred, _ = gemm_interp(m[keep], y[keep], m[i])
            errs.append(abs(float(pred) - y[i]) / y[i])
    return np.asarray(errs)


def _knn_loo(knn: LogRatioKNN) -> np.ndarray:
    n = len(knn.y)
    pred = knn.predict(knn.Z / knn.scale, exclude=np.arange(n))
    return np.abs(np.exp(pred - knn.y) - 1.0)  # the roofline cancels: |t_pred / t_meas - 1|


def heldout_errors(t: CalibrationTables) -> dict[str, np.ndarray]:
    out = {"gemm": _errors_gemm(t)}
    phases = t.frames["attention_fit"]["phase"].to_numpy()
    att = _knn_loo(t.attention)
    for ph in ATTENTION_FIT_PHASES:
        out[f"attention_{ph}"] = att[phases == ph]
    for dt, knn in t.moe.items():
        out["moe" if dt == "bf16" else f"moe_{dt}"] = _knn_loo(knn)
    out["elementwise"] = np.concatenate([_knn_loo(k) for k in t.elementwise.values()])
    out["sampling"] = np.concatenate([_knn_loo(k) for k in t.sampling.values()])
    if "collectives.csv" in t.frames:  # device time per call over message size, interior points
        errs = []
        for (op, ranks), (_, bm, tm) in t.collectives.items():
            for i in range(1, len(bm) - 1):
                keep = np.arange(len(bm)) != i
                pred, _ = gemm_interp(bm[keep], tm[keep], bm[i])
                errs.append(abs(float(pred) - tm[i]) / tm[i])
        out["collectives"] = np.asarray(errs)
    return out


def summarize(errors: dict[str, np.ndarray]) -> dict[str, dict]:
    return {k: {"n": int(v.size), "median": float(np.median(v)), "p90": float(np.quantile(v, 0.9)),
                "max": float(v.max())} for k, v in errors.items() if v.size}


def report(gpu_dir: Path) -> dict:
    t = fit_tables(gpu_dir)
    return {"gpu": t.meta.get("gpu"), "folder": gpu_dir.name, "method": "leave-one-out: each point predicted "
            "without itself (gemm: log-log interpolation from neighbouring m; attention (decode and prefill rows; verify is "
            "priced as decode + the extra query FLOPs, not fitted), moe, elementwise, sampling: "
            "k-NN on log(measured/roofline); collectives: log-log interpolation of the device time per call (CUDA-graph replay to 16 MB, eager above) over message size)", "op_classes": summarize(heldout_errors(t)),
            "incomplete": list(t.incomplete)}


def write_report(gpu_dir: Path) -> dict:
    r = report(gpu_dir)
    (gpu_dir / "report.json").write_text(json.dumps(r, indent=1) + "\n")
    lines = [f"# Held-out accuracy, {r['gpu']} ({r['folder']})", "", f"Method: {r['method']}.", "",
             "| op class | points | median error | p90 error | max error |", "|---|---:|---:|---:|---:|"]
    for k, v in r["op_classes"].items():
        lines.append(f"| {k} | {v['n']} | {v['median']:.1%} | {v['p90']:.1%} | {v['max']:.1%} |")
    (gpu_dir / "report.md").write_text("\n".join(lines) + "\n")
    return r
