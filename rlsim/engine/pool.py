"""Replicas starting a fresh batch, simulated together on arrays over all their sequences.

:class:`~rlsim.engine.replica.ReplicaSim` runs one replica's events in Python (numpy on that replica's small
arrays), so a pool of thousands of replicas pays that per replica. Most replicas take one simple path: a batch
arrives at once with nothing else running, and it fits the KV cache and the sequence limit at once (prompts +
responses + the k + 1 slots of a round). Such a replica admits everything, prefills in a few mixed steps, then
decodes with no event but a time limit: no sequence waits, none is preempted. Its schedule in tokens does not
depend on time, so it can be laid out first and costed after. This module does that for all such replicas at once:

1. per replica (its own random stream, in the order ReplicaSim uses it): the prefill steps' chunks and the
   advances of their decoding sequences, then the round streams of the decode;
2. for all replicas together: each sequence's rounds to finish (one ``searchsorted`` over the running sum of all
   pooled rounds), the batch and summed KV at the iterations the cost model evaluates (``_drain``'s interpolation
   points), each round of cost requests in one call, every iteration's seconds interpolated in one call;
3. per replica: its clock, cut at a time limit as ReplicaSim cuts it, finish times and counters.

``simulate_pool``: a synchronous rollout's shards, run to the end. ``run_replicas_pooled``: the async pipeline's
runs of resumable ReplicaSims (to a batch's targets; to the trainer's end, then the drain before a weight sync),
their state written back as ReplicaSim leaves it. The results are ReplicaSim's, bit for bit (the same draws, the
same cost-model calls per replica, the same floating-point operations in the same order; tests/test_pool.py). A
replica off this path (it does not fit, something running or queued from before, a pause, an adaptive k,
acceptance varying by sequence, a trace, a sequence short of drawn rounds, targets done within the prefill) runs in
ReplicaSim, its random stream as it was."""

from __future__ import annotations

import numpy as np

from ..costmodel import IterationCostModel
from ..costmodel.batched import DECODE_STRIDE, decode_points_time_s, mixed_steps_time_s
from ..speculation.policy import SpecPolicy
from .replica import DONE, ReplicaConfig, ReplicaResult, cut_iterations, initial_rounds, mixed_fields, prefill_chunks


def pool_eligible(P: np.ndarray, N: np.ndarray, cost, policy: SpecPolicy, cfg: ReplicaConfig) -> bool:
    """Whether a replica whose sequences (all arriving at once) have prompts ``P`` and responses ``N`` takes the
    simple path: everything admitted at once and nothing ever preempted (see the module's docstring)."""
    if (not isinstance(cost, IterationCostModel) or policy.k_for_batch is not None or not cfg.mix_prefill_with_decode
            or type(policy).sample_rounds is not SpecPolicy.sample_rounds):
        return False  # (acceptance varying by sequence: its streams run short often; ReplicaSim extends them)
    n = P.size
    k = policy.k(n)
    return 0 < n <= cfg.max_num_seqs and int(P.sum()) + int(N.sum()) + n * (k + 1) <= cfg.kv_capacity_tokens


