"""Pydantic schemas of the catalog: hardware profiles, models, draft heads, workloads.

Every numeric field of a catalog file must carry its source in the file's ``sources`` map
(checked by :func:`_check_sources`), so that no number enters the simulator unexplained.
Field names follow HuggingFace ``config.json`` (models), vLLM (engine) and NeMo-RL (pipeline)
where those names exist.
"""

from __future__ import annotations

from typing import ClassVar, Literal

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
    host_link_bandwidth_bytes_per_s: float | None = Field(
        default=None, gt=0, description="GPU <-> host memory, per GPU per direction (PCIe or NVLink-C2C): NeMo-RL's "
                                        "colocated offload of optimizer state and weights")
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


class RopeScaling(Strict):
    """A context extension the model's card gives (HF ``rope_scaling``): YaRN with ``factor`` over the
    ``original_max_position_embeddings`` the model was trained at."""

    rope_type: Literal["yarn"]
    factor: float = Field(gt=1, le=64)
    original_max_position_embeddings: int = Field(ge=1)

    @property
    def max_tokens(self) -> int:
        return int(self.factor * self.original_max_position_embeddings)


class ModelSpec(Sourced):
    name: str
    aliases: list[str] = Field(default_factory=list)
    hf_id: str
    hf_aliases: list[str] = Field(default_factory=list, description="other Hugging Face ids whose config.json has the "
                                  "same value in every key rlsim reads (a Base or re-released checkpoint)")
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
    # Multi-head latent attention (DeepSeek-V2/V3 config.json names); all None for GQA/MHA models
    q_lora_rank: int | None = Field(default=None, ge=1, description="query down-projection rank (None: no q compression)")
    kv_lora_rank: int | None = Field(default=None, ge=1, description="compressed KV latent width (MLA)")
    qk_nope_head_dim: int | None = Field(default=None, ge=1)
    qk_rope_head_dim: int | None = Field(default=None, ge=1)
    v_head_dim: int | None = Field(default=None, ge=1)
    # MoE refinements (DeepSeek-V3): leading dense layers (MLP of intermediate_size) and always-active shared experts
    first_k_dense_replace: int | None = Field(default=None, ge=0)
    n_shared_experts: int | None = Field(default=None, ge=0)
    default_workload: str | None = None
    drafts: dict[str, str] = Field(default_factory=dict)
    # context limits (None: not catalogued, not checked): config.json's max_position_embeddings, and the rope
    # scaling the model card gives to go beyond it (applied when a workload sets rope_scaling: yarn)
    max_position_embeddings: int | None = Field(default=None, ge=1)
    rope_scaling: RopeScaling | None = None

    @classmethod
    def _unsourced_fields(cls) -> set[str]:
        return {"sources", "drafts"}

    @classmethod
    def _sourced_text_fields(cls) -> set[str]:
        return {"rope_scaling"}

    def max_context_tokens(self, rope_scaling: str = "none") -> int | None:
        """Longest prompt + response the model takes: max_position_embeddings, or with YaRN factor x original."""
        if rope_scaling == "yarn":
            return self.rope_scaling.max_tokens if self.rope_scaling is not None else None
        return self.max_position_embeddings

    @model_validator(mode="after")
    def _mla_and_moe_extras(self):
        mla = {"kv_lora_rank": self.kv_lora_rank, "qk_nope_head_dim": self.qk_nope_head_dim,
               "qk_rope_head_dim": self.qk_rope_head_dim, "v_head_dim": self.v_head_dim}
        given = [k for k, v in mla.items() if v is not None]
        if (given or self.q_lora_rank is not None) and len(given) != len(mla):
            missing = [k for k in mla if mla[k] is None]
            raise ValueError(f"multi-head latent attention needs all of {', '.join(mla)}; missing {', '.join(missing)}")
        if given:
            if self.head_dim != self.qk_nope_head_dim + self.qk_rope_head_dim:
                raise ValueError(f"MLA: head_dim ({self.head_dim}) must be qk_nope_head_dim + qk_rope_head_dim "
                                 f"({self.qk_nope_head_dim} + {self.qk_rope_head_dim}), the query/key width of a head")
            if self.num_key_value_heads != self.num_attention_heads:
                raise ValueError(f"MLA: num_key_value_heads ({self.num_key_value_heads}) must equal num_attention_heads "
                                 f"({self.num_attention_heads}): the latent is expanded to one key/value per head")
        if self.first_k_dense_replace or self.n_shared_experts:
            if self.architecture != "moe":
                raise ValueError("first_k_dense_replace / n_shared_experts apply to moe models only")
        if self.first_k_dense_replace:
            if self.first_k_dense_replace >= self.num_hidden_layers:
                raise ValueError(f"first_k_dense_replace ({self.first_k_dense_replace}) must be < num_hidden_layers "
                                 f"({self.num_hidden_layers}); a model of dense layers only is architecture: dense")
            if self.intermediate_size < 1:
                raise ValueError("first_k_dense_replace > 0 needs intermediate_size >= 1 (the dense layers' MLP width)")
        return self

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
    def is_mla(self) -> bool:
        return self.kv_lora_rank is not None

    @property
    def attention_params(self) -> int:
        h, d = self.hidden_size, self.head_dim
        if self.is_mla:  # q down/up (or a plain q projection), kv down (latent + rope key), kv up, output
            n = self.num_attention_heads
            qk = self.qk_nope_head_dim + self.qk_rope_head_dim
            q = (h * self.q_lora_rank + self.q_lora_rank * n * qk) if self.q_lora_rank else h * n * qk
            kv = h * (self.kv_lora_rank + self.qk_rope_head_dim) + self.kv_lora_rank * n * (self.qk_nope_head_dim
                                                                                             + self.v_head_dim)
            return q + kv + n * self.v_head_dim * h
        return h * (self.num_attention_heads + 2 * self.num_key_value_heads) * d + self.num_attention_heads * d * h

    @property
    def n_dense_layers(self) -> int:
        """Layers with a dense MLP: all of a dense model, the leading ``first_k_dense_replace`` of a MoE model."""
        return self.num_hidden_layers if not self.is_moe else (self.first_k_dense_replace or 0)

    @property
    def n_moe_layers(self) -> int:
        return self.num_hidden_layers - self.n_dense_layers

    @property
    def shared_expert_intermediate(self) -> int:
        """Width of the always-active shared expert(s) of a MoE layer (0: none)."""
        return (self.n_shared_experts or 0) * self.moe_intermediate_size if self.is_moe else 0

    @property
    def mlp_params_per_layer(self) -> int:
        """MLP parameters of one MoE layer (routed + shared experts + router), or of one dense layer."""
        if self.is_moe:
            return (self.num_experts * 3 * self.hidden_size * self.moe_intermediate_size + self.hidden_size * self.num_experts
                    + 3 * self.hidden_size * self.shared_expert_intermediate)
        return 3 * self.hidden_size * self.intermediate_size

    @property
    def active_mlp_params_per_layer(self) -> int:
        if self.is_moe:
            return (self.num_experts_per_tok * self.moe_intermediate_size + self.shared_expert_intermediate) * 3 * self.hidden_size
        return self.mlp_params_per_layer

    @property
    def dense_mlp_params(self) -> int:
        return 3 * self.hidden_size * self.intermediate_size

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)

    @property
    def total_params(self) -> int:
        """Parameters of the model proper (MTP modules excluded: see ``mtp_params``)."""
        mlp = (self.n_moe_layers * self.mlp_params_per_layer + self.n_dense_layers * self.dense_mlp_params if self.is_moe
               else self.num_hidden_layers * self.mlp_params_per_layer)
        return self.num_hidden_layers * self.attention_params + mlp + self.embedding_params

    @property
    def active_params(self) -> int:
        """Parameters touched per token (one embedding row ignored; LM head counted)."""
        mlp = (self.n_moe_layers * self.active_mlp_params_per_layer + self.n_dense_layers * self.dense_mlp_params
               if self.is_moe else self.num_hidden_layers * self.active_mlp_params_per_layer)
        return self.num_hidden_layers * self.attention_params + mlp + self.vocab_size * self.hidden_size

    @property
    def mtp_params(self) -> int:
        """Parameters of the MTP module(s): per module one decoder layer (a MoE layer for a MoE model), the
        projection of [embedding; hidden] (2h -> h) and its norms; embedding and LM head are shared."""
        if not self.mtp_num_layers:
            return 0
        layer = self.attention_params + (self.mlp_params_per_layer if self.is_moe else self.dense_mlp_params)
        return self.mtp_num_layers * (layer + 2 * self.hidden_size * self.hidden_size)

    def kv_bytes_per_token(self, bytes_per_element: float = 2.0) -> float:
        if self.is_mla:  # the compressed latent and the shared rope key, once per layer (not per head)
            return self.num_hidden_layers * (self.kv_lora_rank + self.qk_rope_head_dim) * bytes_per_element
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


