"""Reading a calibration folder (calibration/<gpu>/): meta.json and the measured CSV tables, validated
against the schema the microbenchmarks write (``rlsim/calibration/csv_schema.py``), and the points a
stopped run left out (``missing_points``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..calibration.csv_schema import OPTIONAL, REQUIRED, TEXT_COLS
from ..errors import CalibrationDataError

# calibration folder -> the hardware profile of the GPU it was measured on
GPU_DIR_TO_PROFILE = {"h100": "h100-sxm", "h200": "h200-sxm"}


def read_table(path: Path, cols: list[str], gpu_name: str | None):
    """One measured table, validated: ``cols`` present, complete, numeric (but ``TEXT_COLS``) and finite,
    positive times, rows of one GPU (``gpu_name``, from meta.json)."""
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
    for c in cols:
        if c in TEXT_COLS:
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


def read_folder(gpu_dir: Path) -> tuple[dict, dict]:
    """(meta.json, {file name: validated frame}) of a calibration folder: every required table, the optional
    ones present."""
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
        frames[name] = read_table(p, cols, gpu_name)
    for name, cols in OPTIONAL.items():
        p = gpu_dir / name
        if p.is_file():
            frames[name] = read_table(p, cols, None)
    return meta, frames


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
