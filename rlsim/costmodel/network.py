"""Collectives that may span more than one NVLink domain (multi-node TP / EP / DP groups).

Inside one NVLink domain (``hardware.nvlink_domain_size`` GPUs: 8 on HGX H100/H200, 72 on GB200 NVL72)
a collective is the timer's (the measured NCCL / one-shot curves where calibrated). A group of ``ranks``
GPUs spread over ``N = ceil(ranks / domain)`` domains (``g = ranks / N`` GPUs in each, contiguous, as
NeMo-RL / vLLM / Megatron lay their groups out) is priced as NCCL's hierarchical algorithms run it, every
GPU with its own NIC (``scaleout_bandwidth_bytes_per_s`` per GPU per direction, the rail-optimised
DGX/NVL72 fabrics):

- all_reduce: reduce-scatter inside the domain (g ranks), all-reduce of the 1/g shard across the N
  domains over the NICs, all-gather inside the domain;
- reduce_scatter / all_gather: the intra-domain and inter-domain halves of the same;
- all_to_all: each rank sends (g-1)/ranks of its buffer over NVLink and (ranks-g)/ranks over its NIC,
  concurrently: the slower of the two;
- broadcast: the message crosses the NIC once (pipelined), then the domain.

The inter-domain part is the roofline collective over the scale-out link (``collective_latency_scaleout_s``
+ ring factor x bytes / NIC bandwidth). No multi-node machine was lent, so none of it is measured; the
terms are the catalogue's (hardware profile and ``timer.FIXED_LATENCY_S``).
"""

from __future__ import annotations

import math

import numpy as np

from ..catalog import HardwareProfile
from .timer import KernelTimer


def domains(hw: HardwareProfile, ranks: int) -> tuple[int, float]:
    """(NVLink domains a group of ``ranks`` contiguous GPUs spans, GPUs of the group in each)."""
    n = max(1, math.ceil(ranks / hw.nvlink_domain_size))
    return n, ranks / n


def spans_domains(hw: HardwareProfile, ranks: int) -> bool:
    return ranks > hw.nvlink_domain_size


def collective_s(timer: KernelTimer, hw: HardwareProfile, op: str, bytes_per_rank, ranks: int):
    """Seconds of one collective of ``ranks`` GPUs (``bytes_per_rank`` as in ``timer.ring_factor``)."""
    b = np.asarray(bytes_per_rank, dtype=float)
    nv = hw.nvlink_bandwidth_bytes_per_s
    if ranks <= 1:
        return np.zeros_like(b)
    if not spans_domains(hw, ranks):
        return timer.collective_s(op, b, ranks, nv, False)
    n, g = domains(hw, ranks)
    gi = max(int(round(g)), 1)
    so = hw.scaleout_bandwidth_bytes_per_s

    def intra(o, x, r):
        return timer.collective_s(o, x, r, nv, False) if r > 1 else np.zeros_like(np.asarray(x, float))

    def inter(o, x):
        return timer.collective_s(o, x, n, so, True)

    if op.startswith("all_reduce"):
        t = intra("reduce_scatter", b, gi) + inter("all_reduce", b / g) + intra("all_gather", b / g, gi)
    elif op == "reduce_scatter":
        t = intra("reduce_scatter", b, gi) + inter("reduce_scatter", b / g)
    elif op == "all_gather":
        t = inter("all_gather", b) + intra("all_gather", b * n, gi)
    elif op == "all_to_all":
        local = intra("all_to_all", b * g / ranks, gi)
        remote = timer.collective_s("broadcast", b * (ranks - g) / ranks, 2, so, True)  # one NIC pass, its latency
        t = np.maximum(local, remote)
    elif op == "broadcast":
        t = inter("broadcast", b) + intra("broadcast", b, gi)
    else:
        raise ValueError(f"unknown collective {op!r}")
    return np.where(b > 0, t, 0.0)


__all__ = ["collective_s", "domains", "spans_domains"]
