"""One typed definition of a scenario's settings: the field table everything else is generated from.

Each ``Knob`` is one setting with one name end to end: the ``build_scenario`` argument, the sweep axis, the
``rlsim project`` / ``timeline`` / ``sweep`` flag and, for the pipeline's options, the field of the typed
``ScenarioOptions`` that ``pipeline/setup.py`` reads. From this table come

* the typed options (``ScenarioOptions``, a pydantic model checked in ``build_scenario``);
* the sweep's axes, their types and aliases (``AXIS_TYPES``, ``ALIASES``), the descriptor columns of a sweep table
  (``DESCRIPTORS``), the fields only the speculative run reads (``SPEC_ONLY_FIELDS``, the AR-step memo's key);
* the CLI flags of ``rlsim project``, ``rlsim timeline`` and ``rlsim sweep`` (``rlsim/cli/knobs.py``);
* ``Scenario.to_dict`` (its keys, in this table's order).

A new knob is one row here: it gets a flag, a sweep axis and validation. Rows with ``knob=False`` only describe
(a ``to_dict`` entry or a sweep column that is no input, e.g. ``sequences_per_step`` or ``n_replicas``).

Where the settings live: ``scenario`` (a field of ``Scenario``, checked in ``build_scenario``), ``workload`` (a
field of the workload that ``build_scenario`` overrides), ``option`` (a field of ``ScenarioOptions``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

from pydantic import BaseModel, ConfigDict, create_model, model_validator

from .errors import ConfigurationError


@dataclass(frozen=True)
class Knob:
    name: str  # the one name: build_scenario argument, sweep axis, ScenarioOptions field
    type: type = str
    help: str | None = None  # rlsim project's help (also timeline's); None: no project flag
    flag: str | None = None  # CLI flag (default: --name with dashes)
    sweep_help: str | None = None  # rlsim sweep's help; None: no sweep flag (still an axis by name: --set)
    axis: bool = True  # a sweep axis (a build_scenario argument a grid may vary)
    aliases: tuple[str, ...] = ()  # other names a grid / --set accepts
    where: str = "scenario"  # scenario | workload | option
    spec_only: tuple[str, ...] = ()  # Scenario fields that only the speculative run reads
    descriptor: str | None = None  # the sweep table's column describing it
    describe: Callable | None = None  # scenario -> the column's value (None: read from the run's info)
    to_dict: str | None = None  # key in Scenario.to_dict (value: ``read``)
    read: Callable | None = None  # scenario -> the to_dict value
    tree: bool = False  # to_dict / descriptor only when the scenario has a draft tree
    knob: bool = True  # False: a description only (no input)
    default: Any = None  # the flag's default (project / timeline)
    commands: tuple[str, ...] = ("project",)  # commands with this flag (besides sweep: sweep_help)
    bool_flag: str | None = None  # typer's "--on/--off" form of a boolean flag
    check: Callable | None = None  # value -> value (raises ConfigurationError naming the field and the allowed values)

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")


def _w(attr):
    return lambda sc: getattr(sc.workload, attr)


def _s(attr):
    return lambda sc: getattr(sc, attr)


# ---------------------------------------------------------------------------------------------- checks
def _finite(name: str, v) -> float:
    from .inputs import as_float

    x = as_float(f"options.{name}", v)
    if not math.isfinite(x):
        raise ConfigurationError(f"options.{name} = {v!r}; allowed: a finite number")
    return x


def _check_acceptance_spread(v):
    from .inputs import MIN_SEQUENCE_SPREAD, SPREAD_WHY

    x = _finite("acceptance_spread", v)
    if x == 0:
        return None  # 0 = no spread (the option unset)
    if 0 < x < MIN_SEQUENCE_SPREAD:
        raise ConfigurationError(f"acceptance_spread = {v!r} (--acceptance-spread); allowed: 0 (no spread) or "
                                 f"{MIN_SEQUENCE_SPREAD}..1 ({SPREAD_WHY})")
    if not (0.0 <= x < 1.0):
        raise ConfigurationError(f"acceptance_spread = {x} (--acceptance-spread); allowed: 0 (no spread) or "
                                 f"{MIN_SEQUENCE_SPREAD} <= s < 1 (Beta variance as a fraction of its largest, mu*(1-mu))")
    return x


def _check_response_decay(v):
    x = _finite("acceptance_response_decay", v)
    if x == 0:
        return None  # 0 = no decay (the option unset)
    if not (0.0 <= x < 1.0):
        raise ConfigurationError(f"acceptance_response_decay = {x} (--acceptance-response-decay); allowed: 0 <= d < 1 "
                                 "(fraction of the per-token acceptance lost per 1000 response tokens)")
    return x


def _check_moe_routing_skew(v):
    _finite("moe_routing_skew", v)
    if isinstance(v, bool) or not (isinstance(v, (int, float)) and 0.0 <= v <= 3.0):
        raise ConfigurationError(f"moe_routing_skew = {v!r}; allowed: 0..3 (Zipf exponent of expert popularity; "
                                 "0 = uniform routing)")
    return v


def _check_group_correlation(v):
    _finite("group_correlation", v)
    if not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
        raise ConfigurationError(f"options.group_correlation = {v!r}; allowed: 0..1")
    return v


def _bool(name):
    def check(v):
        from .inputs import as_bool

        return as_bool(f"options.{name}", v)
    return check


def _async_count(name, lo):
    def check(v):
        from .inputs import ASYNC_STEPS_WHY, MAX_ASYNC_STEPS, check_count

        return check_count(f"options.{name}", v, lo, MAX_ASYNC_STEPS, ASYNC_STEPS_WHY)
    return check


def _number(name):
    return lambda v: _finite(name, v)


_TREE = "draft tree"
# ------------------------------------------------------------------------------------------------ the table
# Order: Scenario.to_dict's keys, and the sweep table's descriptor columns, follow it.
FIELDS: tuple[Knob, ...] = (
    Knob("workload", str, "catalog workload name or YAML path", sweep_help="workload name(s) or YAML path(s)",
         descriptor="workload", describe=lambda sc: sc.workload.name, to_dict="workload",
         read=lambda sc: sc.workload.name, commands=("project", "timeline")),
    Knob("model", str, "catalog model (alone: picks its default workload)",
         sweep_help="catalog model(s) (alone: the model's default workload)", descriptor="model", describe=_w("model"),
         to_dict="model", read=_w("model"), commands=("project", "timeline")),
    Knob("hardware", str, "hardware profile (default: the workload's)", sweep_help="hardware profile(s)",
         descriptor="hardware", describe=_w("hardware"), to_dict="hardware", read=_w("hardware"),
         commands=("project", "timeline")),
    Knob("gpus", int, "total GPUs", sweep_help="total GPUs, e.g. 16,32,64", descriptor="gpus", describe=_w("gpus"),
         to_dict="gpus", read=_w("gpus"), commands=("project", "timeline")),
    Knob("gen_gpus", int, "generation GPUs (non-colocated)", sweep_help="generation GPUs (non-colocated)",
         descriptor="gen_gpus", to_dict="gen_gpus", read=_w("gen_gpus"), commands=("project", "timeline")),
    Knob("train_gpus", int, "training GPUs (non-colocated)", sweep_help="training GPUs (non-colocated)",
         descriptor="train_gpus", to_dict="train_gpus", read=_w("train_gpus"), commands=("project", "timeline")),
    Knob("split", str, sweep_help="generation:training GPU pairs, e.g. 48:16,40:24"),
    Knob("colocated", bool, where="workload", descriptor="colocated", describe=_w("colocated"), to_dict="colocated",
         read=_w("colocated")),
    Knob("n_replicas", knob=False, axis=False, descriptor="n_replicas"),
    Knob("tensor_parallel_size", int, "rollout engine tensor_parallel_size (default: the workload's)", flag="--tp",
         sweep_help="vLLM tensor_parallel_size", aliases=("tp",), descriptor="tensor_parallel_size",
         describe=lambda sc: sc.workload.generation.tensor_parallel_size),
    Knob("enable_expert_parallel", bool, "MoE rollout engine: enable_expert_parallel (default: the workload's)",
         flag="--expert-parallel", bool_flag="--expert-parallel/--no-expert-parallel"),
    Knob("num_prompts_per_step", int, "prompts per RL step", sweep_help="prompts per RL step", where="workload",
         descriptor="num_prompts_per_step", describe=_w("num_prompts_per_step"), to_dict="num_prompts_per_step",
         read=_w("num_prompts_per_step")),
    Knob("num_generations_per_prompt", int, "responses per prompt", sweep_help="responses per prompt", where="workload",
         descriptor="num_generations_per_prompt", describe=_w("num_generations_per_prompt"),
         to_dict="num_generations_per_prompt", read=_w("num_generations_per_prompt")),
    Knob("sequences_per_step", knob=False, axis=False, to_dict="sequences_per_step", read=_w("sequences_per_step")),
    Knob("prompt_length", knob=False, axis=False, to_dict="prompt_length",
         read=lambda sc: sc.workload.prompt_length.model_dump()),
    Knob("response_length", knob=False, axis=False, to_dict="response_length",
         read=lambda sc: sc.workload.response_length.model_dump()),
    Knob("response_median_tokens", float, sweep_help="median response length", descriptor="response_median_tokens",
         describe=lambda sc: sc.workload.response_length.median_tokens),
    Knob("response_sigma", float),
    Knob("avg_seq_len", float, "measured mean prompt + response tokens per sequence: each step's responses are scaled "
         "to it", where="workload", descriptor="avg_seq_len", describe=_w("avg_seq_len")),
    Knob("max_new_tokens", int, "response length cap (tokens)", sweep_help="response length cap",
         descriptor="max_new_tokens", describe=lambda sc: sc.workload.response_length.max_tokens),
    Knob("generation_dtype", str, where="workload", to_dict="generation_dtype", read=_w("generation_dtype")),
    Knob("kv_cache_dtype", str, where="workload", to_dict="kv_cache_dtype", read=_w("kv_cache_dtype")),
    Knob("generation_parallelism", knob=False, axis=False, to_dict="generation_parallelism",
         read=lambda sc: sc.workload.generation.model_dump()),
    Knob("engine", str, "rollout engine profile: vllm-0.17.1 (default, what NeMo-RL v0.6.0 runs) | vllm-fixed | "
         "sglang-0.5.6 | sglang-0.5.6-nemo-rl | ideal (engine_profiles/, or a YAML path)",
         sweep_help="rollout engine profile(s): vllm-0.17.1 (default), vllm-fixed, ideal", descriptor="engine",
         describe=_s("engine"), to_dict="engine", read=_s("engine"), commands=("project", "timeline")),
    Knob("engine_config", knob=False, axis=False, to_dict="engine_config",
         read=lambda sc: sc.workload.engine.model_dump()),
    Knob("reference_logprobs", bool, where="workload", to_dict="reference_logprobs", read=_w("reference_logprobs")),
    Knob("k", int, "num_speculative_tokens (0 = autoregressive only)", sweep_help="num_speculative_tokens, e.g. 1,3,5,7 "
         "or 1..7", aliases=("num_speculative_tokens",), spec_only=("num_speculative_tokens",), descriptor="k",
         describe=_s("k"), to_dict="num_speculative_tokens", read=_s("k"), commands=("project", "timeline")),
    Knob("drafter", str, "eagle3 | mtp | draft-model | ngram", sweep_help="eagle3 | mtp | draft-model | ngram",
         spec_only=("drafter",), descriptor="drafter", describe=_s("drafter"), to_dict="drafter", read=_s("drafter")),
    Knob("drafter_network", knob=False, axis=False, descriptor="drafter_network"),
    Knob("draft_model", str, "catalog model drafting for --drafter draft-model", spec_only=("draft_model",),
         descriptor="draft_model", describe=_s("draft_model"), to_dict="draft_model", read=_s("draft_model")),
    Knob("acceptance_length", float, "mean AL at k (1..k+1)", sweep_help="mean AL at k (1..k+1)", aliases=("al",),
         spec_only=("acceptance_length",), descriptor="acceptance_length_input", describe=_s("acceptance_length"),
         to_dict="acceptance_length_input", read=_s("acceptance_length"), commands=("project", "timeline")),
    Knob("acceptance_rates_per_position", list, axis=False, spec_only=("acceptance_rates_per_position",),
         to_dict="acceptance_rates_per_position", read=_s("acceptance_rates_per_position")),
    Knob("draft_quality", float, "per-token acceptance rate (0..1)",
         sweep_help="per-token acceptance rate(s) 0..1, e.g. 0.6..0.9..0.1", aliases=("quality",),
         spec_only=("draft_quality",), descriptor="draft_quality", describe=_s("draft_quality"), to_dict="draft_quality",
         read=_s("draft_quality")),
    Knob("draft_quality_decay", float, "with --draft-quality: rate x decay**position (0..1]",
         sweep_help="per-position decay of the quality (0..1]", spec_only=("draft_quality_decay",),
         descriptor="draft_quality_decay", describe=_s("draft_quality_decay"), to_dict="draft_quality_decay",
         read=_s("draft_quality_decay")),
    Knob("num_speculative_tokens_per_batch_size", list, axis=False, spec_only=("num_speculative_tokens_per_batch_size",),
         to_dict="num_speculative_tokens_per_batch_size", read=_s("num_speculative_tokens_per_batch_size")),
    Knob("lag", int, "max_trajectory_age_steps (0 = synchronous)", sweep_help="max_trajectory_age_steps (0 = synchronous)",
         aliases=("max_trajectory_age_steps",), descriptor="lag", describe=_s("lag"), to_dict="max_trajectory_age_steps",
         read=_s("lag"), commands=("project", "timeline")),
    Knob("in_flight_weight_updates", bool, "async: update weights between iterations, no drain", where="workload",
         descriptor="in_flight_weight_updates", describe=_w("in_flight_weight_updates"),
         to_dict="in_flight_weight_updates", read=_w("in_flight_weight_updates"), default=False),
    Knob("seed", int, axis=False, to_dict="seed", read=_s("seed"), default=0, commands=("project", "timeline"),
         help=""),
    Knob("calibration", str, "auto | roofline | calibrated", sweep_help="auto | roofline | calibrated",
         descriptor="calibration", describe=_s("calibration"), to_dict="calibration", read=_s("calibration"),
         default="auto"),
    Knob("kernel_costs", knob=False, axis=False, descriptor="kernel_costs"),
    Knob("options", knob=False, axis=False, to_dict="options", read=lambda sc: sc.options.to_dict()),
    # draft trees (docs/speculation-trees.md); a token tree (a list with commas) only from a --grid file
    Knob("speculative_num_steps", int, "draft tree, SGLang: draft steps (depth); alone: a chain of that length",
         sweep_help="draft tree (SGLang): steps, e.g. 3..7", aliases=("steps",), spec_only=("speculative_num_steps",),
         descriptor="speculative_num_steps", describe=_s("speculative_num_steps"), to_dict="speculative_num_steps",
         read=_s("speculative_num_steps"), tree=True),
    Knob("speculative_eagle_topk", int, "draft tree, SGLang: candidates kept per step (1 = chain)",
         sweep_help="draft tree (SGLang): topk, e.g. 1,2,4,8", aliases=("topk",), spec_only=("speculative_eagle_topk",),
         descriptor="speculative_eagle_topk", describe=_s("speculative_eagle_topk"), to_dict="speculative_eagle_topk",
         read=_s("speculative_eagle_topk"), tree=True),
    Knob("speculative_num_draft_tokens", int, "draft tree, SGLang: tokens verified per sequence, root included",
         sweep_help="draft tree (SGLang): verified tokens, e.g. 8,16,32", aliases=("draft_tokens",),
         spec_only=("speculative_num_draft_tokens",), descriptor="speculative_num_draft_tokens",
         describe=_s("speculative_num_draft_tokens"), to_dict="speculative_num_draft_tokens",
         read=_s("speculative_num_draft_tokens"), tree=True),
    Knob("speculative_token_tree", str, "draft tree, vLLM's speculative_token_tree, e.g. '[(0,), (1,), (0, 0)]'",
         aliases=("token_tree",), spec_only=("speculative_token_tree",), descriptor="speculative_token_tree",
         describe=_s("speculative_token_tree"), to_dict="speculative_token_tree", read=_s("speculative_token_tree"),
         tree=True),
    Knob("tree_rank_decay", float, "tree acceptance: share of the miss mass each further draft rank leaves, 0..1 "
         "(default 0.7, an assumption)", sweep_help="tree acceptance rank decay(s), e.g. 0.5..0.9..0.2",
         spec_only=("tree_rank_decay",), descriptor="tree_rank_decay", describe=_s("tree_rank_decay"),
         to_dict="tree_rank_decay", read=_s("tree_rank_decay"), tree=True),
    Knob("tree_acceptance", str, "tree acceptance table: rows by depth of per-rank probabilities, "
         "'[[0.8,0.08],[0.75,0.1]]'", axis=False, spec_only=("tree_acceptance",), to_dict="tree_acceptance",
         read=_s("tree_acceptance"), tree=True),
    Knob("tree_verification", str, "tree | chain (default: the engine's; vllm-0.17.1 verifies a tree as a chain)",
         spec_only=("tree_verification",), descriptor="tree_verification", describe=_s("tree_verification"),
         to_dict="tree_verification", read=_s("tree_verification"), tree=True),
    Knob("retrieval_tokens", int, "n-gram / suffix-retrieved tokens merged into the draft tree per sequence (Graft, "
         "SuffixDecoding)", sweep_help="retrieved tokens merged into the tree, e.g. 0,4,8",
         spec_only=("retrieval_tokens",), descriptor="retrieval_tokens", describe=_s("retrieval_tokens"),
         to_dict="retrieval_tokens", read=_s("retrieval_tokens"), tree=True),
    Knob("retrieval_acceptance_length", float, "AL of the retrieved candidate verified alone (1..R+1)",
         spec_only=("retrieval_acceptance_length",), descriptor="retrieval_acceptance_length",
         describe=_s("retrieval_acceptance_length"), to_dict="retrieval_acceptance_length",
         read=_s("retrieval_acceptance_length"), tree=True),
    # workload overrides without a flag of their own (``--set name=value``)
    Knob("training_mfu", float, where="workload"),
    Knob("logprob_mfu", float, where="workload"),
    Knob("data_loading_s", float, where="workload"),
    Knob("max_total_sequence_length", int, where="workload"),
    Knob("training_model", str, where="workload"),
    Knob("rope_scaling", str, "none | yarn: the model's YaRN rope scaling (Qwen3: 32K native, 128K with YaRN)",
         where="workload", axis=False),
    # the pipeline's options (ScenarioOptions): how acceptance varies, async run length, disaggregation, turns
    Knob("partial_rollout", bool, "async: carry unfinished sequences to the next step", flag="--partial-rollouts",
         where="option", default=False, check=_bool("partial_rollout")),
    Knob("acceptance_spread", float, "per-sequence Beta spread of acceptance, 0..1 (mean AL kept)",
         sweep_help="per-sequence Beta spread of acceptance: 0, or 0.05..1 (mean AL kept)", where="option",
         check=_check_acceptance_spread),
    Knob("acceptance_response_decay", float, "fraction of per-token acceptance lost per 1000 response tokens",
         where="option", check=_check_response_decay),
    Knob("acceptance_preserve_mean", bool, where="option", axis=False, check=_bool("acceptance_preserve_mean")),
    Knob("moe_routing_skew", float, "MoE: Zipf exponent of expert popularity, 0..3 (0 = uniform routing: the default)",
         where="option", check=_check_moe_routing_skew),
    Knob("group_correlation", float, where="option", axis=False, check=_check_group_correlation),
    Knob("online_draft_training", bool, where="option", axis=False, check=_bool("online_draft_training")),
    Knob("async_warmup_steps", int, where="option", axis=False, check=_async_count("async_warmup_steps", 0)),
    Knob("async_measured_steps", int, where="option", axis=False, check=_async_count("async_measured_steps", 1)),
    Knob("prefill_gpus", int, "prefill/decode disaggregation: GPUs of a prefill pool (from the generation GPUs) that "
         "send KV to the decode replicas", where="option"),
    Knob("kv_link_gbps", float, "with --prefill-gpus: Gbit/s per GPU of the KV link (default: the hardware's "
         "scale-out NIC)", where="option"),
    Knob("kv_link_latency_ms", float, "with --prefill-gpus: one-way latency of a KV transfer in ms (default 0.005)",
         where="option"),
    Knob("turns", int, "multi-turn (agentic) rollouts: prefill-decode rounds per trajectory (1..64)", where="option"),
    Knob("tool_latency_s", float, "with --turns: seconds a tool runs between two turns", where="option"),
    Knob("tool_output_tokens", float, "with --turns: tokens a tool returns (prefilled by the next turn)",
         where="option"),
)
BY_NAME: dict[str, Knob] = {f.name: f for f in FIELDS}
OPTION_FIELDS: tuple[Knob, ...] = tuple(f for f in FIELDS if f.where == "option")

# ------------------------------------------------------------------------------------------ generated views
AXIS_TYPES: dict[str, type] = {f.name: f.type for f in FIELDS if f.knob and f.axis}
ALIASES: dict[str, str] = {a: f.name for f in FIELDS for a in f.aliases}
DESCRIPTORS: list[str] = [f.descriptor for f in FIELDS if f.descriptor]
SPEC_ONLY_FIELDS: tuple[str, ...] = tuple(s for f in FIELDS for s in f.spec_only)
WORKLOAD_OVERRIDES: frozenset[str] = frozenset(f.name for f in FIELDS if f.knob and f.where == "workload")


def canonical_name(name: str) -> str:
    """A setting's one name from what a user wrote (dashes, an alias)."""
    name = name.strip().replace("-", "_")
    return ALIASES.get(name, name)