def _prefill_steps(P: np.ndarray, N: np.ndarray, policy: SpecPolicy, cfg: ReplicaConfig, rng: np.random.Generator,
                   first_row: int = 0):
    """ReplicaSim's prefill steps (``_mixed_step``) for a batch admitted at once (admission order = index order; its
    rows start at ``first_row`` of the replica), one after another: (MIXED_FIELDS rows, finishers per step, tokens
    generated, rounds, accepted, spec rounds)."""
    n = P.size
    pre = np.zeros(n, np.int64)
    gen = np.zeros(n, np.int64)
    live = np.ones(n, bool)
    rows, fins = [], []
    tokens = rounds = accepted = spec_rounds = 0
    while True:
        run = np.flatnonzero(live)
        pref = pre[run] < P[run]
        if not pref.any():
            break
        prefilling = run[pref]
        dec = run[~pref]
        B = dec.size
        k = policy.k(B) if B else policy.k(0)
        chunk = prefill_chunks(P[prefilling] - pre[prefilling], B, k, cfg.max_num_batched_tokens)
        offs = pre[prefilling]
        done_pre = prefilling[(offs + chunk) >= P[prefilling]]
        rows.append(mixed_fields(B, k, (P[dec] + gen[dec]).sum() if B else 0, chunk, offs, done_pre.size))
        pre[prefilling] += chunk
        if B:
            adv = np.asarray(policy.sample_rounds(rng, k, np.ones(B, np.int64), dec + first_row, gen[dec]), np.int64)
            take = np.minimum(adv, N[dec] - gen[dec])
            gen[dec] += take
            rounds += B
            tokens += int(take.sum())
            if k > 0:
                spec_rounds += B
                accepted += int((adv - 1).sum())
        gen[done_pre] += 1
        tokens += done_pre.size
        fin = run[gen[run] >= N[run]]
        live[fin] = False
        fins.append(fin)
    return rows, fins, gen, live, (tokens, rounds, accepted, spec_rounds)


class _Prefill:
    """The prefill steps of replicas admitting a batch at once (ReplicaSim's ``_mixed_step``s), for all of them: the
    token schedule (a batch whose prompts fit one step's budget prefills in one step with no decoding sequence and no
    draw, computed for all such replicas at once; the others step by step, drawing from their own random streams),
    then every step's seconds in one cost-model call."""

    def __init__(self, P, N, n, seq_off, policy, cfg, cost, rngs, first_rows):
        R = n.size
        sumP = np.add.reduceat(P, seq_off[:-1])
        self.one = sumP <= cfg.max_num_batched_tokens
        self.gen = np.ones(P.size, np.int64)  # one-step batches: every sequence has its first token
        self.live = N > 1
        rows = np.zeros((R, 8))  # the one-step batches' MIXED_FIELDS rows
        rows[:, 3] = sumP
        rows[:, 4] = n
        rows[:, 5] = sumP
        rows[:, 6] = np.add.reduceat(P * (P + 1) / 2, seq_off[:-1])  # query-key pairs of whole prompts (exact)
        rows[:, 7] = n
        self.steps: list = [None] * R  # a many-step batch: (rows, finishers per step)
        self.stats = np.zeros((R, 4), np.int64)  # tokens, rounds, accepted, spec rounds of the prefill steps
        self.stats[:, 0] = n
        for i in np.flatnonzero(~self.one):
            lo, hi = seq_off[i], seq_off[i + 1]
            rws, fins, g, lv, st = _prefill_steps(P[lo:hi], N[lo:hi], policy, cfg, rngs[i], first_rows[i])
            self.steps[i] = (rws, fins)
            self.gen[lo:hi] = g
            self.live[lo:hi] = lv
            self.stats[i] = st
        seq_rows, n_steps = [], np.ones(R, np.int64)
        for i in range(R):
            if self.steps[i] is None:
                seq_rows.append(rows[i: i + 1])
            else:
                seq_rows.append(np.array(self.steps[i][0], float).reshape(-1, 8))
                n_steps[i] = len(self.steps[i][0])
        self.dt = mixed_steps_time_s(cost, np.concatenate(seq_rows)).tolist()
        self.step_off = np.concatenate([[0], np.cumsum(n_steps)]).tolist()
        self.one_fin = ~self.live & np.repeat(self.one, n)  # finished at a one-step prefill (one-token responses)
        self.seq_off = seq_off

    def walk(self, i: int, t: float, st: dict, finish: np.ndarray) -> float:
        """Replica i's clock through its prefill steps from ``t``, its counters ``st`` added as ReplicaSim adds them
        (the same floating-point sums in the same order), its finishers' times into ``finish``."""
        lo = self.seq_off[i]
        fins = self.steps[i][1] if self.steps[i] is not None else [np.flatnonzero(self.one_fin[lo:self.seq_off[i + 1]])]
        for j, fin in enumerate(fins):
            dt = self.dt[self.step_off[i] + j]
            t += dt
            st["iterations"] += 1
            st["busy"] += dt
            st["prefill_time"] += dt
            finish[lo + fin] = t
        tok, rnd, acc, spr = (int(x) for x in self.stats[i])
        st["tokens"] += tok
        st["rounds"] += rnd
        st["accepted"] += acc
        st["spec_rounds"] += spr
        return t


