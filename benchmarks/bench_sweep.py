"""Sweep throughput: 1,000 full rl-zero-8b scenarios (5 k x 10 draft qualities x 20 seeds).

Each scenario is one whole `project()`: the autoregressive and the speculative RL step of the study's
RL-Zero workload (2048 sequences on 32 GB200, every replica simulated). Runs with an empty cache (a
fresh temporary directory), then once more from the cache (what resuming an interrupted sweep costs).

    python benchmarks/bench_sweep.py                      # local processes, all cores
    python benchmarks/bench_sweep.py --executor ray       # the same sweep on a local Ray instance
    python benchmarks/bench_sweep.py --workload rl-think-8b --seeds 4
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", default="rl-zero-8b")
    ap.add_argument("--k", default="1,2,3,4,5")
    ap.add_argument("--qualities", default="0.5,0.55,0.6,0.65,0.7,0.75,0.8,0.85,0.9,0.95")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--executor", default="process", choices=["process", "ray", "serial"])
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--address", default=None)
    ap.add_argument("--calibration", default="auto", help="auto (the default: calibrated tables when shipped) | roofline")
    a = ap.parse_args()
    import resource

    from rlsim import sweep

    ks = [int(x) for x in a.k.split(",")]
    qs = [float(x) for x in a.qualities.split(",")]
    n = len(ks) * len(qs) * a.seeds
    workers = a.workers or os.cpu_count()
    if a.executor == "ray":
        import ray

        t = time.perf_counter()
        ray.init(address=a.address, include_dashboard=False, log_to_driver=False,
                 **({} if a.address else {"num_cpus": workers}))
        print(f"ray.init: {time.perf_counter() - t:.1f} s (not counted below)")
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as cache:
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        s0 = resource.getrusage(resource.RUSAGE_SELF)
        t = time.perf_counter()
        df = sweep(workload=a.workload, k=ks, draft_quality=qs, seeds=a.seeds, executor=a.executor, workers=workers,
                   address=a.address, cache_dir=cache, progress=False, calibration=a.calibration)
        wall = time.perf_counter() - t
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        s1 = resource.getrusage(resource.RUSAGE_SELF)
        t = time.perf_counter()
        sweep(workload=a.workload, k=ks, draft_quality=qs, seeds=a.seeds, executor=a.executor, workers=workers,
              cache_dir=cache, progress=False, calibration=a.calibration)
        resume = time.perf_counter() - t
    load1 = os.getloadavg()[0]
    cpu = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) + (s1.ru_utime + s1.ru_stime - s0.ru_utime - s0.ru_stime)
    assert df.attrs["n_simulated"] == n, df.attrs
    best = df.loc[df["speedup_step"].idxmax()]
    print(f"{n} scenarios ({a.workload}, calibration {a.calibration}: {len(ks)} k x {len(qs)} qualities x {a.seeds} seeds), "
          f"executor {a.executor}, "
          f"{workers} workers on {os.cpu_count()} cores")
    print(f"  simulated: {wall:.1f} s wall, {n / wall:.1f} scenarios/s ({wall / n * workers * 1e3:.0f} ms per scenario "
          f"per worker)")
    if a.executor != "ray":  # Ray workers are not our children: their CPU time is not visible here
        print(f"  CPU time (workers + driver): {cpu:.0f} s = {cpu / n * 1e3:.0f} ms per scenario; on {workers} idle cores "
              f"that is ~{cpu / workers:.0f} s wall")
    print(f"  load average (1 min) before/after: {load0:.1f} / {load1:.1f} (other processes share these cores)")
    print(f"  from cache (resume): {resume:.2f} s")
    print(f"  {len(df)} grid points; best step speedup {best['speedup_step']:.2f}x "
          f"[{best['speedup_step_ci_lo']:.2f}, {best['speedup_step_ci_hi']:.2f}] at k={best['k']}, "
          f"quality {best['draft_quality']}")
    if a.executor == "ray":
        ray.shutdown()


if __name__ == "__main__":
    main()
