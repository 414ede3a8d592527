"""The speed paths (issue 17) give the same numbers, bit for bit, as the one-event paths they replace.

- batched cost-model calls (costmodel/batched.py) equal the per-event calls of IterationCostModel;
- the calibrated timer's lean attention equals the straightforward form (attention_query + the curve / k-NN);
- replicas stepped in lockstep (engine/replica.py:run_replicas) equal each replica run alone;
- FFD by max-tree equals the scan; version lookup, the two-process pair, drain / segment bookkeeping.
"""

import json

import numpy as np
import pytest

from rlsim.costmodel.batched import decode_points_time_s, interpolation_points, mixed_steps_time_s
from rlsim.costmodel.iteration import IterationBatch
from rlsim.pipeline import build_setup
from rlsim.scenario import build_scenario

SCENARIOS = [dict(workload="rl-zero-8b"), dict(workload="rl-zero-8b", engine="ideal"),
             dict(model="qwen3-235b", gpus=512, k=3), dict(workload="rl-zero-8b", calibration="roofline"),
             dict(workload="rl-zero-8b", drafter="ngram", acceptance_length=1.8, engine="vllm-fixed")]


def _setups():
    return [build_setup(build_scenario(**kw)) for kw in SCENARIOS]


@pytest.fixture(scope="module")
def setups():
    return _setups()


def test_batched_equals_per_event_calls(setups):
    rng = np.random.default_rng(3)
    for s in setups:
        for cost, ks in ((s.cost_ar, [0]), (s.cost_spec, sorted({0, 1, s.scenario.k}))):
            maxB = s.scenario.workload.engine.max_num_seqs
            rows = []
            for _ in range(60):
                B = int(rng.integers(0, maxB))
                k = int(rng.choice(ks)) if B else 0
                chunk = int(rng.integers(1, 8192))
                off = int(rng.integers(0, 9000))
                nps = int(rng.integers(1, 5))
                rows.append((B, k, float(rng.integers(0, 2_000_000)) if B else 0.0, chunk, nps, (off + chunk) * nps,
                             float(chunk * off + chunk * (chunk + 1) / 2), int(rng.integers(0, nps + 1))))
            got = mixed_steps_time_s(cost, np.array(rows, float))
            ref = [float(cost.iteration_time_s(IterationBatch(*[np.array([v]) for v in r]))[0]) for r in rows]
            assert got.tolist() == ref
            for k in ks:
                Bs, kvs, sizes, refs = [], [], [], []
                for n in (1, 3, 4, 5, 40, 300):  # calls of a few points predict directly, longer ones use curves
                    B = int(rng.integers(1, maxB + 1))
                    kv = 1000.0 + np.cumsum(rng.integers(B, B * (k + 1) + 1, n)).astype(float)
                    refs.append(cost.decode_segment_time_s(B, k, kv))
                    Bs.append(np.full(n, B))
                    kvs.append(kv)
                    sizes.append(n)
                    b = np.sort(rng.integers(1, maxB + 1, n))[::-1]
                    kv2 = np.sort(rng.integers(1000, 2_000_000, n)).astype(float)
                    refs.append(cost.decode_iterations_time_s(b, k, kv2, stride=1))
                    Bs.append(b)
                    kvs.append(kv2)
                    sizes.append(n)
                got = decode_points_time_s(cost, k, np.concatenate(Bs), np.concatenate(kvs), np.array(sizes))
                assert got.tolist() == np.concatenate(refs).tolist()
                b = np.repeat(np.arange(30, 0, -1), rng.integers(1, 90, 30))
                kv = np.sort(rng.integers(1000, 2_000_000, b.size)).astype(float)
                pts = interpolation_points(b)
                vals = decode_points_time_s(cost, k, b[pts], kv[pts], np.array([pts.size]))
                assert np.interp(np.arange(b.size), pts, vals).tolist() == cost.decode_iterations_time_s(b, k, kv).tolist()