class DatasetSpec(Sourced):
    """A prompt data set as an RL recipe feeds it (template included): its prompt-length distribution."""

    name: str
    aliases: list[str] = Field(default_factory=list)
    prompt_length: LengthDistribution

    @classmethod
    def _unsourced_fields(cls) -> set[str]:
        return {"sources", "name", "aliases"}

    @model_validator(mode="after")
    def _prompt_sourced(self):
        if "prompt_length" not in self.sources:
            raise ValueError("numbers without a source: prompt_length (add it under `sources:`)")
        return self


class GenerationParallelism(Strict):
    tensor_parallel_size: int = Field(default=1, ge=1)
    data_parallel_size: int = Field(default=1, ge=1, description="attention data parallel ranks inside one engine (MoE)")
    enable_expert_parallel: bool = False


class TrainingParallelism(Strict):
    """Megatron-core layout and batching of the policy's training and log-prob passes (NeMo-RL
    ``policy.megatron_cfg`` and ``policy.*batch*`` names). Defaults are NeMo-RL's (examples/configs/grpo_math_1B.yaml)."""

    tensor_model_parallel_size: int = Field(default=1, ge=1)
    pipeline_model_parallel_size: int = Field(default=1, ge=1)
    expert_model_parallel_size: int = Field(default=1, ge=1)
    context_parallel_size: int = Field(default=1, ge=1)
    expert_tensor_parallel_size: int = Field(default=1, ge=1)
    virtual_pipeline_model_parallel_size: int = Field(default=1, ge=1, description="model chunks per pipeline rank")
    sequence_parallel: bool = False
    activation_checkpointing: bool = False
    num_layers_in_first_pipeline_stage: int | None = Field(default=None, ge=0)
    num_layers_in_last_pipeline_stage: int | None = Field(default=None, ge=0)
    train_global_batch_size: int | None = Field(default=None, ge=1, description="sequences per optimizer step "
                                                "(None: all the step's sequences in one)")
    train_micro_batch_size: int = Field(default=1, ge=1)
    logprob_batch_size: int | None = Field(default=None, ge=1, description="None: train_micro_batch_size")
    sequence_packing: bool = True
    dynamic_batching: bool = Field(default=False, description="NeMo-RL dynamic batching (instead of packing): sequences "
                                   "sorted by length, micro-batches padded to their longest up to train_mb_tokens")
    sequence_length_round: int = Field(default=64, ge=1)
    train_mb_tokens: int | None = Field(default=None, ge=1, description="packed tokens per training micro-batch "
                                        "(None: max_total_sequence_length x train_micro_batch_size, NeMo-RL's default)")
    logprob_mb_tokens: int | None = Field(default=None, ge=1, description="same for log-prob passes")


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


