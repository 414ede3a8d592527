"""Simulator scale: wall time and peak memory of one `rlsim project` (AR + speculative step) for
qwen3-235b as the cluster grows (64 -> 16,384 GPUs) and as the step grows (512 -> 65,536 sequences).

Each point runs in a fresh process pinned to one CPU core (BLAS/OpenMP threads = 1). Reported:
  project_s   time of ``project(build_scenario(...))`` (both decoding modes), after imports and the
              one-off load of the catalog and calibration tables (a warm-up projection);
  process_s   wall time of the whole process (Python start-up, imports, warm-up included);
  peak_mb     peak resident memory of the process (ru_maxrss);
  events      cost-model calls (one per engine event: a prefill iteration, a decode stretch, a drain),
              the unit of the engine's work;
  per_seq_ms  project_s / sequences per step.

    python benchmarks/bench_scale.py                 # both sweeps, calibration auto
    python benchmarks/bench_scale.py --sweep gpus --calibration roofline
    python benchmarks/bench_scale.py --quick         # a few points (CI smoke test)
    python benchmarks/bench_scale.py --json out.json

Series:
  gpus:      workload rl-235b (4,096 sequences/step), k = 3, sync (lag 0) at 64..16,384 GPUs, and the
             async headline (lag 2) at 2,048..16,384 GPUs;
  sequences: num_prompts_per_step 32..4,096 x 16 generations = 512..65,536 sequences/step at 2,048
             GPUs (256 replicas) and at 512 GPUs (64 replicas: from 16,384 sequences on, a replica's
             KV cache no longer holds its share and admission waits).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

GPUS = [64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
GPUS_ASYNC = [2048, 8192, 16384]
PROMPTS = [32, 64, 128, 256, 512, 1024, 2048, 4096]  # x 16 generations = 512 .. 65,536 sequences
SEQ_GPUS = [2048, 512]


def _points(sweep: str, quick: bool) -> list[dict]:
    pts = []
    if sweep in ("gpus", "all"):
        for g in ([64, 2048, 16384] if quick else GPUS):
            pts.append({"series": "gpus/sync", "model": "qwen3-235b", "gpus": g, "k": 3, "lag": 0})
        for g in ([] if quick else GPUS_ASYNC):
            pts.append({"series": "gpus/async lag 2", "model": "qwen3-235b", "gpus": g, "k": 3, "lag": 2})
    if sweep in ("sequences", "all"):
        for gpus in ([2048] if quick else SEQ_GPUS):
            for p in ([32, 512] if quick else PROMPTS):
                pts.append({"series": f"sequences/{gpus} GPUs", "model": "qwen3-235b", "gpus": gpus, "k": 3, "lag": 0,
                            "num_prompts_per_step": p})
    return pts


# ------------------------------------------------------------------ child: one point
def _child(point: dict, calibration: str, cpu: int | None) -> None:
    t_proc0 = float(os.environ.get("RLSIM_BENCH_T0", time.time()))
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    import resource

    from rlsim.costmodel.iteration import IterationCostModel
    from rlsim.api import project
    from rlsim.scenario import build_scenario

    calls = {"n": 0}
    try:  # the engine's cost requests (one per event), evaluated in batches across replicas (issue 17)
        from rlsim.engine import replica as _replica

        orig_eval = _replica._evaluate

        def counted_eval(batch, _orig=orig_eval):
            calls["n"] += len(batch)
            return _orig(batch)

        _replica._evaluate = counted_eval
    except AttributeError:  # before: one cost-model call per event
        for name in ("iteration_time_s", "decode_segment_time_s", "decode_iterations_time_s"):
            orig = getattr(IterationCostModel, name)

            def counted(self, *a, _orig=orig, **kw):
                calls["n"] += 1
                return _orig(self, *a, **kw)

            setattr(IterationCostModel, name, counted)
    kw = {k: v for k, v in point.items() if k != "series"}
    # warm-up: imports, catalog, calibration tables (fitted once per process)
    project(build_scenario(model=kw["model"], gpus=64, num_prompts_per_step=2, k=3, calibration=calibration))
    sc = build_scenario(**kw, calibration=calibration)
    calls["n"] = 0
    t0 = time.perf_counter()
    r = project(sc)
    dt = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out = dict(point, calibration=calibration, sequences=sc.workload.sequences_per_step, project_s=dt,
               peak_mb=peak_mb, events=calls["n"], ar_step_s=r.baseline.step_s, spec_step_s=r.speculative.step_s,
               speedup_step=r.speedup["step"], n_replicas=r.scenario["n_replicas"],
               preemptions_ar=r.baseline.generation.preemptions, process_s=time.time() - t_proc0)
    print("RESULT " + json.dumps(out))


# ------------------------------------------------------------------ parent
def run_point(point: dict, calibration: str, cpu: int | None, timeout: float) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               RLSIM_BENCH_T0=repr(time.time()))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", json.dumps(point), "--calibration", calibration]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(point, calibration=calibration, error=f"timeout > {timeout:.0f} s")
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return dict(point, calibration=calibration, error=(r.stderr.strip().splitlines() or ["no output"])[-1])


def _fmt(res: dict) -> str:
    if "error" in res:
        return f"{res['series']:22s} {res['gpus']:>6d} {res.get('num_prompts_per_step', 256) * 16:>7d}  {res['error']}"
    return (f"{res['series']:22s} {res['gpus']:>6d} {res['sequences']:>7d} {res['n_replicas']:>6d} "
            f"{res['project_s']:>9.2f} {res['process_s']:>9.2f} {res['peak_mb']:>7.0f} {res['events']:>8d} "
            f"{1e3 * res['project_s'] / res['sequences']:>9.3f} {res['ar_step_s']:>8.1f} {res['speedup_step']:>6.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", choices=["gpus", "sequences", "all"], default="all")
    ap.add_argument("--calibration", default="auto", help="auto | roofline | calibrated")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cpu", type=int, default=None, help="pin to this core (default: the first core allowed)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per point")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one is not None:
        _child(json.loads(a.one), a.calibration, a.cpu)
        return
    cpu = a.cpu
    if cpu is None and hasattr(os, "sched_getaffinity"):
        cpu = min(os.sched_getaffinity(0))
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip()
    print(f"# rlsim scale benchmark at {rev or '?'}: calibration {a.calibration}, one core (cpu {cpu}), python "
          f"{sys.version.split()[0]}, {os.cpu_count()} cores on this machine, load average {os.getloadavg()[0]:.1f}")
    print(f"{'series':22s} {'gpus':>6s} {'seqs':>7s} {'repl':>6s} {'project_s':>9s} {'process_s':>9s} {'peak_mb':>7s} "
          f"{'events':>8s} {'ms/seq':>9s} {'AR step':>8s} {'spdup':>6s}")
    results = []
    for p in _points(a.sweep, a.quick):
        res = run_point(p, a.calibration, cpu, a.timeout)
        results.append(res)
        print(_fmt(res), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
