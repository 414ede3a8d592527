"""Engine profiles: each mechanism changes the cost exactly where it applies, and nowhere else.

An ideal and a vLLM projection of the same scenario must differ where a mechanism applies and agree where
none does (issue: engine profiles). The profiles are catalog data (engine_profiles/*.yaml); the mechanisms'
costs come from calibration/h200/engine.csv (measured) and FlashInfer's own tile cost model.
"""

import json

import numpy as np
import pytest

from rlsim.catalog import EngineConfig, GenerationParallelism, load_engine, load_hardware, load_model
from rlsim.costmodel import IterationBatch, IterationCostModel, replica_layout
from rlsim.costmodel.iteration import EAGER, FULL, PIECEWISE, vllm_capture_sizes
from rlsim.costmodel.select import get_timer
from rlsim.speculation import resolve_drafter

M = load_model("qwen3-8b")
GB200 = load_hardware("gb200-nvl72")
H200 = load_hardware("h200-sxm")


def _profile(**fields):
    """The ideal engine's fields on the vLLM code path, with ``fields`` switched to vLLM 0.17.1's."""
    ideal, vllm = load_engine("ideal"), load_engine("vllm-0.17.1")
    d = ideal.model_dump()
    d.update(name="test", engine="vllm", version="test")
    for k in fields:
        d[k] = getattr(vllm, k).model_dump() if hasattr(getattr(vllm, k), "model_dump") else getattr(vllm, k)
        if k in vllm.sources:
            d["sources"] = {**d["sources"], k: vllm.sources[k]}
    d.update({k: v for k, v in fields.items() if v is not True})
    return type(vllm).model_validate(d)


def _cost(hw=GB200, k=3, engine=None, tp=1, method="eagle3", max_num_seqs=1024):
    layout = replica_layout(M, GenerationParallelism(tensor_parallel_size=tp))
    d = resolve_drafter(M, method) if (k > 0 and method != "none") else None
    return IterationCostModel(M, hw, layout, get_timer(hw, "auto"), method=d.method if d else "none",
                              draft=d.network if d else None, engine=engine,
                              engine_config=EngineConfig(max_num_seqs=max_num_seqs), configured_k=k)


def _batch(B, k, ctx=2000.0, prefill=0.0):
    B = np.atleast_1d(np.asarray(B, float))
    return IterationBatch(n_decode=B, k=np.full(B.shape, k), decode_kv_tokens=B * ctx,
                          n_prefill_tokens=np.full(B.shape, prefill), n_prefill_seqs=np.full(B.shape, 1.0 if prefill else 0.0),
                          prefill_kv_tokens=np.full(B.shape, prefill), prefill_qk_pairs=np.full(B.shape, prefill * prefill / 2))


B_GRID = [1, 16, 64, 128, 256]


@pytest.mark.parametrize("hw", [GB200, H200], ids=["gb200", "h200"])
@pytest.mark.parametrize("k", [0, 3])
def test_profile_with_ideal_mechanisms_is_the_ideal_engine(hw, k):
    ideal = _cost(hw, k).iteration_time_s(_batch(B_GRID, k))
    same = _cost(hw, k, engine=_profile()).iteration_time_s(_batch(B_GRID, k))
    np.testing.assert_allclose(same, ideal, rtol=1e-12)


def test_verify_tile_applies_on_blackwell_with_speculation_only():
    prof = _profile(verify_attention_blackwell=True, trtllm_tile_cost=True)
    for hw, k, differs in ((GB200, 3, True), (GB200, 0, False), (H200, 3, False)):
        a = _cost(hw, k).breakdown(_batch(B_GRID, k))["attention"]
        b = _cost(hw, k, engine=prof).breakdown(_batch(B_GRID, k))["attention"]
        if differs:
            assert np.all(b > a * 1.05), (hw.name, k, a, b)
        else:
            np.testing.assert_allclose(b, a, rtol=1e-12)


