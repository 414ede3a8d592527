"""The one entry point of the pipeline: a scenario in, its autoregressive and speculative step out.

``project(scenario)`` builds the setup, picks the synchronous (lag 0) or the asynchronous (lag >= 1)
pipeline and returns the ``ProjectionResult`` (AR and speculative step, notes). Everything above the
pipeline calls it or one of the small functions below it: the CLI, the Python API (``rlsim.api``),
sweeps and the seed runner (``rlsim.studies``), the timeline and the validations.

``ar_step``: an optional stand-in for the synchronous autoregressive step (``setup -> StepResult``). A sweep
passes a memo here (``rlsim.studies.sweep``), so scenarios that differ only in their speculation share one
autoregressive simulation; nothing is patched at run time.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from ..errors import ConfigurationError
from .results import ProjectionResult, StepResult
from .setup import Setup, build_setup
from .sync import simulate_sync_step

ArStep = Callable[[Setup], StepResult]


def sync_ar_step(setup: Setup) -> StepResult:
    """The synchronous autoregressive step of ``setup`` (step 0)."""
    return simulate_sync_step(setup, speculative=False)[0]


def simulate_pair(setup: Setup, spec_setup: Setup | None = None,
                  ar_step: ArStep | None = None) -> tuple[StepResult, StepResult]:
    """(autoregressive, speculative) step of ``setup``: synchronous at lag 0 (the two runs side by side when two
    CPUs are free, pipeline/parallel.py), asynchronous at lag >= 1 (the steady-state step of each mode).
    ``spec_setup``: the setup of the speculative run when it differs (online draft training)."""
    from .parallel import both

    spec_setup = setup if spec_setup is None else spec_setup
    if setup.scenario.lag > 0:
        from .asynchronous import simulate_async_pair

        if spec_setup is setup:
            return simulate_async_pair(setup)
        return simulate_one(setup, False), simulate_one(spec_setup, True)
    ar = ar_step or sync_ar_step
    return both(lambda: ar(setup), lambda: simulate_sync_step(spec_setup, speculative=True)[0],
                setup.timer.extrapolated)


def simulate_one(setup: Setup, speculative: bool) -> StepResult:
    """One mode's step of ``setup``: the synchronous step at lag 0, the asynchronous steady-state step at lag >= 1."""
    if setup.scenario.lag > 0:
        from .asynchronous import async_step_result, simulate_async

        return async_step_result(setup, simulate_async(setup, speculative))
    return simulate_sync_step(setup, speculative)[0]


def simulate_steps(setup: Setup, speculative: bool, steps) -> list[StepResult]:
    """The synchronous steps ``steps`` (step indices: each samples its own lengths and acceptance) of ``setup``."""
    return [simulate_sync_step(setup, speculative, step=int(s))[0] for s in steps]


def simulate_trace(setup: Setup, speculative: bool, trace_replicas: int):
    """The asynchronous pipeline's run of ``setup`` with per-replica traces (lag 0: one batch at a time on separate
    pools): what the timeline draws."""
    from .asynchronous import simulate_async

    return simulate_async(setup, speculative, trace_replicas=trace_replicas)


def project(scenario, ar_step: ArStep | None = None) -> ProjectionResult:
    """Simulate one RL step of ``scenario`` autoregressively and with speculation (same sampled lengths:
    speculative decoding is lossless, so both modes generate exactly the same tokens)."""
    from ..scenario import Scenario

    if not isinstance(scenario, Scenario):
        raise ConfigurationError(f"project() takes a Scenario (from build_scenario(...)), got {type(scenario).__name__}; "
                                 "or call project_scenario(**fields)")
    setup = build_setup(scenario)
    notes = [setup.placement_note, f"kernel costs: {setup.timer.describe()}"]
    fit = setup.training_fit
    if fit is not None and fit.note:
        notes.append(fit.note)
    if setup.tree_note:
        notes.append(setup.tree_note)
    if setup.engine is not None:
        notes.append(f"engine {setup.engine.name}: {setup.engine.description} (docs/engine-profiles.md)")
    if scenario.lag == 0:  # settings of the asynchronous pipeline that a synchronous step does not read: say so
        unused = [n for n, on in (("in_flight_weight_updates", scenario.workload.in_flight_weight_updates),
                                  ("partial_rollout", scenario.options.partial_rollout)) if on]
        if unused:
            notes.append(f"ignored at lag 0 (synchronous steps): {', '.join(unused)} (asynchronous RL only; pass --lag >= 1)")
    spec_setup = setup
    if scenario.options.online_draft_training and scenario.k > 0 and setup.drafter.network is not None:
        spec_setup = dataclasses.replace(setup, train_draft=True)  # the draft trains with the policy (spec column)
        notes.append("online draft training (policy.draft.enabled): the speculative column's training phase includes "
                     "the draft's forward + backward over every trained token")
    base, spec = simulate_pair(setup, spec_setup, ar_step)
    if setup.timer.extrapolated:
        notes.append("extrapolated beyond the measured calibration grid: " + ", ".join(sorted(setup.timer.extrapolated)))
    return ProjectionResult(base, spec, setup.acceptance.acceptance_length, spec.generation.realized_acceptance_length,
                            scenario.to_dict() | {"gen_gpus_resolved": setup.gen_gpus, "train_gpus_resolved": setup.train_gpus,
                                                  "n_replicas": setup.n_replicas, "drafter_network": setup.drafter.name}
                            | ({"tree": setup.tree.to_dict()} if setup.tree is not None else {}),
                            setup.timer.describe(), notes, memory=fit.to_dict() if fit is not None else None)


__all__ = ["ArStep", "project", "simulate_one", "simulate_pair", "simulate_steps", "simulate_trace", "sync_ar_step"]
