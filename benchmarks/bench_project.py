"""Simulator speed: wall time of whole `rlsim project` processes (Python start-up included).

Prints median/min/max over repeats for (qwen3-8b, 32 GPUs) and (qwen3-235b, 2048 GPUs), both
decoding modes in one process. Run: python benchmarks/bench_project.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = {
    "qwen3-8b / 32 GPUs (rl-zero-8b)": ["project", "--workload", "rl-zero-8b", "--json"],
    "qwen3-235b / 2048 GPUs sync": ["project", "--model", "qwen3-235b", "--gpus", "2048", "--k", "3", "--lag", "0", "--json"],
    "qwen3-235b / 2048 GPUs lag 2": ["project", "--model", "qwen3-235b", "--gpus", "2048", "--k", "3", "--lag", "2", "--json"],
}


def time_case(args: list[str], repeats: int) -> list[float]:
    out = []
    cmd = [sys.executable, "-c", "from rlsim.cli import main; main()", *args]
    subprocess.run(cmd, capture_output=True)  # warm-up (file cache)
    for _ in range(repeats):
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True)
        out.append(time.perf_counter() - t)
        if r.returncode != 0:
            raise SystemExit(r.stderr.decode())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    print(f"{'case':40s} {'median s':>9s} {'min s':>7s} {'max s':>7s}")
    for name, args in CASES.items():
        try:
            ts = time_case(args, a.repeats)
        except SystemExit as e:
            print(f"{name:40s} failed: {str(e).strip().splitlines()[-1]}")
            continue
        print(f"{name:40s} {statistics.median(ts):9.2f} {min(ts):7.2f} {max(ts):7.2f}")


if __name__ == "__main__":
    main()
