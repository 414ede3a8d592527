"""Pure-Python helpers of the calibration microbenchmarks: resumable incremental CSV writing
(schemas from ``csv_schema``), progress printing and a time budget.

Nothing here imports torch (the simulator must never need it).
"""
from __future__ import annotations

import csv
import math
import os
import sys
import time
from pathlib import Path
from typing import Iterable, Sequence

# CSV schemas: rlsim/calibration/csv_schema.py (one definition, also read by the cost model).
try:
    from .csv_schema import KEYS, SCHEMAS
except ImportError:  # script mode (python rlsim/calibration/microbench.py): a sibling module
    from csv_schema import KEYS, SCHEMAS


def fmt(v) -> str:
    """Canonical text form of a CSV cell (used for writing AND for resume keys)."""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if v == int(v) and abs(v) < 1e15 and not (0 < abs(v) < 1e-3):
            return str(int(v))
        return f"{v:.4e}" if (abs(v) < 1e-2 or abs(v) >= 1e7) else f"{v:.6g}"
    return str(v)


def row_key(kind: str, row: dict) -> tuple:
    return tuple(fmt(row[c]) for c in KEYS[kind])


class CsvTable:
    """Append-only CSV with a fixed schema; resumable by key columns.

    Rows are flushed (and fsync'ed) after each write so that a run killed by a
    timeout leaves every finished row on disk.
    """

    def __init__(self, out_dir: Path, kind: str, resume: bool = True):
        self.kind = kind
        self.cols = SCHEMAS[kind]
        self.path = Path(out_dir) / f"{kind}.csv"
        self.done: set[tuple] = set()
        if self.path.exists() and resume:
            with open(self.path, newline="") as f:
                rd = csv.DictReader(f)
                if rd.fieldnames is not None and list(rd.fieldnames) != self.cols:
                    # Schema changed: keep the old file aside and start anew.
                    bak = self.path.with_suffix(".csv.old")
                    self.path.rename(bak)
                    print(f"[{kind}] schema differs from {self.path.name}; moved to {bak.name}")
                else:
                    for r in rd:
                        try:
                            self.done.add(tuple(r[c] for c in KEYS[kind]))
                        except KeyError:
                            pass
        elif self.path.exists() and not resume:
            self.path.unlink()
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._f = open(self.path, "a", newline="")
        self._w = csv.writer(self._f)
        if new:
            self._w.writerow(self.cols)
            self._f.flush()

    def has(self, row: dict) -> bool:
        return row_key(self.kind, row) in self.done

    def write(self, row: dict) -> None:
        missing = [c for c in self.cols if c not in row]
        if missing:
            raise KeyError(f"{self.kind}: row lacks {missing}")
        self._w.writerow([fmt(row[c]) for c in self.cols])
        self._f.flush()
        try:
            os.fsync(self._f.fileno())
        except OSError:
            pass
        self.done.add(row_key(self.kind, row))

    def close(self) -> None:
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------
# progress and budget
# ---------------------------------------------------------------------------
class Progress:
    """A plain printed counter with percentage and ETA (no rich needed)."""

    def __init__(self, name: str, total: int, enabled: bool = True, every_s: float = 10.0,
                 stream=None):
        self.name, self.total, self.enabled = name, max(int(total), 0), enabled
        self.every_s = every_s
        self.n = 0
        self.skipped = 0
        self.failed = 0
        self.t0 = time.monotonic()
        self._last = 0.0
        self._last_pct = -100.0
        self.stream = stream or sys.stdout
        if enabled:
            print(f"[{name}] {self.total} points planned", file=self.stream, flush=True)

    def step(self, skipped: bool = False, failed: bool = False, note: str = "") -> None:
        self.n += 1
        self.skipped += int(skipped)
        self.failed += int(failed)
        if not self.enabled:
            return
        now = time.monotonic()
        pct = 100.0 * self.n / self.total if self.total else 100.0
        if (now - self._last >= self.every_s or pct - self._last_pct >= 10.0
                or self.n == self.total):
            el = now - self.t0
            done_meas = self.n - self.skipped
            rate = el / done_meas if done_meas else 0.0
            eta = rate * (self.total - self.n)
            print(f"[{self.name}] {self.n}/{self.total} ({pct:5.1f}%) elapsed {el:6.1f}s "
                  f"ETA {eta:6.1f}s skipped {self.skipped} failed {self.failed} {note}",
                  file=self.stream, flush=True)
            self._last, self._last_pct = now, pct

    def summary(self) -> dict:
        return {"planned": self.total, "visited": self.n, "resumed_skips": self.skipped,
                "failed": self.failed, "elapsed_s": round(time.monotonic() - self.t0, 1)}


class Budget:
    """Splits a wall-clock budget among op classes; unused time rolls over."""

    def __init__(self, total_s: float | None, shares: dict[str, float]):
        self.total_s = total_s
        self.t0 = time.monotonic()
        self.shares = dict(shares)

    def deadline(self, op: str, remaining_ops: Sequence[str]) -> float:
        if self.total_s is None:
            return float("inf")
        left = self.total_s - (time.monotonic() - self.t0)
        tot = sum(self.shares.get(o, 0.05) for o in remaining_ops) or 1.0
        return time.monotonic() + max(left, 0.0) * self.shares.get(op, 0.05) / tot


def percentile(xs: Iterable[float], q: float) -> float:
    s = sorted(xs)
    if not s:
        return float("nan")
    pos = (len(s) - 1) * q / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)
