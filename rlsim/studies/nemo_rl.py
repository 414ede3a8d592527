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
| ``policy.generation.backend`` | engine profile: vllm -> ``vllm-0.17.1``; sglang -> ``sglang-0.5.6-nemo-rl`` (``sglang_cfg.{gpus_per_server, mem_fraction_static, max_running_requests, context_length, ep_size}`` are read); megatron refused unless ``--engine`` is given |
| ``vllm_cfg.{gpu_memory_utilization, enforce_eager, async_engine}``, ``vllm_kwargs.{max_num_seqs, max_num_batched_tokens}`` | ``engine_config`` |
| ``vllm_cfg.kv_cache_dtype`` | ``kv_cache_dtype`` (auto = the model's dtype) |
| ``vllm_cfg.expert_parallel_size`` | ``generation``: expert parallel, data parallel = EP / TP (vLLM's EP = DP x TP) |
| ``policy.megatron_cfg.*`` (TP / PP / EP / ETP / CP / VPP, SP, recompute) or ``dtensor_cfg`` | ``training`` layout |
| ``policy.{train_global_batch_size, train_micro_batch_size, logprob_batch_size}``, ``sequence_packing.*`` / ``dynamic_batching.*`` | ``training`` batching |
| ``policy.draft.enabled`` | ``options.online_draft_training`` (the draft trains with the policy: its cost is in the speculative column's training phase) |
| ``loss_fn.reference_policy_kl_penalty`` | ``reference_logprobs`` |

Without a ``speculative_config`` the recipe decodes autoregressively; the speculative column then uses the
workload's drafter and k (a "what if"), and the notes say so. Keys that change step time in NeMo-RL but not in
rlsim (dynamic sampling, offload, fp8 training, LoRA, vLLM pipeline parallelism...) are reported as "not modelled"
when set; everything else as ignored. A missing ``defaults:`` parent, a recipe of which no key is read, and (at
projection) a model not in the catalog without ``--model`` are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from .configread import (MISSING, ConfigMapping, as_bool, deep_merge, get, is_number, leaves,
                         resolve_interpolations)
from .yamlio import read_yaml_mapping

NemoRLMapping = ConfigMapping  # the name earlier versions exported
_MISSING = MISSING
WHAT = "NeMo-RL recipe"


# ------------------------------------------------------------------------------------- reading YAML
def _load(path: Path, notes: list[str], seen: tuple = (), files: list[str] | None = None) -> dict:
    """A recipe with its ``defaults:`` parents merged under it (NeMo-RL's order: parents first, the recipe on top).
    A parent that is not where the recipe says is an error: every key the recipe does not set comes from it, so a
    projection without it would silently run on rlsim's defaults (a recipe saved without its parent printed
    "32 replicas x 0 sequences")."""
    if path.resolve() in seen:
        raise ConfigurationError(f"NeMo-RL recipe {path}: `defaults` loop")
    raw = read_yaml_mapping(path, "NeMo-RL recipe", empty_ok=True)
    if files is not None:
        files.append(path.name)
    parents = raw.pop("defaults", None)
    if parents is None:
        return raw
    plist = parents if isinstance(parents, list) else [parents]
    if any(isinstance(x, dict) or x == "_self_" for x in plist):  # Hydra's component list (verl), not parent files
        verl = "actor_rollout_ref" in raw or any(isinstance(x, dict) and any("actor" in str(k) for k in x) for x in plist)
        raise ConfigurationError(
            f"NeMo-RL recipe {path}: its `defaults:` is a Hydra component list ({plist[0]!r}, ...), not parent recipe "
            "files" + ("; it is a verl trainer config: use --from-verl" if verl else "; NeMo-RL recipes name parent "
                                                                                      "YAML files there"))
    merged: dict = {}
    for parent in plist:
        if not isinstance(parent, str):
            raise ConfigurationError(f"NeMo-RL recipe {path}: `defaults` entry {parent!r} is not a file name; allowed: "
                                     "a path (or list of paths) of parent recipes relative to this one")
        p = (path.parent / parent)
        if not p.is_file():
            raise ConfigurationError(
                f"NeMo-RL recipe {path}: its parent `defaults: {parent}` is not at {p}: every key the recipe does not set "
                "(num_nodes, batch sizes, vLLM settings...) comes from it; keep the recipe in its NeMo-RL checkout "
                "(examples/configs/...) or copy the parent to that path")
        merged = deep_merge(merged, _load(p, notes, seen + (path.resolve(),), files))
    return deep_merge(merged, raw)


_get = get
_resolve = resolve_interpolations
_leaves = leaves


# ----------------------------------------------------------------------------------------- mapping
def _model_from_filename(source: str) -> str | None:
    """A catalog model (name or alias) named in the recipe's file name, the longest match (NeMo-RL's DeepSeek-V3
    recipes set no model id: ``policy.model_name`` points at a conversion guide)."""
    from ..catalog.loader import list_models

    stem = Path(source).name.lower()
    hits = [(len(a), n) for a, n in list_models().items() if len(a) >= 5 and a.lower() in stem]
    return max(hits)[1] if hits else None


def _model_from_hf(name: str) -> str | None:
    """The catalog model of a Hugging Face id (``hf_id`` / ``hf_aliases``), name or alias; None if none."""
    from ..catalog.loader import resolve_model_name

    return resolve_model_name(str(name))


def _int(key: str, v) -> int:
    from .configread import as_int

    return as_int(WHAT, key, v)


def _bool(key: str, v) -> bool:
    return as_bool(WHAT, key, v)


# Megatron keys of policy.megatron_cfg -> TrainingParallelism fields (same names)
_MEGATRON_KEYS = ("tensor_model_parallel_size", "pipeline_model_parallel_size", "expert_model_parallel_size",
                  "context_parallel_size", "expert_tensor_parallel_size", "virtual_pipeline_model_parallel_size",
                  "sequence_parallel", "activation_checkpointing", "num_layers_in_first_pipeline_stage",
                  "num_layers_in_last_pipeline_stage")


def _map_training(cfg: dict, kw: dict, used: dict, notes: list[str]) -> None:
    """Training layout and batching: Megatron (policy.megatron_cfg) or DTensor (policy.dtensor_cfg) keys, batch
    sizes, sequence packing or dynamic batching, the KL term (reference log-probs). The layout model prices them."""
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
                        ("policy.logprob_batch_size", "logprob_batch_size")):
        v = _get(cfg, key)
        if is_number(v):
            used[key] = v
            tr[field_] = _int(key, v)
    pk = _get(cfg, "policy.sequence_packing.enabled")
    db = _get(cfg, "policy.dynamic_batching.enabled")
    if pk is not None:
        used["policy.sequence_packing.enabled"] = pk
        tr["sequence_packing"] = _bool("policy.sequence_packing.enabled", pk)
    if db is not None:
        used["policy.dynamic_batching.enabled"] = db
        if _bool("policy.dynamic_batching.enabled", db):
            if tr.get("sequence_packing"):
                raise ConfigurationError("NeMo-RL recipe: policy.sequence_packing.enabled and "
                                         "policy.dynamic_batching.enabled are both true; NeMo-RL allows one of them")
            tr["dynamic_batching"] = True
            notes.append("dynamic batching: each micro-batch holds sequences of similar length (sorted), padded to its "
                         "longest, up to train_mb_tokens / logprob_mb_tokens tokens")
    # token budgets of the batching scheme that is on (packing's are also read when neither is on: NeMo-RL's default)
    section = "dynamic_batching" if tr.get("dynamic_batching") else "sequence_packing"
    if tr.get("sequence_packing") or tr.get("dynamic_batching"):
        for leaf, field_ in (("train_mb_tokens", "train_mb_tokens"), ("logprob_mb_tokens", "logprob_mb_tokens"),
                             ("sequence_length_round", "sequence_length_round")):
            key = f"policy.{section}.{leaf}"
            v = _get(cfg, key)
            if is_number(v):
                used[key] = v
                tr[field_] = _int(key, v)
    if tr:
        kw["training"] = tr
        kw["training_model"] = "layout"
    kl = _get(cfg, "loss_fn.reference_policy_kl_penalty")
    if is_number(kl):
        used["loss_fn.reference_policy_kl_penalty"] = kl
        kw["reference_logprobs"] = kl > 0


# vLLM 0.17.1 scheduler defaults NeMo-RL gets (it sets neither): the sync LLM class on a >= 70 GiB GPU, and the
# AsyncLLM path (vllm_cfg.async_engine: true) (shared/reference/vllm-0.17.1-spec-decode.md, "How NeMo-RL drives vLLM")
_VLLM_SCHEDULER_DEFAULTS = {False: {"max_num_seqs": 1024, "max_num_batched_tokens": 16384},
                            True: {"max_num_seqs": 128, "max_num_batched_tokens": 2048}}
_KV_DTYPES = {"auto": None, "bfloat16": "bf16", "bf16": "bf16", "fp8": "fp8", "fp8_e4m3": "fp8", "fp8_e5m2": "fp8"}


def _map_engine_and_data(cfg: dict, kw: dict, used: dict, notes: list[str]) -> None:
    eng: dict[str, Any] = {}
    ae = _get(cfg, "policy.generation.vllm_cfg.async_engine")
    if ae is not None:
        used["policy.generation.vllm_cfg.async_engine"] = ae
        eng.update(_VLLM_SCHEDULER_DEFAULTS[bool(ae)])
        notes.append(f"vllm_cfg.async_engine {bool(ae)}: vLLM's {'AsyncLLM' if ae else 'LLM'} defaults max_num_seqs "
                     f"{eng['max_num_seqs']}, max_num_batched_tokens {eng['max_num_batched_tokens']}")
    for base in ("policy.generation.vllm_cfg", "policy.generation.vllm_kwargs"):
        gmu = _get(cfg, f"{base}.gpu_memory_utilization")
        if is_number(gmu):
            used[f"{base}.gpu_memory_utilization"] = gmu
            eng["gpu_memory_utilization"] = float(gmu)
        ee = _get(cfg, f"{base}.enforce_eager")
        if ee is not None:
            used[f"{base}.enforce_eager"] = ee
            eng["enforce_eager"] = _bool(f"{base}.enforce_eager", ee)
    for leaf in ("max_num_seqs", "max_num_batched_tokens"):  # vllm_kwargs go to vLLM's EngineArgs as they are
        key = f"policy.generation.vllm_kwargs.{leaf}"
        v = _get(cfg, key)
        if is_number(v):
            used[key] = v
            eng[leaf] = _int(key, v)
    if eng:
        kw["engine_config"] = eng
    kv = _get(cfg, "policy.generation.vllm_cfg.kv_cache_dtype")
    if isinstance(kv, str):
        if kv.lower() not in _KV_DTYPES:
            raise ConfigurationError(f"NeMo-RL recipe: `policy.generation.vllm_cfg.kv_cache_dtype` = {kv!r}; rlsim "
                                     f"models {', '.join(_KV_DTYPES)}")
        used["policy.generation.vllm_cfg.kv_cache_dtype"] = kv
        if _KV_DTYPES[kv.lower()]:
            kw["kv_cache_dtype"] = _KV_DTYPES[kv.lower()]
    ds = _get(cfg, "data.train.dataset_name") or _get(cfg, "data.dataset_name")
    if isinstance(ds, str):
        from ..catalog import find_dataset

        spec = find_dataset(ds)
        if spec is not None:
            used["data.train.dataset_name" if _get(cfg, "data.train.dataset_name") else "data.dataset_name"] = ds
            kw["prompt_length"] = spec.prompt_length.model_dump()
            notes.append(f"prompt lengths of data set {ds} from the catalog (workloads/datasets/{spec.name}.yaml)")


def _map_generation_parallelism(cfg: dict, kw: dict, used: dict, notes: list[str], nm: dict) -> None:
    """vLLM tensor / expert parallelism of one generation engine (NeMo-RL: with EP > 1, vLLM's EP = DP x TP)."""
    base = "policy.generation.vllm_cfg"
    tp = _get(cfg, f"{base}.tensor_parallel_size")
    if tp is not None:
        used[f"{base}.tensor_parallel_size"] = tp
        kw["tensor_parallel_size"] = _int(f"{base}.tensor_parallel_size", tp)
    ep = _get(cfg, f"{base}.expert_parallel_size")
    if ep is not None:
        used[f"{base}.expert_parallel_size"] = ep
        ep = _int(f"{base}.expert_parallel_size", ep)
        if ep > 1:
            t = kw.get("tensor_parallel_size", 1)
            if ep % t:
                raise ConfigurationError(f"NeMo-RL recipe: vllm_cfg.expert_parallel_size = {ep} is not a multiple of "
                                         f"tensor_parallel_size = {t} (vLLM's EP = DP x TP)")
            kw["generation"] = {"enable_expert_parallel": True, "data_parallel_size": ep // t}
            notes.append(f"vLLM expert parallel over {ep} GPUs: data_parallel_size {ep // t} x tensor_parallel_size {t}")
    pp = _get(cfg, f"{base}.pipeline_parallel_size")
    if pp is not None:
        if is_number(pp) and pp > 1:
            nm[f"{base}.pipeline_parallel_size"] = pp
        else:
            used[f"{base}.pipeline_parallel_size"] = pp
    prec = _get(cfg, f"{base}.precision")
    if isinstance(prec, str):
        dt = {"fp8": "fp8", "bfloat16": "bf16", "bf16": "bf16"}.get(prec.lower())
        if dt:
            kw["generation_dtype"] = dt
            used[f"{base}.precision"] = prec


_METHODS = {"eagle3": "eagle3", "eagle": "eagle3", "ngram": "ngram", "draft_model": "draft-model",
            "draft-model": "draft-model", "mtp": "mtp"}


def _map_speculation(cfg: dict, kw: dict, used: dict, notes: list[str]) -> None:
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
                notes.append(f"`{sc_key}.model` ({spec['model']}) not read: the catalog's draft head of the policy is "
                             "used")
    else:
        notes.append("the recipe has no speculative_config (it decodes autoregressively): the speculative column uses "
                     "the workload's drafter and k")
    de = _get(cfg, "policy.draft.enabled")
    if de is not None:
        used["policy.draft.enabled"] = de
        if _bool("policy.draft.enabled", de):
            if kw.get("drafter", "eagle3") not in ("eagle3", "mtp", "draft-model") or not (isinstance(spec, dict) and spec):
                notes.append("policy.draft.enabled without a trained drafter in speculative_config: no online draft "
                             "training priced")
            else:
                kw.setdefault("options", {})["online_draft_training"] = True
                notes.append("policy.draft.enabled (online draft training): the speculative column's training phase "
                             "adds the draft's forward + backward over every trained token (3 x 2 x draft parameters "
                             "per token + its attention) and Adam on its weights; the draft's weights are refit with the "
                             "policy's (in the refit phase already). The draft's acceptance is the workload's (a draft "
                             "kept in step with the policy; see rlsim project --steps for drift)")


def _map_backend(cfg: dict, kw: dict, used: dict, notes: list[str], engine: str | None) -> None:
    """``policy.generation.backend`` -> the engine profile (``catalog.engines.engine_for_backend``): vLLM ->
    vllm-0.17.1 (NeMo-RL v0.6.0 pins vllm==0.17.1); SGLang -> sglang-0.5.6-nemo-rl (its recipes leave
    ``sglang_cfg.max_running_requests`` null: SGLang's own default applies), and ``sglang_cfg``'s GPUs per server,
    memory fraction, running requests and context length are read. Megatron generation has no profile: refused
    unless ``--engine`` names the profile to project it with."""
    from ..catalog import list_engines
    from ..catalog.engines import engine_for_backend

    backend = _get(cfg, "policy.generation.backend")
    if backend is None:
        return
    used["policy.generation.backend"] = backend
    b = str(backend).lower()
    if b == "vllm":
        if engine is None:
            notes.append("generation.backend vllm -> engine profile vllm-0.17.1 (NeMo-RL v0.6.0 pins vllm==0.17.1; "
                         "--engine for another)")
        return
    if b == "sglang":
        profile = engine_for_backend("sglang", "nemo-rl")
        if engine is None:
            kw["engine"] = profile
            notes.append(f"generation.backend sglang -> engine profile {profile} (SGLang 0.5.6 with NeMo-RL's unset "
                         "max_running_requests: SGLang's default applies; docs/engine-profiles.md; --engine for another)")
        else:
            notes.append(f"generation.backend sglang: projected as engine {engine} (--engine; the backend's own "
                         f"profile is {profile})")
    elif engine is None:
        raise ConfigurationError(
            f"NeMo-RL recipe: policy.generation.backend = {backend!r}: rlsim has no {backend} engine profile "
            f"(profiles: {', '.join(list_engines())}); pass --engine vllm-0.17.1 to project the recipe as vLLM 0.17.1 "
            f"would run it")
    else:
        notes.append(f"generation.backend {backend} has no engine profile: projected as engine {engine} (--engine); "
                     "vllm_cfg / vllm_kwargs are not read (that backend does not use them)")
    for key in [k for k in used if k.startswith(("policy.generation.vllm_cfg.", "policy.generation.vllm_kwargs."))
                and not k.endswith(".max_model_len")]:
        used.pop(key)
    for key in ("engine_config", "kv_cache_dtype", "tensor_parallel_size", "generation", "generation_dtype"):
        kw.pop(key, None)
    if b != "sglang":
        return
    base = "policy.generation.sglang_cfg"
    gps = _get(cfg, f"{base}.gpus_per_server")
    dp = _get(cfg, f"{base}.dp_size")
    if is_number(gps):
        used[f"{base}.gpus_per_server"] = gps
        d = _int(f"{base}.dp_size", dp) if is_number(dp) else 1
        if is_number(dp):
            used[f"{base}.dp_size"] = dp
        kw["tensor_parallel_size"] = max(1, _int(f"{base}.gpus_per_server", gps) // d)
    mf = _get(cfg, f"{base}.mem_fraction_static")
    if is_number(mf):
        used[f"{base}.mem_fraction_static"] = mf
        kw.setdefault("engine_config", {})["gpu_memory_utilization"] = float(mf)
    mr = _get(cfg, f"{base}.max_running_requests")
    if is_number(mr):
        used[f"{base}.max_running_requests"] = mr
        kw.setdefault("engine_config", {})["max_num_seqs"] = _int(f"{base}.max_running_requests", mr)
    cl = _get(cfg, f"{base}.context_length")
    if is_number(cl):
        used[f"{base}.context_length"] = cl
        c = _int(f"{base}.context_length", cl)
        kw["max_total_sequence_length"] = min(c, kw.get("max_total_sequence_length", c))
        kw["max_new_tokens"] = min(c, kw.get("max_new_tokens", c))
    ep = _get(cfg, f"{base}.ep_size")
    if is_number(ep):
        used[f"{base}.ep_size"] = ep
        if ep > 1:
            kw["generation"] = {"enable_expert_parallel": True}


# Keys that change step time in NeMo-RL but not in rlsim's model, with the values that do (listed, never hidden
# among the ignored keys): (key, predicate on the value, why)
_NOT_MODELLED = (
    ("grpo.use_dynamic_sampling", lambda v: v is True),
    ("grpo.batch_multiplier", lambda v: is_number(v) and v != 1),
    ("grpo.max_rollout_turns", lambda v: is_number(v) and v > 1),
    ("grpo.async_grpo.recompute_kv_cache_after_weight_updates", lambda v: v is True),
    ("policy.generation.temperature", lambda v: is_number(v) and v != 1.0),
    ("policy.generation.top_k", lambda v: is_number(v) and v > 0),
    ("policy.generation.top_p", lambda v: is_number(v) and v < 1.0),
    ("policy.generation.vllm_cfg.use_deep_gemm", lambda v: v is True),
    ("policy.generation.vllm_cfg.num_first_layers_in_bf16", lambda v: is_number(v) and v > 0),
    ("policy.generation.vllm_cfg.num_last_layers_in_bf16", lambda v: is_number(v) and v > 0),
    ("policy.megatron_cfg.fp8_cfg.enabled", lambda v: v is True),
    ("policy.megatron_cfg.optimizer.optimizer_cpu_offload", lambda v: v is True),
    ("policy.megatron_cfg.moe_enable_deepep", lambda v: v is True),
    ("policy.megatron_cfg.peft.enabled", lambda v: v is True),
    ("policy.dtensor_cfg.cpu_offload", lambda v: v is True),
    ("policy.dtensor_cfg.lora_cfg.enabled", lambda v: v is True),
    ("policy.offload_optimizer_for_logprob", lambda v: v is True),
)


def from_nemo_rl(recipe: str | Path | dict, engine: str | None = None) -> ConfigMapping:
    """Map a NeMo-RL GRPO recipe (path or already-loaded mapping) to ``build_scenario`` kwargs. ``engine``: the
    ``--engine`` flag (needed to project a recipe whose generation backend is not vLLM)."""
    notes: list[str] = []
    files: list[str] = []
    if isinstance(recipe, dict):
        raw, source = dict(recipe), "<dict>"
        files = ["<dict>"]
    else:
        p = Path(recipe)
        raw, source = _load(p, notes, files=files), str(p)
    from ..inputs import check_yaml_size

    check_yaml_size(raw, "NeMo-RL recipe", source)
    cfg = _resolve(raw)
    check_yaml_size(cfg, "NeMo-RL recipe (interpolations resolved)", source)
    kw: dict[str, Any] = {}
    used: dict[str, Any] = {}
    nm: dict[str, Any] = {}
    unknown_model = None

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
                from ..catalog.loader import nearest_models

                unknown_model = str(name)
                near = nearest_models(str(name))
                notes.append(f"policy.model_name {name!r} is not in the catalog"
                             + (f" (nearest: {', '.join(near)})" if near else "") + ": pass --model or --workload")
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
        if is_number(v):
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
    _map_generation_parallelism(cfg, kw, used, notes, nm)
    _map_backend(cfg, kw, used, notes, engine)
    _map_speculation(cfg, kw, used, notes)
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
    if (nodes is None) != (gpn is None):
        have, lack = ("cluster.num_nodes", "cluster.gpus_per_node") if gpn is None else ("cluster.gpus_per_node",
                                                                                          "cluster.num_nodes")
        raise ConfigurationError(f"NeMo-RL recipe {source}: {have} = {nodes if gpn is None else gpn!r} without {lack} "
                                 "(NeMo-RL needs both; its examples/configs/grpo_math_1B.yaml sets them); add it, or "
                                 "pass --gpus")
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
    for key, pred in _NOT_MODELLED:
        v = _get(cfg, key, _MISSING)
        if v is not _MISSING and pred(v):
            nm[key] = v
    if not used:
        hint = (" It looks like a verl config: use --from-verl." if any(k in cfg for k in ("actor_rollout_ref", "trainer"))
                else "")
        raise ConfigurationError(f"NeMo-RL recipe {source}: none of the keys rlsim reads is set (grpo.*, policy.*, "
                                 f"cluster.*; {len(_leaves(cfg))} keys found), so nothing of it would be projected."
                                 + hint)
    ignored = [k for k in _leaves(cfg) if k not in used and k not in nm
               and not any(k.startswith(u + ".") for u in list(used) + list(nm))]
    return ConfigMapping(kwargs=kw, used=list(used), ignored=ignored, values=used, notes=notes, source=source,
                         not_modelled=nm, kind=WHAT, files=files, unknown_model=unknown_model)


def merge_flags(mapping: ConfigMapping, flags: dict) -> dict:
    """Config kwargs overridden by the command line's flags (those not None). ``--gpus`` replaces the
    config's generation/training split; ``--gen-gpus``/``--train-gpus`` replace its total. A config whose model is
    not in the catalog needs ``--model`` or ``--workload`` (refused here, naming the model and the nearest entries)."""
    kw = dict(mapping.kwargs)
    given = {k: v for k, v in flags.items() if v is not None}
    if "gpus" in given:
        kw.pop("gen_gpus", None)
        kw.pop("train_gpus", None)
    if "gen_gpus" in given or "train_gpus" in given:
        kw.pop("gpus", None)
        kw.pop("colocated", None)
    if "options" in kw and "options" in given:
        given["options"] = {**kw["options"], **given["options"]}
    kw.update(given)
    if "model" not in kw and "workload" not in kw:
        if mapping.unknown_model is not None:
            from ..catalog.loader import nearest_models

            near = nearest_models(mapping.unknown_model)
            raise ConfigurationError(
                f"{mapping.kind} {mapping.source}: its model {mapping.unknown_model!r} is not in the catalog"
                + (f" (nearest: {', '.join(near)})" if near else "")
                + "; pass --model (a catalog name or Hugging Face id) or --workload; `rlsim models` lists the catalog")
        raise ConfigurationError(f"{mapping.kind} {mapping.source} names no model; pass --model or --workload")
    return kw


def print_mapping(m: ConfigMapping, console=None, verbose: bool = False, scenario=None, hardware_flag=None) -> None:
    """What ``--from-nemo-rl`` / ``--from-verl`` read, what it could not model and what it ignored (grouped)."""
    from .configread import print_mapping as _print

    _print(m, console, verbose, scenario, hardware_flag)


__all__ = ["NemoRLMapping", "from_nemo_rl", "merge_flags", "print_mapping"]
