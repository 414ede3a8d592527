"""Acceptance: how many tokens one speculative round yields.

Definitions follow vLLM and NeMo-RL: acceptance length AL = 1 + accepted drafts / rounds, so
1 <= AL <= k + 1. A round of a sequence accepts ``a`` of its k drafts (0 <= a <= k) and always
adds one corrected or bonus token: it advances a + 1 tokens.

Per-position rates come in two forms:
- conditional ``c_i``: P(draft i accepted | drafts 0..i-1 accepted) (what a draft's quality is);
- unconditional ``p_i`` (vLLM's ``num_accepted_tokens_per_pos / num_drafts``): P(first i+1 accepted).
Given only a mean AL at k, rlsim assumes a constant conditional rate (geometric model) and solves
c + c^2 + ... + c^k = AL - 1. "Draft quality" (``DraftQuality``) is that per-token conditional rate,
optionally decaying with draft position, so quality and k can be swept independently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigurationError


def _solve_constant_rate(k: int, al: float) -> float:
    target = al - 1.0
    if target <= 0:
        return 0.0
    if target >= k - 1e-12:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        s = sum(mid ** i for i in range(1, k + 1))
        lo, hi = (mid, hi) if s < target else (lo, mid)
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class AcceptanceModel:
    """Conditional per-position acceptance rates for positions 0..k-1 (k = len(rates))."""

    conditional_rates: tuple[float, ...]

    def __post_init__(self):
        for i, r in enumerate(self.conditional_rates):
            if not (0.0 <= r <= 1.0):
                raise ConfigurationError(f"acceptance rate at draft position {i} = {r}; allowed: 0..1")

    # ---- constructors
    @classmethod
    def none(cls) -> "AcceptanceModel":
        return cls(())

    @classmethod
    def from_acceptance_length(cls, k: int, acceptance_length: float) -> "AcceptanceModel":
        if k == 0:
            return cls.none()
        if not (1.0 <= acceptance_length <= k + 1 + 1e-9):
            raise ConfigurationError(
                f"acceptance_length = {acceptance_length} is impossible at k = {k}; allowed: 1 <= AL <= k+1 = {k + 1}")
        c = _solve_constant_rate(k, acceptance_length)
        return cls(tuple([c] * k))

    @classmethod
    def from_unconditional_rates(cls, rates: list[float]) -> "AcceptanceModel":
        """vLLM per-position metric: p_i = P(first i+1 drafts all accepted); must be non-increasing."""
        cond, prev = [], 1.0
        for i, p in enumerate(rates):
            if not (0.0 <= p <= 1.0):
                raise ConfigurationError(f"per-position acceptance at position {i} = {p}; allowed: 0..1")
            if p > prev + 1e-9:
                raise ConfigurationError(
                    f"per-position acceptance must not increase with position (vLLM's unconditional rates): "
                    f"position {i} = {p} > position {i-1} = {prev}")
            cond.append(0.0 if prev <= 0 else min(p / prev, 1.0))
            prev = p
        return cls(tuple(cond))

    @classmethod
    def from_quality(cls, k: int, per_token_rate: float, position_decay: float = 1.0) -> "AcceptanceModel":
        """Draft quality: conditional rate at draft position i = per_token_rate * position_decay**i."""
        if not (0 <= per_token_rate <= 1):
            raise ConfigurationError(f"draft quality (per-token acceptance rate) = {per_token_rate}; allowed: 0..1")
        if not (0 < position_decay <= 1):
            raise ConfigurationError(f"position_decay = {position_decay}; allowed: (0, 1]")
        return cls(tuple(per_token_rate * position_decay ** i for i in range(k)))

    # ---- properties
    @property
    def k(self) -> int:
        return len(self.conditional_rates)

    @property
    def unconditional_rates(self) -> np.ndarray:
        return np.cumprod(np.asarray(self.conditional_rates, dtype=float))

    @property
    def pmf(self) -> np.ndarray:
        """P(accepted = a) for a = 0..k."""
        if self.k == 0:
            return np.ones(1)
        p = np.concatenate([[1.0], self.unconditional_rates])  # P(accepted >= a)
        pmf = p[:-1] - p[1:]
        return np.concatenate([pmf, p[-1:]])

    @property
    def acceptance_length(self) -> float:
        return 1.0 + float(self.unconditional_rates.sum()) if self.k else 1.0

    def at_k(self, k: int) -> "AcceptanceModel":
        """The same draft at another k: positions beyond the known ones repeat the last rate."""
        if k <= self.k:
            return AcceptanceModel(self.conditional_rates[:k])
        last = self.conditional_rates[-1] if self.k else 0.0
        return AcceptanceModel(self.conditional_rates + (last,) * (k - self.k))

    def sample_advance(self, rng: np.random.Generator, size) -> np.ndarray:
        """Tokens a round advances (accepted + 1), sampled i.i.d. for ``size`` rounds."""
        if self.k == 0:
            return np.ones(size, dtype=np.int32)
        return self.advance_from_uniform(rng.random(size, dtype=np.float32))

    def advance_from_uniform(self, u: np.ndarray) -> np.ndarray:
        """``sample_advance``'s advances from its uniform draws ``u`` (float32 in [0, 1)): 1 + the number of CDF
        points at or below each draw. Draws of several random streams can be turned into advances in one call."""
        if self.k == 0:
            return np.ones(u.shape, dtype=np.int32)
        cdf = self._cdf32
        small = cdf.size < 127
        out = np.ones(u.shape, np.int8 if small else np.int16)  # advances are small: narrow integers, fewer bytes
        hit = np.empty(u.shape, np.bool_)
        for c in cdf:  # advance = 1 + number of CDF points at or below u (k vector compares)
            np.greater_equal(u, c, out=hit)
            np.add(out, hit.view(np.int8) if small else hit, out=out)
        return out

    @property
    def _cdf32(self) -> np.ndarray:
        c = self.__dict__.get("_cdf_cache")
        if c is None:
            c = np.cumsum(self.pmf).astype(np.float32)[:-1]
            object.__setattr__(self, "_cdf_cache", c)
        return c


@dataclass(frozen=True)
class DraftQuality:
    per_token_rate: float
    position_decay: float = 1.0

    def at_k(self, k: int) -> AcceptanceModel:
        return AcceptanceModel.from_quality(k, self.per_token_rate, self.position_decay)
