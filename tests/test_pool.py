"""The pooled synchronous rollout (engine/pool.py) gives ReplicaSim's results bit for bit: every field of the
rollout and of each replica, for autoregressive and speculative decoding, calibrated and roofline costs, prefill in
one step and in many (decoding sequences alongside), one-token responses, replicas off the pooled path mixed in
(acceptance varying across sequences, shards over the cache), replicas whose pre-drawn rounds run short (left to
ReplicaSim); and the async pipeline's runs (engine/pool.py:run_replicas_pooled) against ReplicaSim's."""

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


@pytest.fixture
def pooled_count(monkeypatch):
    """Replicas the async pooled path ran (``_run_fresh``'s replicas less those it left), one entry per call."""
    handled = []
    real = pool_mod._run_fresh

    def counting(fresh, *a):
        left = real(fresh, *a)
        handled.append(len(fresh) - len(left))
        return left

    monkeypatch.setattr(pool_mod, "_run_fresh", counting)
    return handled


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
        N[:60] = np.arange(60) % 9 + 1  # the first replicas decode for a few iterations only (no interpolation)
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


def test_varying_acceptance_stays_with_replica_sim(zero8b_setup):
    # its streams run short often (ReplicaSim extends them): not pooled, same results
    pol = VariableAcceptancePolicy(AcceptanceModel.from_quality(3, 0.75), acceptance_spread=0.3, response_decay=0.1,
                                   reference_k=3)
    P, N = _lengths(300, seed=2)
    cfg = ReplicaConfig(1024, 64, 400_000)
    assert not pool_mod.pool_eligible(P[:10], N[:10], zero8b_setup.cost_spec, pol, cfg)
    _both(P, N, 10, zero8b_setup.cost_spec, pol, cfg)


def _same_async(a, b):
    for f in ("release_s", "batch_done_s", "train_start_s", "train_end_s", "weights_loaded_s", "refit_start_s",
              "dropped", "generated", "trained", "phases"):
        assert getattr(a, f) == getattr(b, f), f
    for x, y in zip(a.staleness, b.staleness):
        assert np.array_equal(x, y)
    for sa, sb in zip(a.sims, b.sims):
        assert sa.stats == sb.stats
        assert sa.t == sb.t
        for f in ("finish", "admit_time", "gen", "status", "pre", "admit_seq"):
            assert np.array_equal(getattr(sa, f), getattr(sb, f), equal_nan=True), f
        assert sa.rng.bit_generator.state == sb.rng.bit_generator.state


@pytest.mark.parametrize("kw,pooled", [
    (dict(model="qwen3-235b", gpus=128, k=3, lag=2, num_prompts_per_step=64), True),
    (dict(workload="rl-think-8b", lag=1, gen_gpus=16, train_gpus=16, num_prompts_per_step=24), True),  # many-step prefill
    (dict(workload="rl-zero-8b", lag=1, gen_gpus=16, train_gpus=16, in_flight_weight_updates=True), False),
])
def test_async_pooled_equals_replica_sim(kw, pooled, pooled_count):
    from rlsim.pipeline import build_setup
    from rlsim.pipeline.asynchronous import simulate_async
    from rlsim.scenario import build_scenario

    s = build_setup(build_scenario(**kw))
    for spec in (False, True):
        _same_async(simulate_async(s, spec, n_steps=5, pooled=False), simulate_async(s, spec, n_steps=5, pooled=True))
    assert (sum(pooled_count) > 0) == pooled  # the pooled path really ran (in-flight updates: never)


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


def test_resumable_replicas_between_the_two_paths(zero8b_setup, pooled_count):
    """Batches that fit (pooled), one that does not (ReplicaSim, reading the rows the pooled path drew), targets,
    time limits before and after the prefill, one-token batches: each replica's state equals ReplicaSim's."""
    from rlsim.engine import ReplicaSim
    from rlsim.engine.replica import run_replicas

    run_replicas_pooled = pool_mod.run_replicas_pooled
    cost = zero8b_setup.cost_spec
    pol = SpecPolicy(AcceptanceModel.from_quality(3, 0.75, 0.9))
    cfg = ReplicaConfig(2048, 48, 30_000)
    rng = np.random.default_rng(9)

    def batch(n, big=False):
        P = rng.integers(1, 600, n)
        N = np.clip(rng.lognormal(np.log(2500 if big else 300), 0.8, n).astype(int), 1, 8000)
        return P, N

    plan = [batch(30), batch(30), batch(40, big=True), batch(30), batch(5), batch(30)]
    plan[4] = (plan[4][0], np.ones(5, np.int64))  # one-token responses only
    runs = []
    for pooled in (False, True):
        sims = [ReplicaSim(cost, pol, cfg, np.random.default_rng([4, r])) for r in range(3)]
        t = 0.0
        for j, (P, N) in enumerate(plan):
            parts = np.array_split(np.arange(P.size), 3)
            tg = [s.add(P[i] + r, N[i], t) for r, (s, i) in enumerate(zip(sims, parts))]
            if j == 0:  # a run to the batch's targets, no time limit
                (run_replicas_pooled if pooled else run_replicas)(sims, targets=tg)
            t_stop = t + (0.001 if j == 3 else 4.0)  # j = 3: the limit falls within the prefill steps
            (run_replicas_pooled if pooled else run_replicas)(sims, t_stop=t_stop, then_drain=True)
            t = max(s.t for s in sims) + 0.5
            for s in sims:
                s.t = t
        runs.append(sims)
    for a, b in zip(*runs):
        assert a.stats == b.stats and a.t == b.t and a.stamp == b.stamp
        for f in ("finish", "admit_time", "gen", "status", "pre", "admit_seq", "need"):
            assert np.array_equal(getattr(a, f), getattr(b, f), equal_nan=True), f
        assert a.rng.bit_generator.state == b.rng.bit_generator.state
    # both paths ran: pooled batches, and the big one on ReplicaSim (it preempts)
    assert sum(pooled_count) > 0
    assert sum(s.stats["preempt"] for s in runs[1]) > 0


def test_interpolation_in_small_blocks(zero8b_setup, monkeypatch):
    """The iterations are interpolated in blocks of whole replicas: blocks of one replica give the same numbers."""
    monkeypatch.setattr(pool_mod, "_INTERP_BLOCK", 40)
    pol = SpecPolicy(AcceptanceModel.from_quality(3, 0.75, 0.9))
    P, N = _lengths(400, seed=7)
    N[:40] = np.arange(40) % 5 + 1  # short replicas among long ones
    for k, cost in ((0, zero8b_setup.cost_ar), (3, zero8b_setup.cost_spec)):
        _both(P, N, 20, cost, SpecPolicy(AcceptanceModel.from_quality(k, 0.75, 0.9)) if k == 0 else pol,
              ReplicaConfig(16384, 64, 400_000))


def test_round_streams_in_int64(zero8b_setup, monkeypatch):
    """The pooled streams' running sum is int32 while small; the int64 form (large pools) gives the same numbers."""
    monkeypatch.setattr(pool_mod, "_INT32_TOKENS", 0)
    P, N = _lengths(300, seed=11)
    _both(P, N, 12, zero8b_setup.cost_spec, SpecPolicy(AcceptanceModel.from_quality(3, 0.75, 0.9)),
          ReplicaConfig(4096, 64, 400_000))
