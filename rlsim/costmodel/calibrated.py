"""Calibrated kernel timer: predictors fitted on tables measured on real GPUs (calibration/<gpu>/).

Per op class (see docs/calibration.md):
- gemm: for a measured (dtype, n, k): piecewise-linear interpolation of log time over log m;
  beyond the largest measured m, linear in m (compute-bound) and flagged as extrapolated. An
  unmeasured (n, k): the nearest measured shape (by weight size and aspect), scaled by the ratio of
  the two shapes' roofline times.
- attention (decode / prefill), MoE, elementwise, sampling: k-nearest-neighbour interpolation of
  log(measured / roofline) over log-scaled shape features (``LogRatioKNN``); attention also uses the
  KV-length unevenness.  Verification is the decode kernel plus the extra query FLOPs.  Every curve
  is made non-decreasing in tokens (``_monotone``).
- launch: measured per-kernel gap of CUDA-graph replay and eager launch.
- collectives (when measured on 2+ GPUs): the measured device time per call (CUDA-graph replay up to
  16 MB, eager above) interpolated log-log over message size, per op and rank count; the nearest
  measured rank count is carried to others by the ring factor (see ``collective_curves``).

Transfer to a GPU that was not measured (GB200, B200): the prediction on the source GPU is scaled by
the ratio of the op's roofline time on the target to that on the source, each roofline being
max(FLOPs / peak, bytes / bandwidth) + 3 us (so latency-bound kernels do not get faster with peaks).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..catalog import HardwareProfile, load_hardware
from ..catalog.loader import catalog_dir
from ..errors import CalibrationDataError
from .timer import BYTES, KERNELS_PER_FUSED_MOE, KernelTimer, expected_distinct_experts, ring_factor

GPU_DIR_TO_PROFILE = {"h100": "h100-sxm", "h200": "h200-sxm"}
REQUIRED = {
    "gemm.csv": ["dtype", "m", "n", "k", "time_s"],
    "attention.csv": ["phase", "batch", "q_len", "kv_len_mean", "total_kv_tokens", "total_q_tokens", "n_q_heads",
                      "n_kv_heads", "head_dim", "time_s"],
    "moe.csv": ["dtype", "tokens", "num_experts", "top_k", "hidden", "moe_intermediate", "distinct_experts",
                "local_assignments", "time_s"],
    "elementwise.csv": ["op", "tokens", "hidden", "time_s"],
    "sampling.csv": ["op", "rows", "vocab", "time_s"],
    "overhead.csv": ["mode", "n_kernels", "time_per_kernel_s"],
}
OPTIONAL = {"collectives.csv": ["op", "ranks", "bytes", "time_s"],
            "moe_fused.csv": REQUIRED["moe.csv"]}
MOE_POINT = ["dtype", "tokens", "num_experts", "top_k", "hidden", "moe_intermediate"]
EW_BYTES_FACTOR = {"rmsnorm": 2.0, "silu_mul": 3.0, "rope": 2.0, "residual_add": 3.0, "kv_cache_write": 2.0}
LATENCY_S = 3e-6
ATTENTION_FIT_PHASES = ("decode", "prefill")
_KV_GRID = np.arange(0.0, 26.01, 0.25)  # log2 of mean KV tokens per sequence
_TOK_GRID = np.arange(-2.0, 24.01, 0.125)  # log2 of tokens / rows


def _nearest(d: np.ndarray, k: int, groups: np.ndarray | None = None) -> np.ndarray:
    """Column indices of the ``k`` smallest distances of each row, ties broken by row index.

    On a regular grid many neighbours are exactly equally distant; ``np.argpartition`` returns such
    ties in an order that depends on the CPU's SIMD path, so the fit (and every simulated number)
    could differ between machines. Distances are first rounded to 1e-9 relative, so that two that
    are equal in exact arithmetic but differ in the last bit (summation order) also tie, then sorted
    stably: the nearest k, and among equals the lowest row index, on every machine.

    ``groups`` (sizes of consecutive row groups): each group rounded by its own scale, as if it were its own call."""
    if groups is None:
        scale = np.where(np.isfinite(d), np.abs(d), 0.0).max(initial=0.0) or 1.0
    else:
        row_max = np.where(np.isfinite(d), np.abs(d), 0.0).max(axis=1, initial=0.0)
        g = np.maximum.reduceat(row_max, np.concatenate([[0], np.cumsum(groups)[:-1]]))
        scale = np.repeat(np.where(g == 0.0, 1.0, g), groups)[:, None]
    dq = np.where(np.isfinite(d), np.round(d / scale, 9), np.inf)
    k = min(k, dq.shape[1])
    # the k-th smallest value (an order-free quantity), then: every column below it, and the lowest-index
    # columns equal to it until k are taken; columns come back in index order (O(columns) per row)
    kth = np.partition(dq, k - 1, axis=1)[:, k - 1: k]
    less = dq < kth
    eq = dq == kth
    need = k - less.sum(axis=1, keepdims=True)
    sel = less | (eq & (np.cumsum(eq.astype(np.int64), axis=1) <= need))
    return np.nonzero(sel)[1].reshape(dq.shape[0], k)


class LogRatioKNN:
    """k-nearest-neighbour regression of log(measured / roofline) in a log-feature space.

    The roofline carries the magnitude (so predictions outside the grid scale physically); the
    neighbours carry the efficiency shape measured around the query. Inverse-distance weights."""

    def __init__(self, Z: np.ndarray, log_ratio: np.ndarray, scale: np.ndarray, k: int = 4):
        self.Z = np.asarray(Z, float) * scale
        self.y = np.asarray(log_ratio, float)
        self.scale = np.asarray(scale, float)
        self.k = min(k, len(self.y))
        self.lo = self.Z.min(axis=0)
        self.hi = self.Z.max(axis=0)

    def predict(self, Zq: np.ndarray, exclude: np.ndarray | None = None, groups: np.ndarray | None = None) -> np.ndarray:
        """``groups``: sizes of consecutive query groups, each predicted as if alone (see ``_nearest``)."""
        Zq = np.atleast_2d(np.asarray(Zq, float)) * self.scale
        d = np.sqrt(((Zq[:, None, :] - self.Z[None, :, :]) ** 2).sum(-1))
        if exclude is not None:
            d[np.arange(len(Zq)), exclude] = np.inf
        idx = _nearest(d, self.k, groups)
        dd = np.take_along_axis(d, idx, 1)
        w = 1.0 / (dd + 1e-3)
        return (w * self.y[idx]).sum(1) / w.sum(1)

    def predict_curve(self, z_fixed: np.ndarray, dim: int, grid: np.ndarray) -> np.ndarray:
        """``predict`` along one feature (``dim`` takes the values ``grid``, the others ``z_fixed``):
        the distance over the fixed features is computed once per measured row."""
        zf = np.asarray(z_fixed, float) * self.scale
        other = np.ones(zf.size, bool)
        other[dim] = False
        base = ((self.Z[:, other] - zf[other]) ** 2).sum(1)
        d = np.sqrt(base[None, :] + (grid[:, None] * self.scale[dim] - self.Z[None, :, dim]) ** 2)
        idx = _nearest(d, self.k)
        w = 1.0 / (np.take_along_axis(d, idx, 1) + 1e-3)
        return (w * self.y[idx]).sum(1) / w.sum(1)

    def outside(self, Zq: np.ndarray) -> bool:
        Zq = np.atleast_2d(np.asarray(Zq, float)) * self.scale
        return bool(((Zq < self.lo - 1e-9) | (Zq > self.hi + 1e-9)).any())


def _runs(*cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, length) of each run of consecutive equal rows of ``cols`` (1-D arrays of one length)."""
    n = cols[0].size
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    brk = np.zeros(n, bool)
    brk[0] = True
    for c in cols:
        brk[1:] |= c[1:] != c[:-1]
    start = np.flatnonzero(brk)
    return start, np.diff(np.append(start, n))


