"""Draft drift over RL steps: an offline draft vs a draft adapted online, over a run of N steps.

An offline-trained draft (EAGLE-3 trained before RL on the policy's responses, then frozen) was fitted
to the policy as it was; as RL moves the policy, the draft's acceptance decays. Online adaptation
(NeMo-RL ``policy.draft.{enabled, loss_weight}``: the draft trained during RL on the policy's own
hidden states) holds it, at a cost: the draft's forward + backward on every trained token, charged
to the training phase of every step.

Model, in units of the draft's acceptance-length gain ``AL - 1`` at the scenario's k relative to a
fresh in-domain offline draft (the workload's AL), so one set of fractions applies to any workload:

- offline: ``f_off(s) = floor + (init - floor) * exp(-s / drift_steps)``;
- online:  ``f_on(s) = online + (init - online) * exp(-s / adapt_steps)``;
- a step's acceptance model is the workload's per-position (conditional) rates scaled by one factor
  so that its AL at k is ``1 + f(s) * (AL - 1)`` (the draft's position profile is kept).

Defaults and where they come from (shared/reference/paper-8b.md; EAGLE-3 at k = 3):

- ``floor`` = 0.80: what a draft that no longer matches the policy's distribution keeps. The study's
  draft trained on generic chat data (UltraChat/Magpie) reached AL 2.88 on RL-Zero and 2.40 on
  RL-Think vs 3.32 and 2.77 for the in-domain (DAPO-initialised) draft: (2.88-1)/(3.32-1) = 0.81,
  (2.40-1)/(2.77-1) = 0.79. Assumption: a drifted draft is as far off as an off-domain one.
- ``online`` = 0.985: the level online adaptation holds. DAPO-init online vs offline: 3.29 vs 3.32
  (0.987) and 2.74 vs 2.77 (0.983).
- ``adapt_steps`` = 85: how fast online adaptation pulls a draft to that level. Fitted to the
  UltraChat-init drafts adapted online (run means 3.04 and 2.55, from 2.88 and 2.40): the run mean
  of ``f_on`` matches for adapt_steps = 0.92 L (RL-Zero) and 0.80 L (RL-Think), L the study's run
  length in steps, not published: L = 100 assumed (``study_calibration`` redoes this for any L).
- ``drift_steps`` = 650: the drift rate is not published. The study's offline DAPO-init draft kept
  a run-mean AL no lower than the online one (3.32 vs 3.29), so over its run an offline draft lost
  at most what online adaptation keeps (1 - online = 1.5% of AL - 1). 650 steps is the fastest drift
  consistent with that over L = 100 steps (an upper bound on the drift speed, so pessimistic for
  the offline draft). Runs much longer than the study's, or a policy that moves faster (higher
  learning rate, a new data mix), are what ``drift_steps`` is for: sweep it.

Training cost of online adaptation (``online_training_time_s``, in ``draft_training.py``): FLOPs = 3 (forward + backward) x
``unroll`` x (2 x draft parameters x tokens + causal attention of the draft's layers over each
sequence), over every trained token (prompt + response), at the training phase's MFU on the training
GPUs, plus Adam on the draft's parameters. ``unroll`` = 1 (one draft step per token; EAGLE-3's
offline recipe unrolls up to 7 "training-time test" steps: pass ``unroll`` to charge that).
The policy's hidden states the draft learns from are by-products of the training forward pass.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigurationError
from ..speculation import AcceptanceModel
from .draft_training import online_training_time_s
from .setup import Setup
from .sync import simulate_sync_step


@dataclass(frozen=True)
class DriftModel:
    drift_steps: float = 650.0  # offline: e-folding steps of the decay toward the floor (inf = no drift)
    floor: float = 0.80  # offline: fraction of (AL - 1) a fully drifted draft keeps
    online: float = 0.985  # online: fraction of (AL - 1) online adaptation holds
    adapt_steps: float = 85.0  # online: e-folding steps of adaptation toward ``online``
    init: float = 1.0  # the draft at step 0 (1 = in-domain, as the workload's AL; ~0.8 = off-domain init)
    unroll: int = 1  # draft steps trained per token online

    def __post_init__(self):
        for name in ("floor", "online", "init"):
            v = getattr(self, name)
            if not (0.0 <= v <= 1.5):
                raise ConfigurationError(f"drift {name} = {v}; allowed: 0..1.5 (a fraction of the draft's AL - 1)")
        if self.drift_steps <= 0 or self.adapt_steps <= 0:
            raise ConfigurationError(f"drift_steps = {self.drift_steps}, adapt_steps = {self.adapt_steps}; allowed: > 0 "
                                     "(use inf for no drift)")
        if self.unroll < 1:
            raise ConfigurationError(f"unroll = {self.unroll}; allowed: >= 1")

    def offline_fraction(self, step: int) -> float:
        return self.floor + (self.init - self.floor) * math.exp(-step / self.drift_steps)

    def online_fraction(self, step: int) -> float:
        return self.online + (self.init - self.online) * math.exp(-step / self.adapt_steps)


def _run_mean(start: float, level: float, tau: float, steps: float) -> float:
    """Mean over [0, steps] of level + (start - level) * exp(-s / tau)."""
    x = tau / steps
    return level + (start - level) * x * (1 - math.exp(-1 / x))


def _solve_tau(start: float, level: float, mean: float, steps: float) -> float:
    """tau such that the run mean over ``steps`` equals ``mean``."""
    g = (mean - level) / (start - level)  # = x (1 - exp(-1/x)), increasing in x from 0 to 1
    if not 0 < g < 1:
        raise ConfigurationError(f"no time constant gives a run mean of {mean:.4f} between {start:.4f} and {level:.4f}")
    lo, hi = 1e-6, 1e6
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if mid * (1 - math.exp(-1 / mid)) < g:
            lo = mid
        else:
            hi = mid
    return math.sqrt(lo * hi) * steps


def study_calibration(run_steps: float = 100.0) -> dict:
    """Redo the default fractions and time constants from the study's ALs for a study run of ``run_steps``
    steps (not published). Returns per-workload fits and the rounded defaults' inputs."""
    data = {"rl-zero": dict(off=3.32, on=3.29, uc_off=2.88, uc_on=3.04),
            "rl-think": dict(off=2.77, on=2.74, uc_off=2.40, uc_on=2.55)}
    out = {}
    for name, d in data.items():
        g = d["off"] - 1
        floor, online = (d["uc_off"] - 1) / g, (d["on"] - 1) / g
        uc_mean = (d["uc_on"] - 1) / g
        adapt = _solve_tau(floor, online, uc_mean, run_steps)
        # fastest offline drift whose run mean stays at the online level
        drift = _solve_tau(1.0, floor, online, run_steps)
        out[name] = {"floor": floor, "online": online, "adapt_steps": adapt, "drift_steps_min": drift}
    return out


