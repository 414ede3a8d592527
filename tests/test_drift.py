"""Draft drift over RL steps: offline vs online-adapted drafts."""

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from rlsim.errors import ConfigurationError
from rlsim.pipeline.drift import (DriftModel, online_training_time_s, scaled_acceptance, simulate_drift_run,
                                  study_calibration)
from rlsim.cli import app
from rlsim.speculation import AcceptanceModel

runner = CliRunner()


def test_fractions():
    d = DriftModel()
    assert d.offline_fraction(0) == 1.0 and d.online_fraction(0) == 1.0
    off = [d.offline_fraction(s) for s in (0, 100, 1000, 10**6)]
    assert all(b < a for a, b in zip(off, off[1:])) and off[-1] == pytest.approx(d.floor)
    uc = DriftModel(init=0.81)
    assert uc.online_fraction(1000) == pytest.approx(d.online, abs=1e-4)
    assert uc.online_fraction(1000) > uc.online_fraction(0)
    assert uc.offline_fraction(50) <= 0.81
    assert DriftModel(drift_steps=math.inf).offline_fraction(500) == 1.0
    with pytest.raises(ConfigurationError):
        DriftModel(drift_steps=0)


def test_defaults_follow_from_the_study():
    cal = study_calibration(100)
    for name in ("rl-zero", "rl-think"):
        c = cal[name]
        assert 0.78 < c["floor"] < 0.82 and 0.98 < c["online"] < 0.99
        assert 70 < c["adapt_steps"] < 95 and 550 < c["drift_steps_min"] < 720
    d = DriftModel()
    mean_adapt = np.mean([c["adapt_steps"] for c in cal.values()])
    mean_drift = np.mean([c["drift_steps_min"] for c in cal.values()])
    assert abs(d.adapt_steps - mean_adapt) < 5 and abs(d.drift_steps - mean_drift) < 25


def test_scaled_acceptance_hits_the_target_and_keeps_the_profile():
    base = AcceptanceModel.from_unconditional_rates([0.88, 0.75, 0.6, 0.45])
    m = scaled_acceptance(base, 3, 0.8)
    assert m.at_k(3).acceptance_length == pytest.approx(1 + 0.8 * (base.at_k(3).acceptance_length - 1), abs=1e-6)
    ratio = np.asarray(m.conditional_rates) / np.asarray(base.conditional_rates)
    assert np.allclose(ratio, ratio[0])


def test_online_training_cost(zero8b_setup):
    st = zero8b_setup
    P, N = st.sample_step_lengths(0)
    t1 = online_training_time_s(st, P, N)
    assert 0 < t1 < 0.2 * st.train_gpus  # a small head: a fraction of a second on 32 GPUs
    assert online_training_time_s(st, P, N, unroll=3) == pytest.approx(3 * t1, rel=0.01)
    assert online_training_time_s(st, P, 2 * N) > t1


def test_drift_run(zero8b_setup):
    run = simulate_drift_run(zero8b_setup, 3, DriftModel(drift_steps=2.0, adapt_steps=1.0, init=0.9))
    assert [s.step for s in run.steps] == [0, 1, 2]
    s0, s2 = run.steps[0], run.steps[2]
    assert s0.al_offline == s0.al_online == pytest.approx(1 + 0.9 * 2.32)
    assert s2.al_offline < s0.al_offline and s2.al_online > s0.al_online
    assert s2.offline_generation_s > s2.online_generation_s  # a worse draft decodes slower
    assert all(s.online_training_extra_s > 0 for s in run.steps)
    cum = run.cumulative("online_step_s")
    assert np.all(np.diff(cum) > 0) and cum[-1] == pytest.approx(run.totals["online_step_s"])
    d = run.to_dict()
    assert len(d["steps"]) == 3 and d["totals"]["offline_vs_ar"] > 1


def test_drift_errors(zero8b_setup):
    with pytest.raises(ConfigurationError, match=">= 1"):
        simulate_drift_run(zero8b_setup, 0)


def test_cli_steps():
    res = runner.invoke(app, ["project", "--workload", "rl-zero-8b", "--steps", "2", "--drift-steps", "50", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert len(d["steps"]) == 2 and len(d["cumulative_s"]["online"]) == 2 and d["drift_model"]["drift_steps"] == 50
    res = runner.invoke(app, ["project", "--workload", "rl-zero-8b", "--steps", "2"])
    assert res.exit_code == 0 and "online vs offline" in res.output
    res = runner.invoke(app, ["project", "--workload", "rl-zero-8b", "--steps", "2", "--k", "0"])
    assert res.exit_code == 2 and "speculation must be on" in res.output
