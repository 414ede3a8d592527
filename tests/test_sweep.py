"""Sweeps: grid expansion, seeds and confidence intervals, cache/resume, executors (process, Ray), CLI, files."""

import importlib.util
import json
import math

import pandas as pd
import pytest
from typer.testing import CliRunner

from rlsim import project_scenario, sweep
from rlsim.errors import ConfigurationError
from rlsim.studies import sweep as sw
from rlsim.cli import app
from rlsim.cli.cmd_sweep import parse_values

# a small but real scenario: the RL-Zero workload with 8 prompts x 32 generations per step (256 sequences)
SMALL = dict(workload="rl-zero-8b", num_prompts_per_step=8)
runner = CliRunner()


def test_expand_grid_product_points_and_aliases():
    pts = sw.expand_grid({"workload": "rl-zero-8b", "k": [1, 3], "quality": [0.6, 0.8]})
    assert len(pts) == 4 and pts[0] == {"workload": "rl-zero-8b", "k": 1, "draft_quality": 0.6}
    assert pts[-1]["k"] == 3 and pts[-1]["draft_quality"] == 0.8  # later axes vary fastest
    pts = sw.expand_grid({"k": [1, 3]}, points=[{"workload": "rl-zero-8b"}, {"workload": "rl-think-8b"}])
    assert [(p["workload"], p["k"]) for p in pts] == [("rl-zero-8b", 1), ("rl-zero-8b", 3), ("rl-think-8b", 1),
                                                       ("rl-think-8b", 3)]
    assert sw.scenario_kwargs({"split": "48:16"}) == {"gen_gpus": 48, "train_gpus": 16}
    with pytest.raises(ConfigurationError, match="seeds"):
        sw.scenario_kwargs({"seed": 1})
    assert sw.seed_list(3) == [0, 1, 2] and sw.seed_list([4, 7]) == [4, 7]
    with pytest.raises(ConfigurationError):
        sw.seed_list(0)


def test_parse_values_lists_and_ranges():
    assert parse_values("1,3,5", int) == [1, 3, 5]
    assert parse_values("1..4", int) == [1, 2, 3, 4]
    assert parse_values("0.5..0.8..0.1", float) == [0.5, 0.6, 0.7, 0.8]
    assert parse_values("rl-zero-8b, rl-think-8b") == ["rl-zero-8b", "rl-think-8b"]
    with pytest.raises(ConfigurationError, match="not an integer"):
        parse_values("1,x", int, "k")


def test_t_critical_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for dof in (1, 2, 5, 19, 30, 45, 100, 400):
        assert sw.t_critical_975(dof) == pytest.approx(stats.t.ppf(0.975, dof), rel=2e-3)


def test_sweep_mean_ci_and_equality_with_project(tmp_path):
    df = sweep(SMALL, k=[1, 3], draft_quality=0.8, seeds=3, executor="serial", cache_dir=tmp_path)
    assert len(df) == 2 and (df["n_seeds"] == 3).all()
    assert list(df["k"]) == [1, 3] and (df["draft_quality"] == 0.8).all()
    for m in ("speedup_generation", "speedup_step", "ar_step_s", "spec_step_s"):
        assert (df[f"{m}_ci_lo"] <= df[m]).all() and (df[m] <= df[f"{m}_ci_hi"]).all()
    # draft quality maps to AL at every k: geometric model 1 + c + ... + c^k
    for _, row in df.iterrows():
        assert row["acceptance_length"] == pytest.approx(1 + sum(0.8 ** i for i in range(1, row["k"] + 1)))
    raw = sweep(SMALL, k=[1, 3], draft_quality=0.8, seeds=3, executor="serial", cache_dir=tmp_path, per_seed=True)
    assert len(raw) == 6 and raw.attrs["n_simulated"] == 0  # all from the cache
    # every per-seed row is exactly project() of that scenario; the aggregate is their mean and t-interval
    r = project_scenario(**SMALL, k=3, draft_quality=0.8, seed=2)
    row = raw[(raw.k == 3) & (raw.seed == 2)].iloc[0]
    for key, v in r.summary_row().items():
        assert row[key] == v, key
    x = raw[raw.k == 3]["speedup_step"]
    half = sw.t_critical_975(2) * x.std(ddof=1) / math.sqrt(3)
    agg = df[df.k == 3].iloc[0]
    assert agg["speedup_step"] == pytest.approx(x.mean())
    assert agg["speedup_step_ci_hi"] - agg["speedup_step"] == pytest.approx(half)


