"""Issue 20: the SGLang engine profile, long context (rope scaling, KV pressure), prefill/decode disaggregation and
multi-turn rollouts. Small scenarios; each assertion is one that a wrong mechanism would fail."""

import numpy as np
import pytest

from rlsim import project_scenario
from rlsim.catalog import EngineConfig, GenerationParallelism, load_engine, load_hardware, load_model
from rlsim.catalog.engines import engine_for_backend
from rlsim.costmodel import IterationBatch, IterationCostModel, replica_layout
from rlsim.costmodel.iteration import EAGER, FULL
from rlsim.costmodel.select import get_timer
from rlsim.costmodel.sglang import capture_batch_sizes, chunked_prefill_size, cuda_graph_max_bs
from rlsim.engine.disagg import DisaggConfig, PrefillServer
from rlsim.errors import ConfigurationError, RlsimError
from rlsim.speculation import resolve_drafter

M = load_model("qwen3-8b")
H200, GB200 = load_hardware("h200-sxm"), load_hardware("gb200-nvl72")
SGL, VLLM = load_engine("sglang-0.5.6"), load_engine("vllm-0.17.1")


def _cost(engine, k=3, hw=H200, tp=1, max_num_seqs=1024, al=None):
    layout = replica_layout(M, GenerationParallelism(tensor_parallel_size=tp))
    d = resolve_drafter(M, "eagle3") if k else None
    return IterationCostModel(M, hw, layout, get_timer(hw, "auto"), method=d.method if d else "none",
                              draft=d.network if d else None, engine=engine,
                              engine_config=EngineConfig(max_num_seqs=max_num_seqs), configured_k=k,
                              expected_acceptance_length=al)


def _b(B, k, ctx=2048.0, prefill=0.0):
    return IterationBatch(n_decode=[B], k=[k], decode_kv_tokens=[B * ctx], n_prefill_tokens=[prefill],
                          n_prefill_seqs=[1.0 if prefill else 0.0], prefill_kv_tokens=[prefill],
                          prefill_qk_pairs=[prefill * prefill / 2])


# ------------------------------------------------------------------------------------ SGLang profile
def test_backend_mapping():
    assert engine_for_backend("sglang") == "sglang-0.5.6"
    assert engine_for_backend("SGLang", framework="nemo-rl") == "sglang-0.5.6-nemo-rl"
    assert engine_for_backend("vllm", framework="nemo-rl") == "vllm-0.17.1"
    for bad in ("trtllm", "hf"):
        with pytest.raises(ConfigurationError, match="no engine profile"):
            engine_for_backend(bad)
    with pytest.raises(ConfigurationError, match="framework"):
        engine_for_backend("sglang", framework="slime")


def test_sglang_graph_limits_follow_server_args():
    # server_args.py:701-808: H200 (< 160 GiB) 256 at TP < 4, 512 at TP >= 4; GB200 (>= 160 GiB) 512
    t = SGL.graphs.max_capture_batch
    assert cuda_graph_max_bs(t, H200.hbm_capacity_bytes, 1) == 256
    assert cuda_graph_max_bs(t, H200.hbm_capacity_bytes, 8) == 512
    assert cuda_graph_max_bs(t, GB200.hbm_capacity_bytes, 1) == 512
    assert cuda_graph_max_bs(t, load_hardware("h100-sxm").hbm_capacity_bytes, 1) == 256
    assert chunked_prefill_size(H200.hbm_capacity_bytes) == 8192 and chunked_prefill_size(GB200.hbm_capacity_bytes) == 16384
    spec = capture_batch_sizes(256, True)
    assert spec[:9].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 10] and spec[-1] == 256
    assert capture_batch_sizes(256, True, pool_size=48)[-1] == 48  # the request pool caps (and adds) the size


def test_sglang_graphs_by_batch_not_tokens():
    """vLLM 0.17.1 graphs a k = 3 verify only up to 128 sequences (512 tokens); SGLang up to 256 requests."""
    s, v = _cost(SGL), _cost(VLLM)
    assert s.breakdown(_b(200, 3))["graph"][0] == FULL
    assert v.breakdown(_b(200, 3))["graph"][0] == EAGER
    assert s.breakdown(_b(300, 3))["graph"][0] == EAGER  # above cuda_graph_max_bs: no graph
    assert s.breakdown(_b(16, 3, prefill=512.0))["graph"][0] == EAGER  # an extend batch: no graph


