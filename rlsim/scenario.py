"""A scenario: the fully resolved inputs of one projection (workload + the user's overrides).

A workload supplies defaults; arguments override them; ``model`` alone picks that model's default
workload. Names follow vLLM / NeMo-RL (``num_speculative_tokens``, ``max_trajectory_age_steps``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .catalog import Workload, load_hardware, load_model, load_workload
from .errors import ConfigurationError


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    workload: Workload
    num_speculative_tokens: int = Field(ge=0)
    drafter: str
    acceptance_length: float | None = None  # at num_speculative_tokens
    acceptance_rates_per_position: list[float] | None = None  # vLLM unconditional per-position rates
    draft_quality: float | None = None  # per-token conditional acceptance rate (geometric model)
    draft_quality_decay: float = 1.0
    draft_model: str | None = None
    num_speculative_tokens_per_batch_size: list[tuple[int, int, int]] | None = None
    max_trajectory_age_steps: int = Field(default=0, ge=0)
    seed: int = 0
    calibration: str = "auto"
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def k(self) -> int:
        return self.num_speculative_tokens

    @property
    def lag(self) -> int:
        return self.max_trajectory_age_steps

    def to_dict(self) -> dict:
        w = self.workload
        d = {
            "workload": w.name, "model": w.model, "hardware": w.hardware, "gpus": w.gpus,
            "gen_gpus": w.gen_gpus, "train_gpus": w.train_gpus, "colocated": w.colocated,
            "num_prompts_per_step": w.num_prompts_per_step, "num_generations_per_prompt": w.num_generations_per_prompt,
            "sequences_per_step": w.sequences_per_step,
            "prompt_length": w.prompt_length.model_dump(), "response_length": w.response_length.model_dump(),
            "generation_dtype": w.generation_dtype, "kv_cache_dtype": w.kv_cache_dtype,
            "generation_parallelism": w.generation.model_dump(), "engine": w.engine.model_dump(),
            "reference_logprobs": w.reference_logprobs,
            "num_speculative_tokens": self.k, "drafter": self.drafter, "draft_model": self.draft_model,
            "acceptance_length_input": self.acceptance_length,
            "acceptance_rates_per_position": self.acceptance_rates_per_position,
            "draft_quality": self.draft_quality, "draft_quality_decay": self.draft_quality_decay,
            "num_speculative_tokens_per_batch_size": self.num_speculative_tokens_per_batch_size,
            "max_trajectory_age_steps": self.lag, "in_flight_weight_updates": w.in_flight_weight_updates,
            "seed": self.seed, "calibration": self.calibration, "options": dict(self.options),
        }
        return d


_WORKLOAD_OVERRIDES = {
    "num_prompts_per_step", "num_generations_per_prompt", "generation_dtype", "kv_cache_dtype", "reference_logprobs",
    "in_flight_weight_updates", "training_mfu", "logprob_mfu", "data_loading_s", "colocated",
}


def build_scenario(model: str | None = None, workload: str | None = None, hardware: str | None = None,
                   gpus: int | None = None, k: int | None = None, drafter: str | None = None,
                   acceptance_length: float | None = None, lag: int | None = None, gen_gpus: int | None = None,
                   train_gpus: int | None = None, seed: int = 0, *,
                   acceptance_rates_per_position: list[float] | None = None, draft_quality: float | None = None,
                   draft_quality_decay: float = 1.0, draft_model: str | None = None,
                   num_speculative_tokens_per_batch_size: list | None = None, calibration: str = "auto",
                   tensor_parallel_size: int | None = None, response_median_tokens: float | None = None,
                   max_new_tokens: int | None = None, options: dict | None = None, **workload_fields) -> Scenario:
    """Resolve a scenario from a workload and overrides (the CLI flags map 1:1 onto these arguments)."""
    if workload is None:
        if model is None:
            raise ConfigurationError("give a model (--model) or a workload (--workload)")
        spec = load_model(model)
        if not spec.default_workload:
            raise ConfigurationError(f"model {spec.name} has no default workload; pass --workload")
        workload = spec.default_workload
    w = load_workload(workload)
    upd: dict[str, Any] = {}
    if model is not None:
        spec = load_model(model)
        if spec.name != load_model(w.model).name:
            upd["model"] = spec.name
    if hardware is not None:
        upd["hardware"] = load_hardware(hardware).name
    if gpus is not None:
        if gpus < 1:
            raise ConfigurationError(f"--gpus = {gpus}; allowed: >= 1")
        upd["gpus"] = gpus
        upd["gen_gpus"] = None
        upd["train_gpus"] = None
    if gen_gpus is not None or train_gpus is not None:
        for name, v in (("--gen-gpus", gen_gpus), ("--train-gpus", train_gpus)):
            if v is not None and v < 1:
                raise ConfigurationError(f"{name} = {v}; allowed: >= 1")
        upd["colocated"] = False
        upd["gen_gpus"] = gen_gpus
        upd["train_gpus"] = train_gpus
        if gen_gpus is not None and train_gpus is not None:
            upd["gpus"] = gen_gpus + train_gpus
    for key, value in workload_fields.items():
        if key not in _WORKLOAD_OVERRIDES:
            raise ConfigurationError(f"unknown scenario field {key!r}; allowed: {', '.join(sorted(_WORKLOAD_OVERRIDES))}")
        if value is not None:
            upd[key] = value
    if tensor_parallel_size is not None:
        upd["generation"] = w.generation.model_copy(update={"tensor_parallel_size": tensor_parallel_size})
    if response_median_tokens is not None or max_new_tokens is not None:
        rl = w.response_length.model_dump()
        if response_median_tokens is not None:
            rl["median_tokens"] = response_median_tokens
        if max_new_tokens is not None:
            rl["max_tokens"] = max_new_tokens
        upd["response_length"] = type(w.response_length).model_validate(rl)
    if lag is not None:
        upd["max_trajectory_age_steps"] = lag
    if upd:
        w = Workload.model_validate({**w.model_dump(), **{k_: (v.model_dump() if hasattr(v, "model_dump") else v)
                                                           for k_, v in upd.items()}})
    spec_cfg = w.speculation
    k_eff = spec_cfg.num_speculative_tokens if k is None else k
    if k_eff < 0:
        raise ConfigurationError(f"--k = {k_eff}; allowed: >= 0")
    if k_eff > w.engine.max_num_speculative_tokens:
        raise ConfigurationError(
            f"--k = {k_eff} exceeds the engine's maximum num_speculative_tokens ({w.engine.max_num_speculative_tokens})")
    method = drafter or spec_cfg.method
    from .speculation.drafters import DRAFTERS

    if method not in DRAFTERS:
        raise ConfigurationError(f"unknown drafter {method!r}; allowed: {', '.join(DRAFTERS)}")
    al = acceptance_length
    rates = acceptance_rates_per_position
    if al is not None and k_eff > 0 and not (1.0 <= al <= k_eff + 1):
        raise ConfigurationError(f"--acceptance-length = {al} is impossible at k = {k_eff}; allowed: 1 <= AL <= k+1 = {k_eff + 1}")
    if al is None and rates is None and draft_quality is None and k_eff > 0:
        if method != spec_cfg.method:
            raise ConfigurationError(
                f"workload {w.name} gives the acceptance of drafter {spec_cfg.method!r}, not {method!r}: pass "
                f"--acceptance-length (AL at k = {k_eff}) or --draft-quality")
        if spec_cfg.acceptance_length is None and spec_cfg.acceptance_rates_per_position is None:
            raise ConfigurationError(f"workload {w.name} gives no acceptance; pass --acceptance-length or --draft-quality")
    if draft_quality is not None and not (0.0 <= draft_quality <= 1.0):
        raise ConfigurationError(f"--draft-quality = {draft_quality}; allowed: 0..1 (per-token acceptance rate)")
    if w.max_trajectory_age_steps > 0 and w.colocated and gen_gpus is None and train_gpus is None:
        # async needs separate generation and training pools; the pipeline chooses a split
        w = w.model_copy(update={"colocated": False})
    return Scenario(workload=w, num_speculative_tokens=k_eff, drafter=method, acceptance_length=al,
                    acceptance_rates_per_position=rates, draft_quality=draft_quality,
                    draft_quality_decay=draft_quality_decay, draft_model=draft_model or spec_cfg.draft_model,
                    num_speculative_tokens_per_batch_size=num_speculative_tokens_per_batch_size,
                    max_trajectory_age_steps=w.max_trajectory_age_steps, seed=seed, calibration=calibration,
                    options=options or {})
