"""A scenario: the fully resolved inputs of one projection (workload + the user's overrides).

A workload supplies defaults; arguments override them; ``model`` alone picks that model's default
workload. Names follow vLLM / NeMo-RL (``num_speculative_tokens``, ``max_trajectory_age_steps``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .catalog import Workload, load_hardware, load_model, load_workload
from .errors import CatalogError, ConfigurationError
from .fields import OPTION_FIELDS, WORKLOAD_OVERRIDES, ScenarioOptions, scenario_dict
from .scenario_checks import scenario_arguments


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
    num_speculative_tokens_per_batch_size: list[tuple[int, int, int]] | None = None  # checked once, in build_scenario
    seed: int = 0
    calibration: str = "auto"
    engine: str = "vllm-0.17.1"  # engine profile (engine_profiles/<name>.yaml)
    options: ScenarioOptions = Field(default_factory=ScenarioOptions)  # typed (rlsim/fields.py)
    # draft trees (rlsim/speculation/trees.py): SGLang's three parameters or vLLM's speculative_token_tree; the
    # acceptance inputs above describe the draft as a chain at num_speculative_tokens
    speculative_num_steps: int | None = None
    speculative_eagle_topk: int | None = None
    speculative_num_draft_tokens: int | None = None
    speculative_token_tree: str | None = None
    tree_rank_decay: float | None = None  # None: trees.DEFAULT_RANK_DECAY
    tree_acceptance: list[list[float]] | None = None  # per depth, per rank (replaces the rank-decay model)
    tree_verification: str | None = None  # tree | chain (None: the engine profile's)
    retrieval_tokens: int = 0  # retrieved (n-gram / suffix) candidate tokens merged into the tree
    retrieval_acceptance_length: float | None = None  # AL of the retrieved candidate verified alone

    @property
    def has_tree(self) -> bool:
        return self.speculative_token_tree is not None or self.speculative_num_steps is not None or \
            self.retrieval_tokens > 0

    @property
    def k(self) -> int:
        return self.num_speculative_tokens

    @property
    def lag(self) -> int:
        """The policy lag, stored once: the workload's ``max_trajectory_age_steps``."""
        return self.workload.max_trajectory_age_steps

    @property
    def max_trajectory_age_steps(self) -> int:
        return self.workload.max_trajectory_age_steps

    def to_dict(self) -> dict:
        """The scenario as written in a projection's JSON: the keys of the field table (rlsim/fields.py), in order."""
        return scenario_dict(self)


_WORKLOAD_OVERRIDES = WORKLOAD_OVERRIDES  # the workload fields a caller may override (rlsim/fields.py)
_OPTION_NAMES = frozenset(f.name for f in OPTION_FIELDS)  # the pipeline's options (ScenarioOptions)
# nested workload sections a caller may update field by field (dicts merged into the workload's own)
_SECTION_OVERRIDES = ("training", "engine", "prompt_length")


# The rollout engine every projection models unless told otherwise: the one users and the reference study run
# (NeMo-RL v0.6.0 pins vllm==0.17.1). ``ideal`` is the engine of the ground-truth harness.
DEFAULT_ENGINE = "vllm-0.17.1"

# Largest inputs the simulator accepts (beyond them memory, not the answer, is the limit).
MAX_GPUS = 1 << 20
MAX_SEQUENCES_PER_STEP = 1 << 24


def _is_yaml_path(name: str) -> bool:
    return name.endswith((".yaml", ".yml"))