def describe_scenario(scenario) -> dict:
    """The sweep table's descriptor columns of ``scenario`` (those read from the scenario itself)."""
    return {f.descriptor: f.describe(scenario) for f in FIELDS
            if f.descriptor and f.describe is not None and (not f.tree or scenario.has_tree)}


def scenario_dict(scenario) -> dict:
    """``Scenario.to_dict``: the table's ``to_dict`` entries in its order (tree entries with a draft tree only)."""
    return {f.to_dict: f.read(scenario) for f in FIELDS if f.to_dict and (not f.tree or scenario.has_tree)}


# --------------------------------------------------------------------------------------- typed options
class _OptionsBase(BaseModel):
    """The pipeline's options of a scenario, typed: one field per ``where="option"`` row of ``FIELDS`` (None = not
    set: the pipeline's default). Unknown keys are refused with the allowed ones; every value is checked here, in
    ``build_scenario``, before anything is simulated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _check(cls, data):
        if isinstance(data, BaseModel):
            data = data.model_dump(exclude_none=True)
        if not isinstance(data, dict):
            raise ConfigurationError(f"options = {data!r}; expected a mapping of option: value")
        allowed = [f.name for f in OPTION_FIELDS]
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ConfigurationError(f"options: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")
        out = {}
        for f in OPTION_FIELDS:  # the table's order: to_dict's order of the options
            if f.name not in data or data[f.name] is None:
                continue
            v = data[f.name]
            v = f.check(v) if f.check is not None else v
            if v is not None:
                out[f.name] = v
        from .inputs import check_disaggregation

        check_disaggregation(out)  # range, and no option another would leave unused (the flags' names)
        return out

    def get(self, name: str, default=None):
        """The option's value, ``default`` when not set (what a mapping's ``get`` gives)."""
        v = getattr(self, name, None)
        return default if v is None else v

    def to_dict(self) -> dict:
        """The options that are set, by name (the table's order)."""
        return self.model_dump(exclude_none=True)

    def __bool__(self) -> bool:
        return bool(self.to_dict())


ScenarioOptions = create_model(
    "ScenarioOptions", __base__=_OptionsBase,
    **{f.name: (Optional[f.type], None) for f in OPTION_FIELDS})


def check_values(kwargs: dict) -> None:
    """The table's checks of the scenario and workload fields in ``kwargs`` (options are checked by
    ``ScenarioOptions``): a bad value is refused naming the field and what is allowed."""
    for name, v in kwargs.items():
        f = BY_NAME.get(name)
        if f is not None and f.check is not None and f.where != "option" and v is not None:
            f.check(v)


__all__ = ["ALIASES", "AXIS_TYPES", "BY_NAME", "DESCRIPTORS", "FIELDS", "Knob", "OPTION_FIELDS", "SPEC_ONLY_FIELDS",
           "ScenarioOptions", "WORKLOAD_OVERRIDES", "canonical_name", "describe_scenario", "scenario_dict"]
