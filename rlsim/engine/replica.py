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

from dataclasses import dataclass

import numpy as np

from ..costmodel import IterationCostModel
from ..costmodel.batched import decode_points_time_s, interpolation_points, mixed_steps_time_s, points_with_changes
from ..speculation.policy import SpecPolicy

WAITING, RUNNING, DONE = 0, 1, 2
# per-sequence arrays of a replica: (name, dtype, value of a new sequence; None: set by ``add``)
_SEQ_FIELDS = (("P", np.int64, None), ("N", np.int64, None), ("gen", np.int64, 0), ("need", np.int64, None),
               ("pre", np.int64, 0), ("status", np.int8, WAITING), ("admit_seq", np.int64, -1),
               ("finish", float, np.nan), ("admit_time", float, np.nan), ("arrival", float, None))


@dataclass
class ReplicaConfig:
    max_num_batched_tokens: int
    max_num_seqs: int
    kv_capacity_tokens: int
    # False: a step with prefill chunks carries no decoding sequences (SGLang runs prefill batches alone, first)
    mix_prefill_with_decode: bool = True


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


BIG = np.int64(1) << 31  # a stream row's offset unit: larger than any sequence's token count


def stream_rows(adv: np.ndarray, rounds: np.ndarray, row_ids: np.ndarray | None):
    """Round streams from drawn advances (``adv``: ``rounds[j]`` advances of row j, row after row): (entries, starts,
    slots), each row a leading entry then the cumulative advances, offset by ``row_ids[j] * BIG`` (None: no offset)."""
    rounds = np.asarray(rounds, np.int64)
    slots = rounds + 1
    start = np.zeros(slots.size, np.int64)
    np.cumsum(slots[:-1], out=start[1:])
    off = np.zeros(slots.size, np.int64) if row_ids is None else np.asarray(row_ids, np.int64) * BIG
    first = start - np.arange(slots.size)  # each row's first advance in ``adv``
    adv = np.asarray(adv)
    vals = np.empty(int(adv.size + slots.size), np.int64)
    # each advance at its place in its row; each row's leading entry the step from the previous row's last
    # entry to this row's offset; then one running sum gives every row: its offset, then its cumulative advances
    if slots.size * 64 < adv.size:  # long rows: placed row by row
        for s0, f0, r in zip(start.tolist(), first.tolist(), rounds.tolist()):
            vals[s0 + 1: s0 + 1 + r] = adv[f0: f0 + r]
    else:
        mask = np.ones(vals.size, bool)
        mask[start] = False
        vals[mask] = adv
    if slots.size:
        vals[start] = 0
        row_sum = np.add.reduceat(vals, start)  # each row's advances (its leading entry 0)
        vals[start] = off - np.concatenate([[0], off[:-1] + row_sum[:-1]])
    np.cumsum(vals, out=vals)
    return vals, start, slots


def initial_rounds(policy: SpecPolicy, k: int, N: np.ndarray) -> np.ndarray:
    """Rounds drawn up front for sequences of ``N`` tokens (a little more than expected; more are drawn if short)."""
    al = policy.expected_advance(k)
    return np.minimum(N, np.ceil(N / al * 1.12).astype(np.int64) + 24)


def prefill_chunks(remaining: np.ndarray, n_decode: int, k: int, max_num_batched_tokens: int) -> np.ndarray:
    """Prefill tokens of each prefilling sequence (in admission order, ``remaining`` prompt tokens each) in one step
    beside ``n_decode`` decoding sequences of k + 1 tokens: the budget left by the decoders, in order; a prompt
    longer than the whole budget still progresses when nothing decodes."""
    budget = max(max_num_batched_tokens - n_decode * (k + 1), 0)
    before = np.concatenate([[0], np.cumsum(remaining)[:-1]])
    chunk = np.clip(budget - before, 0, remaining)
    if n_decode == 0 and chunk.sum() == 0:
        chunk[0] = min(remaining[0], max_num_batched_tokens)
    return chunk


