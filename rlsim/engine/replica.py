"""Continuous batching of one generation replica (a vLLM V1 engine), as a discrete-event simulation.

Policy (the same as the ground-truth harness in rlsim/calibration/harness and documented in
docs/architecture.md):
- sequences arrive (each at its arrival time) in a fixed order and wait in a FCFS queue;
- each iteration, every running sequence that is decoding contributes k+1 tokens (1 without
  speculation); the remaining ``max_num_batched_tokens`` budget goes to prefill chunks of
  admitted sequences, in admission order (chunked prefill mixed with decode);
- waiting sequences are admitted in order while fewer than ``max_num_seqs`` run and the free KV
  cache holds their whole prompt;
- a sequence whose prefill completes samples its first token in that iteration; then each round it
  advances ``accepted + 1`` tokens (capped at its response length) and leaves when done;
- if the running sequences' KV outgrows the cache, the most recently admitted one is preempted
  (vLLM V1 recompute): its KV is freed and it re-prefills prompt + generated tokens later.

Events are arrivals, admissions, prefill steps, finishes, preemptions, and (for async RL) weight
updates: a pause between iterations, or a drain (no admission until the running sequences finish).
Between two events the batch is a fixed set of decoding sequences whose KV grows each round, so the
whole stretch of iterations is costed in one vectorised call (``_decode_segment``); when nothing waits
the rest of the replica's decode is costed in one pass (``_drain``). The Python loop runs per event,
not per iteration, and the time of every iteration still depends on every sequence's own KV length.

:class:`ReplicaSim` is resumable (``run`` until some sequences finish, or until a time), so the RL
pipeline can interleave many replicas with the trainer; :func:`simulate_replica` is the one-shot form.
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
    # a draft tree (rlsim/speculation/trees.py): every round verifies ``verify_k`` speculative tokens per sequence
    # and advances by the accepted path + 1, whose distribution is ``acceptance`` (k = the tree's depth)
    verify_k: int | None = None

    def k(self, batch: int) -> int:
        if self.k_for_batch is None:
            return self.acceptance.k if self.verify_k is None else self.verify_k
        return int(self.k_for_batch(batch))

    def at(self, k: int) -> AcceptanceModel:
        m = self._cache.get(k)
        if m is None:
            m = self._cache[k] = self.acceptance if k == self.verify_k else self.acceptance.at_k(k)
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


def _append(st: dict, key: str, more: np.ndarray) -> None:
    """Append to ``st[key]`` through a buffer that doubles when full (amortised O(1) per element)."""
    buf = st.get(key + "_buf")
    n = st[key].size
    if buf is None or n + more.size > buf.size:
        buf = np.empty(max(2 * (n + more.size), 1024), st[key].dtype)
        buf[:n] = st[key]
        st[key + "_buf"] = buf
    buf[n: n + more.size] = more
    st[key] = buf[: n + more.size]


class _AdvanceStreams:
    """Per-sequence streams of round advances (accepted + 1), drawn up front per k.

    Rounds are i.i.d. given the policy, so drawing a sequence's future rounds up front is the same
    process as drawing them one at a time; it lets a stretch of decode find its first finisher with
    one ``searchsorted``. Layout per k: one flat array; sequence i owns ``slots_i`` entries (a leading
    0, then cumulative advances); ``flat`` adds ``i * big`` so that the whole array is sorted."""

    def __init__(self, policy: SpecPolicy, rng: np.random.Generator):
        self.policy, self.rng = policy, rng
        self.N = np.zeros(0, np.int64)
        self.streams: dict[int, dict] = {}

    def add_rows(self, N_new: np.ndarray) -> None:
        self.N = np.concatenate([self.N, np.asarray(N_new, np.int64)])

    def compact(self, finished: np.ndarray) -> None:
        """Free the streams of finished sequences (their rows become empty). Dropping whole rows keeps
        ``flat`` sorted, and running rows keep their pointers, so later lookups are unchanged."""
        for st in self.streams.values():
            n_rows = st["slots"].size
            dead = np.asarray(finished[:n_rows], bool) & (st["slots"] > 0)
            if not dead.any():
                continue
            keep_elem = ~np.repeat(dead, st["slots"])
            st["cum"] = st["cum"][keep_elem].copy()
            st["flat"] = st["flat"][keep_elem].copy()
            st["slots"] = np.where(dead, 0, st["slots"])
            st["start"] = np.concatenate([[0], np.cumsum(st["slots"])[:-1]]).astype(np.int64)
            st.pop("cum_buf", None)
            st.pop("flat_buf", None)

    def _rows(self, k: int, idx: np.ndarray, rounds: np.ndarray, before: np.ndarray):
        adv = np.asarray(self.policy.sample_rounds(self.rng, k, rounds, idx, before), np.int64)
        slots = rounds + 1
        start = np.concatenate([[0], np.cumsum(slots)[:-1]]).astype(np.int64)
        vals = np.zeros(int(slots.sum()), np.int64)
        mask = np.ones(vals.size, bool)
        mask[start] = False
        vals[mask] = adv
        g = np.cumsum(vals)
        return g - np.repeat(g[start], slots), start, slots

    BIG = np.int64(1) << 31  # row offset in ``flat``: larger than any sequence's token count

    def _flat(self, cum: np.ndarray, slots: np.ndarray, first_row: int) -> np.ndarray:
        return cum + np.repeat(np.arange(first_row, first_row + slots.size, dtype=np.int64) * self.BIG, slots)

    def _repack(self, st: dict) -> dict:
        st["big"] = int(self.BIG)
        st["flat"] = self._flat(st["cum"], st["slots"], 0)
        st.pop("flat_buf", None)
        st.pop("cum_buf", None)
        return st

    def _initial_rounds(self, k: int, N: np.ndarray) -> np.ndarray:
        al = self.policy.expected_advance(k)
        return np.minimum(N, np.ceil(N / al * 1.12).astype(np.int64) + 24)

    def get(self, k: int) -> dict:
        st = self.streams.get(k)
        n_rows = self.N.size
        if st is None:
            idx = np.arange(n_rows)
            cum, start, slots = self._rows(k, idx, self._initial_rounds(k, self.N), np.zeros(n_rows, np.int64))
            st = self.streams[k] = self._repack({"cum": cum, "start": start, "slots": slots,
                                                 "ptr": np.zeros(n_rows, np.int64)})
        elif st["slots"].size < n_rows:  # sequences added since the stream was drawn
            old = st["slots"].size
            idx = np.arange(old, n_rows)
            cum, start, slots = self._rows(k, idx, self._initial_rounds(k, self.N[old:]), np.zeros(idx.size, np.int64))
            st["start"] = np.concatenate([st["start"], start + st["cum"].size])
            _append(st, "flat", self._flat(cum, slots, old))
            _append(st, "cum", cum)
            st["slots"] = np.concatenate([st["slots"], slots])
            st["ptr"] = np.concatenate([st["ptr"], np.zeros(idx.size, np.int64)])
        return st

    def extend(self, k: int, rows: np.ndarray) -> None:
        """Append more rounds to some sequences (rare: one needed more rounds than drawn)."""
        st = self.streams[k]
        rows = np.unique(rows)
        parts, starts, pos = [], [], 0
        extra = {int(i): None for i in rows}
        last = st["cum"][st["start"] + st["slots"] - 1]
        add_rounds = np.maximum(st["slots"][rows] - 1, 16)
        cum_new, s_new, sl_new = self._rows(k, rows, add_rounds, last[rows])
        for j, i in enumerate(rows):
            extra[int(i)] = cum_new[s_new[j] + 1: s_new[j] + sl_new[j]] + last[i]
        for i in range(st["slots"].size):
            seg = st["cum"][st["start"][i]: st["start"][i] + st["slots"][i]]
            e = extra.get(i)
            if e is not None:
                seg = np.concatenate([seg, e])
            starts.append(pos)
            parts.append(seg)
            pos += seg.size
        st["cum"] = np.concatenate(parts)
        st["start"] = np.asarray(starts, np.int64)
        st["slots"] = np.asarray([p.size for p in parts], np.int64)
        self._repack(st)

    def locate(self, k: int, run: np.ndarray, rem: np.ndarray):
        """For running sequences: (stream, their round pointer, stream start, tokens before, rounds to finish)."""
        while True:
            st = self.get(k)
            r = st["ptr"][run]
            s0 = st["start"][run]
            base = st["cum"][s0 + r]
            col = np.searchsorted(st["flat"], run * st["big"] + base + rem, side="left") - s0
            short = col >= st["slots"][run]
            if not short.any():
                return st, r, s0, base, col - r
            self.extend(k, run[short])


class ReplicaSim:
    """One generation replica, resumable: add sequences (with arrival times), weight-update pauses,
    then ``run`` until given sequences finish or a time is reached."""

    def __init__(self, cost: IterationCostModel, policy: SpecPolicy, cfg: ReplicaConfig, rng: np.random.Generator,
                 start_time_s: float = 0.0, record_trace: bool = False):
        self.cost, self.policy, self.cfg, self.rng = cost, policy, cfg, rng
        self.t = float(start_time_s)
        self.start_time_s = float(start_time_s)
        z = lambda dt: np.zeros(0, dt)  # noqa: E731
        self.P, self.N, self.gen, self.need, self.pre = z(np.int64), z(np.int64), z(np.int64), z(np.int64), z(np.int64)
        self.status, self.admit_seq = z(np.int8), z(np.int64)
        self.finish, self.arrival, self.admit_time = z(float), z(float), z(float)
        self.queue: list[int] = []
        self.pauses: list[list[float]] = []  # [start_s, duration_s, applied]
        self.stamp = 0
        self.stats = dict(iterations=0, busy=0.0, rounds=0, tokens=0, accepted=0, spec_rounds=0, preempt=0,
                          prefill_time=0.0)
        self.trace: dict[str, list] | None = ({"t_end": [], "dt": [], "n_decode": [], "n_tokens": [], "k": []}
                                              if record_trace else None)
        self.streams = _AdvanceStreams(policy, rng)

    # ------------------------------------------------------------------ inputs
    def add(self, prompt_len, response_len, arrival_s: float | np.ndarray = 0.0) -> np.ndarray:
        P = np.asarray(prompt_len, np.int64)
        N = np.asarray(response_len, np.int64)
        if P.size and (N.min() < 1 or P.min() < 1):
            raise ValueError("prompt and response lengths must be >= 1")
        n0 = self.P.size
        idx = np.arange(n0, n0 + P.size)
        self.P = np.concatenate([self.P, P])
        self.N = np.concatenate([self.N, N])
        self.gen = np.concatenate([self.gen, np.zeros(P.size, np.int64)])
        self.need = np.concatenate([self.need, P])
        self.pre = np.concatenate([self.pre, np.zeros(P.size, np.int64)])
        self.status = np.concatenate([self.status, np.zeros(P.size, np.int8)])
        self.admit_seq = np.concatenate([self.admit_seq, np.full(P.size, -1, np.int64)])
        self.finish = np.concatenate([self.finish, np.full(P.size, np.nan)])
        self.admit_time = np.concatenate([self.admit_time, np.full(P.size, np.nan)])
        self.arrival = np.concatenate([self.arrival, np.broadcast_to(np.asarray(arrival_s, float), P.shape)])
        self.queue.extend(int(i) for i in idx)
        if n0:
            self.streams.compact(self.status[:n0] == DONE)
        self.streams.add_rows(N)
        return idx

    def add_pause(self, start_s: float, duration_s: float) -> None:
        """Generation stops between iterations at ``start_s`` for ``duration_s`` (an in-flight weight update)."""
        self.pauses.append([float(start_s), float(duration_s), False])

    # ------------------------------------------------------------------ state
    def _ctx(self, idx):
        return self.pre[idx] + self.gen[idx] - (self.need[idx] - self.P[idx])

    def kv_used(self) -> int:
        r = np.flatnonzero(self.status == RUNNING)
        pre, need = self.pre[r], self.need[r]
        return int((pre + np.where(pre >= need, self.gen[r] - (need - self.P[r]), 0)).sum())

    def running(self) -> np.ndarray:
        return np.flatnonzero(self.status == RUNNING)

    def done(self, idx) -> bool:
        return bool((self.status[idx] == DONE).all())

    def _next_pause(self) -> float:
        pending = [p[0] for p in self.pauses if not p[2]]
        return min(pending) if pending else np.inf

    def _apply_pauses(self) -> None:
        for p in self.pauses:
            if not p[2] and self.t >= p[0]:
                self.t = max(self.t, p[0]) + p[1]
                p[2] = True

    def _admit(self) -> None:
        if not self.queue:
            return
        n_running = int((self.status == RUNNING).sum())
        free = self.cfg.kv_capacity_tokens - self.kv_used()
        while self.queue and n_running < self.cfg.max_num_seqs:
            i = self.queue[0]
            if self.arrival[i] > self.t or self.need[i] > free:
                break
            self.queue.pop(0)
            self.status[i] = RUNNING
            self.admit_seq[i] = self.stamp
            if np.isnan(self.admit_time[i]):
                self.admit_time[i] = self.t
            self.stamp += 1
            free -= int(self.need[i])
            n_running += 1
        if n_running == 0 and self.queue and self.arrival[self.queue[0]] <= self.t:
            i = self.queue[0]
            raise ValueError(f"sequence of {self.need[i]} tokens cannot fit a KV cache of {self.cfg.kv_capacity_tokens} tokens")

    def _preempt(self) -> None:
        cap = self.cfg.kv_capacity_tokens
        while self.kv_used() > cap:
            r = self.running()
            if r.size <= 1:
                break
            victim = r[np.argmax(self.admit_seq[r])]
            self.status[victim] = WAITING
            self.need[victim] = self.P[victim] + self.gen[victim]
            self.pre[victim] = 0
            self.queue.insert(0, int(victim))
            self.stats["preempt"] += 1

    # ------------------------------------------------------------------ driver
    def run(self, targets: np.ndarray | None = None, t_stop: float = np.inf, admit: bool = True) -> None:
        """Advance until every sequence in ``targets`` has finished (``None``: until no work is left),
        or until the clock reaches ``t_stop`` (an iteration that starts before it runs to its end).
        ``admit=False`` admits nothing new (a drain before a weight update)."""
        while True:
            if targets is not None and self.done(targets):
                return
            self._apply_pauses()
            if self.t >= t_stop:
                return
            if admit:
                self._admit()
            run = self.running()
            waiting_future = [self.arrival[i] for i in self.queue if self.arrival[i] > self.t] if admit else []
            if run.size == 0:
                if waiting_future:
                    self.t = min(min(waiting_future), t_stop) if np.isfinite(t_stop) else min(waiting_future)
                    continue
                return
            t_limit = min(t_stop, self._next_pause(), min(waiting_future) if waiting_future else np.inf)
            prefilling = run[self.pre[run] < self.need[run]]
            arrived_waiting = admit and any(self.arrival[i] <= self.t for i in self.queue)
            if prefilling.size:
                self._mixed_step(run, prefilling)
            elif not arrived_waiting and self.policy.k_for_batch is None:
                self._drain(run, t_limit)
            else:
                self._decode_segment(run, t_limit)
            self._preempt()

    # ------------------------------------------------------------------ iterations
    def _record(self, ends, dts, n_decode, n_tokens, k):
        if self.trace is not None:
            self.trace["t_end"].append(ends); self.trace["dt"].append(dts); self.trace["n_decode"].append(n_decode)
            self.trace["n_tokens"].append(n_tokens); self.trace["k"].append(k)

    def _mixed_step(self, run, prefilling) -> None:
        """One iteration with prefill chunks (and the decoding sequences alongside)."""
        N, gen, need, pre = self.N, self.gen, self.need, self.pre
        dec = run[pre[run] >= need[run]]
        B = dec.size
        k = self.policy.k(B) if B else self.policy.k(0)
        q = k + 1
        budget = max(self.cfg.max_num_batched_tokens - B * q, 0)
        order = prefilling[np.argsort(self.admit_seq[prefilling], kind="stable")]
        remaining = need[order] - pre[order]
        before = np.concatenate([[0], np.cumsum(remaining)[:-1]])
        chunk = np.clip(budget - before, 0, remaining)
        if B == 0 and chunk.sum() == 0:  # a prompt longer than the budget still progresses
            chunk[0] = min(remaining[0], self.cfg.max_num_batched_tokens)
        offs = pre[order]
        done_pre = order[(offs + chunk) >= need[order]]
        dec_ctx = self._ctx(dec).sum() if B else 0
        batch = IterationBatch(
            n_decode=np.array([B]), k=np.array([k if B else 0]), decode_kv_tokens=np.array([dec_ctx]),
            n_prefill_tokens=np.array([chunk.sum()]), n_prefill_seqs=np.array([(chunk > 0).sum()]),
            prefill_kv_tokens=np.array([(offs + chunk)[chunk > 0].sum()]),
            prefill_qk_pairs=np.array([(chunk * offs + chunk * (chunk + 1) / 2).sum()]),
            n_prefill_done=np.array([done_pre.size]))
        dt = float(self.cost.iteration_time_s(batch)[0])
        self.t += dt
        st = self.stats
        st["iterations"] += 1
        st["busy"] += dt
        st["prefill_time"] += dt
        pre[order] += chunk
        if B:
            adv = np.asarray(self.policy.sample_rounds(self.rng, k, np.ones(B, np.int64), dec, gen[dec]), np.int64)
            take = np.minimum(adv, N[dec] - gen[dec])
            gen[dec] += take
            st["rounds"] += B
            st["tokens"] += int(take.sum())
            if k > 0:
                st["spec_rounds"] += B
                st["accepted"] += int((adv - 1).sum())
        gen[done_pre] += 1  # a completed prefill samples one token (a fresh one, or the next after recompute)
        st["tokens"] += done_pre.size
        fin = run[gen[run] >= N[run]]
        self.status[fin] = DONE
        self.finish[fin] = self.t
        self._record(np.array([self.t]), np.array([dt]), np.array([B]), np.array([B * q + chunk.sum()]),
                     np.array([k if B else 0]))

    def _cut(self, dts: np.ndarray, t_limit: float) -> int:
        """How many of these iterations start before ``t_limit`` (at least one: we are before it)."""
        if not np.isfinite(t_limit):
            return dts.size
        starts = self.t + np.concatenate([[0.0], np.cumsum(dts[:-1])])
        return max(int(np.searchsorted(starts, t_limit, side="left")), 1)

    def _drain(self, run, t_limit: float) -> None:
        """Nothing waits and nothing prefills: cost the rest of the replica's decode in one vectorised
        pass (the batch shrinks as sequences finish; each iteration's KV is the sum of the live sequences'
        own lengths), stopping early at ``t_limit`` or before the KV cache would overflow."""
        k = self.policy.k(run.size)
        ctx0 = self._ctx(run)
        rem = self.N[run] - self.gen[run]
        if k == 0:
            f = rem.copy()  # rounds to finish
        else:
            st, r, s0, base, f = self.streams.locate(k, run, rem)
            cum = st["cum"]
        f_all = f
        if np.isfinite(t_limit):
            # look about as far ahead as the next event (estimated from the current iteration's cost);
            # a short guess only costs another call, never correctness
            dt_now = float(self.cost.decode_segment_time_s(run.size, k, np.array([float(ctx0.sum())]))[0])
            horizon = int(1.5 * (t_limit - self.t) / max(dt_now, 1e-9)) + 8
            f = np.minimum(f, horizon)
        F = int(f.max())
        total = int(f.sum())
        n_live = run.size - np.cumsum(np.bincount(np.where(f_all <= F, f_all, F + 1), minlength=F + 2))[:F]
        if k == 0:  # every live sequence grows one token per iteration: closed form
            gone = np.where(f_all <= F, f_all, F + 1)
            live_ctx = ctx0.sum() - np.cumsum(np.bincount(gone, weights=ctx0, minlength=F + 2))[:F]
            kv = live_ctx + n_live * np.arange(F, dtype=float)
        else:
            offs = np.repeat(np.cumsum(f) - f, f)
            j_idx = np.arange(total, dtype=np.int64) - offs  # round index within each sequence's remaining rounds
            vals = cum[np.repeat(s0 + r, f) + j_idx] - np.repeat(base - ctx0, f)
            kv = np.bincount(j_idx, weights=vals, minlength=F)
        over = np.flatnonzero(kv + n_live * (k + 1) > self.cfg.kv_capacity_tokens)
        if over.size:  # stop before the iteration that would overflow (at least one iteration)
            F = max(int(over[0]), 1)
            kv, n_live = kv[:F], n_live[:F]
        dts = self.cost.decode_iterations_time_s(n_live, k, kv)
        F = min(F, self._cut(dts, t_limit))
        dts = dts[:F]
        ends = self.t + np.cumsum(dts)
        fin = f_all <= F
        steps = np.minimum(f_all, F)
        if k == 0:
            moved = steps.copy()
        else:
            moved = cum[s0 + r + steps] - base
            st["ptr"][run] = r + steps
            self.stats["spec_rounds"] += int(steps.sum())
            self.stats["accepted"] += int(moved.sum() - steps.sum())
        adv = np.minimum(moved, rem)
        self.gen[run] += adv
        self.status[run[fin]] = DONE
        self.finish[run[fin]] = ends[f_all[fin] - 1]
        st_ = self.stats
        st_["iterations"] += F
        st_["busy"] += float(dts.sum())
        st_["rounds"] += int(steps.sum())
        st_["tokens"] += int(adv.sum())
        self._record(ends, dts, n_live[:F], n_live[:F] * (k + 1), np.full(F, k))
        self.t = float(ends[-1])

    def _decode_segment(self, run, t_limit: float) -> None:
        """Iterations of pure decode until the next event (a finish, KV overflow, ``t_limit``)."""
        B = run.size
        k = self.policy.k(B)
        ctx0 = self._ctx(run)
        rem = self.N[run] - self.gen[run]
        free = self.cfg.kv_capacity_tokens - int(ctx0.sum())
        if k == 0:
            n = int(rem.min())
            if free < 0:
                n = 1
            elif free < B * n:  # KV overflow before the first finish: stop where it would overflow
                n = max(free // B, 1)
            kv = ctx0.sum() + B * np.arange(n, dtype=float)
        else:
            st, r, s0, base, f = self.streams.locate(k, run, rem)
            cum = st["cum"]
            n = int(f.min())
            idx = (s0 + r)[:, None] + np.arange(1, n + 1)
            grown = cum[idx].sum(axis=0) - base.sum()  # KV growth after each round
            if grown[-1] > free:
                n = max(int(np.flatnonzero(grown > free)[0]), 1)
            kv = ctx0.sum() + np.concatenate([[0], grown[: n - 1]])
        dts = self.cost.decode_segment_time_s(B, k, kv)
        n = min(n, self._cut(dts, t_limit))
        dts = dts[:n]
        if k == 0:
            moved = np.full(B, n, np.int64)
        else:
            moved = cum[s0 + r + n] - base
            st["ptr"][run] = r + n
            self.stats["spec_rounds"] += B * n
            self.stats["accepted"] += int(moved.sum()) - B * n
        adv = np.minimum(moved, rem)
        ends = self.t + np.cumsum(dts)
        self.t = float(ends[-1])
        self.gen[run] += adv
        self.stats["iterations"] += n
        self.stats["busy"] += float(dts.sum())
        self.stats["rounds"] += B * n
        self.stats["tokens"] += int(adv.sum())
        done = run[self.gen[run] >= self.N[run]]
        self.status[done] = DONE
        self.finish[done] = self.t
        self._record(ends, dts, np.full(n, B), np.full(n, B * (k + 1)), np.full(n, k))

    # ------------------------------------------------------------------ results
    def result(self, idx: np.ndarray | None = None) -> ReplicaResult:
        fin = self.finish if idx is None else self.finish[idx]
        end = float(np.nanmax(fin)) if fin.size and np.isfinite(fin).any() else self.start_time_s
        tr = None
        if self.trace is not None:
            tr = {k: np.concatenate([np.atleast_1d(np.asarray(x, dtype=float)) for x in v]) if v else np.zeros(0)
                  for k, v in self.trace.items()}
        s = self.stats
        return ReplicaResult(self.start_time_s, max(end, self.start_time_s), fin, s["iterations"], s["busy"], s["rounds"],
                             s["tokens"], s["accepted"], s["spec_rounds"], s["preempt"], s["prefill_time"], tr)


def simulate_replica(prompt_len: np.ndarray, response_len: np.ndarray, cost: IterationCostModel,
                     policy: SpecPolicy, cfg: ReplicaConfig, rng: np.random.Generator,
                     start_time_s: float = 0.0, record_trace: bool = False) -> ReplicaResult:
    """All sequences arrive at ``start_time_s``; run until every one has finished."""
    sim = ReplicaSim(cost, policy, cfg, rng, start_time_s, record_trace)
    sim.add(prompt_len, response_len, start_time_s)
    sim.run()
    return sim.result()