def _attention_reference(timer, n_seqs, kv_read, pairs, qt, n_q, n_kv, hd, kv_dtype="bf16", kv_spread=1.0):
    """The calibrated attention in its straightforward form (one call; before the lean rewrite)."""
    from rlsim.costmodel import calib_fit, calib_timer

    n_seqs, kv, pairs, qt = np.broadcast_arrays(*(np.asarray(x, float) for x in (n_seqs, kv_read, pairs, qt)))
    peak, bw = timer._src()
    kvb = kv * (0.5 if kv_dtype == "fp8" else 1.0)
    spread = float(np.clip(kv_spread, 1.0, 64.0))
    Z, roof = calib_fit.attention_query(n_seqs, kvb, pairs, qt, n_q, n_kv, hd, peak, bw, spread)
    key_b = np.round(n_seqs, 2).ravel()
    key_q = np.round(Z[..., 2].ravel() * 4) / 4
    verify = (key_q > 0) & (key_q <= 4.0)
    extra_s = np.zeros(key_q.size)
    if verify.any():
        q_per = (qt / np.maximum(n_seqs, 1e-9)).ravel()
        extra_pairs = pairs.ravel() - kv.ravel() / np.maximum(q_per, 1.0)
        extra_s = np.where(verify, np.maximum(extra_pairs, 0) * 4.0 * n_q * hd
                           / (peak * timer.efficiency["attention_compute"]), 0.0)
        key_q = np.where(verify, 0.0, key_q)
    if key_b.size <= 4:
        Zd = Z.reshape(-1, 6).copy()
        Zd[:, 2] = key_q
        lr = timer.tables.attention.predict(Zd).reshape(n_seqs.shape)
    else:
        code = np.round(key_b * 100).astype(np.int64) * 128 + np.round(key_q * 4).astype(np.int64)
        uniq, inv = np.unique(code, return_inverse=True)
        curves = np.stack([timer._att_curve(float(u // 128) / 100, float(u % 128) / 4, n_q, n_kv, spread) for u in uniq])
        x = np.clip((Z[..., 1].ravel() - calib_timer._KV_GRID[0]) / (calib_timer._KV_GRID[1] - calib_timer._KV_GRID[0]), 0, calib_timer._KV_GRID.size - 1)
        i0 = np.minimum(x.astype(np.int64), calib_timer._KV_GRID.size - 2)
        frac = x - i0
        lr = (curves[inv, i0] * (1 - frac) + curves[inv, i0 + 1] * frac).reshape(n_seqs.shape)
    if verify.any():
        _, roof1 = calib_fit.attention_query(n_seqs, kvb, kv, n_seqs, n_q, n_kv, hd, peak, bw, spread)
        roof = np.where(verify.reshape(roof.shape), roof1, roof)
    t = roof * np.exp(lr) + extra_s.reshape(roof.shape)
    return np.where(n_seqs > 0, timer._move(t, 4.0 * pairs * n_q * hd, kvb * 2 * n_kv * hd * 2.0), 0.0)


def test_lean_attention_equals_the_straightforward_form(setups):
    timer = setups[2].timer  # GB200, calibrated on H200 (transfer)
    rng = np.random.default_rng(5)
    for n in (1, 2, 4, 5, 64, 2000):
        for q in (1, 2, 4, 6, 9):
            B = np.repeat(rng.integers(0, 300, max(n // 50, 1)), 50)[:n].astype(float)
            if B.size < n:
                B = np.resize(B, n)
            kv = rng.integers(0, 3_000_000, n).astype(float) + B * q
            pairs = q * kv + B * q * (q + 1) / 2
            for dtype in ("bf16", "fp8"):
                args = (B, kv, pairs, B * q, 32, 8, 128, dtype)
                got = timer.attention_s("mixed", *args)
                assert np.asarray(got).tolist() == np.asarray(_attention_reference(timer, *args)).tolist()
    # groups: each group as its own call
    B = np.array([3.0, 3.0, 7.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0])
    kv = np.array([900.0, 1200.0, 40000.0, 800.0, 900.0, 1000.0, 1100.0, 1200.0, 1300.0])
    with timer.call_groups(np.array([2, 1, 6])):
        got = timer.attention_s("mixed", B, kv, kv, B, 32, 8, 128)
    ref = np.concatenate([_attention_reference(timer, B[a:b], kv[a:b], kv[a:b], B[a:b], 32, 8, 128)
                          for a, b in ((0, 2), (2, 3), (3, 9))])
    assert got.tolist() == ref.tolist()


def _sims(setup, speculative, n_rep=6, seed=11):
    from rlsim.engine import ReplicaSim

    p, n = setup.sample_step_lengths(0)
    shards = np.array_split(np.arange(len(p)), n_rep)
    sims = []
    for r, idx in enumerate(shards):
        sim = ReplicaSim(setup.cost_spec if speculative else setup.cost_ar, setup.policy(speculative),
                         setup.replica_config(speculative), np.random.default_rng([seed, r]), 0.0, record_trace=True)
        sim.add(p[idx], n[idx], 0.0)
        sims.append(sim)
    return sims


@pytest.mark.parametrize("kw", [dict(workload="rl-zero-8b", num_prompts_per_step=16),
                                dict(model="qwen3-235b", gpus=64, k=3, num_prompts_per_step=128),  # preemption
                                dict(workload="rl-zero-8b", num_prompts_per_step=16,
                                     num_speculative_tokens_per_batch_size=[[1, 16, 5], [17, 64, 3], [65, 1024, 1]])])
def test_lockstep_equals_one_replica_at_a_time(kw):
    from rlsim.engine.replica import run_replicas

    setup = build_setup(build_scenario(**kw))
    for spec in (False, True):
        alone, together = _sims(setup, spec), _sims(setup, spec)
        for sim in alone:
            sim.run(t_stop=30.0)  # a time limit cuts stretches of decode
            sim.run()
        run_replicas(together, t_stop=30.0)
        run_replicas(together)
        for a, b in zip(alone, together):
            ra, rb = a.result(), b.result()
            assert ra.finish_time_s.tolist() == rb.finish_time_s.tolist()
            assert (ra.iterations, ra.busy_time_s, ra.tokens_generated, ra.preemptions) == \
                   (rb.iterations, rb.busy_time_s, rb.tokens_generated, rb.preemptions)
            for key in ra.trace:
                assert ra.trace[key].tolist() == rb.trace[key].tolist()


def test_first_fit_decreasing_equals_the_scan():
    from rlsim.costmodel.training_layout import first_fit_decreasing

    def scan(lengths, capacity):
        bins, room = [], []
        for i in np.argsort(-np.asarray(lengths), kind="stable"):
            n = int(lengths[i])
            for b, r in enumerate(room):
                if n <= r:
                    bins[b].append(int(i))
                    room[b] -= n
                    break
            else:
                bins.append([int(i)])
                room.append(capacity - n)
        return bins

    rng = np.random.default_rng(1)
    for _ in range(200):
        lengths = (rng.lognormal(7, 1, rng.integers(0, 300))).astype(np.int64) // 64 * 64 + 64
        cap = int(rng.choice([int(lengths.max()) if lengths.size else 1, 4096, 16384]))
        assert first_fit_decreasing(lengths, cap) == scan(lengths, cap)


def test_version_lookup_vectorised():
    from rlsim.pipeline.asynchronous import _version_at, _versions_at

    W = [0.0, 10.0, 25.0, 31.0]
    t = np.array([0.0, 5.0, 10.0, 24.9, 25.0, 100.0, -1.0])
    assert _versions_at(W, t).tolist() == [_version_at(W, x) for x in t]


def test_two_process_pair_matches_sequential(monkeypatch):
    from rlsim.pipeline import parallel

    notes = {"a"}

    def second():
        notes.add("from the second")
        return {"x": np.arange(3)}

    a, b = parallel.both(lambda: 1, second, notes)
    assert a == 1 and b["x"].tolist() == [0, 1, 2] and notes == {"a", "from the second"}
    monkeypatch.setenv("RLSIM_PARALLEL", "0")
    assert not parallel.can_fork()

    def fails():
        raise ValueError("boom")

    monkeypatch.delenv("RLSIM_PARALLEL")
    with pytest.raises(ValueError, match="boom"):
        parallel.both(lambda: 1, fails)


def test_project_same_with_and_without_two_processes(monkeypatch):
    from rlsim import project_scenario

    kw = dict(workload="rl-zero-8b", gpus=8, num_prompts_per_step=8)
    a = json.dumps(project_scenario(**kw).to_dict(), default=str)
    monkeypatch.setenv("RLSIM_PARALLEL", "0")
    assert json.dumps(project_scenario(**kw).to_dict(), default=str) == a


def test_stand_in_cost_object_uses_its_one_event_methods():
    """A duck-typed cost (validation's _CostAtK0) is called through its public methods, with the same numbers."""
    from rlsim.engine import simulate_rollout

    class Delegate:
        def __init__(self, base):
            self.base = base

        def iteration_time_s(self, b):
            return self.base.iteration_time_s(b)

        def decode_segment_time_s(self, n, k, kv):
            return self.base.decode_segment_time_s(n, k, kv)

        def decode_iterations_time_s(self, n, k, kv, stride=8):
            return self.base.decode_iterations_time_s(n, k, kv, stride)

    s = build_setup(build_scenario(workload="rl-zero-8b", gpus=8, num_prompts_per_step=8))
    p, n = s.sample_step_lengths(0)
    args = (s.policy(True), s.replica_config(True))
    a = simulate_rollout(p, n, s.n_replicas, s.cost_spec, *args, seed=3)
    b = simulate_rollout(p, n, s.n_replicas, Delegate(s.cost_spec), *args, seed=3)
    assert a.finish_time_s.tolist() == b.finish_time_s.tolist() and a.iterations_max == b.iterations_max
