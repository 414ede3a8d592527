"""The trainer's memory model (costmodel/training_memory.py) and what a projection does with it
(pipeline/training_fit.py): one test per constraint, the NeMo-RL recipes that ran, the issue's refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlsim.catalog import TrainingParallelism, load_hardware, load_model
from rlsim.costmodel import training_memory as tm
from rlsim.errors import ConfigurationError
from rlsim.pipeline import build_setup
from rlsim.scenario import build_scenario

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "validation" / "nemo-rl-v0.6.0" / "examples" / "configs" / "recipes" / "llm" / "performance")
                 .glob("*.yaml"))
GB = 1e9


def _mem(model="qwen3-8b", hw="gb200-nvl72", gpus=8, max_total=8192, colocated=False, rollout=None, **par):
    return tm.training_memory(load_model(model), load_hardware(hw), TrainingParallelism(**par), gpus, max_total,
                              colocated=colocated, rollout=rollout)


# ------------------------------------------------------------------ weights, gradients, optimizer (ZeRO-1)
def test_weights_and_grads_are_bf16_of_the_largest_stage():
    m = load_model("qwen3-8b")
    mem = _mem(gpus=8, tensor_model_parallel_size=2)
    params = sum(tm.stage_params(m, mem.layout)[0])
    assert mem.weights_bytes == pytest.approx(2.0 * params) and mem.grads_bytes == pytest.approx(2.0 * params)
    # the whole model over TP 2 (one stage): half its parameters, embedding and LM head included
    assert params == pytest.approx(m.total_params / 2, rel=1e-9)


def test_optimizer_state_is_sharded_over_data_parallel_ranks():
    """fp32 master + two Adam moments = 12 B per parameter, divided over DP (ZeRO-1): doubling DP halves it,
    while weights and gradients stay whole on every rank."""
    a = _mem(gpus=8, tensor_model_parallel_size=2)
    b = _mem(gpus=16, tensor_model_parallel_size=2)
    assert a.layout.dp == 4 and b.layout.dp == 8
    assert b.optimizer_bytes == pytest.approx(a.optimizer_bytes / 2)
    assert b.weights_bytes == a.weights_bytes and b.grads_bytes == a.grads_bytes
    assert a.optimizer_bytes == pytest.approx(12.0 * load_model("qwen3-8b").total_params / 2 / 4)


def test_expert_optimizer_state_is_sharded_over_expert_data_parallel_ranks():
    m = load_model("qwen3-30b-a3b")
    a = _mem("qwen3-30b-a3b", gpus=8, expert_model_parallel_size=8)
    b = _mem("qwen3-30b-a3b", gpus=8, expert_model_parallel_size=4)
    dense, expert = tm.stage_params(m, a.layout)[0]
    assert a.layout.edp == 1 and b.layout.edp == 2
    assert a.optimizer_bytes == pytest.approx(12.0 * (dense / 8 + expert / 1))
    assert b.weights_bytes - a.weights_bytes == pytest.approx(2.0 * expert)  # experts spread half as wide


# ------------------------------------------------------------------ activations
def test_activation_checkpointing_keeps_only_each_layers_input():
    full = _mem(gpus=8, tensor_model_parallel_size=2)
    rc = _mem(gpus=8, tensor_model_parallel_size=2, activation_checkpointing=True)
    assert rc.activations_bytes < full.activations_bytes / 5
    m, L = load_model("qwen3-8b"), rc.layout
    one_layer = tm.activation_bytes_per_token(m, L, moe=False) * 8192
    kept = m.num_hidden_layers * 2.0 * m.hidden_size * 8192  # bf16 hidden per token per layer (TP 2 without SP)
    assert rc.activations_bytes == pytest.approx(kept + one_layer)


def test_activations_scale_with_micro_batch_tokens_and_context_parallelism_divides_them():
    a = _mem(max_total=8192)
    b = _mem(max_total=16384)
    c = _mem(gpus=8, max_total=16384, context_parallel_size=2)
    assert b.activations_bytes == pytest.approx(2 * a.activations_bytes)
    assert c.activations_bytes == pytest.approx(b.activations_bytes / 2)


def test_pipeline_first_stage_holds_pp_micro_batches_and_interleaving_adds():
    """1F1B: the first stage keeps PP micro-batches of its L/PP layers in flight: PP does not divide its activation
    memory; the interleaved schedule holds PP + (PP - 1) / VPP."""
    pp1 = _mem(gpus=8)
    pp4 = _mem(gpus=8, pipeline_model_parallel_size=4)
    vpp = _mem(gpus=8, pipeline_model_parallel_size=4, virtual_pipeline_model_parallel_size=3)
    assert pp4.activations_bytes == pytest.approx(pp1.activations_bytes, rel=0.05)  # 9 of 36 layers x 4 in flight
    assert vpp.activations_bytes == pytest.approx(pp4.activations_bytes * (4 + 3 / 3) / 4, rel=1e-6)


def test_fewer_micro_batches_than_stages_hold_fewer():
    m, hw = load_model("qwen3-8b"), load_hardware("gb200-nvl72")
    par = TrainingParallelism(pipeline_model_parallel_size=4)
    few = tm.training_memory(m, hw, par, 8, 8192, colocated=False, tokens_per_optimizer_step=2 * 8192 * 2)
    many = tm.training_memory(m, hw, par, 8, 8192, colocated=False, tokens_per_optimizer_step=64 * 8192 * 2)
    x = 9 * tm.activation_bytes_per_token(m, many.layout, moe=False) * 8192  # one micro-batch over a stage's layers
    assert many.activations_bytes == pytest.approx(4 * x)  # the first stage, 4 in flight, needs most
    assert few.phases["training"] <= many.phases["training"] - 1.5 * x  # 2 in flight: the first stage needs 2x less


def test_logits_on_the_last_stage_fp32_over_the_vocabulary_shard():
    m = load_model("qwen3-8b")
    mem = _mem(gpus=8, tensor_model_parallel_size=2, max_total=4096)
    assert mem.logits_bytes == pytest.approx(4096 * m.vocab_size / 2 * 8.0)


# ------------------------------------------------------------------ the log-prob pass and the colocated phases
def test_logprob_pass_holds_the_optimizer_only_when_not_colocated():
    sep = _mem(gpus=8, tensor_model_parallel_size=2)
    rollout = tm.RolloutFootprint(16e9, 0.6)
    col = _mem(gpus=8, tensor_model_parallel_size=2, colocated=True, rollout=rollout)
    # colocated: the optimizer state is on the host until training; the sleeping engine keeps its reserve
    assert sep.phases["logprob"] - col.phases["logprob"] == pytest.approx(sep.optimizer_bytes - tm.NON_KV_RESERVE_BYTES)
    assert sep.phases["logprob"] < sep.phases["training"]


def test_colocated_refit_holds_both_sets_of_weights_and_generation_the_engines_share():
    rollout = tm.RolloutFootprint(30e9, 0.6)
    col = _mem(gpus=8, tensor_model_parallel_size=2, colocated=True, rollout=rollout)
    hw = load_hardware("gb200-nvl72")
    assert col.phases["refit"] == pytest.approx(col.weights_bytes + col.grads_bytes + 30e9 + tm.TRAINER_RESERVE_BYTES
                                                + tm.NON_KV_RESERVE_BYTES)
    assert col.phases["generation"] == pytest.approx(0.6 * hw.hbm_capacity_bytes + tm.TRAINER_RESERVE_BYTES)
    greedy = _mem(gpus=8, tensor_model_parallel_size=2, colocated=True, rollout=tm.RolloutFootprint(30e9, 0.98))
    assert not greedy.fits and greedy.binding_phase == "generation"


def test_colocated_engine_taking_the_whole_gpu_is_refused():
    with pytest.raises(ConfigurationError, match=r"generation"):
        build_setup(build_scenario(workload="rl-think-8b", gpus=8, num_prompts_per_step=4,
                                   engine_config={"gpu_memory_utilization": 0.98}))


# ------------------------------------------------------------------ what projections do with it
def test_issue_example_is_refused_at_once_with_numbers_and_the_smallest_change():
    with pytest.raises(ConfigurationError) as e:
        build_setup(build_scenario(model="qwen3-235b", gpus=8, hardware="h100-sxm", k=3))
    msg = str(e.value)
    assert "does not fit 8 x h100-sxm" in msg and "available 85.0 GB per GPU" in msg
    assert "470.2 GB per GPU" in msg  # 235B params x 16 B / 8 GPUs before activations
    assert "smallest change that fits: --gpus 64" in msg
    # and the GPU count it names does fit
    assert build_setup(build_scenario(model="qwen3-235b", gpus=64, hardware="h100-sxm", k=3)).training_fit.memory.fits


def test_a_layout_that_does_not_fit_is_replaced_and_the_projection_says_so():
    sc = build_scenario(model="qwen3-235b", gpus=512, training={"context_parallel_size": 1})
    fit = build_setup(sc).training_fit
    assert fit.chosen and fit.memory.fits
    assert "training layout chosen to fit" in fit.note and "needs 2" in fit.note  # the workload's needed > 200 GB
    assert fit.par.context_parallel_size * fit.par.tensor_model_parallel_size > 4 or fit.par.activation_checkpointing


def test_a_layout_that_does_not_divide_the_gpus_is_replaced():
    fit = build_setup(build_scenario(workload="rl-think-8b", gpus=1, num_prompts_per_step=4)).training_fit
    assert fit.chosen and fit.par.tensor_model_parallel_size == 1 and "does not divide 1 GPUs" in fit.note


def test_the_workloads_own_layout_is_kept_when_it_fits():
    for wl in ("rl-235b", "rl-think-8b", "rl-think-30b-a3b", "rl-think-32b", "rl-llama-70b", "rl-deepseek-v3"):
        fit = build_setup(build_scenario(workload=wl)).training_fit
        assert not fit.chosen and fit.memory.fits, wl


def test_a_recipe_layout_that_does_not_fit_is_refused_with_the_change_that_fits():
    from rlsim.studies.nemo_rl import from_nemo_rl

    kw = from_nemo_rl(next(p for p in RECIPES if p.name == "grpo-qwen3-235b-16n8g.yaml")).kwargs
    kw["training"] = dict(kw["training"], activation_checkpointing=False, context_parallel_size=1)
    with pytest.raises(ConfigurationError, match=r"with the recipe's layout .* smallest change that fits: "):
        build_setup(build_scenario(**kw, hardware="h100-sxm"))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_every_nemo_rl_performance_recipe_fits_the_gpus_it_ran_on(recipe):
    """NeMo-RL ran these on H100 (shared/reference/nemo-rl-performance-h100.md): the model must agree they fit."""
    from rlsim.studies.nemo_rl import from_nemo_rl

    fit = build_setup(build_scenario(**from_nemo_rl(recipe).kwargs, hardware="h100-sxm")).training_fit
    assert fit.memory.fits and not fit.chosen
    assert fit.memory.need_bytes > 30 * GB  # and not trivially: a 235B-671B MoE fills a good part of 85 GB


def _tiny_workload(tmp_path) -> str:
    import yaml

    d = yaml.safe_load((ROOT / "workloads" / "rl-think-8b.yaml").read_text())
    d.update(name="tiny-think", num_prompts_per_step=4, num_generations_per_prompt=4, gpus=8,
             response_length={"distribution": "lognormal", "median_tokens": 200, "sigma": 0.8, "min_tokens": 16,
                              "max_tokens": 1024})
    d["sources"].update({k: "test" for k in ("num_prompts_per_step", "num_generations_per_prompt", "gpus",
                                              "response_length")})
    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    return str(p)


def test_project_json_reports_memory_cost_and_bottleneck(tmp_path):
    import json

    from typer.testing import CliRunner

    from rlsim.cli import app

    wl = _tiny_workload(tmp_path)
    r = CliRunner().invoke(app, ["project", "--workload", wl, "--json", "--gpu-hour-price", "2.5"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["memory"]["fits"] and d["memory"]["layout"]["TP"] == 2 and not d["memory"]["chosen"]
    c = d["cost"]
    spec = c["modes"]["speculative"]
    assert c["gpus"] == 8 and c["steps"] is None and "gpu_hours_per_run" not in spec
    assert spec["gpu_hours_per_step"] == pytest.approx(8 * d["speculative"]["step_s"] / 3600)
    assert spec["dollars_per_step"] == pytest.approx(2.5 * spec["gpu_hours_per_step"])
    b = d["bottleneck"]["speculative"]
    assert b["bound_by"] in ("rollout tail", "generation throughput", "training", "weight sync", "data")
    assert sum(b["terms_s"].values()) == pytest.approx(d["speculative"]["step_s"], rel=1e-9)  # the step is their sum
    assert b["statement"].startswith("bound by the ")
    table = CliRunner().invoke(app, ["project", "--workload", wl, "--gpu-hour-price", "2.5"])
    assert table.exit_code == 0 and "bound by the" in table.stdout and "GPU-hours per step" in table.stdout
    assert "memory per GPU" in table.stdout


def test_async_cost_per_run_is_steps_times_the_step_and_its_terms_add_up(tmp_path):
    import json

    from typer.testing import CliRunner

    from rlsim.cli import app

    wl = _tiny_workload(tmp_path)
    r = CliRunner().invoke(app, ["project", "--workload", wl, "--gen-gpus", "4", "--train-gpus", "4", "--lag", "1",
                                 "--steps", "500", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    spec = d["cost"]["modes"]["speculative"]
    assert d["cost"]["gpus"] == 8 and d["cost"]["steps"] == 500
    assert spec["gpu_hours_per_run"] == pytest.approx(500 * 8 * d["speculative"]["step_s"] / 3600)
    b = d["bottleneck"]["speculative"]
    # exposed generation + data + log-prob + training + drain + refit = the steady-state step
    assert sum(b["terms_s"].values()) == pytest.approx(d["speculative"]["step_s"], rel=1e-9)
    assert set(b["idle_fraction"]) == {"generation_gpus", "training_gpus"}


def test_sync_steps_cost_the_simulated_run(tmp_path):
    import json

    from typer.testing import CliRunner

    from rlsim.cli import app

    r = CliRunner().invoke(app, ["project", "--workload", _tiny_workload(tmp_path), "--steps", "2", "--json",
                                 "--gpu-hour-price", "3"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    off = d["cost"]["modes"]["offline_draft"]
    assert off["gpu_hours_per_run"] == pytest.approx(8 * d["totals"]["offline_step_s"] / 3600)
    assert off["dollars_per_run"] == pytest.approx(3 * off["gpu_hours_per_run"])
