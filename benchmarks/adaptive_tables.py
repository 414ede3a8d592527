"""Tables of docs/adaptive.md: best fixed k vs the optimised batch-adaptive k schedule, and offline vs
online draft over a run of N steps with drift, for rl-zero-8b, rl-think-8b and rl-235b.

    python benchmarks/adaptive_tables.py                 # markdown on stdout, JSON in benchmarks/out/adaptive.json
    python benchmarks/adaptive_tables.py --steps 10      # a quicker drift run

Acceptance: the study's EAGLE-3 ALs measured at k = 3, 5, 7 (shared/reference/paper-8b.md), fitted to
per-position rates (rlsim.speculation.traces.fit_al_curve); rl-235b uses the RL-Think curve (its
workload takes the RL-Think AL, no 235B figure is published).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rlsim.pipeline import build_setup
from rlsim.pipeline.drift import DriftModel, simulate_drift_run
from rlsim.studies.optimize_k import optimize_k
from rlsim.scenario import build_scenario
from rlsim.speculation.traces import STUDY_AL_CURVES, fit_al_curve

WORKLOADS = {"rl-zero-8b": "rl-zero", "rl-think-8b": "rl-think", "rl-235b": "rl-think"}
# where batch-adaptive k is meant to pay: many sequences per replica (rl-zero-8b on 8 instead of 32 GPUs)
EXTRA_ADAPTIVE = [("rl-zero-8b", "rl-zero", 8)]


def adaptive_rows(samples: int, k_max: int, calibration: str, max_tiers: int | None) -> tuple[list[dict], str]:
    rows, md = [], []
    md.append("| workload (GPUs, sequences per replica) | best fixed k | generation (s) | step (s) | adaptive schedule | generation (s) | step (s) "
              "| rollout speedup | end-to-end speedup | extra CUDA graphs (GB/GPU, capture s) | vLLM example schedule: gen (s) |")
    md.append("|---|---|---|---|---|---|---|---|---|---|---|")
    runs = [(w, c, None) for w, c in WORKLOADS.items()] + EXTRA_ADAPTIVE
    for w, curve, gpus in runs:
        t0 = time.time()
        r = optimize_k(workload=w, al_curve=curve, k_max=k_max, samples=samples, calibration=calibration, gpus=gpus,
                       max_tiers=max_tiers)
        r["wall_s"] = time.time() - t0
        b, a = r["fixed"][r["best_fixed_k"]], r["adaptive"]
        ex = a["extra_graphs_vs_best_fixed"]
        s = r["speedup_vs_best_fixed"]
        md.append(f"| {w} ({r['gpus']}, {r['sequences_per_replica_max']}) | {r['best_fixed_k']} | {b['gen']:.2f} | {b['step']:.2f} | `{r['schedule_text']}` | "
                  f"{a['gen']:.2f} | {a['step_with_capture']:.2f} | {s['generation']:.3f}x | {s['step']:.3f}x | "
                  f"{ex['bytes_per_gpu'] / 1e9:.2f}, {ex['capture_s']:.1f} | {r['reference_schedule']['gen']:.2f} |")
        rows.append(r)
    md.append("")
    md.append("Fixed k, generation time (s) per k (the rollout phase of one step):")
    md.append("")
    md.append("| workload | AR | " + " | ".join(f"k={k}" for k in range(1, k_max + 1)) + " | adaptive |")
    md.append("|---|---" + "|---" * k_max + "|---|")
    for r in rows:
        md.append(f"| {r['workload']} ({r['gpus']} GPUs) | {r['adaptive']['gen_ar']:.2f} | "
                  + " | ".join(f"{r['fixed'][k]['gen']:.2f}" for k in range(1, k_max + 1))
                  + f" | {r['adaptive']['gen']:.2f} |")
    return rows, "\n".join(md)


def drift_rows(steps: int, calibration: str) -> tuple[list[dict], str]:
    cases = [("in-domain draft, default drift", DriftModel(), True),
             ("in-domain draft, fast drift (100 steps)", DriftModel(drift_steps=100.0), False),
             ("off-domain init (UltraChat-like, 0.81)", DriftModel(init=0.81), False)]
    rows, md = [], []
    md.append(f"| workload | case | AR total (s) | offline total (s) | online total (s) | online draft training (s) "
              f"| mean AL offline | mean AL online | AL offline at step {steps - 1} | online vs offline |")
    md.append("|---|---|---|---|---|---|---|---|---|---|")
    for w in WORKLOADS:
        setup = build_setup(build_scenario(workload=w, calibration=calibration))
        ar_total = None
        for name, dm, baseline in cases:
            t0 = time.time()
            run = simulate_drift_run(setup, steps, dm, baseline=baseline)
            tot = run.totals
            if baseline:
                ar_total = tot["ar_step_s"]
            d = run.to_dict() | {"case": name, "wall_s": time.time() - t0}
            rows.append(d)
            md.append(f"| {w} | {name} | {ar_total:.0f} | {tot['offline_step_s']:.0f} | {tot['online_step_s']:.0f} | "
                      f"{tot['online_training_extra_s']:.1f} | {tot['mean_al_offline']:.3f} | {tot['mean_al_online']:.3f} | "
                      f"{run.steps[-1].al_offline:.3f} | {tot['online_vs_offline']:.4f}x |")
    return rows, "\n".join(md)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--samples", type=int, default=1)
    ap.add_argument("--k-max", type=int, default=7)
    ap.add_argument("--calibration", default="auto")
    ap.add_argument("--max-tiers", type=int, default=3, help="distinct k in a schedule (0 = unlimited)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "out" / "adaptive.json"))
    ap.add_argument("--skip-drift", action="store_true")
    ap.add_argument("--skip-adaptive", action="store_true")
    args = ap.parse_args()
    t0 = time.time()
    a_rows, a_md = ([], "") if args.skip_adaptive else adaptive_rows(args.samples, args.k_max, args.calibration,
                                                                     args.max_tiers or None)
    if a_md:
        print("### Best fixed k vs optimised adaptive schedule\n")
        print(a_md, flush=True)
    t1 = time.time()
    d_rows, d_md = ([], "") if args.skip_drift else drift_rows(args.steps, args.calibration)
    if d_md:
        print(f"\n### Offline vs online draft over {args.steps} steps\n")
        print(d_md)
    t2 = time.time()
    per_case = ", ".join("{} {}: {:.0f} s".format(r["workload"], r["case"], r["wall_s"]) for r in d_rows)
    print(f"\nwall time: adaptive {t1 - t0:.0f} s, drift {t2 - t1:.0f} s ({per_case})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"adaptive": a_rows, "drift": d_rows, "steps": args.steps}, indent=1,
                              default=lambda o: float(o) if hasattr(o, "__float__") else str(o)))


if __name__ == "__main__":
    main()
