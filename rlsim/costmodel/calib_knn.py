"""The k-nearest-neighbour regressor of the calibrated timer: log(measured / roofline) over log-scaled shape
features (``LogRatioKNN``), with neighbours chosen the same way on every machine (``_nearest``)."""

from __future__ import annotations

import numpy as np


def _nearest(d: np.ndarray, k: int, groups: np.ndarray | None = None) -> np.ndarray:
    """Column indices of the ``k`` smallest distances of each row, ties broken by row index.

    On a regular grid many neighbours are exactly equally distant; ``np.argpartition`` returns such
    ties in an order that depends on the CPU's SIMD path, so the fit (and every simulated number)
    could differ between machines. Distances are first rounded to 1e-9 relative, so that two that
    are equal in exact arithmetic but differ in the last bit (summation order) also tie, then sorted
    stably: the nearest k, and among equals the lowest row index, on every machine.

    ``groups`` (sizes of consecutive row groups): each group rounded by its own scale, as if it were its own call."""
    finite = bool(np.isfinite(d).all())
    # magnitudes that set the rounding scale (distances are finite and >= 0 but for excluded points: no copy then)
    mag = d if finite and not (d < 0).any() else np.where(np.isfinite(d), np.abs(d), 0.0)
    if groups is None:
        scale = mag.max(initial=0.0) or 1.0
    else:
        row_max = mag.max(axis=1, initial=0.0)
        g = np.maximum.reduceat(row_max, np.concatenate([[0], np.cumsum(groups)[:-1]]))
        scale = np.repeat(np.where(g == 0.0, 1.0, g), groups)[:, None]
    dq = d / scale
    np.round(dq, 9, out=dq)
    if not finite:
        dq[~np.isfinite(d)] = np.inf
    k = min(k, dq.shape[1])
    # the k-th smallest value (an order-free quantity), then: every column below it, and the lowest-index
    # columns equal to it until k are taken; columns come back in index order (O(columns) per row)
    kth = np.partition(dq, k - 1, axis=1)[:, k - 1: k]
    less = dq < kth
    eq = dq == kth
    need = k - less.sum(axis=1, keepdims=True)
    tied = (eq.sum(axis=1, keepdims=True) > need).ravel()  # rows with more columns at the k-th value than it takes
    sel = less | eq
    if tied.any():
        sel[tied] = less[tied] | (eq[tied] & (np.cumsum(eq[tied].astype(np.int64), axis=1) <= need[tied]))
    return np.nonzero(sel)[1].reshape(dq.shape[0], k)


def _distances(Zq: np.ndarray, ZT: np.ndarray) -> np.ndarray:
    """Euclidean distances of each query row of ``Zq`` to each measured point (columns of ``ZT``, features x points):
    the squared differences summed feature after feature, in feature order (the order ``sum(-1)`` over the
    features adds them), one query-by-point array at a time."""
    acc = np.subtract.outer(Zq[:, 0], ZT[0])
    np.multiply(acc, acc, out=acc)
    tmp = np.empty_like(acc)
    for j in range(1, ZT.shape[0]):
        np.subtract.outer(Zq[:, j], ZT[j], out=tmp)
        np.multiply(tmp, tmp, out=tmp)
        acc += tmp
    return np.sqrt(acc, out=acc)


class LogRatioKNN:
    """k-nearest-neighbour regression of log(measured / roofline) in a log-feature space.

    The roofline carries the magnitude (so predictions outside the grid scale physically); the
    neighbours carry the efficiency shape measured around the query. Inverse-distance weights."""

    def __init__(self, Z: np.ndarray, log_ratio: np.ndarray, scale: np.ndarray, k: int = 4):
        self.Z = np.asarray(Z, float) * scale
        self.ZT = np.ascontiguousarray(self.Z.T)  # one contiguous row per feature (the distance loop)
        self.y = np.asarray(log_ratio, float)
        self.scale = np.asarray(scale, float)
        self.k = min(k, len(self.y))
        self.lo = self.Z.min(axis=0)
        self.hi = self.Z.max(axis=0)

    def predict(self, Zq: np.ndarray, exclude: np.ndarray | None = None, groups: np.ndarray | None = None) -> np.ndarray:
        """``groups``: sizes of consecutive query groups, each predicted as if alone (see ``_nearest``)."""
        Zq = np.atleast_2d(np.asarray(Zq, float)) * self.scale
        d = _distances(Zq, self.ZT)
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