def test_cache_resumes_an_interrupted_sweep(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = sw.run_scenario

    def flaky(sc, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(sc, *a, **kw)

    monkeypatch.setattr(sw, "run_scenario", flaky)
    grid = dict(SMALL, k=[1, 2], draft_quality=[0.6, 0.9])
    with pytest.raises(KeyboardInterrupt):
        sweep(grid, executor="serial", cache_dir=tmp_path)
    monkeypatch.setattr(sw, "run_scenario", real)
    df = sweep(grid, executor="serial", cache_dir=tmp_path)
    assert df.attrs["n_cached"] == 2 and df.attrs["n_simulated"] == 2 and len(df) == 4
    # a wider grid only simulates what is new; use_cache=False recomputes and gives the same numbers
    wide = sweep(dict(grid, k=[1, 2, 3]), executor="serial", cache_dir=tmp_path)
    assert wide.attrs["n_simulated"] == 2
    fresh = sweep(grid, executor="serial", use_cache=False)
    pd.testing.assert_series_equal(fresh["speedup_step"], df["speedup_step"])


def test_scenario_hash_separates_seeds_and_fields():
    from rlsim.scenario import build_scenario

    a = sw.scenario_hash(build_scenario(**SMALL, k=3, seed=0))
    assert a == sw.scenario_hash(build_scenario(**SMALL, k=3, seed=0))
    assert a != sw.scenario_hash(build_scenario(**SMALL, k=3, seed=1))
    assert a != sw.scenario_hash(build_scenario(**SMALL, k=4, seed=0))


def test_process_pool_matches_serial(tmp_path):
    grid = dict(SMALL, k=[1, 3], draft_quality=[0.7, 0.9])
    par = sweep(grid, executor="process", workers=2, use_cache=False, per_seed=True)
    ser = sweep(grid, executor="serial", use_cache=False, per_seed=True)
    cols = ["speedup_step", "speedup_generation", "ar_step_s", "spec_step_s"]
    pd.testing.assert_frame_equal(par[cols], ser[cols])


def test_invalid_points_fail_clearly_or_are_recorded():
    with pytest.raises(ConfigurationError, match=r"grid point .*k=1.*impossible at k = 1"):
        sweep(SMALL, k=[1, 3], acceptance_length=3.32, executor="serial", use_cache=False)
    df = sweep(SMALL, k=[1, 3], acceptance_length=3.32, executor="serial", use_cache=False, skip_invalid=True)
    assert df["error"].notna().tolist() == [True, False]
    assert df.loc[1, "speedup_step"] > 1
    with pytest.raises(ConfigurationError, match="unknown scenario field"):
        sweep(SMALL, bogus_field=[1, 2], executor="serial", use_cache=False)


def test_lag_sweep_when_async_exists(tmp_path):
    df = sweep(workload="rl-think-8b", num_prompts_per_step=8, lag=[0, 1], executor="serial", cache_dir=tmp_path)
    assert list(df["lag"]) == [0, 1] and df["speedup_step"].notna().all()


def test_yaml_grid_file(tmp_path):
    f = tmp_path / "grid.yaml"
    f.write_text("base: {workload: rl-zero-8b, num_prompts_per_step: 8}\n"
                 "grid: {k: [1, 3]}\n"
                 "points: [{draft_quality: 0.6}, {acceptance_length: 1.9}]\n"
                 "seeds: 2\nexecutor: serial\n")
    df = sweep(str(f), use_cache=False)
    assert len(df) == 4 and (df["n_seeds"] == 2).all()
    assert df["acceptance_length"].tolist()[2:] == pytest.approx([1.9, 1.9])


def test_outputs_csv_parquet_and_fallback(tmp_path, monkeypatch):
    df = sweep(SMALL, k=[1, 3], executor="serial", cache_dir=tmp_path / "c", out=tmp_path / "r.csv")
    back = sw.load_results(tmp_path / "r.csv")
    assert back["speedup_step"].tolist() == pytest.approx(df["speedup_step"].tolist())
    if importlib.util.find_spec("pyarrow") is not None:
        p = sw.save_results(df, tmp_path / "r.parquet")
        assert p.suffix == ".parquet" and len(sw.load_results(p)) == 2
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("pyarrow", "fastparquet") else real(name, *a))
    with pytest.warns(RuntimeWarning, match="pyarrow"):
        p = sw.save_results(df, tmp_path / "x.parquet")
    assert p.name == "x.csv" and p.is_file()


def test_cli_sweep(tmp_path):
    out = tmp_path / "res.csv"
    r = runner.invoke(app, ["sweep", "--workload", "rl-zero-8b", "--set", "num_prompts_per_step=8", "--k", "1,3",
                            "--draft-quality", "0.6..0.8..0.2", "--seeds", "2", "--executor", "serial", "--out", str(out),
                            "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    assert r.exit_code == 0, r.output
    df = pd.read_csv(out)
    assert len(df) == 4 and set(df["k"]) == {1, 3} and set(df["draft_quality"]) == {0.6, 0.8}
    assert "speedup_step_ci_lo" in df.columns
    r = runner.invoke(app, ["sweep", "--workload", "rl-zero-8b", "--set", "num_prompts_per_step=8", "--k", "1",
                            "--executor", "serial", "--cache-dir", str(tmp_path / "cache"), "--json", "--no-progress"])
    assert r.exit_code == 0, r.output
    recs = json.loads(r.stdout)
    assert recs[0]["k"] == 1 and recs[0]["speedup_step"] > 1
    r = runner.invoke(app, ["sweep", "--workload", "rl-zero-8b", "--k", "1", "--acceptance-length", "3.32",
                            "--no-cache", "--no-progress"])
    assert r.exit_code == 2 and "impossible at k = 1" in r.output


@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="ray is not installed (optional extra: pip install 'rlsim[distributed]')")
def test_ray_executor_matches_local(tmp_path):
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        grid = dict(SMALL, k=[1, 3], draft_quality=[0.7, 0.9])
        on_ray = sweep(grid, executor="ray", cache_dir=tmp_path)
        assert on_ray.attrs["n_simulated"] == 4
    finally:
        ray.shutdown()
    local = sweep(grid, executor="serial", use_cache=False)
    cols = ["speedup_step", "speedup_generation", "ar_step_s", "spec_step_s"]
    pd.testing.assert_frame_equal(on_ray[cols], local[cols])
