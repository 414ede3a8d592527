"""Continuous batching of one generation replica (a vLLM V1 engine), as a discrete-event simulation.

Policy (the same as the ground-truth harness in rlsim/calibration/harness and documented in
docs/architecture.md):
- sequences arrive (at ``start_time_s``) in a fixed order and wait in a FCFS queue;
- each iteration, every running sequence that is decoding contributes k+1 tokens (1 without
  speculation); the remaining ``max_num_batched_tokens`` budget goes to prefill chunks of
  admitted sequences, in admission order (chunked prefill mixed with decode);
- waiting sequences are admitted in order while fewer than ``max_num_seqs`` run and the free KV
  cache holds their whole prompt;
- a sequence whose prefill completes samples its first token in that iteration; then each round it
  advances ``accepted + 1`` tokens (capped at its response length) and leaves when done;
- if the running sequences' KV outgrows the cache, the most recently admitted one is preempted
  (vLLM V1 recompute): its KV is freed and it re-prefills prompt + generated tokens later.

Events are admissions, prefill steps, finishes and preemptions. Between two events the batch is a
fixed set of decoding sequences whose KV grows each round, so the whole stretch of iterations is
costed in one vectorised call (``_decode_segment``): the Python loop runs per event, not per
iteration, and the time of every iteration still depends on every sequence's own KV length.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..costmodel import IterationBatch, IterationCostModel
from ..speculation import AcceptanceModel

WAITING, RUNNING, DONE = 0, 1, 2


@dataclass
class ReplicaConfig:
    max_num_batched_tokens: int
    max_num_seqs: int
    kv_capacity_tokens: int


@dataclass
class ReplicaResult:
    start_time_s: float
    end_time_s: float
    finish_time_s: np.ndarray  # per sequence (absolute)
    iterations: int
    busy_time_s: float
    rounds: int  # decode/verify sequence-rounds
    tokens_generated: int
    accepted_drafts: int  # drafts accepted over all sequence-rounds with k > 0
    spec_rounds: int  # sequence-rounds with k > 0
    preemptions: int
    prefill_time_s: float  # time of iterations that contained prefill
    trace: dict | None = None  # per-iteration arrays when requested

    @property
    def duration_s(self) -> float:
        return self.end_time_s - self.start_time_s


@dataclass
class SpecPolicy:
    """k per iteration as a function of the live decode batch size (vLLM's
    ``num_speculative_tokens_per_batch_size``), and the draft's acceptance at any k."""

    acceptance: AcceptanceModel
    k_for_batch: Callable[[int], int] | None = None
    _cache: dict = field(default_factory=dict)

    def k(self, batch: int) -> int:
        return self.acceptance.k if self.k_for_batch is None else int(self.k_for_batch(batch))

    def at(self, k: int) -> AcceptanceModel:
        m = self._cache.get(k)
        if m is None:
            m = self._cache[k] = self.acceptance.at_k(k)
        return m

    def expected_advance(self, k: int) -> float:
        """Mean tokens per round at k (sizes the pre-drawn streams)."""
        return self.at(k).acceptance_length

    def sample_rounds(self, rng: np.random.Generator, k: int, rounds: np.ndarray, seq_index: np.ndarray,
                      tokens_before: np.ndarray) -> np.ndarray:
        """Advances (accepted + 1) of the next ``rounds[i]`` rounds of each sequence ``seq_index[i]``,
        concatenated sequence after sequence (flat int array of length rounds.sum()).

        ``tokens_before[i]``: tokens the sequence had generated in this stream before these rounds.
        The default draws i.i.d. rounds from the draft's acceptance at k. Subclasses (acceptance that
        varies across sequences or with the position in the response) override this."""
        return self.at(k).sample_advance(rng, int(np.sum(rounds)))


