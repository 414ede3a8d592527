"""Predictions for every scenario the study reports, as `rlsim project` flags, under each engine profile
(docs/validation.md).

Run: python scripts/study_scenarios.py
"""

from __future__ import annotations

from rlsim.api import project_scenario

ROWS = [
    ("EAGLE-3 k=3 (AL 3.32 / 2.77)", dict(k=3), (3.32, 2.77)),
    ("EAGLE-3 k=5 (AL 4.35 / 3.23)", dict(k=5), (4.35, 3.23)),
    ("EAGLE-3 k=7 (AL 5.06 / 3.48)", dict(k=7), (5.06, 3.48)),
    ("n-gram k=3 (AL 2.47 / 2.05)", dict(k=3, drafter="ngram"), (2.47, 2.05)),
    ("UltraChat offline k=3 (AL 2.88 / 2.40)", dict(k=3), (2.88, 2.40)),
    ("UltraChat online-adapted k=3 (AL 3.04 / 2.55)", dict(k=3), (3.04, 2.55)),
    ("DAPO online-adapted k=3 (AL 3.29 / 2.74)", dict(k=3), (3.29, 2.74)),
]


ENGINES = ("ideal", "vllm-0.17.1")


def fmt(r):
    return f"{r.speedup['generation']:.2f}x / {r.speedup['step']:.2f}x"


def main():
    """One table: per scenario, the generation / step speedups predicted under each engine profile."""
    cols = " | ".join(f"RL-Zero {e} | RL-Think {e}" for e in ENGINES)
    print(f"| scenario | {cols} |")
    print("|---|" + "---|" * (2 * len(ENGINES)))
    for label, kw, (al_z, al_t) in ROWS:
        cells = []
        for e in ENGINES:
            z = project_scenario(workload="rl-zero-8b", acceptance_length=al_z, engine=e, **kw)
            t = project_scenario(workload="rl-think-8b", acceptance_length=al_t, engine=e, **kw)
            cells += [fmt(z), fmt(t)]
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)
    cells = []
    for e in ENGINES:
        a = project_scenario(workload="rl-think-8b", lag=1, gen_gpus=48, train_gpus=16, engine=e)
        cells += ["", fmt(a)]
    print("| async lag 1, 48 + 16 GPUs | " + " | ".join(cells) + " |", flush=True)
    for gpus, lag in ((512, 0), (2048, 2)):
        cells = []
        for e in ENGINES:
            r = project_scenario(model="qwen3-235b", gpus=gpus, k=3, lag=lag, engine=e)
            cells += [fmt(r), ""]
        print(f"| Qwen3-235B {gpus} GPUs lag {lag}, k=3 | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