def mixed_fields(n_decode: int, k: int, decode_kv: int, chunk: np.ndarray, offs: np.ndarray, n_done: int) -> tuple:
    """One prefill step's cost request, ``costmodel.batched.MIXED_FIELDS`` (n_decode, k, decode KV, prefill tokens /
    sequences / KV / query-key pairs, prefills done); ``offs``: each chunk's tokens already prefilled."""
    return (n_decode, k if n_decode else 0, decode_kv, chunk.sum(), (chunk > 0).sum(), (offs + chunk)[chunk > 0].sum(),
            (chunk * offs + chunk * (chunk + 1) / 2).sum(), n_done)


def cut_iterations(t: float, csum: np.ndarray, t_limit: float) -> int:
    """How many iterations from time ``t`` (``csum``: the cumulative sum of their times) start before ``t_limit`` (at
    least one: we are before it). Iteration i starts at t + csum[i - 1] (t for the first), a non-decreasing
    sequence: bisected, each start computed as a float addition."""
    if not np.isfinite(t_limit):
        return csum.size
    lo, hi = 0, csum.size
    while lo < hi:
        mid = (lo + hi) // 2
        if t + (csum[mid - 1] if mid else 0.0) < t_limit:
            lo = mid + 1
        else:
            hi = mid
    return max(lo, 1)