class AgenticRollout(Strict):
    """Multi-turn (agentic) rollouts: each trajectory is ``turns`` prefill-decode rounds; between two, a tool runs
    for ``tool_latency_s`` and returns ``tool_output_length`` tokens that the next turn prefills. The workload's
    ``response_length`` is then each turn's response."""

    turns: int = Field(ge=1, le=64)
    tool_latency_s: float = Field(ge=0, le=86_400)
    tool_output_length: LengthDistribution


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
    training_model: Literal["auto", "layout", "mfu"] = Field(
        default="auto", description="training / log-prob time: 'layout' (Megatron layout model, "
        "costmodel/training_layout.py), 'mfu' (FLOPs / (GPUs x peak x MFU)); 'auto': mfu if training_mfu is set")
    max_total_sequence_length: int | None = Field(default=None, ge=2, description="prompt + response cap (vLLM "
                                                  "max_model_len): a response ends at max_total - prompt tokens")
    avg_seq_len: float | None = Field(default=None, gt=0, description="measured mean prompt + response tokens: each "
                                      "step's sampled responses are scaled by one factor to reach it")
    rope_scaling: Literal["none", "yarn"] = Field(
        default="none", description="yarn: the model's YaRN rope scaling is on (its catalog rope_scaling), so prompt "
        "+ response may reach factor x original_max_position_embeddings; none: up to max_position_embeddings")
    agentic: AgenticRollout | None = None

    @classmethod
    def _unsourced_fields(cls) -> set[str]:
        return {"sources", "name", "description", "model", "hardware"}

    @classmethod
    def _sourced_text_fields(cls) -> set[str]:
        return {"rope_scaling", "agentic"}

    def _is_number_field(self, name: str) -> bool:
        return name in self.model_fields_set and super()._is_number_field(name)

    def longest_context_tokens(self) -> int:
        """The longest prompt + response (all turns and tool outputs of an agentic trajectory) a step can hold."""
        one = self.prompt_length.max_tokens + self.response_length.max_tokens
        if self.agentic is not None and self.agentic.turns > 1:
            one += (self.agentic.turns - 1) * (self.response_length.max_tokens
                                                + self.agentic.tool_output_length.max_tokens)
        if self.max_total_sequence_length is not None and (self.agentic is None or self.agentic.turns == 1):
            one = min(one, self.max_total_sequence_length)
        return one

    @model_validator(mode="after")
    def _pools(self):
        if self.colocated and (self.gen_gpus is not None or self.train_gpus is not None):
            raise ValueError(f"gen_gpus/train_gpus ({self.gen_gpus}/{self.train_gpus}) apply only to separate pools: "
                             "set colocated: false, or remove them (colocated runs use all `gpus` for both)")
        if self.avg_seq_len is not None:
            lo = self.prompt_length.min_tokens + self.response_length.min_tokens
            hi = self.prompt_length.max_tokens + self.response_length.max_tokens
            if self.max_total_sequence_length is not None:
                hi = min(hi, self.max_total_sequence_length)
            if not (lo < self.avg_seq_len < hi):
                raise ValueError(f"avg_seq_len = {self.avg_seq_len}: a mean prompt + response length must lie strictly "
                                 f"between the shortest ({lo}) and the longest ({hi}) sequence the length bounds allow")
        if self.gen_gpus is not None and self.train_gpus is not None and self.gen_gpus + self.train_gpus != self.gpus:
            raise ValueError(f"gen_gpus {self.gen_gpus} + train_gpus {self.train_gpus} = "
                             f"{self.gen_gpus + self.train_gpus} != gpus {self.gpus}")
        return self

    @property
    def sequences_per_step(self) -> int:
        return self.num_prompts_per_step * self.num_generations_per_prompt