def test_sglang_overlap_off_with_eagle_on_without():
    ar, sp = _cost(SGL, k=0), _cost(SGL, k=3)
    assert ar.async_scheduling and not sp.async_scheduling
    assert float(sp.breakdown(_b(64, 3))["exposed_host"][0]) > 0
    assert float(ar.breakdown(_b(64, 0))["exposed_host"][0]) == 0
    assert _cost(SGL, k=0, tp=4).async_scheduling  # SGLang's TP ranks are its own processes: overlap stays on


def test_sglang_sampler_logprobs_scale_with_acceptance_only():
    """SGLang computes log-probs of the accepted rows only: the sampler's cost grows with AL; vLLM's does not."""
    lo, hi = _cost(SGL, al=1.0), _cost(SGL, al=4.0)
    assert float(hi.breakdown(_b(128, 3))["sampling"][0]) > float(lo.breakdown(_b(128, 3))["sampling"][0])
    vlo = _cost(VLLM, al=1.0).breakdown(_b(128, 3))["sampling"][0]
    vhi = _cost(VLLM, al=4.0).breakdown(_b(128, 3))["sampling"][0]
    assert float(vlo) == float(vhi)


def test_nemo_rl_variant_caps_running_requests_under_speculation():
    e = load_engine("sglang-0.5.6-nemo-rl")
    assert _cost(e, k=3).max_running_requests() == 48
    assert _cost(e, k=0).max_running_requests() == 1024
    assert _cost(SGL, k=3).max_running_requests() == 1024


def test_vllm_profiles_unchanged_by_new_mechanisms():
    for name in ("vllm-0.17.1", "vllm-fixed", "ideal"):
        e = load_engine(name)
        assert e.prefill_mixing == "mixed" and e.prefill_chunk_tokens == "workload"
        assert e.speculative_max_running_requests is None and e.draft_extend == "first_pass"


def test_sglang_projection_prefill_alone_and_runs():
    r = project_scenario(workload="rl-zero-8b", gpus=2, num_prompts_per_step=8, num_generations_per_prompt=4,
                         engine="sglang-0.5.6", max_new_tokens=512, response_median_tokens=200.0)
    assert r.scenario["engine"] == "sglang-0.5.6"
    assert r.speedup["generation"] > 1.0
    assert any("sglang-0.5.6" in n for n in r.notes)


# ------------------------------------------------------------------------------------ long context
def test_rope_scaling_catalogued_and_lengths_beyond_refused():
    assert M.max_context_tokens() == 40960 and M.max_context_tokens("yarn") == 131072
    with pytest.raises(RlsimError, match="40,960.*YaRN"):
        project_scenario(workload="rl-think-8b", max_new_tokens=65536)
    with pytest.raises(RlsimError, match="even with YaRN"):
        project_scenario(workload="rl-think-8b-64k", max_new_tokens=131072)
    with pytest.raises(RlsimError, match="no rope scaling"):
        project_scenario(workload="rl-llama-8b", rope_scaling="yarn")


def test_long_responses_preempt_under_kv_pressure():
    """At 64K-token responses one H200 holds a handful of sequences: preemptions appear, and the realised
    acceptance is still the draft's (recompute keeps the tokens)."""
    # 2 GPUs: one H200 cannot train Qwen3-8B on 60K-token sequences (costmodel/training_memory.py)
    r = project_scenario(workload="rl-think-8b-64k", hardware="h200-sxm", gpus=2, num_prompts_per_step=2,
                         num_generations_per_prompt=16, response_sigma=0.0, response_median_tokens=60000.0,
                         max_new_tokens=60000)
    b, s = r.baseline.generation, r.speculative.generation
    assert b.kv_capacity_tokens_per_replica < 16 * 60000
    assert b.preemptions > 0 and s.preemptions > 0
    assert abs(r.acceptance_length_realized - r.acceptance_length) < 0.05


# ------------------------------------------------------------------------------------ disaggregation
def _server(transfer, gbps=400.0, latency_ms=0.0):
    cfg = DisaggConfig(1, 1, gbps * 1e9 / 8, latency_ms / 1e3, transfer, 8192)
    return PrefillServer(_cost(VLLM, k=0), 8192, 150_000.0, cfg, M.num_hidden_layers)


