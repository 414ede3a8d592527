"""The seed runner: one scenario (or one setup) run over several seeds, and the spread of what it gives.

A seed fixes every random draw of a projection (prompt and response lengths, acceptance of each speculative
round). One seed gives one sample of the step; everything that runs "N seeds and averages" goes through
``seed_list`` (which seeds) and ``run_seeds`` (run them, in order):

* ``project_seeds``: ``rlsim project --seeds N`` -- the scenario projected with seeds ``seed .. seed+N-1``,
  each headline metric summarised by its mean, min, max and standard deviation;
* the sweep (``studies/sweep.py``): every grid point once per seed (seeds 0..N-1 or a list), then mean and CI;
* ``step_means``: the synchronous steps ``0..N-1`` of one setup (each step index draws its own lengths and
  acceptance under the scenario's seed), phase by phase averaged -- the validation against the study's Table 1
  (``validation/paper.py``) and ``optimize-k --samples``.

The two ``seed_list`` functions that existed before (``--seeds N`` counting up from ``--seed``; a sweep's count
from 0 or explicit list) are one function here: a count ``N`` gives ``first .. first+N-1`` (``first`` = ``--seed``
for ``project``, 0 for a sweep) and a list is taken as given. Both old behaviours are kept, so no committed
number changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from ..errors import ConfigurationError
from ..inputs import MAX_SEEDS, SEEDS_WHY, as_int, as_values
from ..pipeline import ProjectionResult
from ..scenario import Scenario

# metric name -> how to read it from a ProjectionResult
METRICS = {
    "ar_step_s": lambda r: r.baseline.step_s,
    "spec_step_s": lambda r: r.speculative.step_s,
    "ar_generation_s": lambda r: r.baseline.phases_s["generation"],
    "spec_generation_s": lambda r: r.speculative.phases_s["generation"],
    "speedup_step": lambda r: r.speedup["step"],
    "speedup_generation": lambda r: r.speedup["generation"],
    "acceptance_length_realized": lambda r: r.acceptance_length_realized,
}


def seed_list(seeds, first: int = 0, flag: str = "seeds") -> list[int]:
    """``seeds``: a count N (seeds ``first .. first+N-1``) or a list of distinct seeds >= 0, at most MAX_SEEDS of
    them. ``flag`` names the setting in messages (``--seeds`` for ``rlsim project``)."""
    allowed = f"a count 1..{MAX_SEEDS} or a list of up to {MAX_SEEDS} distinct integers >= 0"
    if flag == "--seeds":  # rlsim project --seeds N: a count, from --seed upward
        allowed = f"1..{MAX_SEEDS} (number of seeds, from --seed upward)"
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, (bool, np.bool_)):
        if not 1 <= seeds <= MAX_SEEDS:
            why = f" ({SEEDS_WHY})" if seeds > 0 and flag != "--seeds" else ""
            raise ConfigurationError(f"{flag} = {seeds!r}; allowed: {allowed}{why}")
        return [int(first) + i for i in range(int(seeds))]
    if flag == "--seeds" or (not isinstance(seeds, (list, tuple, range)) and not hasattr(seeds, "tolist")):
        raise ConfigurationError(f"{flag} = {seeds!r} (a {type(seeds).__name__}); allowed: {allowed}")
    if len(seeds) > MAX_SEEDS:
        raise ConfigurationError(f"{flag}: {len(seeds):,} seeds; allowed: {allowed} ({SEEDS_WHY})")
    vals = [as_int(flag, s, allowed) for s in as_values(seeds, flag)]
    if any(v < 0 for v in vals):
        raise ConfigurationError(f"{flag} {vals}: a negative seed; allowed: {allowed}")
    if len(set(vals)) != len(vals):
        raise ConfigurationError(f"{flag} {vals} repeat a seed")
    return vals


def run_seeds(fn: Callable[[int], Any], seeds: Iterable[int], done: dict | None = None,
              on_seed: Callable[[int], None] | None = None) -> list:
    """``[fn(s) for s in seeds]``, in order. ``done``: results already computed, by seed (reused, not recomputed);
    ``on_seed(s)``: called after each seed it runs (a progress bar)."""
    out = []
    for s in seeds:
        if done is not None and s in done:
            out.append(done[s])
            continue
        out.append(fn(s))
        if on_seed is not None:
            on_seed(s)
    return out


def step_means(setup, speculative: bool, steps: Iterable[int]) -> tuple[list, dict]:
    """The synchronous steps ``steps`` of ``setup`` (pipeline.run.simulate_steps) and the mean of every phase
    (``step``: the mean step time) over them."""
    from ..pipeline.run import simulate_steps

    rs = run_seeds(lambda s: simulate_steps(setup, speculative, [s])[0], steps)
    mean = {k: float(np.mean([r.phases_s[k] for r in rs])) for k in rs[0].phases_s}
    mean["step"] = float(np.mean([r.step_s for r in rs]))
    return rs, mean


@dataclass
class SeedSpread:
    seeds: list[int]
    results: list[ProjectionResult] = field(repr=False)
    values: dict[str, list[float]]

    def stats(self, metric: str) -> dict[str, float]:
        v = np.asarray(self.values[metric], dtype=float)
        return {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max()),
                "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
                "rel_range": float((v.max() - v.min()) / abs(v.mean())) if v.mean() else 0.0}

    def to_dict(self) -> dict:
        return {"seeds": list(self.seeds), "n_seeds": len(self.seeds),
                "metrics": {m: self.stats(m) | {"values": list(map(float, self.values[m]))} for m in self.values}}


def project_seeds(scenario: Scenario, n_seeds: int, first: ProjectionResult | None = None,
                  on_seed=None) -> SeedSpread:
    """Project ``scenario`` with seeds ``scenario.seed .. scenario.seed + n_seeds - 1``. ``first``: an
    already computed result for ``scenario.seed`` (reused, not recomputed). ``on_seed(seed)``: called after each
    seed it simulates (a progress bar)."""
    from ..pipeline.run import project

    seeds = seed_list(n_seeds, first=scenario.seed, flag="--seeds")
    results = run_seeds(lambda s: project(scenario.model_copy(update={"seed": s})), seeds,
                        done=None if first is None else {scenario.seed: first}, on_seed=on_seed)
    values = {m: [float(f(r)) for r in results] for m, f in METRICS.items()}
    return SeedSpread(seeds, results, values)


__all__ = ["METRICS", "SeedSpread", "project_seeds", "run_seeds", "seed_list", "step_means"]
