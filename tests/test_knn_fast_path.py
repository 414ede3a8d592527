"""The k-NN regressor's fast distance and neighbour code gives the same bits as the plain formulation it replaced
(every simulated number goes through it): random queries on integer grids (many exact ties), with infinite
distances (an excluded point) and query groups rounded by their own scale."""

import numpy as np

from rlsim.costmodel.calib_knn import LogRatioKNN, _distances, _nearest


def _nearest_plain(d, k, groups=None):
    if groups is None:
        scale = np.where(np.isfinite(d), np.abs(d), 0.0).max(initial=0.0) or 1.0
    else:
        row_max = np.where(np.isfinite(d), np.abs(d), 0.0).max(axis=1, initial=0.0)
        g = np.maximum.reduceat(row_max, np.concatenate([[0], np.cumsum(groups)[:-1]]))
        scale = np.repeat(np.where(g == 0.0, 1.0, g), groups)[:, None]
    dq = np.where(np.isfinite(d), np.round(d / scale, 9), np.inf)
    k = min(k, dq.shape[1])
    kth = np.partition(dq, k - 1, axis=1)[:, k - 1: k]
    less, eq = dq < kth, dq == kth
    need = k - less.sum(axis=1, keepdims=True)
    sel = less | (eq & (np.cumsum(eq.astype(np.int64), axis=1) <= need))
    return np.nonzero(sel)[1].reshape(dq.shape[0], k)


def test_distances_and_neighbours_match_the_plain_formulation():
    rng = np.random.default_rng(7)
    for trial in range(600):
        n, N, F = int(rng.integers(1, 10)), int(rng.integers(1, 40)), int(rng.integers(1, 7))
        Z = rng.standard_normal((N, F)) if trial % 3 == 0 else rng.integers(0, 4, (N, F)) * 0.25
        Zq = rng.integers(0, 4, (n, F)) * 0.5 + (rng.standard_normal((n, F)) * 0.01 if trial % 2 else 0.0)
        plain = np.sqrt(((Zq[:, None, :] - Z[None, :, :]) ** 2).sum(-1))
        d = _distances(np.asarray(Zq, float), np.ascontiguousarray(np.asarray(Z, float).T))
        assert np.array_equal(plain, d), trial
        if trial % 5 == 0:
            d[0, int(rng.integers(0, N))] = np.inf
        groups = None
        if trial % 4 == 1 and n > 1:
            cut = sorted(set(rng.integers(1, n, 2).tolist()))
            groups = np.diff([0, *cut, n])
        k = int(rng.integers(1, 6))
        assert np.array_equal(_nearest_plain(d.copy(), k, groups), _nearest(d.copy(), k, groups)), trial


def test_predict_is_the_inverse_distance_mean_of_the_plain_neighbours():
    rng = np.random.default_rng(3)
    Z = rng.integers(0, 5, (50, 3)).astype(float)
    y = rng.standard_normal(50)
    knn = LogRatioKNN(Z, y, np.array([1.0, 0.5, 2.0]), k=4)
    Zq = rng.integers(0, 5, (20, 3)) + 0.5 * rng.integers(0, 2, (20, 3))
    d = np.sqrt(((Zq[:, None, :] * knn.scale - knn.Z[None, :, :]) ** 2).sum(-1))
    idx = _nearest_plain(d, 4)
    w = 1.0 / (np.take_along_axis(d, idx, 1) + 1e-3)
    assert np.array_equal(knn.predict(Zq), (w * y[idx]).sum(1) / w.sum(1))
