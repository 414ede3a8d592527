"""Rollout engine invariants."""

import numpy as np
import pytest

from rlsim.catalog import GenerationParallelism, load_hardware, load_model
from rlsim.costmodel import IterationCostModel, KernelTimer, replica_layout
from rlsim.engine import ReplicaConfig, simulate_replica, simulate_rollout
from rlsim.speculation import AcceptanceModel, SpecPolicy

HW = load_hardware("h100-sxm")
M = load_model("qwen3-8b")
LAY = replica_layout(M, GenerationParallelism())
AR_COST = IterationCostModel(M, HW, LAY, KernelTimer(HW))


def _lengths(n, seed=0, mean=300):
    rng = np.random.default_rng(seed)
    return rng.integers(20, 200, n), np.clip(rng.lognormal(np.log(mean), 0.9, n).astype(int), 1, 4000)


@pytest.mark.parametrize("k,al", [(0, 1.0), (1, 1.6), (3, 2.8), (7, 5.0)])
@pytest.mark.parametrize("capacity", [10**7, 6000])
def test_every_token_generated_exactly_once(k, al, capacity):
    P, N = _lengths(40)
    pol = SpecPolicy(AcceptanceModel.from_acceptance_length(k, al))
    r = simulate_replica(P, N, AR_COST, pol, ReplicaConfig(2048, 256, capacity), np.random.default_rng(1))
    assert r.tokens_generated == N.sum()
    assert np.isfinite(r.finish_time_s).all()
    assert r.end_time_s == pytest.approx(r.finish_time_s.max())
    if capacity < 10**6:
        # 40 sequences of up to 4000 tokens in 6000 tokens of KV: admitted on their prompts, they outgrow it
        assert r.preemptions > 0, (k, al)
    else:
        assert r.preemptions == 0, (k, al)  # ample KV: nothing is ever evicted
    if k:
        assert r.accepted_drafts / r.spec_rounds + 1 == pytest.approx(al, rel=0.1)


def test_free_draft_with_full_acceptance_gives_ideal_round_count():
    # one sequence, AL = k+1: after the prefill iteration (1st token) every round yields k+1 tokens
    for k in (1, 3, 5):
        for n_tok in (1, 2, 10, 101, 1000):
            pol = SpecPolicy(AcceptanceModel.from_acceptance_length(k, k + 1))
            r = simulate_replica(np.array([50]), np.array([n_tok]), AR_COST, pol, ReplicaConfig(2048, 8, 10**6),
                                 np.random.default_rng(0))
            assert r.iterations == 1 + int(np.ceil((n_tok - 1) / (k + 1)))


def test_k0_policy_is_the_autoregressive_path():
    P, N = _lengths(30, seed=3)
    cfg = ReplicaConfig(4096, 256, 10**6)
    a = simulate_replica(P, N, AR_COST, SpecPolicy(AcceptanceModel.none()), cfg, np.random.default_rng(5))
    b = simulate_replica(P, N, AR_COST, SpecPolicy(AcceptanceModel.from_acceptance_length(0, 1.0)), cfg,
                         np.random.default_rng(99))
    assert a.end_time_s == b.end_time_s and a.iterations == b.iterations == N.max()


def test_fast_drain_equals_segment_path():
    """The vectorised drain and the event-by-event path are the same process (same random streams)."""
    P, N = _lengths(25, seed=4)
    pol = SpecPolicy(AcceptanceModel.from_acceptance_length(3, 2.6))
    cfg = ReplicaConfig(8192, 256, 10**7)
    fast = simulate_replica(P, N, AR_COST, pol, cfg, np.random.default_rng(2))
    slow_pol = SpecPolicy(AcceptanceModel.from_acceptance_length(3, 2.6), k_for_batch=lambda b: 3)
    slow = simulate_replica(P, N, AR_COST, slow_pol, cfg, np.random.default_rng(2))
    assert fast.iterations == slow.iterations
    np.testing.assert_allclose(fast.finish_time_s, slow.finish_time_s, rtol=1e-3)


def test_kv_limited_admission_waits_and_preempts():
    P, N = np.full(20, 100), np.full(20, 500)
    pol = SpecPolicy(AcceptanceModel.none())
    big = simulate_replica(P, N, AR_COST, pol, ReplicaConfig(8192, 256, 10**6), np.random.default_rng(0))
    small = simulate_replica(P, N, AR_COST, pol, ReplicaConfig(8192, 256, 3000), np.random.default_rng(0))
    assert small.tokens_generated == big.tokens_generated == 20 * 500
    assert small.iterations > big.iterations  # fewer sequences at a time -> more iterations
    assert small.preemptions > 0  # admitted on prompt size, then outgrew the cache


def test_max_num_seqs_limits_the_batch():
    P, N = np.full(10, 10), np.full(10, 100)
    r = simulate_replica(P, N, AR_COST, SpecPolicy(AcceptanceModel.none()), ReplicaConfig(8192, 2, 10**6),
                         np.random.default_rng(0), record_trace=True)
    assert r.trace["n_decode"].max() <= 2
    assert r.iterations >= 5 * 100


def test_rollout_is_seeded_and_long_tail_sets_the_end():
    P, N = _lengths(256, seed=7)
    pol = SpecPolicy(AcceptanceModel.from_acceptance_length(3, 2.5))
    cfg = ReplicaConfig(8192, 256, 10**6)
    a = simulate_rollout(P, N, 8, AR_COST, pol, cfg, seed=11)
    b = simulate_rollout(P, N, 8, AR_COST, pol, cfg, seed=11)
    c = simulate_rollout(P, N, 8, AR_COST, pol, cfg, seed=12)
    assert a.generation_time_s == b.generation_time_s
    assert a.generation_time_s != c.generation_time_s
    assert a.generation_time_s == pytest.approx(np.nanmax(a.finish_time_s))
    assert a.tokens_generated == N.sum()
