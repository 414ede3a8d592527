"""Typed results of a projection: one RL step per decoding mode, and both side by side."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PHASES_SYNC = ("data", "refit", "generation", "logprob", "training")


@dataclass
class GenerationStats:
    iterations_max: int
    iterations_mean: float
    tokens_generated: int
    realized_acceptance_length: float
    preemptions: int
    kv_capacity_tokens_per_replica: int
    n_replicas: int
    sequences_per_replica: float
    replica_end_s_min: float
    replica_end_s_max: float
    time_to_90pct_sequences_s: float
    tail_s: float  # generation time after 90% of sequences finished
    prefill_time_s: float


@dataclass
class StepResult:
    mode: str  # "autoregressive" | "speculative"
    step_s: float
    phases_s: dict[str, float]
    generation: GenerationStats
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {"step_s": self.step_s, "phases_s": dict(self.phases_s), "generation_stats": asdict(self.generation)}
        d.update(self.extra)
        return d


@dataclass
class ProjectionResult:
    baseline: StepResult
    speculative: StepResult
    acceptance_length: float
    acceptance_length_realized: float
    scenario: dict
    calibration: str
    notes: list[str] = field(default_factory=list)
    memory: dict | None = None  # the trainer's memory per GPU and the layout used (pipeline/training_fit.py)

    def bottleneck(self) -> dict:
        """What bounds each mode's step and what would move it (pipeline/bottleneck.py)."""
        from .bottleneck import bottleneck

        return {r.mode: bottleneck(r, self.scenario) for r in (self.baseline, self.speculative)}

    def cost(self, steps: int | None = None, gpu_hour_price: float | None = None) -> dict:
        """GPU-hours (dollars with a price) per step and, given ``steps``, per run (pipeline/bottleneck.py)."""
        from .bottleneck import cost

        return cost(self, steps, gpu_hour_price)

    @property
    def speedup(self) -> dict[str, float]:
        b, s = self.baseline, self.speculative
        out = {"generation": b.phases_s["generation"] / s.phases_s["generation"], "step": b.step_s / s.step_s}
        if "exposed_generation" in b.phases_s and s.phases_s.get("exposed_generation", 0) > 0:
            out["exposed_generation"] = b.phases_s["exposed_generation"] / s.phases_s["exposed_generation"]
        return out

    def to_dict(self) -> dict:
        return {"baseline": self.baseline.to_dict(), "speculative": self.speculative.to_dict(), "speedup": self.speedup,
                "acceptance_length": self.acceptance_length,
                "acceptance_length_realized": self.acceptance_length_realized, "scenario": self.scenario,
                "calibration": self.calibration, "notes": list(self.notes), "memory": self.memory,
                "bottleneck": self.bottleneck(), "cost": self.cost()}

    def to_frame(self):
        """One row per (mode, phase) with seconds; plus step rows. Tidy, for notebooks and sweeps."""
        import pandas as pd

        rows = []
        for r in (self.baseline, self.speculative):
            for ph, s in r.phases_s.items():
                rows.append({"mode": r.mode, "phase": ph, "seconds": s})
            rows.append({"mode": r.mode, "phase": "step", "seconds": r.step_s})
        return pd.DataFrame(rows)

    def summary_row(self) -> dict:
        """A flat dict (one row of a sweep)."""
        row = {f"ar_{k}_s": v for k, v in self.baseline.phases_s.items()}
        row.update({f"spec_{k}_s": v for k, v in self.speculative.phases_s.items()})
        row.update(ar_step_s=self.baseline.step_s, spec_step_s=self.speculative.step_s,
                   speedup_generation=self.speedup["generation"], speedup_step=self.speedup["step"],
                   acceptance_length=self.acceptance_length, acceptance_length_realized=self.acceptance_length_realized)
        return row
