"""Pydantic schemas of the catalog: hardware profiles, models, draft heads, workloads.

Every numeric field of a catalog file must carry its source in the file's ``sources`` map
(checked by :func:`_check_sources`), so that no number enters the simulator unexplained.
Field names follow HuggingFace ``config.json`` (models), vLLM (engine) and NeMo-RL (pipeline)
where those names exist.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..inputs import LAG_WHY, MAX_LAG

DTypes = Literal["bf16", "fp8"]


class Strict(BaseModel):
    """Base: unknown keys are errors (a typo must never be ignored); numbers must be finite (a `.inf` or
    `.nan` in a catalog file is refused, not simulated as 0 s or NaN s)."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=(), allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, data):
        """pydantic reads true/false as 1/0 for a number field; YAML turns yes/no/on/off into booleans."""
        if isinstance(data, dict):
            for name, f in cls.model_fields.items():
                v = data.get(name)
                if isinstance(v, bool) and _is_number_annotation(f.annotation):
                    raise ValueError(f"field `{name}` = {v}: a number is expected, not true/false")
        return data


def _is_number_annotation(ann) -> bool:
    import typing

    args = typing.get_args(ann) or (ann,)
    return any(a in (int, float) for a in args) and bool not in args


class Sourced(Strict):
    sources: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_sources(self):
        missing = [
            name
            for name, field in type(self).model_fields.items()
            if name not in self._unsourced_fields() and self._is_number_field(name)
            and name not in self.sources
        ]
        if missing:
            raise ValueError(f"numbers without a source: {', '.join(missing)} (add them under `sources:`)")
        return self

    @classmethod
    def _unsourced_fields(cls) -> set[str]:
        return {"sources"}

    @classmethod
    def _sourced_text_fields(cls) -> set[str]:
        return set()

    def _is_number_field(self, name: str) -> bool:
        value = getattr(self, name)
        if name in self._sourced_text_fields():
            return value is not None  # an optional setting left out needs no source
        if isinstance(value, bool):
            return True
        if isinstance(value, (int, float)):
            return True
        if isinstance(value, dict) and value and all(isinstance(v, (int, float)) for v in value.values()):
            return True
        return False


class HardwareProfile(Sourced):
    name: str
    gpu: str
    peak_flops: dict[DTypes, float]
    hbm_capacity_bytes: float = Field(gt=0)
    hbm_bandwidth_bytes_per_s: float = Field(gt=0)
    nvlink_domain_size: int = Field(ge=1)
    gpus_per_node: int = Field(ge=1)
    nvlink_bandwidth_bytes_per_s: float = Field(gt=0, description="per GPU, per direction")
    scaleout_bandwidth_bytes_per_s: float = Field(gt=0, description="per GPU, per direction")
    cudagraph_capture_max_tokens: int = Field(ge=0)
    calibration_source: str
    collectives_calibration_source: str | None = Field(
        default=None, description="calibration folder whose collectives to use where calibration_source has none "
                                  "(a GPU measured on one device but sharing another's NVLink generation)")

    @classmethod
    def _unsourced_fields(cls) -> set[str]:
        return {"sources", "name", "gpu"}

    @classmethod
    def _sourced_text_fields(cls) -> set[str]:
        return {"calibration_source", "collectives_calibration_source"}

    @field_validator("peak_flops")
    @classmethod
    def _peaks(cls, v: dict[str, float]) -> dict[str, float]:
        if "bf16" not in v:
            raise ValueError("peak_flops must give at least bf16")
        for k, x in v.items():
            if not (0 < x < float("inf")):
                raise ValueError(f"peak_flops.{k} must be > 0 and finite, got {x}")
        return v