def _validated(cls, data: dict, what: str):
    """``cls.model_validate(data)``, a pydantic error turned into one line naming the field and value."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        from .catalog.loader import describe_validation_error

        raise ConfigurationError(f"{what}: {describe_validation_error(e)}") from None


@scenario_arguments  # every argument type-checked, conflicting ones refused (rlsim/scenario_checks.py)
def build_scenario(model: str | None = None, workload: str | None = None, hardware: str | None = None,
                   gpus: int | None = None, k: int | None = None, drafter: str | None = None,
                   acceptance_length: float | None = None, lag: int | None = None, gen_gpus: int | None = None,
                   train_gpus: int | None = None, seed: int = 0, *,
                   acceptance_rates_per_position: list[float] | None = None, draft_quality: float | None = None,
                   draft_quality_decay: float = 1.0, draft_model: str | None = None,
                   num_speculative_tokens_per_batch_size: list | None = None, calibration: str = "auto",
                   tensor_parallel_size: int | None = None, enable_expert_parallel: bool | None = None,
                   response_median_tokens: float | None = None,
                   engine: str | None = None,
                   max_new_tokens: int | None = None, response_sigma: float | None = None,
                   options: dict | None = None, training: dict | None = None, engine_config: dict | None = None,
                   prompt_length: dict | None = None, generation: dict | None = None,
                   speculative_num_steps: int | None = None,
                   speculative_eagle_topk: int | None = None, speculative_num_draft_tokens: int | None = None,
                   speculative_token_tree: str | None = None, tree_rank_decay: float | None = None,
                   tree_acceptance: list | str | None = None, tree_verification: str | None = None,
                   retrieval_tokens: int | None = None, retrieval_acceptance_length: float | None = None,
                   **workload_fields) -> Scenario:
    """Resolve a scenario from a workload and overrides (the CLI flags map 1:1 onto these arguments)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigurationError(f"--seed = {seed!r}; allowed: an integer >= 0")
    engine_name = DEFAULT_ENGINE if engine is None else engine
    if not isinstance(engine_name, str):
        raise ConfigurationError(f"--engine = {engine_name!r}; allowed: a name in engine_profiles/ or a .yaml path")
    from .catalog import load_engine

    engine_name = engine_name if _is_yaml_path(engine_name) else load_engine(engine_name).name
    if lag is not None and lag < 0:
        raise ConfigurationError(f"--lag = {lag}; allowed: >= 0 (0 = synchronous, >= 1 = asynchronous with that policy lag)")
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
            upd["model"] = model if _is_yaml_path(model) else spec.name  # a user's YAML file stays a path
    if hardware is not None:
        hw_name = load_hardware(hardware).name
        upd["hardware"] = hardware if _is_yaml_path(hardware) else hw_name
    if gpus is not None:
        if not (1 <= gpus <= MAX_GPUS):
            raise ConfigurationError(f"--gpus = {gpus}; allowed: >= 1 (at most {MAX_GPUS:,})")
        upd["gpus"] = gpus
        upd["gen_gpus"] = None
        upd["train_gpus"] = None
    if gen_gpus is not None or train_gpus is not None:
        for name, v in (("--gen-gpus", gen_gpus), ("--train-gpus", train_gpus)):
            if v is not None and not (1 <= v <= MAX_GPUS):
                raise ConfigurationError(f"{name} = {v}; allowed: >= 1 (at most {MAX_GPUS:,})")
        upd["colocated"] = colocated_pools(w.colocated, split_given=True, lag=0)
        upd["gen_gpus"] = gen_gpus
        upd["train_gpus"] = train_gpus
        if gen_gpus is not None and train_gpus is not None:
            if gpus is not None and gpus != gen_gpus + train_gpus:
                raise ConfigurationError(
                    f"--gpus = {gpus} but --gen-gpus {gen_gpus} + --train-gpus {train_gpus} = {gen_gpus + train_gpus}; "
                    "pass either --gpus or both of --gen-gpus/--train-gpus, or make them add up")
            upd["gpus"] = gen_gpus + train_gpus
    option_kwargs = {}
    for key, value in workload_fields.items():
        if key in _OPTION_NAMES:  # a pipeline option given by its name (acceptance_spread=0.1): into the options
            if value is not None:
                option_kwargs[key] = value
            continue
        if key not in _WORKLOAD_OVERRIDES:
            raise ConfigurationError(f"unknown scenario field {key!r}; allowed: {', '.join(sorted(_WORKLOAD_OVERRIDES))}"
                                     f"; options: {', '.join(sorted(_OPTION_NAMES))}")
        if value is not None:
            upd[key] = value
    opts = ScenarioOptions.model_validate({**(options or {}), **option_kwargs})  # typed and checked (fields.py)
    if tensor_parallel_size is not None or generation or enable_expert_parallel is not None:
        if generation is not None and not isinstance(generation, dict):
            raise ConfigurationError(f"generation = {generation!r}; expected a mapping of generation fields")
        gen = {**w.generation.model_dump(), **(generation or {})}
        if tensor_parallel_size is not None:
            gen["tensor_parallel_size"] = tensor_parallel_size
        if enable_expert_parallel is not None:
            gen["enable_expert_parallel"] = enable_expert_parallel
        upd["generation"] = _validated(type(w.generation), gen, "generation (tensor_parallel_size / enable_expert_parallel "
                                       "/ data_parallel_size)")
    for name, section in zip(_SECTION_OVERRIDES, (training, engine_config, prompt_length)):
        if section:
            if not isinstance(section, dict):
                raise ConfigurationError(f"{name} = {section!r}; expected a mapping of {name} fields")
            upd[name] = {**getattr(w, name).model_dump(), **section}
    if response_median_tokens is not None or max_new_tokens is not None or response_sigma is not None:
        rl = w.response_length.model_dump()
        if response_sigma is not None:
            if rl["distribution"] != "lognormal":
                raise ConfigurationError(f"response_sigma = {response_sigma}: workload {w.name}'s response lengths "
                                         f"are {rl['distribution']!r}, without a sigma; allowed only for lognormal lengths")
            rl["sigma"] = response_sigma
        if response_median_tokens is not None:
            rl["median_tokens"] = response_median_tokens
        if max_new_tokens is not None:
            rl["max_tokens"] = max_new_tokens
        upd["response_length"] = _validated(type(w.response_length), rl,
                                            "response length (response_median_tokens / max_new_tokens / response_sigma)")
    if lag is not None:
        upd["max_trajectory_age_steps"] = lag
    if upd:
        sources = {**w.sources, **{k_: "set by the caller (a build_scenario argument / command-line flag)" for k_ in upd}}
        w = _validated(Workload, {**w.model_dump(exclude_unset=True), **{k_: (v.model_dump() if hasattr(v, "model_dump")
                                                                               else v) for k_, v in upd.items()},
                                  "sources": sources},
                       f"workload {w.name} with overrides {', '.join(sorted(upd))}")
    for name, v in (("gpus", w.gpus), ("gen_gpus", w.gen_gpus), ("train_gpus", w.train_gpus)):
        if v is not None and not (1 <= v <= MAX_GPUS):
            raise ConfigurationError(f"{name} = {v} (workload {w.name}); allowed: 1..{MAX_GPUS:,}")
    if w.sequences_per_step > MAX_SEQUENCES_PER_STEP:
        raise ConfigurationError(
            f"sequences per step = {w.sequences_per_step:,} (num_prompts_per_step {w.num_prompts_per_step} x "
            f"num_generations_per_prompt {w.num_generations_per_prompt}); allowed: up to {MAX_SEQUENCES_PER_STEP:,}")
    if not w.colocated and (w.gen_gpus is None) != (w.train_gpus is None):
        given, v = ("--gen-gpus", w.gen_gpus) if w.gen_gpus is not None else ("--train-gpus", w.train_gpus)
        if v >= w.gpus:
            raise ConfigurationError(
                f"{given} = {v} leaves no GPUs for the other pool out of --gpus = {w.gpus}; allowed: 1..{w.gpus - 1}, "
                "or pass both --gen-gpus and --train-gpus")
    try:  # the model and hardware the (overridden) workload names must exist
        load_model(w.model)
        load_hardware(w.hardware)
    except CatalogError as e:
        raise CatalogError(f"workload {workload}: {e}") from None
    spec_cfg = w.speculation
    k_eff = spec_cfg.num_speculative_tokens if k is None else k
    if k_eff < 0:
        raise ConfigurationError(f"--k = {k_eff}; allowed: >= 0")
    if k_eff > w.engine.max_num_speculative_tokens:
        src = "--k" if k is not None else f"speculation.num_speculative_tokens of workload {w.name}"
        raise ConfigurationError(
            f"{src} = {k_eff} exceeds the engine's maximum num_speculative_tokens "
            f"(engine.max_num_speculative_tokens = {w.engine.max_num_speculative_tokens}); allowed: "
            f"0..{w.engine.max_num_speculative_tokens}")
    method = drafter or spec_cfg.method
    from .speculation.drafters import DRAFTERS

    if method not in DRAFTERS:
        raise ConfigurationError(f"unknown drafter {method!r}; allowed: {', '.join(DRAFTERS)}")
    al = acceptance_length
    rates = acceptance_rates_per_position
    if al is not None and k_eff > 0 and not (1.0 <= al <= k_eff + 1):
        raise ConfigurationError(f"--acceptance-length = {al} is impossible at k = {k_eff}; allowed: 1 <= AL <= k+1 = {k_eff + 1}")
    if al is not None and k_eff == 0 and al != 1.0:
        raise ConfigurationError(
            f"--acceptance-length = {al} is impossible at k = 0 (autoregressive decoding yields 1 token per round); "
            f"allowed: AL = 1 at k = 0, or pass --k >= {max(int(np.ceil(al - 1)), 1) if np.isfinite(al) else 1}")
    if num_speculative_tokens_per_batch_size:  # the k schedule, checked here once (the pipeline only reads it)
        num_speculative_tokens_per_batch_size = _checked_k_schedule(num_speculative_tokens_per_batch_size, w, k_eff)
    if al is None and rates is None and draft_quality is None and k_eff > 0:
        if method != spec_cfg.method:
            raise ConfigurationError(
                f"workload {w.name} gives the acceptance of drafter {spec_cfg.method!r}, not {method!r}: pass "
                f"--acceptance-length (AL at k = {k_eff}) or --draft-quality")
        if spec_cfg.acceptance_length is None and spec_cfg.acceptance_rates_per_position is None:
            raise ConfigurationError(f"workload {w.name} gives no acceptance; pass --acceptance-length or --draft-quality")
    if draft_quality is not None and not (0.0 <= draft_quality <= 1.0):
        raise ConfigurationError(f"--draft-quality = {draft_quality}; allowed: 0..1 (per-token acceptance rate)")
    tree = _resolve_tree_arguments(
        w, k_eff, method, engine_name, opts, num_speculative_tokens_per_batch_size,
        dict(speculative_num_steps=speculative_num_steps, speculative_eagle_topk=speculative_eagle_topk,
             speculative_num_draft_tokens=speculative_num_draft_tokens, speculative_token_tree=speculative_token_tree,
             tree_rank_decay=tree_rank_decay, tree_acceptance=tree_acceptance, tree_verification=tree_verification,
             retrieval_tokens=retrieval_tokens, retrieval_acceptance_length=retrieval_acceptance_length))
    if colocated_pools(w.colocated, split_given=gen_gpus is not None or train_gpus is not None,
                       lag=w.max_trajectory_age_steps) != w.colocated:
        w = w.model_copy(update={"colocated": False})  # the pipeline chooses a split
    return _validated(Scenario, dict(
        workload=w, num_speculative_tokens=k_eff, drafter=method, acceptance_length=al,
        acceptance_rates_per_position=rates, draft_quality=draft_quality, draft_quality_decay=draft_quality_decay,
        draft_model=draft_model or spec_cfg.draft_model,
        num_speculative_tokens_per_batch_size=num_speculative_tokens_per_batch_size,
        seed=int(seed), calibration=calibration, engine=engine_name, options=opts, **tree), "scenario")


