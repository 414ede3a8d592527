"""Sampling a step's prompt and response lengths from a workload's distributions."""

from __future__ import annotations

import numpy as np

from ..catalog import LengthDistribution


def sample_lengths(dist: LengthDistribution, n: int, rng: np.random.Generator,
                   group_size: int = 1, group_correlation: float = 0.0) -> np.ndarray:
    return np.clip(np.rint(sample_raw_lengths(dist, n, rng, group_size, group_correlation)), dist.min_tokens,
                   dist.max_tokens).astype(np.int64)


def sample_raw_lengths(dist: LengthDistribution, n: int, rng: np.random.Generator,
                       group_size: int = 1, group_correlation: float = 0.0) -> np.ndarray:
    """Draw n lengths. ``lognormal``: exp(N(log median, sigma^2)) clipped to [min, max] (responses
    that hit max_tokens are truncated there, so the cap carries a point mass as in real RL).
    With ``group_size`` > 1, ``group_correlation`` of the log-variance is shared by the members of a
    group (the generations of one prompt: hard prompts give long answers together)."""
    if dist.distribution == "fixed" or dist.sigma == 0:
        x = np.full(n, dist.median_tokens)
    else:
        z = rng.standard_normal(n)
        if group_size > 1 and group_correlation > 0:
            groups = -(-n // group_size)
            shared = np.repeat(rng.standard_normal(groups), group_size)[:n]
            z = np.sqrt(group_correlation) * shared + np.sqrt(1 - group_correlation) * z
        x = dist.median_tokens * np.exp(dist.sigma * z)
    return x


def scale_to_mean(prompts: np.ndarray, raw_responses: np.ndarray, dist: LengthDistribution, caps: np.ndarray,
                  target_mean: float) -> np.ndarray:
    """Responses ``clip(rint(f x), min_tokens, cap)`` with the one factor f > 0 that makes the mean of prompt +
    response equal ``target_mean`` (to within half a token over the batch; bisection on log f).

    ``raw_responses`` are the unrounded draws (``sample_raw_lengths``); ``caps`` each sequence's largest
    response (max_tokens, or max_total_sequence_length - prompt). The shape of the distribution (its sigma,
    the cap's point mass) is kept; only its scale moves."""
    raw = np.asarray(raw_responses, float)
    caps = np.asarray(caps, float)

    def mean_at(f):
        return float(np.mean(prompts + np.clip(np.rint(f * raw), dist.min_tokens, caps)))

    lo_m, hi_m = float(np.mean(prompts + np.minimum(dist.min_tokens, caps))), float(np.mean(prompts + caps))
    if not (lo_m < target_mean < hi_m):
        from ..errors import ConfigurationError

        raise ConfigurationError(f"avg_seq_len = {target_mean}: unreachable with these prompts and caps (mean prompt + "
                                 f"response lies in ({lo_m:.0f}, {hi_m:.0f}) for any response scale)")
    lo, hi = 1e-6, 1e6
    for _ in range(200):
        mid = float(np.sqrt(lo * hi))
        if mean_at(mid) < target_mean:
            lo = mid
        else:
            hi = mid
        if hi / lo < 1 + 1e-9:
            break
    f = hi if abs(mean_at(hi) - target_mean) <= abs(mean_at(lo) - target_mean) else lo
    return np.clip(np.rint(f * raw), dist.min_tokens, caps).astype(np.int64)
