"""The replicas of a synchronous rollout simulated together, on arrays over every replica's sequences.

:class:`~rlsim.engine.replica.ReplicaSim` runs one replica's events in Python (numpy on that replica's small
arrays), so a pool of thousands of replicas pays that per replica. In a synchronous rollout most replicas take one
simple path: every sequence arrives at the start and the whole shard fits the KV cache and the sequence limit at
once (prompts + responses + the k + 1 slots of a round). Such a replica admits everything, prefills in a few
mixed steps, then decodes to the end without an event: no sequence waits, none is preempted. Its schedule in
tokens does not depend on time, so it can be laid out first and costed after. This module does that for all such
replicas at once:

1. per replica (its own random stream, in the order ReplicaSim uses it): the prefill steps' chunks and the
   advances of their decoding sequences, then the round streams of the decode (``replica.stream_rows``);
2. for all replicas together: each sequence's rounds to finish (one ``searchsorted`` over the pooled streams),
   the batch and summed KV at the iterations the cost model evaluates (``_drain``'s interpolation points), and
   one batched cost-model call for the prefill steps and one for the decode points;
3. per replica: its iteration times (interpolated), finish times and counters.

The result is ReplicaSim's, bit for bit (the same draws, the same cost-model calls per replica, the same
floating-point operations in the same order; tests/test_pool.py compares them). A replica off this path (it does
not fit, a sequence needs more rounds than drawn, an adaptive k, a trace) is left to ReplicaSim."""

from __future__ import annotations

import numpy as np

from ..costmodel import IterationCostModel
from ..costmodel.batched import DECODE_STRIDE, decode_points_time_s, mixed_steps_time_s
from ..speculation.policy import SpecPolicy
from .replica import BIG, ReplicaConfig, ReplicaResult, initial_rounds, stream_rows


def pool_eligible(P: np.ndarray, N: np.ndarray, cost, policy: SpecPolicy, cfg: ReplicaConfig) -> bool:
    """Whether a replica whose sequences (all arriving at once) have prompts ``P`` and responses ``N`` takes the
    simple path: everything admitted at once and nothing ever preempted (see the module's docstring)."""
    if not isinstance(cost, IterationCostModel) or policy.k_for_batch is not None or not cfg.mix_prefill_with_decode:
        return False
    n = P.size
    k = policy.k(n)
    return 0 < n <= cfg.max_num_seqs and int(P.sum()) + int(N.sum()) + n * (k + 1) <= cfg.kv_capacity_tokens


