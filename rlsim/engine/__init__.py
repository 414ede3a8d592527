"""Stage 4: the rollout engine (continuous batching per generation replica, event simulation)."""

from .lengths import sample_lengths
from .replica import ReplicaConfig, ReplicaResult, ReplicaSim, simulate_replica
from .rollout import RolloutResult, assign_to_replicas, simulate_rollout

__all__ = ["ReplicaConfig", "ReplicaResult", "ReplicaSim", "RolloutResult", "assign_to_replicas", "sample_lengths",
           "simulate_replica", "simulate_rollout"]
