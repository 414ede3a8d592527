"""Regenerate every committed validation artefact and generated doc table, in dependency order.

    python scripts/regenerate.py                   # everything (slow steps included; about an hour on 2 cores)
    python scripts/regenerate.py --only paper      # one step (names below)
    python scripts/regenerate.py --skip sensitivity,nemo-rl

Steps (each re-runnable alone; the AR refits rewrite the fitted values in workloads/*.yaml first):
  calibration   calibration/<gpu>/report.{json,md}            rlsim calibrate report --write
  measured      validation/measured_<gpu>.csv, measured.txt   rlsim validate measured (ideal engine, the harness's)
  paper         validation/paper.{md,json}                    AR refit + Table 1 under the default engine
  paper-ideal   validation/paper-ideal.{md,json}              Table 1 under the ideal engine (same fitted workloads)
  paper-dapo    validation/paper-dapo-recipe.{md,json}        AR refit + Table 1 under the DAPO recipe settings
  sensitivity   validation/paper-sensitivity.{md,json}        rlsim validate paper --sensitivity
  scenarios     docs/study-scenarios.md                       scripts/study_scenarios.py (both engines)
  async         docs/async-tables.md                          scripts/lag_tables.py
  adaptive      docs/adaptive-tables.md                       benchmarks/adaptive_tables.py
  heatmap       validation/heatmap-qwen3-235b-512gpu.{csv,png}
  nemo-rl       validation/nemo-rl*.{md,json}                 rlsim validate nemo-rl --gb200
  pins          tests/data/pinned_projections.json            scripts/pin_projections.py
  errors        docs/errors.md                                scripts/gen_errors_doc.py
  rounds        docs/round-costs.md                           scripts/round_table.py (one round's cost by part)
  engine-rounds docs/engine-round-costs.md                    scripts/engine_round_costs.py (vLLM vs SGLang)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def sh(cmd: str, out: str | None = None) -> None:
    print(f"+ {cmd}" + (f" > {out}" if out else ""), flush=True)
    cmd = "COLUMNS=200 " + cmd  # rich tables written to files keep their full width
    if out:
        with open(ROOT / out, "w") as f:
            subprocess.run(cmd, shell=True, check=True, cwd=ROOT, stdout=f)
    else:
        subprocess.run(cmd, shell=True, check=True, cwd=ROOT)


STEPS = {
    "calibration": lambda: sh(f"{PY} -m rlsim calibrate report --write"),
    "measured": lambda: sh(f"{PY} -m rlsim validate measured --out validation", "validation/measured.txt"),
    "paper": lambda: sh(f"{PY} -m rlsim validate paper --refit --out validation"),
    "paper-ideal": lambda: sh(f"{PY} -m rlsim validate paper --engine ideal --no-mechanisms --out validation"),
    "paper-dapo": lambda: sh(f"{PY} -m rlsim validate paper --settings dapo-recipe --refit --out validation"),
    "sensitivity": lambda: sh(f"{PY} -m rlsim validate paper --sensitivity --no-mechanisms --out validation"),
    "scenarios": lambda: sh(f"{PY} scripts/study_scenarios.py", "docs/study-scenarios.md"),
    "async": lambda: sh(f"{PY} scripts/lag_tables.py", "docs/async-tables.md"),
    "adaptive": lambda: sh(f"{PY} benchmarks/adaptive_tables.py", "docs/adaptive-tables.md"),
    "heatmap": lambda: (sh(f"{PY} -m rlsim sweep --model qwen3-235b --gpus 512 --k 1..7 "
                           "--draft-quality 0.5..0.9..0.1 --out validation/heatmap-qwen3-235b-512gpu.csv --rows 0"),
                        sh(f"{PY} -m rlsim plot heatmap --from validation/heatmap-qwen3-235b-512gpu.csv "
                           "--out validation/heatmap-qwen3-235b-512gpu.png")),
    "nemo-rl": lambda: sh(f"{PY} -m rlsim validate nemo-rl --gb200 --out validation"),
    "pins": lambda: sh(f"{PY} scripts/pin_projections.py", "/dev/null"),
    "rounds": lambda: sh(f"{PY} scripts/round_table.py", "docs/round-costs.md"),
    "engine-rounds": lambda: sh(f"{PY} scripts/engine_round_costs.py --out docs/engine-round-costs.md", "/dev/null"),
    "errors": lambda: sh(f"{PY} scripts/gen_errors_doc.py", "/dev/null"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma list of steps")
    ap.add_argument("--skip", default="", help="comma list of steps")
    a = ap.parse_args()
    only = [s for s in a.only.split(",") if s]
    skip = {s for s in a.skip.split(",") if s}
    for s in only + list(skip):
        if s not in STEPS:
            sys.exit(f"error: unknown step {s!r}; allowed: {', '.join(STEPS)}")
    steps = [s for s in (only or STEPS) if s not in skip]
    t_all = time.time()
    for i, s in enumerate(steps, 1):
        t0 = time.time()
        print(f"[{i}/{len(steps)}] {s}", flush=True)
        STEPS[s]()
        print(f"[{i}/{len(steps)}] {s} done in {time.time() - t0:.0f} s", flush=True)
    print(f"all done in {time.time() - t_all:.0f} s")


if __name__ == "__main__":
    main()