def _prefill_steps(P: np.ndarray, N: np.ndarray, policy: SpecPolicy, cfg: ReplicaConfig, rng: np.random.Generator):
    """ReplicaSim's prefill steps (``_mixed_step``) for a shard admitted at once (admission order = index order), one
    after another: (MIXED_FIELDS rows, finishers per step, tokens generated, rounds, accepted, spec rounds)."""
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
        budget = max(cfg.max_num_batched_tokens - B * (k + 1), 0)
        remaining = P[prefilling] - pre[prefilling]
        before = np.concatenate([[0], np.cumsum(remaining)[:-1]])
        chunk = np.clip(budget - before, 0, remaining)
        if B == 0 and chunk.sum() == 0:  # a prompt longer than the budget still progresses
            chunk[0] = min(remaining[0], cfg.max_num_batched_tokens)
        offs = pre[prefilling]
        done_pre = prefilling[(offs + chunk) >= P[prefilling]]
        dec_ctx = (P[dec] + gen[dec]).sum() if B else 0
        rows.append((B, k if B else 0, dec_ctx, chunk.sum(), (chunk > 0).sum(), (offs + chunk)[chunk > 0].sum(),
                     (chunk * offs + chunk * (chunk + 1) / 2).sum(), done_pre.size))
        pre[prefilling] += chunk
        if B:
            adv = np.asarray(policy.sample_rounds(rng, k, np.ones(B, np.int64), dec, gen[dec]), np.int64)
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

    # ---- phase 1: prefill. A shard whose prompts fit one step's token budget prefills in one step with no
    # decoding sequence (no draw): its row and its first tokens for all replicas at once; the others step by step
    sumP = np.add.reduceat(P, seq_off[:-1])
    one = sumP <= cfg.max_num_batched_tokens
    gen = np.ones(P.size, np.int64)  # one-step shards: every sequence has its first token
    live = N > 1
    tri = np.add.reduceat(P * (P + 1) / 2, seq_off[:-1])  # query-key pairs of a whole prompt (exact integers)
    rows = np.zeros((R, 8))  # the one-step shards' MIXED_FIELDS rows
    rows[:, 3] = sumP
    rows[:, 4] = n
    rows[:, 5] = sumP
    rows[:, 6] = tri
    rows[:, 7] = n
    steps: list[list] = [None] * R  # a many-step shard: (rows, finishers per step)
    mix_stats = np.zeros((R, 4), np.int64)  # tokens, rounds, accepted, spec rounds of the prefill steps
    mix_stats[:, 0] = n
    rngs = [np.random.default_rng([seed, r, 7]) for r in ids]
    for i in np.flatnonzero(~one):
        lo, hi = seq_off[i], seq_off[i + 1]
        rws, fins, g, lv, st = _prefill_steps(P[lo:hi], N[lo:hi], policy, cfg, rngs[i])
        steps[i] = (rws, fins)
        gen[lo:hi] = g
        live[lo:hi] = lv
        mix_stats[i] = st
    # the decode's round streams: every row of a replica, drawn from its stream after its prefill steps' draws
    run = np.flatnonzero(live)
    rep_of = np.repeat(np.arange(R), n)
    decoding = np.bincount(rep_of[run], minlength=R) > 0
    if K > 0 and run.size:
        rounds = initial_rounds(policy, K, N)
        per_rep = np.add.reduceat(rounds, seq_off[:-1])
        if type(policy).sample_rounds is SpecPolicy.sample_rounds:  # i.i.d. rounds: uniform draws, one transform
            u = [rngs[i].random(int(per_rep[i]), dtype=np.float32) if decoding[i] else _NONE32 for i in range(R)]
            adv = policy.at(K).advance_from_uniform(np.concatenate(u))
        else:
            adv = np.concatenate([policy.sample_rounds(rngs[i], K, rounds[seq_off[i]:seq_off[i + 1]],
                                                       np.arange(n[i]), np.zeros(n[i], np.int64))
                                  if decoding[i] else np.zeros(0, np.int64) for i in range(R)])
        if not decoding.all():  # a replica with nothing left to decode draws no stream
            rounds = np.where(decoding[rep_of], rounds, 0)

    # ---- phase 2: costs. The prefill steps (replica after replica, step after step) in one call
    seq_rows, n_steps = [], np.ones(R, np.int64)
    for i in range(R):
        if steps[i] is None:
            seq_rows.append(rows[i: i + 1])
        else:
            seq_rows.append(np.array(steps[i][0], float).reshape(-1, 8))
            n_steps[i] = len(steps[i][0])
    mixed_dt = mixed_steps_time_s(cost, np.concatenate(seq_rows)).tolist()
    step_off = np.concatenate([[0], np.cumsum(n_steps)]).tolist()
    # the decode: rounds to finish, the iterations the cost model evaluates, the batch and KV there, in one call
    ctx0 = P[run] + gen[run]
    rem = N[run] - gen[run]
    good = np.ones(R, bool)
    if K == 0:
        f = rem.copy()
    elif run.size:
        flat, start, slots = stream_rows(adv, rounds, np.arange(P.size))  # global row ids: sorted throughout
        s0 = start[run]
        base = run * BIG
        f = np.searchsorted(flat, base + rem, side="left") - s0  # rounds to finish
        good[rep_of[run[f >= slots[run]]]] = False  # a sequence short of drawn rounds: ReplicaSim draws more
    keep = good[rep_of[run]]
    if not keep.all():
        run, ctx0, rem, f = run[keep], ctx0[keep], rem[keep], f[keep]
        if K > 0:
            s0, base = s0[keep], base[keep]
    dec = decoding & good  # replicas decoding on this path
    d_of = np.cumsum(dec) - 1  # replica -> its index among them
    Dn = int(dec.sum())
    drain = None
    if Dn:
        drain = _decode_points(f, ctx0, d_of[rep_of[run]], Dn, K, cost,
                               (flat, s0, base) if K > 0 else None)

    # ---- phase 3, per replica: its times, as ReplicaSim adds them up
    out: dict[int, ReplicaResult] = {}
    finish = np.full(P.size, np.nan)
    one_fin = ~live & one[rep_of]  # finished at a one-step shard's prefill (one-token responses)
    for i in range(R):
        if decoding[i] and not good[i]:
            continue
        lo, hi = seq_off[i], seq_off[i + 1]
        t = t0
        iterations, busy, prefill_time = 0, 0.0, 0.0
        fins = steps[i][1] if steps[i] is not None else [np.flatnonzero(one_fin[lo:hi])]
        for j, fin in enumerate(fins):
            dt = mixed_dt[step_off[i] + j]
            t += dt
            iterations += 1
            busy += dt
            prefill_time += dt
            finish[lo + fin] = t
        tokens, rounds_i, accepted, spec_rounds = (int(x) for x in mix_stats[i])
        if dec[i]:
            d = int(d_of[i])
            fi, F, pts, vals, (a, b), moved_i = drain(d)
            seqs = run[a:b]
            dts = vals if pts is None else np.interp(np.arange(F, dtype=float), pts, vals)
            csum = np.cumsum(dts)
            sf = int(fi.sum())
            if K > 0:
                spec_rounds += sf
                accepted += int(moved_i.sum()) - sf
            finish[seqs] = t + csum[fi - 1]  # the end of each finisher's last iteration
            iterations += F
            busy += float(dts.sum())
            rounds_i += sf
            tokens += int((N[seqs] - gen[seqs]).sum())
        fin_i = finish[lo:hi]
        end = float(np.nanmax(fin_i)) if np.isfinite(fin_i).any() else t0
        out[ids[i]] = ReplicaResult(t0, max(end, t0), fin_i, iterations, busy, rounds_i, tokens, accepted,
                                    spec_rounds, 0, prefill_time, None)
    return out


