"""Measured costs of an engine's mechanisms (engine profiles): what the ideal engine does not pay.

Two measured sources, both committed so that no GPU is needed to simulate:

* ``calibration/<gpu>/engine.csv`` (``rlsim/calibration/mb_engine.py``): per component (vLLM 0.17.1's sampler
  and rejection sampler with log-probs, the full-vocabulary draft token choice, the draft loop's bookkeeping
  ops, a graph replay), the GPU time (``device_s``, CUDA-graph replay of its kernels) and the host time to
  issue it (``host_s``), over batch size, k and vocabulary.
* ``calibration/host/host_fit.json`` (``rlsim/calibration/mb_host.py``): the engine's per-step and per-round
  host (CPU) work, fitted as ``a + b * B (+ c * B * k)`` per component.

Transfer to a GPU that was not measured: a component's device time is split into its latency floor (the
smallest batch's time, kept) and the rest (memory-bound full-vocabulary passes), scaled by the ratio of HBM
bandwidths. Host times are kept as measured (the CPU is not the GPU's; docs/engine-profiles.md says which CPU).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path


import numpy as np

from ..catalog import HardwareProfile, load_hardware
from ..catalog.loader import catalog_dir
from ..errors import CalibrationDataError

ENGINE_CSV_COLUMNS = ["component", "batch", "k", "vocab", "draft_vocab", "device_s", "host_s"]
GPU_DIR_TO_PROFILE = {"h100": "h100-sxm", "h200": "h200-sxm"}


@dataclass
class _Curve:
    """device and host seconds over batch size (log-log interpolation; linear in B beyond the largest)."""

    batch: np.ndarray
    device_s: np.ndarray
    host_s: np.ndarray

    def at(self, B):
        B = np.maximum(np.asarray(B, float), 1.0)
        lb, hi = np.log(self.batch), self.batch[-1]
        dev = np.exp(np.interp(np.log(B), lb, np.log(self.device_s)))
        host = np.exp(np.interp(np.log(B), lb, np.log(self.host_s)))
        if self.batch.size >= 2:  # beyond the grid: device linear in rows from the last two points, host flat
            slope = max((self.device_s[-1] - self.device_s[-2]) / (self.batch[-1] - self.batch[-2]), 0.0)
            dev = np.where(B > hi, self.device_s[-1] + slope * (B - hi), dev)
        return dev, host


@dataclass
class EngineTables:
    gpu: str  # calibration folder measured on
    source: HardwareProfile  # the measured GPU
    curves: dict = field(default_factory=dict)  # (component, k, vocab) -> _Curve
    meta: dict = field(default_factory=dict)
    extrapolated: set = field(default_factory=set)

    def _curve(self, component: str, k: int, vocab: int) -> tuple[_Curve, float]:
        """The measured curve of the nearest vocabulary (device scaled by vocab ratio)."""
        vocabs = sorted({v for (c, kk, v) in self.curves if c == component})
        if not vocabs:
            raise CalibrationDataError(f"calibration/{self.gpu}/engine.csv: no {component!r} rows")
        v0 = min(vocabs, key=lambda v: abs(np.log(max(v, 1) / max(vocab, 1)))) if vocab else vocabs[0]
        ks = sorted({kk for (c, kk, v) in self.curves if c == component and v == v0})
        if k in ks:
            return self.curves[(component, k, v0)], (vocab / v0 if vocab and v0 else 1.0)
        return None, (vocab / v0 if vocab and v0 else 1.0)

    def has_component(self, component: str) -> bool:
        return any(c == component for (c, _, _) in self.curves)

    def component_s(self, component: str, B, k: int = 0, vocab: int = 0):
        """(device seconds on the measured GPU, host seconds) of ``component`` at batch ``B`` (array), k, vocab.
        k between measured values: linear in k; beyond the largest: linear from the last two."""
        c, vscale = self._curve(component, k, vocab)
        if c is not None:
            dev, host = c.at(B)
        else:
            vocabs = sorted({v for (cc, kk, v) in self.curves if cc == component})
            v0 = min(vocabs, key=lambda v: abs(np.log(max(v, 1) / max(vocab, 1)))) if vocab else vocabs[0]
            ks = sorted({kk for (cc, kk, v) in self.curves if cc == component and v == v0})
            lo = max([x for x in ks if x < k], default=ks[0])
            hi = min([x for x in ks if x > k], default=ks[-1])
            if lo == hi:  # beyond the measured k: extrapolate from the last two
                lo, hi = (ks[-2], ks[-1]) if k > ks[-1] else (ks[0], ks[1])
                self.extrapolated.add(f"engine {component} at k = {k} (measured k {ks[0]}..{ks[-1]})")
            d0, h0 = self.curves[(component, lo, v0)].at(B)
            d1, h1 = self.curves[(component, hi, v0)].at(B)
            w = (k - lo) / (hi - lo)
            dev, host = d0 + w * (d1 - d0), h0 + w * (h1 - h0)
            dev = np.maximum(dev, 0.0)
        if np.max(np.asarray(B, float), initial=0) > max(c.batch[-1] if c is not None else 1024, 1):
            self.extrapolated.add(f"engine {component} beyond the measured batch")
        # device: the latency floor stays, the bandwidth part scales with the vocabulary
        floor = self.floor(component, k, vocab)
        dev = floor + (dev - floor) * vscale
        return dev, host

    def floor(self, component: str, k: int, vocab: int) -> float:
        vocabs = sorted({v for (c, kk, v) in self.curves if c == component})
        v0 = min(vocabs, key=lambda v: abs(np.log(max(v, 1) / max(vocab, 1)))) if vocab else vocabs[0]
        ks = sorted({kk for (c, kk, v) in self.curves if c == component and v == v0})
        k0 = min(ks, key=lambda x: abs(x - k))
        return float(self.curves[(component, k0, v0)].device_s[0])

    def device_on(self, hw: HardwareProfile, component: str, B, k: int = 0, vocab: int = 0):
        """(device seconds on ``hw``, host seconds): the bandwidth part moved by the HBM bandwidth ratio."""
        dev, host = self.component_s(component, B, k, vocab)
        if hw.name != self.source.name:
            floor = self.floor(component, k, vocab)
            dev = floor + np.maximum(dev - floor, 0.0) * (self.source.hbm_bandwidth_bytes_per_s
                                                         / hw.hbm_bandwidth_bytes_per_s)
        return dev, host


@functools.lru_cache(maxsize=None)
def load_engine_tables(gpu: str) -> EngineTables:
    root = catalog_dir("calibration")
    p = root / gpu / "engine.csv"
    if not p.is_file():
        avail = sorted(d.name for d in root.iterdir() if (d / "engine.csv").is_file())
        raise CalibrationDataError(f"no engine mechanism table calibration/{gpu}/engine.csv (measured by "
                                   f"rlsim/calibration/mb_engine.py); available: {', '.join(avail) or 'none'}")
    # the parsed tables are cached on disk keyed by the files and this module (reading the CSV needs pandas)
    import hashlib
    import os
    import pickle

    h = hashlib.sha256(b"rlsim-engine-tables")
    mp = root / gpu / "meta_engine.json"
    for f in (Path(__file__), p, mp):
        if f.is_file():
            h.update(f.name.encode())
            h.update(f.read_bytes())
    cache = Path(os.environ.get("RLSIM_CACHE_DIR", Path.home() / ".cache" / "rlsim")) / \
        f"engine-{gpu}-{h.hexdigest()[:16]}.pkl"
    if cache.is_file():
        try:
            return pickle.loads(cache.read_bytes())
        except Exception:  # noqa: BLE001 - a bad cache is just rebuilt
            pass
    t = _read_engine_tables(root, gpu, p)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(t))
        tmp.replace(cache)
    except OSError:
        pass
    return t


def _read_engine_tables(root: Path, gpu: str, p: Path) -> EngineTables:
    import pandas as pd

    frames = []
    # engine.csv: vLLM 0.17.1's components; engine_sglang.csv (if shipped): SGLang 0.5.6's (mb_engine_sglang.py)
    for path in (p, root / gpu / "engine_sglang.csv"):
        if path is not p and not path.is_file():
            continue
        try:
            frames.append(pd.read_csv(path))
        except Exception as e:  # noqa: BLE001
            raise CalibrationDataError(f"{path}: cannot parse CSV ({type(e).__name__}: {e})") from None
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    missing = [c for c in ENGINE_CSV_COLUMNS if c not in df.columns]
    if missing:
        raise CalibrationDataError(f"{p}: missing columns {missing}; needs {ENGINE_CSV_COLUMNS}")
    for c in ("batch", "k", "vocab", "draft_vocab", "device_s", "host_s"):
        v = pd.to_numeric(df[c], errors="coerce")
        if v.isna().any() or not np.isfinite(v.to_numpy(float)).all():
            raise CalibrationDataError(f"{p}: column {c!r} has a missing or non-numeric value")
        df[c] = v
    if (df[["device_s", "host_s"]] <= 0).any().any():
        raise CalibrationDataError(f"{p}: non-positive device_s/host_s")
    curves = {}
    for (comp, k, vocab), g in df.groupby(["component", "k", "vocab"], sort=True):
        g = g.sort_values("batch")
        curves[(str(comp), int(k), int(vocab))] = _Curve(g["batch"].to_numpy(float), g["device_s"].to_numpy(float),
                                                         g["host_s"].to_numpy(float))
    meta = {}
    mp = root / gpu / "meta_engine.json"
    if mp.is_file():
        try:
            meta = json.loads(mp.read_text())
        except json.JSONDecodeError as e:
            raise CalibrationDataError(f"{mp}: not valid JSON: {e}") from None
    return EngineTables(gpu, load_hardware(GPU_DIR_TO_PROFILE.get(gpu, "h200-sxm")), curves, meta)


# ------------------------------------------------------------------------------------------------ host fit
_HOST_KEYS = {"a_s": "a", "b_s_per_req": "b", "c_s_per_req_per_draft": "c", "d_s_per_req_token": "d",
              "e_s_per_req2": "e"}


@dataclass
class HostModel:
    """The engine's host work, per component: ``a + b*B + c*B*k + d*B*context + e*B^2`` seconds, fitted by
    rlsim/calibration/mb_host.py on vLLM 0.17.1's own code (calibration/host/host_fit.json), times ``scale``:
    the ratio of the GPU machine's host CPU to the CPU the fit was measured on (calibration/host/cpu_*.json,
    rlsim/calibration/mb_cpu.py), so that every host time refers to one CPU, the one the GPU launch costs
    (engine.csv) were measured with."""

    coefficients: dict  # component -> {"a": s, "b": s per request, "c": s per request per draft token, ...}
    meta: dict
    scale: float = 1.0
    scale_note: str = ""

    def seconds(self, component: str, B, k=0, context_tokens=0):
        c = self.coefficients.get(component)
        if c is None:
            raise CalibrationDataError(f"calibration/host/host_fit.json: no component {component!r}; "
                                       f"available: {', '.join(sorted(self.coefficients))}")
        B = np.asarray(B, float)
        t = c["a"] + c["b"] * B + c["c"] * B * np.asarray(k, float) \
            + c["d"] * B * np.asarray(context_tokens, float) + c["e"] * B * B
        return np.where(B > 0, np.maximum(t, 0.0), 0.0) * self.scale

    def has(self, component: str) -> bool:
        return component in self.coefficients


def cpu_scale(host_dir) -> tuple[float, str]:
    """GPU-machine host / fit-machine CPU time, geometric mean over mb_cpu's benchmarks (best of each machine's
    runs: ``cpu_fit_machine*.json`` vs ``cpu_gpu_host*.json``); 1.0 when either is missing."""
    import math

    def best(pattern):
        runs = [json.loads(p.read_text())["seconds"] for p in sorted(host_dir.glob(pattern))]
        if not runs:
            return None
        return {k: min(r[k] for r in runs if k in r) for k in runs[0]}

    fit, gpu = best("cpu_fit_machine*.json"), best("cpu_gpu_host*.json")
    if not fit or not gpu:
        return 1.0, "host times as measured (no CPU speed comparison shipped)"
    rs = [gpu[k] / fit[k] for k in gpu if k in fit and fit[k] > 0 and gpu[k] > 0
          and math.isfinite(fit[k]) and math.isfinite(gpu[k])]
    s = math.exp(sum(math.log(r) for r in rs) / len(rs))
    return s, f"host times scaled by {s:.2f} (the GPU machine's host CPU vs the fit's CPU, mb_cpu.py)"


@functools.lru_cache(maxsize=None)
def load_host_model() -> HostModel:
    d_ = catalog_dir("calibration") / "host"
    p = d_ / "host_fit.json"
    if not p.is_file():
        raise CalibrationDataError(f"no host-work fit {p} (measured by rlsim/calibration/mb_host.py)")
    try:
        d = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise CalibrationDataError(f"{p}: not valid JSON: {e}") from None
    comps = d.get("components")
    if not isinstance(comps, dict):
        raise CalibrationDataError(f"{p}: no 'components' mapping")
    coeffs = {}
    for name, c in comps.items():
        if not isinstance(c, dict):
            continue
        vals = dict.fromkeys("abcde", 0.0)
        for key, short in _HOST_KEYS.items():
            v = c.get(key, 0.0)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                raise CalibrationDataError(f"{p}: {name}.{key} = {v!r} is not a finite number")
            vals[short] = float(v)
        coeffs[name] = vals
    scale, note = cpu_scale(d_)
    return HostModel(coeffs, {k: v for k, v in d.items() if k != "components"}, scale, note)


__all__ = ["EngineTables", "HostModel", "load_engine_tables", "load_host_model"]