class GraphPolicy(Strict):
    """How an engine uses CUDA graphs (vLLM ``compilation_config``), per step."""

    capture_limit: Literal["hardware", "vllm", "sglang"] = Field(
        description="hardware: graph every step up to the hardware profile's cudagraph_capture_max_tokens (the ideal "
                    "engine); vllm: vLLM's default max_cudagraph_capture_size = min(max_num_seqs x (1 + k) x 2, "
                    "max_capture_tokens, max_num_batched_tokens), a larger step runs with no graph at all; sglang: "
                    "graphs captured per batch size (requests, not tokens) up to SGLang's cuda_graph_max_bs, set by the "
                    "GPU's memory and TP (costmodel/sglang.py), for the target, the draft passes and the draft extend "
                    "alike; a step with more requests, or with prefill, runs with no graph")
    max_capture_tokens: int = Field(default=512, ge=1)
    pad_to_capture_sizes: bool = Field(default=False, description="a graphed step runs at the next captured size "
                                                                   "(sizes rounded up to multiples of k + 1)")
    uniform_decode_for_full_graph: bool = Field(
        default=False, description="a step with prefill tokens (not every request at k + 1 tokens) runs PIECEWISE: "
                                   "the graph around the layers, attention eager")
    drafter: Literal["full", "piecewise"] = Field(
        default="full", description="graph mode of the draft passes (vLLM's EAGLE: PIECEWISE only, draft attention eager)")
    max_capture_batch: dict[str, int] = Field(
        default_factory=dict, description="capture_limit sglang: the largest captured batch (requests) by GPU memory "
        "class and TP, keys '<GiB>:tp<4' / '<GiB>:tp>=4' (the smallest class at least the GPU's memory applies)")


