"""Prefill/decode disaggregation and multi-turn (agentic) rollouts.

**Disaggregation** (``--prefill-gpus N``): N of the generation GPUs form prefill replicas (the decode replicas'
layout); every prompt is prefilled there (chunked, FCFS, each chunk of up to the engine's prefill budget priced by
the same cost model as a prefill-only step), and its KV moves to the decode replica that will generate the response,
over a link of ``kv_link_gbps`` per GPU (each GPU sends its own shard of the KV) and ``kv_link_latency_ms``. The
transfers of one prefill replica share its link, first come first served. When the KV moves is the engine's
(``EngineProfile.kv_transfer``, read from source): after the whole prefill (vLLM 0.17.1's NixlConnector), after
each prefill chunk, overlapping the next chunk's compute (SGLang 0.5.6), or layer by layer as computed (vLLM's
P2pNcclConnector: only the last layer's share is exposed). A decode replica admits the sequence when its KV has
arrived (KV capacity permitting), with the first token already sampled by the prefill server (SGLang
disaggregation/prefill.py:431-441), and only decodes.

**Multi-turn** (workload ``agentic`` or ``--turns``): a trajectory is ``turns`` prefill-decode rounds; after each
response a tool runs for ``tool_latency_s`` and returns ``tool_output_tokens``, which the next turn prefills.
Colocated engines keep the trajectory on its replica and reuse its KV through the prefix cache (only the tool's
tokens are prefilled; the cache is assumed to hold the context, vLLM and SGLang both cache prefixes by default).
Disaggregated: the prefill server has cached only what it prefilled itself, so each later turn prefills the
previous response and the tool output, and the whole context's KV moves again (SGLang sends from index 0,
schedule_batch.py:677).

Simplifications, said where results are reported: the prefill replicas' KV capacity and the decode side's link are
not limits (a prompt that does not fit one replica is refused at setup); multi-turn runs advance all replicas in
time slices no longer than the tool latency (at least 0.25 s), so a turn that follows a zero-latency tool may start
up to one slice late.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..costmodel import IterationBatch, IterationCostModel
from ..speculation.policy import SpecPolicy
from .replica import DONE, ReplicaConfig, ReplicaSim
from .rollout import RolloutResult, assign_to_replicas

MIN_SLICE_S = 0.25


def agentic_from(workload, options):
    """The trajectory's turns (an ``AgenticRollout``) from the workload's ``agentic`` section and the scenario's
    typed options ``turns`` / ``tool_latency_s`` / ``tool_output_tokens`` (which override it); None: single-turn."""
    from ..catalog import AgenticRollout, LengthDistribution

    base = workload.agentic
    opts = {k: getattr(options, k) for k in ("turns", "tool_latency_s", "tool_output_tokens")
            if getattr(options, k, None) is not None}
    if not opts:
        return base if base is not None and base.turns > 1 else None
    turns = int(opts.get("turns", base.turns if base is not None else 1))
    if turns == 1 and ("tool_latency_s" in opts or "tool_output_tokens" in opts):
        from ..errors import ConfigurationError

        flag = "--tool-latency-s" if "tool_latency_s" in opts else "--tool-output-tokens"
        raise ConfigurationError(f"{flag} shapes multi-turn rollouts, and the trajectories have one turn (it would be "
                                 "ignored); allowed: together with --turns N (N >= 2), or a workload with an agentic "
                                 "section")
    lat = float(opts.get("tool_latency_s", base.tool_latency_s if base is not None else 0.0))
    if "tool_output_tokens" in opts:
        t = float(opts["tool_output_tokens"])
        tool = LengthDistribution(distribution="fixed", median_tokens=t, min_tokens=1, max_tokens=max(int(round(t)), 1))
    elif base is not None:
        tool = base.tool_output_length
    else:
        tool = None
    if turns > 1 and tool is None:
        from ..errors import ConfigurationError

        raise ConfigurationError(f"--turns {turns}: each turn after the first prefills a tool's output; give its length "
                                 "(--tool-output-tokens N, or the workload's agentic.tool_output_length)")
    if turns == 1:
        return None
    return AgenticRollout(turns=turns, tool_latency_s=lat, tool_output_length=tool)


@dataclass
class DisaggConfig:
    """A prefill pool in front of the decode replicas."""

    prefill_gpus: int
    n_prefill_replicas: int
    link_bytes_per_s: float  # per GPU, one direction
    latency_s: float
    transfer: str  # after_prefill | per_chunk | layerwise
    chunk_tokens: int

    def to_dict(self) -> dict:
        return {"prefill_gpus": self.prefill_gpus, "prefill_replicas": self.n_prefill_replicas,
                "kv_link_gbps": self.link_bytes_per_s * 8 / 1e9, "kv_link_latency_ms": self.latency_s * 1e3,
                "kv_transfer": self.transfer, "prefill_chunk_tokens": self.chunk_tokens}


@dataclass
class AgenticConfig:
    turns: int
    tool_latency_s: float
    tool_output_tokens: np.ndarray | None = None  # per (trajectory, turn transition), sampled by the caller


@dataclass
class _Item:
    rid: int
    arrival: float
    total: int  # context tokens whose KV the decode side needs
    start: int  # tokens already cached on the prefill server (not recomputed)
    done: int = 0  # tokens prefilled so far (beyond ``start``)
    sent_first: bool = False


@dataclass
class PrefillServer:
    """One prefill replica: FCFS chunked prefill, and the KV transfers out of it over its link."""

    cost: IterationCostModel
    chunk_tokens: int
    kv_bytes_per_token_per_gpu: float
    cfg: DisaggConfig
    n_layers: int
    t: float = 0.0
    link_free: float = 0.0
    busy_s: float = 0.0
    iterations: int = 0
    queue: deque = field(default_factory=deque)
    ready: dict = field(default_factory=dict)  # rid -> time its KV is on the decode side
    prefill_end: dict = field(default_factory=dict)
    transfer_s: float = 0.0  # link-busy seconds

    def submit(self, rid: int, t: float, total_tokens: int, cached_tokens: int = 0) -> None:
        self.queue.append(_Item(rid, float(t), int(total_tokens), int(min(cached_tokens, total_tokens - 1))))

    def _send(self, nbytes: float, compute_start: float, compute_end: float) -> float:
        """Put ``nbytes`` on the link; returns when the last byte leaves."""
        bw = self.cfg.link_bytes_per_s
        dur = nbytes / bw
        mode = self.cfg.transfer
        if mode == "layerwise":  # each layer's KV leaves as that layer finishes: only the last layer's share trails
            s = max(compute_start, self.link_free)
            e = max(s + dur, compute_end + dur / max(self.n_layers, 1))
        else:  # after this chunk (per_chunk) or after the whole prefill (after_prefill: called once, at the end)
            s = max(compute_end, self.link_free)
            e = s + dur
        self.transfer_s += dur
        self.link_free = e
        return e

    def advance(self, t_stop: float = np.inf) -> None:
        """Run prefill iterations that start before ``t_stop``."""
        while self.queue:
            start = max(self.t, min(it.arrival for it in self.queue))
            if start >= t_stop:
                return
            budget = self.chunk_tokens
            chunks = []
            for it in self.queue:
                if it.arrival > start or budget <= 0:
                    continue
                left = it.total - it.start - it.done
                c = min(left, budget)
                if c <= 0:
                    continue
                chunks.append((it, c))
                budget -= c
            if not chunks:
                self.t = start
                return
            c_arr = np.array([c for _, c in chunks], float)
            offs = np.array([it.start + it.done for it, _ in chunks], float)
            completing = [it for it, c in chunks if it.start + it.done + c >= it.total]
            batch = IterationBatch(n_decode=[0.0], k=[0.0], decode_kv_tokens=[0.0], n_prefill_tokens=[c_arr.sum()],
                                   n_prefill_seqs=[float(len(chunks))], prefill_kv_tokens=[float((offs + c_arr).sum())],
                                   prefill_qk_pairs=[float((c_arr * offs + c_arr * (c_arr + 1) / 2).sum())],
                                   n_prefill_done=[float(len(completing))])
            dt = float(self.cost.iteration_time_s(batch)[0])
            end = start + dt
            self.t = end
            self.busy_s += dt
            self.iterations += 1
            per_tok = self.kv_bytes_per_token_per_gpu
            for it, c in chunks:
                it.done += c
                finished = it.start + it.done >= it.total
                if self.cfg.transfer == "after_prefill":
                    if finished:
                        self.ready[it.rid] = self._send(it.total * per_tok, start, end) + self.cfg.latency_s
                else:
                    tokens = c + (it.start if not it.sent_first else 0)  # the cached prefix goes with the first chunk
                    it.sent_first = True
                    e = self._send(tokens * per_tok, start, end)
                    if finished:
                        self.ready[it.rid] = e + self.cfg.latency_s
                if finished:
                    self.prefill_end[it.rid] = end
            self.queue = deque(it for it in self.queue if it.start + it.done < it.total)


def simulate_rollout_multi(prompt_len: np.ndarray, turn_responses: np.ndarray, n_replicas: int,
                           cost: IterationCostModel, policy: SpecPolicy, cfg: ReplicaConfig, seed: int,
                           disagg: DisaggConfig | None = None, agentic: AgenticConfig | None = None,
                           kv_bytes_per_token_per_gpu: float = 0.0, start_time_s: float = 0.0
                           ) -> tuple[RolloutResult, dict]:
    """A rollout with a prefill pool and / or several turns per trajectory.

    ``turn_responses``: [n, turns] response tokens per turn; ``agentic.tool_output_tokens``: [n, turns - 1]."""
    n = len(prompt_len)
    resp = np.asarray(turn_responses, np.int64).reshape(n, -1)
    turns = resp.shape[1]
    tool = (np.zeros((n, max(turns - 1, 0)), np.int64) if agentic is None or agentic.tool_output_tokens is None
            else np.asarray(agentic.tool_output_tokens, np.int64).reshape(n, max(turns - 1, 0)))
    tool_latency = 0.0 if agentic is None else float(agentic.tool_latency_s)
    shards = assign_to_replicas(n, n_replicas)
    replica_of = np.empty(n, np.int64)
    for r, idx in enumerate(shards):
        replica_of[idx] = r
    sims = [ReplicaSim(cost, policy, cfg, np.random.default_rng([seed, r, 7]), start_time_s) for r in range(n_replicas)]
    servers = []
    prefill_of = None
    if disagg is not None:
        n_layers = cost.model.num_hidden_layers
        servers = [PrefillServer(cost, disagg.chunk_tokens, kv_bytes_per_token_per_gpu, disagg, n_layers, start_time_s,
                                 start_time_s) for _ in range(disagg.n_prefill_replicas)]
        prefill_of = np.empty(n, np.int64)
        for p, idx in enumerate(assign_to_replicas(n, disagg.n_prefill_replicas)):
            prefill_of[idx] = p
    ctx = np.asarray(prompt_len, np.int64).copy()  # context before the current turn's response
    cached_on_prefill = np.zeros(n, np.int64)  # tokens the trajectory's prefill server holds in its prefix cache
    turn = np.zeros(n, np.int64)
    row: dict[tuple[int, int], tuple[int, int]] = {}  # (replica, local index) -> (trajectory, turn)
    finish = np.full(n, np.nan)
    stats = {"transfer_wait_s": [], "turns": 0}
    pending: list[tuple[float, int]] = [(start_time_s, i) for i in range(n)]  # (time the turn's input is ready, traj)
    submitted_prefill: dict[int, int] = {}  # request id -> trajectory
    next_rid = 0

    def launch(i: int, t: float) -> None:
        """Turn ``turn[i]`` of trajectory i becomes ready at t: to its prefill server, or to its replica."""
        nonlocal next_rid
        j = int(turn[i])
        if disagg is None:
            r = int(replica_of[i])
            prefilled = None if j == 0 else ctx[i] - tool[i, j - 1]  # the prefix cache holds all but the tool output
            li = sims[r].add([ctx[i]], [resp[i, j]], t, prefilled=None if prefilled is None else [prefilled])
            row[(r, int(li[0]))] = (i, j)
        else:
            rid = next_rid
            next_rid += 1
            servers[int(prefill_of[i])].submit(rid, t, int(ctx[i]), int(cached_on_prefill[i]))
            submitted_prefill[rid] = i
            cached_on_prefill[i] = ctx[i]

    def deliver() -> None:
        """KV that reached the decode side: the sequence joins its decode replica."""
        for srv in servers:
            for rid, ready in list(srv.ready.items()):
                i = submitted_prefill.pop(rid)
                j = int(turn[i])
                r = int(replica_of[i])
                li = sims[r].add([ctx[i]], [resp[i, j]], ready, first_token=True)
                row[(r, int(li[0]))] = (i, j)
                stats["transfer_wait_s"].append(ready - srv.prefill_end[rid])
                del srv.ready[rid]

    def collect() -> None:
        """Finished turns: the trajectory's next turn after the tool, or the trajectory ends."""
        for r, sim in enumerate(sims):
            done = np.flatnonzero(sim.status == DONE)
            for li in done:
                key = (r, int(li))
                if key not in row:
                    continue
                i, j = row.pop(key)
                f = float(sim.finish[li])
                stats["turns"] += 1
                if j + 1 < turns:
                    ctx[i] = ctx[i] + resp[i, j] + tool[i, j]
                    turn[i] = j + 1
                    pending.append((f + tool_latency, i))
                else:
                    finish[i] = f

    single = turns == 1
    slice_s = max(tool_latency, MIN_SLICE_S)
    t_now = start_time_s

    def busy() -> bool:
        return (any(sim.queue or (sim.status == 1).any() for sim in sims) or any(s.queue for s in servers)
                or any(s.ready for s in servers))

    while True:
        pending.sort()
        work = busy()
        if not work and not pending:
            break
        # single-turn: everything is known at the start, one pass; multi-turn: time slices (module docstring)
        t_next = np.inf if single else (t_now if work else pending[0][0]) + slice_s
        while pending and pending[0][0] < t_next:
            t_ready, i = pending.pop(0)
            launch(i, t_ready)
        for srv in servers:
            srv.advance(t_next)
        deliver()
        for sim in sims:
            if sim.queue or (sim.status == 1).any():
                sim.run(t_stop=t_next)
        collect()
        if not np.isfinite(t_next):
            continue
        t_now = t_next
    ends = np.array([float(np.nanmax(sim.finish)) if sim.finish.size and np.isfinite(sim.finish).any() else start_time_s
                     for sim in sims])
    gen_time = float(np.nanmax(finish) - start_time_s) if np.isfinite(finish).any() else 0.0
    st = [sim.stats for sim in sims]
    its = [s["iterations"] for s in st]
    ro = RolloutResult(gen_time, ends, np.array([s["busy"] for s in st]), finish, int(max(its)), float(np.mean(its)),
                       int(sum(s["tokens"] for s in st)), int(sum(s["rounds"] for s in st)),
                       int(sum(s["accepted"] for s in st)), int(sum(s["spec_rounds"] for s in st)),
                       int(sum(s["preempt"] for s in st)), float(max([s["prefill_time"] for s in st] + [0.0])))
    info: dict = {"turns_per_trajectory": turns, "tool_latency_s": tool_latency}
    if disagg is not None:
        w = np.asarray(stats["transfer_wait_s"]) if stats["transfer_wait_s"] else np.zeros(1)
        info.update(disagg.to_dict())
        info.update({
            "prefill_busy_s_max": float(max(s.busy_s for s in servers)),
            "prefill_busy_fraction": float(np.mean([s.busy_s for s in servers]) / gen_time) if gen_time > 0 else 0.0,
            "prefill_iterations_max": int(max(s.iterations for s in servers)),
            "kv_link_busy_s_max": float(max(s.transfer_s for s in servers)),
            "kv_transfer_after_prefill_s_mean": float(w.mean()), "kv_transfer_after_prefill_s_max": float(w.max()),
            "decode_replicas": n_replicas, "decode_preemptions": ro.preemptions,
            "kv_bytes_per_token_per_gpu": kv_bytes_per_token_per_gpu,
        })
    return ro, info


__all__ = ["AgenticConfig", "DisaggConfig", "PrefillServer", "simulate_rollout_multi"]
