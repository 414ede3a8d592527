"""Seed spread: the same scenario projected with several seeds, so that sampling noise is reported
next to the numbers instead of hidden behind one draw.

A seed fixes every random draw of a projection (prompt and response lengths, acceptance of each
speculative round). One seed gives one sample of the step; ``project_seeds`` runs seeds
``seed, seed+1, ...`` and summarises each headline metric by its mean, min, max and standard
deviation. ``rlsim project --seeds N`` prints it under the usual table (and adds it to ``--json``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigurationError
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

MAX_SEEDS = 1000


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


def seed_list(first: int, n: int) -> list[int]:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not (1 <= n <= MAX_SEEDS):
        raise ConfigurationError(f"--seeds = {n!r}; allowed: 1..{MAX_SEEDS} (number of seeds, from --seed upward)")
    return [int(first) + i for i in range(int(n))]


def project_seeds(scenario: Scenario, n_seeds: int, first: ProjectionResult | None = None,
                  on_seed=None) -> SeedSpread:
    """Project ``scenario`` with seeds ``scenario.seed .. scenario.seed + n_seeds - 1``. ``first``: an
    already computed result for ``scenario.seed`` (reused, not recomputed). ``on_seed(seed)``: called after each
    seed it simulates (a progress bar)."""
    from .api import project

    seeds = seed_list(scenario.seed, n_seeds)
    results = []
    for s in seeds:
        if s == scenario.seed and first is not None:
            results.append(first)
        else:
            results.append(project(scenario.model_copy(update={"seed": s})))
            if on_seed is not None:
                on_seed(s)
    values = {m: [float(f(r)) for r in results] for m, f in METRICS.items()}
    return SeedSpread(seeds, results, values)


def spread_table(sp: SeedSpread, console=None) -> None:
    from rich.console import Console
    from .tables import make_console
    from rich.table import Table

    console = console or make_console()
    t = Table(title=f"seed spread over {len(sp.seeds)} seeds ({sp.seeds[0]}..{sp.seeds[-1]})", title_justify="left")
    for c in ("metric", "mean", "min", "max", "range/mean"):
        t.add_column(c, justify="left" if c == "metric" else "right")
    for m in METRICS:
        st = sp.stats(m)
        fmt = "{:.3f}" if m.startswith(("speedup", "acceptance")) else "{:.2f}"
        t.add_row(m, fmt.format(st["mean"]), fmt.format(st["min"]), fmt.format(st["max"]), f"{st['rel_range']:.1%}")
    console.print(t)


__all__ = ["METRICS", "SeedSpread", "project_seeds", "seed_list", "spread_table"]
