"""The sensitivity of Table 1's predictions to the study's unpublished settings (`validate paper --sensitivity`)."""

import pytest

from rlsim.catalog.loader import load_workload
from rlsim.validation import paper, paper_sensitivity as ps


def test_secant_refit_agrees_with_the_committed_bisection_fit():
    # two independent fitters of the same AR baseline must land on the same response median
    committed = load_workload("rl-zero-8b").response_length.median_tokens
    median, ar = ps.refit_median("rl-zero-8b", "auto", {}, start=committed * 0.6)
    assert median == pytest.approx(committed, rel=0.01)
    assert ar == pytest.approx(paper.TABLE1["rl-zero-8b"]["ar"]["generation"], rel=0.003)


def test_a_cap_too_short_for_the_ar_time_is_ruled_out():
    # with every response capped at 1024 tokens no median makes AR generation last 100 s
    v = ps.Variant("cap 1024", {"max_new_tokens": 1024}, "test")
    r = ps.run_variant("rl-zero-8b", v, per_step=False)
    assert r.median_tokens is None and r.spec_generation_s is None
    assert "ruled out" in r.note
    assert "ruled out" in ps.format_sensitivity([r])


def test_impossible_variant_is_reported_not_raised():
    # a response decay so steep that the workload's AL cannot be kept is a row with a reason
    v = ps.Variant("steep decay", {"options": {"acceptance_response_decay": 0.5}}, "test")
    (r,) = ps.sensitivity(workloads=("rl-zero-8b",), variants=(v,), per_step=False)
    assert r.spec_generation_s is None and r.note.startswith("not possible")


def test_cli_sensitivity_json_and_files(tmp_path, monkeypatch):
    # the command end to end on one workload and one quick variant: progress, files, one JSON document
    import json

    from typer.testing import CliRunner

    from rlsim.cli import app

    monkeypatch.setattr(paper, "WORKLOADS", ("rl-zero-8b",))
    monkeypatch.setattr(ps, "VARIANTS", (ps.Variant("cap 1024", {"max_new_tokens": 1024}, "test"),))
    r = CliRunner().invoke(app, ["validate", "paper", "--sensitivity", "--json", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert set(doc) == {"table", "sensitivity"} and list(doc["table"]) == ["rl-zero-8b"]
    assert doc["sensitivity"][0]["label"] == "cap 1024" and doc["sensitivity"][0]["median_tokens"] is None
    assert "[1/1] rl-zero-8b: cap 1024" in r.stderr
    assert "ruled out" in (tmp_path / "paper-sensitivity.md").read_text()
