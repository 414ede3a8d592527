"""CPU tests of the ground-truth rollout harness (tiny model, torch reference kernels).

The harness is loaded by path under a private name, so neither rlsim/__init__ nor the
simulator's dependencies are involved.
"""
from __future__ import annotations

import csv
import gzip
import importlib.util
import math
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

HARNESS_DIR = Path(__file__).resolve().parents[1] / "rlsim" / "calibration" / "harness"
PKG = "_rlsim_gt_harness"


def _load():
    if PKG in sys.modules:
        return sys.modules[PKG]
    spec = importlib.util.spec_from_file_location(
        PKG, HARNESS_DIR / "__init__.py", submodule_search_locations=[str(HARNESS_DIR)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[PKG] = mod
    spec.loader.exec_module(mod)
    return mod


_load()
import_module = importlib.import_module

cfg = import_module(f"{PKG}.config")
attention = import_module(f"{PKG}.attention")
model = import_module(f"{PKG}.model")
engine_mod = import_module(f"{PKG}.engine")
workload = import_module(f"{PKG}.workload")
run_grid = import_module(f"{PKG}.run_grid")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # tiny CPU kernels: intra-op threading only adds overhead (10x here)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _engine(max_tokens=64, max_seqs=32, kv_blocks=256, k_max=3, seed=1):
    tgt = cfg.tiny_target()
    dft = cfg.tiny_draft(tgt)
    caps = model.Caps(max_num_seqs=max_seqs, max_num_batched_tokens=max_tokens,
                      max_model_len=400, k_max=k_max)
    rp = model.Replica(tgt, dft, "cpu", torch.float32, caps, seed=seed)
    rp.allocate_kv(kv_blocks)
    return engine_mod.Engine(rp, caps, use_graphs=False), caps


def _rates(k, frac=0.7):
    return [workload.solve_rate(k, frac * (k + 1))] * k


@pytest.mark.parametrize("k", [0, 1, 3])
def test_every_sequence_generates_exactly_its_response(k):
    eng, _ = _engine()
    P, R = workload.sample_lengths(run_grid.LENGTHS["tiny"], 7, 11, "tiny")
    res = eng.run(P, R, k, _rates(k), seed=5)
    assert res["tokens_generated"] == int(R.sum())
    for sid, p, r, g, fin, rounds, acc, pre in res["seqs"]:
        assert g == r == R[sid] and p == P[sid]
        assert math.isfinite(fin) and fin >= 0
        # every token but the one sampled at prefill completion comes from a round
        assert rounds <= r - 1 + 1e-9
        if k == 0:
            assert rounds == r - 1 and acc == 0
    assert res["preemptions"] == 0
    assert len(res["iters"]) == res["iterations"]


def test_k0_iterations_equal_longest_response_when_all_fit():
    eng, caps = _engine(max_tokens=512)
    P, R = workload.sample_lengths(run_grid.LENGTHS["tiny"], 6, 3, "tiny")
    assert P.sum() <= caps.max_num_batched_tokens
    res = eng.run(P, R, 0, [], seed=1)
    assert res["iterations"] == int(R.max())
    it0 = res["iters"][0]
    assert it0[2] == int(P.sum())          # all prompts prefilled in iteration 0
    assert it0[4] == len(P)                # ... and all sample their first token there


def test_chunked_prefill_respects_token_budget_and_fcfs():
    eng, caps = _engine(max_tokens=32)
    P, R = workload.sample_lengths(run_grid.LENGTHS["tiny"], 8, 4, "tiny")
    res = eng.run(P, R, 3, _rates(3), seed=2)
    for it in res["iters"]:
        n_dec, n_pre, n_tok = it[1], it[2], it[5]
        assert n_tok == n_dec * 4 + n_pre <= caps.max_num_batched_tokens
    fin = {s[0]: s[4] for s in res["seqs"]}
    assert len(fin) == 8


def test_synthetic_acceptance_matches_configured_rates():
    for k, frac in [(1, 0.7), (3, 0.5), (3, 0.9), (7, 0.7)]:
        rates = _rates(k, frac)
        acc = np.concatenate([workload.accept_stream(9, s, 4000, rates) for s in range(5)])
        al = 1 + acc.mean()
        assert abs(al - frac * (k + 1)) < 0.05 * (k + 1), (k, frac, al)
        # per-position conditional rate of the first draft
        assert abs((acc >= 1).mean() - rates[0]) < 0.02


def test_engine_realized_al_close_to_target():
    eng, _ = _engine(max_tokens=256)
    P, R = workload.sample_lengths(run_grid.LENGTHS["tinylong"], 8, 1, "tinylong")
    rates = _rates(3, 0.7)
    res = eng.run(P, R, 3, rates, seed=3)
    assert abs(res["realized_al"] - workload.expected_al(rates)) < 0.25


def test_preemption_keeps_lengths_exact():
    # 12 blocks of 16 tokens: only a few sequences fit, decode growth must preempt
    eng, _ = _engine(max_tokens=128, kv_blocks=13)
    P = np.array([20, 18, 25, 22, 19])
    R = np.array([60, 55, 40, 50, 45])
    res = eng.run(P, R, 1, _rates(1), seed=4)
    assert res["preemptions"] > 0
    assert res["tokens_generated"] == int(R.sum())
    for sid, p, r, g, fin, rounds, acc, pre in res["seqs"]:
        assert g == r


def test_solve_rate_inverts_expected_al():
    for k in (1, 3, 5, 7):
        for frac in (0.5, 0.7, 0.9):
            a = workload.solve_rate(k, frac * (k + 1))
            assert 0 <= a < 1 and (a > 0 or frac * (k + 1) == 1.0)
            assert abs(workload.expected_al([a] * k) - frac * (k + 1)) < 1e-9


def test_paged_reference_attention_matches_dense():
    torch.manual_seed(0)
    HKV, G, D, PAGE = 2, 4, 32, attention.PAGE
    kc = torch.randn(64 * PAGE, HKV, D)
    vc = torch.randn(64 * PAGE, HKV, D)
    bt = torch.randperm(63)[:40].add(1).to(torch.int32).reshape(2, 20)
    L, nq = 150, 5
    q = torch.randn(nq, HKV * G, D)
    out = torch.zeros_like(q)
    i32 = lambda v: torch.tensor([v], dtype=torch.int32)  # noqa: E731
    attention.paged_attention_ref(q, kc, vc, out, bt, i32(1), i32(0), i32(nq), i32(L - nq),
                                  1, 1 / math.sqrt(D), HKV)
    slots = (bt[1].long()[:, None] * PAGE + torch.arange(PAGE)).reshape(-1)[:L]
    K = kc[slots].repeat_interleave(G, 1).transpose(0, 1)
    V = vc[slots].repeat_interleave(G, 1).transpose(0, 1)
    mask = torch.arange(L)[None, :] <= (L - nq + torch.arange(nq))[:, None]
    ref = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(0, 1), K, V, attn_mask=mask).transpose(0, 1)
    assert float((out - ref).norm() / ref.norm()) < 1e-5


def test_cli_tiny_writes_outputs(tmp_path):
    meta = run_grid.main(["--device", "cpu", "--tiny", "--out", str(tmp_path),
                          "--max-num-batched-tokens", "64", "--max-num-seqs", "32",
                          "--kv-blocks", "256"])
    assert len(meta["completed"]) == 2
    with open(tmp_path / "runs.csv") as f:
        runs = list(csv.DictReader(f))
    assert [r["k"] for r in runs] == ["0", "3"]
    assert set(run_grid.RUN_COLUMNS) <= set(runs[0])
    with open(tmp_path / "sequences.csv") as f:
        seqs = list(csv.DictReader(f))
    assert len(seqs) == 12
    with gzip.open(tmp_path / "iterations.csv.gz", "rt") as f:
        iters = list(csv.DictReader(f))
    assert sum(r["run_id"] == runs[0]["run_id"] for r in iters) == int(runs[0]["iterations"])
    assert (tmp_path / "meta.json").exists()


def test_moe_target_runs_and_matches_the_reference_layer():
    # the MoE path of the harness (Qwen3-30B-A3B-like, tiny): every sequence generates its response, and
    # a layer's experts on CPU are the float32 reference of the fused GPU kernel
    tgt = cfg.tiny_moe_target()
    dft = cfg.tiny_draft(tgt)
    caps = model.Caps(max_num_seqs=16, max_num_batched_tokens=64, max_model_len=400, k_max=3)
    rp = model.Replica(tgt, dft, "cpu", torch.float32, caps, seed=3)
    assert "w1" in rp.layers[0] and rp.layers[0]["w1"].shape == (16, 128, 128)
    rp.allocate_kv(256)
    eng = engine_mod.Engine(rp, caps, use_graphs=False)
    P, R = workload.sample_lengths(run_grid.LENGTHS["tiny"], 5, 2, "tiny")
    res = eng.run(P, R, 3, _rates(3), seed=4)
    assert res["tokens_generated"] == int(R.sum())
    ops = import_module(f"{PKG}.ops")
    lw = rp.layers[0]
    x = torch.randn(6, 128)
    y = ops.moe(x, lw["wr"], lw["w1"], lw["w2"], tgt.top_k)
    p = torch.softmax(x @ lw["wr"], -1)
    v, i = torch.topk(p, tgt.top_k)
    v = v / v.sum(-1, keepdim=True)
    ref = torch.zeros_like(x)
    for t in range(6):
        for j in range(tgt.top_k):
            h = lw["w1"][i[t, j]] @ x[t]
            ref[t] += v[t, j] * (lw["w2"][i[t, j]] @ (torch.nn.functional.silu(h[:64]) * h[64:]))
    assert torch.allclose(y, ref, rtol=1e-4, atol=1e-5)
