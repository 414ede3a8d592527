"""Acceptance that varies across sequences and along a response (a ``SpecPolicy`` subclass).

The base policy draws every round of every sequence i.i.d. from one acceptance model. Real rollouts
are not like that: some prompts are far more predictable than others (a math derivation that
repeats the prompt's symbols vs a free-form exploration), and on long reasoning traces acceptance
tends to fall as the response wanders from what the draft was trained on. This policy adds both,
seeded, on top of the draft's per-position (conditional) rates ``c_i`` (which may already decay with
the draft position, e.g. ``DraftQuality`` / ``from_quality`` or rates fitted from a trace):

- **variation across sequences** (``acceptance_spread`` = s in [0, 1)): sequence j draws its own
  per-token rate ``x_j ~ Beta(mu * kappa, (1 - mu) * kappa)`` with ``kappa = 1/s - 1``, so that
  ``Var(x) = s * mu * (1 - mu)`` (s = 0: no variation; s -> 1: every sequence is either always or
  never accepted). Its conditional rate at draft position i is ``min(1, x_j * c_i / c_0)``: the
  draft's position profile, scaled by the sequence's predictability.
- **decay along the response** (``response_decay`` = d in [0, 1)): at response position t (tokens
  generated so far) every rate is multiplied by ``(1 - d) ** (t / 1000)``: d is the fraction of the
  per-token acceptance lost per 1000 generated tokens.
- **mean preserved** (default): mu is solved so that the aggregate acceptance length at the
  reference k (the scenario's k), measured the way vLLM and NeMo-RL measure it (tokens / rounds,
  i.e. 1 + accepted / drafts over all rounds), equals the base model's. Each token at position t of
  sequence j costs 1/AL_j(t) rounds, so the aggregate is ``1 / E[1/AL]`` over tokens (sequences
  drawn from the Beta, positions weighted by how many responses reach them; ``reference_lengths``
  gives the response lengths, e.g. a step's sample). The measured AL of a workload stays the
  workload's AL; variation redistributes it. With ``preserve_mean=False`` mu is the base c_0 and the
  decay lowers the overall AL.

Seeding: a sequence's x_j comes from a generator derived from the replica's seeded generator (its
SeedSequence, plus ``seed``), so it is the same for every k and every call, different across
replicas and steps, and reproducible. Rounds are drawn with one uniform per round from the
replica's generator, as in the base policy.

Position within a response: the engine passes ``tokens_before`` = tokens the sequence generated
in the stream being drawn. With a fixed k that is the sequence's position (up to the few rounds
made during prefill iterations); with a batch-adaptive k each k has its own stream, so the
position seen is the tokens generated at that k (an approximation: the decay then lags). Within a
call, the position of each round is found by a fixed-point pass (draw, cumulate, re-draw with the
same uniforms; three passes), exact up to the slowness of the decay.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigurationError
from .policy import SpecPolicy

_SOLVE_CACHE: dict = {}
_GRID = 801
_POS_BINS = 48


def _beta_grid(mu: float, spread: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for E[f(x)] with x ~ Beta(mean mu, variance spread*mu*(1-mu)).

    Each half of (0, 1) is mapped so that the density's end singularity disappears: on (0, 1/2)
    x = v**(1/a) / 2 makes x**(a-1) dx proportional to dv, and likewise near 1 with b; the
    integrand is then smooth in v and a midpoint rule is accurate for any a, b > 0."""
    if spread <= 0:
        return np.array([mu]), np.array([1.0])
    kappa = 1.0 / spread - 1.0
    a, b = max(mu * kappa, 1e-6), max((1 - mu) * kappa, 1e-6)
    v = (np.arange(_GRID) + 0.5) / _GRID
    x_lo = 0.5 * v ** (1.0 / a)
    w_lo = 0.5 ** a / a * np.exp((b - 1) * np.log1p(-x_lo))
    x_hi = 1.0 - 0.5 * v ** (1.0 / b)
    w_hi = 0.5 ** b / b * np.exp((a - 1) * np.log(x_hi))
    x = np.concatenate([x_lo, x_hi])
    w = np.concatenate([w_lo, w_hi])
    return x, w / w.sum()