def test_tile_factor_follows_flashinfer_cost_model():
    cm = _cost(GB200, 3, engine=load_engine("vllm-0.17.1"))
    # Qwen3-8B: 4 query heads per KV head -> AR tile 8; k = 3: 16 rows -> tile 16; k = 5, 7: tile 32
    assert cm._trtllm_factor(1.0) == pytest.approx(1.0)
    assert cm._trtllm_factor(4.0) == pytest.approx(1.2)
    assert cm._trtllm_factor(6.0) == pytest.approx(1.48)
    assert cm._trtllm_factor(8.0) == pytest.approx(1.48)


@pytest.mark.parametrize("k,largest_graphed", [(3, 128), (5, 83), (7, 64), (0, 512)])
def test_vllm_capture_limit_in_sequences(k, largest_graphed):
    """vLLM 0.17.1 graphs a verify step only up to 128 / 83 / 64 sequences for k = 3 / 5 / 7 (reference)."""
    cm = _cost(H200, k, engine=load_engine("vllm-0.17.1"))
    modes = cm.breakdown(_batch([largest_graphed, largest_graphed + 1], k))["graph"]
    assert list(modes) == [FULL, EAGER]
    ideal_modes = _cost(H200, k).breakdown(_batch([largest_graphed, largest_graphed + 1], k))["graph"]
    assert ideal_modes[0] == FULL  # the ideal engine graphs up to the GPU's own limit (512 tokens on H200)


def test_capture_sizes_are_vllms():
    s = vllm_capture_sizes(512, 5)
    assert s[0] == 6 and s[-1] == 498 and np.all(s % 6 == 0)
    assert list(vllm_capture_sizes(512, 0)[:5]) == [1, 2, 4, 8, 16]


def test_prefill_in_a_step_makes_it_piecewise():
    cm = _cost(H200, 3, engine=load_engine("vllm-0.17.1"))
    assert cm.breakdown(_batch([16], 3, prefill=64.0))["graph"][0] == PIECEWISE
    assert cm.breakdown(_batch([16], 3))["graph"][0] == FULL


def test_vllm_sampler_costs_more_than_the_fused_one():
    a = _cost(GB200, 3).breakdown(_batch(B_GRID, 3))["sampling"]
    b = _cost(GB200, 3, engine=_profile(sampler=True)).breakdown(_batch(B_GRID, 3))["sampling"]
    assert np.all(b > 1.5 * a)


def test_full_vocab_draft_choice_only_for_reduced_vocab_drafts():
    prof = _profile(draft_token_choice=True)
    a = _cost(GB200, 3).breakdown(_batch(B_GRID, 3))["draft"]
    b = _cost(GB200, 3, engine=prof).breakdown(_batch(B_GRID, 3))["draft"]
    assert np.all(b > a)
    # a draft model with the target's own vocabulary has nothing to scatter
    d = load_model("qwen3-0.6b")
    assert d.vocab_size == M.vocab_size


def test_async_scheduling_rule():
    v = load_engine("vllm-0.17.1")
    assert _cost(H200, 3, engine=v).async_scheduling
    assert not _cost(H200, 3, engine=v, tp=2).async_scheduling  # Ray executor under NeMo-RL
    assert not _cost(H200, 3, engine=v, method="ngram").async_scheduling


def test_exposed_host_is_zero_when_the_gpu_hides_it_and_positive_without_async():
    v = load_engine("vllm-0.17.1")
    on = _cost(H200, 3, engine=v).breakdown(_batch([256], 3, ctx=8000.0))
    assert on["exposed_host"][0] == pytest.approx(0.0, abs=1e-12)
    off = _cost(H200, 3, engine=v, tp=2).breakdown(_batch([256], 3, ctx=8000.0))
    assert off["exposed_host"][0] > 0


