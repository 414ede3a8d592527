"""The fitted calibration tables of a calibration folder, cached on disk (``load_tables``): keyed by a hash of
everything the fit reads, so a changed file (data or fitting code) is re-read, re-validated and re-fitted."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

from ..catalog import load_hardware
from ..catalog.loader import catalog_dir
from ..errors import CalibrationDataError
from .calib_fit import CalibrationTables, fit_tables
from .calib_tables import GPU_DIR_TO_PROFILE


def _cache_path(d: Path) -> Path | None:
    import hashlib
    import os

    from ..calibration import csv_schema
    from . import calib_fit, calib_knn, calib_tables
    from . import timer as _timer_module

    h = hashlib.sha256(b"rlsim-tables")
    # everything the fit reads is part of the key: the code it runs (the schema, the table reading, the k-NN
    # regressor, the fit, this module: what the cache stores), the timer module (BYTES, the roofline terms), the
    # hardware profile of the measured GPU (its peaks normalise every table) and the data files: every CSV, and
    # every meta*.json (meta.json, and the meta_<op>.json files whose planned counts ``missing_points`` reads)
    for mod in (csv_schema, calib_tables, calib_knn, calib_fit, _timer_module):
        h.update(Path(mod.__file__).read_bytes())
    h.update(Path(__file__).read_bytes())
    h.update(load_hardware(GPU_DIR_TO_PROFILE.get(d.name, "h100-sxm")).model_dump_json().encode())
    for p in sorted(d.glob("*.csv")) + sorted(d.glob("meta*.json")):
        if p.is_file():
            h.update(p.name.encode())
            h.update(p.read_bytes())
    base = Path(os.environ.get("RLSIM_CACHE_DIR", Path.home() / ".cache" / "rlsim"))
    return base / f"tables-{d.name}-{h.hexdigest()[:16]}.pkl"


@functools.lru_cache(maxsize=None)
def load_tables(gpu: str) -> CalibrationTables:
    """Fitted tables of calibration/<gpu>; the fit is cached on disk keyed by a hash of the data files and the
    fitting code (``_cache_path``; a changed or corrupted file is re-read and re-validated)."""
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