def scaled_acceptance(base: AcceptanceModel, k: int, fraction: float) -> AcceptanceModel:
    """``base`` with every conditional rate scaled by one factor (capped at 1) so that its AL at k is
    ``1 + fraction * (AL_base(k) - 1)``."""
    if base.k == 0 or k == 0:
        return base
    target = 1.0 + fraction * (base.at_k(k).acceptance_length - 1.0)
    rates = np.asarray(base.conditional_rates, dtype=float)

    def al(lam: float) -> float:
        return AcceptanceModel(tuple(np.minimum(rates * lam, 1.0))).at_k(k).acceptance_length

    top = 1.0 / max(rates.max(), 1e-12)
    if al(top) < target:
        return AcceptanceModel(tuple(np.minimum(rates * top, 1.0)))
    lo, hi = 0.0, top
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if al(mid) < target else (lo, mid)
    return AcceptanceModel(tuple(np.minimum(rates * 0.5 * (lo + hi), 1.0)))


@dataclass
class DriftStep:
    step: int
    al_offline: float
    al_online: float
    ar_step_s: float
    offline_step_s: float
    online_step_s: float
    ar_generation_s: float
    offline_generation_s: float
    online_generation_s: float
    online_training_extra_s: float
    al_offline_realized: float = float("nan")
    al_online_realized: float = float("nan")