class _AdvanceStreams:
    """Per-sequence streams of round advances (accepted + 1), drawn up front per k.

    Rounds are i.i.d. given the policy, so drawing a sequence's future rounds up front is the same
    process as drawing them one at a time; it lets a stretch of decode find its first finisher with
    one ``searchsorted``. Layout per k: one array ``flat``; sequence i owns ``slots_i`` entries, its
    cumulative advances after 0, 1, 2, ... rounds plus ``i * big``, so that the whole array is sorted.
    Callers use differences of entries of one row (tokens advanced between two rounds)."""

    def __init__(self, policy: SpecPolicy, rng: np.random.Generator):
        self.policy, self.rng = policy, rng
        self.N = np.zeros(0, np.int64)
        self.streams: dict[int, dict] = {}
        # rows of k whose rounds were drawn from this replica's random stream and finished on the pooled path
        # (engine/pool.py), after the rows listed in ``streams[k]``: listed as empty rows when the stream is next used
        self.finished_elsewhere: dict[int, int] = {}

    def rows_drawn(self, k: int) -> int:
        """Rows whose rounds at k have been drawn (the next draw starts after them)."""
        st = self.streams.get(k)
        return (0 if st is None else st["slots"].size) + self.finished_elsewhere.get(k, 0)

    def add_finished_rows(self, k: int, count: int) -> None:
        """``count`` more rows of k were drawn and finished elsewhere (the pooled path)."""
        self.finished_elsewhere[k] = self.finished_elsewhere.get(k, 0) + count

    def _settle(self, k: int) -> None:
        """List the rows finished elsewhere as empty rows of the stream at k (created if missing)."""
        count = self.finished_elsewhere.pop(k, 0)
        if not count:
            return
        st = self.streams.get(k)
        if st is None:
            z = np.zeros(0, np.int64)
            st = self.streams[k] = {"flat": z, "start": z, "slots": z, "ptr": z, "big": int(self.BIG), "tgt": z,
                                    "col": z}
        st["start"] = np.concatenate([st["start"], np.full(count, st["flat"].size, np.int64)])
        st["slots"] = np.concatenate([st["slots"], np.zeros(count, np.int64)])
        st["ptr"] = np.concatenate([st["ptr"], np.zeros(count, np.int64)])
        st["tgt"] = np.concatenate([st["tgt"], np.full(count, -1, np.int64)])
        st["col"] = np.concatenate([st["col"], np.zeros(count, np.int64)])

    def add_rows(self, N_new: np.ndarray) -> None:
        self.N = np.concatenate([self.N, np.asarray(N_new, np.int64)])

    def compact(self, finished: np.ndarray) -> None:
        """Free the streams of finished sequences (their rows become empty). Dropping whole rows keeps
        ``flat`` sorted, and running rows keep their pointers, so later lookups are unchanged."""
        for st in self.streams.values():
            n_rows = st["slots"].size
            dead = np.asarray(finished[:n_rows], bool) & (st["slots"] > 0)
            # freed once the finished rows hold half the stream (each entry is copied O(1) times on average; a
            # finished row left in place is never looked up)
            if 2 * int(st["slots"][dead].sum()) < st["flat"].size:
                continue
            kept = st["flat"][~np.repeat(dead, st["slots"])]
            buf = st.get("flat_buf")
            if buf is not None:  # compacted into the same buffer: the next append need not grow it
                buf[: kept.size] = kept
                kept = buf[: kept.size]
            st["flat"] = kept
            st["slots"] = np.where(dead, 0, st["slots"])
            st["start"] = np.concatenate([[0], np.cumsum(st["slots"])[:-1]]).astype(np.int64)

    BIG = BIG  # row offset in ``flat``

    def _rows(self, k: int, idx: np.ndarray, rounds: np.ndarray, before: np.ndarray, row_ids: np.ndarray | None):
        """Draw ``rounds[j]`` more rounds of sequences ``idx``: (entries, starts, slots), each row a leading entry
        then the cumulative advances, offset by ``row_ids[j] * big`` (None: no offset)."""
        return stream_rows(self.policy.sample_rounds(self.rng, k, rounds, idx, before), rounds, row_ids)

    def _initial_rounds(self, k: int, N: np.ndarray) -> np.ndarray:
        return initial_rounds(self.policy, k, N)

    def get(self, k: int) -> dict:
        self._settle(k)
        st = self.streams.get(k)
        n_rows = self.N.size
        if st is None:
            idx = np.arange(n_rows)
            flat, start, slots = self._rows(k, idx, self._initial_rounds(k, self.N), np.zeros(n_rows, np.int64), idx)
            st = self.streams[k] = {"flat": flat, "start": start, "slots": slots, "ptr": np.zeros(n_rows, np.int64),
                                    "big": int(self.BIG), "tgt": np.full(n_rows, -1, np.int64),
                                    "col": np.zeros(n_rows, np.int64)}
        elif st["slots"].size < n_rows:  # sequences added since the stream was drawn
            old = st["slots"].size
            idx = np.arange(old, n_rows)
            flat, start, slots = self._rows(k, idx, self._initial_rounds(k, self.N[old:]), np.zeros(idx.size, np.int64),
                                            idx)
            st["start"] = np.concatenate([st["start"], start + st["flat"].size])
            _append(st, "flat", flat)
            st["slots"] = np.concatenate([st["slots"], slots])
            st["ptr"] = np.concatenate([st["ptr"], np.zeros(idx.size, np.int64)])
            st["tgt"] = np.concatenate([st["tgt"], np.full(idx.size, -1, np.int64)])
            st["col"] = np.concatenate([st["col"], np.zeros(idx.size, np.int64)])
        return st

    def extend(self, k: int, rows: np.ndarray) -> None:
        """Append more rounds to some sequences (rare: one needed more rounds than drawn)."""
        st = self.streams[k]
        rows = np.unique(rows)
        flat, start, slots = st["flat"], st["start"], st["slots"]
        parts, starts, pos = [], [], 0
        extra = {int(i): None for i in rows}
        last = flat[start + slots - 1]  # row offset included
        last_tokens = last - np.arange(slots.size, dtype=np.int64) * self.BIG
        add_rounds = np.maximum(slots[rows] - 1, 16)
        cum_new, s_new, sl_new = self._rows(k, rows, add_rounds, last_tokens[rows], None)
        for j, i in enumerate(rows):
            extra[int(i)] = cum_new[s_new[j] + 1: s_new[j] + sl_new[j]] + last[i]
        for i in range(slots.size):
            seg = flat[start[i]: start[i] + slots[i]]
            e = extra.get(i)
            if e is not None:
                seg = np.concatenate([seg, e])
            starts.append(pos)
            parts.append(seg)
            pos += seg.size
        st["flat"] = np.concatenate(parts)
        st["start"] = np.asarray(starts, np.int64)
        st["slots"] = np.asarray([p.size for p in parts], np.int64)
        st["tgt"][:] = -1  # rows grew: look every finishing round up again
        st.pop("flat_buf", None)

    def locate(self, k: int, run: np.ndarray, rem: np.ndarray):
        """For running sequences: (stream, their round pointer, stream start, entry at the pointer, rounds to
        finish). Tokens advanced over the next j rounds: ``flat[start + ptr + j] - entry``."""
        while True:
            st = self.get(k)
            r = st["ptr"][run]
            s0 = st["start"][run]
            base = st["flat"][s0 + r]
            # the entry a sequence finishes at (its target) moves only when its tokens advance outside the stream
            # (a prefill's first token, a mixed step's round): the finishing round of an unchanged target is reused
            tgt = base + rem
            col = st["col"][run]
            miss = st["tgt"][run] != tgt
            if miss.any():
                col[miss] = np.searchsorted(st["flat"], tgt[miss], side="left") - s0[miss]
                st["col"][run[miss]] = col[miss]
                st["tgt"][run[miss]] = tgt[miss]
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
        # per-sequence state: views of buffers that grow by doubling (``add``)
        self._bufs = {name: np.zeros(0, dt) for name, dt, _ in _SEQ_FIELDS}
        for name, _, _ in _SEQ_FIELDS:
            setattr(self, name, self._bufs[name])
        self.queue: list[int] = []
        self._latest_arrival = -np.inf
        self.pauses: list[list[float]] = []  # [start_s, duration_s, applied]
        self.stamp = 0
        self.stats = dict(iterations=0, busy=0.0, rounds=0, tokens=0, accepted=0, spec_rounds=0, preempt=0,
                          prefill_time=0.0)
        self.trace: dict[str, list] | None = ({"t_end": [], "dt": [], "n_decode": [], "n_tokens": [], "k": []}
                                              if record_trace else None)
        self.streams = _AdvanceStreams(policy, rng)

    # ------------------------------------------------------------------ inputs
    def add(self, prompt_len, response_len, arrival_s: float | np.ndarray = 0.0, prefilled=None,
            first_token: bool = False) -> np.ndarray:
        """Queue sequences. ``prefilled``: tokens of each prompt whose KV is already there when it is admitted (a
        prefix cache hit, or KV received from a prefill server); ``first_token``: its first token was sampled
        elsewhere (a disaggregated prefill server), so this replica only decodes the rest."""
        P = np.asarray(prompt_len, np.int64)
        N = np.asarray(response_len, np.int64)
        if P.size and (N.min() < 1 or P.min() < 1):
            raise ValueError("prompt and response lengths must be >= 1")
        if prefilled is not None or first_token:
            idx = self.add(P, N, arrival_s)
            if prefilled is not None:
                self.pre[idx] = np.minimum(np.broadcast_to(np.asarray(prefilled, np.int64), P.shape), P)
            if first_token:
                self.gen[idx] = np.minimum(1, N)
                self.pre[idx] = P  # the whole prompt's KV arrives with the first token
                self.stats["tokens"] += int((N >= 1).sum())
            done = idx[self.gen[idx] >= N]
            if done.size:  # a one-token response ends at the prefill server
                self.status[done] = DONE
                self.finish[done] = self.arrival[done]
                self.queue = [i for i in self.queue if self.status[i] != DONE]
            return idx
        n0 = self.P.size
        n1 = n0 + P.size
        idx = np.arange(n0, n1)
        if n1 > self._bufs["P"].size:
            cap = max(2 * n1, 64)
            for name, dt, _ in _SEQ_FIELDS:
                buf = np.empty(cap, dt)
                buf[:n0] = getattr(self, name)
                self._bufs[name] = buf
        for name, _, fill in _SEQ_FIELDS:
            v = self._bufs[name][:n1]
            setattr(self, name, v)
            if fill is not None:
                v[n0:] = fill
        self.P[n0:] = P
        self.N[n0:] = N
        self.need[n0:] = P
        if np.ndim(arrival_s) == 0:  # one arrival time for all (a released batch)
            self.arrival[n0:] = float(arrival_s)
            if P.size:
                self._latest_arrival = max(self._latest_arrival, float(arrival_s))
        else:
            self.arrival[n0:] = np.broadcast_to(np.asarray(arrival_s, float), P.shape)
            if P.size:
                self._latest_arrival = max(self._latest_arrival, float(np.max(arrival_s)))
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
        return int(self._kv_of(np.flatnonzero(self.status == RUNNING)).sum())

    def _kv_of(self, r: np.ndarray) -> np.ndarray:
        """KV tokens each of these running sequences holds."""
        pre, need = self.pre[r], self.need[r]
        return pre + np.where(pre >= need, self.gen[r] - (need - self.P[r]), 0)

    def _queue_arrivals(self) -> tuple[np.ndarray, bool]:
        """(arrival times after now of queued sequences, whether a queued sequence has arrived)."""
        if self._latest_arrival <= self.t:  # every sequence ever added has arrived
            return _EMPTY, bool(self.queue)
        arr = self.arrival[np.asarray(self.queue, np.int64)]
        return arr[arr > self.t], bool((arr <= self.t).any())

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
        r = np.flatnonzero(self.status == RUNNING)
        n_running = r.size
        free = self.cfg.kv_capacity_tokens - int(self._kv_of(r).sum())
        # FCFS: the longest prefix of the queue that has arrived and whose prompts fit the free KV, one after another
        room = self.cfg.max_num_seqs - n_running
        if room > 0:
            q = np.asarray(self.queue[:room], np.int64)
            ok = (self.arrival[q] <= self.t) & (np.cumsum(self.need[q]) <= free)
            m = int(np.argmin(ok)) if not ok.all() else q.size
            if m:
                q = q[:m]
                del self.queue[:m]
                self.status[q] = RUNNING
                self.admit_seq[q] = self.stamp + np.arange(m)
                first = q[np.isnan(self.admit_time[q])]
                self.admit_time[first] = self.t
                self.stamp += m
                n_running += m
        if n_running == 0 and self.queue and self.arrival[self.queue[0]] <= self.t:
            i = self.queue[0]
            raise ValueError(f"sequence of {self.need[i]} tokens cannot fit a KV cache of {self.cfg.kv_capacity_tokens} tokens")

    def _preempt(self) -> None:
        cap = self.cfg.kv_capacity_tokens
        r = self.running()
        kv = self._kv_of(r)
        used = int(kv.sum())
        if used <= cap:
            return
        # most recently admitted first (admission stamps are distinct): the victims in order, each freeing its KV
        order = np.argsort(-self.admit_seq[r], kind="stable")
        for j in order[: max(r.size - 1, 0)]:
            victim = r[j]
            self.status[victim] = WAITING
            self.need[victim] = self.P[victim] + self.gen[victim]
            self.pre[victim] = 0
            self.queue.insert(0, int(victim))
            self.stats["preempt"] += 1
            used -= int(kv[j])
            if used <= cap:
                break

    # ------------------------------------------------------------------ driver
    def run(self, targets: np.ndarray | None = None, t_stop: float = np.inf, admit: bool = True) -> None:
        """Advance until every sequence in ``targets`` has finished (``None``: until no work is left),
        or until the clock reaches ``t_stop`` (an iteration that starts before it runs to its end).
        ``admit=False`` admits nothing new (a drain before a weight update)."""
        serve([(self.cost, self.steps(targets, t_stop, admit))])

    def steps(self, targets: np.ndarray | None = None, t_stop: float = np.inf, admit: bool = True):
        """``run`` as a generator: it yields each cost-model request of its events (``serve`` evaluates them,
        batched with other replicas' requests) and receives the seconds."""
        while True:
            if targets is not None and self.done(targets):
                return
            self._apply_pauses()
            if self.t >= t_stop:
                return
            if admit:
                self._admit()
            run = self.running()
            waiting_future, arrived_waiting = self._queue_arrivals() if admit else (_EMPTY, False)
            if run.size == 0:
                if waiting_future.size:
                    self.t = min(waiting_future.min(), t_stop) if np.isfinite(t_stop) else waiting_future.min()
                    continue
                return
            t_limit = min(t_stop, self._next_pause(), waiting_future.min() if waiting_future.size else np.inf)
            prefilling = run[self.pre[run] < self.need[run]]
            if prefilling.size:
                yield from self._mixed_step(run, prefilling)
            elif not arrived_waiting and self.policy.k_for_batch is None:
                if (yield from self._drain(run, t_limit)):
                    continue  # its sequences fit the cache throughout: nothing to preempt
            else:
                yield from self._decode_segment(run, t_limit)
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
        if not self.cfg.mix_prefill_with_decode:
            dec = dec[:0]  # the prefill batch runs alone; decoding sequences wait for the next step
        B = dec.size
        k = self.policy.k(B) if B else self.policy.k(0)
        q = k + 1
        order = prefilling[np.argsort(self.admit_seq[prefilling], kind="stable")]
        chunk = prefill_chunks(need[order] - pre[order], B, k, self.cfg.max_num_batched_tokens)
        offs = pre[order]
        done_pre = order[(offs + chunk) >= need[order]]
        dt = yield (MIXED, mixed_fields(B, k, self._ctx(dec).sum() if B else 0, chunk, offs, done_pre.size))
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

    def _drain(self, run, t_limit: float):
        """Nothing waits and nothing prefills: cost the rest of the replica's decode in one vectorised
        pass (the batch shrinks as sequences finish; each iteration's KV is the sum of the live sequences'
        own lengths), stopping early at ``t_limit`` or before the KV cache would overflow. Returns whether the
        running sequences' prompts and responses fit the cache together (then no overflow is possible)."""
        k = self.policy.k(run.size)
        ctx0 = self._ctx(run)
        rem = self.N[run] - self.gen[run]
        if k == 0:
            f = rem.copy()  # rounds to finish
        else:
            st, r, s0, base, f = self.streams.locate(k, run, rem)
            flat = st["flat"]
        f_all = f
        if np.isfinite(t_limit):
            # look about as far ahead as the next event (estimated from the current iteration's cost);
            # a short guess only costs another call, never correctness
            dt_now = float((yield (POINTS, k, np.array([run.size], np.int64), np.array([float(ctx0.sum())]), SEG))[0])
            horizon = int(1.5 * (t_limit - self.t) / max(dt_now, 1e-9)) + 8
            f = np.minimum(f, horizon)
        F = int(f.max())
        gone = np.where(f_all <= F, f_all, F + 1)  # a sequence is live for iterations j < gone
        # a live sequence's KV stays below its prompt + response: if even all of them fit, no iteration overflows
        # and only the iterations the cost model evaluates exactly need their batch and KV (the rest interpolated)
        fits = int(ctx0.sum()) + int(rem.sum()) + run.size * (k + 1) <= self.cfg.kv_capacity_tokens
        if fits:
            order = np.argsort(gone, kind="stable")
            gs = gone[order]
            # the batch shrinks after iteration j when a sequence leaves at j + 1 (1 <= j + 1 <= F - 1)
            pts = points_with_changes(F, np.unique(gs[gs <= F - 1]) - 1)
            at = np.arange(F) if pts is None else pts
            left = np.searchsorted(gs, at, side="right")  # sequences gone by each point
            n_at = run.size - left
            if k == 0:  # every live sequence grows one token per iteration: closed form
                gone_ctx = np.concatenate([[0], np.cumsum(ctx0[order])])[left]
                kv_at = (ctx0.sum() - gone_ctx).astype(float) + n_at * at.astype(float)
            else:
                kv_at = _live_kv(flat, s0 + r, base - ctx0, f, at)
            vals = yield (POINTS, k, n_at, kv_at, ITERS)
            dts = vals if pts is None else np.interp(np.arange(F, dtype=float), pts, vals)
            n_live = None
        else:
            n_live = run.size - np.cumsum(np.bincount(gone, minlength=F + 2))[:F]
            if k == 0:
                live_ctx = ctx0.sum() - np.cumsum(np.bincount(gone, weights=ctx0, minlength=F + 2))[:F]
                kv = live_ctx + n_live * np.arange(F, dtype=float)
            else:
                offs = np.repeat(np.cumsum(f) - f, f)
                j_idx = np.arange(int(f.sum()), dtype=np.int64) - offs  # round index within each sequence's rounds
                vals = flat[np.repeat(s0 + r, f) + j_idx] - np.repeat(base - ctx0, f)
                kv = np.bincount(j_idx, weights=vals, minlength=F)
            over = np.flatnonzero(kv + n_live * (k + 1) > self.cfg.kv_capacity_tokens)
            if over.size:  # stop before the iteration that would overflow (at least one iteration)
                F = max(int(over[0]), 1)
                kv, n_live = kv[:F], n_live[:F]
            dts = yield from _decode_iterations(k, n_live, kv)
        csum = np.cumsum(dts)
        F = min(F, cut_iterations(self.t, csum, t_limit))
        dts = dts[:F]
        fin = f_all <= F
        steps = np.minimum(f_all, F)
        if k == 0:
            moved = steps.copy()
        else:
            moved = flat[s0 + r + steps] - base
            st["ptr"][run] = r + steps
            self.stats["spec_rounds"] += int(steps.sum())
            self.stats["accepted"] += int(moved.sum() - steps.sum())
        adv = np.minimum(moved, rem)
        self.gen[run] += adv
        self.status[run[fin]] = DONE
        self.finish[run[fin]] = self.t + csum[f_all[fin] - 1]  # the end of each finisher's last iteration
        st_ = self.stats
        st_["iterations"] += F
        st_["busy"] += float(dts.sum())
        st_["rounds"] += int(steps.sum())
        st_["tokens"] += int(adv.sum())
        if self.trace is not None:
            if n_live is None:
                n_live = run.size - np.cumsum(np.bincount(gone, minlength=F + 2))[:F]
            self._record(self.t + csum[:F], dts, n_live[:F], n_live[:F] * (k + 1), np.full(F, k))
        self.t = float(self.t + csum[F - 1])
        return fits

    def _decode_segment(self, run, t_limit: float):
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
            flat = st["flat"]
            n = int(f.min())
            idx = (s0 + r)[:, None] + np.arange(1, n + 1)
            grown = (flat[idx] - base[:, None]).sum(axis=0)  # KV growth after each round
            if grown[-1] > free:
                n = max(int(np.flatnonzero(grown > free)[0]), 1)
            kv = ctx0.sum() + np.concatenate([[0], grown[: n - 1]])
        dts = yield (POINTS, k, np.full(np.size(kv), B, np.int64), np.asarray(kv, float), SEG)
        csum = np.cumsum(dts)
        n = min(n, cut_iterations(self.t, csum, t_limit))
        dts = dts[:n]
        if k == 0:
            moved = np.full(B, n, np.int64)
        else:
            moved = flat[s0 + r + n] - base
            st["ptr"][run] = r + n
            self.stats["spec_rounds"] += B * n
            self.stats["accepted"] += int(moved.sum()) - B * n
        adv = np.minimum(moved, rem)
        ends = self.t + csum[:n]
        self.t = float(ends[-1])
        self.gen[run] += adv
        self.stats["iterations"] += n
        self.stats["busy"] += float(dts.sum())
        self.stats["rounds"] += B * n
        self.stats["tokens"] += int(adv.sum())
        done = run[self.gen[run] >= self.N[run]]
        self.status[done] = DONE
        self.finish[done] = self.t
        if self.trace is not None:
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