def _roof(flops, bytes_, peak, bw):
    return np.maximum(np.asarray(flops, float) / peak, np.asarray(bytes_, float) / bw) + LATENCY_S


def _read(path: Path, cols: list[str], gpu_name: str | None):
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except Exception as e:  # noqa: BLE001 - any parse failure is a data error for the user
        raise CalibrationDataError(f"{path}: cannot parse CSV ({type(e).__name__}: {e})") from None
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise CalibrationDataError(f"{path}: missing columns {missing} (truncated or wrong file?); needs {cols}")
    if df.empty:
        raise CalibrationDataError(f"{path}: no rows")
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        last = raw.rsplit(b"\n", 1)[-1].decode(errors="replace")
        if last.count(",") < len(df.columns) - 1:
            raise CalibrationDataError(f"{path}: the last line is cut short ({last.count(',') + 1} of {len(df.columns)} "
                                       "fields, no newline): truncated file")
    text_cols = {"gpu", "dtype", "phase", "op", "mode", "kv_dist", "backend", "timing", "source", "impl", "alt_backend"}
    for c in cols:
        if c in text_cols:
            continue
        num = pd.to_numeric(df[c], errors="coerce")
        bad_num = num.isna() & df[c].notna()
        if bad_num.any():
            i = int(np.flatnonzero(bad_num)[0])
            raise CalibrationDataError(f"{path}: column {c!r} has a non-numeric value {df[c].iloc[i]!r} at line {i + 2}")
        if not np.isfinite(num.dropna().to_numpy(float)).all():
            i = int(np.flatnonzero(~np.isfinite(num.fillna(0).to_numpy(float)))[0])
            raise CalibrationDataError(f"{path}: column {c!r} has a non-finite value at line {i + 2}")
        df[c] = num
    bad = df[cols].isna().any(axis=1)
    if bad.any():
        raise CalibrationDataError(f"{path}: {int(bad.sum())} incomplete rows (first at line {int(np.flatnonzero(bad)[0]) + 2}); "
                                   "truncated file?")
    if (df["time_s"] <= 0).any():
        raise CalibrationDataError(f"{path}: non-positive time_s values")
    if gpu_name and "gpu" in df.columns:
        other = sorted(set(df["gpu"]) - {gpu_name})
        if other:
            raise CalibrationDataError(f"{path}: rows measured on {other}, but meta.json says {gpu_name!r} (mixed GPUs)")
    return df


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
    meta_p = gpu_dir / "meta.json"
    if not meta_p.is_file():
        raise CalibrationDataError(f"{gpu_dir}: no meta.json (GPU, driver, versions, grid); not a calibration folder")
    try:
        meta = json.loads(meta_p.read_text())
    except json.JSONDecodeError as e:
        raise CalibrationDataError(f"{meta_p}: not valid JSON: {e}") from None
    gpu_name = meta.get("gpu")
    expect = gpu_dir.name.lower()
    if gpu_name and expect not in gpu_name.lower().replace(" ", ""):
        raise CalibrationDataError(f"{meta_p}: measured on {gpu_name!r}, but the folder is {gpu_dir.name!r} (wrong GPU)")
    frames = {}
    for name, cols in REQUIRED.items():
        p = gpu_dir / name
        if not p.is_file():
            raise CalibrationDataError(f"{gpu_dir}: missing {name} (required tables: {', '.join(REQUIRED)})")
        frames[name] = _read(p, cols, gpu_name)
    for name, cols in OPTIONAL.items():
        p = gpu_dir / name
        if p.is_file():
            frames[name] = _read(p, cols, None)
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


