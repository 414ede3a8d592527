"""The simulator's own speed (issue 17): whole processes, start-up included.

Cases (each one fresh Python process, as a user runs it; the calibration fit cache warm, as after any first run):
  headline        rlsim project --model qwen3-235b --gpus 2048 --k 3 --lag 2        (the README's first command)
  sync-2048       the same, --lag 0
  sync-16384      --gpus 16384 --lag 0
  async-16384     --gpus 16384 --lag 2
  preempt         qwen3-235b, 512 GPUs, 65,536 sequences per step, sync (KV pressure: recompute preemption;
                  benchmarks/bench_scale.py's heaviest point)
  sweep-1000      rlsim.sweep of rl-zero-8b: 5 k x 10 draft qualities x 20 seeds = 1,000 scenarios, empty cache,
                  the default executor (worker processes, one per core)

Recorded per run: wall seconds, CPU seconds (user + system of the process and every process it waited for: the
sweep's workers), peak resident memory (the largest of the process tree), with the core count and the 1-minute
load average before and after (other processes share the cores: wall time moves with the load, CPU time much
less). Medians over ``--repeats``.

    python benchmarks/bench_speed.py                        # every case, 3 repeats (1 for preempt and sweep)
    python benchmarks/bench_speed.py --cases headline,sync-2048 --repeats 5
    PYTHONPATH=/path/to/other/tree python benchmarks/bench_speed.py --json before.json   # another checkout
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

PROJECT = [sys.executable, "-m", "rlsim", "project"]
CASES = {
    "headline": PROJECT + "--model qwen3-235b --gpus 2048 --k 3 --lag 2 --json".split(),
    "sync-2048": PROJECT + "--model qwen3-235b --gpus 2048 --k 3 --lag 0 --json".split(),
    "sync-16384": PROJECT + "--model qwen3-235b --gpus 16384 --k 3 --lag 0 --json".split(),
    "async-16384": PROJECT + "--model qwen3-235b --gpus 16384 --k 3 --lag 2 --json".split(),
    "preempt": [sys.executable, "-c", "from rlsim.report.api import project_scenario as p; "
                "p(model='qwen3-235b', gpus=512, k=3, num_prompts_per_step=4096)"],
    "sweep-1000": [sys.executable, "-c", "import sys; from rlsim import sweep; "
                   "df = sweep(workload='rl-zero-8b', k=[1, 2, 3, 4, 5], draft_quality=[0.5, 0.55, 0.6, 0.65, 0.7, "
                   "0.75, 0.8, 0.85, 0.9, 0.95], seeds=20, cache_dir=sys.argv[1], progress=False); "
                   "assert df.attrs['n_simulated'] == 1000, df.attrs"],
}
SLOW = {"preempt", "sweep-1000"}


def run_once(name: str) -> dict:
    cmd = list(CASES[name])
    with tempfile.TemporaryDirectory() as tmp:
        if name == "sweep-1000":
            cmd.append(tmp)  # an empty sweep cache
        load0 = os.getloadavg()[0]
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, ru = os.wait4(p.pid, 0)  # the child's usage, including the processes it waited for
        wall = time.perf_counter() - t
        err = p.stderr.read().decode()
        p.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{name} failed: {err.strip().splitlines()[-1] if err.strip() else status}")
    return {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_mb": ru.ru_maxrss / 1024.0,
            "load_before": load0, "load_after": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--slow-repeats", type=int, default=1, help="repeats of the preempt and sweep cases")
    ap.add_argument("--json", default=None, help="also write the runs here")
    a = ap.parse_args()
    import rlsim

    print(f"rlsim from {os.path.dirname(rlsim.__file__)}; {os.cpu_count()} cores; "
          f"load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")
    subprocess.run(CASES["sync-2048"][:-1] + ["--gpus", "64"], capture_output=True)  # warm: fit cache, file cache
    out = {"cores": os.cpu_count(), "rlsim": os.path.dirname(rlsim.__file__), "cases": {}}
    print(f"{'case':12s} {'wall s':>8s} {'CPU s':>8s} {'peak MB':>8s} {'load':>10s}  runs (wall)")
    for name in [c for c in a.cases.split(",") if c]:
        runs = [run_once(name) for _ in range(a.slow_repeats if name in SLOW else a.repeats)]
        med = {k: statistics.median(r[k] for r in runs) for k in ("wall_s", "cpu_s", "peak_mb")}
        load = f"{min(r['load_before'] for r in runs):.1f}-{max(r['load_after'] for r in runs):.1f}"
        out["cases"][name] = {"median": med, "runs": runs}
        print(f"{name:12s} {med['wall_s']:8.2f} {med['cpu_s']:8.2f} {med['peak_mb']:8.0f} {load:>10s}  "
              + " ".join(f"{r['wall_s']:.2f}" for r in runs), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
