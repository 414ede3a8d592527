"""``rlsim plan``: the estimator against the simulator, the search's bookkeeping, and reproducible commands."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import yaml

from rlsim.errors import ConfigurationError
from rlsim.studies import plan as P

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    d = yaml.safe_load((ROOT / "workloads" / "rl-think-8b.yaml").read_text())
    d.update(name="tiny-think", num_prompts_per_step=8, num_generations_per_prompt=4, gpus=8,
             response_length={"distribution": "lognormal", "median_tokens": 300, "sigma": 0.8, "min_tokens": 16,
                              "max_tokens": 2048})
    d["sources"].update({k: "test" for k in ("num_prompts_per_step", "num_generations_per_prompt", "gpus",
                                              "response_length")})
    p = tmp_path_factory.mktemp("plan") / "tiny.yaml"
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    return str(p)


def test_estimator_cost_model_is_the_projections():
    """The estimator builds its rollout cost model as pipeline/setup.build_setup does: same iteration times."""
    from rlsim.costmodel import IterationBatch
    from rlsim.pipeline import build_setup
    from rlsim.scenario import build_scenario

    est = P.Estimator({"model": "qwen3-235b"})
    d = P.DrafterOption("eagle3")
    for tp, ep, k in ((8, True, 3), (16, False, 5), (4, True, 0)):
        cost, mem, _ = est.generation(tp, ep, k, d)
        setup = build_setup(build_scenario(model="qwen3-235b", gpus=512, tensor_parallel_size=tp, enable_expert_parallel=ep,
                                           k=k))
        ref = setup.cost_spec
        b = IterationBatch(n_decode=[1, 17, 300], k=[k] * 3, decode_kv_tokens=[5e3, 2e5, 3e6])
        assert np.allclose(cost.iteration_time_s(b), ref.iteration_time_s(b), rtol=1e-12)
        assert mem.kv_capacity_tokens == setup.memory_spec.kv_capacity_tokens


def test_fluid_estimate_tracks_the_simulated_generation():
    """The fluid decode of the critical replicas against the simulator's rollout (same sequences, same cost model):
    within 3% for a synchronous step (the estimate leaves out acceptance noise, queueing and prefill)."""
    from rlsim.api import project_scenario

    est = P.Estimator({"workload": "rl-think-8b"})
    for tp, k in ((1, 3), (2, 0)):
        c = P.Candidate(32, 0, None, None, tp, False, k, P.DrafterOption("eagle3"))
        est.estimate(c)
        r = project_scenario(workload="rl-think-8b", tensor_parallel_size=tp, k=k)
        sim = (r.speculative if k else r.baseline).phases_s["generation"]
        assert c.est_parts["generation_s"] == pytest.approx(sim, rel=0.03)
        assert c.est_s == pytest.approx((r.speculative if k else r.baseline).step_s, rel=0.03)


def test_fluid_many_equals_one_by_one():
    est = P.Estimator({"workload": "rl-think-8b"})
    cost, mem, _ = est.generation(1, False, 3, P.DrafterOption("eagle3"))
    al = est.acceptance_length(3, P.DrafterOption("eagle3"))
    shards = np.array_split(np.arange(est.responses.size), 32)[:3]
    reps = [(al, est.prompts[s], est.responses[s], 1024, mem.kv_capacity_tokens) for s in shards]
    many = P.fluid_decode_many(cost, 3, reps)
    one = [P.fluid_decode_s(cost, 3, *r) for r in reps]
    assert many == pytest.approx(one, rel=1e-12) and len(set(many)) == 3


def test_memory_infeasible_points_are_never_candidates():
    est = P.Estimator({"model": "qwen3-235b", "hardware": "h100-sxm"})
    inp = P.PlanInputs(base={"model": "qwen3-235b", "hardware": "h100-sxm"}, gpus=64, gpu_counts=[64], ks=[3], max_lag=0)
    cands, _ = P.enumerate_candidates(inp, est)
    assert {c.tp for c in cands} and min(c.tp for c in cands) >= 4  # fp8 235B: 59 GB per GPU at TP 4 > 51 GB usable
    with pytest.raises(ConfigurationError, match="no configuration fits 8 GPUs"):
        P.plan(P.PlanInputs(base={"model": "qwen3-235b", "hardware": "h100-sxm"}, gpus=8, ks=[3], max_lag=0,
                            executor="serial"))


def test_plan_end_to_end_best_front_and_reproducible_commands(tiny):
    from typer.testing import CliRunner

    from rlsim.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["plan", "--workload", tiny, "--gpus", "8", "--max-simulations", "8", "--executor", "serial",
                            "--time-budget", "600", "--json", "--steps", "10", "--gpu-hour-price", "2"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    best = d["best"]
    for key in ("command", "step_s", "gpu_hours_per_step", "configuration", "bottleneck", "dollars_per_run"):
        assert key in best
    assert best["gpu_hours_per_step"] == pytest.approx(best["gpus"] * best["step_s"] / 3600)
    assert best["dollars_per_run"] == pytest.approx(2 * 10 * best["gpu_hours_per_step"])
    sims = [c for c in d["candidates"] if c["simulated"]]
    assert 2 <= d["search"]["simulated"] <= 8 and len(sims) >= d["search"]["simulated"]
    assert best["step_s"] == min(c["step_s"] for c in sims)
    assert d["references"] and all(best["step_s"] <= ref["step_s"] for ref in d["references"])
    front = d["pareto"]
    for a in front:  # nothing simulated beats a front point in both step time and GPU-hours
        assert not any(c["step_s"] < a["step_s"] and c["gpu_hours_per_step"] < a["gpu_hours_per_step"] for c in sims)
    assert [a["step_s"] for a in front] == sorted((a["step_s"] for a in front), reverse=True)
    # the printed command reproduces the step time
    for row in [best] + front[:1]:
        args = shlex.split(row["command"])
        assert args[:2] == ["rlsim", "project"]
        out = runner.invoke(app, args[1:] + ["--json"])
        assert out.exit_code == 0, out.output
        p = json.loads(out.stdout)
        assert (p["speculative"] if row["k"] else p["baseline"])["step_s"] == pytest.approx(row["step_s"], rel=1e-12)


def test_dominated_points_could_not_have_won(tiny):
    res = P.plan(P.PlanInputs(base={"workload": tiny}, gpus=8, max_simulations=6, executor="serial", time_budget_s=600))
    best = res.ranked()[0].step_s
    done = [(c.step_s, c.gpu_hours_per_step) for c in res.simulated_candidates()]
    pruned = [c for c in res.candidates if c.pruned == "dominated"]
    assert pruned
    for c in pruned:  # even the most favourable calibration of its family cannot make it faster or cheaper
        lb = c.est_s * res.ratios.get(c.family, P.PRIOR_RATIO) * P.PRUNE_MARGIN
        assert lb >= best * 0.999 or any(s <= lb and h <= c.gpus * lb / 3600 for s, h in done)


def test_plan_plots_are_written(tiny, tmp_path):
    from rlsim.report.plan_plots import save_plan_plots

    res = P.plan(P.PlanInputs(base={"workload": tiny}, gpus=8, max_simulations=4, executor="serial", time_budget_s=600))
    paths = save_plan_plots(res, tmp_path / "plots")
    assert [p.name for p in paths] == ["pareto.png", "scaling.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_command_round_trips_every_flag():
    kw = {"model": "qwen3-235b", "hardware": "h100-sxm", "gen_gpus": 96, "train_gpus": 32, "lag": 2,
          "tensor_parallel_size": 16, "k": 5, "drafter": "ngram", "draft_quality": 0.61, "engine": "ideal",
          "enable_expert_parallel": False, "in_flight_weight_updates": True, "seed": 3}
    cmd = P.command(kw)
    assert cmd == ("rlsim project --model qwen3-235b --hardware h100-sxm --gen-gpus 96 --train-gpus 32 --lag 2 --tp 16 "
                   "--k 5 --drafter ngram --draft-quality 0.61 --engine ideal --seed 3 --no-expert-parallel "
                   "--in-flight-weight-updates")
    with pytest.raises(ConfigurationError, match="no rlsim project flag"):
        P.command({"model": "qwen3-8b", "num_prompts_per_step": 3})