def missing_points(gpu_dir: Path, frames: dict) -> list[str]:
    """Tables with fewer rows than their calibration run planned (a run stopped by its time budget, a
    failed point, a truncated file): the grid has holes the predictors interpolate across. The plan is
    the largest ``planned`` count any full (not --quick) run of that op recorded in the folder's meta
    files (meta.json, meta_<op>.json)."""
    planned: dict[str, int] = {}
    for mp in sorted(gpu_dir.glob("meta*.json")):
        try:
            results = json.loads(mp.read_text()).get("results", {})
        except (json.JSONDecodeError, OSError, AttributeError):
            continue
        for op, st in results.items():
            n = (st.get("progress") or {}).get("planned") if isinstance(st, dict) else None
            if ":" not in op and isinstance(n, int):
                planned[op] = max(planned.get(op, 0), n)
    out = []
    for op, n in sorted(planned.items()):
        f = frames.get(f"{op}.csv")
        if f is not None and len(f) < n:
            out.append(f"{op}.csv: {len(f)} of {n} planned points")
    return out


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


def _cache_path(d: Path) -> Path | None:
    import hashlib
    import os

    from . import timer as _timer_module

    h = hashlib.sha256(b"rlsim-tables")
    # everything the fit reads is part of the key: the fitting code, the timer module (BYTES, the roofline
    # terms), the hardware profile of the measured GPU (its peaks normalise every table) and the data files
    h.update(Path(__file__).read_bytes())
    h.update(Path(_timer_module.__file__).read_bytes())
    h.update(load_hardware(GPU_DIR_TO_PROFILE.get(d.name, "h100-sxm")).model_dump_json().encode())
    for p in sorted(d.glob("*.csv")) + [d / "meta.json"]:
        if p.is_file():
            h.update(p.name.encode())
            h.update(p.read_bytes())
    base = Path(os.environ.get("RLSIM_CACHE_DIR", Path.home() / ".cache" / "rlsim"))
    return base / f"tables-{d.name}-{h.hexdigest()[:16]}.pkl"


