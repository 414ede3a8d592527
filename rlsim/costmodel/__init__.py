"""Stage 2: cost model (per-op FLOPs/bytes -> seconds through a kernel timer)."""

from .iteration import HOST_OVERHEAD, IterationBatch, IterationCostModel, ReplicaLayout, replica_layout
from .memory import ReplicaMemory, replica_memory, weight_bytes_per_gpu
from .timer import BYTES, FIXED_LATENCY_S, ROOFLINE_EFFICIENCY, KernelTimer

__all__ = ["BYTES", "FIXED_LATENCY_S", "HOST_OVERHEAD", "IterationBatch", "IterationCostModel", "KernelTimer",
           "ROOFLINE_EFFICIENCY", "ReplicaLayout", "ReplicaMemory", "replica_layout", "replica_memory",
           "weight_bytes_per_gpu"]
