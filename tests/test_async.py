"""Asynchronous RL pipeline invariants."""

import numpy as np
import pytest

from rlsim.pipeline import build_setup, simulate_sync_step
from rlsim.pipeline.asynchronous import async_step_result, simulate_async
from rlsim.api import project_scenario
from rlsim.scenario import build_scenario


def _small(**kw):
    base = dict(workload="rl-think-8b", num_prompts_per_step=16, num_generations_per_prompt=8, gen_gpus=8,
                train_gpus=8, response_median_tokens=600, max_new_tokens=4096, calibration="roofline")
    base.update(kw)
    return build_scenario(**base)


def test_lag0_reproduces_the_synchronous_step():
    sc = _small(lag=0)
    setup = build_setup(sc)
    run = simulate_async(setup, speculative=False, n_steps=3, warmup=0)
    for step in range(3):
        sync, _ = simulate_sync_step(setup, speculative=False, step=step)
        # AR is deterministic given the lengths: same generation time, same step time
        assert run.batch_done_s[step] - run.release_s[step] == pytest.approx(sync.phases_s["generation"], rel=1e-9)
        step_async = run.weights_loaded_s[step + 1] - run.weights_loaded_s[step]
        assert step_async == pytest.approx(sync.step_s, rel=1e-9)


@pytest.mark.parametrize("speculative", [False, True])
def test_larger_lag_never_slower(speculative):
    """Lag 1 overlaps generation with training: faster than lag 0 by more than two standard errors. Lag 2 adds
    nothing when every batch is admitted at its release (one batch in flight either way) but different batches are
    measured: never slower beyond two standard errors of the difference of the means."""
    per_step = []
    for lag in (0, 1, 2):
        setup = build_setup(_small(lag=lag))
        r = async_step_result(setup, simulate_async(setup, speculative, n_steps=lag + 8, warmup=lag))
        per_step.append(np.asarray(r.extra["async"]["per_step_s"]))
    m = [p.mean() for p in per_step]
    se = [np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size) for a, b in zip(per_step, per_step[1:])]
    assert m[1] < m[0] - 2 * se[0]
    assert m[2] <= m[1] + 2 * se[1]


@pytest.mark.parametrize("lag,in_flight", [(1, False), (2, False), (2, True)])
def test_no_trajectory_older_than_lag_and_all_accounted(lag, in_flight):
    sc = _small(lag=lag, in_flight_weight_updates=in_flight)
    setup = build_setup(sc)
    run = simulate_async(setup, True, n_steps=6, warmup=2)
    for ages in run.staleness:
        assert ages.max() <= lag and ages.min() >= 0
    assert run.trained + run.dropped == run.generated
    # trainer never starts before its batch is complete, and steps are ordered
    for t in range(6):
        assert run.train_start_s[t] >= run.batch_done_s[t] - 1e-9
        assert run.weights_loaded_s[t + 1] > run.weights_loaded_s[t]


def test_partial_rollouts_cut_the_tail_and_count_drops():
    kw = dict(lag=1, options={"partial_rollout": True})
    setup = build_setup(_small(**kw))
    run = simulate_async(setup, False, n_steps=5, warmup=1)
    assert run.trained + run.dropped <= run.generated
    for ages in run.staleness:
        assert ages.size == 16 * 8 and ages.max() <= 1
    full = simulate_async(build_setup(_small(lag=1)), False, n_steps=5, warmup=1)
    step_partial = np.mean(np.diff(run.weights_loaded_s)[1:])
    step_full = np.mean(np.diff(full.weights_loaded_s)[1:])
    assert step_partial <= step_full * 1.01


def test_headline_json_has_exposed_generation():
    r = project_scenario(workload="rl-think-8b", lag=1, gen_gpus=48, train_gpus=16, num_prompts_per_step=16,
                         calibration="roofline")
    d = r.to_dict()
    for mode in ("baseline", "speculative"):
        assert "exposed_generation" in d[mode]["phases_s"]
        assert d[mode]["async"]["max_trajectory_age_steps"] == 1
    assert d["speedup"]["step"] > 1.0


