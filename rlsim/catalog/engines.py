"""Which engine profile a training framework's rollout backend name means (one small function, shared by the
NeMo-RL and verl importers).

- NeMo-RL v0.6.0: ``policy.generation.backend``: ``vllm`` (NeMo-RL pins vllm==0.17.1) or ``sglang``
  (examples/configs/grpo_math_1B_sglang.yaml:8). Its recipes leave ``sglang_cfg.max_running_requests: null``, so
  SGLang's own default of 48 running requests under EAGLE applies: profile ``sglang-0.5.6-nemo-rl``.
- verl: ``actor_rollout_ref.rollout.name``: ``vllm`` / ``sglang`` (verl/trainer/config/rollout/rollout.yaml:4);
  verl 0.7.x pins sglang==0.5.6 and passes ``max_running_requests = rollout.max_num_seqs``: ``sglang-0.5.6``.
  verl 0.7.x allows vllm 0.8.5-0.12.0; no profile of those releases exists, so ``vllm`` maps to the profile rlsim
  has (vllm-0.17.1), said in the note.
"""

from __future__ import annotations

from ..errors import ConfigurationError

DEFAULT_VLLM = "vllm-0.17.1"
SGLANG = "sglang-0.5.6"
SGLANG_NEMO_RL = "sglang-0.5.6-nemo-rl"
FRAMEWORKS = ("nemo-rl", "verl")


def engine_for_backend(name: str, framework: str = "verl") -> str:
    """The engine profile (engine_profiles/<name>.yaml) for a rollout backend name of ``framework``
    (``nemo-rl``: ``policy.generation.backend``; ``verl``: ``actor_rollout_ref.rollout.name``)."""
    if framework not in FRAMEWORKS:
        raise ConfigurationError(f"framework = {framework!r}; allowed: {', '.join(FRAMEWORKS)}")
    if not isinstance(name, str):
        raise ConfigurationError(f"rollout backend = {name!r}; allowed: vllm, sglang")
    key = name.strip().lower()
    if key == "vllm":
        return DEFAULT_VLLM
    if key == "sglang":
        return SGLANG_NEMO_RL if framework == "nemo-rl" else SGLANG
    raise ConfigurationError(f"rollout backend {name!r} ({'policy.generation.backend' if framework == 'nemo-rl' else 'rollout.name'}) "
                             f"has no engine profile; allowed: vllm, sglang")


__all__ = ["engine_for_backend", "DEFAULT_VLLM", "SGLANG", "SGLANG_NEMO_RL"]
