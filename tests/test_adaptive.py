"""Batch-adaptive k (schedules, optimiser, CUDA-graph cost, optimize-k) and varying acceptance."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from rlsim import project_scenario
from rlsim.speculation.policy import SpecPolicy
from rlsim.speculation.variable_acceptance import VariableAcceptancePolicy, _al_of_rates
from rlsim.errors import ConfigurationError
from rlsim.cli import app
from rlsim.speculation import AcceptanceModel
from rlsim.speculation.adaptive import (context_by_batch, cuda_graph_cost, format_k_schedule, goodput_table,
                                        k_for_batch, optimal_schedule, parse_k_schedule, validate_k_schedule,
                                        vllm_capture_sizes)

runner = CliRunner()
REF = "1-16:5,17-64:3,65-128:1,129-100000:0"


# ------------------------------------------------------------------ schedules
def test_parse_text_and_json_agree():
    a = parse_k_schedule(REF)
    b = parse_k_schedule("[[1,16,5],[17,64,3],[65,128,1],[129,100000,0]]")
    assert a == b == [(1, 16, 5), (17, 64, 3), (65, 128, 1), (129, 100000, 0)]
    assert format_k_schedule(a) == REF
    f = k_for_batch(a)
    assert [f(b) for b in (0, 1, 16, 17, 64, 65, 128, 129, 5000)] == [0, 5, 5, 3, 3, 1, 1, 0, 0]


@pytest.mark.parametrize("sched,needle", [
    ([(1, 16, 5), (10, 64, 3)], "overlap"),
    ([(1, 16, 5), (18, 1024, 3)], "gap: batch size 17 has no k"),
    ([(1, 16, 5), (20, 1024, 3)], "batch sizes 17-19"),
    ([(2, 1024, 3)], "starts at batch size 2"),
    ([(1, 1024, 16)], "allowed: 0..15"),
    ([(1, 512, 3)], "513-1024"),
    ([(5, 2, 3)], "start <= end"),
    ([(0, 16, 3), (17, 1024, 2)], None),
])
def test_validation_errors_are_clear(sched, needle):
    if needle is None:  # a schedule may start at batch 0
        assert validate_k_schedule(sched, max_k=15, max_batch=1024) == sched
        return
    with pytest.raises(ConfigurationError, match=needle):
        validate_k_schedule(sched, max_k=15, max_batch=1024)


@pytest.mark.parametrize("text", ["1-16:5;17-20:3", "a-b:c", "[[1,16]]", "[1,2,3", ""])
def test_parse_errors(text):
    with pytest.raises(ConfigurationError):
        parse_k_schedule(text)


def test_schedule_in_engine_matches_fixed_k_when_constant():
    fixed = project_scenario(workload="rl-zero-8b", k=3, calibration="roofline")
    sched = project_scenario(workload="rl-zero-8b", k=3, calibration="roofline",
                             num_speculative_tokens_per_batch_size=[[1, 1024, 3]])
    # event-by-event path vs vectorised drain: the same rounds, the same costs up to interpolation
    assert sched.speculative.phases_s["generation"] == pytest.approx(fixed.speculative.phases_s["generation"], rel=0.01)
    assert sched.acceptance_length_realized == pytest.approx(fixed.acceptance_length_realized, rel=0.01)


def test_schedule_needs_speculation_on():
    from rlsim.scenario import build_scenario

    with pytest.raises(ConfigurationError, match="needs speculation on"):  # checked once, in build_scenario
        build_scenario(workload="rl-zero-8b", k=0, num_speculative_tokens_per_batch_size=[[1, 1024, 3]])


# ------------------------------------------------------------------ optimiser
def test_goodput_prefers_small_k_at_large_batch(zero8b_setup):
    st = zero8b_setup
    tab = goodput_table(st.cost_spec, st.acceptance, [1, 8, 64, 512, 1024], range(0, 8), 600.0)
    assert tab.goodput.shape == (5, 8)
    assert np.all(np.diff(tab.best_k) <= 0)  # non-increasing with the batch
    assert tab.best_k[0] >= 5 and tab.best_k[-1] <= 3
    # goodput definition: B * AL / t
    np.testing.assert_allclose(tab.goodput[2, 3], 64 * tab.tokens_per_round[3] / tab.iteration_s[2, 3])


def test_optimal_schedule_merges_and_bounds_tiers(zero8b_setup):
    st = zero8b_setup
    B = np.arange(1, 1025)
    tab = goodput_table(st.cost_spec, lambda k: AcceptanceModel.from_acceptance_length(3, 3.32).at_k(k).acceptance_length,
                        B, range(0, 8), 600.0)
    s = optimal_schedule(tab, max_batch=1024)
    validate_k_schedule(s, 15, 1024)
    f = k_for_batch(s)
    assert all(f(int(b)) == int(k) for b, k in zip(B, tab.best_k))
    s2 = optimal_schedule(tab, span=np.ones(B.size), max_tiers=2, max_batch=1024)
    validate_k_schedule(s2, 15, 1024)
    assert len({k for _, _, k in s2}) <= 2


def test_context_by_batch_is_the_live_tail():
    P = np.array([10, 10, 10, 10])
    N = np.array([100, 400, 200, 300])
    ctx, span = context_by_batch(P, N, [np.arange(4)], 6)
    # B = 1: only the 400-token sequence, between positions 300 and 400
    assert ctx[0] == pytest.approx(10 + 350)
    assert span[:4].tolist() == [100, 100, 100, 100] and ctx[4] == ctx[3]


def test_cuda_graph_cost_counts_tiers():
    assert vllm_capture_sizes(512)[:4] == [1, 2, 4, 8] and vllm_capture_sizes(512)[-1] == 512
    one = cuda_graph_cost([(1, 1024, 3)], 512, 36, 1, 1024)
    many = cuda_graph_cost(parse_k_schedule(REF[:-6] + "1024:0"), 512, 36, 1, 1024)
    assert one.tiers == (3,) and many.tiers == (0, 1, 3, 5)
    assert many.graphs_target > 0 and many.graphs_draft < many.graphs_target  # k = 0 needs no draft graphs
    extra = many.minus(one)
    assert extra.bytes_per_gpu >= 0 and extra.capture_s >= 0
    assert one.graphs_target == len([s for s in vllm_capture_sizes(512) if s >= 4])  # B*4 rounds up to every size >= 4


def test_optimize_k_small():
    from rlsim.studies.optimize_k import optimize_k

    r = optimize_k(workload="rl-zero-8b", k_max=3, reference=False, calibration="roofline")
    validate_k_schedule(r["schedule"], 15, 1024)
    assert set(r["fixed"]) == {1, 2, 3}
    best = r["fixed"][r["best_fixed_k"]]
    assert best["gen"] == min(f["gen"] for f in r["fixed"].values())
    # the per-batch optimum never loses much to the best fixed k (it contains it as a candidate)
    assert r["speedup_vs_best_fixed"]["generation"] > 0.98
    assert "taken from the KV cache" in r["switching_cost_charged"]


def test_cli_optimize_k_and_project_schedule():
    res = runner.invoke(app, ["optimize-k", "--workload", "rl-zero-8b", "--k-max", "2", "--calibration", "roofline",
                              "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["best_fixed_k"] in (1, 2) and d["schedule_text"]
    res = runner.invoke(app, ["project", "--workload", "rl-zero-8b", "--k-schedule", REF, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["scenario"]["num_speculative_tokens_per_batch_size"][0] == [1, 16, 5]
    bad = runner.invoke(app, ["project", "--workload", "rl-zero-8b", "--k-schedule", "1-16:5,18-1024:3"])
    assert bad.exit_code == 2 and "gap" in bad.output and "Traceback" not in bad.output


# ------------------------------------------------------------------ varying acceptance
BASE = AcceptanceModel.from_acceptance_length(3, 2.77)


@pytest.mark.parametrize("spread,decay", [(0.1, 0.0), (0.5, 0.0), (0.0, 0.05), (0.3, 0.05)])
def test_mean_al_is_preserved(spread, decay):
    lengths = np.random.default_rng(0).lognormal(np.log(3000), 0.8, 2000).clip(16, 16384)
    p = VariableAcceptancePolicy(BASE, acceptance_spread=spread, response_decay=decay, reference_k=3,
                                 reference_lengths=lengths)
    assert p.aggregate_acceptance_length(3) == pytest.approx(2.77, abs=1e-6)
    if decay == 0:  # check the quadrature against Monte Carlo: tokens / rounds = 1 / E[1/AL]
        kap = 1 / spread - 1
        x = np.random.default_rng(1).beta(p.mu * kap, (1 - p.mu) * kap, 400_000)
        assert 1 / np.mean(1 / _al_of_rates(x[:, None] * p._shape(3)[None, :])) == pytest.approx(2.77, rel=3e-3)


def test_sampling_is_seeded_and_varies_by_sequence():
    p = VariableAcceptancePolicy(BASE, acceptance_spread=0.3, reference_k=3)
    rounds = np.full(200, 300)
    a = p.sample_rounds(np.random.default_rng([1, 0, 7]), 3, rounds, np.arange(200), np.zeros(200))
    b = p.sample_rounds(np.random.default_rng([1, 0, 7]), 3, rounds, np.arange(200), np.zeros(200))
    np.testing.assert_array_equal(a, b)
    per_seq = a.reshape(200, 300).mean(axis=1)
    assert per_seq.std() > 0.3  # sequences differ far beyond round noise (~0.06)
    # a sequence keeps its rate across calls of one replica; other replicas draw other rates
    r = np.random.default_rng([1, 0, 7])
    assert np.array_equal(p.sequence_rates(r, [3, 4]), p.sequence_rates(r, [3, 4]))
    assert not np.allclose(p.sequence_rates(np.random.default_rng([1, 1, 7]), np.arange(8)),
                           p.sequence_rates(np.random.default_rng([1, 0, 7]), np.arange(8)))


def test_response_decay_lowers_late_acceptance():
    p = VariableAcceptancePolicy(BASE, response_decay=0.1, reference_k=3, preserve_mean=False)
    rng = np.random.default_rng(0)
    early = p.sample_rounds(rng, 3, np.full(100, 200), np.arange(100), np.zeros(100)).mean()
    late = p.sample_rounds(rng, 3, np.full(100, 200), np.arange(100), np.full(100, 8000)).mean()
    assert early == pytest.approx(2.77, rel=0.05)  # positions 0..~550: close to the base
    assert late < early - 0.3


def test_no_variation_is_the_base_distribution():
    p = VariableAcceptancePolicy(BASE, reference_k=3)
    adv = p.sample_rounds(np.random.default_rng(0), 3, np.full(50, 2000), np.arange(50), np.zeros(50))
    assert adv.mean() == pytest.approx(2.77, rel=0.01)
    assert isinstance(p, SpecPolicy)


def test_bad_variation_parameters():
    with pytest.raises(ConfigurationError, match="0 <= s < 1"):
        VariableAcceptancePolicy(BASE, acceptance_spread=1.0)
    with pytest.raises(ConfigurationError, match="cannot keep the mean"):
        VariableAcceptancePolicy(AcceptanceModel.from_acceptance_length(3, 3.9), response_decay=0.5, reference_k=3,
                                 reference_lengths=np.full(100, 8000))


def test_variation_in_a_projection():
    a = project_scenario(workload="rl-zero-8b", calibration="roofline", options={"acceptance_spread": 0.2})
    b = project_scenario(workload="rl-zero-8b", calibration="roofline", options={"acceptance_spread": 0.2})
    base = project_scenario(workload="rl-zero-8b", calibration="roofline")
    assert a.speculative.step_s == b.speculative.step_s  # seeded
    assert a.acceptance_length_realized == pytest.approx(3.32, rel=0.03)  # mean kept
    # unpredictable sequences in the long tail make the rollout slower at the same mean AL
    assert a.speculative.phases_s["generation"] > base.speculative.phases_s["generation"]
    res = runner.invoke(app, ["project", "--workload", "rl-zero-8b", "--acceptance-spread", "0.2",
                              "--acceptance-response-decay", "0.02", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["scenario"]["options"] == {"acceptance_spread": 0.2,
                                                             "acceptance_response_decay": 0.02}


def test_cli_draft_quality_decay():
    def al(*extra):
        res = runner.invoke(app, ["project", "--workload", "rl-zero-8b", "--k", "3", "--draft-quality", "0.8", *extra,
                                  "--json"])
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout)["acceptance_length"]

    assert al("--draft-quality-decay", "0.9") == pytest.approx(1 + 0.8 + 0.8 ** 2 * 0.9 + 0.8 ** 3 * 0.9 ** 3)
    assert al() == pytest.approx(1 + 0.8 + 0.64 + 0.512)
    bad = runner.invoke(app, ["project", "--workload", "rl-zero-8b", "--draft-quality-decay", "0.9"])
    assert bad.exit_code == 2 and "give --draft-quality too" in bad.output
