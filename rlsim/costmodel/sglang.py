"""SGLang 0.5.6's engine settings that depend on the GPU and the run (read from the sglang 0.5.6 wheel,
sglang/srt/server_args.py), for the ``sglang-*`` engine profiles."""

from __future__ import annotations

import numpy as np

GIB = float(1 << 30)


def gpu_memory_gib(hbm_capacity_bytes: float) -> float:
    return hbm_capacity_bytes / GIB


def cuda_graph_max_bs(table: dict[str, int], hbm_capacity_bytes: float, tp: int) -> int:
    """server_args.py:724-808: the largest captured batch by GPU memory class and TP (the profile's
    ``graphs.max_capture_batch``: the smallest class at least the GPU's memory)."""
    mem = gpu_memory_gib(hbm_capacity_bytes)
    side = "tp<4" if tp < 4 else "tp>=4"
    classes = sorted((int(k.split(":")[0]), v) for k, v in table.items() if k.endswith(":" + side))
    for limit, v in classes:
        if mem < limit:
            return int(v)
    return int(classes[-1][1])


def capture_batch_sizes(max_bs: int, speculative: bool, pool_size: int | None = None) -> np.ndarray:
    """server_args.py:870-899 (the captured batch sizes in requests) and cuda_graph_runner.py:189-209 (capped by
    the request pool, which is max_running_requests when that is set, and that size added)."""
    if speculative:
        bs = (list(range(1, 9)) + list(range(10, 33, 2)) + list(range(40, 65, 4)) + list(range(72, 257, 8))
              + list(range(272, max_bs + 1, 16)))
    else:
        bs = [1, 2, 4, 8, 12] + list(range(16, 257, 8)) + list(range(272, 512, 16)) + list(range(512, max_bs + 1, 32))
    bs = [b for b in bs if b <= max_bs]
    if pool_size is not None and max(bs) > pool_size:
        bs = [b for b in bs if b <= pool_size] + [pool_size]
    return np.asarray(sorted(set(bs)), dtype=float)


def chunked_prefill_size(hbm_capacity_bytes: float) -> int:
    """server_args.py:776-802: 8192 below 160 GiB (H100, H200), 16384 from 160 GiB (B200, GB200)."""
    return 8192 if gpu_memory_gib(hbm_capacity_bytes) < 160 else 16384