@dataclass
class DriftRun:
    steps: list[DriftStep]
    drift: DriftModel
    k: int
    workload: str
    notes: list[str] = field(default_factory=list)

    def cumulative(self, what: str) -> np.ndarray:
        return np.cumsum([getattr(s, what) for s in self.steps])

    @property
    def totals(self) -> dict:
        t = {name: float(sum(getattr(s, name) for s in self.steps))
             for name in ("ar_step_s", "offline_step_s", "online_step_s", "ar_generation_s", "offline_generation_s",
                          "online_generation_s", "online_training_extra_s")}
        t["online_vs_offline"] = t["offline_step_s"] / t["online_step_s"] if t["online_step_s"] else float("nan")
        t["offline_vs_ar"] = t["ar_step_s"] / t["offline_step_s"] if t["offline_step_s"] else float("nan")
        t["online_vs_ar"] = t["ar_step_s"] / t["online_step_s"] if t["online_step_s"] else float("nan")
        t["mean_al_offline"] = float(np.mean([s.al_offline for s in self.steps]))
        t["mean_al_online"] = float(np.mean([s.al_online for s in self.steps]))
        return t

    def to_dict(self) -> dict:
        return {"workload": self.workload, "k": self.k, "drift_model": dataclasses.asdict(self.drift),
                "steps": [dataclasses.asdict(s) for s in self.steps], "totals": self.totals,
                "cumulative_s": {"ar": self.cumulative("ar_step_s").tolist(),
                                 "offline": self.cumulative("offline_step_s").tolist(),
                                 "online": self.cumulative("online_step_s").tolist()},
                "notes": list(self.notes)}


def simulate_drift_run(setup: Setup, steps: int, drift: DriftModel | None = None, baseline: bool = True,
                       on_step=None) -> DriftRun:
    """Simulate ``steps`` synchronous RL steps with an offline and an online draft (and the
    autoregressive baseline), each step with its own sampled lengths (``Setup.sample_step_lengths``) and
    the draft's AL at that step. ``baseline=False`` skips the autoregressive steps (NaN in the result).
    ``on_step(step)``: called after each step (a progress bar)."""
    drift = drift or DriftModel()
    sc = setup.scenario
    if steps < 1:
        raise ConfigurationError(f"--steps = {steps}; allowed: >= 1")
    if sc.lag > 0:
        raise ConfigurationError("--steps simulates synchronous steps (the drift run calls the sync step); use --lag 0")
    if sc.k == 0:
        raise ConfigurationError("--steps compares offline and online drafts: speculation must be on (--k >= 1)")
    k = sc.k
    base = setup.acceptance
    out: list[DriftStep] = []
    for s in range(steps):
        f_off, f_on = drift.offline_fraction(s), drift.online_fraction(s)
        acc_off, acc_on = scaled_acceptance(base, k, f_off), scaled_acceptance(base, k, f_on)
        prompts, responses = setup.sample_step_lengths(s)
        ar = simulate_sync_step(setup, speculative=False, step=s)[0] if baseline else None
        off = simulate_sync_step(dataclasses.replace(setup, acceptance=acc_off), speculative=True, step=s)[0]
        on = simulate_sync_step(dataclasses.replace(setup, acceptance=acc_on), speculative=True, step=s)[0]
        extra = online_training_time_s(setup, prompts, responses, drift.unroll)
        nan = float("nan")
        out.append(DriftStep(
            s, acc_off.at_k(k).acceptance_length, acc_on.at_k(k).acceptance_length,
            ar.step_s if ar else nan, off.step_s, float(on.step_s + extra),
            ar.phases_s["generation"] if ar else nan, off.phases_s["generation"], on.phases_s["generation"], float(extra),
            off.generation.realized_acceptance_length, on.generation.realized_acceptance_length))
        if on_step is not None:
            on_step(s)
    notes = [f"offline AL(step) = 1 + (AL-1) * ({drift.floor} + ({drift.init} - {drift.floor}) exp(-step/{drift.drift_steps})); "
             f"online AL(step) = 1 + (AL-1) * ({drift.online} + ({drift.init} - {drift.online}) exp(-step/{drift.adapt_steps}))",
             "online draft training charged to the training phase: 3 x unroll x draft forward FLOPs over all trained tokens"]
    return DriftRun(out, drift, k, sc.workload.name, notes)


__all__ = ["DriftModel", "DriftRun", "DriftStep", "online_training_time_s", "scaled_acceptance", "simulate_drift_run",
           "study_calibration"]
