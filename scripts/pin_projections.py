"""Pin a handful of projections to the values only their inputs determine (tests/test_determinism.py).

    python scripts/pin_projections.py            # rewrite tests/data/pinned_projections.json

Run it only when a change to the model is intended (and say so in the commit): the test then holds every
machine, thread count and dependency version to these numbers (relative tolerance 1e-9).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "pinned_projections.json"

# (name, build_scenario kwargs): small, fast scenarios covering the calibrated timer on both GPUs, the
# transfer to GB200, MoE, n-gram, variable acceptance and the roofline
CASES = [
    ("rl-zero-8b k3", dict(workload="rl-zero-8b", gpus=8, num_prompts_per_step=16)),
    ("rl-think-8b ngram k3", dict(workload="rl-think-8b", drafter="ngram", k=3, acceptance_length=2.05, gpus=8,
                                  num_prompts_per_step=16)),
    ("rl-zero-8b h100 k5 roofline", dict(workload="rl-zero-8b", hardware="h100-sxm", k=5, acceptance_length=4.35,
                                         gpus=8, num_prompts_per_step=16, calibration="roofline")),
    ("rl-zero-8b h200 k3 spread", dict(workload="rl-zero-8b", hardware="h200-sxm", gpus=8, num_prompts_per_step=16,
                                       options={"acceptance_spread": 0.1})),
    ("rl-think-30b-a3b k3", dict(workload="rl-think-30b-a3b", gpus=8, num_prompts_per_step=8)),
    ("rl-zero-8b k3 ideal engine", dict(workload="rl-zero-8b", gpus=8, num_prompts_per_step=16, engine="ideal")),
    ("rl-zero-8b k3 tp2 vllm-fixed", dict(workload="rl-zero-8b", gpus=8, num_prompts_per_step=16, tensor_parallel_size=2,
                                          engine="vllm-fixed")),
]


def compute() -> dict:
    from rlsim import project_scenario

    out = {}
    for name, kw in CASES:
        r = project_scenario(**kw)
        out[name] = {"kwargs": kw, "ar_step_s": r.baseline.step_s, "spec_step_s": r.speculative.step_s,
                     "ar_generation_s": r.baseline.phases_s["generation"],
                     "spec_generation_s": r.speculative.phases_s["generation"],
                     "acceptance_length_realized": r.acceptance_length_realized}
    return out


if __name__ == "__main__":
    data = compute()
    OUT.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    json.dump({k: {m: v[m] for m in ("ar_step_s", "spec_step_s")} for k, v in data.items()}, sys.stdout, indent=1)
    print()
