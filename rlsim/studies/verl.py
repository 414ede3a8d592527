"""Scenarios from verl PPO / GRPO configs (``rlsim project --from-verl FILE``).

``FILE`` is a verl trainer YAML (``ppo_trainer.yaml``, a saved config, or a file of overrides) or a launch script
whose ``python3 -m verl.trainer.main_ppo [--config-name NAME] key=value ...`` line is read: the overrides are applied
on top of verl's defaults the way Hydra does (``key=value`` sets, ``+key=value`` adds, ``~key`` deletes). verl's
defaults are the flattened trainer configs shipped with rlsim (``rlsim/studies/verl_defaults/``, verl commit
b178a3cd5, Apache-2.0): ``_generated_ppo_trainer.yaml`` (FSDP), or ``_generated_ppo_megatron_trainer.yaml`` for
``--config-name ppo_megatron_trainer`` / a Megatron actor. Shell variables the script assigns (``x=1``,
``X=${X:-default}``, ``$((a * b))``) are expanded with the script's own defaults.

| verl key | scenario field |
|---|---|
| ``actor_rollout_ref.model.path`` (HF id) | ``model`` |
| ``data.train_batch_size`` | ``num_prompts_per_step`` |
| ``actor_rollout_ref.rollout.n`` | ``num_generations_per_prompt`` |
| ``data.max_response_length`` (and ``rollout.max_model_len``) | ``max_new_tokens`` |
| ``data.max_prompt_length`` + ``data.max_response_length`` | ``max_total_sequence_length`` (verl's vLLM max_model_len); the prompt cap |
| ``actor_rollout_ref.rollout.tensor_model_parallel_size``, ``data_parallel_size``, ``expert_parallel_size`` | generation parallelism |
| ``actor_rollout_ref.rollout.gpu_memory_utilization``, ``max_num_seqs``, ``max_num_batched_tokens``, ``enforce_eager`` | ``engine_config`` |
| ``actor_rollout_ref.rollout.name`` | engine profile (vllm -> vllm-0.17.1; sglang -> sglang-0.5.6) |
| ``actor_rollout_ref.rollout.dtype`` / ``quantization`` | ``generation_dtype`` |
| ``actor_rollout_ref.model.mtp.{enable,enable_rollout,num_speculative_tokens}``, ``rollout.engine_kwargs.vllm.speculative_config`` | ``drafter`` / ``k`` |
| ``trainer.nnodes`` x ``trainer.n_gpus_per_node`` | ``gpus`` (colocated: verl's hybrid engine) |
| ``actor.use_kl_loss`` / ``algorithm.use_kl_in_reward`` | ``reference_logprobs`` |
| ``actor.megatron.*_parallel_size``, ``actor.ulysses_sequence_parallel_size`` | training layout (TP / PP / EP / ETP / CP / VPP) |
| ``actor.ppo_mini_batch_size`` x ``rollout.n`` | ``train_global_batch_size`` |
| ``actor.use_dynamic_bsz`` + ``ppo_max_token_len_per_gpu`` / ``ppo_micro_batch_size_per_gpu``, ``model.use_remove_padding`` | packing / micro-batches |
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from .configread import (MISSING, ConfigMapping, as_bool, as_int, deep_merge, get, is_number, leaves,
                         resolve_interpolations, set_dotted)

WHAT = "verl config"
DEFAULTS_DIR = Path(__file__).resolve().parent / "verl_defaults"
DEFAULT_FILES = {"fsdp": "_generated_ppo_trainer.yaml", "megatron": "_generated_ppo_megatron_trainer.yaml"}
_MAIN = re.compile(r"(?:python3?|uv\s+run(?:\s+python3?)?)\s+-m\s+verl\.trainer\.main_ppo\b")


def _int(key: str, v) -> int:
    return as_int(WHAT, key, v)


def _bool(key: str, v) -> bool:
    return as_bool(WHAT, key, v)


# ------------------------------------------------------------------------------------- reading
def _defaults(kind: str) -> dict:
    from .yamlio import read_yaml_mapping

    return read_yaml_mapping(DEFAULTS_DIR / DEFAULT_FILES[kind], "verl defaults")


def _expand_shell(text: str, env: dict[str, str], notes: list[str]) -> str:
    """``$X``, ``${X}``, ``${X:-default}`` and ``$((expr))`` with the script's own assignments (unknown
    variables stay as written)."""

    def arith(m):
        expr = _expand_shell(m.group(1), env, notes)
        expr = re.sub(r"\b[A-Za-z_][A-Za-z0-9_]*\b", lambda v: env.get(v.group(0), v.group(0)), expr)  # bare names
        if re.fullmatch(r"[\d\s+\-*/()%]+", expr):
            try:
                return str(int(eval(expr.replace("/", "//"), {"__builtins__": {}}, {})))  # noqa: S307 - digits only
            except (SyntaxError, ZeroDivisionError, ValueError):
                pass
        return m.group(0)

    for _ in range(10):
        new = re.sub(r"\$\(\(([^()]*(?:\([^()]*\)[^()]*)*)\)\)", arith, text)

        def var(m):
            name, default = m.group(1) or m.group(3), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return _expand_shell(default, env, notes)
            return m.group(0)

        new = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)", var, new)
        if new == text:
            break
        text = new
    return text


def _script_overrides(path: Path, text: str, notes: list[str]) -> tuple[list[str], str | None]:
    """The ``key=value`` overrides of the script's first ``main_ppo`` command and its ``--config-name``."""
    joined = re.sub(r"\\\r?\n", " ", text)
    env: dict[str, str] = {}
    command = None
    for line in joined.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if _MAIN.search(s):
            if command is None:
                command = s[_MAIN.search(s).end():]
            else:
                notes.append("the script runs verl.trainer.main_ppo more than once; the first command is read")
            continue
        m = re.fullmatch(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)", s)
        if m and command is None:
            try:
                words = shlex.split(m.group(2), comments=True)
            except ValueError:
                words = [m.group(2)]
            env[m.group(1)] = _expand_shell(" ".join(words), env, notes)
    if command is None:
        raise ConfigurationError(f"{WHAT} {path}: no `python3 -m verl.trainer.main_ppo ...` command found; allowed: a "
                                 "verl trainer YAML, or a launch script that runs verl.trainer.main_ppo with key=value "
                                 "overrides")
    try:
        words = shlex.split(_expand_shell(command, env, notes), comments=True)
    except ValueError as e:
        raise ConfigurationError(f"{WHAT} {path}: the main_ppo command is not valid shell ({e})") from None
    config_name, out = None, []
    it = iter(words)
    for w in it:
        if w.startswith("--config-name"):
            config_name = w.split("=", 1)[1] if "=" in w else next(it, None)
        elif w.startswith("--config-path"):
            if "=" not in w:
                next(it, None)
        elif w in ("$@", '"$@"') or w.startswith("$"):
            continue
        elif "=" in w or w.startswith("~"):
            out.append(w)
    unexpanded = sorted({v for v in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", " ".join(out))})
    if unexpanded:
        notes.append(f"shell variables not set in the script, left as written: {', '.join(unexpanded[:6])}")
    return out, config_name


def _apply_override(cfg: dict, item: str) -> None:
    import yaml

    if item.startswith("~"):
        key = item[1:].split("=", 1)[0]
        parts = key.split(".")
        node = get(cfg, ".".join(parts[:-1])) if len(parts) > 1 else cfg
        if isinstance(node, dict):
            node.pop(parts[-1], None)
        return
    key, _, text = item.partition("=")
    key = key.lstrip("+")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    if isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    set_dotted(cfg, key, value)


def load_verl(path: str | Path, notes: list[str], files: list[str]) -> dict:
    """A verl config: a YAML (merged onto verl's defaults) or a launch script's overrides applied to them."""
    p = Path(path)
    if p.suffix.lower() in (".yaml", ".yml"):
        from .yamlio import read_yaml_mapping

        raw = read_yaml_mapping(p, WHAT, empty_ok=True)
        raw.pop("defaults", None)  # Hydra's component list: verl's flattened defaults below are its result
        strategy = get(raw, "actor_rollout_ref.actor.strategy")
        kind = "megatron" if strategy == "megatron" or "megatron" in p.name else "fsdp"
        files += [p.name, DEFAULT_FILES[kind]]
        notes.append(f"verl's defaults from {DEFAULT_FILES[kind]} (verl b178a3cd5) under the file's keys")
        return deep_merge(_defaults(kind), raw)

    if p.is_dir():
        raise ConfigurationError(f"{WHAT} {p}: is a folder; allowed: a verl trainer YAML or a launch script")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigurationError(f"{WHAT} {p}: not a UTF-8 text file (byte {e.start}); allowed: a verl trainer YAML or "
                                 "a launch script") from None
    except OSError as e:
        raise ConfigurationError(f"{WHAT} {p}: cannot read: {e.strerror}") from None
    overrides, config_name = _script_overrides(p, text, notes)
    kind = "megatron" if config_name and "megatron" in config_name else "fsdp"
    if config_name and config_name.strip("'\"") not in ("ppo_trainer", "ppo_megatron_trainer"):
        notes.append(f"--config-name {config_name}: not one of verl's trainer configs; read as "
                     f"{DEFAULT_FILES[kind]} plus the overrides")
    files += [p.name, DEFAULT_FILES[kind]]
    cfg = _defaults(kind)
    for item in overrides:
        _apply_override(cfg, item)
    notes.append(f"{len(overrides)} overrides of the script's main_ppo command applied to {DEFAULT_FILES[kind]} "
                 "(verl b178a3cd5)")
    return cfg


# ------------------------------------------------------------------------------------- mapping
_R = "actor_rollout_ref.rollout"
_A = "actor_rollout_ref.actor"
_DTYPES = {"bfloat16": "bf16", "bf16": "bf16", "fp8": "fp8", "float16": None, "half": None}

_NOT_MODELLED = (
    ("algorithm.adv_estimator", lambda v: v == "gae"),
    ("critic.enable", lambda v: v is True),
    ("reward_model.enable", lambda v: v is True),
    (f"{_A}.ppo_epochs", lambda v: is_number(v) and v > 1),
    (f"{_R}.pipeline_model_parallel_size", lambda v: is_number(v) and v > 1),
    (f"{_R}.enable_chunked_prefill", lambda v: v is False),
    (f"{_R}.multi_turn.enable", lambda v: v is True),
    (f"{_R}.temperature", lambda v: is_number(v) and v != 1.0),
    (f"{_R}.top_k", lambda v: is_number(v) and v > 0),
    (f"{_R}.top_p", lambda v: is_number(v) and v < 1.0),
    (f"{_A}.fsdp_config.param_offload", lambda v: v is True),
    (f"{_A}.fsdp_config.optimizer_offload", lambda v: v is True),
    (f"{_A}.megatron.param_offload", lambda v: v is True),
    (f"{_A}.megatron.grad_offload", lambda v: v is True),
    (f"{_A}.megatron.optimizer_offload", lambda v: v is True),
    ("actor_rollout_ref.ref.fsdp_config.param_offload", lambda v: v is True),
    ("actor_rollout_ref.ref.megatron.param_offload", lambda v: v is True),
    ("actor_rollout_ref.model.lora_rank", lambda v: is_number(v) and v > 0),
    ("actor_rollout_ref.model.enable_activation_offload", lambda v: v is True),
)


def from_verl(path: str | Path, engine: str | None = None) -> ConfigMapping:
    """Map a verl trainer YAML or launch script to ``build_scenario`` kwargs (see the module docstring)."""
    notes: list[str] = []
    files: list[str] = []
    raw = load_verl(path, notes, files)
    from ..inputs import check_yaml_size

    check_yaml_size(raw, WHAT, path)
    cfg = resolve_interpolations(raw)
    check_yaml_size(cfg, f"{WHAT} (interpolations resolved)", path)
    kw: dict[str, Any] = {}
    used: dict[str, Any] = {}
    nm: dict[str, Any] = {}
    unknown_model = None

    def val(key: str):
        v = get(cfg, key, MISSING)
        return None if v is MISSING else v

    def use(key: str):
        v = val(key)
        if v is not None:
            used[key] = v
        return v

    # model
    mp = val("actor_rollout_ref.model.path")
    if isinstance(mp, str):
        from ..catalog.loader import nearest_models, resolve_model_name

        m = resolve_model_name(mp) or resolve_model_name(mp.rstrip("/").rsplit("/", 1)[-1])
        if m is not None:
            kw["model"] = m
            used["actor_rollout_ref.model.path"] = mp
        else:
            unknown_model = mp
            near = nearest_models(mp)
            notes.append(f"actor_rollout_ref.model.path {mp!r} is not in the catalog"
                         + (f" (nearest: {', '.join(near)})" if near else "") + ": pass --model or --workload")
    # batch and lengths
    for key, arg in (("data.train_batch_size", "num_prompts_per_step"), (f"{_R}.n", "num_generations_per_prompt")):
        v = use(key)
        if v is not None:
            kw[arg] = _int(key, v)
    resp, prompt, mml = val("data.max_response_length"), val("data.max_prompt_length"), val(f"{_R}.max_model_len")
    if resp is not None:
        used["data.max_response_length"] = resp
        kw["max_new_tokens"] = _int("data.max_response_length", resp)
    if prompt is not None:
        used["data.max_prompt_length"] = prompt
        kw["prompt_length"] = {"max_tokens": _int("data.max_prompt_length", prompt)}
    total = None
    if resp is not None and prompt is not None:
        total = _int("data.max_prompt_length", prompt) + _int("data.max_response_length", resp)
    if mml is not None:
        used[f"{_R}.max_model_len"] = mml
        total = _int(f"{_R}.max_model_len", mml) if total is None else min(total, _int(f"{_R}.max_model_len", mml))
    if total is not None:
        kw["max_total_sequence_length"] = total
        if "max_new_tokens" in kw:
            kw["max_new_tokens"] = min(kw["max_new_tokens"], total)
        notes.append(f"responses capped at {kw.get('max_new_tokens', '-')} tokens, prompt + response at {total} "
                     "(verl's vLLM max_model_len = max_prompt_length + max_response_length)")
    # rollout engine
    _map_rollout(cfg, kw, used, notes, engine, val)
    _map_speculation(cfg, kw, used, notes, val)
    # cluster: verl's main_ppo is synchronous with the hybrid engine (rollout and training share the GPUs)
    nodes, gpn = val("trainer.nnodes"), val("trainer.n_gpus_per_node")
    if nodes is not None and gpn is not None:
        used["trainer.nnodes"], used["trainer.n_gpus_per_node"] = nodes, gpn
        kw["gpus"] = _int("trainer.nnodes", nodes) * _int("trainer.n_gpus_per_node", gpn)
    he = use("actor_rollout_ref.hybrid_engine")
    if he is not None and not _bool("actor_rollout_ref.hybrid_engine", he):
        raise ConfigurationError(f"{WHAT}: actor_rollout_ref.hybrid_engine = false: verl's main_ppo supports only the "
                                 "hybrid engine (colocated rollout and training)")
    kw["colocated"] = True
    kw["lag"] = 0
    notes.append("verl main_ppo: synchronous steps, rollout and training colocated on all GPUs (hybrid engine); lag 0")
    # KL: reference log-probs
    kl_loss, kl_reward = val(f"{_A}.use_kl_loss"), val("algorithm.use_kl_in_reward")
    if kl_loss is not None or kl_reward is not None:
        for k_, v_ in ((f"{_A}.use_kl_loss", kl_loss), ("algorithm.use_kl_in_reward", kl_reward)):
            if v_ is not None:
                used[k_] = v_
        kw["reference_logprobs"] = bool(kl_loss) or bool(kl_reward)
    adv = val("algorithm.adv_estimator")
    if adv is not None and adv != "gae":
        used["algorithm.adv_estimator"] = adv
    _map_training(cfg, kw, used, notes, val)
    for key, pred in _NOT_MODELLED:
        v = val(key)
        if v is not None and pred(v):
            nm[key] = v
            used.pop(key, None)
    if not used:
        raise ConfigurationError(f"{WHAT} {path}: none of the keys rlsim reads is set (data.train_batch_size, "
                                 "actor_rollout_ref.*, trainer.*), so nothing of it would be projected")
    ignored = [k for k in leaves(cfg) if k not in used and k not in nm
               and not any(k.startswith(u + ".") for u in list(used) + list(nm))]
    return ConfigMapping(kwargs=kw, used=list(used), ignored=ignored, values=used, notes=notes, source=str(path),
                         not_modelled=nm, kind=WHAT, files=files, unknown_model=unknown_model)


def _map_rollout(cfg, kw, used, notes, engine, val) -> None:
    from ..catalog import list_engines
    from ..catalog.engines import engine_for_backend

    name = val(f"{_R}.name")
    if name is not None and name != "???":
        used[f"{_R}.name"] = name
        n = str(name).lower()
        if n == "vllm":
            if engine is None:
                notes.append("rollout.name vllm -> engine profile vllm-0.17.1 (verl supports several vLLM versions; "
                             "--engine for another profile)")
        elif n == "sglang":
            profile = engine_for_backend("sglang", "verl")
            if engine is None:
                kw["engine"] = profile
                notes.append(f"rollout.name sglang -> engine profile {profile} (verl 0.7 pins sglang==0.5.6 and passes "
                             "max_running_requests = rollout.max_num_seqs; --engine for another profile)")
            else:
                notes.append(f"rollout.name sglang: projected as engine {engine} (--engine; the backend's own profile "
                             f"is {profile})")
        elif engine is None:
            raise ConfigurationError(f"{WHAT}: {_R}.name = {name!r}: rlsim has no {name} engine profile (profiles: "
                                     f"{', '.join(list_engines())}); pass --engine vllm-0.17.1 to project the config as "
                                     "vLLM 0.17.1 would run it")
        else:
            notes.append(f"rollout.name {name} has no engine profile: projected as engine {engine} (--engine)")
    elif engine is None:
        notes.append(f"{_R}.name not set (verl requires it): projected as vLLM (engine vllm-0.17.1)")
    tp = val(f"{_R}.tensor_model_parallel_size")
    if tp is not None:
        used[f"{_R}.tensor_model_parallel_size"] = tp
        kw["tensor_parallel_size"] = _int(f"{_R}.tensor_model_parallel_size", tp)
    gen: dict[str, Any] = {}
    dp, ep = val(f"{_R}.data_parallel_size"), val(f"{_R}.expert_parallel_size")
    if dp is not None:
        used[f"{_R}.data_parallel_size"] = dp
        if _int(f"{_R}.data_parallel_size", dp) > 1:
            gen["data_parallel_size"] = int(dp)
    if ep is not None:
        used[f"{_R}.expert_parallel_size"] = ep
        if _int(f"{_R}.expert_parallel_size", ep) > 1:
            gen["enable_expert_parallel"] = True
    if gen:
        kw["generation"] = gen
    eng: dict[str, Any] = {}
    for leaf in ("gpu_memory_utilization", "max_num_seqs", "max_num_batched_tokens", "enforce_eager"):
        key = f"{_R}.{leaf}"
        v = val(key)
        if v is None:
            continue
        used[key] = v
        if leaf == "gpu_memory_utilization":
            if not is_number(v):
                raise ConfigurationError(f"{WHAT}: `{key}` = {v!r}; expected a number")
            eng[leaf] = float(v)
        elif leaf == "enforce_eager":
            eng[leaf] = _bool(key, v)
        else:
            eng[leaf] = _int(key, v)
    if eng:
        kw["engine_config"] = eng
    if "max_num_seqs" in eng:
        notes.append(f"vLLM max_num_seqs {eng['max_num_seqs']} per replica (verl's rollout default is 256, vLLM's own 1024)")
    q, dt = val(f"{_R}.quantization"), val(f"{_R}.dtype")
    if isinstance(q, str) and "fp8" in q.lower():
        used[f"{_R}.quantization"] = q
        kw["generation_dtype"] = "fp8"
    elif isinstance(dt, str) and _DTYPES.get(dt.lower()):
        used[f"{_R}.dtype"] = dt
        kw["generation_dtype"] = _DTYPES[dt.lower()]


def _map_speculation(cfg, kw, used, notes, val) -> None:
    sc = val(f"{_R}.engine_kwargs.vllm.speculative_config")
    mtp = "actor_rollout_ref.model.mtp"
    if isinstance(sc, dict) and sc:
        from .nemo_rl import _METHODS

        method = str(sc.get("method", "draft_model" if sc.get("model") else "")).lower()
        drafter = _METHODS.get(method, "mtp" if method.endswith("mtp") else None)
        if drafter is None:
            raise ConfigurationError(f"{WHAT}: `{_R}.engine_kwargs.vllm.speculative_config.method` = {method!r}; rlsim "
                                     "models eagle, eagle3, mtp, ngram, draft_model")
        kw["drafter"] = drafter
        used[f"{_R}.engine_kwargs.vllm.speculative_config.method"] = sc.get("method")
        if sc.get("num_speculative_tokens") is not None:
            kw["k"] = _int("speculative_config.num_speculative_tokens", sc["num_speculative_tokens"])
            used[f"{_R}.engine_kwargs.vllm.speculative_config.num_speculative_tokens"] = sc["num_speculative_tokens"]
        return
    on, roll = val(f"{mtp}.enable"), val(f"{mtp}.enable_rollout")
    if on is not None:
        used[f"{mtp}.enable"] = on
    if roll is not None:
        used[f"{mtp}.enable_rollout"] = roll
    if on is True and roll is True:
        kw["drafter"] = "mtp"
        n = val(f"{mtp}.num_speculative_tokens")
        if n is not None:
            used[f"{mtp}.num_speculative_tokens"] = n
            kw["k"] = _int(f"{mtp}.num_speculative_tokens", n)
        if val(f"{mtp}.enable_train") is True:
            used[f"{mtp}.enable_train"] = True
            kw.setdefault("options", {})["online_draft_training"] = True
            notes.append("model.mtp.enable_train: the MTP module trains with the policy (priced in the speculative "
                         "column's training phase)")
        return
    notes.append("the config sets no speculative decoding (it decodes autoregressively): the speculative column uses "
                 "the workload's drafter and k")


def _map_training(cfg, kw, used, notes, val) -> None:
    tr: dict[str, Any] = {}
    strategy = val(f"{_A}.strategy")
    if strategy is not None:
        used[f"{_A}.strategy"] = strategy
    if strategy == "megatron":
        for leaf in ("tensor_model_parallel_size", "pipeline_model_parallel_size", "expert_model_parallel_size",
                     "expert_tensor_parallel_size", "context_parallel_size", "virtual_pipeline_model_parallel_size"):
            key = f"{_A}.megatron.{leaf}"
            v = val(key)
            if v is None:
                continue
            used[key] = v
            tr[leaf] = _int(key, v)
        spk = f"{_A}.megatron.sequence_parallel"
        if val(spk) is not None:
            used[spk] = val(spk)
            tr["sequence_parallel"] = _bool(spk, val(spk))
        rg = val(f"{_A}.megatron.override_transformer_config.recompute_granularity")
        used[f"{_A}.megatron.override_transformer_config.recompute_granularity"] = rg
        tr["activation_checkpointing"] = rg == "full"
    else:
        sp = val(f"{_A}.ulysses_sequence_parallel_size")
        if sp is not None:
            used[f"{_A}.ulysses_sequence_parallel_size"] = sp
            tr["context_parallel_size"] = _int(f"{_A}.ulysses_sequence_parallel_size", sp)
        gc = val("actor_rollout_ref.model.enable_gradient_checkpointing")
        if gc is not None:
            used["actor_rollout_ref.model.enable_gradient_checkpointing"] = gc
            tr["activation_checkpointing"] = _bool("actor_rollout_ref.model.enable_gradient_checkpointing", gc)
        notes.append("FSDP actor: priced with the Megatron layout model, data parallel over all GPUs (Ulysses sequence "
                     "parallelism as context parallelism)")
    mini, n = val(f"{_A}.ppo_mini_batch_size"), val(f"{_R}.n")
    if mini is not None:
        used[f"{_A}.ppo_mini_batch_size"] = mini
        tr["train_global_batch_size"] = _int(f"{_A}.ppo_mini_batch_size", mini) * (_int(f"{_R}.n", n) if n else 1)
    dyn = val(f"{_A}.use_dynamic_bsz")
    if dyn is not None:
        used[f"{_A}.use_dynamic_bsz"] = dyn
    if dyn is True:
        for key, field_ in ((f"{_A}.ppo_max_token_len_per_gpu", "train_mb_tokens"),
                            (f"{_R}.log_prob_max_token_len_per_gpu", "logprob_mb_tokens")):
            v = val(key)
            if is_number(v):
                used[key] = v
                tr[field_] = _int(key, v)
        tr["sequence_packing"] = True
        notes.append("use_dynamic_bsz: sequences packed into micro-batches of ppo_max_token_len_per_gpu tokens")
    else:
        for key, field_ in ((f"{_A}.ppo_micro_batch_size_per_gpu", "train_micro_batch_size"),
                            (f"{_R}.log_prob_micro_batch_size_per_gpu", "logprob_batch_size")):
            v = val(key)
            if is_number(v):
                used[key] = v
                tr[field_] = _int(key, v)
        rp = val("actor_rollout_ref.model.use_remove_padding")
        if rp is not None:
            used["actor_rollout_ref.model.use_remove_padding"] = rp
            tr["sequence_packing"] = bool(rp)
    if tr:
        kw["training"] = tr
        kw["training_model"] = "layout"


__all__ = ["from_verl", "load_verl"]
