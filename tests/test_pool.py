"""The pooled synchronous rollout (engine/pool.py) gives ReplicaSim's results bit for bit: every field of the
rollout and of each replica, for autoregressive and speculative decoding, calibrated and roofline costs, prefill in
one step and in many (decoding sequences alongside), one-token responses, acceptance varying across sequences,
replicas off the pooled path mixed in, and replicas whose pre-drawn rounds run short (left to ReplicaSim)."""

import numpy as np
import pytest

from rlsim.engine import ReplicaConfig, simulate_rollout
from rlsim.engine import pool as pool_mod
from rlsim.speculation import AcceptanceModel, SpecPolicy
from rlsim.speculation.variable_acceptance import VariableAcceptancePolicy


def _same(a, b):
    for f in a.__dataclass_fields__:
        if f == "replicas":
            continue
        x, y = getattr(a, f), getattr(b, f)
        if isinstance(x, np.ndarray):
            assert np.array_equal(x, y, equal_nan=True), f
        else:
            assert x == y, (f, x, y)
    assert len(a.replicas) == len(b.replicas)
    for ra, rb in zip(a.replicas, b.replicas):
        for f in ra.__dataclass_fields__:
            x, y = getattr(ra, f), getattr(rb, f)
            if isinstance(x, np.ndarray):
                assert np.array_equal(x, y, equal_nan=True), f
            else:
                assert x == y, (f, x, y)


def _lengths(n, seed, prompt_hi=400, mean=300):
    rng = np.random.default_rng(seed)
    P = rng.integers(1, prompt_hi, n)
    N = np.clip(rng.lognormal(np.log(mean), 1.0, n).astype(int), 1, 6000)
    N[rng.integers(0, n, max(n // 20, 1))] = 1  # one-token responses
    return P, N


def _both(P, N, R, cost, pol, cfg, seed=5, start=3.0):
    a = simulate_rollout(P, N, R, cost, pol, cfg, seed, start, keep_replicas=True, pooled=False)
    b = simulate_rollout(P, N, R, cost, pol, cfg, seed, start, keep_replicas=True, pooled=True)
    _same(a, b)
    return b


@pytest.fixture(scope="module")
def calibrated():
    from rlsim.pipeline import build_setup
    from rlsim.scenario import build_scenario

    return build_setup(build_scenario(workload="rl-zero-8b"))


@pytest.mark.parametrize("k", [0, 3])
@pytest.mark.parametrize("budget", [16384, 300])  # 300: prompts prefill over many steps, decoders alongside
def test_pooled_equals_replica_sim(zero8b_setup, calibrated, k, budget):
    for s in (zero8b_setup, calibrated):
        cost = s.cost_spec if k else s.cost_ar
        pol = SpecPolicy(AcceptanceModel.from_quality(k, 0.75, 0.9))
        cfg = ReplicaConfig(budget, 64, 400_000)
        P, N = _lengths(700, seed=k + budget)
        _both(P, N, 24, cost, pol, cfg)


def test_replicas_off_the_pooled_path_mixed_in(zero8b_setup):
    cost = zero8b_setup.cost_spec
    pol = SpecPolicy(AcceptanceModel.from_quality(3, 0.7))
    P, N = _lengths(600, seed=1)
    cfg = ReplicaConfig(4096, 20, 9_000)  # some shards exceed the sequence limit or the KV cache, some do not
    shards = np.array_split(np.arange(P.size), 30)
    ok = [pool_mod.pool_eligible(P[i], N[i], cost, pol, cfg) for i in shards]
    assert 0 < sum(ok) < len(ok)
    _both(P, N, 30, cost, pol, cfg)


def test_varying_acceptance(zero8b_setup):
    pol = VariableAcceptancePolicy(AcceptanceModel.from_quality(3, 0.75), acceptance_spread=0.3, response_decay=0.1,
                                   reference_k=3)
    P, N = _lengths(300, seed=2)
    _both(P, N, 10, zero8b_setup.cost_spec, pol, ReplicaConfig(1024, 64, 400_000))


def test_rounds_short_of_the_draw_go_to_replica_sim(zero8b_setup, monkeypatch):
    cost = zero8b_setup.cost_spec
    pol = SpecPolicy(AcceptanceModel.from_quality(3, 0.75))
    P, N = _lengths(400, seed=3)
    N[::37] = 3000
    real = pool_mod.initial_rounds
    monkeypatch.setattr(pool_mod, "initial_rounds", lambda p, k, n: np.where(n > 2000, 5, real(p, k, n)))
    taken = []
    real_pool = pool_mod.simulate_pool

    def counting(*a, **kw):
        out = real_pool(*a, **kw)
        taken.append((len(a[0]), len(out)))
        return out

    monkeypatch.setattr("rlsim.engine.rollout.simulate_pool", counting)
    _both(P, N, 16, cost, pol, ReplicaConfig(16384, 64, 400_000))
    shards, done = taken[0]
    assert 0 < done < shards  # the short ones were re-run by ReplicaSim, the rest kept
