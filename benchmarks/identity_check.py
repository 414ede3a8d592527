"""Same seed, same numbers: run a fixed set of scenarios through a source tree and compare two such runs.

Every scenario is one whole process (``rlsim project ... --json`` or the Python API for knobs the CLI does not
expose); the JSON text is stored as is, and ``--compare`` reports every value that differs (NaN equals NaN),
so a speed change can be checked for bit-identity against the tree it replaces:

    python benchmarks/identity_check.py --out /tmp/after                       # this tree
    PYTHONPATH=/tmp/before python benchmarks/identity_check.py --out /tmp/before_out  # another tree (git archive)
    python benchmarks/identity_check.py --compare /tmp/before_out /tmp/after
    python benchmarks/identity_check.py --out /tmp/after --only headline,sync-2048   # a subset

The set covers: sync and async (lag 1 drain, lag 1 in-flight updates, lag 2, partial rollouts), n-gram, a k
schedule, acceptance spread / response decay, MoE (TP 1 and TP 8 + EP), dense TP > 1, MLA, each engine profile,
the roofline timer, draft-model drafting, several seeds, draft drift over steps, and KV-pressure (preemption).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = {
    "headline": "--model qwen3-235b --gpus 2048 --k 3 --lag 2",
    "sync-2048": "--model qwen3-235b --gpus 2048 --k 3 --lag 0",
    "sync-2048-ideal": "--model qwen3-235b --gpus 2048 --k 3 --lag 0 --engine ideal",
    "sync-512-fixed": "--model qwen3-235b --gpus 512 --k 3 --lag 0 --engine vllm-fixed",
    "zero-8b": "--workload rl-zero-8b",
    "zero-8b-ideal": "--workload rl-zero-8b --engine ideal",
    "zero-8b-fixed": "--workload rl-zero-8b --engine vllm-fixed",
    "zero-8b-ngram": "--workload rl-zero-8b --drafter ngram --acceptance-length 1.8",
    "zero-8b-ngram-ideal": "--workload rl-zero-8b --drafter ngram --acceptance-length 1.8 --engine ideal",
    "zero-8b-ksched": "--workload rl-zero-8b --k-schedule 1-16:5,17-64:3,65-1024:1",
    "zero-8b-seeds3": "--workload rl-zero-8b --seeds 3 --seed 4",
    "zero-8b-roofline": "--workload rl-zero-8b --calibration roofline --k 5 --draft-quality 0.7",
    "zero-8b-draftmodel": "--workload rl-zero-8b --drafter draft-model --draft-model qwen3-0.6b --acceptance-length 2.4",
    "think-8b-spread": "--workload rl-think-8b --acceptance-spread 0.1 --acceptance-response-decay 0.05",
    "think-8b-lag1": "--workload rl-think-8b --lag 1 --gen-gpus 48 --train-gpus 16",
    "think-8b-lag1-inflight": "--workload rl-think-8b --lag 1 --gen-gpus 48 --train-gpus 16 --in-flight-weight-updates",
    "think-8b-lag2-partial": "--workload rl-think-8b --lag 2 --gen-gpus 48 --train-gpus 16 --partial-rollouts",
    "think-8b-lag2-ksched": "--workload rl-think-8b --lag 2 --gen-gpus 48 --train-gpus 16 --k-schedule 1-16:5,17-64:3,65-1024:1",
    "think-8b-lag1-ngram-ideal": "--workload rl-think-8b --lag 1 --gen-gpus 48 --train-gpus 16 --drafter ngram --acceptance-length 1.8 --engine ideal",
    "think-8b-steps": "--workload rl-think-8b --steps 12",
    "moe-30b": "--workload rl-think-30b-a3b",
    "moe-30b-lag1-fixed": "--workload rl-think-30b-a3b --lag 1 --gen-gpus 48 --train-gpus 16 --engine vllm-fixed",
    "dense-32b-tp": "--workload rl-think-32b --engine ideal",
    "llama-70b-roofline-lag2": "--workload rl-llama-70b --calibration roofline --lag 2",
    "dsv3-mla": "--workload rl-deepseek-v3",
}
# knobs only the Python API reaches (sequences per step): KV pressure and preemption
API = {
    "kv-pressure-512": dict(model="qwen3-235b", gpus=512, k=3, num_prompts_per_step=1024),
    "preempt-64": dict(model="qwen3-235b", gpus=64, k=3, num_prompts_per_step=512),
    "preempt-64-lag1": dict(model="qwen3-235b", gpus=128, k=3, num_prompts_per_step=384, lag=1),
}
API_CODE = ("import json, sys; from rlsim import project_scenario; "
            "r = project_scenario(**json.loads(sys.argv[1])); "
            "print(json.dumps(r.to_dict(), indent=2, default=lambda o: o.item() if hasattr(o, 'item') else str(o)))")


def run_all(out: Path, only: set[str] | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONHASHSEED="0")
    for name, args in list(CLI.items()) + list(API.items()):
        if only and name not in only:
            continue
        if isinstance(args, str):
            cmd = [sys.executable, "-m", "rlsim", "project", *args.split(), "--json"]
        else:
            cmd = [sys.executable, "-c", API_CODE, json.dumps(args)]
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:  # not the checkout: ``python -m`` would import rlsim from there
            r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp)
        dt = time.perf_counter() - t
        if r.returncode:
            print(f"{name:28s} FAILED ({dt:.1f} s): {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ''}")
            (out / f"{name}.err").write_text(r.stderr)
            continue
        (out / f"{name}.json").write_text(r.stdout)
        print(f"{name:28s} {dt:7.1f} s", flush=True)


def _diff(a, b, path: str, out: list) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if k not in a or k not in b:
                out.append(f"{path}.{k}: only in {'before' if k in a else 'after'}")
            else:
                _diff(a[k], b[k], f"{path}.{k}", out)
        if list(a) != list(b) and set(a) == set(b):
            out.append(f"{path}: key order differs")
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: length {len(a)} vs {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(x, y, f"{path}[{i}]", out)
    elif isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return
    elif a != b or type(a) is not type(b):
        rel = ""
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a:
            rel = f" (rel {abs(b - a) / abs(a):.2e})"
        out.append(f"{path}: {a!r} -> {b!r}{rel}")


def compare(before: Path, after: Path) -> int:
    bad = 0
    for p in sorted(before.glob("*.json")):
        q = after / p.name
        if not q.is_file():
            print(f"{p.stem:28s} missing in {after}")
            bad += 1
            continue
        diffs: list[str] = []
        _diff(json.loads(p.read_text()), json.loads(q.read_text()), "", diffs)
        print(f"{p.stem:28s} {'identical' if not diffs else f'{len(diffs)} differences'}")
        for d in diffs[:20]:
            print("    " + d)
        bad += bool(diffs)
    return bad


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path)
    ap.add_argument("--only", default="")
    ap.add_argument("--compare", nargs=2, type=Path)
    a = ap.parse_args()
    if a.compare:
        sys.exit(1 if compare(*a.compare) else 0)
    run_all(a.out, set(filter(None, a.only.split(","))) or None)


if __name__ == "__main__":
    main()
