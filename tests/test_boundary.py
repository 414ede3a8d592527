"""Inputs that must not lie: what exits 0 says what it did (issue 22). The inputs that are refused (exit 2,
one line) are the cases of scripts/gen_errors_doc.py, checked by test_bad_inputs.py; here: strict JSON, notes
for settings a run does not use, grid-file settings honoured, results kept when a write fails after the
work, sweep columns in a fixed order, the helpers of rlsim/inputs.py."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rlsim.errors import ConfigurationError, RlsimError
from rlsim.cli import app

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


def strict_loads(text: str):
    """json.loads that refuses NaN / Infinity / -Infinity (what most JSON parsers do)."""
    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def _ok(args):
    r = runner.invoke(app, args)
    assert r.exit_code == 0, (r.exit_code, r.output[-2000:])
    assert "Traceback" not in r.output
    return r


# ------------------------------------------------------------------------------------ strict JSON
def test_async_json_is_strict_and_unknown_values_are_null(tiny_workload):
    """An async projection has no per-replica end times (NaN inside): --json writes null, never NaN."""
    out = _ok(["project", "--workload", tiny_workload, "--lag", "1", "--json"]).stdout
    assert "NaN" not in out and "Infinity" not in out
    d = strict_loads(out)
    gen = d["speculative"]["generation_stats"]
    assert any(v is None for v in gen.values()), gen  # what was NaN is now null, not dropped
    assert d["scenario"]["max_trajectory_age_steps"] == 1


@pytest.mark.parametrize("args", [
    ["sweep", "--k", "1,2", "--no-cache", "--no-progress", "--executor", "serial", "--json"],  # 1 seed: CI is NaN
    ["project", "--steps", "2", "--json"],
    ["project", "--seeds", "2", "--json"],
    ["iteration", "--model", "qwen3-8b", "--batch", "4", "--context", "128", "--k", "2", "--json"],
])
def test_every_json_output_is_strict(tiny_workload, args):
    if args[0] != "iteration":
        args = args[:1] + ["--workload", tiny_workload] + args[1:]
    strict_loads(_ok(args).stdout)


def test_dumps_strict_replaces_non_finite_numbers():
    import numpy as np

    from rlsim.inputs import dumps_strict

    d = strict_loads(dumps_strict({"a": float("nan"), "b": [np.float64("inf"), np.int64(3)], "c": (1.5, -float("inf")),
                                   "d": np.array([1.0, np.nan])}))
    assert d == {"a": None, "b": [None, 3], "c": [1.5, None], "d": [1.0, None]}


# ------------------------------------------------------------------------------------ notes, not silence
@pytest.mark.parametrize("flag,name", [("--in-flight-weight-updates", "in_flight_weight_updates"),
                                       ("--partial-rollouts", "partial_rollout")])
def test_async_only_flags_at_lag_0_are_noted(tiny_workload, flag, name):
    d = strict_loads(_ok(["project", "--workload", tiny_workload, flag, "--json"]).stdout)
    notes = [n for n in d["notes"] if n.startswith("ignored at lag 0")]
    assert len(notes) == 1 and name in notes[0], d["notes"]
    d1 = strict_loads(_ok(["project", "--workload", tiny_workload, flag, "--lag", "1", "--json"]).stdout)
    assert not any(n.startswith("ignored at lag 0") for n in d1["notes"])  # used at lag 1: no note


def test_timeline_of_a_colocated_projection_says_what_it_drew(tiny_workload, tmp_path):
    out = tmp_path / "t.png"
    d = strict_loads(_ok(["project", "--workload", tiny_workload, "--timeline", str(out), "--json"]).stdout)
    assert out.is_file()
    assert any("drawn for separate generation and training pools" in n for n in d["notes"]), d["notes"]


def test_timeline_more_replicas_than_the_scenario_has(tiny_workload, tmp_path):
    out = tmp_path / "t.svg"
    r = _ok(["timeline", "--workload", tiny_workload, "--lag", "1", "--replicas", "30", "--out", str(out)])
    assert out.is_file() and "the scenario has" in r.stdout and "all drawn" in r.stdout


def test_sweep_settings_that_do_not_apply_are_warned(tiny_workload):
    r = runner.invoke(app, ["sweep", "--workload", tiny_workload, "--k", "1", "--no-cache", "--no-progress",
                            "--executor", "serial", "--address", "127.0.0.1:6379", "--workers", "3", "--rows", "0"])
    assert r.exit_code == 0, r.output
    assert "warning: address '127.0.0.1:6379' is ignored" in r.stderr
    assert "warning: workers = 3 is ignored" in r.stderr


# ------------------------------------------------------------------------------------ grid-file settings
def test_grid_file_settings_are_honoured(tiny_workload, tmp_path, monkeypatch):
    """out, per_seed, use_cache, seeds, executor of a grid file take effect (they were read and dropped)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("RLSIM_CACHE_DIR", str(cache))
    res = tmp_path / "sub" / "res.csv"
    g = tmp_path / "g.yaml"
    g.write_text(f"workload: {tiny_workload}\nk: [1, 2]\nseeds: 2\nout: {res}\nper_seed: true\nuse_cache: false\n"
                 "executor: serial\n")
    r = _ok(["sweep", "--grid", str(g), "--no-progress", "--rows", "0"])
    assert res.is_file() and f"wrote {res}" in r.stderr
    import pandas as pd

    df = pd.read_csv(res)
    assert len(df) == 4 and sorted(df["seed"].unique()) == [0, 1]  # per seed: 2 points x 2 seeds
    assert not cache.exists() or not any(cache.rglob("*.json"))  # use_cache: false: nothing cached
    g.write_text(g.read_text().replace("use_cache: false", "use_cache: true"))
    _ok(["sweep", "--grid", str(g), "--no-progress", "--rows", "0"])
    assert len(list(cache.rglob("*.json"))) == 4


