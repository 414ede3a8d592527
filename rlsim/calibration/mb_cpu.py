"""Single-core CPU speed of a host, on work shaped like an inference engine's per-step Python.

The engine's host work (calibration/host/, vLLM 0.17.1's scheduler, model-runner bookkeeping and output
serialisation) was measured on one machine's CPU; the GPU launch costs (calibration/<gpu>/engine.csv) on the
lent GPU machine's host. To put both on one CPU, this script runs the same small benchmarks on each machine:
per-request object bookkeeping with dict and attribute access and block hashing (the scheduler), small numpy
array passes and ``.item()`` loops over a CPU torch tensor (the model runner's input preparation), and
serialisation of per-request outputs (msgpack / json). The ratio of medians (geometric mean over benchmarks)
rescales one machine's host times to the other.

    python -m rlsim.calibration.mb_cpu --out calibration/host/cpu_<machine>.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import time
from pathlib import Path


class _Req:
    __slots__ = ("rid", "tokens", "num_computed", "block_hashes", "status", "max_tokens", "spec")

    def __init__(self, rid: int):
        self.rid = rid
        self.tokens = list(range(512))
        self.num_computed = 512
        self.block_hashes = []
        self.status = 1
        self.max_tokens = 10**6
        self.spec = [1, 2, 3]


def bench_scheduler_like(n_req: int = 256) -> float:
    """Per request: token budget arithmetic, dict lookups, append, stop check, a block hash every 16 tokens."""
    reqs = {f"r{i}": _Req(i) for i in range(n_req)}
    ids = list(reqs)
    budget = 16384
    t0 = time.thread_time()
    for step in range(16):
        out = []
        for rid in ids:
            r = reqs[rid]
            n = 1 + len(r.spec)
            if budget - n < 0:
                continue
            r.tokens.append(step)
            r.num_computed += 1
            if len(r.tokens) % 16 == 0:
                r.block_hashes.append(hashlib.sha256(bytes(str(r.tokens[-16:]), "ascii")).digest())
            if r.tokens[-1] == -1 or len(r.tokens) > r.max_tokens:
                r.status = 2
            out.append((rid, r.tokens[-1], r.num_computed))
    return (time.thread_time() - t0) / 16


def bench_numpy_small(n: int = 256) -> float:
    import numpy as np

    a = np.arange(n, dtype=np.int32)
    b = np.ones(n, dtype=np.int64)
    t0 = time.thread_time()
    for _ in range(200):
        c = np.cumsum(b)
        d = np.repeat(a[:32], 8)
        e = a * 16 + c[:n] % 16
        f = np.concatenate([d, e])
        g = f[f > 3].sum()
        _ = int(g)
    return (time.thread_time() - t0) / 200


def bench_torch_item_loop(n: int = 256) -> float:
    try:
        import torch
    except ImportError:
        return float("nan")
    torch.set_num_threads(1)
    x = torch.arange(n, dtype=torch.int32)
    t0 = time.thread_time()
    for _ in range(20):
        s = [int(x[i].item()) + 1 for i in range(n)]
        y = torch.tensor(s, dtype=torch.int32)
        _ = y.sum().item()
    return (time.thread_time() - t0) / 20


def bench_serialise(n: int = 256) -> float:
    rows = [{"request_id": f"req-{i}", "new_token_ids": [i, i + 1], "logprobs": [[-0.5, -1.25]], "finish": None}
            for i in range(n)]
    try:
        import msgpack

        enc = msgpack.packb
    except ImportError:
        def enc(o):
            return json.dumps(o).encode()
    t0 = time.thread_time()
    for _ in range(50):
        _ = enc(rows)
    return (time.thread_time() - t0) / 50


BENCHES = {"scheduler_like": bench_scheduler_like, "numpy_small": bench_numpy_small,
           "torch_item_loop": bench_torch_item_loop, "serialise": bench_serialise}


def run(repeats: int = 15) -> dict:
    out = {}
    for name, fn in BENCHES.items():
        fn()  # warm-up
        ts = [fn() for _ in range(repeats)]
        out[name] = statistics.median(ts)
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def ratio(slow: dict, fast: dict) -> float:
    """Geometric mean over the benchmarks both ran of slow / fast."""
    import math

    rs = [slow[k] / fast[k] for k in slow if k in fast and slow[k] > 0 and fast[k] > 0
          and math.isfinite(slow[k]) and math.isfinite(fast[k])]
    return math.exp(sum(math.log(r) for r in rs) / len(rs)) if rs else float("nan")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    res = run()
    doc = {"cpu_model": _cpu_model(), "python": platform.python_version(), "machine": platform.machine(),
           "date": time.strftime("%Y-%m-%d"), "method": "median thread CPU time per call, single thread",
           "seconds": res}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc, indent=1))