class _AdvanceStreams:
    """Per-sequence streams of round advances (accepted + 1), drawn once per k for the whole replica.

    Rounds are i.i.d., so drawing a sequence's future rounds up front is the same process as drawing
    them one at a time; it lets a decode segment find its first finisher with one ``searchsorted``.
    Layout: one flat array; sequence i owns ``R_i + 1`` slots (a leading 0, then cumulative advances);
    ``flat`` adds ``i * big`` so that the whole array is sorted."""

    def __init__(self, policy: SpecPolicy, rng: np.random.Generator, N: np.ndarray):
        self.policy, self.rng, self.N = policy, rng, N
        self.S = len(N)
        self.streams: dict[int, list] = {}

    def _build(self, k: int, rounds: np.ndarray, prefix: list | None = None) -> list:
        before = np.zeros(self.S, np.int64) if prefix is None else prefix[0][prefix[1] + prefix[2] - 1]
        adv = np.asarray(self.policy.sample_rounds(self.rng, k, rounds, np.arange(self.S), before), np.int64)
        slots = rounds + 1
        start = np.concatenate([[0], np.cumsum(slots)[:-1]])
        vals = np.zeros(int(slots.sum()), np.int64)
        mask = np.ones(vals.size, bool)
        mask[start] = False
        vals[mask] = adv
        g = np.cumsum(vals)
        cum = g - np.repeat(g[start], slots)
        if prefix is not None:  # keep consumed rounds: old stream then new rounds on top of its last value
            old_cum, old_start, old_slots = prefix
            parts, new_start, pos = [], [], 0
            for i in range(self.S):
                o = old_cum[old_start[i]: old_start[i] + old_slots[i]]
                nw = cum[start[i] + 1: start[i] + slots[i]] + o[-1]
                new_start.append(pos)
                parts += [o, nw]
                pos += o.size + nw.size
            cum = np.concatenate(parts)
            start = np.asarray(new_start, np.int64)
            slots = old_slots + rounds
        big = int(cum.max()) + 1
        flat = cum + np.repeat(np.arange(self.S, dtype=np.int64) * big, slots)
        return [cum, flat, big, start, slots]

    def get(self, k: int):
        st = self.streams.get(k)
        if st is None:
            al = self.policy.expected_advance(k)
            rounds = np.minimum(self.N, np.ceil(self.N / al * 1.12).astype(np.int64) + 24)
            st = self.streams[k] = self._build(k, rounds) + [np.zeros(self.S, np.int64)]
        return st

    def extend(self, k: int) -> None:
        """Append more rounds (rare: a sequence needed more rounds than drawn)."""
        cum, _, _, start, slots, ptr = self.streams[k]
        self.streams[k] = self._build(k, np.maximum(slots - 1, 16), (cum, start, slots)) + [ptr]


def simulate_replica(prompt_len: np.ndarray, response_len: np.ndarray, cost: IterationCostModel,
                     policy: SpecPolicy, cfg: ReplicaConfig, rng: np.random.Generator,
                     start_time_s: float = 0.0, record_trace: bool = False) -> ReplicaResult:
    P = np.asarray(prompt_len, dtype=np.int64)
    N = np.asarray(response_len, dtype=np.int64)
    S = len(P)
    if S and (N.min() < 1 or P.min() < 1):
        raise ValueError("prompt and response lengths must be >= 1")
    gen = np.zeros(S, np.int64)  # tokens generated
    need = P.copy()  # tokens to prefill before decoding (prompt, or prompt+generated after preemption)
    pre = np.zeros(S, np.int64)  # tokens prefilled so far
    status = np.zeros(S, np.int8)
    admit_seq = np.full(S, -1, np.int64)  # admission stamp (larger = more recent)
    finish = np.full(S, np.nan)
    queue: list[int] = list(range(S))  # waiting, FCFS (preempted go to the front)
    t = start_time_s
    stats = dict(iterations=0, busy=0.0, rounds=0, tokens=0, accepted=0, spec_rounds=0, preempt=0, prefill_time=0.0)
    stamp = 0
    trace: dict[str, list] | None = {"t_end": [], "dt": [], "n_decode": [], "n_tokens": [], "k": []} if record_trace else None
    cap = cfg.kv_capacity_tokens
    streams = _AdvanceStreams(policy, rng, N)

    def kv_used() -> int:
        r = status == RUNNING
        return int((pre[r] + np.where(pre[r] >= need[r], gen[r] - (need[r] - P[r]), 0)).sum())

    def ctx(idx):
        # tokens a running sequence holds in KV: prefilled part + tokens generated since
        return pre[idx] + gen[idx] - (need[idx] - P[idx])

    while True:
        # ---------------------------------------------------------------- admission
        n_running = int((status == RUNNING).sum())
        if queue:
            free = cap - kv_used()
            admitted = []
            while queue and n_running < cfg.max_num_seqs:
                i = queue[0]
                if need[i] > free:
                    break
                queue.pop(0)
                status[i] = RUNNING
                admit_seq[i] = stamp
                stamp += 1
                free -= int(need[i])
                n_running += 1
                admitted.append(i)
            if n_running == 0 and queue:
                i = queue[0]
                raise ValueError(f"sequence of {need[i]} tokens cannot fit a KV cache of {cap} tokens")
        run = np.flatnonzero(status == RUNNING)
        if run.size == 0:
            break
        prefilling = run[pre[run] < need[run]]
        if not prefilling.size and not queue and policy.k_for_batch is None:
            t_drained = _drain(run, P, N, gen, need, pre, status, finish, t, cost, policy, streams, stats, trace, cap)
            if t_drained is not None:
                t = t_drained
                continue
        if prefilling.size:
            t = _mixed_step(run, prefilling, P, N, gen, need, pre, status, finish, admit_seq, t, cost, policy, cfg, rng,
                            stats, trace)
        else:
            t = _decode_segment(run, P, N, gen, need, pre, status, finish, t, cost, policy, streams, stats, trace, cap)
        # ---------------------------------------------------------------- preemption (recompute)
        while kv_used() > cap:
            r = np.flatnonzero(status == RUNNING)
            if r.size <= 1:
                break
            victim = r[np.argmax(admit_seq[r])]
            status[victim] = WAITING
            need[victim] = P[victim] + gen[victim]
            pre[victim] = 0
            queue.insert(0, int(victim))
            stats["preempt"] += 1

    end = float(np.nanmax(finish)) if S else start_time_s
    tr = None
    if trace is not None:
        tr = {k: np.concatenate([np.atleast_1d(np.asarray(x, dtype=float)) for x in v]) if v else np.zeros(0)
              for k, v in trace.items()}
    return ReplicaResult(start_time_s, max(end, start_time_s), finish, stats["iterations"], stats["busy"],
                         stats["rounds"], stats["tokens"], stats["accepted"], stats["spec_rounds"], stats["preempt"],
                         stats["prefill_time"], tr)


