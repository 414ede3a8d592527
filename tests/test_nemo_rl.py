"""NeMo-RL GRPO recipes -> scenarios (`rlsim project --from-nemo-rl`)."""

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rlsim.errors import ConfigurationError
from rlsim.report.cli import app
from rlsim.report.nemo_rl import from_nemo_rl, merge_flags
from rlsim.scenario import build_scenario

EX = Path(__file__).resolve().parents[1] / "examples"
SYNC = EX / "nemo_rl_grpo_qwen3_8b_base_eagle3.yaml"
ASYNC = EX / "nemo_rl_grpo_qwen3_8b_async.yaml"
HAS_ASYNC = importlib.util.find_spec("rlsim.pipeline.asynchronous") is not None
runner = CliRunner()


def test_example_recipe_maps_the_documented_keys():
    m = from_nemo_rl(SYNC)
    assert m.kwargs == {"model": "qwen3-8b-base", "num_prompts_per_step": 64, "num_generations_per_prompt": 32,
                        "max_new_tokens": 16384, "max_total_sequence_length": 16384, "tensor_parallel_size": 1,
                        "generation_dtype": "bf16", "drafter": "eagle3", "k": 3, "lag": 0, "gpus": 32, "colocated": True,
                        # the Megatron layout, batch sizes, KL term and vLLM scheduler defaults (issue 14)
                        "training": {"tensor_model_parallel_size": 2, "pipeline_model_parallel_size": 1,
                                     "context_parallel_size": 1, "sequence_parallel": True,
                                     "activation_checkpointing": True, "train_global_batch_size": 2048,
                                     "train_micro_batch_size": 1, "logprob_batch_size": 2},
                        "training_model": "layout", "reference_logprobs": False,
                        "engine_config": {"max_num_seqs": 1024, "max_num_batched_tokens": 16384,
                                   "gpu_memory_utilization": 0.6}}
    for key in ("grpo.num_prompts_per_step", "policy.max_total_sequence_length",
                "policy.generation.vllm_cfg.tensor_parallel_size",
                "policy.generation.vllm_kwargs.speculative_config.num_speculative_tokens", "grpo.async_grpo.enabled",
                "cluster.num_nodes", "policy.generation.colocated.enabled"):
        assert key in m.used
    for key in ("loss_fn.ratio_clip_max", "policy.optimizer.kwargs.lr", "policy.generation.vllm_cfg.enforce_eager",
                "grpo.async_grpo.max_trajectory_age_steps"):  # async is off: its age is not used
        assert key in m.ignored
    assert not set(m.used) & set(m.ignored)
    sc = build_scenario(**m.kwargs)
    assert sc.workload.name == "rl-zero-8b" and sc.k == 3 and sc.workload.sequences_per_step == 2048


def test_async_recipe_inherits_defaults_and_splits_gpus():
    m = from_nemo_rl(ASYNC)
    assert m.kwargs["lag"] == 1 and m.kwargs["in_flight_weight_updates"] is False
    assert (m.kwargs["gen_gpus"], m.kwargs["train_gpus"]) == (48, 16)
    assert m.kwargs["k"] == 3 and m.kwargs["num_prompts_per_step"] == 64  # from the parent recipe
    sc = build_scenario(**m.kwargs)
    assert sc.lag == 1 and not sc.workload.colocated and sc.workload.gen_gpus == 48


def test_interpolation_methods_and_flags_override():
    recipe = {"policy": {"model_name": "Qwen/Qwen3-8B", "max_total_sequence_length": 8192,
                         "generation": {"max_new_tokens": "${policy.max_total_sequence_length}",
                                        "vllm_cfg": {"precision": "fp8", "tensor_parallel_size": 2},
                                        "vllm_kwargs": {"speculative_config": {"method": "ngram",
                                                                               "num_speculative_tokens": 5,
                                                                               "prompt_lookup_max": 4}}}},
              "cluster": {"num_nodes": 2, "gpus_per_node": 8}}
    m = from_nemo_rl(recipe)
    assert m.kwargs == {"model": "qwen3-8b", "max_new_tokens": 8192, "max_total_sequence_length": 8192,
                        "tensor_parallel_size": 2, "generation_dtype": "fp8", "drafter": "ngram", "k": 5, "gpus": 16}
    assert "policy.generation.vllm_kwargs.speculative_config.prompt_lookup_max" in m.ignored
    kw = merge_flags(m, {"k": 2, "gpus": None, "gen_gpus": 8, "train_gpus": 8})
    assert kw["k"] == 2 and "gpus" not in kw and kw["gen_gpus"] == 8
    no_spec = from_nemo_rl({"grpo": {"num_prompts_per_step": 16}})
    assert "k" not in no_spec.kwargs and any("no speculative_config" in n for n in no_spec.notes)
    with pytest.raises(ConfigurationError, match="method"):
        from_nemo_rl({"policy": {"generation": {"vllm_kwargs": {"speculative_config": {"method": "medusa"}}}}})
    with pytest.raises(ConfigurationError, match="cannot read"):
        from_nemo_rl(EX / "nope.yaml")


def test_cli_from_nemo_rl_json_and_flag_override():
    r = runner.invoke(app, ["project", "--from-nemo-rl", str(SYNC), "--k", "5", "--acceptance-length", "4.35", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["scenario"]["num_speculative_tokens"] == 5 and d["acceptance_length"] == pytest.approx(4.35)  # flags win
    assert d["scenario"]["gpus"] == 32 and d["scenario"]["num_prompts_per_step"] == 64
    assert "grpo.num_prompts_per_step" in d["nemo_rl"]["used"] and "loss_fn.ratio_clip_max" in d["nemo_rl"]["ignored"]
    r = runner.invoke(app, ["project", "--from-nemo-rl", str(SYNC)])
    assert r.exit_code == 0, r.output
    assert "used  grpo.num_prompts_per_step = 64" in r.stdout and "ignored:" in r.stdout


@pytest.mark.skipif(not HAS_ASYNC, reason="asynchronous pipeline (rlsim.pipeline.asynchronous) not in this build")
def test_cli_async_recipe_projects():
    r = runner.invoke(app, ["project", "--from-nemo-rl", str(ASYNC), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["scenario"]["max_trajectory_age_steps"] == 1 and d["scenario"]["gen_gpus_resolved"] == 48
