"""The Python entry points: ``project(scenario)`` and ``project_scenario(**flags)``."""

from __future__ import annotations

from ..errors import ConfigurationError
from ..pipeline import ProjectionResult, build_setup, simulate_sync_step
from ..pipeline.parallel import both
from ..scenario import Scenario, build_scenario


def project(scenario: Scenario) -> ProjectionResult:
    """Simulate one RL step of ``scenario`` autoregressively and with speculation (same sampled lengths:
    speculative decoding is lossless, so both modes generate exactly the same tokens)."""
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
                                  ("partial_rollout", scenario.options.get("partial_rollout"))) if on]
        if unused:
            notes.append(f"ignored at lag 0 (synchronous steps): {', '.join(unused)} (asynchronous RL only; pass --lag >= 1)")
    if scenario.lag > 0:
        try:
            from ..pipeline import asynchronous  # noqa: WPS433
        except ImportError:
            raise ConfigurationError(
                f"--lag {scenario.lag}: asynchronous RL (max_trajectory_age_steps >= 1) is not implemented yet; "
                "use --lag 0 (synchronous)") from None
    spec_setup = setup
    if scenario.options.get("online_draft_training") and scenario.k > 0 and setup.drafter.network is not None:
        import dataclasses

        spec_setup = dataclasses.replace(setup, train_draft=True)  # the draft trains with the policy (spec column)
        notes.append("online draft training (policy.draft.enabled): the speculative column's training phase includes "
                     "the draft's forward + backward over every trained token")
    if scenario.lag > 0 and spec_setup is not setup:
        base = asynchronous.async_step_result(setup, asynchronous.simulate_async(setup, False))
        spec = asynchronous.async_step_result(spec_setup, asynchronous.simulate_async(spec_setup, True))
    elif scenario.lag > 0:
        base, spec = asynchronous.simulate_async_pair(setup)
    else:  # the two runs are independent: side by side when two CPUs are free (pipeline/parallel.py)
        base, spec = both(lambda: simulate_sync_step(setup, speculative=False)[0],
                          lambda: simulate_sync_step(spec_setup, speculative=True)[0], setup.timer.extrapolated)
    if setup.timer.extrapolated:
        notes.append("extrapolated beyond the measured calibration grid: " + ", ".join(sorted(setup.timer.extrapolated)))
    return ProjectionResult(base, spec, setup.acceptance.acceptance_length, spec.generation.realized_acceptance_length,
                            scenario.to_dict() | {"gen_gpus_resolved": setup.gen_gpus, "train_gpus_resolved": setup.train_gpus,
                                                  "n_replicas": setup.n_replicas, "drafter_network": setup.drafter.name}
                            | ({"tree": setup.tree.to_dict()} if setup.tree is not None else {}),
                            setup.timer.describe(), notes, memory=fit.to_dict() if fit is not None else None)


def project_scenario(**kwargs) -> ProjectionResult:
    """``project(build_scenario(**kwargs))``: the same arguments as ``rlsim project``'s flags."""
    return project(build_scenario(**kwargs))


__all__ = ["project", "project_scenario", "build_scenario", "Scenario", "ConfigurationError"]