@functools.lru_cache(maxsize=None)
def load_tables(gpu: str) -> CalibrationTables:
    """Fitted tables of calibration/<gpu>; the fit is cached on disk keyed by a hash of the data files
    (a changed or corrupted file is re-read and re-validated)."""
    import pickle

    root = catalog_dir("calibration")
    d = root / gpu
    if not d.is_dir():
        avail = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise CalibrationDataError(f"no calibration folder {gpu!r} under {root}; available: {', '.join(avail) or 'none'}")
    cache = _cache_path(d)
    if cache is not None and cache.is_file():
        try:
            t = pickle.loads(cache.read_bytes())
            t.curves = {}
            return t
        except Exception:  # noqa: BLE001 - a bad cache is just rebuilt
            pass
    t = fit_tables(d)
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            # without the raw tables (pandas frames, read by the calibration report, which fits afresh): loading
            # the cache then needs no pandas, a third of a projection's start-up
            tmp.write_bytes(pickle.dumps(dataclasses.replace(t, frames={}, curves={})))
            tmp.replace(cache)
        except OSError:
            pass
    return t


def gemm_interp(m_meas: np.ndarray, t_meas: np.ndarray, m) -> tuple[np.ndarray, bool]:
    m = np.asarray(m, float)
    lm, lt = np.log(m_meas), np.log(t_meas)
    out = np.exp(np.interp(np.log(np.maximum(m, 1.0)), lm, lt))
    hi = m > m_meas[-1]
    if hi.any() and m_meas.size >= 2:  # compute-bound: linear in m from the last two points (never falling)
        slope = max((t_meas[-1] - t_meas[-2]) / (m_meas[-1] - m_meas[-2]), 0.0)
        out = np.where(hi, t_meas[-1] + slope * (m - m_meas[-1]), out)
    return out, bool(hi.any())


