"""How the rank count changes the communication model (issue 9's report), from committed data only.

1. Held-out rank extrapolation: fit the 2-rank H200 collectives alone, carry them to 4 ranks by the ring
   factor, and compare with the measured 4-rank device times (CUDA-graph replay to 16 MB, eager above).
   (``all_reduce_one_shot`` / ``_two_shot``: the peer-to-peer all-reduce engines use for small TP messages.)
2. TP4 / TP8 decode iterations of qwen3-235b (EP) and llama-3.1-70b on H200: the tensor-parallel
   communication and the iteration total with 2-rank data only vs with 2- and 4-rank data.

    python scripts/collective_ranks.py
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd

from rlsim.catalog import GenerationParallelism, load_hardware, load_model
from rlsim.costmodel import IterationBatch, IterationCostModel, replica_layout
from rlsim.costmodel.calib_fit import collective_curves
from rlsim.costmodel.calib_timer import calibrated_timer

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    hw = load_hardware("h200-sxm")
    timer = calibrated_timer(hw, required=True)
    data = pd.read_csv(ROOT / "calibration" / "h200" / "collectives.csv")
    only2 = copy.copy(timer)  # the same timer, collectives fitted on the 2-rank rows alone
    only2.coll_fit = collective_curves(data[data["ranks"] == 2])

    print("## 1. 4-rank device time predicted from the 2-rank measurement (ring factor) vs measured\n")
    print("| op | messages | median error | max error | at 64 KB-1 MB | at >= 16 MB |")
    print("|---|---:|---:|---:|---:|---:|")
    four = data[data["ranks"] == 4]
    for op, grp in four.groupby("op"):
        g = pd.to_numeric(grp["time_graph_s"], errors="coerce").to_numpy(float)
        meas = np.where(np.isfinite(g), g, grp["time_s"].to_numpy(float))
        b = grp["bytes"].to_numpy(float)
        pred = only2._measured_collective_s(op, b, 4)  # noqa: SLF001  (this op's own curve, no engine choice)
        err = pred / meas - 1
        mid = (b >= 64 * 1024) & (b <= 2 ** 20)
        big = b >= 16 * 2 ** 20
        def med(mask):
            return f"{np.median(err[mask]):+.1%}" if mask.any() else "-"

        print(f"| {op} | {len(b)} | {np.median(err):+.1%} | {err[np.argmax(abs(err))]:+.1%} | {med(mid)} | {med(big)} |")

    print("\n## 2. Decode iterations on H200 (batch x context 4096), TP communication and total, ms\n")
    print("| model | TP | batch | comm, 2-rank data | comm, 2+4-rank data | total, 2-rank | total, 2+4-rank | change |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, ep in (("qwen3-235b", True), ("llama-3.1-70b", False)):
        m = load_model(name)
        for tp in (4, 8):
            layout = replica_layout(m, GenerationParallelism(tensor_parallel_size=tp, enable_expert_parallel=ep))
            for batch in (16, 64, 256):
                row = []
                for t in (only2, timer):
                    cm = IterationCostModel(m, hw, layout, t, dtype="bf16", method="none", draft=None)
                    br = cm.report(IterationBatch(n_decode=[batch], k=[0], decode_kv_tokens=[batch * 4096]))
                    row.append((float(br["tp_comm"][0]), float(br["total"][0])))
                (c2, t2), (c4, t4) = row
                print(f"| {m.name} | {tp} | {batch} | {c2*1e3:.2f} | {c4*1e3:.2f} | {t2*1e3:.2f} | {t4*1e3:.2f} | "
                      f"{t4/t2-1:+.1%} |")


if __name__ == "__main__":
    main()