class ModelSpec(Sourced):
    name: str
    aliases: list[str] = Field(default_factory=list)
    hf_id: str
    architecture: Literal["dense", "moe"]
    num_hidden_layers: int = Field(ge=1)
    hidden_size: int = Field(ge=1)
    num_attention_heads: int = Field(ge=1)
    num_key_value_heads: int = Field(ge=1)
    head_dim: int = Field(ge=1)
    intermediate_size: int = Field(ge=0)
    num_experts: int = Field(ge=0)
    num_experts_per_tok: int = Field(ge=0)
    moe_intermediate_size: int = Field(ge=0)
    vocab_size: int = Field(ge=1)
    tie_word_embeddings: bool
    mtp_num_layers: int = Field(ge=0)
    default_workload: str | None = None
    drafts: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def _unsourced_fields(cls) -> set[str]:
        return {"sources", "drafts"}

    @model_validator(mode="after")
    def _consistent(self):
        if self.architecture == "moe":
            if self.num_experts < 1 or not (1 <= self.num_experts_per_tok <= self.num_experts):
                raise ValueError("a moe model needs num_experts >= 1 and 1 <= num_experts_per_tok <= num_experts")
            if self.moe_intermediate_size < 1:
                raise ValueError("a moe model needs moe_intermediate_size >= 1")
        elif self.intermediate_size < 1:
            raise ValueError("a dense model needs intermediate_size >= 1")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        return self

    # ---- derived quantities (units in the names) ----
    @property
    def is_moe(self) -> bool:
        return self.architecture == "moe"

    @property
    def attention_params(self) -> int:
        h, d = self.hidden_size, self.head_dim
        return h * (self.num_attention_heads + 2 * self.num_key_value_heads) * d + self.num_attention_heads * d * h

    @property
    def mlp_params_per_layer(self) -> int:
        if self.is_moe:
            return self.num_experts * 3 * self.hidden_size * self.moe_intermediate_size + self.hidden_size * self.num_experts
        return 3 * self.hidden_size * self.intermediate_size

    @property
    def active_mlp_params_per_layer(self) -> int:
        if self.is_moe:
            return self.num_experts_per_tok * 3 * self.hidden_size * self.moe_intermediate_size
        return self.mlp_params_per_layer

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)

    @property
    def total_params(self) -> int:
        return self.num_hidden_layers * (self.attention_params + self.mlp_params_per_layer) + self.embedding_params

    @property
    def active_params(self) -> int:
        """Parameters touched per token (one embedding row ignored; LM head counted)."""
        return self.num_hidden_layers * (self.attention_params + self.active_mlp_params_per_layer) + self.vocab_size * self.hidden_size

    def kv_bytes_per_token(self, bytes_per_element: float = 2.0) -> float:
        return 2 * self.num_hidden_layers * self.num_key_value_heads * self.head_dim * bytes_per_element


class DraftSpec(Sourced):
    """A drafter's network: an EAGLE-3 head (one decoder layer, fused hidden states, reduced vocab)."""

    name: str
    method: Literal["eagle3", "eagle", "mtp"]
    target: str
    num_hidden_layers: int = Field(ge=1)
    hidden_size: int = Field(ge=1)
    num_attention_heads: int = Field(ge=1)
    num_key_value_heads: int = Field(ge=1)
    head_dim: int = Field(ge=1)
    intermediate_size: int = Field(ge=1)
    draft_vocab_size: int = Field(ge=1)
    fused_hidden_states: int = Field(ge=1)

    @classmethod
    def _unsourced_fields(cls) -> set[str]:
        return {"sources", "name", "method", "target"}

    @property
    def params(self) -> int:
        h, d = self.hidden_size, self.head_dim
        attn = h * (self.num_attention_heads + 2 * self.num_key_value_heads) * d + self.num_attention_heads * d * h
        mlp = 3 * h * self.intermediate_size
        fc = self.fused_hidden_states * h * h if self.fused_hidden_states > 1 else 0
        return self.num_hidden_layers * (attn + mlp) + fc + self.draft_vocab_size * h


class LengthDistribution(Strict):
    """Token-length distribution. ``lognormal``: median and log-space sigma, clipped to [min, max]."""

    distribution: Literal["fixed", "lognormal"] = "lognormal"
    median_tokens: float = Field(gt=0)
    sigma: float = Field(default=0.0, ge=0, le=4)
    min_tokens: int = Field(default=1, ge=1)
    max_tokens: int = Field(ge=1)

    @model_validator(mode="after")
    def _bounds(self):
        if self.min_tokens > self.max_tokens:
            raise ValueError(f"min_tokens ({self.min_tokens}) > max_tokens ({self.max_tokens})")
        return self


class GenerationParallelism(Strict):
    tensor_parallel_size: int = Field(default=1, ge=1)
    data_parallel_size: int = Field(default=1, ge=1, description="attention data parallel ranks inside one engine (MoE)")
    enable_expert_parallel: bool = False


class TrainingParallelism(Strict):
    tensor_model_parallel_size: int = Field(default=1, ge=1)
    pipeline_model_parallel_size: int = Field(default=1, ge=1)
    expert_model_parallel_size: int = Field(default=1, ge=1)
    context_parallel_size: int = Field(default=1, ge=1)