def _mixed_step(run, prefilling, P, N, gen, need, pre, status, finish, admit_seq, t, cost, policy, cfg, rng, stats, trace):
    """One iteration with prefill chunks (and the decoding sequences alongside)."""
    dec = run[pre[run] >= need[run]]
    B = dec.size
    k = policy.k(B) if B else policy.k(0)
    q = k + 1
    budget = max(cfg.max_num_batched_tokens - B * q, 0)
    order = prefilling[np.argsort(admit_seq[prefilling], kind="stable")]
    remaining = need[order] - pre[order]
    before = np.concatenate([[0], np.cumsum(remaining)[:-1]])
    chunk = np.clip(budget - before, 0, remaining)
    if B == 0 and chunk.sum() == 0:  # a prompt longer than the budget still progresses
        chunk[0] = min(remaining[0], cfg.max_num_batched_tokens)
    offs = pre[order]
    done_pre = order[(offs + chunk) >= need[order]]
    dec_ctx = (pre[dec] + gen[dec] - (need[dec] - P[dec])).sum() if B else 0
    batch = IterationBatch(
        n_decode=np.array([B]), k=np.array([k if B else 0]), decode_kv_tokens=np.array([dec_ctx]),
        n_prefill_tokens=np.array([chunk.sum()]), n_prefill_seqs=np.array([(chunk > 0).sum()]),
        prefill_kv_tokens=np.array([(offs + chunk)[chunk > 0].sum()]),
        prefill_qk_pairs=np.array([(chunk * offs + chunk * (chunk + 1) / 2).sum()]),
        n_prefill_done=np.array([done_pre.size]))
    dt = float(cost.iteration_time_s(batch)[0])
    t += dt
    stats["iterations"] += 1
    stats["busy"] += dt
    stats["prefill_time"] += dt
    pre[order] += chunk
    if B:
        adv = np.asarray(policy.sample_rounds(rng, k, np.ones(B, np.int64), dec, gen[dec]), np.int64)
        take = np.minimum(adv, N[dec] - gen[dec])
        gen[dec] += take
        stats["rounds"] += B
        stats["tokens"] += int(take.sum())
        if k > 0:
            stats["spec_rounds"] += B
            stats["accepted"] += int((adv - 1).sum())
    # sequences whose prefill completed sample one token (a fresh one, or the next after recompute)
    gen[done_pre] += 1
    stats["tokens"] += done_pre.size
    fin = run[gen[run] >= N[run]]
    status[fin] = DONE
    finish[fin] = t
    if trace is not None:
        trace["t_end"].append(t); trace["dt"].append(dt); trace["n_decode"].append(B)
        trace["n_tokens"].append(B * q + chunk.sum()); trace["k"].append(k if B else 0)
    return t


