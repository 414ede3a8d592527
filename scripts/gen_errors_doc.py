"""Run every bad input in ``CASES`` through the real ``rlsim`` CLI (and a few through the Python API)
and write ``docs/errors.md``: the input, what is wrong with it, the exit code and the exact message.

    python scripts/gen_errors_doc.py            # rewrite docs/errors.md
    python scripts/gen_errors_doc.py --check    # exit 1 if docs/errors.md is not what the code prints now

``tests/test_bad_inputs.py`` imports this file: each case must exit with code 2 and print exactly one
line on stderr that starts with ``error:`` and contains the case's ``expect`` strings, never a
traceback, and docs/errors.md must be current. Files a case needs (YAML, a catalog folder) are written
under a temporary folder shown as ``<tmp>`` in the document; the repository root is shown as ``<repo>``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "errors.md"
TMP = "<tmp>"
DELETE = object()


# ------------------------------------------------------------------------------------ file builders
def _catalog_yaml(rel: str) -> dict:
    return yaml.safe_load((REPO / rel).read_text())


def _edit(d: dict, edits: dict[str, Any]) -> dict:
    d = copy.deepcopy(d)
    for path, value in edits.items():
        *parents, last = path.split(".")
        node = d
        for p in parents:
            node = node.setdefault(p, {})
        if value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    return d


def workload(**edits) -> str:
    """rl-zero-8b.yaml with ``edits`` (dotted keys; DELETE removes a key)."""
    return yaml.safe_dump(_edit(_catalog_yaml("workloads/rl-zero-8b.yaml"), _dotted(edits)), sort_keys=False)


def model(base: str = "qwen3-8b", **edits) -> str:
    return yaml.safe_dump(_edit(_catalog_yaml(f"workloads/models/{base}.yaml"), _dotted(edits)), sort_keys=False)


def hardware(base: str = "h100-sxm", **edits) -> str:
    return yaml.safe_dump(_edit(_catalog_yaml(f"hardware_profiles/{base}.yaml"), _dotted(edits)), sort_keys=False)


def draft(base: str = "eagle3-qwen3-8b", **edits) -> str:
    return yaml.safe_dump(_edit(_catalog_yaml(f"workloads/drafts/{base}.yaml"), _dotted(edits)), sort_keys=False)


def calibration(gpu: str = "h100", drop: tuple = (), **replace) -> dict[str, str]:
    """The committed calibration/<gpu> tables as files of a catalog root, ``replace`` = {file: text}
    (dots in file names written as ``__``), ``drop`` = files left out."""
    src = REPO / "calibration" / gpu
    out = {}
    for p in sorted(src.iterdir()):
        if p.is_file() and p.suffix in (".csv", ".json") and p.name not in drop:
            out[f"calibration/{gpu}/{p.name}"] = p.read_text()
    for name, text in replace.items():
        out[f"calibration/{gpu}/{name.replace('__', '.')}"] = text
    return out


def _csv_edit(gpu: str, name: str, fn) -> str:
    lines = (REPO / "calibration" / gpu / name).read_text().splitlines()
    return "\n".join(fn(lines)) + "\n"


def _without_phase(lines, phase):
    j = lines[0].split(",").index("phase")
    return [lines[0]] + [ln for ln in lines[1:] if ln.split(",")[j] != phase]


def _set_field(header: str, line: str, col: str, value: str) -> str:
    j = header.split(",").index(col)
    f = line.split(",")
    f[j] = value
    return ",".join(f)


def _drop_column(lines, col):
    j = lines[0].split(",").index(col)
    return [",".join(x for i, x in enumerate(ln.split(",")) if i != j) for ln in lines]


def _dotted(edits: dict) -> dict:
    """Python keywords cannot hold dots or dashes: ``generation__tensor_parallel_size`` -> dotted."""
    return {k.replace("__", ".").replace("_DASH_", "-"): v for k, v in edits.items()}


# ------------------------------------------------------------------------------------ cases
@dataclass
class Case:
    what: str  # what is wrong, in words
    args: list[str] | None = None  # rlsim argv (``<tmp>`` = this case's folder)
    expect: tuple[str, ...] = ()  # substrings the message must contain
    files: dict[str, str] = field(default_factory=dict)  # relative path -> text (``<tmp>`` substituted)
    env: dict[str, str] = field(default_factory=dict)
    api: dict | None = None  # instead of args: ``<call>(**api)`` through the Python API
    section: str = ""
    call: str = "project_scenario"  # the API function: project_scenario, sweep, build_scenario, project


P = ["project", "--workload", "rl-zero-8b"]
PW = ["project", "--workload", f"{TMP}/w.yaml"]
IT = ["iteration", "--model", "qwen3-8b", "--batch", "8", "--context", "1024"]


def _cases() -> list[Case]:
    c: list[Case] = []

    def add(section, what, args=None, expect=(), **kw):
        c.append(Case(what, args, tuple(expect), section=section, **kw))

    # ---- command line: usage
    s = "Command line: usage"
    add(s, "unknown command (typo)", ["projekt"], ["No such command 'projekt'", "Did you mean 'project'"])
    add(s, "unknown option", P + ["--gpu", "8"], ["No such option: --gpu"])
    add(s, "option without its value", ["project", "--workload"], ["requires an argument"])
    add(s, "extra positional argument", P + ["8"], ["unexpected extra argument"])
    add(s, "integer flag given a word", P + ["--gpus", "many"], ["--gpus", "integer"])
    add(s, "integer flag given a fraction", P + ["--gpus", "1.5"], ["--gpus", "integer"])
    add(s, "number flag given a word", P + ["--acceptance-length", "high"], ["--acceptance-length", "number"])
    add(s, "required option missing (iteration --model)", ["iteration", "--batch", "1", "--context", "1"],
        ["Missing option '--model'"])
    # ---- command line: values
    s = "Command line: values"
    add(s, "no model and no workload", ["project"], ["give a model (--model) or a workload (--workload)"])
    add(s, "unknown model", ["project", "--model", "gpt-9"], ["unknown model 'gpt-9'", "allowed:", "qwen3-8b"])
    add(s, "unknown workload", ["project", "--workload", "rl-zero"], ["unknown workload 'rl-zero'", "rl-zero-8b"])
    add(s, "unknown hardware", P + ["--hardware", "tpu-v5"], ["unknown hardware profile 'tpu-v5'", "h100-sxm"])
    add(s, "unknown drafter", P + ["--drafter", "medusa"], ["unknown drafter 'medusa'", "eagle3, mtp, draft-model, ngram"])
    add(s, "unknown calibration mode", P + ["--calibration", "magic"], ["allowed: auto, roofline, calibrated"])
    add(s, "zero GPUs", P + ["--gpus", "0"], ["--gpus = 0", ">= 1"])
    add(s, "absurdly many GPUs", P + ["--gpus", "10000000000"], ["--gpus = 10000000000", "at most 1,048,576"])
    add(s, "negative GPUs", P + ["--gpus", "-8"], ["--gpus = -8", ">= 1"])
    add(s, "negative k", P + ["--k", "-1"], ["--k = -1", ">= 0"])
    add(s, "negative lag", P + ["--lag", "-1"], ["--lag = -1", ">= 0"])
    add(s, "negative seed", P + ["--seed", "-1"], ["--seed = -1", ">= 0"])
    add(s, "zero seeds", P + ["--seeds", "0"], ["--seeds = 0", "1..1000"])
    add(s, "too many seeds", P + ["--seeds", "5000"], ["--seeds = 5000", "1..1000"])
    add(s, "acceptance length below 1", P + ["--acceptance-length", "0.5"], ["= 0.5 is impossible at k = 3", "k+1 = 4"])
    add(s, "acceptance length above k+1", P + ["--acceptance-length", "4.5"], ["= 4.5 is impossible at k = 3", "k+1 = 4"])
    add(s, "acceptance length above k+1 (k given)", P + ["--k", "1", "--acceptance-length", "3.32"],
        ["impossible at k = 1", "k+1 = 2"])
    add(s, "acceptance length at k = 0", P + ["--k", "0", "--acceptance-length", "2.5"],
        ["impossible at k = 0", "--k >= 2"])
    add(s, "acceptance length NaN", P + ["--acceptance-length", "nan"], ["= nan is impossible"])
    add(s, "acceptance length infinite", P + ["--acceptance-length", "inf"], ["= inf is impossible"])
    add(s, "draft quality above 1", P + ["--draft-quality", "1.5"], ["--draft-quality = 1.5", "0..1"])
    add(s, "draft quality negative", P + ["--draft-quality", "-0.1"], ["--draft-quality = -0.1", "0..1"])
    add(s, "draft quality NaN", P + ["--draft-quality", "nan"], ["--draft-quality = nan"])
    add(s, "another drafter without its acceptance", P + ["--drafter", "ngram"],
        ["gives the acceptance of drafter 'eagle3', not 'ngram'", "--acceptance-length"])
    add(s, "MTP drafter for a model without MTP heads", P + ["--drafter", "mtp", "--acceptance-length", "2"],
        ["mtp_num_layers = 0"])
    add(s, "draft model with another tokenizer", ["project", "--model", "qwen3-8b", "--drafter", "draft-model",
                                                   "--draft-model", "llama-3.2-1b", "--acceptance-length", "2"],
        ["vocab_size 128256", "151936", "share the target's tokenizer"])
    add(s, "unknown draft model", ["project", "--model", "qwen3-8b", "--drafter", "draft-model", "--draft-model",
                                   "qwen9-tiny", "--acceptance-length", "2"], ["unknown model 'qwen9-tiny'"])
    add(s, "zero generation GPUs", P + ["--gen-gpus", "0"], ["--gen-gpus = 0", ">= 1"])
    add(s, "zero training GPUs", P + ["--gen-gpus", "16", "--train-gpus", "0"], ["--train-gpus = 0", ">= 1"])
    add(s, "generation GPUs >= all GPUs", P + ["--gen-gpus", "40"], ["--gen-gpus = 40", "--gpus = 32", "1..31"])
    add(s, "training GPUs >= all GPUs", P + ["--train-gpus", "32"], ["--train-gpus = 32", "1..31"])
    add(s, "--gpus disagrees with --gen-gpus + --train-gpus", P + ["--gpus", "32", "--gen-gpus", "8", "--train-gpus", "8"],
        ["--gpus = 32", "= 16"])
    # ---- impossible configurations
    s = "Impossible configurations (explained with numbers)"
    add(s, "k above the engine's maximum", P + ["--k", "16"], ["--k = 16", "maximum", "0..15"])
    add(s, "model does not fit one GPU", ["project", "--workload", "rl-llama-8b", "--model", "llama-3.1-70b",
                                          "--hardware", "h100-sxm"], ["does not fit", "GB", "tensor_parallel_size"])
    add(s, "GPUs do not divide into replicas", ["project", "--workload", "rl-235b", "--gpus", "100"],
        ["generation GPUs = 100", "replicas of 8 GPUs", "multiple of 8"])
    add(s, "fewer GPUs than one replica", ["project", "--workload", "rl-235b", "--gpus", "4"],
        ["generation GPUs = 4", "replicas of 8 GPUs"])
    add(s, "training GPUs not a whole number of model-parallel groups", P + ["--gen-gpus", "8", "--train-gpus", "3"],
        ["--train-gpus = 3", "groups of 2 GPUs"])
    add(s, "generation GPUs not a whole number of replicas (split given)",
        ["project", "--workload", "rl-235b", "--gen-gpus", "12", "--train-gpus", "64"],
        ["generation GPUs = 12", "replicas of 8"])
    add(s, "tensor parallelism does not divide the attention heads (iteration)", IT + ["--tp", "3"],
        ["tensor_parallel_size = 3", "num_attention_heads = 32", "allowed: [1, 2, 4, 8, 16]"])
    # ---- iteration flags
    s = "Command line: `rlsim iteration`"
    add(s, "zero batch", ["iteration", "--model", "qwen3-8b", "--batch", "0", "--context", "10"], ["--batch 0", "batch >= 1"])
    add(s, "zero context", ["iteration", "--model", "qwen3-8b", "--batch", "1", "--context", "0"], ["context >= 1"])
    add(s, "negative k", IT + ["--k", "-2"], ["--k -2", "k >= 0"])
    add(s, "k above the engine's maximum", IT + ["--k", "99"], ["--k = 99", "maximum", "0..15"])
    add(s, "unknown dtype", IT + ["--dtype", "fp4"], ["--dtype = 'fp4'", "bf16, fp8"])
    add(s, "zero tensor parallelism", IT + ["--tp", "0"], ["--tp = 0", ">= 1"])
    add(s, "unknown drafter", IT + ["--k", "3", "--drafter", "medusa"], ["unknown drafter 'medusa'"])
    add(s, "unknown hardware", IT + ["--hardware", "a100"], ["unknown hardware profile 'a100'"])
    add(s, "unknown calibration mode", IT + ["--calibration", "x"], ["allowed: auto, roofline, calibrated"])
    # ---- files
    s = "Files (any catalog YAML given as a path)"
    add(s, "workload file does not exist", ["project", "--workload", f"{TMP}/nope.yaml"], ["workload file", "nope.yaml", "does not exist"])
    add(s, "model file does not exist", ["project", "--model", f"{TMP}/nope.yaml"], ["nope.yaml", "cannot read"])
    add(s, "workload file without .yaml suffix", ["project", "--workload", f"{TMP}/w.txt"], ["w.txt", "must end in .yaml or .yml"],
        files={"w.txt": workload()})
    add(s, "empty file", PW, ["w.yaml", "the file is empty"], files={"w.yaml": ""})
    add(s, "file is a list, not a mapping", PW, ["expected a mapping of fields", "got a list"], files={"w.yaml": "- a\n- b\n"})
    add(s, "not valid YAML", PW, ["w.yaml: not valid YAML"], files={"w.yaml": "name: x\ngpus: [1, 2\n"})
    add(s, "tab-indented YAML", PW, ["not valid YAML"], files={"w.yaml": "name: x\n\tgpus: 3\n"})
    add(s, "binary garbage", PW, ["w.yaml"], files={"w.yaml": "\x00\x01\x02 garbage"})
    add(s, "not UTF-8 text", PW, ["w.yaml", "not a UTF-8 text file"], files={"w.yaml": "\udcff\udcfe gpus: 3"})
    add(s, "duplicate key (the second would silently win)", PW, ["duplicate key 'gpus' (first at line", "once"],
        files={"w.yaml": workload() + "gpus: 64\n"})
    add(s, "a folder named like a file", ["project", "--model", f"{TMP}/dir.yaml"], ["dir.yaml", "cannot read"],
        files={"dir.yaml/x": "x"})
    # ---- workload YAML
    s = "Workload YAML (`--workload file.yaml`)"
    add(s, "unknown top-level key (typo)", PW, ["field `num_prompts_per_stp` = 64: unknown key (typo?)"],
        files={"w.yaml": workload(num_prompts_per_step=DELETE, num_prompts_per_stp=64)})
    add(s, "unknown key in generation", PW, ["field `generation.tensor_paralel_size` = 2: unknown key"],
        files={"w.yaml": workload(generation__tensor_paralel_size=2)})
    add(s, "unknown key in training", PW, ["field `training.tp` = 2: unknown key"],
        files={"w.yaml": workload(training__tp=2)})
    add(s, "unknown key in engine", PW, ["field `engine.max_batch` = 8: unknown key"],
        files={"w.yaml": workload(engine__max_batch=8)})
    add(s, "unknown key in speculation", PW, ["field `speculation.k` = 3: unknown key"],
        files={"w.yaml": workload(speculation__k=3)})
    add(s, "unknown key in response_length", PW, ["field `response_length.mean_tokens` = 900: unknown key"],
        files={"w.yaml": workload(response_length__mean_tokens=900)})
    add(s, "unknown key in prompt_length", PW, ["field `prompt_length.max` = 10: unknown key"],
        files={"w.yaml": workload(prompt_length__max=10)})
    add(s, "required key missing", PW, ["field `gpus`", "missing (a required key)"], files={"w.yaml": workload(gpus=DELETE)})
    add(s, "GPUs as yes/no (YAML reads a boolean)", PW, ["field `gpus` = True", "a number is expected"],
        files={"w.yaml": workload().replace("gpus: 32", "gpus: yes")})
    add(s, "nested section not a mapping", PW, ["field `engine`", "dictionary"], files={"w.yaml": workload(engine=5)})
    add(s, "GPUs as a word", PW, ["field `gpus` = 'many'", "integer"], files={"w.yaml": workload(gpus="many")})
    add(s, "zero prompts per step", PW, ["field `num_prompts_per_step` = 0", "greater than or equal to 1"],
        files={"w.yaml": workload(num_prompts_per_step=0)})
    add(s, "unknown length distribution", PW, ["field `response_length.distribution` = 'normal'", "fixed", "lognormal"],
        files={"w.yaml": workload(response_length__distribution="normal")})
    add(s, "min_tokens > max_tokens", PW, ["min_tokens (16) > max_tokens (8)"],
        files={"w.yaml": workload(response_length__max_tokens=8)})
    add(s, "sigma out of range", PW, ["field `response_length.sigma` = 9", "less than or equal to 4"],
        files={"w.yaml": workload(response_length__sigma=9)})
    add(s, "median tokens zero", PW, ["field `prompt_length.median_tokens` = 0", "greater than 0"],
        files={"w.yaml": workload(prompt_length__median_tokens=0)})
    add(s, "median tokens NaN", PW, ["field `prompt_length.median_tokens` = nan"],
        files={"w.yaml": workload(prompt_length__median_tokens=float("nan"))})
    add(s, "gpu_memory_utilization above 0.98", PW, ["field `engine.gpu_memory_utilization` = 1.5"],
        files={"w.yaml": workload(engine__gpu_memory_utilization=1.5)})
    add(s, "max_num_batched_tokens too small", PW, ["field `engine.max_num_batched_tokens` = 10", "64"],
        files={"w.yaml": workload(engine__max_num_batched_tokens=10)})
    add(s, "unknown dtype", PW, ["field `generation_dtype` = 'fp4'", "'bf16'", "'fp8'"],
        files={"w.yaml": workload(generation_dtype="fp4")})
    add(s, "unknown drafter method", PW, ["field `speculation.method` = 'medusa'", "'eagle3'"],
        files={"w.yaml": workload(speculation__method="medusa")})
    add(s, "acceptance length above k+1", PW, ["acceptance_length = 5.0 is impossible at num_speculative_tokens = 3",
                                               "k+1 = 4"],
        files={"w.yaml": workload(speculation__acceptance_length=5.0)})
    add(s, "acceptance length below 1", PW, ["field `speculation.acceptance_length` = 0.5"],
        files={"w.yaml": workload(speculation__acceptance_length=0.5)})
    add(s, "per-position acceptance increasing", PW, ["must not increase with position", "[1] = 0.7 > [0] = 0.5"],
        files={"w.yaml": workload(speculation__acceptance_rates_per_position=[0.5, 0.7])})
    add(s, "per-position acceptance above 1", PW, ["acceptance_rates_per_position[0] = 1.2", "0..1"],
        files={"w.yaml": workload(speculation__acceptance_rates_per_position=[1.2])})
    add(s, "k above the engine's maximum", PW, ["speculation.num_speculative_tokens of workload", "= 20", "maximum", "0..15"],
        files={"w.yaml": workload(speculation__num_speculative_tokens=20, speculation__acceptance_length=3.0)})
    add(s, "training_mfu above 1", PW, ["field `training_mfu` = 2"], files={"w.yaml": workload(training_mfu=2)})
    add(s, "negative data loading time", PW, ["field `data_loading_s` = -1"], files={"w.yaml": workload(data_loading_s=-1)})
    add(s, "negative policy lag", PW, ["field `max_trajectory_age_steps` = -1"],
        files={"w.yaml": workload(max_trajectory_age_steps=-1)})
    add(s, "generation/training pools on a colocated run", PW, ["gen_gpus/train_gpus (8/24)", "colocated: false"],
        files={"w.yaml": workload(gen_gpus=8, train_gpus=24, sources__gen_gpus="chosen", sources__train_gpus="chosen")})
    add(s, "pools that do not add up to gpus", PW, ["gen_gpus 8 + train_gpus 8 = 16 != gpus 32"],
        files={"w.yaml": workload(colocated=False, gen_gpus=8, train_gpus=8, sources__gen_gpus="chosen", sources__train_gpus="chosen")})
    add(s, "unknown model named in the workload", PW, ["unknown model 'qwen3-9b'"],
        files={"w.yaml": workload(model="qwen3-9b")})
    add(s, "unknown hardware named in the workload", PW, ["unknown hardware profile 'h300'"],
        files={"w.yaml": workload(hardware="h300")})
    add(s, "data parallel attention on a dense model", PW, ["data_parallel_size = 2", "dense", "allowed: 1"],
        files={"w.yaml": workload(generation__data_parallel_size=2)})
    add(s, "GPU memory too small for the model", PW, ["does not fit", "gpu_memory_utilization 0.1"],
        files={"w.yaml": workload(engine__gpu_memory_utilization=0.1)})
    # ---- model YAML
    s = "Model YAML (`--model file.yaml`)"
    PM = ["project", "--workload", "rl-zero-8b", "--model", f"{TMP}/m.yaml"]
    add(s, "unknown key (typo)", PM, ["field `num_hiden_layers` = 36: unknown key (typo?)"],
        files={"m.yaml": model(num_hiden_layers=36, num_hidden_layers=DELETE)})
    add(s, "unknown architecture", PM, ["field `architecture` = 'mamba'", "'dense'", "'moe'"],
        files={"m.yaml": model(architecture="mamba")})
    add(s, "a number without a source", PM, ["numbers without a source: hidden_size"],
        files={"m.yaml": model(sources__hidden_size=DELETE)})
    add(s, "heads not a multiple of KV heads", PM, ["num_attention_heads must be a multiple of num_key_value_heads"],
        files={"m.yaml": model(num_key_value_heads=5)})
    add(s, "MoE model without experts", PM, ["a moe model needs num_experts >= 1"], files={"m.yaml": model(architecture="moe")})
    add(s, "zero layers", PM, ["field `num_hidden_layers` = 0"], files={"m.yaml": model(num_hidden_layers=0)})
    add(s, "aliases not a list", PM, ["field `aliases`", "list"], files={"m.yaml": model(aliases="q8")})
    add(s, "EAGLE-3 head that is not in the catalog", PM, ["unknown draft head 'eagle3-q8'"],
        files={"m.yaml": model(drafts__eagle3="eagle3-q8")})
    # ---- draft YAML
    s = "Draft-head YAML (named by a model's `drafts.eagle3`)"
    drafted = model(drafts__eagle3=f"{TMP}/d.yaml")
    add(s, "unknown key in the draft head", PM, ["d.yaml", "field `hidden_sizes` = 4096: unknown key"],
        files={"m.yaml": drafted, "d.yaml": draft(hidden_sizes=4096)})
    add(s, "draft head of an unknown method", PM, ["d.yaml", "field `method` = 'medusa'"],
        files={"m.yaml": drafted, "d.yaml": draft(method="medusa")})
    add(s, "draft head with zero vocabulary", PM, ["d.yaml", "field `draft_vocab_size` = 0"],
        files={"m.yaml": drafted, "d.yaml": draft(draft_vocab_size=0)})
    # ---- hardware YAML
    s = "Hardware YAML (`--hardware file.yaml`)"
    PH = P + ["--hardware", f"{TMP}/h.yaml"]
    add(s, "unknown key (typo)", PH, ["field `hbm_bandwith_bytes_per_s` = 3350000000000.0: unknown key"],
        files={"h.yaml": hardware(hbm_bandwith_bytes_per_s=3.35e12)})
    add(s, "peak FLOPs without bf16", PH, ["peak_flops must give at least bf16"], files={"h.yaml": hardware(peak_flops={"fp8": 1e15})})
    add(s, "negative peak FLOPs", PH, ["peak_flops.bf16 must be > 0"], files={"h.yaml": hardware(peak_flops={"bf16": -1.0})})
    add(s, "unknown dtype in peak FLOPs", PH, ["field `peak_flops.fp4`"],
        files={"h.yaml": hardware(peak_flops={"bf16": 1e15, "fp4": 2e15})})
    add(s, "zero memory bandwidth", PH, ["field `hbm_bandwidth_bytes_per_s` = 0"], files={"h.yaml": hardware(hbm_bandwidth_bytes_per_s=0)})
    add(s, "a number without a source", PH, ["numbers without a source: nvlink_domain_size"],
        files={"h.yaml": hardware(sources__nvlink_domain_size=DELETE)})
    add(s, "GPU memory too small for the model", PH, ["does not fit", "available 3.0 GB"],
        files={"h.yaml": hardware(hbm_capacity_bytes=5.0e9)})
    add(s, "capacity as text", PH, ["field `hbm_capacity_bytes` = '80GB'", "number"],
        files={"h.yaml": hardware(hbm_capacity_bytes="80GB")})
    # ---- catalog folder
    s = "Catalog folder (`$RLSIM_CATALOG`)"
    add(s, "RLSIM_CATALOG is not a folder", P, ["RLSIM_CATALOG", "not a folder"], env={"RLSIM_CATALOG": f"{TMP}/missing"})
    add(s, "a broken model file in the catalog", ["project", "--model", "qwen3-8b"], ["models/bad.yaml", "unknown key"],
        env={"RLSIM_CATALOG": TMP}, files={"workloads/models/bad.yaml": model(name="bad", colour="red")})
    # ---- calibration tables
    s = "Calibration tables (`calibration/<gpu>/*.csv`, found through `$RLSIM_CATALOG`)"
    CAL = {"RLSIM_CATALOG": TMP, "RLSIM_CACHE_DIR": f"{TMP}/cache"}
    IC = ["iteration", "--model", "qwen3-8b", "--hardware", "h100-sxm", "--batch", "8", "--context", "512",
          "--calibration", "calibrated"]
    meta = json.loads((REPO / "calibration" / "h100" / "meta.json").read_text())
    add(s, "tables measured on another GPU (meta.json)", IC, ["meta.json: measured on 'NVIDIA H200'", "wrong GPU"], env=CAL,
        files=calibration(meta__json=json.dumps(dict(meta, gpu="NVIDIA H200"))))
    add(s, "rows of another GPU inside a table", IC, ["gemm.csv", "mixed GPUs"], env=CAL,
        files=calibration(gemm__csv=_csv_edit("h100", "gemm.csv", lambda ls: ls[:5] + [ls[5].replace(
            "NVIDIA H100 80GB HBM3", "NVIDIA H200", 1)] + ls[6:])))
    add(s, "a required table missing", IC, ["missing moe.csv"], env=CAL, files=calibration(drop=("moe.csv",)))
    add(s, "table cut to its header", IC, ["attention.csv: no rows"], env=CAL,
        files=calibration(attention__csv=_csv_edit("h100", "attention.csv", lambda ls: ls[:1])))
    add(s, "missing grid points (no decode attention)", IC, ["no 'decode' rows", "missing grid points"], env=CAL,
        files=calibration(attention__csv=_csv_edit("h100", "attention.csv", lambda ls: _without_phase(ls, "decode"))))
    add(s, "a column missing", IC, ["sampling.csv: missing columns ['vocab']"], env=CAL,
        files=calibration(sampling__csv=_csv_edit("h100", "sampling.csv", lambda ls: _drop_column(ls, "vocab"))))
    add(s, "negative time", IC, ["gemm.csv: non-positive time_s"], env=CAL,
        files=calibration(gemm__csv=_csv_edit("h100", "gemm.csv", lambda ls: ls[:1] + [ls[1].replace(
            ",4.5882e-06,", ",-4.5882e-06,", 1)] + ls[2:])))
    add(s, "a table cut inside its last row", IC, ["gemm.csv", "truncated"], env=CAL,
        files=calibration(gemm__csv=(REPO / "calibration/h100/gemm.csv").read_text()[:20000].rsplit(",", 3)[0]))
    add(s, "a word in a numeric column", IC, ["elementwise.csv: column 'time_s' has a non-numeric value 'fast'"], env=CAL,
        files=calibration(elementwise__csv=_csv_edit("h100", "elementwise.csv", lambda ls: ls[:2] + [_set_field(
            ls[0], ls[2], "time_s", "fast")] + ls[3:])))
    add(s, "an infinite time", IC, ["gemm.csv: column 'time_s' has a non-finite value"], env=CAL,
        files=calibration(gemm__csv=_csv_edit("h100", "gemm.csv", lambda ls: ls[:2] + [_set_field(
            ls[0], ls[2], "time_s", "inf")] + ls[3:])))
    add(s, "meta.json not JSON", IC, ["meta.json: not valid JSON"], env=CAL, files=calibration(meta__json="{ gpu: H100"))
    add(s, "broken tables with --calibration auto (no silent roofline fall-back)", IC[:-1] + ["auto"],
        ["missing moe.csv"], env=CAL, files=calibration(drop=("moe.csv",)))
    # ---- trace and recipe files, other flags of `rlsim project`
    s = "Trace and recipe files, other `rlsim project` flags"
    add(s, "acceptance trace file missing", P + ["--acceptance-from", f"{TMP}/nope.txt"], ["nope.txt: no such file"])
    add(s, "acceptance trace: Prometheus text without spec-decode counters", P + ["--acceptance-from", f"{TMP}/m.txt"],
        ["no vllm:spec_decode_num_drafts counter"], files={"m.txt": "# HELP x\nvllm:num_requests_running 3\n"})
    add(s, "acceptance trace: JSON without acceptance metrics", P + ["--acceptance-from", f"{TMP}/log.json"],
        ["no acceptance metrics found"], files={"log.json": '{"step": 1, "loss": 0.3}\n'})
    add(s, "NeMo-RL recipe missing", P + ["--from-nemo-rl", f"{TMP}/nope.yaml"], ["nope.yaml: cannot read"])
    add(s, "NeMo-RL recipe not a mapping", P + ["--from-nemo-rl", f"{TMP}/r.yaml"], ["expected a mapping"],
        files={"r.yaml": "just text\n"})
    add(s, "k schedule not START-END:K", P + ["--k-schedule", "small:5"], ["is not START-END:K"])
    add(s, "k schedule range reversed", P + ["--k-schedule", "1-16:5,64-17:3"], ["range 64-17"])
    add(s, "k schedule k above the maximum", P + ["--k-schedule", "[[1, 16, 99]]"], ["(1, 16, 99)", "0 <= k <= 15"])
    add(s, "timeline file of an unknown format", P + ["--timeline", f"{TMP}/t.txt"], ["unknown format '.txt'"])
    add(s, "timeline into a missing folder", P + ["--timeline", f"{TMP}/no/such/t.png"], ["does not exist"])
    add(s, "zero steps in a run", P + ["--steps", "0"], ["--steps = 0", "1..10,000,000"])
    add(s, "acceptance spread above 1", P + ["--acceptance-spread", "2"], ["acceptance_spread = 2.0"])
    add(s, "negative MoE routing skew", P + ["--moe-routing-skew", "-1"], ["moe_routing_skew = -1.0", "0..3"])
    add(s, "draft-quality decay without a draft quality", P + ["--draft-quality-decay", "0.5"], ["give --draft-quality too"])
    # ---- other commands
    s = "Other commands (`sweep`, `optimize-k`, `plot`, `calibrate`)"
    add(s, "sweep: grid file missing", ["sweep", "--grid", f"{TMP}/nope.yaml"], ["nope.yaml: cannot read"])
    add(s, "sweep: reversed integer range", ["sweep", "--workload", "rl-zero-8b", "--k", "7..1", "--no-cache"],
        ["--k '7..1': no values"])
    add(s, "sweep: --set without '='", ["sweep", "--workload", "rl-zero-8b", "--set", "k", "--no-cache"],
        ["expected FIELD=v1,v2"])
    add(s, "sweep: unknown executor", ["sweep", "--workload", "rl-zero-8b", "--executor", "mpi"], ["allowed: process, serial, ray"])
    add(s, "sweep: zero-step float range", ["sweep", "--workload", "rl-zero-8b", "--draft-quality", "0.6..0.9..0",
                                            "--no-cache"], ["step must be > 0"])
    add(s, "optimize-k: k above the maximum", ["optimize-k", "--workload", "rl-zero-8b", "--k-max", "99"], ["maximum", "0..15"])
    add(s, "optimize-k: AL curve impossible", ["optimize-k", "--workload", "rl-zero-8b", "--al-curve", "3:9"],
        ["AL 9.0 at k = 3 is inconsistent"])
    add(s, "plot: results file missing", ["plot", "heatmap", "--from", f"{TMP}/nope.csv"], ["no such results file"])
    add(s, "calibrate: unknown backend", ["calibrate", "--backend", "tpu"], ["allowed: torch, vllm"])
    # ---- Python API
    s = "Python API (`rlsim.project_scenario(...)`: an `RlsimError`, never a pydantic or numpy error)"
    W = {"workload": "rl-zero-8b"}
    add(s, "zero prompts per step", api=W | {"num_prompts_per_step": 0}, expect=["num_prompts_per_step", "= 0"])
    add(s, "zero generations per prompt", api=W | {"num_generations_per_prompt": 0},
        expect=["num_generations_per_prompt", "= 0"])
    add(s, "max_new_tokens below the minimum response", api=W | {"max_new_tokens": 4}, expect=["min_tokens (16) > max_tokens (4)"])
    add(s, "negative median response", api=W | {"response_median_tokens": -5.0}, expect=["median_tokens", "= -5.0"])
    add(s, "absurdly many sequences per step", api=W | {"num_prompts_per_step": 10**6, "num_generations_per_prompt": 1000},
        expect=["sequences per step = 1,000,000,000", "up to 16,777,216"])
    add(s, "unknown override", api=W | {"num_prompt_per_step": 8}, expect=["unknown scenario field 'num_prompt_per_step'"])
    add(s, "unknown dtype override", api=W | {"generation_dtype": "fp4"}, expect=["generation_dtype", "'fp4'"])
    add(s, "tensor parallel size 0", api=W | {"tensor_parallel_size": 0}, expect=["tensor_parallel_size", "= 0"])
    add(s, "seed not an integer", api=W | {"seed": 1.5}, expect=["seed = 1.5", "an integer"])
    add(s, "group correlation above 1", api=W | {"options": {"group_correlation": 2.0}},
        expect=["group_correlation = 2.0", "0..1"])
    add(s, "per-batch-size k above the maximum", api=W | {"num_speculative_tokens_per_batch_size": [(1, 64, 20)]},
        expect=["(1, 64, 20)", "0 <= k <= 15"])
    add(s, "per-position acceptance increasing", api=W | {"acceptance_rates_per_position": [0.5, 0.8]},
        expect=["must not increase"])
    add(s, "draft quality decay 0", api=W | {"draft_quality": 0.8, "draft_quality_decay": 0.0}, expect=["position_decay = 0.0"])
    c.extend(_new_cases())
    c.extend(_issue20_cases())
    c.extend(_tree_cases())
    return c


def _issue20_cases() -> list[Case]:
    """Inputs added for issue 20 (SGLang, long context, prefill/decode disaggregation, multi-turn rollouts)."""
    c: list[Case] = []

    def add(section, what, args=None, expect=(), **kw):
        c.append(Case(what, args, tuple(expect), section=section, **kw))

    T8 = ["project", "--workload", "rl-think-8b"]
    s = "Engines, long context, disaggregation and multi-turn rollouts (issue 20)"
    add(s, "unknown engine profile", T8 + ["--engine", "sglang-9"], ["unknown engine profile 'sglang-9'", "sglang-0.5.6"])
    add(s, "prefill pool of 0 GPUs", T8 + ["--prefill-gpus", "0"], ["--prefill-gpus = 0", "allowed: 1.."])
    add(s, "prefill pool takes every generation GPU", T8 + ["--prefill-gpus", "32"],
        ["--prefill-gpus = 32", "below the 32 generation GPUs"])
    add(s, "prefill pool not whole replicas", ["project", "--workload", "rl-235b", "--prefill-gpus", "12"],
        ["--prefill-gpus = 12", "multiple of the replica size 8"])
    add(s, "link bandwidth without a prefill pool", T8 + ["--kv-link-gbps", "400"],
        ["--kv-link-gbps", "prefill pool, which is not given", "--prefill-gpus"])
    add(s, "link latency without a prefill pool", T8 + ["--kv-link-latency-ms", "10"], ["--kv-link-latency-ms", "--prefill-gpus"])
    add(s, "zero link bandwidth", T8 + ["--prefill-gpus", "8", "--kv-link-gbps", "0"], ["--kv-link-gbps = 0.0", "> 0"])
    add(s, "link bandwidth 10^9 Gb/s (a unit mistake)", T8 + ["--prefill-gpus", "8", "--kv-link-gbps", "1e9"],
        ["--kv-link-gbps", "<= 100000"])
    add(s, "negative link latency", T8 + ["--prefill-gpus", "8", "--kv-link-latency-ms", "-1"],
        ["--kv-link-latency-ms = -1.0", ">= 0"])
    add(s, "infinite link latency", T8 + ["--prefill-gpus", "8", "--kv-link-latency-ms", "inf"],
        ["--kv-link-latency-ms = inf"])
    add(s, "prefill pool with asynchronous RL", T8 + ["--prefill-gpus", "8", "--lag", "1", "--gen-gpus", "24",
                                                      "--train-gpus", "8"], ["--prefill-gpus", "synchronous steps only"])
    add(s, "zero turns", T8 + ["--turns", "0"], ["--turns = 0", "1..64"])
    add(s, "100 turns", T8 + ["--turns", "100"], ["--turns = 100", "1..64", "prefill-decode round"])
    add(s, "turns without a tool output length", T8 + ["--turns", "2"], ["--turns 2", "--tool-output-tokens"])
    add(s, "tool latency without turns", T8 + ["--tool-latency-s", "5"], ["--tool-latency-s", "one turn", "--turns"])
    add(s, "tool output of 0 tokens", T8 + ["--turns", "2", "--tool-output-tokens", "0"], ["--tool-output-tokens = 0.0"])
    add(s, "negative tool latency", T8 + ["--turns", "2", "--tool-output-tokens", "10", "--tool-latency-s", "-1"],
        ["--tool-latency-s = -1.0"])
    add(s, "turns whose context exceeds the model's", T8 + ["--turns", "8", "--tool-output-tokens", "4096"],
        ["8 turns", "beyond qwen3-8b's context of 40,960", "YaRN"])
    add(s, "unknown rope scaling", T8 + ["--rope-scaling", "linear"], ["rope_scaling = 'linear'", "none, yarn"])
    add(s, "64K responses without YaRN", ["project", "--workload", "rl-think-8b-64k", "--rope-scaling", "none"],
        ["67,584 tokens", "beyond qwen3-8b's context of 40,960", "with YaRN"])
    add(s, "YaRN on a model without rope scaling in the catalog", ["project", "--workload", "rl-llama-8b",
                                                                  "--rope-scaling", "yarn"], ["no rope scaling"])
    add(s, "beyond 128K even with YaRN", api={"workload": "rl-think-8b-64k", "max_new_tokens": 131072},
        expect=["even with YaRN", "131,072"])
    add(s, "iteration: acceptance length beyond k + 1", IT + ["--k", "3", "--acceptance-length", "5"],
        ["--acceptance-length = 5.0", "<= 4"])
    add(s, "iteration: acceptance length at k = 0", IT + ["--acceptance-length", "2"], ["--acceptance-length",
                                                                                       "--k >= 1"])
    add(s, "workload: agentic turns 0", PW, ["field `agentic.turns` = 0"],
        files={"w.yaml": workload(agentic={"turns": 0, "tool_latency_s": 1.0, "tool_output_length": {
            "distribution": "fixed", "median_tokens": 100, "max_tokens": 100}})})
    add(s, "workload: rope_scaling without a source", PW, ["numbers without a source: rope_scaling"],
        files={"w.yaml": workload(rope_scaling="yarn")})
    add(s, "model: YaRN factor below 1", ["project", "--workload", "rl-zero-8b", "--model", f"{TMP}/m.yaml"],
        ["field `rope_scaling.factor` = 0.5", "greater than 1"],
        files={"m.yaml": model(rope_scaling={"rope_type": "yarn", "factor": 0.5,
                                             "original_max_position_embeddings": 32768})})
    add(s, "engine profile: per-batch graphs without their limits", P + ["--engine", f"{TMP}/e.yaml"],
        ["capture_limit: sglang needs graphs.max_capture_batch"],
        files={"e.yaml": yaml.safe_dump(_edit(_catalog_yaml("engine_profiles/sglang-0.5.6.yaml"),
                                              {"graphs.max_capture_batch": {}}), sort_keys=False)})
    add(s, "Python API: prefill pool as a string", api={"workload": "rl-zero-8b", "options": {"prefill_gpus": "8"}},
        expect=["--prefill-gpus = '8'"])
    return c


def _prom(*lines: str, end: str = "\n") -> str:
    """A vLLM /metrics scrape: the spec-decode counters given as NAME VALUE lines (prefix added)."""
    return "\n".join(f"vllm:spec_decode_{ln}" for ln in lines) + end


PROM_OK = ("num_drafts_total 1000", "num_draft_tokens_total 3000", "num_accepted_tokens_total 1800",
           'num_accepted_tokens_per_pos_total{position="0"} 800', 'num_accepted_tokens_per_pos_total{position="1"} 600',
           'num_accepted_tokens_per_pos_total{position="2"} 400')


def _nemo(**edits) -> str:
    """examples/nemo_rl_grpo_qwen3_8b_base_eagle3.yaml with ``edits`` (dotted keys as in workload())."""
    return yaml.safe_dump(_edit(_catalog_yaml("examples/nemo_rl_grpo_qwen3_8b_base_eagle3.yaml"), _dotted(edits)),
                          sort_keys=False)


def _laughs(top: str = "name") -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    prev = "a"
    for n in "bcdefghi":
        lines.append(f"{n}: &{n} [" + ", ".join([f"*{prev}"] * 9) + "]")
        prev = n
    return "\n".join(lines) + f"\n{top}: *i\n"


def _interp_bomb() -> str:
    lines = ["a0: [1, 2, 3, 4, 5, 6, 7, 8, 9]"]
    for i in range(1, 10):
        lines.append(f"a{i}: [" + ", ".join(["'${a%d}'" % (i - 1)] * 9) + "]")
    return "\n".join(lines) + "\n"


def _new_cases() -> list[Case]:
    """Inputs added for issue 22 ("no input that crashes, hangs or lies")."""
    c: list[Case] = []

    def add(section, what, args=None, expect=(), **kw):
        c.append(Case(what, args, tuple(expect), section=section, **kw))

    W = {"workload": "rl-zero-8b"}
    PH = P + ["--hardware", f"{TMP}/h.yaml"]
    SW = ["sweep", "--workload", "rl-zero-8b", "--k", "1", "--no-cache", "--no-progress"]
    PL = ["plot", "speedup-vs-k", "--workload", "rl-zero-8b", "--k", "1", "--draft-quality", "0.8", "--no-cache",
          "--no-progress"]
    TL = ["timeline", "--workload", "rl-zero-8b", "--gpus", "8", "--lag", "1"]
    # ---- output paths: checked before any simulation
    s = "Output paths (checked before the work starts)"
    add(s, "sweep results into a folder", SW + ["--out", TMP], ["--out", "is a folder"])
    add(s, "sweep results into /dev/full (a device: every write fails)", SW + ["--out", "/dev/full"],
        ["/dev/full", "not a regular file"])
    add(s, "sweep results into a read-only place", SW + ["--out", "/sys/rlsim-results.csv"],
        ["cannot write into folder '/sys'"])
    add(s, "sweep results of an unknown format", SW + ["--out", f"{TMP}/r.xlsx"], ["unknown format '.xlsx'"])
    add(s, "sweep results named in the grid file: a folder", ["sweep", "--grid", f"{TMP}/g.yaml", "--no-progress"],
        ["out", "is a folder"], files={"g.yaml": f"workload: rl-zero-8b\nk: 1\nout: {TMP}\n"})
    add(s, "plot into a folder", PL + ["--out", f"{TMP}/fig.png"], ["--out", "is a folder"], files={"fig.png/x": "x"})
    add(s, "plot into /dev/full", PL + ["--out", "/dev/full"], ["unknown format"])
    add(s, "plot into a missing folder", PL + ["--out", f"{TMP}/no/such/k.png"], ["does not exist"])
    add(s, "plot's sweep table into /dev/full", PL + ["--save-results", "/dev/full"], ["not a regular file"])
    add(s, "timeline into a folder", TL + ["--out", f"{TMP}/t.svg"], ["is a folder"], files={"t.svg/x": "x"})
    add(s, "timeline into a missing folder", TL + ["--out", f"{TMP}/no/t.png"], ["does not exist"])
    add(s, "timeline into a read-only place", TL + ["--out", "/sys/t.png"], ["cannot write into folder '/sys'"])
    add(s, "project --timeline into a folder", P + ["--timeline", f"{TMP}/t.png"], ["--timeline", "is a folder"],
        files={"t.png/x": "x"})
    add(s, "validate paper --out is a file", ["validate", "paper", "--out", f"{TMP}/f.txt"],
        ["exists and is not a folder"], files={"f.txt": "x"})
    add(s, "validate measured --out is a device", ["validate", "measured", "--out", "/dev/full"],
        ["exists and is not a folder"])
    add(s, "calibrate --out is a file (checked before the GPU)", ["calibrate", "--out", f"{TMP}/f.txt"],
        ["exists and is not a folder"], files={"f.txt": "x"})
    # ---- acceptance traces
    s = "Acceptance traces (`--acceptance-from`)"
    AF = P + ["--acceptance-from", f"{TMP}/m.prom"]
    AJ = P + ["--acceptance-from", f"{TMP}/log.json"]
    add(s, "non-numeric position label", AF, ["position label 'x' is not an integer"],
        files={"m.prom": _prom(*PROM_OK[:4], 'num_accepted_tokens_per_pos_total{position="x"} 600')})
    add(s, "absurd position (would allocate a billion positions)", AF, ["position 1000000000", "allowed: 0..63"],
        files={"m.prom": _prom(*PROM_OK[:4], 'num_accepted_tokens_per_pos_total{position="1000000000"} 6')})
    add(s, "a position missing in between (read as 0, k would drop)", AF, ["no per-position count for position 1"],
        files={"m.prom": _prom(*PROM_OK[:4], PROM_OK[5])})
    add(s, "truncated scrape: cut inside the last line", AF, ["line 6 ends without a newline", "truncated"],
        files={"m.prom": _prom(*PROM_OK, end="")[:-2]})
    add(s, "truncated scrape: the last positions missing (k would drop from 3 to 2)", AF,
        ["3.00 draft tokens per round", "positions 0..1", "truncated"], files={"m.prom": _prom(*PROM_OK[:5])})
    add(s, "a counter that is NaN", AF, ["num_drafts = nan", "finite count"],
        files={"m.prom": _prom("num_drafts_total NaN", *PROM_OK[1:])})
    add(s, "a negative counter", AF, ["accepted tokens at position 0 = -800"],
        files={"m.prom": _prom(*PROM_OK[:3], PROM_OK[3].replace(" 800", " -800"), *PROM_OK[4:])})
    add(s, "a spec-decode line that is not a sample", AF, ["line 2 is not a Prometheus sample"],
        files={"m.prom": _prom(PROM_OK[0], "num_draft_tokens_total{broken 3000", *PROM_OK[2:])})
    add(s, "bytes that are not UTF-8", AF, ["not a UTF-8 text file"],
        files={"m.prom": "\udcff\udcfe" + _prom(*PROM_OK)})
    add(s, "a folder", P + ["--acceptance-from", TMP], ["is a folder"])
    add(s, "JSON: null in the per-position counts", AJ, ["num_accepted_tokens_per_pos[1]` = null", "finite number"],
        files={"log.json": '{"num_drafts": 100, "num_accepted_tokens_per_pos": [80, null, 40]}'})
    add(s, "JSON: num_drafts null", AJ, ["num_drafts` = null"],
        files={"log.json": '{"num_drafts": null, "num_accepted_tokens_per_pos": [80, 60, 40]}'})
    add(s, "JSON: a word among the per-position rates", AJ, ['spec_acceptance_rate_per_pos[0]` = "high"'],
        files={"log.json": '{"spec_acceptance_rate_per_pos": ["high", 0.5]}'})
    add(s, "JSON: k = Infinity", AJ, ["num_speculative_tokens` = inf", "finite"],
        files={"log.json": '{"spec_acceptance_length": 2.5, "num_speculative_tokens": Infinity}'})
    add(s, "JSON: k = 10^12 (would loop 10^12 times)", AJ, ["num_speculative_tokens` = 1000000000000", "1..64"],
        files={"log.json": '{"spec_acceptance_length": 2.5, "num_speculative_tokens": 1000000000000}'})
    add(s, "JSON: an absurd position key", AJ, ["position 99999999", "0..63"],
        files={"log.json": '{"num_drafts": 100, "num_accepted_tokens_per_pos_99999999": 5}'})
    add(s, "JSON: nested 100,000 deep", AJ, ["nested too deeply"], files={"log.json": "[" * 100000 + "]" * 100000})
    add(s, "JSONL: a broken line", AJ, ["line 2 is not JSON"],
        files={"log.json": '{"spec_acceptance_length": 2.5, "k": 3}\n{"spec_acceptance_length": 2.\n'})
    add(s, "trace together with --acceptance-length", AF + ["--acceptance-length", "2.5"],
        ["--acceptance-from gives the acceptance; drop --acceptance-length"], files={"m.prom": _prom(*PROM_OK)})
    # ---- NeMo-RL recipes
    s = "NeMo-RL recipes (`--from-nemo-rl`)"
    NR = P + ["--from-nemo-rl", f"{TMP}/r.yaml"]
    add(s, ".inf prompts per step", NR, ["grpo.num_prompts_per_step` = inf", "expected an integer"],
        files={"r.yaml": _nemo(grpo__num_prompts_per_step=float("inf"))})
    add(s, ".nan generations per prompt", NR, ["grpo.num_generations_per_prompt` = nan"],
        files={"r.yaml": _nemo(grpo__num_generations_per_prompt=float("nan"))})
    add(s, ".inf nodes", NR, ["cluster.num_nodes` = inf"], files={"r.yaml": _nemo(cluster__num_nodes=float("inf"))})
    add(s, "billion laughs (YAML aliases 9^9 values)", NR, ["aliases expand to more than 200,000 values"],
        files={"r.yaml": _laughs()})
    add(s, "interpolation bomb (${...} references 9^10 values)", NR,
        ["(interpolations resolved)", "more than 200,000 values"], files={"r.yaml": _interp_bomb()})
    add(s, "bytes that are not UTF-8", NR, ["not a UTF-8 text file"], files={"r.yaml": "\udcff\udcfe grpo: {}\n"})
    add(s, "nested 100,000 deep", NR, ["nested too deeply"], files={"r.yaml": "a: " + "[" * 100000 + "]" * 100000 + "\n"})
    add(s, "async enabled as the text \"false\" (would read as true)", NR, ["grpo.async_grpo.enabled` = 'false'",
                                                                           "true or false"],
        files={"r.yaml": _nemo(grpo__async_grpo={"enabled": "false"})})
    add(s, "colocated as the text \"no\"", NR, ["policy.generation.colocated.enabled` = 'no'"],
        files={"r.yaml": _nemo(policy__generation__colocated={"enabled": "no"})})
    add(s, "tensor parallel size as text", NR, ["tensor_parallel_size` = '4'", "expected an integer"],
        files={"r.yaml": _nemo(policy__generation__vllm_cfg__tensor_parallel_size="4")})
    add(s, "fractional number of draft tokens", NR, ["num_speculative_tokens` = 2.5"],
        files={"r.yaml": _nemo(policy__generation__vllm_kwargs__speculative_config__num_speculative_tokens=2.5)})
    add(s, "unknown speculative method", NR, ["method` = 'medusa'"],
        files={"r.yaml": _nemo(policy__generation__vllm_kwargs__speculative_config__method="medusa")})
    add(s, "`defaults` that include the recipe itself", NR, ["`defaults` loop"],
        files={"r.yaml": "defaults: r.yaml\ngrpo: {num_prompts_per_step: 8}\n"})
    add(s, "a folder", P + ["--from-nemo-rl", TMP], ["cannot read"])
    # ---- sweep grid files
    s = "Sweep grid files (`rlsim sweep --grid`)"
    G = ["sweep", "--grid", f"{TMP}/g.yaml", "--no-progress"]
    GB = "workload: rl-zero-8b\nk: 1\n"
    add(s, "seeds: abc", G, ["g.yaml", "seeds = 'abc'", "a count 1..1000"], files={"g.yaml": GB + "seeds: abc\n"})
    add(s, "seeds: -1", G, ["seeds = -1", "a count 1..1000"], files={"g.yaml": GB + "seeds: -1\n"})
    add(s, "seeds: 10^9", G, ["seeds = 1000000000", "each seed is one more full simulation"],
        files={"g.yaml": GB + "seeds: 1000000000\n"})
    add(s, "seeds: [1, 1]", G, ["repeat a seed"], files={"g.yaml": GB + "seeds: [1, 1]\n"})
    add(s, "seeds: [0, 1.5]", G, ["seeds = 1.5", "not a whole number"], files={"g.yaml": GB + "seeds: [0, 1.5]\n"})
    add(s, "workers: 0", G, ["workers = 0", "1..1,024"], files={"g.yaml": GB + "workers: 0\n"})
    add(s, "workers: many", G, ["workers = 'many'"], files={"g.yaml": GB + "workers: many\n"})
    add(s, "per_seed: maybe (would read as true)", G, ["per_seed = 'maybe'", "true or false"],
        files={"g.yaml": GB + "per_seed: maybe\n"})
    add(s, "use_cache: \"no\" as text (would read as true)", G, ["use_cache = 'no'"],
        files={"g.yaml": GB + "use_cache: 'no'\n"})
    add(s, "executor: 5", G, ["executor = 5"], files={"g.yaml": GB + "executor: 5\n"})
    add(s, "points not a list of mappings", G, ["`points` must be a list of mappings"],
        files={"g.yaml": GB + "points: 3\n"})
    add(s, "a grid of 10^6 points (refused before it is built)", G, ["1,000,000 points", "up to 100,000 runs"],
        files={"g.yaml": "workload: rl-zero-8b\ngrid:\n  num_prompts_per_step: " + str(list(range(1, 101)))
               + "\n  gpus: " + str(list(range(1, 101))) + "\n  max_new_tokens: " + str(list(range(100, 200))) + "\n"})
    add(s, "billion laughs", G, ["aliases expand to more than 200,000 values"], files={"g.yaml": _laughs("k")})
    add(s, "k given as the text \"1..7\"", G, ["k = '1..7' (a str); allowed: an integer"],
        files={"g.yaml": "workload: rl-zero-8b\nk: '1..7'\n"})
    # ---- bounds
    s = "Upper bounds on counts that drive work (the reason in the message)"
    add(s, "policy lag 10^6", P + ["--lag", "1000000"], ["--lag = 1000000", "allowed: 0..8", "lag + 1 rollout batches"])
    add(s, "policy lag 9", P + ["--lag", "9"], ["--lag = 9", "0..8"])
    add(s, "policy lag 100 in a workload file", PW, ["max_trajectory_age_steps` = 100", "less than or equal to 8"],
        files={"w.yaml": workload(max_trajectory_age_steps=100)})
    add(s, "run steps 10^9", P + ["--steps", "1000000000"], ["--steps = 1000000000", "1..10,000,000"])
    add(s, "draft-drift steps 5000 (a synchronous run simulated step by step)", P + ["--steps", "5000"],
        ["--steps = 5000", "1..1,000", "three full rollouts"])
    add(s, "sweep seeds 10^9", SW + ["--seeds", "1000000000"], ["seeds = 1000000000", "a count 1..1000"])
    add(s, "sweep seeds 0..10^9", SW + ["--seeds", "0..1000000000"], ["1,000,000,001 values", "up to 100,000 runs"])
    add(s, "k range 1..10^9 (24 GB before; refused before expansion)", SW[:3] + ["--k", "1..1000000000"],
        ["range '1..1000000000' has 1,000,000,000 values", "up to 100,000 runs"])
    add(s, "float range of 10^9 values", SW[:3] + ["--draft-quality", "0..1..0.000000001"],
        ["1,000,000,000 values"])
    add(s, "axes whose product is 399,600 runs", SW[:3] + ["--gpus", "8,16", "--k", "1..200", "--draft-quality",
                                                           "0.001..0.999..0.001"], ["399,600 points", "100,000"])
    add(s, "timeline of 10^6 replicas", TL + ["--replicas", "1000000"], ["--replicas = 1000000", "1..64"])
    add(s, "timeline of 1000 steps", TL + ["--steps", "1000"], ["--steps = 1000", "1..20"])
    add(s, "timeline at lag 50", ["timeline", "--workload", "rl-zero-8b", "--lag", "50"], ["--lag = 50", "0..8"])
    add(s, "optimize-k with 10^6 samples", ["optimize-k", "--workload", "rl-zero-8b", "--samples", "1000000"],
        ["--samples = 1000000", "1..100"])
    add(s, "sweep workers 0", SW + ["--workers", "0"], ["--workers = 0"])
    add(s, "sweep --set lag=100", SW + ["--set", "lag=100"], ["--lag = 100", "0..8"])
    add(s, "Python sweep over range(10^9)", api={"workload": "rl-zero-8b", "k": range(10**9)}, call="sweep",
        expect=["'k' has 1,000,000,000 values"])
    add(s, "Python sweep with 10^9 seeds", api={"workload": "rl-zero-8b", "seeds": 10**9}, call="sweep",
        expect=["seeds = 1000000000"])
    add(s, "async measured steps 10^6", api=W | {"lag": 1, "options": {"async_measured_steps": 10**6}},
        expect=["options.async_measured_steps = 1000000", "1..100"])
    # ---- conflicts
    s = "Conflicting or inapplicable flags (refused, not silently dropped)"
    add(s, "--acceptance-length with --draft-quality", P + ["--acceptance-length", "2.5", "--draft-quality", "0.7"],
        ["--acceptance-length", "--draft-quality", "both set the draft's acceptance", "one of them"])
    add(s, "--ep on a dense model (iteration)", IT + ["--ep"], ["--ep", "qwen3-8b is dense", "--no-ep"])
    add(s, "expert parallelism on a dense model (workload file)", PW, ["enable_expert_parallel", "dense"],
        files={"w.yaml": workload(generation__enable_expert_parallel=True)})
    add(s, "--draft-model with the eagle3 drafter", P + ["--draft-model", "qwen3-0.6b"],
        ["--draft-model qwen3-0.6b applies to --drafter draft-model", "'eagle3'"])
    add(s, "--drift-steps without --steps", P + ["--drift-steps", "100"], ["--drift-steps", "--steps", "ignored"])
    add(s, "--steps with --seeds", P + ["--steps", "2", "--seeds", "3"], ["does not use --seeds"])
    add(s, "--steps with --timeline", P + ["--steps", "2", "--timeline", f"{TMP}/t.png"], ["does not use --timeline"])
    add(s, "--steps with --in-flight-weight-updates", P + ["--steps", "2", "--in-flight-weight-updates"],
        ["does not use --in-flight-weight-updates"])
    add(s, "plot --from with --seeds (a sweep flag)", ["plot", "heatmap", "--from", f"{TMP}/r.csv", "--seeds", "3"],
        ["--seeds", "would be ignored"], files={"r.csv": "point,k,speedup_generation\n0,1,1.5\n"})
    add(s, "optimize-k: --draft-quality with --al-curve", ["optimize-k", "--workload", "rl-zero-8b", "--draft-quality",
                                                          "0.8", "--al-curve", "rl-zero"], ["both set the draft's acceptance"])
    add(s, "draft-quality decay without a draft quality", api=W | {"draft_quality_decay": 0.5},
        expect=["draft_quality_decay = 0.5", "draft_quality"])
    add(s, "per-position rates with an acceptance length", api=W | {"acceptance_rates_per_position": [0.8, 0.6],
                                                                   "acceptance_length": 2.5},
        expect=["both set the draft's acceptance"])
    add(s, "an unknown option (typo: partial_rollouts)", api=W | {"options": {"partial_rollouts": True}},
        expect=["unknown key 'partial_rollouts'", "partial_rollout"])
    add(s, "partial_rollout given as text", api=W | {"lag": 1, "options": {"partial_rollout": "yes"}},
        expect=["options.partial_rollout = 'yes'", "true or false"])
    # ---- physical sanity
    s = "Physical sanity"
    add(s, "iteration batch x context beyond GPU memory", ["iteration", "--model", "qwen3-8b", "--batch", "4096",
                                                           "--context", "131072"],
        ["does not fit", "KV for 536,875,008 tokens needs", "available", "GB per GPU"])
    add(s, "iteration context of 10^8 tokens", ["iteration", "--model", "qwen3-8b", "--hardware", "h100-sxm", "--batch", "1",
                                                "--context", "100000000"], ["does not fit", "h100-sxm"])
    add(s, "infinite FLOP/s (0 s training before)", PH, ["peak_flops.bf16", "finite"],
        files={"h.yaml": hardware(peak_flops={"bf16": float("inf"), "fp8": 1.979e15})})
    add(s, "NaN memory bandwidth", PH, ["hbm_bandwidth_bytes_per_s` = nan", "finite"],
        files={"h.yaml": hardware(hbm_bandwidth_bytes_per_s=float("nan"))})
    add(s, "infinite memory", PH, ["hbm_capacity_bytes` = inf", "finite"],
        files={"h.yaml": hardware(hbm_capacity_bytes=float("inf"))})
    add(s, "a workload setting without a source (colocated)", PW, ["numbers without a source: colocated"],
        files={"w.yaml": workload(sources__colocated=DELETE)})
    add(s, "infinite data-loading time in a workload", PW, ["data_loading_s` = inf", "finite"],
        files={"w.yaml": workload(data_loading_s=float("inf"))})
    # ---- Python API: types
    s = "Python API: wrong types (a ConfigurationError naming the argument, never a TypeError)"
    add(s, "k as text", api=W | {"k": "3"}, expect=["k = '3' (a str); allowed: an integer"])
    add(s, "GPUs as a fraction", api=W | {"gpus": 8.5}, expect=["gpus = 8.5 (not a whole number)"])
    add(s, "lag as text", api=W | {"lag": "1"}, expect=["lag = '1' (a str)"])
    add(s, "acceptance length as text", api=W | {"acceptance_length": "2.5"}, expect=["acceptance_length = '2.5' (a str)",
                                                                                     "a number"])
    add(s, "k as a bool", api=W | {"k": True}, expect=["k = True (a bool)"])
    add(s, "workload as a number", api={"workload": 5}, expect=["workload = 5 (an int)"])
    add(s, "colocated as text", api=W | {"colocated": "no"}, expect=["colocated = 'no' (a str)", "true or false"])
    add(s, "options as text", api=W | {"options": "fast"}, expect=["options = 'fast' (a str)", "a mapping"])
    add(s, "k schedule of words", api=W | {"num_speculative_tokens_per_batch_size": [("a", "b", "c")]},
        expect=["num_speculative_tokens_per_batch_size[0] = 'a'"])
    add(s, "None among per-position rates", api=W | {"acceptance_rates_per_position": [0.8, None]},
        expect=["acceptance_rates_per_position[1] = None"])
    add(s, "draft-quality decay NaN", api=W | {"draft_quality": 0.8, "draft_quality_decay": float("nan")},
        expect=["draft_quality_decay = nan", "finite"])
    add(s, "sweep k as a word (was: 'unknown scenario field')", api={"workload": "rl-zero-8b", "k": "abc"}, call="sweep",
        expect=["k = 'abc' (a str); allowed: an integer"])
    add(s, "sweep seeds as text", api={"workload": "rl-zero-8b", "seeds": "3"}, call="sweep", expect=["seeds = '3'"])
    add(s, "sweep workers as text", api={"workload": "rl-zero-8b", "workers": "many"}, call="sweep",
        expect=["workers = 'many'"])
    add(s, "sweep per_seed as text", api={"workload": "rl-zero-8b", "per_seed": "yes"}, call="sweep",
        expect=["per_seed = 'yes'"])
    add(s, "sweep points not mappings", api={"workload": "rl-zero-8b", "points": [1, 2]}, call="sweep",
        expect=["points = [1, 2]", "list of mappings"])
    add(s, "project() given a name instead of a Scenario", api={"scenario": "rl-zero-8b"}, call="project",
        expect=["project() takes a Scenario"])
    # ---- Ray
    s = "Ray executor"
    add(s, "--address auto with no cluster running", SW + ["--executor", "ray", "--address", "auto"],
        ["cannot start or reach Ray", "ray start --head"])
    add(s, "--address where nothing listens", SW + ["--executor", "ray", "--address", "127.0.0.1:1"],
        ["no Ray cluster reachable there"])
    add(s, "--address that is not an address", SW + ["--executor", "ray", "--address", "my cluster"],
        ["allowed: auto, local, HOST:PORT"])
    # ---- plot --from
    s = "`rlsim plot --from` results files"
    PF = ["plot", "heatmap", "--from", f"{TMP}/r.csv"]
    add(s, "empty CSV", PF, ["r.csv: not a readable results table"], files={"r.csv": ""})
    add(s, "binary CSV", PF, ["r.csv: not a UTF-8 text file"], files={"r.csv": "\udcff\udcfe\x00\x01garbage"})
    add(s, "a CSV that is not a sweep table", PF, ["not a sweep results table", "columns a, b"],
        files={"r.csv": "a,b\n1,2\n"})
    add(s, "a header and no rows", PF, ["has no rows"], files={"r.csv": "point,k,speedup_generation\n"})
    add(s, "a folder", ["plot", "heatmap", "--from", TMP], ["is a folder"])
    # ---- other values
    s = "Other command-line values"
    add(s, "NaN drift time constant", P + ["--steps", "2", "--drift-steps", "nan"], ["--drift-steps = nan", "finite"])
    add(s, "infinite draft init", P + ["--steps", "2", "--draft-init", "inf"], ["--draft-init = inf"])
    add(s, "NaN draft-quality decay", P + ["--draft-quality", "0.8", "--draft-quality-decay", "nan"],
        ["draft_quality_decay = nan", "finite"])
    add(s, "NaN acceptance spread", P + ["--acceptance-spread", "nan"], ["acceptance_spread = nan"])
    add(s, "acceptance spread 1e-4 (realised AL 1.0 before: a wrong answer)", P + ["--acceptance-spread", "0.0001"],
        ["acceptance_spread = 0.0001", "0 (no spread) or 0.05..1", "loses the mean"])
    add(s, "infinite acceptance response decay", P + ["--acceptance-response-decay", "inf"],
        ["acceptance_response_decay = inf"])
    add(s, "NaN MoE routing skew", P + ["--moe-routing-skew", "nan"], ["moe_routing_skew = nan", "finite"])
    add(s, "sweep float range to infinity", SW[:3] + ["--draft-quality", "0.5..inf..0.1"], ["must be finite numbers"])
    add(s, "sweep --rows -1", SW + ["--rows", "-1"], ["--rows = -1"])
    add(s, "optimize-k --max-tiers -1", ["optimize-k", "--workload", "rl-zero-8b", "--max-tiers", "-1"],
        ["--max-tiers = -1"])
    add(s, "validate measured for a GPU without ground truth", ["validate", "measured", "--gpu", "h300"],
        ["--gpu 'h300'", "allowed: h100"])
    return c


def _issue18_cases() -> list[Case]:
    """Inputs added for issue 18 (NeMo-RL in full, verl, Hugging Face ids, traces, outputs)."""
    c: list[Case] = []

    def add(section, what, args=None, expect=(), **kw):
        c.append(Case(what, args, tuple(expect), section=section, **kw))

    NR = ["project", "--from-nemo-rl", f"{TMP}/r.yaml"]
    VR = ["project", "--from-verl", f"{TMP}/run.sh"]
    s = "Configs, models, traces and outputs (issue 18)"
    add(s, "NeMo-RL recipe saved without its parent", NR, ["parent `defaults: ../../grpo_math_1B.yaml` is not at",
                                                           "keep the recipe in its NeMo-RL checkout"],
        files={"r.yaml": "defaults: ../../grpo_math_1B.yaml\npolicy:\n  model_name: Qwen/Qwen3-1.7B\n"})
    add(s, "a verl config given to --from-nemo-rl", NR, ["none of the keys rlsim reads", "use --from-verl"],
        files={"r.yaml": "trainer:\n  n_gpus_per_node: 8\nactor_rollout_ref:\n  rollout:\n    n: 5\n"})
    add(s, "verl's Hydra trainer config given to --from-nemo-rl", NR, ["Hydra component list", "use --from-verl"],
        files={"r.yaml": "defaults:\n  - actor@actor_rollout_ref.actor: dp_actor\n  - _self_\n"})
    add(s, "Megatron generation backend without --engine", NR, ["backend = 'megatron'", "no megatron engine profile",
                                                              "pass --engine vllm-0.17.1"],
        files={"r.yaml": _nemo(policy__generation__backend="megatron")})
    add(s, "recipe whose model is not in the catalog (no --model)", NR,
        ["its model 'Qwen/Qwen2.5-Math-1.5B-Instruct' is not in the catalog", "nearest: Qwen/Qwen2.5-1.5B", "--model"],
        files={"r.yaml": _nemo(policy__model_name="Qwen/Qwen2.5-Math-1.5B-Instruct")})
    add(s, "gpus_per_node without num_nodes", NR, ["cluster.gpus_per_node = 8 without cluster.num_nodes"],
        files={"r.yaml": "grpo: {num_prompts_per_step: 8}\ncluster: {gpus_per_node: 8}\n"})
    add(s, "sequence packing and dynamic batching both on", NR, ["sequence_packing.enabled and", "allows one"],
        files={"r.yaml": _nemo(policy__sequence_packing={"enabled": True}, policy__dynamic_batching={"enabled": True})})
    add(s, "unknown KV-cache dtype", NR, ["kv_cache_dtype` = 'int4'", "auto"],
        files={"r.yaml": _nemo(policy__generation__vllm_cfg__kv_cache_dtype="int4")})
    add(s, "vLLM expert parallel size not a multiple of TP", NR, ["expert_parallel_size = 3", "tensor_parallel_size = 2"],
        files={"r.yaml": _nemo(policy__model_name="Qwen/Qwen3-30B-A3B", policy__generation__vllm_cfg__tensor_parallel_size=2,
                               policy__generation__vllm_cfg__expert_parallel_size=3)})
    add(s, "--from-nemo-rl and --from-verl together", NR + ["--from-verl", f"{TMP}/r.yaml"],
        ["--from-nemo-rl and --from-verl both given"], files={"r.yaml": _nemo()})
    add(s, "--verbose without a config", P + ["--verbose"], ["--verbose lists the keys", "would be ignored"])
    add(s, "verl: a script without main_ppo", VR, ["no `python3 -m verl.trainer.main_ppo ...` command found"],
        files={"run.sh": "#!/bin/bash\necho train\n"})
    add(s, "verl: HF rollout without --engine", VR, ["rollout.name = 'hf'", "--engine vllm-0.17.1"],
        files={"run.sh": "python3 -m verl.trainer.main_ppo actor_rollout_ref.rollout.name=hf "
                         "actor_rollout_ref.model.path=Qwen/Qwen3-8B\n"})
    add(s, "verl: its default model (not in the catalog)", VR, ["deepseek-llm-7b-chat' is not in the catalog", "--model"],
        files={"run.sh": "python3 -m verl.trainer.main_ppo actor_rollout_ref.rollout.name=vllm\n"})
    add(s, "verl: hybrid engine off", VR, ["hybrid_engine = false", "only the hybrid engine"],
        files={"run.sh": "python3 -m verl.trainer.main_ppo actor_rollout_ref.rollout.name=vllm "
                         "actor_rollout_ref.hybrid_engine=false\n"})
    add(s, "verl: a batch size that is not a number", VR, ["data.train_batch_size` = 'many'", "expected an integer"],
        files={"run.sh": "python3 -m verl.trainer.main_ppo data.train_batch_size=many actor_rollout_ref.rollout.name=vllm\n"})
    add(s, "verl: file missing", ["project", "--from-verl", f"{TMP}/nope.sh"], ["nope.sh: cannot read"])
    add(s, "Hugging Face id not in the catalog", ["project", "--model", "Qwen/Qwen3-9B"],
        ["unknown model 'Qwen/Qwen3-9B' (nearest: Qwen/Qwen3-8B", "Hugging Face id"])
    add(s, "gpt-oss (left out of the catalog)", ["project", "--model", "openai/gpt-oss-120b"],
        ["is not in the catalog: gpt-oss-20b / gpt-oss-120b", "sliding-window"])
    add(s, "NeMo-RL acceptance log with position 0 (it counts from 1)", P + ["--acceptance-from", f"{TMP}/log.json"],
        ["numbers positions from 1"], files={"log.json": '{"vllm/spec_acceptance_rate-pos-0": 0.8}\n'})
    add(s, "vLLM SpecDecoding log line in another format", P + ["--acceptance-from", f"{TMP}/vllm.log"],
        ["SpecDecoding metrics line rlsim cannot read"],
        files={"vllm.log": "INFO SpecDecoding metrics: Draft acceptance rate: 0.5, System efficiency: 0.4\n"})
    add(s, "--set without '='", P + ["--set", "k"], ["--set 'k': expected FIELD=VALUE"])
    add(s, "--set with a list (a sweep)", P + ["--set", "k=1,3"], ["2 values", "rlsim sweep --set k=1,3"])
    add(s, "--set of a field also given as a flag", P + ["--k", "3", "--set", "k=5"], ["also given as a flag"])
    add(s, "--set of an unknown field", P + ["--set", "max_num_seq=64"], ["unknown scenario field 'max_num_seq'"])
    add(s, "--out of an unknown format", P + ["--out", f"{TMP}/p.parquet"], ["unknown format '.parquet'", ".json, .csv"])
    add(s, "--out into a missing folder", P + ["--out", f"{TMP}/no/such/p.json"], ["does not exist"])
    add(s, "timeline --format unknown", ["timeline", "--workload", "rl-zero-8b", "--format", "svgz"],
        ["--format = 'svgz'", "perfetto"])
    add(s, "timeline perfetto into a .png", ["timeline", "--workload", "rl-zero-8b", "--format", "perfetto", "--out",
                                             f"{TMP}/t.png"], ["unknown format '.png'", ".json"])
    add(s, "timeline --no-rounds for a figure", ["timeline", "--workload", "rl-zero-8b", "--no-rounds"],
        ["--no-rounds shapes the perfetto trace"])
    return c



def _tree_cases() -> list[Case]:
    """Inputs added for issue 19 (draft trees, retrieval, MTP, optimize-k --tree, tree sweeps)."""
    c: list[Case] = []

    def add(section, what, args=None, expect=(), **kw):
        c.append(Case(what, args, tuple(expect), section=section, **kw))

    s = "Draft trees, retrieval and MTP (`--speculative-*`, `--tree-*`, `--retrieval-*`)"
    PI = P + ["--engine", "ideal"]
    T = PI + ["--speculative-num-steps", "5", "--speculative-eagle-topk", "4", "--speculative-num-draft-tokens", "16"]
    add(s, "topk without steps", P + ["--speculative-eagle-topk", "4"], ["needs --speculative-num-steps"])
    add(s, "steps out of range", PI + ["--speculative-num-steps", "40"], ["--speculative-num-steps = 40", "1..16"])
    add(s, "topk out of range", PI + ["--speculative-num-steps", "3", "--speculative-eagle-topk", "0",
                                      "--speculative-num-draft-tokens", "4"], ["--speculative-eagle-topk = 0", "1..16"])
    add(s, "topk > 1 without the verified tokens", PI + ["--speculative-num-steps", "3", "--speculative-eagle-topk", "4"],
        ["needs --speculative-num-draft-tokens", "allowed: 2..37"])
    add(s, "topk 1 with more verified tokens than a chain", PI + ["--speculative-num-steps", "3",
                                                                  "--speculative-num-draft-tokens", "8"],
        ["--speculative-num-draft-tokens 8", "allowed: 4"])
    add(s, "more verified tokens than the steps draft", PI + ["--speculative-num-steps", "2", "--speculative-eagle-topk",
                                                              "2", "--speculative-num-draft-tokens", "9"],
        ["exceeds the 6 candidates", "allowed: 2..7"])
    add(s, "verified tokens above vLLM's limit", PI + ["--speculative-num-steps", "8", "--speculative-eagle-topk", "8",
                                                       "--speculative-num-draft-tokens", "500"],
        ["--speculative-num-draft-tokens = 500", "2..128", "MAX_SPEC_LEN"])
    add(s, "SGLang's dynamic tree on vLLM 0.17.1", P + ["--speculative-num-steps", "5", "--speculative-eagle-topk", "4",
                                                       "--speculative-num-draft-tokens", "16"],
        ["drafts static trees only", "--engine sglang-0.5.6"])
    add(s, "SGLang's and vLLM's tree together", PI + ["--speculative-num-steps", "3", "--speculative-token-tree",
                                                      "[(0,)]"], ["one of the two"])
    add(s, "token tree not a literal", P + ["--speculative-token-tree", "[(0,"], ["not a Python literal"])
    add(s, "token tree with a missing parent", P + ["--speculative-token-tree", "[(0, 1)]"], ["no parent (0,)"])
    add(s, "token tree with uneven levels (vLLM expands every node alike)",
        P + ["--speculative-token-tree", "[(0,), (1,), (0, 0)]"], ["children per node [1, 0]", "same number c"])
    add(s, "token tree with a rank gap", P + ["--speculative-token-tree", "[(0,), (2,)]"], ["ranks 0..c-1"])
    add(s, "token tree node listed twice", P + ["--speculative-token-tree", "[(0,), (0,)]"], ["twice"])
    add(s, "tree with k = 0", T + ["--k", "0"], ["needs speculation on", "--k >= 1"])
    add(s, "tree with the n-gram drafter", T + ["--drafter", "ngram", "--acceptance-length", "2"],
        ["drafted by a model", "--retrieval-tokens"])
    add(s, "tree with a k schedule", T + ["--k-schedule", "1-1024:3"], ["k schedule", "optimize-k --tree"])
    add(s, "tree with per-sequence acceptance spread", T + ["--acceptance-spread", "0.1"], ["not modelled"])
    add(s, "tree with a draft-drift run", T + ["--steps", "3"], ["--steps", "a chain"])
    add(s, "tree on an MLA model under vLLM", ["project", "--model", "deepseek-v3", "--drafter", "mtp", "--k", "2",
                                             "--speculative-token-tree", "[(0,), (1,), (0, 0), (1, 0)]"],
        ["MHA/GQA layers only", "--engine ideal"])
    add(s, "rank decay without a tree", PI + ["--tree-rank-decay", "0.5"], ["would be ignored"])
    add(s, "rank decay of 1", T + ["--tree-rank-decay", "1"], ["--tree-rank-decay = 1", "<= 0.999"])
    add(s, "rank decay and an acceptance table together", T + ["--tree-rank-decay", "0.5", "--tree-acceptance",
                                                                "[[0.8, 0.1]]"], ["one of them"])
    add(s, "acceptance table row above 1", T + ["--tree-acceptance", "[[0.8, 0.3]]"], ["sums to 1.1", "at most 1"])
    add(s, "acceptance table not a list of lists", T + ["--tree-acceptance", "0.8"], ["rows (one per depth)"])
    add(s, "unknown tree verification", T + ["--tree-verification", "maybe"], ["allowed: tree, chain"])
    add(s, "retrieved tokens without their acceptance", PI + ["--retrieval-tokens", "4"],
        ["needs --retrieval-acceptance-length"])
    add(s, "retrieval acceptance above R + 1", PI + ["--retrieval-tokens", "4", "--retrieval-acceptance-length", "6"],
        ["--retrieval-acceptance-length = 6", "<= 5"])
    add(s, "retrieval acceptance without retrieved tokens", PI + ["--retrieval-acceptance-length", "2"],
        ["would be ignored"])
    add(s, "retrieval on vLLM 0.17.1", P + ["--retrieval-tokens", "4", "--retrieval-acceptance-length", "2"],
        ["one proposer per request", "--engine ideal"])
    add(s, "negative retrieved tokens", PI + ["--retrieval-tokens", "-1", "--retrieval-acceptance-length", "2"],
        ["--retrieval-tokens = -1", "0..126"])
    add(s, "iteration: tree flags without steps", ["iteration", "--model", "qwen3-8b", "--batch", "8", "--context", "512",
                                                   "--speculative-eagle-topk", "4"], ["need --speculative-num-steps"])
    add(s, "iteration: a chain given as a tree", ["iteration", "--model", "qwen3-8b", "--batch", "8", "--context", "512",
                                                  "--speculative-token-tree", "[(0,), (0, 0)]"], ["is a chain", "--k 2"])
    O = ["optimize-k", "--workload", "rl-zero-8b", "--tree"]
    add(s, "optimize-k: tree flag without --tree", ["optimize-k", "--workload", "rl-zero-8b", "--engine", "ideal"],
        ["--engine applies to optimize-k --tree"])
    add(s, "optimize-k --tree: a k-schedule flag", O + ["--max-tiers", "2"], ["--max-tiers / --amortise-steps"])
    add(s, "optimize-k --tree: topk 0", O + ["--topk", "0,2"], ["--topk = 0", "1..16"])
    add(s, "optimize-k --tree: draft tokens above 128", O + ["--draft-tokens", "8,256"], ["--draft-tokens = 256"])
    add(s, "optimize-k --tree: memory limit above the HBM", O + ["--memory-limit-gib", "999"],
        ["--memory-limit-gib = 999.0", "HBM"])
    add(s, "optimize-k --tree: steps 0", O + ["--steps-max", "0"], ["--steps-max = 0", "1..16"])
    add(s, "sweep: an invalid tree point", ["sweep", "--workload", "rl-zero-8b", "--engine", "ideal", "--no-cache",
                                            "--speculative-num-steps", "2", "--speculative-eagle-topk", "2",
                                            "--speculative-num-draft-tokens", "9", "--no-progress"],
        ["exceeds the 6 candidates", "allowed: 2..7"])
    return c



CASES = _cases() + _issue18_cases()


# ------------------------------------------------------------------------------------ running
@dataclass
class Outcome:
    exit_code: int
    stderr: str
    stdout: str

    @property
    def message(self) -> str:
        lines = [ln for ln in self.stderr.splitlines() if ln.strip()]
        return " / ".join(lines)


def _clear_catalog_caches() -> None:
    from rlsim.catalog import loader

    for name in ("list_models", "load_model", "load_draft", "load_hardware", "load_workload"):
        getattr(loader, name).cache_clear()
    try:
        from rlsim.costmodel import calib_cache
    except ImportError:  # pragma: no cover
        return
    calib_cache.load_tables.cache_clear()


@contextlib.contextmanager
def _environment(env: dict[str, str]):
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    if env:
        _clear_catalog_caches()
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if env:
            _clear_catalog_caches()


def run_case(case: Case, workdir: Path) -> Outcome:
    """Run one case in-process (typer's CliRunner: the same code path as the installed ``rlsim``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    sub = lambda x: x.replace(TMP, str(workdir))  # noqa: E731
    for rel, text in case.files.items():
        p = workdir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(sub(text).encode("utf-8", "surrogateescape"))
    env = {k: sub(v) for k, v in case.env.items()}
    with _environment(env):
        if case.api is not None:
            return _run_api({k: (sub(v) if isinstance(v, str) else v) for k, v in case.api.items()}, case.call)
        from typer.testing import CliRunner

        from rlsim.cli import app

        r = CliRunner().invoke(app, [sub(a) for a in case.args], prog_name="rlsim")
        err = r.stderr
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            import traceback

            err += "".join(traceback.format_exception(type(r.exception), r.exception, r.exception.__traceback__))
        return Outcome(r.exit_code, err, r.stdout)


def _run_api(kwargs: dict, call: str = "project_scenario") -> Outcome:
    import rlsim
    from rlsim.errors import RlsimError

    fn = getattr(rlsim, call)
    if call == "sweep":
        kwargs = {"use_cache": False, "progress": False, "executor": "serial", **kwargs}
    try:
        if call == "project":
            fn(*kwargs.values())
        else:
            fn(**kwargs)
    except RlsimError as e:
        return Outcome(2, f"{type(e).__name__}: {e}\n", "")
    except Exception as e:  # noqa: BLE001 - a non-rlsim error is what the tests catch
        import traceback

        return Outcome(1, "Traceback (most recent call last):\n" + traceback.format_exc() + f"{type(e).__name__}\n", "")
    return Outcome(0, "", "")


def sanitize(text: str, workdir: Path) -> str:
    return text.replace(str(workdir), TMP).replace(str(REPO), "<repo>")


def run_all(root: Path | None = None) -> list[tuple[Case, Outcome, str]]:
    """Every case -> (case, outcome, sanitized message)."""
    own = root is None
    tmp = tempfile.TemporaryDirectory(prefix="rlsim-errors-") if own else None
    root = Path(tmp.name) if own else root
    out = []
    try:
        for i, case in enumerate(CASES):
            wd = root / f"case{i:03d}"
            o = run_case(case, wd)
            out.append((case, o, sanitize(o.message, wd)))
    finally:
        if tmp is not None:
            tmp.cleanup()
    return out


def _md(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _shell(args: list[str]) -> str:
    import shlex

    return "rlsim " + " ".join(shlex.quote(a) if a != "" else "''" for a in args)


def render(results: list[tuple[Case, Outcome, str]]) -> str:
    lines = [
        "# Bad inputs and what rlsim says",
        "",
        "Generated by `python scripts/gen_errors_doc.py` (do not edit by hand); `tests/test_bad_inputs.py`",
        "checks that every input below still exits with code 2 and one `error:` line (never a traceback)",
        "and that this file is current. Files a case writes live under `<tmp>` (shown per case);",
        "`<repo>` is the repository root. Python API cases raise an `RlsimError` (exit code shown as 2).",
        "",
        f"{len(results)} bad inputs.",
    ]
    section = None
    n = 0
    for case, o, msg in results:
        if case.section != section:
            section = case.section
            lines += ["", f"## {section}", "", "| # | input | what is wrong | exit | message |", "|---|---|---|---|---|"]
        n += 1
        if case.api is not None:
            inp = (f"{case.call}(" + ", ".join(f"{v!r}" if case.call == "project" else f"{k}={v!r}"
                                               for k, v in case.api.items()) + ")")
        else:
            inp = _shell(case.args)
        if case.env:
            inp = " ".join(f"{k}={v}" for k, v in case.env.items()) + " " + inp
        if len(case.files) > 3:
            common = os.path.commonpath(list(case.files))
            inp += f" — with `{TMP}/{common}/` (the committed tables, one changed or left out)"
        elif case.files:
            inp += " — with " + ", ".join(f"`{TMP}/{rel}`" for rel in case.files)
        lines.append(f"| {n} | `{_md(inp).replace(' — with ', '` — with ')}{'' if case.files else '`'} | {_md(case.what)} | "
                     f"{o.exit_code} | {_md(msg)} |")
    lines += ["", "## Not validated yet", "",
              "- Ground-truth rollout traces read by `rlsim validate measured` (committed files only, no user path).",
              "- Calibration tables: grid points missing from a table that still has rows of every phase and shape "
              "class (meta.json keeps the measured counts per run only as a Python-repr string, not checked against "
              "the rows); queries outside the measured grid "
              "are flagged in the output instead (`extrapolated beyond the measured calibration grid`).",
              "- An output path that becomes unwritable while the work runs cannot be refused up front: the results "
              "are then written to a temporary file and the error names it (`the results were kept in ...`).",
              "- Settings that do not apply are noted, not refused, where a sweep may legitimately mix them: "
              "`--in-flight-weight-updates` / `--partial-rollouts` at lag 0 (a note in the projection), `--address` "
              "or `--workers` for another executor (a warning).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/errors.md is stale")
    a = ap.parse_args(argv)
    text = render(run_all())
    if a.check:
        if not DOC.exists() or DOC.read_text() != text:
            print("docs/errors.md is stale: run python scripts/gen_errors_doc.py", file=sys.stderr)
            return 1
        return 0
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
    print(f"wrote {DOC.relative_to(REPO)} ({len(CASES)} cases)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
