"""Fitting the calibrated timer's predictors on a calibration folder's tables (``fit_tables`` ->
``CalibrationTables``): GEMM curves per measured shape, k-NN regressors (``calib_knn``) of
log(measured / roofline) over the shape features of attention, MoE, elementwise ops and sampling, launch
gaps, collective curves."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..catalog import load_hardware
from ..errors import CalibrationDataError
from .calib_knn import LogRatioKNN
from .calib_tables import GPU_DIR_TO_PROFILE, missing_points, read_folder
from .timer import BYTES

MOE_POINT = ["dtype", "tokens", "num_experts", "top_k", "hidden", "moe_intermediate"]
EW_BYTES_FACTOR = {"rmsnorm": 2.0, "silu_mul": 3.0, "rope": 2.0, "residual_add": 3.0, "kv_cache_write": 2.0}
LATENCY_S = 3e-6
ATTENTION_FIT_PHASES = ("decode", "prefill")


def _roof(flops, bytes_, peak, bw):
    return np.maximum(np.asarray(flops, float) / peak, np.asarray(bytes_, float) / bw) + LATENCY_S


# ------------------------------------------------------------------------------------------ features
def _row_pairs(df):
    """Query-key pairs of each measured attention row (causal, bottom-right aligned)."""
    q = df["q_len"].to_numpy(float)
    kv_total = df["total_kv_tokens"].to_numpy(float)
    B = df["batch"].to_numpy(float)
    kv_mean = kv_total / B
    # each sequence attends q queries over its kv keys, the last q of them causally
    return B * (q * np.maximum(kv_mean - q, 0) + q * (q + 1) / 2)


ATT_SCALE = np.array([1.0, 1.0, 2.0, 1.5, 1.5, 2.0])
MOE_SCALE = np.array([1.0, 1.0, 2.0, 2.0])


def attention_query(B, kv_total, qk_pairs, q_tokens, n_q, n_kv, hd, peak, bw, spread=1.0):
    """(features, roofline seconds) of attention calls: features log2 [B, mean KV, q per seq, kv heads, group,
    max KV / mean KV] (uneven batches run other kernels, at other efficiencies)."""
    B = np.maximum(np.asarray(B, float), 1e-9)
    kv_total = np.asarray(kv_total, float)
    q = np.maximum(np.asarray(q_tokens, float) / B, 1.0)
    Z = np.stack(np.broadcast_arrays(np.log2(B), np.log2(np.maximum(kv_total / B, 1.0)), np.log2(q),
                                     np.log2(np.broadcast_to(np.asarray(n_kv, float), B.shape)),
                                     np.log2(np.broadcast_to(np.asarray(n_q, float) / np.asarray(n_kv, float), B.shape)),
                                     np.log2(np.maximum(np.broadcast_to(np.asarray(spread, float), B.shape), 1.0))), -1)
    flops = 4.0 * np.asarray(qk_pairs, float) * n_q * hd
    bytes_ = kv_total * 2 * n_kv * hd * 2.0 + np.asarray(q_tokens, float) * 2 * n_q * hd * 2.0
    return Z, _roof(flops, bytes_, peak, bw)


def attention_knn_data(a, peak, bw):
    Z, roof = attention_query(a["batch"].to_numpy(float), a["total_kv_tokens"].to_numpy(float), _row_pairs(a),
                              a["total_q_tokens"].to_numpy(float), a["n_q_heads"].to_numpy(float),
                              a["n_kv_heads"].to_numpy(float), a["head_dim"].to_numpy(float), peak, bw,
                              a["kv_len_max"].to_numpy(float) / np.maximum(a["kv_len_mean"].to_numpy(float), 1.0)
                              if "kv_len_max" in a.columns else 1.0)
    return Z, np.log(a["time_s"].to_numpy(float) / roof)


def moe_query(tokens, n_local, assignments, distinct, hidden, inter, dtype, peak, bw):
    tokens = np.maximum(np.asarray(tokens, float), 1e-9)
    b = BYTES[dtype]
    Z = np.stack(np.broadcast_arrays(np.log2(tokens), np.log2(np.asarray(n_local, float)), np.log2(np.asarray(hidden, float)),
                                     np.log2(np.asarray(inter, float))), -1)
    flops = 2.0 * np.asarray(assignments, float) * 3 * hidden * inter
    bytes_ = np.asarray(distinct, float) * 3 * hidden * inter * b + np.asarray(assignments, float) * hidden * 2.0 * 2
    return Z, _roof(flops, bytes_, peak * (2.0 / b), bw)


def moe_knn_data(m, peak, bw, dtype="bf16"):
    Z, roof = moe_query(m["tokens"].to_numpy(float), m["num_experts"].to_numpy(float),
                        m["local_assignments"].to_numpy(float), m["distinct_experts"].to_numpy(float),
                        m["hidden"].to_numpy(float), m["moe_intermediate"].to_numpy(float), dtype, peak, bw)
    return Z, np.log(m["time_s"].to_numpy(float) / roof)


def ew_query(op, tokens, width, bw):
    tokens = np.maximum(np.asarray(tokens, float), 1e-9)
    Z = np.stack(np.broadcast_arrays(np.log2(tokens), np.log2(np.asarray(width, float))), -1)
    return Z, _roof(0.0, tokens * np.asarray(width, float) * 2.0 * EW_BYTES_FACTOR.get(op, 2.0), 1.0, bw)


def ew_knn_data(grp, bw):
    op = grp["op"].iloc[0]
    Z, roof = ew_query(op, grp["tokens"].to_numpy(float), grp["hidden"].to_numpy(float), bw)
    return Z, np.log(grp["time_s"].to_numpy(float) / roof)


def sampling_query(rows, vocab, bw):
    rows = np.maximum(np.asarray(rows, float), 1e-9)
    Z = np.stack(np.broadcast_arrays(np.log2(rows), np.log2(np.asarray(vocab, float))), -1)
    return Z, _roof(0.0, rows * np.asarray(vocab, float) * 4.0, 1.0, bw)


def sampling_knn_data(grp, bw):
    Z, roof = sampling_query(grp["rows"].to_numpy(float), grp["vocab"].to_numpy(float), bw)
    return Z, np.log(grp["time_s"].to_numpy(float) / roof)


@dataclass
class CalibrationTables:
    gpu: str  # directory name (h100, h200)
    meta: dict
    gemm: dict  # (dtype, n, k) -> (m array, t array)
    attention: LogRatioKNN
    moe: dict  # weight dtype -> LogRatioKNN
    elementwise: dict  # op -> LogRatioKNN
    sampling: dict  # op -> LogRatioKNN
    overhead: dict
    collectives: dict = field(default_factory=dict)  # (op, ranks) -> (latency s, bytes, device s): collective_curves
    frames: dict = field(default_factory=dict)
    curves: dict = field(default_factory=dict)  # attention log-ratio curves over mean KV, shared by all timers
    incomplete: list = field(default_factory=list)  # "moe.csv: 40 of 78 planned points", from the meta files


def fit_tables(gpu_dir: Path) -> CalibrationTables:
    meta, frames = read_folder(gpu_dir)
    g = frames["gemm.csv"]
    gemm = {}
    for (dt, n, k), grp in g.groupby(["dtype", "n", "k"]):
        grp = grp.sort_values("m")
        gemm[(dt, int(n), int(k))] = (grp["m"].to_numpy(float), grp["time_s"].to_numpy(float))
    if not gemm:
        raise CalibrationDataError(f"{gpu_dir}/gemm.csv: no GEMM shapes")
    src_hw = load_hardware(GPU_DIR_TO_PROFILE.get(gpu_dir.name, "h100-sxm"))
    peak, bw = src_hw.peak_flops["bf16"], src_hw.hbm_bandwidth_bytes_per_s
    a = frames["attention.csv"]
    for phase in ATTENTION_FIT_PHASES:
        if not (a["phase"] == phase).any():
            raise CalibrationDataError(f"{gpu_dir}/attention.csv: no {phase!r} rows (missing grid points)")
    # the timer prices verification as the decode kernel plus the extra query rows' FLOPs (an engine's
    # kernel reads each sequence's KV once; the torch verify rows time two calls and a merge that no engine
    # runs), so only decode and prefill rows are fitted: the verify rows stay in the table, unused
    a = a[a["phase"].isin(ATTENTION_FIT_PHASES)].reset_index(drop=True)
    frames["attention_fit"] = a
    Za, ra = attention_knn_data(a, peak, bw)
    att = LogRatioKNN(Za, ra, ATT_SCALE, k=2)
    m = fastest_moe(frames)
    if not (m["dtype"] == "bf16").any():
        raise CalibrationDataError(f"{gpu_dir}/moe.csv: no bf16 rows (missing grid points)")
    # one predictor per measured weight dtype (bf16; fp8 w8a8 from the fused kernel); others scale bf16's
    moe = {dt: LogRatioKNN(*moe_knn_data(grp, peak, bw, dt), MOE_SCALE) for dt, grp in m.groupby("dtype")
           if dt in BYTES}
    e = frames["elementwise.csv"]
    ew = {op: LogRatioKNN(*ew_knn_data(grp, bw), np.array([1.0, 1.0])) for op, grp in e.groupby("op")}
    sm = frames["sampling.csv"]
    samp = {op: LogRatioKNN(*sampling_knn_data(grp, bw), np.array([1.0, 1.0])) for op, grp in sm.groupby("op")}
    o = frames["overhead.csv"]
    ov = {}
    for mode in ("graph", "eager", "eager_forward", "eager_rollout"):
        rows = o[o["mode"] == mode]
        if len(rows):
            ov[mode] = float(rows["time_per_kernel_s"].median())
    coll = {}
    if "collectives.csv" in frames:
        coll = collective_curves(frames["collectives.csv"])
    return CalibrationTables(gpu_dir.name, meta, gemm, att, moe, ew, samp, ov, coll, frames,
                             incomplete=missing_points(gpu_dir, frames))


def fastest_moe(frames: dict):
    """MoE rows, one per grid point: the fastest of the measured implementations (torch grouped GEMM in
    moe.csv, the engine-style fused Triton kernel in moe_fused.csv), as an engine runs its best kernel."""
    import pandas as pd

    m = frames["moe.csv"]
    if "moe_fused.csv" not in frames:
        return m
    both = pd.concat([m, frames["moe_fused.csv"]], ignore_index=True)
    idx = both.groupby(MOE_POINT)["time_s"].idxmin()
    return both.loc[idx.sort_values()].reset_index(drop=True)


def collective_curves(c) -> dict:
    """(op, ranks) -> (latency s, message bytes, device seconds per call), from collectives.csv.

    The device time is the CUDA-graph replay time (``time_graph_s``, measured up to 16 MB) where there is
    one, else the eager time.  Eager calls cost at least the host's launch (a 50-80 us floor, flat to
    ~16 MB, that engines avoid by capturing their iterations); above that size the device time exceeds the
    launch and hides it, so eager and graph agree there (within 4% at 16 MB on H200).  Where no graph time
    was measured, eager points under twice the group's floor are dropped as launch-bound.  The curve is
    made non-decreasing in size; the latency is its smallest message's time.
    """
    import pandas as pd

    out = {}
    for (op, ranks), grp in c.groupby(["op", "ranks"]):
        grp = grp.sort_values("bytes")
        t = grp["time_s"].to_numpy(float)
        if "time_graph_s" in grp:
            g = pd.to_numeric(grp["time_graph_s"], errors="coerce").to_numpy(float)
        else:
            g = np.full(len(t), np.nan)
        keep = np.isfinite(g) | (t > 2 * np.nanmin(t)) | (np.arange(len(t)) >= len(t) - 2)
        dev = np.where(np.isfinite(g), g, t)[keep]
        b = grp["bytes"].to_numpy(float)[keep]
        dev = np.maximum.accumulate(dev)
        out[(op, int(ranks))] = (float(dev[0]), b, dev)
    return out