def _position_hist(lengths: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Bin centres of response positions and the share of generated tokens in each bin."""
    if lengths is None or len(lengths) == 0:
        return np.array([0.0]), np.array([1.0])
    n = np.asarray(lengths, dtype=float)
    edges = np.linspace(0.0, float(n.max()), _POS_BINS + 1)
    lo, hi = edges[:-1], edges[1:]
    tok = np.clip(n[:, None] - lo[None, :], 0.0, (hi - lo)[None, :]).sum(axis=0)
    return 0.5 * (lo + hi), tok / tok.sum()


def _al_of_rates(rates: np.ndarray) -> np.ndarray:
    """AL for conditional rates along the last axis."""
    return 1.0 + np.cumprod(np.clip(rates, 0.0, 1.0), axis=-1).sum(axis=-1)


@dataclass
class VariableAcceptancePolicy(SpecPolicy):
    acceptance_spread: float = 0.0
    response_decay: float = 0.0
    reference_k: int | None = None
    reference_lengths: np.ndarray | None = None
    preserve_mean: bool = True
    seed: int = 0

    def __post_init__(self):
        if not (0.0 <= self.acceptance_spread < 1.0):
            raise ConfigurationError(f"acceptance_spread = {self.acceptance_spread}; allowed: 0 <= s < 1 "
                                     "(Beta variance as a fraction of its largest, mu*(1-mu))")
        if not (0.0 <= self.response_decay < 1.0):
            raise ConfigurationError(f"acceptance_response_decay = {self.response_decay}; allowed: 0 <= d < 1 "
                                     "(fraction of the per-token acceptance lost per 1000 response tokens)")
        base = self.acceptance
        self._c0 = float(base.conditional_rates[0]) if base.k else 0.0
        self._theta: dict[int, tuple] = {}
        self.mu = self._c0
        kref = self.reference_k if self.reference_k is not None else base.k
        if kref and self._c0 > 0 and self.preserve_mean and (self.acceptance_spread > 0 or self.response_decay > 0):
            self.mu = self._solve_mu(kref)

    # ------------------------------------------------------------------ calibration
    def _shape(self, k: int) -> np.ndarray:
        if self._c0 <= 0:
            return np.zeros(k)
        return np.asarray(self.at(k).conditional_rates, dtype=float) / self._c0

    def _decay(self, pos) -> np.ndarray:
        return (1.0 - self.response_decay) ** (np.asarray(pos, dtype=float) / 1000.0)

    def aggregate_acceptance_length(self, k: int, mu: float | None = None) -> float:
        """Tokens / rounds over the population (Beta sequences x token positions) at k."""
        if k == 0:
            return 1.0
        mu = self.mu if mu is None else mu
        x, w = _beta_grid(mu, self.acceptance_spread)
        pos, pw = _position_hist(self.reference_lengths if self.response_decay > 0 else None)
        f = self._decay(pos)
        rates = x[:, None, None] * f[None, :, None] * self._shape(k)[None, None, :]
        inv = 1.0 / _al_of_rates(rates)  # [grid, pos]
        return float(1.0 / (w @ inv @ pw))

    def _solve_mu(self, k: int) -> float:
        key = (tuple(self.acceptance.conditional_rates), self.acceptance_spread, self.response_decay, k,
               None if self.reference_lengths is None or self.response_decay == 0 else
               np.asarray(self.reference_lengths, dtype=float).tobytes())
        hit = _SOLVE_CACHE.get(key)
        if hit is not None:
            return hit
        target = self.at(k).acceptance_length
        hi_al = self.aggregate_acceptance_length(k, 1.0 - 1e-9)
        if hi_al < target - 1e-6:
            raise ConfigurationError(
                f"acceptance variation (spread {self.acceptance_spread}, decay {self.response_decay}) cannot keep the mean "
                f"acceptance length {target:.3f} at k = {k}: at most {hi_al:.3f} is reachable; lower the spread or decay")
        lo, hi = 1e-9, 1.0 - 1e-9
        for _ in range(50):
            mid = 0.5 * (lo + hi)
            if self.aggregate_acceptance_length(k, mid) < target:
                lo = mid
            else:
                hi = mid
        mu = 0.5 * (lo + hi)
        if len(_SOLVE_CACHE) > 256:
            _SOLVE_CACHE.clear()
        _SOLVE_CACHE[key] = mu
        return mu

    # ------------------------------------------------------------------ per-sequence rates
    def _theta_for(self, rng: np.random.Generator, seq_index: np.ndarray) -> np.ndarray:
        n_needed = int(seq_index.max()) + 1 if seq_index.size else 0
        ent = self._theta.get(id(rng))
        if ent is None or ent[1].size < n_needed:
            if ent is None:
                ss = getattr(rng.bit_generator, "seed_seq", None)
                if isinstance(ss, np.random.SeedSequence):
                    child = np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + (int(self.seed), 0x5EC))
                else:  # a generator without a seed sequence: derive one from its stream (deterministic too)
                    child = np.random.SeedSequence([int(rng.integers(2**63)), int(self.seed), 0x5EC])
            else:
                child = ent[2]
            size = max(n_needed, 64)
            if self.acceptance_spread > 0:
                kappa = 1.0 / self.acceptance_spread - 1.0
                a, b = max(self.mu * kappa, 1e-6), max((1 - self.mu) * kappa, 1e-6)
                theta = np.random.default_rng(child).beta(a, b, size)  # a prefix of a longer draw: stable by index
            else:
                theta = np.full(size, self.mu)
            ent = (rng, theta, child)  # keep rng referenced: its id stays unique while cached
            self._theta[id(rng)] = ent
        return ent[1][seq_index]

    def sequence_rates(self, rng: np.random.Generator, seq_index) -> np.ndarray:
        """Per-token acceptance rate (draft position 0, response start) of each sequence of this replica."""
        return self._theta_for(rng, np.asarray(seq_index, dtype=np.int64))

    # ------------------------------------------------------------------ SpecPolicy hooks
    def expected_advance(self, k: int) -> float:
        """A low estimate of tokens per round (sizes the pre-drawn streams: too low costs memory, too high
        costs extensions)."""
        if k == 0:
            return 1.0
        x, w = _beta_grid(self.mu, self.acceptance_spread)
        q = float(x[np.searchsorted(np.cumsum(w), 0.1)]) if x.size > 1 else float(x[0])
        t90 = float(np.quantile(self.reference_lengths, 0.9)) if (self.reference_lengths is not None
                                                                    and len(self.reference_lengths)) else 0.0
        f = float(self._decay(0.5 * t90)) if self.response_decay > 0 else 1.0
        return float(max(1.0, _al_of_rates(q * f * self._shape(k))))

    def sample_rounds(self, rng: np.random.Generator, k: int, rounds: np.ndarray, seq_index: np.ndarray,
                      tokens_before: np.ndarray) -> np.ndarray:
        rounds = np.asarray(rounds, dtype=np.int64)
        n = int(rounds.sum())
        if k == 0 or self._c0 <= 0:
            return np.ones(n, dtype=np.int64) if k == 0 else self.at(k).sample_advance(rng, n).astype(np.int64)
        seq_index = np.asarray(seq_index, dtype=np.int64)
        theta = self._theta_for(rng, seq_index)
        u = rng.random(n)
        owner = np.repeat(np.arange(rounds.size), rounds)
        shape = self._shape(k)
        base = theta[owner][:, None] * shape[None, :]  # [n, k] conditional rates before the decay
        if self.response_decay <= 0:
            return 1 + (u[:, None] < np.cumprod(np.clip(base, 0.0, 1.0), axis=1)).sum(axis=1)
        start = np.concatenate([[0], np.cumsum(rounds)[:-1]])
        before = np.repeat(np.asarray(tokens_before, dtype=float), rounds)
        adv = 1 + (u[:, None] < np.cumprod(np.clip(base, 0.0, 1.0), axis=1)).sum(axis=1)
        for _ in range(3):
            g = np.concatenate([[0], np.cumsum(adv)])  # exclusive cumulative advances
            pos = before + g[:-1] - np.repeat(g[start], rounds)  # tokens of the sequence before each round
            rates = np.clip(base * self._decay(pos)[:, None], 0.0, 1.0)
            adv = 1 + (u[:, None] < np.cumprod(rates, axis=1)).sum(axis=1)
        return adv


__all__ = ["VariableAcceptancePolicy"]
