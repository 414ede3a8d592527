"""NeMo-RL GRPO recipes -> scenarios (`rlsim project --from-nemo-rl`)."""

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rlsim.errors import ConfigurationError
from rlsim.cli import app
from rlsim.studies.nemo_rl import from_nemo_rl, merge_flags
from rlsim.scenario import build_scenario

EX = Path(__file__).resolve().parents[1] / "examples"
SYNC = EX / "nemo_rl_grpo_qwen3_8b_base_eagle3.yaml"
ASYNC = EX / "nemo_rl_grpo_qwen3_8b_async.yaml"
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
                                          "gpu_memory_utilization": 0.6, "enforce_eager": False}}
    for key in ("grpo.num_prompts_per_step", "policy.max_total_sequence_length",
                "policy.generation.vllm_cfg.tensor_parallel_size",
                "policy.generation.vllm_kwargs.speculative_config.num_speculative_tokens", "grpo.async_grpo.enabled",
                "cluster.num_nodes", "policy.generation.colocated.enabled"):
        assert key in m.used
    assert "policy.generation.vllm_cfg.enforce_eager" in m.used  # read since issue 18 (CUDA graphs on / off)
    for key in ("loss_fn.ratio_clip_max", "policy.optimizer.kwargs.lr",
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
    assert "used  grpo: num_prompts_per_step=64" in r.stdout and "ignored (no effect" in r.stdout
    assert "--verbose lists them" in r.stdout and "loss_fn.ratio_clip_max" not in r.stdout  # grouped and short
    r = runner.invoke(app, ["project", "--from-nemo-rl", str(SYNC), "--verbose"])
    assert r.exit_code == 0, r.output
    assert "used  grpo.num_prompts_per_step = 64" in r.stdout and "ratio_clip_max" in r.stdout  # every key


def test_cli_async_recipe_projects():
    r = runner.invoke(app, ["project", "--from-nemo-rl", str(ASYNC), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["scenario"]["max_trajectory_age_steps"] == 1 and d["scenario"]["gen_gpus_resolved"] == 48


# ---------------------------------------------------------------------------------------------------------------
# The real recipes of NeMo-RL v0.6.0 (copied unchanged under validation/nemo-rl-v0.6.0, issue 18)
NR = Path(__file__).resolve().parents[1] / "validation" / "nemo-rl-v0.6.0" / "examples" / "configs"
MATH_8B = NR / "grpo_math_8B.yaml"
EAGLE3 = NR / "recipes" / "llm" / "grpo-qwen3-1.7b-1n8g-megatron-eagle3.yaml"
ASYNC_235B = NR / "recipes" / "llm" / "performance" / "grpo-qwen3-235b-32n8g-async-1off.yaml"
SGLANG = NR / "grpo_math_1B_sglang.yaml"
SGLANG_MATH = NR / "recipes" / "llm" / "grpo-qwen2.5-math-1.5b-instruct-1n8g-fsdp2tp1-sglang.yaml"


def test_real_recipe_math_8b_reads_every_step_time_key():
    m = from_nemo_rl(MATH_8B)
    assert m.files == ["grpo_math_8B.yaml", "grpo_math_1B.yaml"]  # the parent chain, resolved
    kw = m.kwargs
    assert kw["model"] == "llama-3.1-8b" and kw["gpus"] == 8 and (kw["num_prompts_per_step"], kw["num_generations_per_prompt"]) == (64, 32)
    assert kw["engine_config"] == {"max_num_seqs": 1024, "max_num_batched_tokens": 16384, "gpu_memory_utilization": 0.6,
                                   "enforce_eager": False}
    assert kw["training"]["train_global_batch_size"] == 512 and kw["training"]["sequence_packing"] is True
    # ${mul:${policy.max_total_sequence_length}, ${policy.train_micro_batch_size}} resolved: 4096 x 1, 4096 x 2
    assert kw["training"]["train_mb_tokens"] == 4096 and kw["training"]["logprob_mb_tokens"] == 8192
    for key in ("policy.generation.backend", "policy.generation.vllm_cfg.kv_cache_dtype", "policy.generation.vllm_cfg.enforce_eager",
                "policy.generation.vllm_cfg.gpu_memory_utilization", "policy.dynamic_batching.enabled",
                "policy.draft.enabled", "policy.train_global_batch_size"):
        assert key in m.used, key
    assert "kv_cache_dtype" not in kw  # "auto": the model's dtype, as rlsim's default
    sc = build_scenario(**merge_flags(m, {}))
    assert sc.workload.engine.enforce_eager is False and sc.engine == "vllm-0.17.1"


def test_real_recipe_eagle3_online_draft_training(tmp_path):
    m = from_nemo_rl(EAGLE3)
    kw = m.kwargs
    assert kw["model"] == "qwen3-1.7b" and kw["drafter"] == "eagle3" and kw["k"] == 3 and kw["gpus"] == 8
    assert kw["options"] == {"online_draft_training": True}
    assert kw["training"]["sequence_packing"] is False and kw["training"]["pipeline_model_parallel_size"] == 1
    assert any("online draft training" in n for n in m.notes)
    # priced: the speculative column's training phase grows by the draft's training, nothing else changes
    from rlsim import project_scenario

    base = {k_: v for k_, v in kw.items() if k_ != "options"}
    off = project_scenario(**base)
    on = project_scenario(**base, options={"online_draft_training": True})
    assert on.speculative.phases_s["training"] > off.speculative.phases_s["training"]
    assert on.baseline.phases_s["training"] == pytest.approx(off.baseline.phases_s["training"])
    assert on.speculative.phases_s["generation"] == pytest.approx(off.speculative.phases_s["generation"])
    r = runner.invoke(app, ["project", "--from-nemo-rl", str(EAGLE3), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["scenario"]["model"] == "qwen3-1.7b" and d["scenario"]["options"]["online_draft_training"] is True
    assert "assumed gb200-nvl72" in d["nemo_rl"]["assumed_gpu"] and "8 GPUs per node" in d["nemo_rl"]["assumed_gpu"]


def test_real_recipe_235b_async_reads_memory_and_layout(tmp_path):
    m = from_nemo_rl(ASYNC_235B)
    kw = m.kwargs
    assert kw["lag"] == 1 and kw["in_flight_weight_updates"] is True and (kw["gen_gpus"], kw["train_gpus"]) == (128, 128)
    assert kw["engine_config"]["gpu_memory_utilization"] == 0.8 and kw["tensor_parallel_size"] == 8
    assert {k_: kw["training"][k_] for k_ in ("tensor_model_parallel_size", "pipeline_model_parallel_size",
                                              "expert_model_parallel_size", "context_parallel_size")} == \
        {"tensor_model_parallel_size": 4, "pipeline_model_parallel_size": 8, "expert_model_parallel_size": 16,
         "context_parallel_size": 1}
    # a recipe at 0.88 (the issue's) is read, not refused for the default 0.6's memory
    from rlsim.pipeline import build_setup

    import yaml

    raw = yaml.safe_load(ASYNC_235B.read_text())
    raw["policy"]["generation"]["vllm_cfg"]["gpu_memory_utilization"] = 0.88
    raw["defaults"] = str(ASYNC_235B.parent / "grpo-qwen3-235b-16n8g.yaml")
    (tmp_path / "r088.yaml").write_text(yaml.safe_dump(raw))  # its parent by absolute path
    m88 = from_nemo_rl(tmp_path / "r088.yaml")
    sc = build_scenario(**merge_flags(m88, {"hardware": "h100-sxm"}))
    assert sc.workload.engine.gpu_memory_utilization == 0.88
    assert build_setup(sc).memory_ar.kv_capacity_tokens > 0


def test_real_recipes_sglang_backend_mapped_to_sglang_profile_or_projected_as_vllm(tmp_path):
    ms = from_nemo_rl(SGLANG)  # the backend's own profile: SGLang 0.5.6 with NeMo-RL's unset max_running_requests
    assert ms.kwargs["engine"] == "sglang-0.5.6-nemo-rl"
    assert ms.kwargs["engine_config"] == {"gpu_memory_utilization": 0.7} and ms.kwargs["tensor_parallel_size"] == 1
    assert any("sglang-0.5.6-nemo-rl" in n for n in ms.notes)
    sc = build_scenario(**merge_flags(ms, {"hardware": "h100-sxm"}))
    assert sc.engine == "sglang-0.5.6-nemo-rl"
    (tmp_path / "grpo_math_1B.yaml").write_text((SGLANG.parent / "grpo_math_1B.yaml").read_text())
    (tmp_path / "meg.yaml").write_text(SGLANG.read_text().replace('backend: "sglang"', 'backend: "megatron"'))
    with pytest.raises(ConfigurationError, match="backend = 'megatron'.*--engine vllm-0.17.1"):
        from_nemo_rl(tmp_path / "meg.yaml")
    m = from_nemo_rl(SGLANG, engine="vllm-0.17.1")
    kw = m.kwargs
    assert kw["engine_config"] == {"gpu_memory_utilization": 0.7}  # sglang_cfg.mem_fraction_static
    assert kw["tensor_parallel_size"] == 1 and kw["max_total_sequence_length"] == 512  # gpus_per_server, context_length
    assert not any(k_.startswith("policy.generation.vllm_cfg.") and not k_.endswith("max_model_len") for k_ in m.used)
    assert kw["model"] == "qwen2.5-1.5b"
    # the Math model of the other SGLang recipe is not in the catalog: refused with the nearest entries
    mm = from_nemo_rl(SGLANG_MATH, engine="vllm-0.17.1")
    assert mm.kwargs["training"]["dynamic_batching"] is True and mm.kwargs["training"]["sequence_packing"] is False
    with pytest.raises(ConfigurationError, match="Qwen2.5-Math-1.5B-Instruct' is not in the catalog .nearest: Qwen/Qwen2.5-1.5B"):
        merge_flags(mm, {})
    r = runner.invoke(app, ["project", "--from-nemo-rl", str(SGLANG_MATH), "--engine", "vllm-0.17.1", "--model",
                            "Qwen/Qwen2.5-1.5B-Instruct", "--num-prompts-per-step", "4", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["scenario"]["model"] == "qwen2.5-1.5b" and d["scenario"]["num_prompts_per_step"] == 4


def test_recipe_without_its_parent_or_without_keys_is_refused(tmp_path):
    (tmp_path / "r.yaml").write_text(EAGLE3.read_text())  # saved without ../../grpo_math_1B.yaml
    with pytest.raises(ConfigurationError, match="parent `defaults: ../../grpo_math_1B.yaml` is not at"):
        from_nemo_rl(tmp_path / "r.yaml")
    (tmp_path / "v.yaml").write_text("trainer:\n  n_gpus_per_node: 8\nactor_rollout_ref:\n  rollout:\n    n: 5\n")
    with pytest.raises(ConfigurationError, match="none of the keys rlsim reads.*use --from-verl"):
        from_nemo_rl(tmp_path / "v.yaml")
    with pytest.raises(ConfigurationError, match="without cluster.num_nodes"):
        from_nemo_rl({"cluster": {"gpus_per_node": 8}, "grpo": {"num_prompts_per_step": 8}})


def test_dynamic_batching_micro_batches_pad_to_their_longest():
    from rlsim.costmodel.training_layout import _dynamic_batches

    bins = _dynamic_batches([512, 100, 4096, 1000, 960, 3000], 4096)
    assert bins == [[4096], [3000], [1000, 1000, 1000, 1000]]  # sorted, n x longest <= 4096
    assert sum(map(sum, bins)) == 4096 + 3000 + 4000  # padded to each micro-batch's longest: charged


def test_interpolation_resolvers():
    from rlsim.studies.configread import resolve_interpolations

    d = resolve_interpolations({"a": 4096, "b": 2, "c": "${mul:${a}, ${b}}", "d": "${oc.select:x.y,7}",
                                "e": "x-${a}", "f": "${.rel}", "g": "${max:${a}, 8192}"})
    assert (d["c"], d["d"], d["e"], d["f"], d["g"]) == (8192, 7, "x-4096", "${.rel}", 8192)