# ---------------------------------------------------------------------------------------------- lockstep driver
_EMPTY = np.zeros(0)
# cost requests: one prefill step (MIXED, MIXED_FIELDS); pure-decode iterations (POINTS, k, batch, summed KV, SEG or
# ITERS: what a one-event call would be, decode_segment_time_s or decode_iterations_time_s at stride 1)
MIXED, POINTS = 0, 1
SEG, ITERS = 0, 1


def _live_kv(flat: np.ndarray, p0: np.ndarray, off: np.ndarray, f: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Summed KV of the live sequences at iterations ``pts`` of a drain: sequence i is live for j < f[i] with KV
    ``flat[p0[i] + j] - off[i]``. The same integers as summing every (sequence, iteration) pair, in
    O(live pairs at ``pts``)."""
    order = np.argsort(-f, kind="stable")
    n_at = np.searchsorted(-f[order], -pts, side="left")  # live sequences at each point (a prefix of ``order``)
    total = int(n_at.sum())
    first = np.cumsum(n_at) - n_at
    m = np.arange(total, dtype=np.int64) - np.repeat(first, n_at)  # position in ``order``
    entries = np.add.reduceat(flat[p0[order][m] + np.repeat(pts, n_at)], first)
    off_prefix = np.concatenate([[0], np.cumsum(off[order])])
    return (entries - off_prefix[n_at]).astype(float)


def _decode_iterations(k: int, n_live: np.ndarray, kv: np.ndarray):
    """``decode_iterations_time_s(n_live, k, kv)`` as a request: the iterations it costs exactly, interpolated."""
    n_live = np.asarray(n_live, np.int64)
    pts = interpolation_points(n_live)
    if pts is None:
        return (yield (POINTS, k, n_live, np.asarray(kv, float), ITERS))
    vals = yield (POINTS, k, n_live[pts], np.asarray(kv, float)[pts], ITERS)
    return np.interp(np.arange(n_live.size), pts, vals)


def _one_event(cost, req):
    """A request answered by the cost object's one-event methods (any object with IterationCostModel's interface)."""
    from ..costmodel import IterationBatch

    if req[0] == MIXED:
        return float(cost.iteration_time_s(IterationBatch(*[np.array([v]) for v in req[1]]))[0])
    _, k, B, kv, how = req
    if how == SEG:
        return np.asarray(cost.decode_segment_time_s(int(B[0]), k, kv), float)
    return np.asarray(cost.decode_iterations_time_s(B, k, kv, stride=1), float)


def _evaluate(batch: list) -> list:
    """Answer every (cost model, request) of one round; requests of one cost model (and k) are costed together."""
    out: list = [None] * len(batch)
    by: dict = {}
    for i, (cost, req) in enumerate(batch):
        if not isinstance(cost, IterationCostModel):  # a stand-in cost object: its own one-event methods
            out[i] = _one_event(cost, req)
            continue
        key = (id(cost), MIXED) if req[0] == MIXED else (id(cost), POINTS, req[1])
        by.setdefault(key, []).append(i)
    for key, idx in by.items():
        cost = batch[idx[0]][0]
        if key[1] == MIXED:
            dts = mixed_steps_time_s(cost, np.array([batch[i][1][1] for i in idx], float))
            for j, i in enumerate(idx):
                out[i] = float(dts[j])
        else:
            reqs = [batch[i][1] for i in idx]
            sizes = np.array([r[2].size for r in reqs], np.int64)
            dts = decode_points_time_s(cost, key[2], np.concatenate([r[2] for r in reqs]),
                                       np.concatenate([r[3] for r in reqs]), sizes)
            for i, part in zip(idx, np.split(dts, np.cumsum(sizes)[:-1])):
                out[i] = part
    return out


def serve(jobs: list) -> None:
    """Run generators of cost requests (``ReplicaSim.steps``) in lockstep: each round, every job's pending request
    is costed in one batched evaluation, then each job continues to its next. ``jobs``: (cost model, generator)."""
    active = []
    for cost, gen in jobs:
        try:
            active.append((cost, gen, next(gen)))
        except StopIteration:
            pass
    while active:
        answers = _evaluate([(cost, req) for cost, _, req in active])
        nxt = []
        for (cost, gen, _), ans in zip(active, answers):
            try:
                nxt.append((cost, gen, gen.send(ans)))
            except StopIteration:
                pass
        active = nxt


def run_replicas(sims: list, targets: list | None = None, t_stop: float = np.inf, admit: bool = True,
                 then_drain: bool = False) -> None:
    """``sim.run(targets[i], t_stop, admit)`` for every replica, stepped together: the replicas are independent
    (each its own engine and random stream), so the result is each one's own run; their cost-model calls are
    evaluated in batches. ``then_drain``: then every clock moved to at least ``t_stop`` and the running sequences
    run to their end, nothing admitted (the async pipeline's drain before a weight sync)."""
    serve([(sim.cost, sim.steps(None if targets is None else targets[i], t_stop, admit)) for i, sim in enumerate(sims)])
    if then_drain:
        for sim in sims:
            sim.t = max(sim.t, t_stop)
        run_replicas(sims, admit=False)


def simulate_replica(prompt_len: np.ndarray, response_len: np.ndarray, cost: IterationCostModel,
                     policy: SpecPolicy, cfg: ReplicaConfig, rng: np.random.Generator,
                     start_time_s: float = 0.0, record_trace: bool = False) -> ReplicaResult:
    """All sequences arrive at ``start_time_s``; run until every one has finished."""
    sim = ReplicaSim(cost, policy, cfg, rng, start_time_s, record_trace)
    sim.add(prompt_len, response_len, start_time_s)
    sim.run()
    return sim.result()