class EngineProfile(Sourced):
    """What a rollout engine does per step, mechanism by mechanism (engine_profiles/*.yaml).

    Each field names a mechanism; the cost model prices each from measurements (calibration/<gpu>/engine.csv,
    calibration/host/) or from the engine's own cost model in its source, never from a fitted constant."""

    name: str
    description: str
    engine: Literal["ideal", "vllm", "sglang"]
    version: str
    graphs: GraphPolicy
    verify_attention_blackwell: Literal["decode_plus_query_flops", "trtllm_gen_tile"] = Field(
        description="verification attention on Blackwell: the decode kernel plus the extra query FLOPs (an ideal "
                    "kernel), or FlashInfer's TRTLLM-gen decode kernel whose query tile grows with k + 1")
    trtllm_tile_cost: dict[int, float] = Field(
        default_factory=dict, description="per-KV-step main-loop cost by query tile size (FlashInfer's own cost model)")
    sampler: Literal["ideal", "vllm-0.17.1", "lean", "sglang-0.5.6"] = Field(
        description="ideal: fused sampling / rejection sampling (calibration sampling.csv); vllm-0.17.1: the sampler "
                    "and rejection sampler with log-probs op for op (engine.csv); lean: the same without the "
                    "[B(k+1), V] log-prob buffers; sglang-0.5.6: SGLang's sampler, target-only tree verification and the "
                    "log-probs of the accepted rows op for op (engine_sglang.csv)")
    draft_token_choice: Literal["draft_vocab", "full_vocab_scatter", "draft_vocab_softmax_topk"] = Field(
        description="draft_vocab: argmax over the draft's vocabulary; full_vocab_scatter: a [B, V_target] tensor filled "
                    "with -inf, the draft logits scattered into it, argmax over V_target (every draft step); "
                    "draft_vocab_softmax_topk: softmax over the draft vocabulary, top-1 and the hot-token map (SGLang)")
    host: Literal["ideal_residue", "measured", "vllm_measured_proxy"] = Field(
        description="ideal_residue: a small exposed host cost per step (engineering estimate); measured: the engine's "
                    "host work per step and per speculative round (calibration/host, engine.csv); vllm_measured_proxy: "
                    "vLLM 0.17.1's measured per-step host work standing in for another engine's (not measured), plus "
                    "that engine's own measured sampler issue times and graph replays")
    async_scheduling: Literal["always", "vllm", "sglang"] = Field(
        description="always: host work overlaps the GPU; vllm: vLLM 0.17.1's rule: on, except for n-gram drafting and "
                    "the Ray executor (tensor_parallel_size > 1 under NeMo-RL); sglang: SGLang 0.5.6's overlap "
                    "scheduler, on without speculation and off with EAGLE / n-gram (spec v2 off by default)")
    draft_extend: Literal["first_pass", "after_verify"] = Field(
        default="first_pass", description="first_pass: the drafter's first pass runs over the verified tokens (vLLM, "
        "launched with the draft passes); after_verify: a separate draft-extend forward after verification, its own "
        "CUDA graph replay (SGLang's forward_draft_extend_after_decode)")
    prefill_mixing: Literal["mixed", "separate"] = Field(
        default="mixed", description="mixed: prefill chunks share a step with the decoding sequences (vLLM chunked "
        "prefill); separate: a prefill batch runs alone, before decode, and the decoding sequences wait (SGLang)")
    prefill_chunk_tokens: Literal["workload", "sglang"] = Field(
        default="workload", description="workload: the workload's max_num_batched_tokens; sglang: SGLang's "
        "chunked_prefill_size by GPU memory (8192 below 160 GiB, 16384 above)")
    speculative_max_running_requests: int | None = Field(
        default=None, ge=1, description="running requests allowed with speculation when the caller leaves "
        "max_running_requests unset (SGLang: 48); None: the workload's max_num_seqs")
    kv_transfer: Literal["after_prefill", "per_chunk", "layerwise"] = Field(
        default="after_prefill", description="prefill/decode disaggregation: when the prefill side's KV moves to the "
        "decode side: after the whole prefill (vLLM NixlConnector), after each prefill chunk (SGLang), or layer by "
        "layer as it is computed (vLLM P2pNcclConnector)")
    # draft trees (rlsim/speculation/trees.py, docs/speculation-trees.md); None: an engine that drafts any tree
    # (SGLang's dynamic trees included) one new level per pass, verifies it with its verify kernel and tree-aware
    # rejection
    tree_drafting: Literal["new_tokens", "static_cumulative"] | None = Field(
        default=None, description="new_tokens: each later draft pass runs the tree's new tokens only (SGLang: topk per "
                                  "sequence); static_cumulative: vLLM 0.17.1's propose_tree: static speculative_token_tree "
                                  "only, level l re-runs every tree token drafted so far")
    tree_attention: Literal["verify_kernel", "triton_unified_2d"] | None = Field(
        default=None, description="verify_kernel: the engine's verify attention with the tree's query rows; "
                                  "triton_unified_2d: vLLM's TREE_ATTN backend (Triton unified attention, no split-KV, "
                                  "one program per query block and KV head; no FULL CUDA graphs)")
    tree_verification: Literal["tree", "chain"] | None = Field(
        default=None, description="tree: tree-aware rejection (the longest accepted path); chain: the breadth-first "
                                  "flattened tree verified as a chain (vLLM 0.17.1's rejection sampler)")

    @classmethod
    def _unsourced_fields(cls) -> set[str]:
        return {"sources", "name", "description", "engine", "version"}

    @classmethod
    def _sourced_text_fields(cls) -> set[str]:
        return {"verify_attention_blackwell", "sampler", "draft_token_choice", "host", "async_scheduling", "graphs",
                "draft_extend", "prefill_mixing", "prefill_chunk_tokens", "kv_transfer",
                "tree_drafting", "tree_attention", "tree_verification"}

    # mechanisms added after the first profiles: at its default (vLLM 0.17.1's behaviour) one needs no source of its
    # own (the profile's other sources cover vLLM); set to anything else it must be sourced
    OPTIONAL_MECHANISMS: ClassVar[tuple[str, ...]] = ("draft_extend", "prefill_mixing", "prefill_chunk_tokens", "kv_transfer")

    def _is_number_field(self, name: str) -> bool:
        if name in self.OPTIONAL_MECHANISMS and getattr(self, name) == type(self).model_fields[name].default:
            return False
        return super()._is_number_field(name)

    @field_validator("trtllm_tile_cost")
    @classmethod
    def _tiles(cls, v: dict[int, float]) -> dict[int, float]:
        for t, c in v.items():
            if t < 1 or t & (t - 1):
                raise ValueError(f"trtllm_tile_cost: tile size {t} is not a power of two")
            if not (c > 0 and c < 1e3):
                raise ValueError(f"trtllm_tile_cost[{t}] = {c}; allowed: a positive cost factor")
        return v

    @model_validator(mode="after")
    def _tile_table(self):
        if self.verify_attention_blackwell == "trtllm_gen_tile" and not self.trtllm_tile_cost:
            raise ValueError("verify_attention_blackwell: trtllm_gen_tile needs trtllm_tile_cost (tile size -> cost)")
        if self.graphs.capture_limit == "sglang":
            if not self.graphs.max_capture_batch:
                raise ValueError("graphs.capture_limit: sglang needs graphs.max_capture_batch ('<GiB>:tp<4' / "
                                 "'<GiB>:tp>=4' -> largest captured batch)")
            for key, v in self.graphs.max_capture_batch.items():
                gib, _, tp = key.partition(":")
                if tp not in ("tp<4", "tp>=4") or not gib.isdigit() or v < 1:
                    raise ValueError(f"graphs.max_capture_batch[{key!r}] = {v}: allowed keys '<GiB>:tp<4' or "
                                     "'<GiB>:tp>=4' (GiB an integer), values >= 1")
        return self