_NONE32 = np.zeros(0, np.float32)


def _decode_points(f, ctx0, d_of, Dn, k, cost, streams):
    """ReplicaSim's ``_drain`` without a time limit (the sequences fit the cache), for ``Dn`` replicas at once.
    Running sequences (replica after replica): rounds to finish ``f``, KV ``ctx0``, replica ``d_of``; ``streams``:
    (pooled stream entries, each sequence's stream start, its row offset), None at k = 0. Returns a function of
    a replica's index: (rounds to finish, iterations F, interpolation points or None, cost-model seconds at the
    points, its slice of the running arrays, tokens moved per sequence)."""
    n_run = np.bincount(d_of, minlength=Dn)
    so = np.concatenate([[0], np.cumsum(n_run)])
    F = np.maximum.reduceat(f, so[:-1])
    W = int(F.max()) + 2  # key = replica * W + iteration (or rounds to finish): sorted by replica, then within
    order = np.argsort(d_of * W + f, kind="stable")
    ks = (d_of * W + f)[order]
    # interpolation points (``points_with_changes``): a replica of more than 4 x 8 iterations is evaluated at every
    # 8th, at each change of batch size (a finish after iteration f - 1) and the iteration after it, and at its
    # last; a shorter one at every iteration
    big = F > 4 * DECODE_STRIDE
    step = np.where(big, DECODE_STRIDE, 1)
    cnt = (F + step - 1) // step
    c_off = np.concatenate([[0], np.cumsum(cnt)])
    reg = (np.arange(int(c_off[-1])) - np.repeat(c_off[:-1], cnt)) * np.repeat(step, cnt) + np.repeat(np.arange(Dn) * W, cnt)
    ch = big[d_of] & (f < F[d_of])  # finishers before their replica's last iteration
    extra = np.sort(np.concatenate([(np.arange(Dn) * W + F - 1)[big], (d_of * W + f - 1)[ch], (d_of * W + f)[ch]]))
    extra = extra[(extra % W) % DECODE_STRIDE != 0]  # (only big replicas have extras: step 8) not already a point
    extra = extra[np.concatenate([[True], extra[1:] != extra[:-1]])] if extra.size else extra
    pk = np.insert(reg, np.searchsorted(reg, extra), extra)  # the sorted union
    pd, pp = pk // W, pk % W
    sizes = np.bincount(pd, minlength=Dn)
    p_off = np.concatenate([[0], np.cumsum(sizes)])
    left = np.searchsorted(ks, pk, side="right") - so[pd]  # sequences gone by each point
    n_at = n_run[pd] - left
    if k == 0:  # every live sequence grows one token per iteration: closed form
        cctx = np.concatenate([[0], np.cumsum(ctx0[order])])
        gone_ctx = cctx[so[pd] + left] - cctx[so[pd]]
        kv_at = ((cctx[so[1:]] - cctx[so[:-1]])[pd] - gone_ctx).astype(float) + n_at * pp.astype(float)
        moved = f
    else:
        flat, s0, base = streams
        # live at a point: the sequences finishing after it, the last n_at of its replica in ``order``
        total = int(n_at.sum())
        first = np.cumsum(n_at) - n_at
        pos = np.repeat(so[pd] + left - first, n_at) + np.arange(total, dtype=np.int64)
        seq = order[pos]
        entries = np.add.reduceat(flat[s0[seq] + np.repeat(pp, n_at)], first)
        coff = np.concatenate([[0], np.cumsum((base - ctx0)[order])])  # entry - (base - ctx0) = KV after the rounds
        kv_at = (entries - (coff[so[pd + 1]] - coff[so[pd] + left])).astype(float)
        moved = flat[s0 + f] - base
    vals = decode_points_time_s(cost, k, n_at, kv_at, sizes)

    def replica(d: int):
        lo, hi = so[d], so[d + 1]
        pts = pp[p_off[d]:p_off[d + 1]] if big[d] else None
        return f[lo:hi], int(F[d]), pts, vals[p_off[d]:p_off[d + 1]], (lo, hi), moved[lo:hi]

    return replica


__all__ = ["pool_eligible", "simulate_pool"]
