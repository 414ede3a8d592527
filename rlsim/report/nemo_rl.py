"""Scenarios from NeMo-RL GRPO recipes (``rlsim project --from-nemo-rl recipe.yaml``).

``from_nemo_rl(path)`` reads a recipe (``defaults:`` parents merged, ``${a.b}`` interpolations resolved)
and returns ``build_scenario`` keyword arguments plus which recipe keys it used and which it ignored.

| recipe key | scenario field |
|---|---|
| ``policy.model_name`` (HF id) | ``model`` (catalog model with that ``hf_id`` or name) |
| ``grpo.num_prompts_per_step`` | ``num_prompts_per_step`` |
| ``grpo.num_generations_per_prompt`` | ``num_generations_per_prompt`` |
| ``policy.max_total_sequence_length`` (and ``policy.generation.max_new_tokens``, ``vllm_cfg.max_model_len``) | ``max_new_tokens`` (the smallest; prompt tokens are not subtracted) |
| ``policy.generation.vllm_cfg.tensor_parallel_size`` | ``tensor_parallel_size`` |
| ``policy.generation.vllm_cfg.precision`` | ``generation_dtype`` (bf16 / fp8) |
| ``policy.generation.vllm_kwargs.speculative_config.method`` | ``drafter`` (eagle/eagle3 -> eagle3, *mtp -> mtp, ngram, draft_model) |
| ``policy.generation.vllm_kwargs.speculative_config.num_speculative_tokens`` | ``k`` |
| ``policy.generation.vllm_kwargs.speculative_config.model`` | ``draft_model`` (draft-model method only) |
| ``grpo.async_grpo.enabled`` / ``max_trajectory_age_steps`` | ``lag`` (0 when disabled; NeMo-RL's default age 1) |
| ``grpo.async_grpo.in_flight_weight_updates`` | ``in_flight_weight_updates`` |
| ``cluster.num_nodes`` x ``cluster.gpus_per_node`` | ``gpus`` |
| ``policy.generation.colocated.enabled`` | ``colocated``; when false, ``colocated.resources`` -> ``gen_gpus``/``train_gpus`` |

Without a ``speculative_config`` the recipe decodes autoregressively; the speculative column then uses the
workload's drafter and k (a "what if"), and the notes say so. Everything else is listed as ignored.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from .yamlio import read_yaml_mapping

_INTERP = re.compile(r"\$\{([^}]+)\}")


@dataclass
class NemoRLMapping:
    kwargs: dict[str, Any]  # build_scenario keyword arguments
    used: list[str]  # dotted recipe keys that set something
    ignored: list[str]  # dotted leaf keys rlsim does not model
    values: dict[str, Any] = field(default_factory=dict)  # used key -> recipe value
    notes: list[str] = field(default_factory=list)
    source: str = ""

    def to_dict(self) -> dict:
        return {"recipe": self.source, "scenario_kwargs": dict(self.kwargs), "used": dict(self.values),
                "ignored": list(self.ignored), "notes": list(self.notes)}


# ------------------------------------------------------------------------------------- reading YAML
def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _load(path: Path, notes: list[str], seen: tuple = ()) -> dict:
    if path.resolve() in seen:
        raise ConfigurationError(f"NeMo-RL recipe {path}: `defaults` loop")
    raw = read_yaml_mapping(path, "NeMo-RL recipe", empty_ok=True)
    parents = raw.pop("defaults", None)
    if parents is None:
        return raw
    merged: dict = {}
    for parent in parents if isinstance(parents, list) else [parents]:
        if not isinstance(parent, str):
            notes.append(f"`defaults` entry {parent!r} not understood; skipped")
            continue
        p = (path.parent / parent)
        if not p.is_file():
            notes.append(f"`defaults: {parent}` not found next to {path.name}; its keys are not read")
            continue
        merged = _deep_merge(merged, _load(p, notes, seen + (path.resolve(),)))
    return _deep_merge(merged, raw)


def _get(d: dict, dotted: str, default=None):
    cur: Any = d
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


def _resolve(d: dict) -> dict:
    """Resolve OmegaConf-style ``${a.b}`` references (whole-value and inside strings); resolvers such as
    ``${mul:...}`` are left as written. A node referenced many times is resolved once and shared (an
    interpolation "bomb" -- nine references to nine references... -- stays the size of the file)."""
    memo: dict = {}

    def res(v, depth=0):
        if isinstance(v, (dict, list)):
            if id(v) in memo:
                return memo[id(v)]
            out = {k: res(x, depth) for k, x in v.items()} if isinstance(v, dict) else [res(x, depth) for x in v]
            memo[id(v)] = out
            return out
        if isinstance(v, str) and depth < 10:
            m = _INTERP.fullmatch(v.strip())
            if m and ":" not in m.group(1):
                key = ("ref", m.group(1).strip())
                if key not in memo:
                    target = _get(d, m.group(1).strip(), _MISSING)
                    memo[key] = v if target is _MISSING else res(target, depth + 1)
                return memo[key]

            def sub(mm):
                t = _get(d, mm.group(1).strip(), _MISSING) if ":" not in mm.group(1) else _MISSING
                return mm.group(0) if t is _MISSING or isinstance(t, (dict, list)) else str(t)

            return _INTERP.sub(sub, v)
        return v

    return res(d)


_MISSING = object()


def _leaves(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out += _leaves(v, key + ".")
        else:
            out.append(key)
    return out


# ----------------------------------------------------------------------------------------- mapping
def _model_from_filename(source: str) -> str | None:
    """A catalog model (name or alias) named in the recipe's file name, the longest match (NeMo-RL's DeepSeek-V3
    recipes set no model id: ``policy.model_name`` points at a conversion guide)."""
    from ..catalog.loader import list_models

    stem = Path(source).name.lower()
    hits = [(len(a), n) for a, n in list_models().items() if len(a) >= 5 and a.lower() in stem]
    return max(hits)[1] if hits else None


# Megatron keys of policy.megatron_cfg -> TrainingParallelism fields (same names)
_MEGATRON_KEYS = ("tensor_model_parallel_size", "pipeline_model_parallel_size", "expert_model_parallel_size",
                  "context_parallel_size", "expert_tensor_parallel_size", "virtual_pipeline_model_parallel_size",
                  "sequence_parallel", "activation_checkpointing", "num_layers_in_first_pipeline_stage",
                  "num_layers_in_last_pipeline_stage")


def _map_training(cfg: dict, kw: dict, used: dict, notes: list[str]) -> None:
    """Training layout and batching: Megatron (policy.megatron_cfg) or DTensor (policy.dtensor_cfg) keys, batch
    sizes, sequence packing, the KL term (reference log-probs). The layout model prices them."""
    tr: dict[str, Any] = {}
    if _get(cfg, "policy.megatron_cfg.enabled"):
        used["policy.megatron_cfg.enabled"] = True
        for key in _MEGATRON_KEYS:
            full = f"policy.megatron_cfg.{key}"
            v = _get(cfg, full)
            if v is None:
                continue
            used[full] = v
            tr[key] = bool(v) if key in ("sequence_parallel", "activation_checkpointing") else _int(full, v)
    elif _get(cfg, "policy.dtensor_cfg.enabled"):
        used["policy.dtensor_cfg.enabled"] = True
        for key, field_ in (("tensor_parallel_size", "tensor_model_parallel_size"),
                            ("context_parallel_size", "context_parallel_size"),
                            ("sequence_parallel", "sequence_parallel"),
                            ("activation_checkpointing", "activation_checkpointing")):
            full = f"policy.dtensor_cfg.{key}"
            v = _get(cfg, full)
            if v is not None:
                used[full] = v
                tr[field_] = bool(v) if field_ in ("sequence_parallel", "activation_checkpointing") else _int(full, v)
        notes.append("DTensor (FSDP2) policy: priced with the Megatron layout model at its TP / CP, the rest data "
                     "parallel")
    for key, field_ in (("policy.train_global_batch_size", "train_global_batch_size"),
                        ("policy.train_micro_batch_size", "train_micro_batch_size"),
                        ("policy.logprob_batch_size", "logprob_batch_size"),
                        ("policy.sequence_packing.train_mb_tokens", "train_mb_tokens"),
                        ("policy.sequence_packing.logprob_mb_tokens", "logprob_mb_tokens"),
                        ("policy.sequence_packing.sequence_length_round", "sequence_length_round")):
        v = _get(cfg, key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            used[key] = v
            tr[field_] = _int(key, v)
    pk = _get(cfg, "policy.sequence_packing.enabled")
    if pk is not None:
        used["policy.sequence_packing.enabled"] = pk
        tr["sequence_packing"] = bool(pk)
    if tr:
        kw["training"] = tr
        kw["training_model"] = "layout"
    kl = _get(cfg, "loss_fn.reference_policy_kl_penalty")
    if isinstance(kl, (int, float)) and not isinstance(kl, bool):
        used["loss_fn.reference_policy_kl_penalty"] = kl
        kw["reference_logprobs"] = kl > 0


# vLLM 0.17.1 scheduler defaults NeMo-RL gets (it sets neither): the sync LLM class on a >= 70 GiB GPU, and the
# AsyncLLM path (vllm_cfg.async_engine: true) (shared/reference/vllm-0.17.1-spec-decode.md, "How NeMo-RL drives vLLM")
_VLLM_SCHEDULER_DEFAULTS = {False: {"max_num_seqs": 1024, "max_num_batched_tokens": 16384},
                            True: {"max_num_seqs": 128, "max_num_batched_tokens": 2048}}


def _map_engine_and_data(cfg: dict, kw: dict, used: dict, notes: list[str]) -> None:
    eng: dict[str, Any] = {}
    ae = _get(cfg, "policy.generation.vllm_cfg.async_engine")
    if ae is not None:
        used["policy.generation.vllm_cfg.async_engine"] = ae
        eng.update(_VLLM_SCHEDULER_DEFAULTS[bool(ae)])
        notes.append(f"vllm_cfg.async_engine {bool(ae)}: vLLM's {'AsyncLLM' if ae else 'LLM'} defaults max_num_seqs "
                     f"{eng['max_num_seqs']}, max_num_batched_tokens {eng['max_num_batched_tokens']}")
    gmu = _get(cfg, "policy.generation.vllm_cfg.gpu_memory_utilization")
    if isinstance(gmu, (int, float)) and not isinstance(gmu, bool):
        used["policy.generation.vllm_cfg.gpu_memory_utilization"] = gmu
        eng["gpu_memory_utilization"] = float(gmu)
    if eng:
        kw["engine_config"] = eng
    ds = _get(cfg, "data.train.dataset_name") or _get(cfg, "data.dataset_name")
    if isinstance(ds, str):
        from ..catalog import find_dataset

        spec = find_dataset(ds)
        if spec is not None:
            used["data.train.dataset_name" if _get(cfg, "data.train.dataset_name") else "data.dataset_name"] = ds
            kw["prompt_length"] = spec.prompt_length.model_dump()
            notes.append(f"prompt lengths of data set {ds} from the catalog (workloads/datasets/{spec.name}.yaml)")


def _model_from_hf(name: str) -> str | None:
    from ..catalog import load_model
    from ..catalog.loader import list_models

    names = list_models()
    low = name.lower().strip()
    for n in sorted(set(names.values())):
        if load_model(n).hf_id.lower() == low:
            return n
    base = low.rsplit("/", 1)[-1]
    for cand in (base, base.removesuffix("-instruct")):
        if cand in names:
            return names[cand]
    return None


_METHODS = {"eagle3": "eagle3", "eagle": "eagle3", "ngram": "ngram", "draft_model": "draft-model",
            "draft-model": "draft-model", "mtp": "mtp"}


def _int(key: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or int(v) != v:
        raise ConfigurationError(f"NeMo-RL recipe: `{key}` = {v!r}; expected an integer")
    return int(v)


def _bool(key: str, v) -> bool:
    """A recipe's true/false: a string such as "false" must not read as True."""
    if not isinstance(v, bool):
        raise ConfigurationError(f"NeMo-RL recipe: `{key}` = {v!r}; expected true or false")
    return v


