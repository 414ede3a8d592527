"""verl configs -> scenarios (`rlsim project --from-verl`): verl's trainer config and each example script's
overrides (examples/verl/, copied unchanged from verl b178a3cd5), applied on verl's flattened defaults."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rlsim.errors import ConfigurationError
from rlsim.cli import app
from rlsim.studies.nemo_rl import merge_flags
from rlsim.studies.verl import _expand_shell, from_verl, load_verl
from rlsim.scenario import build_scenario

EX = Path(__file__).resolve().parents[1] / "examples" / "verl"
runner = CliRunner()


def test_trainer_yaml_on_verl_defaults():
    m = from_verl(EX / "ppo_trainer.yaml")
    assert m.files == ["ppo_trainer.yaml", "_generated_ppo_trainer.yaml"]
    kw = m.kwargs
    # verl's defaults: 1024 prompts x n 1, 512 + 512 tokens, vLLM TP 2, 0.5 of memory, 256 sequences, 1 node x 8 GPUs
    assert (kw["num_prompts_per_step"], kw["num_generations_per_prompt"], kw["gpus"]) == (1024, 1, 8)
    assert kw["max_new_tokens"] == 512 and kw["max_total_sequence_length"] == 1024
    assert kw["tensor_parallel_size"] == 2
    assert kw["engine_config"] == {"gpu_memory_utilization": 0.5, "max_num_seqs": 256, "max_num_batched_tokens": 8192,
                                   "enforce_eager": False}
    assert kw["colocated"] is True and kw["lag"] == 0 and kw["reference_logprobs"] is False
    assert "algorithm.adv_estimator" in m.not_modelled  # gae: a critic rlsim does not price
    # its default model (~/models/deepseek-llm-7b-chat) is not in the catalog: refused with the nearest entries
    with pytest.raises(ConfigurationError, match="deepseek-llm-7b-chat' is not in the catalog .nearest: "):
        merge_flags(m, {})
    sc = build_scenario(**merge_flags(m, {"model": "Qwen/Qwen3-8B"}))
    assert sc.workload.model == "qwen3-8b" and sc.workload.engine.max_num_seqs == 256


def test_qwen3_8b_script_overrides():
    m = from_verl(EX / "run_qwen3-8b.sh")
    kw = m.kwargs
    assert kw["model"] == "qwen3-8b"
    assert (kw["num_prompts_per_step"], kw["num_generations_per_prompt"]) == (1024, 5)
    assert kw["max_new_tokens"] == 1024 and kw["max_total_sequence_length"] == 1536
    assert kw["prompt_length"] == {"max_tokens": 512}
    assert kw["tensor_parallel_size"] == 2 and kw["engine_config"]["gpu_memory_utilization"] == 0.6
    assert kw["gpus"] == 8 and kw["reference_logprobs"] is True  # use_kl_loss=True
    tr = kw["training"]
    assert tr["train_global_batch_size"] == 256 * 5 and tr["train_micro_batch_size"] == 32
    assert tr["logprob_batch_size"] == 32 and tr["activation_checkpointing"] is True and tr["sequence_packing"] is True
    assert m.not_modelled == {"actor_rollout_ref.ref.fsdp_config.param_offload": True}
    assert "actor_rollout_ref.rollout.name" in m.used and "trainer.total_epochs" in m.ignored


def test_qwen3moe_megatron_script_shell_variables_and_config_name():
    m = from_verl(EX / "run_qwen3moe-30b_megatron_96gb.sh")
    assert m.files[1] == "_generated_ppo_megatron_trainer.yaml"  # --config-name='ppo_megatron_trainer'
    kw = m.kwargs
    assert kw["model"] == "qwen3-30b-a3b"  # Qwen/Qwen3-30B-A3B-Base, an hf_alias
    # max_prompt_length=$((1024 * 2)), max_response_length=$((1024 * 8)), train_prompt_bsz=512, n_resp_per_prompt=16
    assert kw["max_new_tokens"] == 8192 and kw["max_total_sequence_length"] == 10240
    assert (kw["num_prompts_per_step"], kw["num_generations_per_prompt"]) == (512, 16)
    # INFER_TP=${INFER_TP:-4}; ACTOR_EP=${ACTOR_EP:-$COMMON_EP} with COMMON_EP=${COMMON_EP:-8}
    assert kw["tensor_parallel_size"] == 4 and kw["training"]["expert_model_parallel_size"] == 8
    assert kw["training"]["train_mb_tokens"] == 10240 and kw["training"]["sequence_packing"] is True  # dynamic bsz
    assert kw["engine_config"]["enforce_eager"] is True and kw["engine_config"]["max_num_batched_tokens"] == 10240
    assert kw["reference_logprobs"] is False
    assert "virtual_pipeline_model_parallel_size" not in kw["training"]  # COMMON_VPP=null
    assert set(m.not_modelled) >= {"actor_rollout_ref.actor.megatron.param_offload",
                                   "actor_rollout_ref.actor.megatron.optimizer_offload"}


def test_script_projects_small_through_the_cli():
    r = runner.invoke(app, ["project", "--from-verl", str(EX / "run_qwen3-8b.sh"), "--num-prompts-per-step", "16",
                            "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["scenario"]["model"] == "qwen3-8b" and d["scenario"]["num_generations_per_prompt"] == 5
    assert d["scenario"]["engine_config"]["max_num_seqs"] == 256 and d["scenario"]["generation_parallelism"][
        "tensor_parallel_size"] == 2
    assert d["verl"]["used"]["data.train_batch_size"] == 1024 and "assumed gb200-nvl72" in d["verl"]["assumed_gpu"]
    assert d["speedup"]["step"] > 1.0


def test_overrides_and_shell(tmp_path):
    env = {"A": "3"}
    assert _expand_shell("x=$((A * 1024)) y=${B:-7} z=$A w=${A}", env, []) == "x=3072 y=7 z=3 w=3"
    s = tmp_path / "run.sh"
    s.write_text("N=4\npython3 -m verl.trainer.main_ppo \\\n  data.train_batch_size=$((N * 2)) \\\n"
                 "  +actor_rollout_ref.rollout.engine_kwargs.vllm.speculative_config.method=eagle3 \\\n"
                 "  +actor_rollout_ref.rollout.engine_kwargs.vllm.speculative_config.num_speculative_tokens=2 \\\n"
                 "  ~trainer.logger actor_rollout_ref.model.path=Qwen/Qwen3-1.7B actor_rollout_ref.rollout.name=vllm\n")
    cfg = load_verl(s, [], [])
    assert cfg["data"]["train_batch_size"] == 8 and "logger" not in cfg["trainer"]
    m = from_verl(s)
    assert m.kwargs["drafter"] == "eagle3" and m.kwargs["k"] == 2 and m.kwargs["model"] == "qwen3-1.7b"
    (tmp_path / "none.sh").write_text("echo hello\n")
    with pytest.raises(ConfigurationError, match="no `python3 -m verl.trainer.main_ppo"):
        from_verl(tmp_path / "none.sh")
    (tmp_path / "sg.sh").write_text("python3 -m verl.trainer.main_ppo actor_rollout_ref.rollout.name=sglang\n")
    assert from_verl(tmp_path / "sg.sh").kwargs["engine"] == "sglang-0.5.6"  # verl 0.7 pins sglang 0.5.6
    (tmp_path / "hf.sh").write_text("python3 -m verl.trainer.main_ppo actor_rollout_ref.rollout.name=hf\n")
    with pytest.raises(ConfigurationError, match="rollout.name = 'hf'.*--engine vllm-0.17.1"):
        from_verl(tmp_path / "hf.sh")
