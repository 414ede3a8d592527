"""Draft trees (issue 19): shapes, the per-depth per-rank acceptance model, verification semantics, pricing per
engine, the engine's rounds, MTP pricing, optimize-k --tree, sweeps, and the one-line refusals."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from rlsim.catalog import EngineConfig, GenerationParallelism, load_draft, load_engine, load_hardware, load_model
from rlsim.costmodel import IterationBatch, IterationCostModel, replica_layout
from rlsim.costmodel.select import get_timer
from rlsim.errors import ConfigurationError
from rlsim.cli import app
from rlsim.speculation import AcceptanceModel
from rlsim.speculation.trees import (DraftTree, RankAcceptance, build_tree, chain_tree, check_sglang_params,
                                     merge_independent, parse_acceptance_table, parse_token_tree, path_survival,
                                     retrieval_model, sglang_tree, tree_acceptance)

runner = CliRunner()
BIN2 = "[(0,), (1,), (0, 0), (0, 1), (1, 0), (1, 1)]"  # a full binary tree of depth 2


# ------------------------------------------------------------------------------------------------ shapes
def test_token_tree_parsed_sorted_and_checked_as_vllm_needs_it():
    assert parse_token_tree("[(0, 0), (1,), (0,), (1, 0)]") == ((0,), (1,), (0, 0), (1, 0))
    for bad, why in (("[(0,), (0, 0), (0, 0)]", "twice"), ("[(0, 0)]", "no parent"), ("[(0,), (2,)]", "ranks"),
                     ("[(0,), (1,), (0, 0)]", "same number"), ("[(0,)", "not a Python literal"), ("[]", "non-empty"),
                     ("[(0, -1)]", "ranks"), ("[(True,)]", "ranks")):
        with pytest.raises(ConfigurationError, match=why):
            parse_token_tree(bad)


def test_sglang_parameters_follow_sglang():
    assert check_sglang_params(3, 1, None) == 4
    assert check_sglang_params(5, 4, 16) == 16
    with pytest.raises(ConfigurationError, match="allowed: 4"):  # topk 1: a chain of steps + 1 tokens
        check_sglang_params(3, 1, 8)
    with pytest.raises(ConfigurationError, match="allowed: 2..7"):  # 2 steps of top-2: 2 + 4 candidates + root
        check_sglang_params(2, 2, 8)
    with pytest.raises(ConfigurationError, match="needs --speculative-num-draft-tokens"):
        check_sglang_params(3, 4, None)


def test_sglang_tree_is_a_tree_of_the_requested_size():
    acc = RankAcceptance((0.8, 0.7, 0.6, 0.5, 0.5), 0.7)
    t = sglang_tree(5, 4, 16, acc)
    assert t.n_nodes == 15 and t.engine_k == 15 and t.depth <= 5
    assert all(len(n) == 1 or n[:-1] in set(t.nodes) for n in t.nodes)
    assert max(n[-1] for n in t.nodes) < 4  # ranks within topk
    assert sglang_tree(4, 1, 5, acc).is_chain


# ------------------------------------------------------------------------------------------------ acceptance
def test_chain_shaped_tree_accepts_as_the_chain():
    chain = AcceptanceModel.from_acceptance_length(3, 3.32)
    acc = RankAcceptance(chain.conditional_rates, 0.7)
    assert tree_acceptance(chain_tree(3), acc).acceptance_length == pytest.approx(3.32, rel=1e-12)


def test_rank_decay_model_by_hand():
    acc = RankAcceptance((0.6,), 0.5)
    assert acc.p(1, 0) == 0.6 and acc.p(1, 1) == pytest.approx(0.4 * 0.5) and acc.p(1, 2) == pytest.approx(0.4 * 0.25)
    # a full binary tree of depth 2: P(path >= 1) = 0.6 + 0.2, P(path >= 2) = 0.8 * 0.8
    s = path_survival(build_tree(token_tree=BIN2, acc=acc), acc)
    assert s == pytest.approx([0.8, 0.64])
    # mu = 0: rank 1 catches every miss of rank 0, so a full binary tree always accepts its whole depth
    perfect = RankAcceptance((0.6,), 0.0)
    assert tree_acceptance(build_tree(token_tree=BIN2, acc=perfect), perfect).acceptance_length == pytest.approx(3.0)


def test_vllm_chain_verification_stops_at_the_first_branching():
    acc = RankAcceptance((0.9,), 0.5)
    t = build_tree(token_tree=BIN2, acc=acc)
    assert tree_acceptance(t, acc, "chain").acceptance_length == pytest.approx(1.9)  # only (0,) can be accepted
    assert tree_acceptance(t, acc, "tree").acceptance_length > 2.5
    bundle = build_tree(token_tree="[(0,), (0, 0), (0, 0, 0)]", acc=acc)  # one node per level: a chain
    assert tree_acceptance(bundle, acc, "chain").acceptance_length == pytest.approx(1 + 0.9 + 0.81 + 0.729)


def test_acceptance_table_and_retrieval_merge():
    table = parse_acceptance_table("[[0.5, 0.3], [0.4]]")
    acc = RankAcceptance(table=table)
    assert acc.p(1, 1) == 0.3 and acc.p(2, 1) == 0.0 and acc.p(3, 0) == 0.4  # deeper rows repeat the last one
    with pytest.raises(ConfigurationError, match="at most 1"):
        parse_acceptance_table("[[0.7, 0.4]]")
    a = AcceptanceModel((0.5, 0.5))
    r = retrieval_model(3, 1.5)
    m = merge_independent(a, r)
    sa, sr = a.unconditional_rates, r.unconditional_rates
    assert m.k == 3
    assert m.unconditional_rates[0] == pytest.approx(1 - (1 - sa[0]) * (1 - sr[0]))
    assert m.unconditional_rates[2] == pytest.approx(sr[2])
    assert m.acceptance_length > max(a.acceptance_length, r.acceptance_length)


# ------------------------------------------------------------------------------------------------ pricing
def _cost(engine="ideal", hardware="h200-sxm", tree=None, k=3, model="qwen3-8b", method="eagle3", tp=1, draft=None):
    m, hw = load_model(model), load_hardware(hardware)
    eng = load_engine(engine)
    if draft is None:
        draft = load_draft(m.drafts["eagle3"]) if method == "eagle3" else (m if method == "mtp" else None)
    return IterationCostModel(m, hw, replica_layout(m, GenerationParallelism(tensor_parallel_size=tp)),
                              get_timer(hw, "auto"), method=method, draft=draft,
                              engine=None if eng.engine == "ideal" else eng, engine_config=EngineConfig(max_num_seqs=256),
                              configured_k=tree.engine_k if tree else k, tree=tree)


def _batch(B, k, ctx=2048):
    B = np.atleast_1d(np.asarray(B, float))
    return IterationBatch(n_decode=B, k=np.full(B.shape, float(k)), decode_kv_tokens=B * ctx)


def test_chain_shaped_static_tree_costs_exactly_the_chain_on_the_ideal_engine():
    B = [1, 8, 64, 256]
    chain = _cost("ideal").iteration_time_s(_batch(B, 3))
    tree = _cost("ideal", tree=chain_tree(3)).iteration_time_s(_batch(B, 3))
    np.testing.assert_allclose(tree, chain, rtol=1e-12)


@pytest.mark.parametrize("engine,tree_text,retrieval", [("ideal", BIN2, 0), ("vllm-0.17.1", BIN2, 0),
                                                       ("ideal", "[(0,), (0, 0)]", 3)])
def test_tree_segment_fast_path_equals_the_full_breakdown(engine, tree_text, retrieval):
    acc = RankAcceptance((0.8,), 0.7)
    t = build_tree(token_tree=tree_text, acc=acc, retrieval_tokens=retrieval)
    cm = _cost(engine, tree=t)
    kv = np.array([1000.0, 5000.0, 20000.0]) * 16
    full = cm.iteration_time_s(IterationBatch(n_decode=np.full(3, 16.0), k=np.full(3, float(t.engine_k)),
                                              decode_kv_tokens=kv))
    seg = cm.decode_segment_time_s(16, t.engine_k, kv)
    np.testing.assert_allclose(seg, full, rtol=1e-9)
    many = cm.decode_iterations_time_s(np.array([16, 16, 8, 8]), t.engine_k, np.array([1e4, 2e4, 1e4, 2e4]), stride=1)
    ref = cm.iteration_time_s(IterationBatch(n_decode=np.array([16., 16, 8, 8]), k=np.full(4, float(t.engine_k)),
                                             decode_kv_tokens=np.array([1e4, 2e4, 1e4, 2e4])))
    np.testing.assert_allclose(many, ref, rtol=1e-9)


def test_vllm_tree_runs_piecewise_on_the_triton_kernel_and_drafts_cumulatively():
    acc = RankAcceptance((0.8,), 0.7)
    t = build_tree(token_tree=BIN2, acc=acc)  # 7 verified tokens per sequence
    vl = _cost("vllm-0.17.1", tree=t)
    assert vl._tree_block_q == 4  # Qwen3-8B at TP 1: 32 query heads / 8 KV heads, BLOCK_M 16
    b = _batch(64, t.engine_k)
    assert vl.round_parts(b)["graph_mode"][0] == "piecewise"
    chain6 = _cost("vllm-0.17.1", k=6)  # the same 7 tokens per sequence as a chain (FlashAttention verify)
    assert chain6.round_parts(_batch(64, 6))["graph_mode"][0] == "full"
    att_tree = vl._target_decode_attention_s(64.0, 7.0, 64 * 2048.0, 36, vl.model)
    att_chain = chain6._target_decode_attention_s(64.0, 7.0, 64 * 2048.0, 36, chain6.model)
    assert att_tree > 1.5 * att_chain  # two query blocks of 4 tokens: the KV is streamed twice
    # vLLM re-runs every drafted token at each level: more draft tokens than drafting only the new ones
    assert vl.tree_passes == [(2.0, 2.0)]
    new_tok = dataclasses.replace(vl, engine=vl.engine.model_copy(update={"tree_drafting": "new_tokens"}))
    assert new_tok.tree_passes == [(2.0, 2.0)]  # level 1 holds all drafted tokens before level 2: equal here
    deep = build_tree(token_tree="[(0,), (1,), (0, 0), (1, 0), (0, 0, 0), (1, 0, 0)]", acc=acc)
    assert _cost("vllm-0.17.1", tree=deep).tree_passes == [(2.0, 2.0), (4.0, 2.0)]
    d_cum = _cost("vllm-0.17.1", tree=deep).breakdown(_batch(64, 6))["draft"]
    d_new = dataclasses.replace(_cost("vllm-0.17.1", tree=deep), engine=vl.engine.model_copy(
        update={"tree_drafting": "new_tokens"})).breakdown(_batch(64, 6))["draft"]
    assert d_cum[0] > d_new[0]


def test_sglang_tree_round_cost_grows_with_its_verified_tokens():
    acc = RankAcceptance((0.8,), 0.7)
    times = [_cost("ideal", tree=sglang_tree(5, 4, n, acc)).iteration_time_s(_batch(128, n - 1))[0] for n in (8, 16, 32, 64)]
    assert all(a < b for a, b in zip(times, times[1:]))
    # the draft passes run topk wide: 4 steps after the first, each over 4 tokens per sequence
    t = sglang_tree(5, 4, 16, acc)
    assert _cost("ideal", tree=t).tree_passes == [(4.0, 4.0)] * 4


def test_mtp_priced_as_vllm_runs_it():
    m = load_model("deepseek-v3")
    cm = _cost("ideal", hardware="h100-sxm", model="deepseek-v3", method="mtp", tp=8, k=1)
    assert cm._draft_net() == (1, True, m.vocab_size, 2)  # one MoE module per pass, the target's full vocabulary
    rows = np.array([64.0])
    full_vocab_head = cm.timer.gemm_s(rows, m.vocab_size, m.hidden_size, "bf16")
    head = cm._draft_head_s(rows, m.vocab_size)
    assert head < full_vocab_head  # the shared head is vocabulary-parallel over TP 8 (plus a gather)
    # chained: k = 3 runs the one module three times (two more passes than k = 1)
    k1 = cm.breakdown(_batch(64, 1))["draft"][0]
    k3 = _cost("ideal", hardware="h100-sxm", model="deepseek-v3", method="mtp", tp=8, k=3).breakdown(_batch(64, 3))["draft"][0]
    assert k3 > 1.5 * k1


# ------------------------------------------------------------------------------------------------ the engine
def test_tree_rounds_in_the_engine(tiny_workload):
    from rlsim import project_scenario
    from rlsim.pipeline import build_setup
    from rlsim.scenario import build_scenario

    sc = build_scenario(workload=tiny_workload, engine="ideal", speculative_num_steps=4, speculative_eagle_topk=2,
                        speculative_num_draft_tokens=8, num_prompts_per_step=16)
    setup = build_setup(sc)
    pol = setup.policy(True)
    assert pol.k(5) == 7 and setup.cost_spec.tree is not None and setup.cost_spec.configured_k == 7
    assert pol.at(7) is setup.acceptance and setup.acceptance.k == setup.tree.depth
    r = project_scenario(workload=tiny_workload, engine="ideal", speculative_num_steps=4, speculative_eagle_topk=2,
                         speculative_num_draft_tokens=8, num_prompts_per_step=16)
    assert r.scenario["tree"]["verified_tokens_per_sequence"] == 8
    assert r.acceptance_length_realized == pytest.approx(r.acceptance_length, rel=0.05)
    assert any("draft tree" in n and "assumption" in n for n in r.notes)
    # a chain-shaped tree is exactly the chain
    a = project_scenario(workload=tiny_workload, engine="ideal", speculative_num_steps=3)
    b = project_scenario(workload=tiny_workload, engine="ideal", k=3)
    assert a.speculative.step_s == b.speculative.step_s


def test_vllm_tree_pays_nothing_under_chain_verification(tiny_workload):
    from rlsim import project_scenario

    r = project_scenario(workload=tiny_workload, speculative_token_tree=BIN2)
    chain = AcceptanceModel.from_acceptance_length(3, 3.32)
    assert r.acceptance_length == pytest.approx(1 + chain.conditional_rates[0])
    w = project_scenario(workload=tiny_workload, speculative_token_tree=BIN2, tree_verification="tree")
    assert w.acceptance_length > 2.5


# ------------------------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize("argv,msg", [
    (["--speculative-eagle-topk", "4"], "needs --speculative-num-steps"),
    (["--speculative-num-steps", "5", "--speculative-eagle-topk", "4", "--speculative-num-draft-tokens", "16"],
     "drafts static trees only"),
    (["--speculative-num-steps", "3", "--speculative-token-tree", "[(0,)]"], "one of the two"),
    (["--engine", "ideal", "--speculative-num-steps", "3", "--k", "0"], "--k >= 1"),
    (["--engine", "ideal", "--speculative-num-steps", "3", "--drafter", "ngram", "--acceptance-length", "2"],
     "eagle3, mtp or draft-model"),
    (["--engine", "ideal", "--retrieval-tokens", "4"], "needs --retrieval-acceptance-length"),
    (["--retrieval-tokens", "4", "--retrieval-acceptance-length", "2"], "cannot merge"),
    (["--engine", "ideal", "--retrieval-acceptance-length", "2"], "would be ignored"),
    (["--engine", "ideal", "--tree-rank-decay", "0.5"], "would be ignored"),
    (["--engine", "ideal", "--speculative-num-steps", "3", "--speculative-eagle-topk", "2",
      "--speculative-num-draft-tokens", "5", "--tree-rank-decay", "1.5"], "--tree-rank-decay"),
    (["--engine", "ideal", "--speculative-num-steps", "99"], "allowed: 1..16"),
    (["--speculative-token-tree", "[(0,), (1,), (0, 0)]"], "same number"),
    (["--engine", "ideal", "--speculative-num-steps", "3", "--tree-verification", "maybe"], "allowed: tree, chain"),
    (["--engine", "ideal", "--speculative-num-steps", "3", "--speculative-eagle-topk", "2",
      "--speculative-num-draft-tokens", "5", "--acceptance-spread", "0.1"], "not modelled"),
    (["--engine", "ideal", "--speculative-num-steps", "3", "--speculative-eagle-topk", "2",
      "--speculative-num-draft-tokens", "5", "--steps", "2"], "--steps"),
])
def test_bad_tree_inputs_refused_in_one_line(tiny_workload, argv, msg):
    res = runner.invoke(app, ["project", "--workload", tiny_workload, *argv])
    assert res.exit_code == 2, res.output
    lines = [x for x in res.output.strip().splitlines() if x]
    assert len(lines) == 1 and lines[0].startswith("error:") and msg in lines[0], res.output


def test_mla_tree_refused_on_vllm():
    res = runner.invoke(app, ["project", "--model", "deepseek-v3", "--drafter", "mtp", "--k", "2",
                              "--speculative-token-tree", BIN2])
    assert res.exit_code == 2 and "MHA/GQA" in res.output


# ------------------------------------------------------------------------------------------------ optimiser, sweeps
@pytest.fixture(scope="module")
def small_workload(tmp_path_factory):
    from conftest import write_tiny_workload

    return write_tiny_workload(tmp_path_factory.mktemp("small") / "small.yaml", num_prompts_per_step=32)


def test_optimize_tree_finds_shapes_and_respects_the_memory_limit(small_workload):
    from rlsim.studies.optimize_k import optimize_tree

    res = optimize_tree(workload=small_workload, engine="ideal", steps_max=4, topks=(2, 4), draft_tokens=(8, 16))
    rows = res["by_batch"]
    assert len(rows) == 16 and rows[0]["chain"]["kind"] == "chain" and rows[0]["tree"]["kind"] == "sglang"
    assert {"chain", "tree"} <= set(res["best_fixed"]) and res["best_fixed"]["tree"]["generation_s"] > 0
    x = res["crossover_batch"]
    for r in rows:  # the crossover is where the best tree stops beating the best chain
        if x is not None and r["batch"] >= x:
            assert r["tree_over_chain"] <= 1.0
    # a memory limit that leaves KV for a few hundred tokens: the big trees no longer fit at the larger batches
    from rlsim.costmodel.memory import NON_KV_RESERVE_BYTES
    from rlsim.pipeline import build_setup
    from rlsim.scenario import build_scenario

    mem = build_setup(build_scenario(workload=small_workload, engine="ideal", k=4)).memory_spec
    need = mem.weight_bytes_per_gpu + mem.draft_weight_bytes_per_gpu + NON_KV_RESERVE_BYTES
    limit = (need + 700 * mem.kv_bytes_per_token_per_gpu) / 2**30
    tight = optimize_tree(workload=small_workload, engine="ideal", steps_max=4, topks=(2, 4), draft_tokens=(8, 16),
                          memory_limit_gib=limit, simulate=False)
    assert 500 < tight["kv_capacity_tokens"] < 900
    for r in tight["by_batch"]:
        for which in ("chain", "tree"):
            s = r[which]
            if s is not None:
                assert r["batch"] * (r["context_tokens"] + s["num_draft_tokens"]) <= tight["kv_capacity_tokens"]
    assert tight["by_batch"][-1]["feasible_shapes"] < res["by_batch"][-1]["feasible_shapes"]
    res_cli = runner.invoke(app, ["optimize-k", "--workload", small_workload, "--engine", "ideal"])
    assert res_cli.exit_code == 2 and "--tree" in res_cli.output


def test_vllm_optimizer_uses_static_bundles(small_workload):
    from rlsim.studies.optimize_k import optimize_tree

    res = optimize_tree(workload=small_workload, steps_max=3, topks=(2,), draft_tokens=(8,), simulate=False)
    trees = [s for s in res["shapes"] if s["kind"] != "chain"]
    assert trees and all(s["kind"] == "vllm" for s in trees) and res["verification"] == "chain"
    assert res["crossover_batch"] == 1  # chain verification: a tree never pays


def test_sweep_over_tree_shapes(tiny_workload):
    from rlsim import sweep

    df = sweep(workload=tiny_workload, engine="ideal", speculative_num_steps=3, speculative_eagle_topk=[2, 4],
               speculative_num_draft_tokens=[6, 8], executor="serial", progress=False, use_cache=False)
    assert len(df) == 4 and set(df["speculative_eagle_topk"]) == {2, 4}
    assert df["acceptance_length"].nunique() > 1