def from_nemo_rl(recipe: str | Path | dict) -> NemoRLMapping:
    """Map a NeMo-RL GRPO recipe (path or already-loaded mapping) to ``build_scenario`` kwargs."""
    notes: list[str] = []
    if isinstance(recipe, dict):
        raw, source = dict(recipe), "<dict>"
    else:
        p = Path(recipe)
        raw, source = _load(p, notes), str(p)
    from ..inputs import check_yaml_size

    check_yaml_size(raw, "NeMo-RL recipe", source)
    cfg = _resolve(raw)
    check_yaml_size(cfg, "NeMo-RL recipe (interpolations resolved)", source)
    kw: dict[str, Any] = {}
    used: dict[str, Any] = {}

    def take(key: str):
        v = _get(cfg, key, _MISSING)
        if v is _MISSING or v is None:
            return None
        used[key] = v
        return v

    # model
    name = take("policy.model_name")
    if name is not None:
        m = _model_from_hf(str(name))
        if m is None:
            used.pop("policy.model_name")
            m = _model_from_filename(source)
            if m is None:
                notes.append(f"policy.model_name {name!r} is not in the catalog: pass --model or --workload")
            else:
                kw["model"] = m
                notes.append(f"policy.model_name {name!r} is not a model id; the recipe's file name names catalog "
                             f"model {m} (override with --model)")
        else:
            kw["model"] = m
    # batch
    for key, arg in (("grpo.num_prompts_per_step", "num_prompts_per_step"),
                     ("grpo.num_generations_per_prompt", "num_generations_per_prompt")):
        v = take(key)
        if v is not None:
            kw[arg] = _int(key, v)
    # response cap
    caps = {}
    for key in ("policy.max_total_sequence_length", "policy.generation.max_new_tokens",
                "policy.generation.vllm_cfg.max_model_len"):
        v = _get(cfg, key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            caps[key] = _int(key, v)
            used[key] = v
        elif v is not None:
            notes.append(f"`{key}` = {v!r} is not a number (unresolved interpolation?); ignored")
    if caps:
        kw["max_new_tokens"] = min(caps.values())
        total = [caps[k] for k in ("policy.max_total_sequence_length", "policy.generation.vllm_cfg.max_model_len")
                 if k in caps]
        if total:
            kw["max_total_sequence_length"] = min(total)
        notes.append(f"response cap max_new_tokens = {kw['max_new_tokens']} (smallest of {', '.join(caps)}), and "
                     f"prompt + response <= {kw.get('max_total_sequence_length', '-')} (vLLM max_model_len)")
    _map_training(cfg, kw, used, notes)
    _map_engine_and_data(cfg, kw, used, notes)
    # vLLM
    tp = take("policy.generation.vllm_cfg.tensor_parallel_size")
    if tp is not None:
        kw["tensor_parallel_size"] = _int("policy.generation.vllm_cfg.tensor_parallel_size", tp)
    prec = _get(cfg, "policy.generation.vllm_cfg.precision")
    if isinstance(prec, str):
        dt = {"fp8": "fp8", "bfloat16": "bf16", "bf16": "bf16"}.get(prec.lower())
        if dt:
            kw["generation_dtype"] = dt
            used["policy.generation.vllm_cfg.precision"] = prec
    # speculative decoding
    sc_key = "policy.generation.vllm_kwargs.speculative_config"
    spec = _get(cfg, sc_key)
    if isinstance(spec, dict) and spec:
        method = spec.get("method")
        if method is None and spec.get("model"):
            method = "draft_model"
        if method is not None:
            m = str(method).lower()
            drafter = _METHODS.get(m, "mtp" if m.endswith("mtp") else None)
            if drafter is None:
                raise ConfigurationError(f"NeMo-RL recipe: `{sc_key}.method` = {method!r}; rlsim models eagle, eagle3, "
                                         "mtp (and *_mtp), ngram, draft_model")
            kw["drafter"] = drafter
            used[f"{sc_key}.method"] = method
            if m == "eagle":
                notes.append("speculative method 'eagle' is modelled with the model's EAGLE-3 head (one decoder layer)")
        n = spec.get("num_speculative_tokens")
        if n is not None:
            kw["k"] = _int(f"{sc_key}.num_speculative_tokens", n)
            used[f"{sc_key}.num_speculative_tokens"] = n
        if spec.get("model") is not None:
            if kw.get("drafter") == "draft-model":
                dm = _model_from_hf(str(spec["model"]))
                if dm:
                    kw["draft_model"] = dm
                    used[f"{sc_key}.model"] = spec["model"]
                else:
                    notes.append(f"draft model {spec['model']!r} is not in the catalog; pass a catalog draft model")
            else:
                notes.append(f"`{sc_key}.model` ({spec['model']}) not read: the catalog's draft head of the policy is used")
    else:
        notes.append("the recipe has no speculative_config (it decodes autoregressively): the speculative column uses "
                     "the workload's drafter and k")
    # async GRPO
    enabled = _get(cfg, "grpo.async_grpo.enabled")
    if enabled is not None:
        enabled = _bool("grpo.async_grpo.enabled", enabled)
        used["grpo.async_grpo.enabled"] = enabled
        if enabled:
            age = take("grpo.async_grpo.max_trajectory_age_steps")
            kw["lag"] = 1 if age is None else _int("grpo.async_grpo.max_trajectory_age_steps", age)
            if age is None:
                notes.append("grpo.async_grpo.max_trajectory_age_steps not set: NeMo-RL's default 1")
            ifw = take("grpo.async_grpo.in_flight_weight_updates")
            if ifw is not None:
                kw["in_flight_weight_updates"] = _bool("grpo.async_grpo.in_flight_weight_updates", ifw)
        else:
            kw["lag"] = 0
    # cluster and placement
    nodes, gpn = _get(cfg, "cluster.num_nodes"), _get(cfg, "cluster.gpus_per_node")
    if nodes is not None and gpn is not None:
        used["cluster.num_nodes"], used["cluster.gpus_per_node"] = nodes, gpn
        kw["gpus"] = _int("cluster.num_nodes", nodes) * _int("cluster.gpus_per_node", gpn)
    col = _get(cfg, "policy.generation.colocated.enabled")
    if col is not None:
        col = _bool("policy.generation.colocated.enabled", col)
        used["policy.generation.colocated.enabled"] = col
        kw["colocated"] = col
        if not col:
            rn = _get(cfg, "policy.generation.colocated.resources.num_nodes")
            rg = _get(cfg, "policy.generation.colocated.resources.gpus_per_node")
            gen = None
            if rn is not None:
                gen = _int("resources.num_nodes", rn) * _int("resources.gpus_per_node", rg if rg is not None else gpn or 1)
                used["policy.generation.colocated.resources.num_nodes"] = rn
            elif rg is not None:
                gen = _int("resources.gpus_per_node", rg)
            if rg is not None:
                used["policy.generation.colocated.resources.gpus_per_node"] = rg
            if gen is not None and "gpus" in kw:
                if gen >= kw["gpus"]:
                    raise ConfigurationError(f"NeMo-RL recipe: generation resources ({gen} GPUs) leave no training GPUs "
                                             f"of the cluster's {kw['gpus']}")
                kw["gen_gpus"], kw["train_gpus"] = gen, kw["gpus"] - gen
                kw.pop("gpus")
                kw.pop("colocated")
            elif gen is None:
                notes.append("non-colocated without generation resources: rlsim chooses the generation/training split")
    if kw.get("lag", 0) > 0 and kw.get("colocated") is True:
        notes.append("async GRPO needs non-colocated generation (NeMo-RL refuses colocated async); rlsim splits the GPUs")
        kw.pop("colocated")
    ignored = [k for k in _leaves(cfg) if k not in used and not any(k.startswith(u + ".") for u in used)]
    return NemoRLMapping(kwargs=kw, used=list(used), ignored=ignored, values=used, notes=notes, source=source)


def merge_flags(mapping: NemoRLMapping, flags: dict) -> dict:
    """Recipe kwargs overridden by the command line's flags (those not None). ``--gpus`` replaces the
    recipe's generation/training split; ``--gen-gpus``/``--train-gpus`` replace its total."""
    kw = dict(mapping.kwargs)
    given = {k: v for k, v in flags.items() if v is not None}
    if "gpus" in given:
        kw.pop("gen_gpus", None)
        kw.pop("train_gpus", None)
    if "gen_gpus" in given or "train_gpus" in given:
        kw.pop("gpus", None)
        kw.pop("colocated", None)
    kw.update(given)
    return kw




def print_mapping(m: NemoRLMapping, console=None) -> None:
    """What ``--from-nemo-rl`` read (key = value -> scenario field) and what it ignored."""
    from rich.console import Console
    from rich.markup import escape

    console = console or Console()
    console.print(f"[bold]NeMo-RL recipe {escape(m.source)}[/bold]: used {len(m.used)} keys, ignored {len(m.ignored)}")
    for key in m.used:
        console.print(f"  used  {escape(key)} = {escape(repr(m.values[key]))}")
    if m.ignored:
        console.print("[dim]  ignored: " + escape(", ".join(m.ignored)) + "[/dim]")
    for n in m.notes:
        console.print(f"[dim]  note: {escape(n)}[/dim]")


__all__ = ["NemoRLMapping", "from_nemo_rl", "merge_flags", "print_mapping"]
