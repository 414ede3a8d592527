"""Predictions for every scenario the study reports, as `rlsim project` flags (docs/validation.md).

Run: python scripts/study_scenarios.py
"""

from __future__ import annotations

from rlsim.report.api import project_scenario

ROWS = [
    ("EAGLE-3 k=3 (AL 3.32 / 2.77)", dict(k=3), (3.32, 2.77)),
    ("EAGLE-3 k=5 (AL 4.35 / 3.23)", dict(k=5), (4.35, 3.23)),
    ("EAGLE-3 k=7 (AL 5.06 / 3.48)", dict(k=7), (5.06, 3.48)),
    ("n-gram k=3 (AL 2.47 / 2.05)", dict(k=3, drafter="ngram"), (2.47, 2.05)),
    ("UltraChat offline k=3 (AL 2.88 / 2.40)", dict(k=3), (2.88, 2.40)),
    ("UltraChat online-adapted k=3 (AL 3.04 / 2.55)", dict(k=3), (3.04, 2.55)),
    ("DAPO online-adapted k=3 (AL 3.29 / 2.74)", dict(k=3), (3.29, 2.74)),
]


def fmt(r):
    return f"{r.speedup['generation']:.2f}x / {r.speedup['step']:.2f}x"


def main():
    print("| scenario | RL-Zero gen / step speedup | RL-Think gen / step speedup |")
    print("|---|---|---|")
    for label, kw, (al_z, al_t) in ROWS:
        z = project_scenario(workload="rl-zero-8b", acceptance_length=al_z, **kw)
        t = project_scenario(workload="rl-think-8b", acceptance_length=al_t, **kw)
        print(f"| {label} | {fmt(z)} | {fmt(t)} |", flush=True)
    a = project_scenario(workload="rl-think-8b", lag=1, gen_gpus=48, train_gpus=16)
    print(f"| async lag 1, 48 + 16 GPUs | | {fmt(a)} |")
    for gpus, lag in ((512, 0), (2048, 2)):
        r = project_scenario(model="qwen3-235b", gpus=gpus, k=3, lag=lag)
        print(f"| Qwen3-235B {gpus} GPUs lag {lag}, k=3 | {fmt(r)} | |")


if __name__ == "__main__":
    main()