def _drain(run, P, N, gen, need, pre, status, finish, t, cost, policy, streams, stats, trace, cap):
    """Nothing waits and nothing prefills: the rest of the replica's decode is determined by the
    sequences' round streams. Cost every remaining iteration in one vectorised pass (the batch shrinks
    as sequences finish; each iteration's KV is the sum of the live sequences' own lengths).
    Returns None (and changes nothing) if the KV cache would overflow on the way."""
    k = policy.k(run.size)
    ctx0 = pre[run] + gen[run] - (need[run] - P[run])
    rem = N[run] - gen[run]
    if k == 0:
        f = rem.copy()  # rounds to finish
    else:
        while True:
            cum, flat, big, start, slots, ptr = streams.get(k)
            r = ptr[run]
            s0 = start[run]
            base = cum[s0 + r]
            col = np.searchsorted(flat, run * big + base + rem, side="left") - s0
            if (col < slots[run]).all():
                break
            streams.extend(k)
        f = col - r
    F = int(f.max())
    total = int(f.sum())
    ended = np.bincount(f, minlength=F + 1)
    n_live = run.size - np.cumsum(ended)[:F]
    if k == 0:  # every live sequence grows one token per iteration: closed form
        live_ctx = ctx0.sum() - np.cumsum(np.bincount(f, weights=ctx0, minlength=F + 1))[:F]
        kv = live_ctx + n_live * np.arange(F, dtype=float)
    else:
        offs = np.repeat(np.cumsum(f) - f, f)
        j_idx = np.arange(total, dtype=np.int64) - offs  # round index within each sequence's remaining rounds
        vals = cum[np.repeat(s0 + r, f) + j_idx] - np.repeat(base - ctx0, f)
        kv = np.bincount(j_idx, weights=vals, minlength=F)
    if float((kv + n_live * (k + 1)).max()) > cap:
        return None
    dts = cost.decode_iterations_time_s(n_live, k, kv)
    ends = t + np.cumsum(dts)
    finish[run] = ends[f - 1]
    gen[run] = N[run]
    status[run] = DONE
    stats["iterations"] += F
    stats["busy"] += float(dts.sum())
    stats["rounds"] += total
    stats["tokens"] += int(rem.sum())
    if k > 0:
        moved = cum[s0 + r + f] - base
        stats["spec_rounds"] += total
        stats["accepted"] += int(moved.sum()) - total
        ptr[run] = r + f
    if trace is not None:
        trace["t_end"].append(ends); trace["dt"].append(dts); trace["n_decode"].append(n_live)
        trace["n_tokens"].append(n_live * (k + 1)); trace["k"].append(np.full(F, k))
    return float(ends[-1])


def _decode_segment(run, P, N, gen, need, pre, status, finish, t, cost, policy, streams, stats, trace, cap):
    """Iterations of pure decode until the next event (a finish, KV overflow), costed in one call."""
    B = run.size
    k = policy.k(B)
    ctx0 = pre[run] + gen[run] - (need[run] - P[run])
    rem = N[run] - gen[run]
    free = cap - int(ctx0.sum())
    if k == 0:
        n = int(rem.min())
        if free < 0:
            n = 1
        elif free < B * n:  # KV overflow before the first finish: stop where it would overflow
            n = max(free // B, 1)
        j = np.arange(n, dtype=float)
        kv = ctx0.sum() + B * j
        adv_total = np.full(B, n, np.int64)
        accepted = 0
    else:
        while True:
            cum, flat, big, start, slots, ptr = streams.get(k)
            r = ptr[run]
            s0 = start[run]
            base = cum[s0 + r]
            pos = np.searchsorted(flat, run * big + base + rem, side="left")
            col = pos - s0  # slot where the sequence reaches its length
            if (col < slots[run]).all():
                break
            streams.extend(k)
        n = int((col - r).min())
        idx = (s0 + r)[:, None] + np.arange(1, n + 1)
        grown = cum[idx].sum(axis=0) - base.sum()  # KV growth after each round
        if grown[-1] > free:
            over = np.flatnonzero(grown > free)
            n = max(int(over[0]), 1)
        kv = ctx0.sum() + np.concatenate([[0], grown[: n - 1]])
        moved = cum[s0 + r + n] - base
        adv_total = np.minimum(moved, rem)
        accepted = int(moved.sum()) - B * n
        ptr[run] = r + n
    dts = cost.decode_segment_time_s(B, k, kv)
    ends = t + np.cumsum(dts)
    t_new = float(ends[-1])
    gen[run] += adv_total
    stats["iterations"] += n
    stats["busy"] += float(dts.sum())
    stats["rounds"] += B * n
    stats["tokens"] += int(adv_total.sum())
    if k > 0:
        stats["spec_rounds"] += B * n
        stats["accepted"] += accepted
    done = run[gen[run] >= N[run]]
    status[done] = DONE
    finish[done] = t_new
    if trace is not None:
        trace["t_end"].append(ends); trace["dt"].append(dts); trace["n_decode"].append(np.full(n, B))
        trace["n_tokens"].append(np.full(n, B * (k + 1))); trace["k"].append(np.full(n, k))
    return t_new