def simulate_pool(shards: list[tuple[int, np.ndarray, np.ndarray]], cost: IterationCostModel, policy: SpecPolicy,
                  cfg: ReplicaConfig, seed: int, start_time_s: float) -> dict[int, ReplicaResult]:
    """Replicas ``(r, prompts, responses)`` (each ``pool_eligible``), all sequences arriving at ``start_time_s``, run
    to the end. Returns {r: result} for every replica it could simulate; a replica missing from the result needs
    ReplicaSim (one of its sequences needs more rounds than drawn up front)."""
    R = len(shards)
    ids = [r for r, _, _ in shards]
    n = np.array([len(p) for _, p, _ in shards], np.int64)
    seq_off = np.concatenate([[0], np.cumsum(n)])
    P = np.concatenate([np.asarray(p, np.int64) for _, p, _ in shards])
    N = np.concatenate([np.asarray(x, np.int64) for _, _, x in shards])
    t0 = float(start_time_s)
    K = policy.k(1)  # one k (no batch-size schedule on this path)

    # ---- phase 1: prefill steps (their draws first), then the decode's round streams
    rngs = [np.random.default_rng([seed, r, 7]) for r in ids]
    pf = _Prefill(P, N, n, seq_off, policy, cfg, cost, rngs, [0] * R)
    gen, live = pf.gen, pf.live
    # the decode's round streams: every row of a replica, drawn from its stream after its prefill steps' draws
    run = np.flatnonzero(live)
    rep_of = np.repeat(np.arange(R), n)
    decoding = np.bincount(rep_of[run], minlength=R) > 0
    if K > 0 and run.size:
        rounds = np.where(decoding[rep_of], initial_rounds(policy, K, N), 0)  # (nothing left to decode: no draw)
        C, start = _streams(policy, K, rounds, np.add.reduceat(rounds, seq_off[:-1]), rngs)

    # ---- phase 2: each sequence's rounds to finish (one searchsorted); a replica with a sequence short of drawn
    # rounds is left to ReplicaSim (it draws more)
    good = np.ones(R, bool)
    tgt_col = np.zeros(P.size, np.int64)
    if K > 0 and run.size:
        tgt_col[run] = np.searchsorted(C, (C[start[run]] + (N - gen)[run]).astype(C.dtype), side="left") - start[run]
        good[rep_of[run[tgt_col[run] > rounds[run]]]] = False

    # ---- phase 3: each replica's clock through its prefill steps, then the decode of all of them
    finish = np.full(P.size, np.nan)
    stats = [dict(iterations=0, busy=0.0, prefill_time=0.0, tokens=0, rounds=0, accepted=0, spec_rounds=0)
             for _ in range(R)]
    t = [pf.walk(i, t0, stats[i], finish) for i in range(R)]
    streams = (C, start, tgt_col) if K > 0 and run.size else None
    _decode(P, N, gen, live, rep_of, seq_off, good, decoding & good, K, cost, streams, t, stats, finish, np.inf, False)
    out: dict[int, ReplicaResult] = {}
    for i in np.flatnonzero(good):
        st, fin_i = stats[i], finish[seq_off[i]:seq_off[i + 1]]
        end = float(np.nanmax(fin_i)) if np.isfinite(fin_i).any() else t0
        out[ids[i]] = ReplicaResult(t0, max(end, t0), fin_i, st["iterations"], st["busy"], st["rounds"], st["tokens"],
                                    st["accepted"], st["spec_rounds"], 0, st["prefill_time"], None)
    return out