# ------------------------------------------------------------------------------------ writes that fail after the work
def test_sweep_results_kept_when_the_write_fails_after_the_work(tiny_workload, tmp_path, monkeypatch):
    from rlsim.studies import sweep as sweep_mod

    target = tmp_path / "res.csv"
    real = sweep_mod.save_results

    def disk_full(df, path):
        if Path(path) == target:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(df, path)

    monkeypatch.setattr(sweep_mod, "save_results", disk_full)
    r = runner.invoke(app, ["sweep", "--workload", tiny_workload, "--k", "1,2", "--no-cache", "--no-progress",
                            "--executor", "serial", "--out", str(target)])
    assert r.exit_code == 2 and "Traceback" not in r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "No space left on device" in lines[0] and "the results were kept in" in lines[0]
    kept = Path(lines[0].rsplit("kept in ", 1)[1])
    import pandas as pd

    try:
        assert len(pd.read_csv(kept)) == 2 and not target.exists()
    finally:
        kept.unlink()


def test_write_or_keep_and_its_failure():
    from rlsim.inputs import write_or_keep

    calls = []

    def write(p):
        calls.append(p)
        if len(calls) == 1:
            raise OSError(errno.EROFS, "Read-only file system")
        Path(p).write_text("results")

    with pytest.raises(ConfigurationError) as e:
        write_or_keep("/nonexistent/out.csv", write, "--out")
    assert "Read-only file system" in str(e.value) and Path(e.value.kept).read_text() == "results"
    assert e.value.kept.suffix == ".csv"
    e.value.kept.unlink()

    def never(p):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(ConfigurationError, match="failed too"):
        write_or_keep("/nonexistent/out.csv", never, "--out")


def test_check_output_file(tmp_path):
    from rlsim.inputs import check_output_file

    assert check_output_file(tmp_path / "a.csv", "--out", (".csv",)) == tmp_path / "a.csv"
    assert not (tmp_path / "a.csv").exists()  # checking writes nothing
    existing = tmp_path / "b.csv"
    existing.write_text("keep me")
    check_output_file(existing, "--out", (".csv",))
    assert existing.read_text() == "keep me"  # an existing file is probed, not truncated
    assert list(tmp_path.iterdir()) == [existing]  # no probe file left behind
    for bad, msg in ((tmp_path, "is a folder"), ("/dev/full", "not a regular file"),
                     (tmp_path / "no" / "a.csv", "does not exist"), (tmp_path / "a.xlsx", "unknown format")):
        with pytest.raises(ConfigurationError, match=msg):
            check_output_file(bad, "--out", (".csv",) if "xlsx" in str(bad) else None)
    check_output_file(tmp_path / "no" / "a.csv", "--out", create_parents=True)  # made later: accepted


# ------------------------------------------------------------------------------------ sweep column order
def test_sweep_columns_do_not_depend_on_arrival_order(tiny_workload, monkeypatch):
    """Results arriving in another order (other workers, another machine) give the same columns: headline
    metrics first, then the others by name."""
    from rlsim.studies import sweep as sweep_mod

    kw = dict(workload=tiny_workload, k=[1, 2], lag=[0, 1], executor="serial", use_cache=False, progress=False)
    a = sweep_mod.sweep(**kw)
    real = sweep_mod._execute_serial
    monkeypatch.setattr(sweep_mod, "_execute_serial", lambda todo, on_result: real(list(reversed(todo)), on_result))
    b = sweep_mod.sweep(**kw)
    assert list(a.columns) == list(b.columns)
    metrics = [c for c in sweep_mod.metric_columns(a) if c not in sweep_mod.HEADLINE]
    assert metrics == sorted(metrics)
    assert any(c.startswith("spec_x_") for c in metrics)  # async-only extras are among them


# ------------------------------------------------------------------------------------ typed arguments
def test_typed_arguments_normalise_what_is_meant():
    """numpy numbers, integral floats and paths are what they say; wrong types are one RlsimError each."""
    import numpy as np

    from rlsim import build_scenario

    sc = build_scenario(workload=REPO / "workloads" / "rl-zero-8b.yaml", k=np.int64(2), gpus=8.0,
                        acceptance_length=np.float32(2.5))
    assert sc.k == 2 and isinstance(sc.k, int) and sc.workload.gpus == 8
    for bad in ({"k": "3"}, {"gpus": [8]}, {"seed": None}, {"options": {"moe_routing_skew": "1"}},
                {"max_new_tokens": float("inf")}, {"tensor_parallel_size": 2.5}):
        with pytest.raises(RlsimError) as e:
            build_scenario(workload="rl-zero-8b", **bad)
        assert next(iter(bad)) in str(e.value), e.value


def test_workload_sources_required_only_for_what_the_file_sets(tmp_path):
    """A workload file's numbers and true/false settings need a source; overrides are sourced by the caller."""
    import yaml

    from rlsim import build_scenario
    from rlsim.catalog.loader import load_workload

    d = yaml.safe_load((REPO / "workloads" / "rl-zero-8b.yaml").read_text())
    d["in_flight_weight_updates"] = False
    p = tmp_path / "w.yaml"
    p.write_text(yaml.safe_dump(d))
    with pytest.raises(RlsimError, match="numbers without a source: in_flight_weight_updates"):
        load_workload(str(p))
    sc = build_scenario(workload="rl-zero-8b", colocated=False, gpus=16)
    assert sc.workload.sources["colocated"].startswith("set by the caller")
    assert "in_flight_weight_updates" not in sc.workload.sources  # left at its default: no source needed