def test_split_is_chosen_and_explained_and_bad_split_fails():
    from rlsim.errors import ConfigurationError

    r = project_scenario(workload="rl-think-8b", lag=1, gpus=64, num_prompts_per_step=8, calibration="roofline")
    assert r.scenario["gen_gpus_resolved"] + r.scenario["train_gpus_resolved"] == 64
    assert any("split chosen" in n for n in r.notes)
    with pytest.raises(ConfigurationError, match="training model-parallel groups of 2"):
        project_scenario(workload="rl-think-8b", lag=1, gen_gpus=48, train_gpus=15)


def test_every_measured_step_has_a_batch_in_flight():
    """A run goes on after the simulated steps: every measured step releases the batch L steps ahead, so the last
    measured steps drain like the others (they once had nothing released and read ~1/8 of a drain-bound step)."""
    setup = build_setup(_small(lag=2, num_prompts_per_step=32, gen_gpus=8, train_gpus=8))
    run = simulate_async(setup, False, n_steps=8, warmup=2)
    per_step = np.diff(run.weights_loaded_s)[2:]
    drains = [run.refit_start_s[t] - run.train_end_s[t] for t in range(2, 8)]
    assert min(drains) > 0.5 * max(drains)  # no measured step without a drain
    assert per_step.min() > 0.6 * per_step.max()
    assert len(run.release_s) == 8 + 2  # batches 0..9: the last two are trained after the simulated run


def test_prefilled_start_where_every_sync_drains_the_pool():
    """Draining syncs that empty the pool: the run starts in the steady state (no warm-up), every trained
    trajectory has age L, the trainer never waits, and a step's generation phase is the span of the batch released
    at its start (the batch its sync drains)."""
    setup = build_setup(_small(lag=2))
    run = simulate_async(setup, True)
    assert run.start == "prefilled" and run.warmup == 0
    assert all((ages == 2).all() for ages in run.staleness)
    W, rel, ends = run.weights_loaded_s, run.release_s, run.batch_end_s
    n = len(run.batch_done_s)
    assert all(rel[t + 2] == W[t] for t in range(n))  # batch t + L released at W(t)
    assert np.isnan(ends[:2]).all()  # batches 0, 1: generated before the window
    assert all(W[t] < ends[t + 2] <= run.refit_start_s[t] for t in range(n))  # drained before the sync
    assert run.phases["generation"] == pytest.approx(np.mean([ends[t + 2] - W[t] for t in range(n)]), rel=1e-12)
    assert run.phases["exposed_generation"] == 0.0


def test_kv_bound_batches_fill_the_pipeline_from_empty():
    """A batch beyond the KV cache leaves sequences in the pool at a sync: the default start falls back to filling
    the pipeline from empty (lag + 2 warm-up steps), and asking for the prefilled start says why it cannot."""
    sc = build_scenario(workload="rl-think-8b", num_prompts_per_step=64, num_generations_per_prompt=8, gen_gpus=1,
                        train_gpus=8, response_median_tokens=3000, max_new_tokens=4096, calibration="roofline", lag=1,
                        options={"async_measured_steps": 1})
    setup = build_setup(sc)
    run = simulate_async(setup, False)
    assert run.start == "empty" and run.warmup == 3
    with pytest.raises(ValueError, match="left sequences in the generation pool"):
        simulate_async(setup, False, start="prefilled")


def test_both_starts_reach_the_same_steady_state():
    """The prefilled start against filling from empty (benchmarks/async_start.py at scale): the mean step of 3 seeds
    x 12 measured steps within two standard errors of the difference, the generation phase within 3%."""
    for speculative in (False, True):
        steps, gen = {"prefilled": [], "empty": []}, {"prefilled": [], "empty": []}
        for seed in (1, 2, 3):
            setup = build_setup(_small(lag=1, seed=seed, options={"async_measured_steps": 12}))
            for start in steps:
                r = async_step_result(setup, simulate_async(setup, speculative, start=start))
                steps[start] += r.extra["async"]["per_step_s"]
                gen[start].append(r.phases_s["generation"])
        p, e = np.asarray(steps["prefilled"]), np.asarray(steps["empty"])
        se = np.sqrt(p.var(ddof=1) / p.size + e.var(ddof=1) / e.size)
        assert abs(p.mean() - e.mean()) <= 2 * se
        assert np.mean(gen["prefilled"]) == pytest.approx(np.mean(gen["empty"]), rel=0.03)
