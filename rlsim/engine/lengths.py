"""Sampling a step's prompt and response lengths from a workload's distributions."""

from __future__ import annotations

import numpy as np

from ..catalog import LengthDistribution


def sample_lengths(dist: LengthDistribution, n: int, rng: np.random.Generator,
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
    return np.clip(np.rint(x), dist.min_tokens, dist.max_tokens).astype(np.int64)
