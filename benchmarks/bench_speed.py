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
    python benchmarks/bench_speed.py --trees before=/tmp/old-checkout,after=   # two trees, runs interleaved

``--trees``: name=path pairs; each run puts ``path`` first on PYTHONPATH (empty: the installed rlsim). Their runs
alternate (before, after, before, after, ...), so that both see the same load on a shared machine.
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
    "preempt": [sys.executable, "-c", "from rlsim import project_scenario as p; "
                "p(model='qwen3-235b', gpus=512, k=3, num_prompts_per_step=4096)"],
    "sweep-1000": [sys.executable, "-c", "import sys; from rlsim import sweep; "
                   "df = sweep(workload='rl-zero-8b', k=[1, 2, 3, 4, 5], draft_quality=[0.5, 0.55, 0.6, 0.65, 0.7, "
                   "0.75, 0.8, 0.85, 0.9, 0.95], seeds=20, cache_dir=sys.argv[1], progress=False); "
                   "assert df.attrs['n_simulated'] == 1000, df.attrs"],
}
SLOW = {"preempt", "sweep-1000"}


def run_once(name: str, path: str = "") -> dict:
    cmd = list(CASES[name])
    env = dict(os.environ)
    if path:
        env["PYTHONPATH"] = path + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with tempfile.TemporaryDirectory() as tmp:
        if name == "sweep-1000":
            cmd.append(tmp)  # an empty sweep cache
        load0 = os.getloadavg()[0]
        t = time.perf_counter()
        # run from an empty folder: ``python -m`` puts the working directory first on sys.path, which would shadow
        # the tree given by PYTHONPATH
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=tmp)
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
    ap.add_argument("--trees", default="=", help="name=path,...: source trees to compare (empty path: installed)")
    ap.add_argument("--json", default=None, help="also write the runs here")
    a = ap.parse_args()
    trees = [tuple(t.split("=", 1)) for t in a.trees.split(",") if t]
    print(f"{os.cpu_count()} cores; load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())}; trees: "
          + ", ".join(f"{n or 'installed'}={p or 'installed'}" for n, p in trees))
    for _, path in trees:  # warm: fit caches, bytecode, file cache
        env = dict(os.environ, **({"PYTHONPATH": path} if path else {}))
        with tempfile.TemporaryDirectory() as tmp:
            w = subprocess.run(CASES["sync-2048"][:-1] + ["--gpus", "64"], capture_output=True, env=env, cwd=tmp)
            r = subprocess.run([sys.executable, "-c", "import rlsim; print(rlsim.__file__)"], capture_output=True,
                               env=env, cwd=tmp, text=True)
        print(f"  {path or 'installed'}: rlsim from {r.stdout.strip()} (warm-up exit {w.returncode})")
    out = {"cores": os.cpu_count(), "trees": dict(trees), "cases": {}}
    print(f"{'case':12s} {'tree':8s} {'wall s':>8s} {'CPU s':>8s} {'peak MB':>8s} {'load':>9s}  runs (wall / CPU)")
    for name in [c for c in a.cases.split(",") if c]:
        runs: dict[str, list] = {t: [] for t, _ in trees}
        for _ in range(a.slow_repeats if name in SLOW else a.repeats):
            for t, path in trees:
                runs[t].append(run_once(name, path))
        for t, _ in trees:
            rs = runs[t]
            med = {k: statistics.median(r[k] for r in rs) for k in ("wall_s", "cpu_s", "peak_mb")}
            load = f"{min(r['load_before'] for r in rs):.1f}-{max(r['load_after'] for r in rs):.1f}"
            out["cases"].setdefault(name, {})[t] = {"median": med, "runs": rs}
            print(f"{name:12s} {t:8s} {med['wall_s']:8.2f} {med['cpu_s']:8.2f} {med['peak_mb']:8.0f} {load:>9s}  "
                  + " ".join(f"{r['wall_s']:.2f}/{r['cpu_s']:.2f}" for r in rs), flush=True)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
