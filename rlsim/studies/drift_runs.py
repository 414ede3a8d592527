"""Runs of N synchronous steps with a drifting draft (``rlsim project --steps N``): the offline vs online draft
run of ``pipeline/drift.py`` and what it costs in GPU-hours (and money at a GPU-hour price)."""

from __future__ import annotations


def simulate_drift_steps(sc, steps: int, drift_steps: float = 650.0, drift_floor: float = 0.8, adapt_steps: float = 85.0,
                         draft_init: float = 1.0, gpu_hour_price: float | None = None, on_step=None):
    """Offline vs online draft over ``steps`` synchronous steps of ``sc``: (the run, its cost)."""
    from ..pipeline import build_setup
    from ..pipeline.drift import DriftModel, simulate_drift_run

    drift = DriftModel(drift_steps=float("inf") if drift_steps == 0 else drift_steps, floor=drift_floor,
                       adapt_steps=adapt_steps, init=draft_init)
    setup = build_setup(sc)
    run = simulate_drift_run(setup, steps, drift, on_step=on_step)
    cost = drift_run_cost(run, setup.gen_gpus if sc.workload.colocated else setup.gen_gpus + setup.train_gpus,
                          gpu_hour_price)
    return run, cost


def drift_run_cost(run, gpus: int, gpu_hour_price: float | None = None) -> dict:
    """GPU-hours (and money at ``gpu_hour_price``) of a simulated run, per step (mean) and per run, per draft."""
    tot = run.totals
    n = len(run.steps)
    out = {"gpus": gpus, "steps": n, "gpu_hour_price": gpu_hour_price, "modes": {}}
    for mode, key in (("autoregressive", "ar_step_s"), ("offline_draft", "offline_step_s"),
                      ("online_draft", "online_step_s")):
        secs = tot[key]
        d = {"run_s": secs, "gpu_hours_per_run": gpus * secs / 3600.0, "gpu_hours_per_step": gpus * secs / n / 3600.0}
        if gpu_hour_price is not None:
            d["dollars_per_run"] = d["gpu_hours_per_run"] * gpu_hour_price
            d["dollars_per_step"] = d["gpu_hours_per_step"] * gpu_hour_price
        out["modes"][mode] = d
    return out


__all__ = ["drift_run_cost", "simulate_drift_steps"]
