"""The generation phase of one RL step: every replica runs its share of the step's sequences.

Replicas are independent during a synchronous rollout (each is its own vLLM engine), so each is
simulated with its own seeded random stream; generation ends when the last sequence of the step
finishes, so the long tail and the imbalance between replicas are part of the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..costmodel import IterationCostModel
from ..speculation.policy import SpecPolicy
from .pool import pool_eligible, simulate_pool
from .replica import ReplicaConfig, ReplicaResult, ReplicaSim, run_replicas


@dataclass
class RolloutResult:
    generation_time_s: float
    replica_end_s: np.ndarray
    replica_busy_s: np.ndarray
    finish_time_s: np.ndarray  # per sequence, in the step's order
    iterations_max: int
    iterations_mean: float
    tokens_generated: int
    rounds: int
    accepted_drafts: int
    spec_rounds: int
    preemptions: int
    prefill_time_s_max: float
    replicas: list[ReplicaResult] | None = None

    @property
    def realized_acceptance_length(self) -> float:
        return 1.0 + self.accepted_drafts / self.spec_rounds if self.spec_rounds else 1.0


def assign_to_replicas(n_seqs: int, n_replicas: int) -> list[np.ndarray]:
    """Contiguous shards, as NeMo-RL splits a batch over its vLLM workers (generations of one prompt
    stay together)."""
    return [a for a in np.array_split(np.arange(n_seqs), n_replicas)]


LOCKSTEP_SEQUENCES = 8192  # sequences simulated together at most (their pre-drawn streams are in memory at once)


def _groups(replicas: list[int], shards: list[np.ndarray]) -> list[list[int]]:
    """Consecutive groups of replicas holding about ``LOCKSTEP_SEQUENCES`` sequences each."""
    groups, cur, n = [], [], 0
    for r in replicas:
        cur.append(r)
        n += shards[r].size
        if n >= LOCKSTEP_SEQUENCES:
            groups.append(cur)
            cur, n = [], 0
    if cur:
        groups.append(cur)
    return groups


def simulate_rollout(prompt_len: np.ndarray, response_len: np.ndarray, n_replicas: int, cost: IterationCostModel,
                     policy: SpecPolicy, cfg: ReplicaConfig, seed: int, start_time_s: float = 0.0,
                     keep_replicas: bool = False, record_trace: bool = False, pooled: bool = True) -> RolloutResult:
    """``pooled=False``: every replica through ReplicaSim (the pooled path gives the same results; for tests)."""
    shards = assign_to_replicas(len(prompt_len), n_replicas)
    finish = np.full(len(prompt_len), np.nan)
    ends, busy, res = [], [], []
    tot = dict(it=[], tokens=0, rounds=0, acc=0, spec=0, pre=0, pf=0.0)
    results: dict[int, ReplicaResult] = {}
    live = [r for r, idx in enumerate(shards) if idx.size]
    # replicas whose whole shard is admitted at once and never preempted: simulated together on pooled arrays
    # (engine/pool.py), in groups that bound the memory of the pre-drawn round streams
    if pooled and not record_trace:
        easy = [r for r in live if pool_eligible(prompt_len[shards[r]], response_len[shards[r]], cost, policy, cfg)]
        for part in _groups(easy, shards):
            results.update(simulate_pool([(r, prompt_len[shards[r]], response_len[shards[r]]) for r in part], cost,
                                         policy, cfg, seed, start_time_s))
    # the others (and any the pooled path left): each its own ReplicaSim, stepped in lockstep (their cost-model
    # calls batched)
    for part in _groups([r for r in live if r not in results], shards):
        group = []
        for r in part:
            idx = shards[r]
            sim = ReplicaSim(cost, policy, cfg, np.random.default_rng([seed, r, 7]), start_time_s, record_trace)
            sim.add(prompt_len[idx], response_len[idx], start_time_s)
            group.append((r, sim))
        run_replicas([s for _, s in group])
        for r, s in group:
            results[r] = s.result()
    for r, idx in enumerate(shards):
        if idx.size == 0:
            ends.append(start_time_s); busy.append(0.0); tot["it"].append(0)
            continue
        rr = results[r]
        finish[idx] = rr.finish_time_s
        ends.append(rr.end_time_s); busy.append(rr.busy_time_s); tot["it"].append(rr.iterations)
        tot["tokens"] += rr.tokens_generated; tot["rounds"] += rr.rounds; tot["acc"] += rr.accepted_drafts
        tot["spec"] += rr.spec_rounds; tot["pre"] += rr.preemptions; tot["pf"] = max(tot["pf"], rr.prefill_time_s)
        if keep_replicas:
            res.append(rr)
    ends = np.asarray(ends)
    return RolloutResult(float(ends.max() - start_time_s), ends, np.asarray(busy), finish, int(max(tot["it"])),
                         float(np.mean(tot["it"])), tot["tokens"], tot["rounds"], tot["acc"], tot["spec"], tot["pre"],
                         tot["pf"], res if keep_replicas else None)
