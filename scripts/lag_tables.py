"""Lag 0/1/2 tables for the async issue: Qwen3-235B on 2048 GB200 and rl-think-8b on 48 + 16 GPUs.

Run: python scripts/lag_tables.py > docs/async-tables.md
"""

from __future__ import annotations

from rlsim.api import project_scenario

CASES = [
    ("qwen3-235b, 2048 GB200 (1536 gen + 512 train)", dict(model="qwen3-235b", gen_gpus=1536, train_gpus=512)),
    ("rl-think-8b, 48 gen + 16 train GB200", dict(workload="rl-think-8b", gen_gpus=48, train_gpus=16)),
]


def row(label, r):
    b, s = r.baseline.phases_s, r.speculative.phases_s
    exp_b, exp_s = b.get("exposed_generation", b["generation"]), s.get("exposed_generation", s["generation"])
    return (f"| {label} | {r.baseline.step_s:.1f} | {r.speculative.step_s:.1f} | {r.speedup['step']:.2f}x | "
            f"{b['generation']:.1f} / {s['generation']:.1f} | {exp_b:.1f} / {exp_s:.1f} | "
            f"{b.get('refit_wait', 0.0):.1f} / {s.get('refit_wait', 0.0):.1f} | {b['logprob'] + b['training']:.1f} |")


def main():
    print("# Async RL: lag 0 / 1 / 2 (k = 3 EAGLE-3, steady state)\n")
    for name, kw in CASES:
        print(f"## {name}\n")
        print("| lag | AR step s | spec step s | step speedup | rollout s AR / spec | exposed generation s AR / spec "
              "| drain before refit s AR / spec | log-prob + training s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for lag in (0, 1, 2):
            print(row(str(lag), project_scenario(lag=lag, **kw)), flush=True)
        print(row("2, in-flight weight updates", project_scenario(lag=2, in_flight_weight_updates=True, **kw)))
        print(row("2, in-flight + partial rollouts",
                  project_scenario(lag=2, in_flight_weight_updates=True, options={"partial_rollout": True}, **kw)))
        print()
    print("Lag 0 is the synchronous pipeline on the same split pools (generation, then training); "
          "exposed generation at lag 0 is the whole rollout.")


if __name__ == "__main__":
    main()