def test_kv_transfer_modes_order():
    """The same 32K-token prompt: layer-wise streaming delivers no later than per-chunk, per-chunk no later than
    after the whole prefill; the latency adds once; bytes are tokens x KV bytes per GPU / bandwidth."""
    ready = {}
    for mode in ("after_prefill", "per_chunk", "layerwise"):
        s = _server(mode, gbps=100.0)
        s.submit(0, 0.0, 32768)
        s.advance()
        ready[mode] = s.ready[0] - s.prefill_end[0]
    assert ready["layerwise"] <= ready["per_chunk"] <= ready["after_prefill"]
    assert ready["after_prefill"] == pytest.approx(32768 * 150_000.0 / (100e9 / 8), rel=1e-9)
    s = _server("after_prefill", gbps=100.0, latency_ms=10.0)
    s.submit(0, 0.0, 32768)
    s.advance()
    assert s.ready[0] - s.prefill_end[0] == pytest.approx(ready["after_prefill"] + 0.010, rel=1e-9)


def test_disaggregated_run_decodes_only_and_slow_link_costs():
    base = dict(workload="rl-think-8b", hardware="h200-sxm", gpus=4, num_prompts_per_step=4, num_generations_per_prompt=4,
                max_new_tokens=256, response_median_tokens=256.0, response_sigma=0.0,
                prompt_length={"distribution": "fixed", "median_tokens": 4096.0, "min_tokens": 1, "max_tokens": 4096})
    fast = project_scenario(**base, options={"prefill_gpus": 1, "kv_link_gbps": 3600.0})
    slow = project_scenario(**base, options={"prefill_gpus": 1, "kv_link_gbps": 1.0, "kv_link_latency_ms": 50.0})
    ro = fast.speculative.extra["rollout"]
    assert ro["prefill_replicas"] == 1 and ro["decode_replicas"] == 3
    assert fast.speculative.generation.prefill_time_s == 0.0  # decode replicas never prefill
    assert slow.baseline.phases_s["generation"] > fast.baseline.phases_s["generation"] + 0.05
    # tokens are the same with and without the pool (lossless, same lengths)
    plain = project_scenario(**base)
    assert plain.baseline.generation.tokens_generated == fast.baseline.generation.tokens_generated


def test_multi_turn_prefills_tool_outputs_and_trains_on_all_turns():
    base = dict(workload="rl-think-8b", hardware="h200-sxm", gpus=2, num_prompts_per_step=2, num_generations_per_prompt=4,
                max_new_tokens=128, response_median_tokens=128.0, response_sigma=0.0)
    one = project_scenario(**base)
    three = project_scenario(**base, options={"turns": 3, "tool_latency_s": 1.0, "tool_output_tokens": 64.0})
    assert three.baseline.generation.tokens_generated == 3 * one.baseline.generation.tokens_generated
    assert three.baseline.phases_s["generation"] > one.baseline.phases_s["generation"] + 2.0  # two tool calls
    assert three.baseline.phases_s["training"] > one.baseline.phases_s["training"]


@pytest.mark.parametrize("opts, match", [
    ({"kv_link_gbps": 100.0}, "--kv-link-gbps.*--prefill-gpus"),
    ({"prefill_gpus": 1, "kv_link_gbps": 0.0}, "--kv-link-gbps"),
    ({"prefill_gpus": 1, "kv_link_latency_ms": -1.0}, "--kv-link-latency-ms"),
    ({"prefill_gpus": 0}, "--prefill-gpus"),
    ({"prefill_gpus": 2}, "--prefill-gpus = 2.*below the 2 generation GPUs"),
    ({"turns": 65}, "--turns"),
    ({"turns": 2}, "--tool-output-tokens"),
    ({"tool_latency_s": 1.0}, "one turn"),
])
def test_bad_disaggregation_and_turn_options_refused(opts, match):
    with pytest.raises(RlsimError, match=match):
        project_scenario(workload="rl-zero-8b", gpus=2, num_prompts_per_step=2, num_generations_per_prompt=2,
                         max_new_tokens=64, options=opts)


def test_prefill_pool_with_lag_refused():
    with pytest.raises(RlsimError, match="synchronous steps only"):
        project_scenario(workload="rl-zero-8b", gpus=4, lag=1, gen_gpus=2, train_gpus=2, num_prompts_per_step=2,
                         num_generations_per_prompt=2, max_new_tokens=64, options={"prefill_gpus": 1})