def _streams(policy: SpecPolicy, k: int, rounds: np.ndarray, per_rep: np.ndarray, rngs: list):
    """Pre-drawn rounds of many replicas' rows (i.i.d. rounds, ``pool_eligible``): replica i draws ``per_rep[i]``
    uniforms from its own stream (``sample_advance``'s draws), turned into advances in one call; row j holds
    ``rounds[j]`` of them. Returns (C, start): the running sum of the advances from 0 (int64) and each row's start
    in it (int32 when small enough: widen before summing entries): row j's tokens after m of its rounds are
    ``C[start[j] + m] - C[start[j]]`` (C increases strictly, so a
    row's finishing round is one ``searchsorted``)."""
    u = np.empty(int(per_rep.sum()), np.float32)
    pos = 0
    for rng, m in zip(rngs, per_rep.tolist()):
        if m:
            rng.random(out=u[pos: pos + m], dtype=np.float32)
            pos += m
    adv = policy.at(k).advance_from_uniform(u)
    del u
    # int32 while the sum (and a target past it) stays below 2**31 (half the memory to touch), else int64; widened
    # before the running sum (a running sum that casts as it goes is slow)
    C = np.empty(adv.size + 1, np.int32 if adv.size * (int(policy.at(k).k) + 1) < _INT32_TOKENS else np.int64)
    C[0] = 0
    C[1:] = adv
    np.cumsum(C[1:], out=C[1:])
    start = np.zeros(rounds.size, np.int64)
    np.cumsum(rounds[:-1], out=start[1:])
    return C, start