def colocated_pools(colocated: bool, split_given: bool, lag: int) -> bool:
    """Whether generation and training share the GPUs, decided here only: not when the caller splits the GPUs
    (--gen-gpus / --train-gpus), nor at a policy lag >= 1 (asynchronous RL needs separate generation and training
    pools); otherwise the workload's ``colocated``."""
    return False if split_given or lag > 0 else colocated


def with_separate_pools(sc: Scenario) -> Scenario:
    """``sc`` on separate generation and training pools (the pipeline chooses a split), as a lag >= 1 scenario runs:
    what a timeline draws (it shows the asynchronous pipeline's steps)."""
    colocated = colocated_pools(sc.workload.colocated, split_given=False, lag=max(sc.lag, 1))
    if colocated == sc.workload.colocated:
        return sc
    return sc.model_copy(update={"workload": sc.workload.model_copy(update={"colocated": colocated})})


def _checked_k_schedule(sched, w, k: int) -> list[tuple[int, int, int]]:
    """The k schedule (vLLM's num_speculative_tokens_per_batch_size) against the engine: each entry's k within
    max_num_speculative_tokens, ranges from batch size 1 to max_num_seqs without gaps or overlaps, speculation on.
    Returned sorted."""
    from .speculation.adaptive import validate_k_schedule

    e = w.engine
    validate_k_schedule(sched)  # its shape first: ranges in order, no overlap, no gap
    for row in sched:
        if len(row) != 3 or not (0 <= row[0] <= row[1]) or not (0 <= row[2] <= e.max_num_speculative_tokens):
            raise ConfigurationError(
                f"num_speculative_tokens_per_batch_size entry {tuple(row)}: allowed (min_batch, max_batch, k) with "
                f"0 <= min_batch <= max_batch and 0 <= k <= {e.max_num_speculative_tokens}")
    if k == 0:
        raise ConfigurationError("a k schedule (num_speculative_tokens_per_batch_size) needs speculation on: "
                                 "pass --k >= 1 (the k at which the draft's acceptance is given)")
    return validate_k_schedule(sched, e.max_num_speculative_tokens, e.max_num_seqs)


