"""Scenario inputs: sequence lengths, acceptance rates, synthetic acceptance draws.

Everything here is deterministic given the seed, so a simulator can regenerate it:

* lengths: ``rng = np.random.default_rng([seed, n_seqs, LENGTH_CODE[kind]])``;
  prompts = clip(round(rng.lognormal(mu_p, sigma_p, n)), p_min, p_cap), then
  responses = clip(round(rng.lognormal(mu_r, sigma_r, n)), r_min, r_cap), where
  mu = ln(mean) - sigma^2 / 2 (the unclipped mean is `mean`).  The lengths are also
  written to sequences.csv, so replaying needs none of this.
* acceptance: sequence `seq_id` uses its own stream
  ``u = np.random.default_rng([seed, 7919, seq_id]).random((R, k))`` (R = its response
  length); in its r-th verification round (r = 0, 1, ...) the number of accepted drafts
  is the number of leading j with u[r, j] < a_j.  The stream is independent of batching
  and preemption.  The sequence then advances min(accepted + 1, remaining) tokens.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LENGTH_CODE = {"short": 1, "long": 2, "tiny": 3, "tinylong": 4}


@dataclass
class LengthSpec:
    prompt_mean: float
    prompt_sigma: float
    prompt_min: int
    prompt_cap: int
    resp_mean: float
    resp_sigma: float
    resp_min: int
    resp_cap: int


def sample_lengths(spec: LengthSpec, n: int, seed: int, kind: str):
    rng = np.random.default_rng([seed, n, LENGTH_CODE[kind]])

    def ln(mean, sigma, lo, hi):
        mu = np.log(mean) - sigma ** 2 / 2
        x = np.rint(rng.lognormal(mu, sigma, n)).astype(np.int64)
        return np.clip(x, lo, hi)

    p = ln(spec.prompt_mean, spec.prompt_sigma, spec.prompt_min, spec.prompt_cap)
    r = ln(spec.resp_mean, spec.resp_sigma, spec.resp_min, spec.resp_cap)
    return p, r


def solve_rate(k: int, al: float) -> float:
    """Constant conditional rate a with a + a^2 + ... + a^k = al - 1 (bisection)."""
    if k == 0:
        return 0.0
    target = al - 1.0
    if target <= 0:
        return 0.0
    if target >= k:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        s = sum(mid ** i for i in range(1, k + 1))
        if s < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def expected_al(rates) -> float:
    al, p = 1.0, 1.0
    for a in rates:
        p *= a
        al += p
    return al


def accept_stream(seed: int, seq_id: int, rounds: int, rates) -> np.ndarray:
    """Accepted drafts per verification round for one sequence (int array of `rounds`)."""
    k = len(rates)
    if k == 0:
        return np.zeros(rounds, dtype=np.int64)
    u = np.random.default_rng([seed, 7919, seq_id]).random((rounds, k))
    ok = u < np.asarray(rates, dtype=np.float64)[None, :]
    return np.cumprod(ok, axis=1).sum(axis=1).astype(np.int64)
