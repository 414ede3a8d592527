"""CPU tests of the calibration microbenchmarks: grids, CSV schema, resume, and the
exactness of the attention packing/merge logic (with the float reference provider).

No CUDA needed; the parts that need torch skip themselves when torch is absent.
"""
from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pytest

CAL = Path(__file__).resolve().parents[1] / "rlsim" / "calibration"
sys.path.insert(0, str(CAL))  # import the helper modules without the rlsim package

import mb_common as C  # noqa: E402
import mb_grids as G  # noqa: E402


# ------------------------------------------------------------------- grids
def test_catalog_and_gemm_shapes():
    pytest.importorskip("yaml")
    models, drafts = G.load_catalog()
    assert "qwen3-8b" in models and "eagle3-qwen3-8b" in drafts
    shapes = G.gemm_shapes(models, drafts)
    nk = {(n, k) for n, k, _ in shapes}
    assert len(nk) == len(shapes)  # deduplicated
    # Qwen3-8B: QKV at TP1 = (32 + 2*8) * 128 = 6144; at TP8 kv heads 1 -> (4 + 2) * 128
    assert (6144, 4096) in nk and (768, 4096) in nk
    # Qwen3-235B at TP8: 8 q heads, 4 kv heads replicate to 1 per GPU
    assert ((8 + 2) * 128, 4096) in nk
    # O proj, dense MLP, LM head
    assert (4096, 4096) in nk and (2 * 12288, 4096) in nk and (4096, 12288 // 8) in nk
    assert (151936, 4096) in nk and (151936 // 8, 4096) in nk
    # EAGLE-3 fc and draft LM head
    assert (4096, 3 * 4096) in nk and (32000, 4096) in nk
    # no dense MLP for the MoE models (intermediate_size 0) and no zero dims
    assert all(n > 0 and k > 0 for n, k in nk)


def test_gemm_grid_sizes():
    pytest.importorskip("yaml")
    models, drafts = G.load_catalog()
    full = G.gemm_grid(models, drafts)
    quick = G.gemm_grid(models, drafts, quick=True)
    assert {p["m"] for p in full} == set(G.GEMM_M_FULL)
    assert {p["m"] for p in quick} == set(G.GEMM_M_QUICK)
    assert {p["dtype"] for p in full} == {"bf16", "fp8"}
    kq = {(p["dtype"], p["m"], p["n"], p["k"]) for p in quick}
    kf = {(p["dtype"], p["m"], p["n"], p["k"]) for p in full}
    assert kq <= kf  # the quick grid is a subset: a quick run is resumed by a full one


def test_attention_grid():
    full = G.attention_grid()
    quick = G.attention_grid(quick=True)
    phases = {p.phase for p in full}
    assert phases == {"decode", "verify", "prefill"}
    for p in full:
        assert p.kv_bytes() <= G.KV_LIMIT_BYTES
        assert len(p.kv_lens) == p.batch == len(p.q_lens)
        assert all(k >= q for k, q in zip(p.kv_lens, p.q_lens))
        if p.phase == "decode":
            assert p.q_len == 1
        if p.phase == "verify":
            assert p.q_len in G.VERIFY_Q_FULL and all(k > q for k, q in zip(p.kv_lens, p.q_lens))
        if p.kv_dist == "lognormal":
            assert max(p.kv_lens) <= G.LOGNORMAL_CAP
    heads = {(p.n_q_heads, p.n_kv_heads) for p in full}
    assert heads == set(G.ATTN_HEADS_FULL)
    # lognormal batches are uneven and deterministic
    ln = [p for p in full if p.kv_dist == "lognormal" and p.batch == 64]
    assert ln and max(ln[0].kv_lens) > min(ln[0].kv_lens)
    again = G.attention_grid()
    assert [p.row() for p in again] == [p.row() for p in full]
    kf = {C.row_key("attention", {"gpu": "x", **p.row()}) for p in full}
    kq = {C.row_key("attention", {"gpu": "x", **p.row()}) for p in quick}
    assert kq <= kf
    assert len(kf) == len(full)  # keys are unique
    # schema covers the row
    assert set(full[0].row()) <= set(C.SCHEMAS["attention"])


def test_other_grids_and_busbw():
    assert len(G.moe_grid()) == 2 * 3 * len(G.MOE_TOKENS_FULL)
    assert len(G.elementwise_grid()) == 5 * 6 * 4
    assert len(G.sampling_grid()) == 4 * 7 * 3
    sizes = G.COLL_SIZES_FULL
    assert sizes[0] == 4096 and sizes[-1] == 256 * 1024 ** 2
    pts = G.collectives_grid(8)
    assert {p["op"] for p in pts} == set(G.COLL_OPS) and all(p["ranks"] == 8 for p in pts)
    alg, bus = G.busbw("all_reduce", 1000, 4, 1.0)
    assert alg == 1000 and bus == pytest.approx(1500)
    alg, bus = G.busbw("all_gather", 1000, 4, 1.0)
    assert alg == 4000 and bus == pytest.approx(3000)
    assert G.expected_distinct_experts(1) == pytest.approx(8)
    assert 120 < G.expected_distinct_experts(64) < 128


# --------------------------------------------------------- CSV and resume
def test_csv_schema_and_resume(tmp_path):
    row = {"gpu": "TestGPU", "dtype": "bf16", "m": 16, "n": 4096, "k": 4096, "time_s": 1.234e-5,
           "time_p10_s": 1.2e-5, "time_p90_s": 1.3e-5, "repeats": 10, "timing": "graph",
           "m_run": 16, "source": "qwen3-8b:o:tp1"}
    with C.CsvTable(tmp_path, "gemm") as t:
        assert not t.has(row)
        t.write(row)
        assert t.has(row)
    rows = C.read_csv(tmp_path / "gemm.csv")
    assert list(rows[0]) == C.SCHEMAS["gemm"]
    assert rows[0]["time_s"] == "1.2340e-05" and rows[0]["m"] == "16"
    # resume: a new table sees the row as done; other keys are not
    with C.CsvTable(tmp_path, "gemm") as t:
        assert t.has(row)
        assert not t.has({**row, "m": 32})
        t.write({**row, "m": 32})
    assert len(C.read_csv(tmp_path / "gemm.csv")) == 2
    # no resume: start anew
    with C.CsvTable(tmp_path, "gemm", resume=False) as t:
        assert not t.has(row)
    assert C.read_csv(tmp_path / "gemm.csv") == []
    with pytest.raises(KeyError):
        with C.CsvTable(tmp_path, "gemm") as t:
            t.write({"gpu": "x"})


def test_resume_float_keys(tmp_path):
    p = [q for q in G.attention_grid(quick=True) if q.kv_dist == "lognormal"][0]
    base = {"gpu": "g", **p.row(), "backend": "b", "time_s": 1e-4, "time_p10_s": 1e-4,
            "time_p90_s": 1e-4, "repeats": 5, "timing": "graph", "alt_backend": "",
            "alt_time_s": float("nan")}
    with C.CsvTable(tmp_path, "attention") as t:
        t.write(base)
    with C.CsvTable(tmp_path, "attention") as t:
        assert t.has({"gpu": "g", **p.row()})


def test_schema_change_moves_old_file(tmp_path):
    (tmp_path / "sampling.csv").write_text("a,b\n1,2\n")
    with C.CsvTable(tmp_path, "sampling") as t:
        assert not t.done
    assert (tmp_path / "sampling.csv.old").exists()
    with open(tmp_path / "sampling.csv") as f:
        assert next(csv.reader(f)) == C.SCHEMAS["sampling"]


def test_progress_and_budget(capsys):
    pr = C.Progress("x", 4, every_s=0)
    for i in range(4):
        pr.step(skipped=(i == 0))
    out = capsys.readouterr().out
    assert "4/4" in out and "100.0%" in out and "ETA" in out
    b = C.Budget(None, {})
    assert b.deadline("gemm", ["gemm"]) == float("inf")
    b = C.Budget(100.0, {"a": 1.0, "b": 3.0})
    import time
    d = b.deadline("a", ["a", "b"]) - time.monotonic()
    assert 20 < d <= 25.01
    assert C.percentile([1, 2, 3, 4, 5], 50) == 3 and C.percentile([1, 2], 10) == pytest.approx(1.1)


def test_microbench_module_imports_without_torch():
    # the entry point must import (and build its grid summary) without torch
    spec = importlib.util.spec_from_file_location("mb_entry", CAL / "microbench.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert "gemm" in mod.ALL_OPS
    pytest.importorskip("yaml")
    g = mod.grid_summary(quick=True)
    assert g["gemm"]["m"] == G.GEMM_M_QUICK


# ------------------------------------------------------ torch (CPU) parts
def test_attention_exactness_cpu():
    torch = pytest.importorskip("torch")
    import mb_attention as A

    errs = A.check_exactness(A.ref_varlen_attn, "cpu", dtype=torch.float32, D=32, verbose=False)
    assert set(errs) >= {"decode:flash_varlen", "verify:flash_varlen",
                         "verify:flash_varlen_packed:seqused",
                         "verify:flash_varlen_packed:prefix_pool", "prefill:flash_varlen",
                         "prefill_chunk:flash_varlen"}
    assert {"decode:flash_split_packed_torchcombine",
            "verify:flash_split_packed_torchcombine"} <= set(errs)
    for k, v in errs.items():
        if k.endswith(":flash_split_packed"):
            continue  # the Triton combine kernel needs a GPU (or TRITON_INTERPRET=1)
        assert v < 1e-5, (k, v)


def test_split_plan_cpu():
    torch = pytest.importorskip("torch")
    import mb_attention as A

    # one long sequence among short ones: only the long one is split
    geo = A.make_geometry([300, 40, 5000, 60], [4] * 4, 32, 8, 128, "cpu", False)
    assert A.add_split(geo, "cpu", n_sm=132)
    sp = geo["split"]
    assert sp["C"] % 64 == 0 and sp["C"] >= 256
    counts = [int(x) for x in (sp["cu_chunks"][1:] - sp["cu_chunks"][:-1])]
    assert counts[2] == -(-(5000 - 4) // sp["C"]) and counts[1] == 1
    assert int(sp["used"].sum()) == sum(L - 4 for L in [300, 40, 5000, 60])
    # large uniform batches are not split
    geo = A.make_geometry([4096] * 512, [1] * 512, 32, 8, 128, "cpu", False)
    assert not A.add_split(geo, "cpu", n_sm=132)


def test_attention_measure_point_cpu():
    torch = pytest.importorskip("torch")
    import mb_attention as A

    lens = G.kv_lengths("lognormal", 3, 40, 12, "t")
    p = G.AttnPoint("verify", 3, 4, lens, [4] * 3, "lognormal", 4, 1, 16, 0)
    cfg = {"provider": A.ref_varlen_attn, "packed_ok": True, "seqused_ok": True, "max_sets": 2}
    row = A.measure_point(p, cfg, device="cpu")
    assert row["backend"] in ("flash_varlen", "flash_varlen_packed")
    assert row["alt_backend"] in ("flash_varlen", "flash_varlen_packed")
    assert row["time_s"] > 0 and set(C.SCHEMAS["attention"]) - {"gpu"} <= set(row)


def test_moe_layer_cpu():
    torch = pytest.importorskip("torch")
    if not hasattr(torch, "_grouped_mm"):
        pytest.skip("no torch._grouped_mm")
    import mb_ops as O

    mb = O.MoEBench(device="cpu")
    try:
        errs = mb.probe(hidden=64, inter=32, E=16, tokens=12)
    except RuntimeError as e:  # pragma: no cover - CPU build without bf16 grouped mm
        pytest.skip(str(e))
    assert errs["loop"] < 2e-2
    assert mb.backend is not None
    r = mb.measure(8, 16, 8, 64, 32)
    assert 0 <= r["distinct_experts"] <= 16 and r["time_s"] > 0


def test_small_ops_cpu():
    torch = pytest.importorskip("torch")
    import mb_ops as O

    eb = O.ElementwiseBench(device="cpu")
    eb.probe()
    for op in G.ELEM_OPS:
        r = eb.measure(op, 8, 256)
        assert r["time_s"] > 0 and r["impl"] in ("torch", "triton")
    sb = O.SamplingBench(device="cpu")
    for op in G.SAMPLING_OPS:
        assert sb.measure(op, 4, 1000)["time_s"] > 0
    gb = O.GemmBench(device="cpu")
    r = gb.measure("bf16", 4, 64, 32)
    assert r["m_run"] == 4 and r["time_s"] > 0


def test_rope_reference_cpu():
    torch = pytest.importorskip("torch")
    import mb_ops as O

    x = torch.randn(5, 2 * 8)
    pos = torch.tensor([0, 1, 2, 3, 4])
    ang = torch.rand(8, 4)
    cos, sin = torch.cos(ang), torch.sin(ang)
    y = O.torch_rope(x.clone(), pos, cos, sin)
    assert torch.allclose(y.norm(dim=1), x.norm(dim=1), atol=1e-5)  # a rotation
    y0 = O.torch_rope(x.clone(), torch.zeros(5, dtype=torch.long), torch.ones(1, 4),
                      torch.zeros(1, 4))
    assert torch.allclose(y0, x)