_TREE_FLAGS = {"speculative_num_steps": "--speculative-num-steps", "speculative_eagle_topk": "--speculative-eagle-topk",
               "speculative_num_draft_tokens": "--speculative-num-draft-tokens",
               "speculative_token_tree": "--speculative-token-tree", "tree_rank_decay": "--tree-rank-decay",
               "tree_acceptance": "--tree-acceptance", "tree_verification": "--tree-verification",
               "retrieval_tokens": "--retrieval-tokens", "retrieval_acceptance_length": "--retrieval-acceptance-length"}


def _resolve_tree_arguments(w, k: int, method: str, engine_name: str, options: ScenarioOptions, k_schedule,
                            a: dict) -> dict:
    """The draft-tree arguments checked against each other and the rest of the scenario (one line each, with
    what is allowed); returns the Scenario fields. The tree itself is built by the pipeline (it needs the
    draft's acceptance)."""
    from .catalog import load_engine, load_model
    from .inputs import check_count, check_number
    from .speculation.trees import (MAX_TREE_TOKENS, TREE_TOKENS_WHY, check_sglang_params, parse_acceptance_table,
                                    parse_token_tree)

    given = {n: v for n, v in a.items() if v is not None and not (n == "retrieval_tokens" and v == 0)}
    if not given:
        return {}
    flag = _TREE_FLAGS
    sglang = [n for n in ("speculative_num_steps", "speculative_eagle_topk", "speculative_num_draft_tokens") if n in given]
    if "speculative_token_tree" in given and sglang:
        raise ConfigurationError(f"{flag[sglang[0]]} (SGLang's dynamic tree) and --speculative-token-tree (vLLM's static "
                                 "tree) both set the tree; allowed: one of the two")
    if sglang and "speculative_num_steps" not in given:
        raise ConfigurationError(f"{flag[sglang[0]]} needs --speculative-num-steps (SGLang's draft depth); allowed: "
                                 "--speculative-num-steps S [--speculative-eagle-topk K --speculative-num-draft-tokens N]")
    shaped = bool(sglang) or "speculative_token_tree" in given
    retr = int(given.get("retrieval_tokens", 0) or 0)
    if "retrieval_tokens" in given:
        retr = check_count("--retrieval-tokens", given["retrieval_tokens"], 0, MAX_TREE_TOKENS - 2, TREE_TOKENS_WHY)
    if retr and "retrieval_acceptance_length" not in given:
        raise ConfigurationError(f"--retrieval-tokens {retr} needs --retrieval-acceptance-length (the AL of the retrieved "
                                 f"candidate verified alone, 1..{retr + 1}); there is no default")
    if "retrieval_acceptance_length" in given and not retr:
        raise ConfigurationError("--retrieval-acceptance-length applies to retrieved candidates, and --retrieval-tokens is "
                                 "not given (it would be ignored); allowed: with --retrieval-tokens >= 1")
    if not shaped and not retr:
        first = next(iter(given))
        raise ConfigurationError(f"{flag[first]} shapes a draft tree, which is not given (it would be ignored); allowed: "
                                 "with --speculative-num-steps (SGLang) or --speculative-token-tree (vLLM)")
    if "tree_rank_decay" in given and "tree_acceptance" in given:
        raise ConfigurationError("--tree-rank-decay and --tree-acceptance both set the per-rank acceptance (one would be "
                                 "dropped); allowed: one of them")
    if k == 0:
        raise ConfigurationError(f"{flag[next(iter(given))]}: a draft tree needs speculation on; allowed: --k >= 1 (the chain "
                                 "length at which the draft's acceptance is given)")
    if method not in ("eagle3", "mtp", "draft-model"):
        raise ConfigurationError(f"a draft tree is drafted by a model; drafter {method!r} has none (n-gram candidates "
                                 "are merged with --retrieval-tokens); allowed: --drafter eagle3, mtp or draft-model")
    if k_schedule:
        raise ConfigurationError("a k schedule (--k-schedule) and a draft tree both set the draft per round; allowed: one of "
                                 "them (optimize-k --tree searches tree shapes per batch size)")
    for opt in ("acceptance_spread", "acceptance_response_decay"):
        if options.get(opt):
            raise ConfigurationError(f"options.{opt} (--{opt.replace('_', '-')})"
                                     " varies a chain's per-position acceptance; with a draft tree it is not modelled; "
                                     "allowed: one or the other")
    out = {n: given[n] for n in given if n in ("speculative_num_steps", "speculative_eagle_topk",
                                               "speculative_num_draft_tokens", "speculative_token_tree")}
    if sglang:
        steps = given["speculative_num_steps"]
        topk = given.get("speculative_eagle_topk", 1)
        out["speculative_eagle_topk"] = topk
        out["speculative_num_draft_tokens"] = check_sglang_params(steps, topk, given.get("speculative_num_draft_tokens"))
    if "speculative_token_tree" in given:
        from .inputs import as_str

        parse_token_tree(as_str("--speculative-token-tree", given["speculative_token_tree"], "a list of rank tuples"))
    if "tree_rank_decay" in given:
        out["tree_rank_decay"] = check_number("--tree-rank-decay", given["tree_rank_decay"], 0.0, 0.999,
                                              what="share of the miss mass each further draft rank leaves")
    if "tree_acceptance" in given:
        out["tree_acceptance"] = [list(r) for r in parse_acceptance_table(given["tree_acceptance"])]
    if "tree_verification" in given:
        v = given["tree_verification"]
        if v not in ("tree", "chain"):
            raise ConfigurationError(f"--tree-verification = {v!r}; allowed: tree, chain (default: the engine profile's)")
        out["tree_verification"] = v
    if retr:
        out["retrieval_tokens"] = retr
        out["retrieval_acceptance_length"] = check_number("--retrieval-acceptance-length",
                                                          given["retrieval_acceptance_length"], 1.0, retr + 1.0,
                                                          what=f"AL of {retr} retrieved tokens verified alone")
        if not shaped:  # a retrieved branch beside the drafter's chain: the chain as a static tree
            out["speculative_token_tree"] = str([(0,) * (i + 1) for i in range(k)])
    eng = load_engine(engine_name)
    if eng.engine != "ideal" and eng.tree_drafting == "static_cumulative":
        if sglang and out.get("speculative_eagle_topk", 1) > 1:
            raise ConfigurationError(
                f"--speculative-eagle-topk {out['speculative_eagle_topk']}: engine {eng.name} drafts static trees only "
                "(vLLM 0.17.1 has no dynamic tree); allowed: --speculative-token-tree, or --engine sglang-0.5.6 (SGLang's "
                "dynamic trees) or ideal")
        if retr:
            raise ConfigurationError(f"--retrieval-tokens: engine {eng.name} runs one proposer per request (vLLM 0.17.1 "
                                     "cannot merge n-gram / suffix candidates into a model's tree); allowed: --engine ideal")
        if load_model(w.model).is_mla and (shaped and not _is_chain_args(out)):
            raise ConfigurationError(f"a draft tree on {w.model} (multi-head latent attention): vLLM 0.17.1's tree "
                                     "attention backend (TREE_ATTN) handles MHA/GQA layers only; allowed: a chain (--k), "
                                     "or --engine ideal")
    return out


def _is_chain_args(out: dict) -> bool:
    if "speculative_token_tree" in out:
        import ast

        nodes = ast.literal_eval(out["speculative_token_tree"])
        return all(all(x == 0 for x in n) for n in nodes)
    return out.get("speculative_eagle_topk", 1) == 1