class EngineConfig(Strict):
    """vLLM engine knobs (names as in vLLM's EngineArgs)."""

    max_num_batched_tokens: int = Field(default=16384, ge=64)
    max_num_seqs: int = Field(default=1024, ge=1)
    gpu_memory_utilization: float = Field(default=0.6, gt=0, le=0.98)
    enforce_eager: bool = False
    max_num_speculative_tokens: int = Field(default=15, ge=0, description="largest k this engine accepts")


class SpeculationConfig(Strict):
    """vLLM ``speculative_config`` (subset) plus the acceptance the draft achieves."""

    method: Literal["eagle3", "mtp", "draft-model", "ngram"] = "eagle3"
    num_speculative_tokens: int = Field(default=3, ge=0)
    acceptance_length: float | None = Field(default=None, ge=1)
    acceptance_rates_per_position: list[float] | None = None
    draft_model: str | None = None

    @model_validator(mode="after")
    def _possible(self):
        k, al = self.num_speculative_tokens, self.acceptance_length
        if al is not None and not (al <= k + 1):
            raise ValueError(f"acceptance_length = {al} is impossible at num_speculative_tokens = {k}; "
                             f"allowed: 1 <= AL <= k+1 = {k + 1}")
        rates = self.acceptance_rates_per_position
        if rates is not None:
            if not rates:
                raise ValueError("acceptance_rates_per_position is empty; give one rate per draft position (0..1)")
            for i, r in enumerate(rates):
                if not (0.0 <= r <= 1.0):
                    raise ValueError(f"acceptance_rates_per_position[{i}] = {r}; allowed: 0..1")
                if i and r > rates[i - 1] + 1e-9:
                    raise ValueError(f"acceptance_rates_per_position must not increase with position (vLLM's "
                                     f"unconditional rates): [{i}] = {r} > [{i - 1}] = {rates[i - 1]}")
        return self


class Workload(Sourced):
    """A workload file. Every numeric or true/false setting the file writes carries a source (settings left
    out take the schema's defaults; a caller's override is sourced by the caller, see scenario.py)."""

    name: str
    description: str = ""
    model: str
    hardware: str = "gb200-nvl72"
    gpus: int = Field(ge=1)
    gen_gpus: int | None = Field(default=None, ge=1)
    train_gpus: int | None = Field(default=None, ge=1)
    colocated: bool = True
    num_prompts_per_step: int = Field(ge=1)
    num_generations_per_prompt: int = Field(ge=1)
    prompt_length: LengthDistribution
    response_length: LengthDistribution
    generation_dtype: DTypes = "bf16"
    kv_cache_dtype: DTypes = "bf16"
    training_dtype: DTypes = "bf16"
    generation: GenerationParallelism = Field(default_factory=GenerationParallelism)
    training: TrainingParallelism = Field(default_factory=TrainingParallelism)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    speculation: SpeculationConfig = Field(default_factory=SpeculationConfig)
    reference_logprobs: bool = True
    max_trajectory_age_steps: int = Field(default=0, ge=0, le=MAX_LAG, description=LAG_WHY)
    in_flight_weight_updates: bool = False
    data_loading_s: float = Field(default=0.2, ge=0)
    training_mfu: float | None = Field(default=None, gt=0, le=1)
    logprob_mfu: float | None = Field(default=None, gt=0, le=1)

    @classmethod
    def _unsourced_fields(cls) -> set[str]:
        return {"sources", "name", "description", "model", "hardware"}

    def _is_number_field(self, name: str) -> bool:
        return name in self.model_fields_set and super()._is_number_field(name)

    @model_validator(mode="after")
    def _pools(self):
        if self.colocated and (self.gen_gpus is not None or self.train_gpus is not None):
            raise ValueError(f"gen_gpus/train_gpus ({self.gen_gpus}/{self.train_gpus}) apply only to separate pools: "
                             "set colocated: false, or remove them (colocated runs use all `gpus` for both)")
        if self.gen_gpus is not None and self.train_gpus is not None and self.gen_gpus + self.train_gpus != self.gpus:
            raise ValueError(f"gen_gpus {self.gen_gpus} + train_gpus {self.train_gpus} = "
                             f"{self.gen_gpus + self.train_gpus} != gpus {self.gpus}")
        return self

    @property
    def sequences_per_step(self) -> int:
        return self.num_prompts_per_step * self.num_generations_per_prompt