def test_decode_segment_matches_breakdown_under_vllm():
    cm = _cost(GB200, 3, engine=load_engine("vllm-0.17.1"))
    kv = np.array([64 * 1000.0, 64 * 1004.0, 64 * 1008.0])
    seg = cm.decode_segment_time_s(64, 3, kv)
    full = cm.iteration_time_s(IterationBatch(n_decode=np.full(3, 64.0), k=np.full(3, 3), decode_kv_tokens=kv))
    np.testing.assert_allclose(seg, full, rtol=1e-9)
    it = cm.decode_iterations_time_s(np.array([64, 64, 64]), 3, kv, stride=1)
    np.testing.assert_allclose(it, full, rtol=1e-9)


def test_projection_differs_between_engines_and_reports_engine():
    from rlsim import project_scenario

    kw = dict(workload="rl-zero-8b", gpus=8, num_prompts_per_step=16)
    ideal = project_scenario(engine="ideal", **kw)
    vllm = project_scenario(**kw)
    assert vllm.scenario["engine"] == "vllm-0.17.1" and ideal.scenario["engine"] == "ideal"
    assert vllm.speedup["generation"] < ideal.speedup["generation"]
    json.dumps(vllm.to_dict())


def test_iteration_json_has_round_parts():
    from typer.testing import CliRunner

    from rlsim.cli import app

    r = CliRunner().invoke(app, ["iteration", "--model", "qwen3-8b", "--batch", "64", "--context", "2000", "--k", "3",
                                 "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    parts = d["round"]
    for key in ("target_forward_s", "draft_s", "sampler_s", "host_s", "exposed_host_s", "graph_mode"):
        assert key in parts
    assert d["engine"] == "vllm-0.17.1" and parts["graph_mode"] == "full"
    assert parts["total_s"] == pytest.approx(d["time_s"])


@pytest.mark.parametrize("tp", [1, 2])
def test_host_launch_term_follows_the_graph_mode(tp):
    """A FULL step launches one graph replay; an eager step every kernel (the per-step host work is separate)."""
    cm = _cost(H200, 3, engine=load_engine("vllm-0.17.1"), tp=tp)
    b = _batch([16.0, 256.0], 3)
    p = cm.breakdown(b)
    assert list(p["graph"]) == [FULL, EAGER]
    samp_dev, samp_host = cm._engine_sampler_s(b, b.k)
    draft_host = cm._draft_host_s(b.n_decode / cm.dp, b.k, b.n_decode * 4 / cm.dp)
    replay = cm._replay_host_s()
    launch = p["host_in"] - samp_host - draft_host
    assert launch[0] == pytest.approx(replay, rel=1e-9)
    # above the capture size the step still runs vLLM's compiled forward: every kernel at the bare launch cost
    assert launch[1] == pytest.approx(p["n_kernels"][1] * cm.timer.latency["eager_launch_s"], rel=1e-9)
    # enforce_eager runs the plain modules: every kernel at the eager forward's host cost per kernel
    # (calibration/h200 overhead.csv eager_forward, 23 us, one eager step measured alone), drafter included
    ce = _cost(H200, 3, engine=load_engine("vllm-0.17.1"), tp=tp)
    ce.enforce_eager = True
    pe = ce.breakdown(b)
    assert list(pe["graph"]) == [EAGER, EAGER]
    assert ce.timer.latency["eager_forward_launch_s"] > 3 * ce.timer.latency["eager_launch_s"]
    _, samp_host_e = ce._engine_sampler_s(b, b.k)
    draft_host_e = ce._draft_host_s(b.n_decode / ce.dp, b.k, b.n_decode * 4 / ce.dp)
    launch_e = pe["host_in"] - samp_host_e - draft_host_e
    assert launch_e == pytest.approx(pe["n_kernels"] * ce.timer.latency["eager_forward_launch_s"], rel=1e-9)
    assert (draft_host_e > draft_host).all()  # the draft passes are eager too