def _drain_points(f_all, F, ctx0, d_of, Dn, k, cost, streams):
    """The cost-model part of ReplicaSim's ``_drain`` (the sequences fitting the cache) for ``Dn`` replicas at once.
    Running sequences, replica after replica: rounds to finish ``f_all``, KV ``ctx0``, replica ``d_of``; ``F``: each
    replica's iterations in this drain (its last finisher, or fewer under a time limit); ``streams``: (pooled stream
    entries, each sequence's position in them (its pointer), the entry there), None at k = 0. Returns (the seconds of
    every iteration, replica after replica; each replica's offset in them)."""
    n_run = np.bincount(d_of, minlength=Dn)
    so = np.concatenate([[0], np.cumsum(n_run)])
    W = int(max(F.max(), f_all.max())) + 2  # key = replica * W + iteration (or rounds to finish)
    key = d_of * W + f_all
    order = np.argsort(key, kind="stable")
    ks = key[order]
    # interpolation points (``points_with_changes``): a replica of more than 4 x 8 iterations is evaluated at every
    # 8th, at each change of batch size (a finish after iteration f - 1) and the iteration after it, and at its
    # last; a shorter one at every iteration
    big = F > 4 * DECODE_STRIDE
    step = np.where(big, DECODE_STRIDE, 1)
    cnt = (F + step - 1) // step
    c_off = np.concatenate([[0], np.cumsum(cnt)])
    reg_d = np.repeat(np.arange(Dn), cnt)
    reg = (np.arange(int(c_off[-1])) - c_off[reg_d]) * step[reg_d] + reg_d * W
    ch = big[d_of] & (f_all < F[d_of])  # finishers before their replica's last iteration
    last = (np.arange(Dn) * W + F - 1)[big]
    extra = np.sort(np.concatenate([last, (d_of * W + f_all - 1)[ch], (d_of * W + f_all)[ch]]))
    extra = extra[(extra % W) % DECODE_STRIDE != 0]  # (only big replicas have extras: step 8) not already a point
    extra = extra[np.concatenate([[True], extra[1:] != extra[:-1]])] if extra.size else extra
    where = np.searchsorted(reg, extra)
    pk = np.insert(reg, where, extra)  # the sorted union
    pd = np.insert(reg_d, where, extra // W)
    pp = pk - pd * W
    sizes = np.bincount(pd, minlength=Dn)
    # sequences gone by each point (keys at or below it, less the earlier replicas'): few sequences, many points
    left = np.cumsum(np.bincount(np.searchsorted(pk, ks, side="left"), minlength=pk.size + 1))[:pk.size] - so[pd]
    n_at = n_run[pd] - left
    if k == 0:  # every live sequence grows one token per iteration: closed form
        cctx = np.concatenate([[0], np.cumsum(ctx0[order])])
        gone_ctx = cctx[so[pd] + left] - cctx[so[pd]]
        kv_at = ((cctx[so[1:]] - cctx[so[:-1]])[pd] - gone_ctx).astype(float) + n_at * pp.astype(float)
    else:
        flat, p0, base = streams
        # live at a point: the sequences finishing after it, the last n_at of its replica in ``order``
        total = int(n_at.sum())
        first = np.cumsum(n_at) - n_at
        pos = np.repeat(so[pd] + left - first, n_at) + np.arange(total, dtype=np.int64)
        seq = order[pos]
        entries = np.add.reduceat(flat[p0[seq] + np.repeat(pp, n_at)].astype(np.int64), first)
        coff = np.concatenate([[0], np.cumsum((base - ctx0)[order])])  # entry - (base - ctx0) = KV after the rounds
        kv_at = (entries - (coff[so[pd + 1]] - coff[so[pd] + left])).astype(float)
    vals = decode_points_time_s(cost, k, n_at, kv_at, sizes)
    # every iteration's seconds, replica after replica: the evaluated ones, the others interpolated (one call: the
    # replicas' iterations laid end to end, each replica's points at their offset, so every interpolation stays
    # within its replica and sees the same differences as its own)
    off = np.concatenate([[0], np.cumsum(F)])
    at = off[pd] + pp
    small = ~big[pd]
    dts = np.empty(int(off[-1]))
    if big.any():  # in blocks of whole replicas (memory); a short replica's iterations are overwritten just below
        p_off = np.concatenate([[0], np.cumsum(sizes)])
        xp, fp = np.where(small, -1.0, at.astype(float)), vals
        d0 = 0
        while d0 < Dn:
            d1 = max(int(np.searchsorted(off, off[d0] + _INTERP_BLOCK, side="right")) - 1, d0 + 1)
            keep = ~small[p_off[d0]:p_off[d1]]
            if keep.any():
                dts[off[d0]:off[d1]] = np.interp(np.arange(off[d0], off[d1], dtype=float),
                                                 xp[p_off[d0]:p_off[d1]][keep], fp[p_off[d0]:p_off[d1]][keep])
            d0 = d1
    dts[at[small]] = vals[small]
    return dts, off


def _decode(P, N, gen, live, rep_of, seq_off, ok, decode_here, K, cost, streams, t, stats, finish, t_stop, then_drain):
    """ReplicaSim's drains of replicas after their prefill steps, for all of them: drains to ``t_stop`` (a time
    limit: a first guess of the horizon from the current iteration's cost, the last iteration cut where it starts
    after the limit), then (``then_drain``: every clock of ``ok`` at least ``t_stop``; or with no time limit) to the
    last finisher. Pooled sequences (``rep_of``, ``seq_off``): tokens generated ``gen`` and running ``live`` updated
    in place; replicas ``decode_here`` decode; ``streams``: (running sum of the pooled rounds, each sequence's row
    start in it, its rounds to finish from there), None at k = 0; each replica's clock ``t`` and counters ``stats``
    (lists) and the finishers' times ``finish`` updated as ReplicaSim updates them."""
    ptr = np.zeros(P.size, np.int64)
    limited = np.isfinite(t_stop)
    ptr = np.zeros(P.size, np.int64)
    limited = np.isfinite(t_stop)
    if K > 0 and streams is not None:
        C, s0, tgt_col = streams
    while True:
        act = [i for i in np.flatnonzero(decode_here) if live[seq_off[i]:seq_off[i + 1]].any()]
        if limited:
            act = [i for i in act if t[i] < t_stop]
        if not act:
            if limited and then_drain:
                for i in np.flatnonzero(ok):
                    t[i] = max(t[i], t_stop)
                limited = False
                continue
            break
        act = np.array(act, np.int64)
        sel = np.zeros(seq_off.size - 1, bool)
        sel[act] = True
        run = np.flatnonzero(live & sel[rep_of])
        seq_rep = rep_of[run]
        d_of = np.cumsum(sel) - 1
        seq_d = d_of[seq_rep]
        Dn = act.size
        so = np.concatenate([[0], np.cumsum(np.bincount(seq_d, minlength=Dn))])
        ctx0 = P[run] + gen[run]
        rem = N[run] - gen[run]
        r = ptr[run]
        f_all = (tgt_col[run] - r) if K > 0 else rem.copy()
        if limited:
            kv_now = np.add.reduceat(ctx0, so[:-1]).astype(float)
            dt_now = decode_points_time_s(cost, K, np.diff(so), kv_now, np.ones(Dn, np.int64))
            horizon = np.array([int(1.5 * (t_stop - t[i]) / max(float(dt_now[d]), 1e-9)) + 8
                                for d, i in enumerate(act)], np.int64)
            F = np.maximum.reduceat(np.minimum(f_all, horizon[seq_d]), so[:-1])
        else:
            F = np.maximum.reduceat(f_all, so[:-1])
        if K > 0:
            p0 = s0[run] + r
            base = C[p0].astype(np.int64)
        dts, off = _drain_points(f_all, F, ctx0, seq_d, Dn, K, cost, (C, p0, base) if K > 0 else None)
        # per replica: its running sum of seconds, where the time limit cuts it, its busy time and clock
        csum = np.empty_like(dts)
        Fc = F.copy()
        t_before = np.array([t[i] for i in act.tolist()])
        for d, i in enumerate(act.tolist()):
            a = int(off[d])
            c = np.cumsum(dts[a: a + int(F[d])], out=csum[a: a + int(F[d])])
            Fd = min(int(F[d]), cut_iterations(t[i], c, t_stop if limited else np.inf))
            Fc[d] = Fd
            st = stats[i]
            st["iterations"] += Fd
            st["busy"] += float(dts[a: a + Fd].sum())
            t[i] = float(t[i] + c[Fd - 1])
        # the sequences: rounds run, tokens moved, finishers (their last iteration's end)
        stp = np.minimum(f_all, Fc[seq_d])
        fin = f_all <= Fc[seq_d]
        moved = (C[p0 + stp] - base).astype(np.int64) if K > 0 else stp
        adv = np.minimum(moved, rem)
        if K > 0:
            ptr[run] = r + stp
        gen[run] += adv
        live[run[fin]] = False
        finish[run[fin]] = t_before[seq_d[fin]] + csum[off[seq_d[fin]] + f_all[fin] - 1]
        sums = np.add.reduceat(np.stack([stp, moved - stp, adv]), so[:-1], axis=1)
        for d, i in enumerate(act.tolist()):
            st = stats[i]
            if K > 0:
                st["spec_rounds"] += int(sums[0, d])
                st["accepted"] += int(sums[1, d])
            st["rounds"] += int(sums[0, d])
            st["tokens"] += int(sums[2, d])


_INTERP_BLOCK = 1 << 22  # iterations interpolated per call (whole replicas)
_INT32_TOKENS = 1 << 30  # pooled round streams summed in int32 below this many tokens (a target may pass it)


# ---------------------------------------------------------------------------------------------- resumable replicas
def _fresh_batch(sim, t_stop: float) -> int | None:
    """The first row of ``sim``'s queued batch if the replica is where the pooled path starts (else None): nothing
    running, the queue = its newest sequences (all arrived, none started), fitting the KV cache and the sequence
    limit at once; no pause pending; a plain policy (no batch-size schedule) and cost model; no trace; before
    ``t_stop`` (else ReplicaSim would stop before admitting)."""
    if (not sim.queue or sim.t >= t_stop or sim.trace is not None or not isinstance(sim.cost, IterationCostModel)
            or sim.policy.k_for_batch is not None or not sim.cfg.mix_prefill_with_decode
            or any(not p[2] for p in sim.pauses) or sim._latest_arrival > sim.t):
        return None
    q0, n_all = sim.queue[0], sim.P.size
    if len(sim.queue) != n_all - q0 or sim.queue[-1] != n_all - 1 or not (sim.status[:q0] == DONE).all():
        return None
    b = slice(q0, n_all)
    if sim.gen[b].any() or sim.pre[b].any() or not np.array_equal(sim.need[b], sim.P[b]):
        return None
    if not pool_eligible(sim.P[b], sim.N[b], sim.cost, sim.policy, sim.cfg):
        return None
    return q0


def run_replicas_pooled(sims: list, targets: list | None = None, t_stop: float = np.inf,
                        then_drain: bool = False) -> None:
    """``replica.run_replicas(sims, targets, t_stop, then_drain=then_drain)`` (with ``then_drain``: the async
    pipeline's run to the trainer's end and drain before a weight sync). The replicas that start from a fresh batch (``_fresh_batch``) run on pooled arrays (``_run_fresh``); the
    others, and any the pooled path leaves, run as ReplicaSims. Bit for bit the same (tests/test_pool.py)."""
    from .replica import run_replicas

    fresh, rest, rest_targets = [], [], []
    for i, sim in enumerate(sims):
        tg = None if targets is None else targets[i]
        q0 = None
        if tg is None or not sim.done(tg):
            q0 = _fresh_batch(sim, t_stop)
        if q0 is None:
            rest.append(sim)
            rest_targets.append(tg)
        else:
            fresh.append((sim, q0, tg))
    groups: dict = {}  # replicas of one cost model, policy and configuration are pooled together
    for item in fresh:
        groups.setdefault((id(item[0].cost), id(item[0].policy), id(item[0].cfg)), []).append(item)
    for group in groups.values():
        left = _run_fresh(group, t_stop, then_drain)
        rest += left
        rest_targets += [None if targets is None else targets[sims.index(s)] for s in left]
    if rest:
        run_replicas(rest, None if targets is None else rest_targets, t_stop, then_drain=then_drain)


def _run_fresh(fresh: list, t_stop: float, then_drain: bool) -> list:
    """ReplicaSim's run of replicas ``(sim, first row of its fresh batch, targets or None)`` (``_fresh_batch``) to
    ``t_stop`` (and then, ``then_drain``, to the last finisher) on pooled arrays. Returns the replicas it left
    untouched, their random streams restored: a sequence short of drawn rounds, or targets all finished within the
    prefill steps (ReplicaSim would stop there, the others still running)."""
    sim0 = fresh[0][0]
    cost, policy, cfg = sim0.cost, sim0.policy, sim0.cfg  # shared by all (``run_replicas_pooled`` groups them)
    R = len(fresh)
    K = policy.k(1)
    sims = [s for s, _, _ in fresh]
    q0s = [q0 for _, q0, _ in fresh]
    saved = [s.rng.bit_generator.state for s in sims]
    n = np.array([s.P.size - q0 for s, q0, _ in fresh], np.int64)
    seq_off = np.concatenate([[0], np.cumsum(n)])
    P = np.concatenate([s.P[q0:] for s, q0, _ in fresh])
    N = np.concatenate([s.N[q0:] for s, q0, _ in fresh])
    rep_of = np.repeat(np.arange(R), n)
    # prefill steps (time-independent in tokens: they all run, whether or not the clock passes t_stop among them)
    pf = _Prefill(P, N, n, seq_off, policy, cfg, cost, [s.rng for s in sims], q0s)
    gen, live = pf.gen, pf.live
    decoding = np.bincount(rep_of[live], minlength=R) > 0
    # with targets (the rest of the batch then runs to its end, ReplicaSim's drain with no time limit): some target
    # must outlive the prefill steps, else ReplicaSim stops right after them
    early = np.zeros(R, bool)
    for i, (sim, q0, tg) in enumerate(fresh):
        if tg is not None:
            tg = np.asarray(tg, np.int64)
            mine = tg[tg >= q0] - q0
            early[i] = not live[seq_off[i] + mine].any() or bool((sim.status[tg[tg < q0]] != DONE).any())
    # the round streams of the rows not drawn yet (the batch's, and any earlier row a replica never drew), drawn at
    # the first drain as ReplicaSim does: each replica's rows after the previous replicas' (ids keep them sorted)
    olds = np.zeros(R, np.int64)
    if K > 0 and decoding.any():
        for i, s in enumerate(sims):
            olds[i] = s.streams.rows_drawn(K)
        n_all = np.array([s.P.size for s in sims], np.int64)
        n_draw = np.where(decoding, n_all - olds, 0)
        g_off = np.concatenate([[0], np.cumsum(n_draw)])
        Nd = np.concatenate([s.N[o:] if d else s.N[:0] for s, o, d in zip(sims, olds, decoding)])
        rounds = initial_rounds(policy, K, Nd)
        cs = np.concatenate([[0], np.cumsum(rounds)])
        C, start = _streams(policy, K, rounds, cs[g_off[1:]] - cs[g_off[:-1]], [s.rng for s in sims])
        # each batch sequence's stream row: its replica's rows start at g_off, from row ``old``
        gid = g_off[rep_of] + (np.concatenate([np.arange(q0, q0 + m) for q0, m in zip(q0s, n)]) - olds[rep_of])
        gid = np.where(decoding[rep_of], gid, 0)
        s0 = start[gid]
        # rounds to the end from the start of the stream (the target stays put as the sequence advances)
        tgt_col = np.zeros(P.size, np.int64)
        run0 = np.flatnonzero(live)
        tgt_col[run0] = np.searchsorted(C, (C[s0[run0]] + (N - gen)[run0]).astype(C.dtype), side="left") - s0[run0]
        short = np.zeros(R, bool)
        short[rep_of[run0[tgt_col[run0] > rounds[gid[run0]]]]] = True
    else:
        short = np.zeros(R, bool)
    short |= early
    left_out = [sims[i] for i in np.flatnonzero(short)]
    for i in np.flatnonzero(short):
        sims[i].rng.bit_generator.state = saved[i]
    ok = ~short
    # each replica's clock through its prefill steps
    finish = np.full(P.size, np.nan)
    t = [float(s.t) for s in sims]
    t_admit = list(t)
    stats = [dict(s.stats) for s in sims]
    for i in np.flatnonzero(ok):
        t[i] = pf.walk(i, t[i], stats[i], finish)
    streams = (C, s0, tgt_col) if K > 0 and decoding.any() else None
    _decode(P, N, gen, live, rep_of, seq_off, ok, ok & decoding, K, cost, streams, t, stats, finish, t_stop, then_drain)
    # write back: the batch admitted at its start, prefilled, finished
    for i in np.flatnonzero(ok):
        sim, q0 = sims[i], q0s[i]
        lo, hi = seq_off[i], seq_off[i + 1]
        m = hi - lo
        sim.queue = []
        sim.status[q0:] = DONE
        sim.admit_seq[q0:] = sim.stamp + np.arange(m)
        sim.stamp += m
        adm = sim.admit_time[q0:]
        adm[np.isnan(adm)] = t_admit[i]
        sim.pre[q0:] = P[lo:hi]
        sim.gen[q0:] = gen[lo:hi]
        sim.finish[q0:] = finish[lo:hi]
        sim.stats.update(stats[i])
        sim.t = t[i]
        if K > 0 and decoding[i]:  # its rows drawn here, all finished
            sim.streams.add_finished_rows(K, int(sim.P.size - olds[i]))
    return left_out


__all__ = ["pool_eligible", "run_replicas_pooled", "simulate_pool"]