class CalibratedTimer(KernelTimer):
    """KernelTimer whose op-class predictors are fitted on measured tables."""

    def __init__(self, hardware: HardwareProfile, tables: CalibrationTables, source: HardwareProfile):
        super().__init__(hardware)
        self.tables = tables
        self.source = source
        self.transfer = source.name != hardware.name
        how = (f"projected from {tables.gpu.upper()} calibration onto {hardware.name}'s peaks" if self.transfer
               else f"calibrated on {tables.gpu.upper()}")
        self.label = (f"{how} (calibration/{tables.gpu}, measured {tables.meta.get('date', '?')}, "
                      f"torch {tables.meta.get('torch', '?')})")
        if "graph" in tables.overhead:
            self.latency["graph_gap_s"] = tables.overhead["graph"]
        if "eager" in tables.overhead:
            self.latency["eager_launch_s"] = tables.overhead["eager"]
        # host cost per kernel of a whole eager forward (one step alone) and of an eager rollout iteration of the
        # harness (scripts/fit_eager_launch.py); else the bare-op launch
        self.latency["eager_forward_launch_s"] = tables.overhead.get("eager_forward", self.latency["eager_launch_s"])
        self.latency["eager_rollout_launch_s"] = tables.overhead.get("eager_rollout",
                                                                     self.latency["eager_forward_launch_s"])
        self.extrapolated = set(f"partial calibration ({m})" for m in tables.incomplete)
        self._curves = tables.curves
        # collectives: this folder's, or those of ``borrow_collectives`` (another folder measured on the same
        # interconnect), with the hardware they were measured on
        self.coll_fit, self.coll_source = tables.collectives, source
        self.coll_missing_note = ""
        # the measured MoE block (router GEMM, top-k, alignment, 2 expert GEMMs, activation, combine) was
        # replayed from a CUDA graph: the gaps between its kernels are in its time
        self.moe_kernels_with_gaps_inside = KERNELS_PER_FUSED_MOE

    def borrow_collectives(self, tables: CalibrationTables, measured_on: HardwareProfile) -> None:
        """Use collectives measured elsewhere (``collectives_calibration_source``) where this folder has none."""
        if tables.collectives and not self.tables.collectives:
            self.coll_fit, self.coll_source = tables.collectives, measured_on
            self.label += f"; collectives from calibration/{tables.gpu}"

    # -- transfer
    def _roof_on(self, hw: HardwareProfile, flops, bytes_, dtype):
        peak = hw.peak_flops.get(dtype, hw.peak_flops["bf16"])
        return np.maximum(np.asarray(flops, float) / peak, np.asarray(bytes_, float) / hw.hbm_bandwidth_bytes_per_s) + LATENCY_S

    def _move(self, t_src, flops, bytes_, dtype="bf16"):
        if not self.transfer:
            return t_src
        return t_src * self._roof_on(self.hardware, flops, bytes_, dtype) / self._roof_on(self.source, flops, bytes_, dtype)

    # -- op classes
    def _monotone(self, key, grid: np.ndarray, times) -> tuple[np.ndarray, np.ndarray]:
        """A cached curve of final (target-GPU) times over ``grid`` made non-decreasing: more work never
        takes less time (measurement noise and the regime change of the transfer ratio would let it)."""
        c = self._curves.get(key)
        if c is None:
            t = np.maximum.accumulate(np.asarray(times(grid), float))
            c = self._curves[key] = (grid, t)
        return c

    def gemm_s(self, m, n: int, k: int, dtype: str = "bf16"):
        m = np.asarray(m, float)
        tab = self.tables.gemm
        key = (dtype, int(n), int(k))
        if key in tab:
            m_src, t_src = tab[key]
            scale = None
        else:
            cands = [s for s in tab if s[0] == dtype] or list(tab)
            nn = min(cands, key=lambda s: abs(np.log(s[1] * s[2] / (n * k))) + 0.5 * abs(np.log(s[1] / s[2] * k / n)))
            m_src, t_src = tab[nn]
            scale = nn
            self.extrapolated.add(f"gemm shape ({n}x{k}, {dtype}) not measured: scaled from ({nn[1]}x{nn[2]})")

        def times(mg):
            b = BYTES[dtype]
            fl, by = 2.0 * mg * n * k, (mg * k + k * n) * b + mg * n * 2.0
            t = t_src.copy()
            if scale is not None:  # the nearest measured shape, scaled by the ratio of roofline times
                f0 = 2.0 * mg * scale[1] * scale[2]
                b0 = (mg * scale[2] + scale[2] * scale[1]) * BYTES[scale[0]] + mg * scale[1] * 2.0
                t = t * self._roof_on(self.source, fl, by, dtype) / self._roof_on(self.source, f0, b0, scale[0])
            return self._move(t, fl, by, dtype)

        mg, tg = self._monotone(("gemm", self.hardware.name) + key, m_src, times)
        t, hi = gemm_interp(mg, tg, m)
        if hi:
            self.extrapolated.add(f"gemm m > {int(mg[-1])} tokens")
        return np.where(m > 0, t, 0.0)

    def _src(self):
        return self.source.peak_flops["bf16"], self.source.hbm_bandwidth_bytes_per_s

    def attention_s(self, phase, n_seqs, kv_read_tokens, qk_pairs, q_tokens, n_q_heads, n_kv_heads, head_dim,
                    kv_dtype="bf16", kv_spread=1.0):
        n_seqs, kv, pairs, qt = np.broadcast_arrays(*(np.asarray(x, float) for x in (n_seqs, kv_read_tokens, qk_pairs,
                                                                                        q_tokens)))
        # a long call repeating the previous one (a draft pass with the target's attention shape over the same
        # batches) gets the previous answer: the same inputs give the same seconds
        memo = 256 <= n_seqs.size <= (1 << 21)
        if memo:
            key = (n_q_heads, n_kv_heads, head_dim, kv_dtype, kv_spread, None if self._call_groups is None
                   else self._call_groups.tobytes())
            for k_, args, out in self._recent_attention:
                if k_ == key and args[0].shape == n_seqs.shape and all(
                        np.array_equal(a, b) for a, b in zip(args, (n_seqs, kv, pairs, qt))):
                    return out
        out = self._attention_s(n_seqs, kv, pairs, qt, n_q_heads, n_kv_heads, head_dim, kv_dtype, kv_spread)
        if memo:
            out.flags.writeable = False
            self._recent_attention = [(key, (n_seqs.copy(), kv.copy(), pairs.copy(), qt.copy()), out),
                                      *self._recent_attention[:1]]
        return out

    _recent_attention: list = []  # the last two long calls (an instance attribute once set)

    def _attention_s(self, n_seqs, kv, pairs, qt, n_q_heads, n_kv_heads, head_dim, kv_dtype, kv_spread):
        shape = n_seqs.shape
        n_seqs, kv, pairs, qt = n_seqs.ravel(), kv.ravel(), pairs.ravel(), qt.ravel()
        peak, bw = self._src()
        kvb = kv * 0.5 if kv_dtype == "fp8" else kv  # (x 1.0 is x)
        spread = float(np.clip(kv_spread, 1.0, 64.0))
        # attention_query's features and roofline (the same operations, element for element), computed lean: what
        # depends only on (sequences, query tokens) once per run of equal values (a decode stretch's iterations
        # share them), the constant features once, the same expression once
        B = np.maximum(n_seqs, 1e-9)
        rs, rl = _runs(n_seqs, qt)
        q_per = qt[rs] / B[rs]  # query rows per sequence, per run
        zq = np.log2(np.maximum(q_per, 1.0))
        zkv = np.log2(np.maximum(kvb / B, 1.0))
        flops = 4.0 * pairs * n_q_heads * head_dim
        kv_bytes = kvb * 2 * n_kv_heads * head_dim * 2.0
        # cached 1D curves over mean KV per (batch, q, heads): the hot path only interpolates
        key_b = np.round(n_seqs[rs], 2)
        key_q = np.round(zq * 4) / 4
        # verification (2..16 queries per sequence): an engine's kernel reads each sequence's KV once, as in
        # decode (FA3 / FlashInfer, and the ground-truth harness). The torch microbenchmark could only time
        # verify as two calls + a log-sum-exp merge, which no engine runs; so verify = the measured decode
        # kernel at the same (batch, KV) + the extra query rows' FLOPs at the attention compute efficiency.
        verify_r = (key_q > 0) & (key_q <= 4.0)
        verify = np.repeat(verify_r, rl)
        extra_s = 0.0  # (+ 0.0 leaves a time unchanged)
        if verify_r.any():
            extra_pairs = pairs - kv / np.repeat(np.maximum(q_per, 1.0), rl)
            extra_s = np.maximum(extra_pairs, 0) * 4.0 * n_q_heads * head_dim / (peak * self.efficiency["attention_compute"])
            if not verify_r.all():
                extra_s = np.where(verify, extra_s, 0.0)
            key_q = np.where(verify_r, 0.0, key_q)
        groups = self._call_groups
        if groups is not None and int(groups.sum()) != kv.size:
            raise ValueError(f"call_groups cover {int(groups.sum())} elements, attention_s got {kv.size}")
        if groups is None:
            groups = np.array([kv.size])
        # a call of a few one-off points (prefill steps) predicts directly, no curve to cache; a longer one
        # interpolates one cached curve over mean KV per (batch, q, heads, unevenness)
        direct = np.repeat(groups <= 4, groups)
        lr = np.empty(kv.size)
        z_b_max = 0.0
        if direct.any():
            Zd = np.empty((int(direct.sum()), 6))
            Zd[:, 0] = np.log2(B[direct])
            Zd[:, 1] = zkv[direct]
            Zd[:, 2] = np.repeat(key_q, rl)[direct]
            Zd[:, 3] = np.log2(float(n_kv_heads))
            Zd[:, 4] = np.log2(np.asarray(n_q_heads, float) / np.asarray(n_kv_heads, float))
            Zd[:, 5] = np.log2(max(spread, 1.0))
            lr[direct] = self.tables.attention.predict(Zd, groups=groups[groups <= 4])
            z_b_max = float(Zd[:, 0].max(initial=0))
        if not direct.all():
            cv = ~direct
            code = np.round(key_b * 100).astype(np.int64) * 128 + np.round(key_q * 4).astype(np.int64)
            lr[cv] = self._curve_lr(np.repeat(code, rl)[cv], zkv[cv], n_q_heads, n_kv_heads, spread)
            z_b_max = max(z_b_max, float(np.log2(B[cv].max())))
        if float(zkv.max(initial=0)) > self.tables.attention.hi[1] or z_b_max > self.tables.attention.hi[0]:
            self.extrapolated.add("attention beyond the measured batch or KV length (efficiency of the nearest "
                                  "measured points, magnitude from the roofline)")
        # the roofline of each point: its own (plain rows), or the decode kernel's over the same KV (verification:
        # one query row per sequence's head group)
        all_verify = bool(verify_r.all())
        if not all_verify:
            roof = _roof(flops, kv_bytes + qt * 2 * n_q_heads * head_dim * 2.0, peak, bw)
        if verify_r.any():
            roof1 = _roof(4.0 * kv * n_q_heads * head_dim, kv_bytes + n_seqs * 2 * n_q_heads * head_dim * 2.0, peak, bw)
            roof = roof1 if all_verify else np.where(verify, roof1, roof)
        t = roof * np.exp(lr) + extra_s
        out = self._move(t, flops, kv_bytes)
        return (out if bool((n_seqs > 0).all()) else np.where(n_seqs > 0, out, 0.0)).reshape(shape)

    def _curve_lr(self, code, zkv, n_q_heads, n_kv_heads, spread):
        """log(time / roofline) of attention points from the cached curves over mean KV (linear interpolation);
        ``code``: round(batch, 2) x 100 x 128 + round(log2 q, 1/4) x 4 of each point."""
        rs, rl = _runs(code)
        uniq, inv_r = np.unique(code[rs], return_inverse=True)
        inv = np.repeat(inv_r, rl)
        curves = np.stack([self._att_curve(float(c // 128) / 100, float(c % 128) / 4, n_q_heads, n_kv_heads, spread)
                           for c in uniq])
        x = np.clip((zkv - _KV_GRID[0]) / (_KV_GRID[1] - _KV_GRID[0]), 0, _KV_GRID.size - 1)
        i0 = np.minimum(x.astype(np.int64), _KV_GRID.size - 2)
        frac = x - i0
        return curves[inv, i0] * (1 - frac) + curves[inv, i0 + 1] * frac

    def _att_curve(self, b_val, q_val, n_q, n_kv, spread):
        sp = round(float(np.log2(spread)) * 2) / 2  # half-octave bins of unevenness
        key = (b_val, q_val, float(n_q), float(n_kv), sp)
        c = self._curves.get(key)
        if c is None:
            z = np.array([np.log2(max(b_val, 1e-9)), 0.0, q_val, np.log2(n_kv), np.log2(n_q / n_kv), sp])
            c = self._curves[key] = self.tables.attention.predict_curve(z, 1, _KV_GRID)
        return c

    def moe_s(self, tokens, n_local_experts, top_k_local, hidden, moe_inter, dtype="bf16", num_experts_total=0, top_k=0,
              routing_skew=0.0):
        tokens = np.atleast_1d(np.asarray(tokens, float))
        peak, bw = self._src()
        zf = (0.0, float(np.log2(n_local_experts)), float(np.log2(hidden)), float(np.log2(moe_inter)))
        b = BYTES[dtype]
        knn = self.tables.moe.get(dtype) or self.tables.moe["bf16"]  # an unmeasured dtype: bf16's ratio

        def times(g):
            # measured with uniform routing: the efficiency ratio is read there, the roofline gets the skewed
            # routing's distinct experts (fewer weight bytes)
            distinct = expected_distinct_experts(n_local_experts, num_experts_total, top_k, g, routing_skew)
            assignments = g * top_k_local
            Z, roof = moe_query(g, n_local_experts, assignments, distinct, hidden, moe_inter, dtype, peak, bw)
            t = roof * np.exp(knn.predict_curve(np.array(zf), 0, np.log2(g)))
            return self._move(t, 2.0 * assignments * 3 * hidden * moe_inter, distinct * 3 * hidden * moe_inter * b, dtype)

        key = ("moe", self.hardware.name, n_local_experts, float(top_k_local), hidden, moe_inter, dtype,
               num_experts_total, top_k, float(routing_skew))
        g, tg = self._monotone(key, 2.0 ** _TOK_GRID, times)
        if tokens.max(initial=0) > 2.0 ** knn.hi[0] or n_local_experts > 2.0 ** knn.hi[1]:
            self.extrapolated.add("moe outside the measured (tokens, experts, shape) grid")
        return np.where(tokens > 0, gemm_interp(g, tg, np.maximum(tokens, g[0]))[0], 0.0)

    def elementwise_ops_s(self, tokens, ops):
        tokens = np.atleast_1d(np.asarray(tokens, float))
        _, bw = self._src()
        total = np.zeros(tokens.shape)
        for op, width, count in ops:
            knn = self.tables.elementwise.get(op) or next(iter(self.tables.elementwise.values()))

            def times(g, op=op, width=width, knn=knn):
                _, roof = ew_query(op, g, width, bw)
                t = roof * np.exp(knn.predict_curve(np.array([0.0, float(np.log2(width))]), 0, np.log2(g)))
                return self._move(t, 0.0, g * width * 2.0 * EW_BYTES_FACTOR.get(op, 2.0))

            g, tg = self._monotone(("ew", self.hardware.name, op, float(width)), 2.0 ** _TOK_GRID, times)
            total = total + count * gemm_interp(g, tg, np.maximum(tokens, g[0]))[0]
        return np.where(tokens > 0, total, 0.0)

    def sampling_s(self, op, rows, vocab):
        rows = np.atleast_1d(np.asarray(rows, float))
        _, bw = self._src()
        knn = self.tables.sampling.get(op) or self.tables.sampling.get("sample")

        def times(g):
            _, roof = sampling_query(g, vocab, bw)
            t = roof * np.exp(knn.predict_curve(np.array([0.0, float(np.log2(vocab))]), 0, np.log2(g)))
            return self._move(t, 0.0, g * vocab * 4.0)

        g, tg = self._monotone(("sampling", self.hardware.name, op, float(vocab)), 2.0 ** _TOK_GRID, times)
        return np.where(rows > 0, gemm_interp(g, tg, np.maximum(rows, g[0]))[0], 0.0)

    def collective_s(self, op, bytes_per_rank, ranks, bandwidth_bytes_per_s, scaleout=False):
        b = np.asarray(bytes_per_rank, float)
        t = None if ranks <= 1 or scaleout else self._measured_collective_s(op, b, ranks)
        if t is None:
            if ranks > 1 and not scaleout and self.coll_missing_note:
                self.extrapolated.add(self.coll_missing_note)
            return super().collective_s(op, bytes_per_rank, ranks, bandwidth_bytes_per_s, scaleout)
        if op == "all_reduce":
            # engines all-reduce small TP messages with their own peer-to-peer kernels (vLLM's custom
            # all-reduce, one-shot or two-shot by size) where those beat NCCL: the fastest measured one
            for alt in CUSTOM_ALL_REDUCE_OPS:
                ta = self._measured_collective_s(alt, b, ranks, within_measured=True)
                if ta is not None:
                    t = np.minimum(t, ta)
        return np.where(b > 0, t, 0.0)

    def _measured_collective_s(self, op, b, ranks, within_measured=False):
        """Device seconds per call from the measured curve of ``op`` at the nearest measured rank count
        (None if never measured); with ``within_measured``, inf beyond the largest measured message."""
        fit = self.coll_fit
        measured = [r for (o, r) in fit if o == op]
        if not measured:
            return None
        r0 = min(measured, key=lambda r: abs(r - ranks))
        latency, b_meas, t_meas = fit[(op, r0)]
        # log-log interpolation of the measured curve; below the smallest message its time (the latency);
        # above the largest, the largest message's bandwidth
        t_at, _ = gemm_interp(b_meas, t_meas, np.clip(b, b_meas[0], b_meas[-1]))
        t_at = np.where(b > b_meas[-1], t_meas[-1] * b / b_meas[-1], t_at)
        # the transfer part, carried to ``ranks`` by the ring factor and to another GPU by its NVLink bandwidth
        bw_term = np.maximum(t_at - latency, 0.0) * ring_factor(op, ranks) / ring_factor(op, r0)
        src_bw = self.coll_source.nvlink_bandwidth_bytes_per_s
        if src_bw != self.hardware.nvlink_bandwidth_bytes_per_s:  # another NVLink generation: its bandwidth and
            bw_term = bw_term * src_bw / self.hardware.nvlink_bandwidth_bytes_per_s  # the catalogue's latency
            latency = self.latency["collective_latency_nvlink_s"]
        if r0 != ranks:
            self.extrapolated.add(f"{op} at {ranks} ranks from the {r0}-rank measurement (ring factor)")
        t = latency + bw_term
        return np.where(b > b_meas[-1], np.inf, t) if within_measured else t


CUSTOM_ALL_REDUCE_OPS = ("all_reduce_one_shot", "all_reduce_two_shot")


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


def calibrated_timer(hw: HardwareProfile, required: bool = False) -> CalibratedTimer | None:
    src = hw.calibration_source
    try:
        tables = load_tables(src)
    except CalibrationDataError:
        if required:
            raise
        root = catalog_dir("calibration")
        if (root / src).is_dir():  # present but broken: never silently fall back
            raise
        return None
    source_hw = load_hardware(GPU_DIR_TO_PROFILE.get(src, hw.name))
    timer = CalibratedTimer(hw, tables, source_hw)
    coll_src = hw.collectives_calibration_source
    if coll_src and not tables.collectives:
        if (catalog_dir("calibration") / coll_src).is_dir():  # present: used, and errors in it are raised
            timer.borrow_collectives(load_tables(coll_src), load_hardware(GPU_DIR_TO_PROFILE.get(coll_src, hw.name)))
        else:
            timer.coll_missing_note = f"collectives: calibration/{coll_src} not shipped, roofline estimate"
    return timer
