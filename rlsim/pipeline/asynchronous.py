"""Asynchronous RL with bounded policy lag (NeMo-RL async GRPO semantics), non-colocated.

Generation replicas and the trainer run on separate GPU pools. Weights version v is loaded into the
rollout engine at time W(v) (W(0) = 0). A trajectory generated with weights v may train steps v..v+L
(L = ``max_trajectory_age_steps``), so the rollout batch of training step t is released to the
generation pool at W(max(t - L, 0)); the pool generates continuously (a replica starts the next
batch's sequences while the previous batch's tail still runs). The trainer waits for a full batch
(its wait is the *exposed generation*), then runs data, log-prob and training, then syncs weights:

- default: generation drains (no new admissions; running sequences finish), then the weights are
  broadcast; every replica resumes at W(t+1) = max over replicas of drain end + refit;
- ``in_flight_weight_updates``: replicas pause between two iterations for the transfer, no drain.

The trainer takes part in the broadcast, so it is free again at W(t+1). Steps are simulated in time
order; warm-up steps are excluded from the reported steady state. Where every sync finds the pool drained the
run starts in the steady state (L batches done, one released: ``prefilled`` below) and needs no warm-up;
otherwise it fills the pipeline from empty over L + 2 warm-up steps.

Partial rollouts (``options.partial_rollout``, as verl/slime/AReaL): a step's batch is
complete once ``num_prompts_per_step x num_generations`` trajectories of any released batch have
finished, in finish order; unfinished sequences carry over to the next step (their tokens already
generated are kept). Trajectories older than L at the step that would train them are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import simpy

from ..costmodel.training import refit_time_s
from ..engine import ReplicaSim
from ..engine.pool import run_replicas_pooled
from ..engine.replica import run_replicas
from .results import GenerationStats, StepResult
from .setup import Setup
from .sync import train_and_logprob

DEFAULT_MEASURED_STEPS = 4


@dataclass
class AsyncRun:
    """Everything the async simulation produced (for reports, timelines and tests)."""

    mode: str
    release_s: list[float]
    batch_done_s: list[float]  # G(t): last trajectory of step t's batch finished
    train_start_s: list[float]
    train_end_s: list[float]
    weights_loaded_s: list[float]  # W(v), v = 0..
    refit_start_s: list[float]
    staleness: list[np.ndarray]  # per step: age (steps) of each trained trajectory
    dropped: int
    generated: int
    trained: int
    phases: dict[str, float]
    n_replicas: int
    warmup: int
    replica_traces: list[dict] = field(default_factory=list)
    sims: list = field(default_factory=list)
    training_breakdown: dict | None = None  # the last step's layout-model breakdown (None: MFU model)
    start: str = "empty"  # "prefilled": started in the steady state's configuration; "empty": filled from empty
    batch_end_s: list[float] = field(default_factory=list)  # per released batch: its last finish (NaN: not simulated
    # (prefilled batches 0..L-1) or not finished)


def _version_at(W: list[float], t: float) -> int:
    """Weights version loaded at time t."""
    v = 0
    for i, w in enumerate(W):
        if w <= t:
            v = i
    return v


def _versions_at(W: list[float], t: np.ndarray) -> np.ndarray:
    """``_version_at`` of each time in ``t`` (the last version loaded at or before it; 0 if none)."""
    t = np.asarray(t, float)
    loaded = np.asarray(W, float)[None, :] <= t[:, None]
    last = loaded.shape[1] - 1 - np.argmax(loaded[:, ::-1], axis=1)
    return np.where(loaded.any(axis=1), last, 0).astype(np.int64)


class _PoolNotEmpty(Exception):
    """A prefilled run found sequences left in the pool at a weight sync: its start is not the steady state's."""


def simulate_async(setup: Setup, speculative: bool, n_steps: int | None = None, warmup: int | None = None,
                   trace_replicas: int = 0, pooled: bool = True, start: str | None = None) -> AsyncRun:
    """``pooled=False``: every replica's runs through ReplicaSim (the pooled path, engine/pool.py, gives the same
    results; for tests). ``start``: "prefilled" or "empty" (where the run starts, ``_simulate_async``); None:
    prefilled where it applies and every weight sync finds the pool empty, else from empty."""
    args = (setup, speculative, n_steps, warmup, trace_replicas, pooled)
    if start is None:
        try:
            return _simulate_async(*args, None, strict=True)
        except _PoolNotEmpty:
            return _simulate_async(*args, "empty")
    return _simulate_async(*args, start)


def _simulate_async(setup: Setup, speculative: bool, n_steps: int | None, warmup: int | None, trace_replicas: int,
                    pooled: bool, start: str | None, strict: bool = False) -> AsyncRun:
    sc = setup.scenario
    w = sc.workload
    L = sc.max_trajectory_age_steps
    opts = sc.options
    partial = bool(opts.partial_rollout)
    in_flight = w.in_flight_weight_updates
    # Where the run starts. Where draining before each weight sync empties the pool (every sequence finished), the
    # steady state has one batch in flight: the batch of step t + L, released at W(t), while batches t..t+L-1 are
    # done; every trajectory is admitted and finishes between the release and the next sync (age L; the trainer
    # never waits for its batch), and a step depends on the past only through the random streams. The run starts
    # there ("prefilled"): batches 0..L-1 count as generated before the simulated window (age L, done at 0);
    # batch L is released at W(0); no warm-up step is needed. A step's generation phase is then that of the batch
    # released at its start (the one its sync drains), the same in law as the batch it trains. Filling the
    # pipeline from empty instead (batches 0..L all released at 0, L + 2 warm-up steps) reaches the same steady
    # state (benchmarks/async_start.py compares the two) after 2 L + 6 simulated batches instead of 4. A prefilled
    # run whose sync leaves sequences in the pool (batches beyond the KV cache) stops (_PoolNotEmpty): the
    # default start then fills from empty. With in-flight updates or partial rollouts the pool carries work
    # across syncs: those runs fill from empty.
    drain_mode = L > 0 and not partial and not in_flight
    if start not in (None, "prefilled", "empty"):
        raise ValueError(f"start = {start!r}; allowed: 'prefilled', 'empty' or None")
    if start == "prefilled" and not drain_mode:
        raise ValueError("start = 'prefilled' needs lag > 0 and draining syncs (no in-flight weight updates, no "
                         "partial rollouts)")
    prefilled = drain_mode and start != "empty"
    if warmup is None:
        warmup = opts.async_warmup_steps
        warmup = (0 if prefilled else L + 2) if warmup is None else int(warmup)
    if n_steps is None:
        n_steps = warmup + (DEFAULT_MEASURED_STEPS if opts.async_measured_steps is None else int(opts.async_measured_steps))
    cost = setup.cost_spec if speculative else setup.cost_ar
    policy = setup.policy(speculative)
    cfg = setup.replica_config(speculative)
    R = setup.n_replicas
    sims = [ReplicaSim(cost, policy, cfg, np.random.default_rng([sc.seed, r, 7, 1]), 0.0, r < trace_replicas)
            for r in range(R)]
    mem = setup.memory_spec if speculative else setup.memory_ar
    refit = refit_time_s(mem.weight_bytes_per_gpu + mem.draft_weight_bytes_per_gpu, False, setup.hardware)

    # per step: lengths, and which (replica, local index) hold its sequences
    batches: dict[int, list[np.ndarray]] = {}
    lengths: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    W = [0.0]
    release, done, t_start, t_end, refit_start, stale = [], [], [], [], [], []
    lp_s, tr_s = [], []
    breakdowns: list[dict] = []
    per_step = w.sequences_per_step
    consumed: set[tuple[int, int]] = set()

    def release_batch(step: int) -> None:
        p, n = setup.sample_step_lengths(step)
        lengths[step] = (p, n)
        if prefilled and step < L:
            batches[step] = None
            release.append(0.0)
            return
        at = W[max(step - L, 0)]
        shards = np.array_split(np.arange(len(p)), R)
        batches[step] = [sims[r].add(p[idx], n[idx], at) for r, idx in enumerate(shards)]
        release.append(at)

    for step in range(L + 1 if prefilled else min(L + 1, n_steps)):  # (prefilled: batch L is in flight at W(0))
        release_batch(step)

    # The pipeline as two processes (simpy): the generation pool and the trainer, which meet at three events per
    # step: its batch is complete (the trainer waits on it), the trainer's step is done (the pool then syncs the
    # weights: drain + broadcast, or an in-flight transfer), the new weights are loaded (the trainer is free
    # again). Each event carries its exact time as its value (the simulated seconds are computed from those values,
    # never from ``env.now``, which only orders the processes), so the numbers do not depend on the event library's
    # clock arithmetic.
    env = simpy.Environment()
    batch_ready = [env.event() for _ in range(n_steps)]  # value: (G(t), ages, trained tokens)
    step_trained = [env.event() for _ in range(n_steps)]  # value: e, the trainer's end of step t
    weights_loaded = [env.event() for _ in range(n_steps)]  # value: W(t + 1)
    counts = {"trained": 0, "dropped": 0}

    def until(t: float):
        return env.timeout(max(t - env.now, 0.0))

    def generation_pool():
        for step in range(n_steps):
            if partial:
                g, ages, trained_tokens, d = _partial_batch(sims, batches, lengths, step, per_step, W, L, consumed)
                counts["dropped"] += d
            else:
                trained_tokens = lengths[step][0] + lengths[step][1]
                if batches[step] is None:  # generated before the window (``prefilled``)
                    g, ages = 0.0, np.full(trained_tokens.size, L, np.int64)
                else:
                    (run_replicas_pooled if pooled else run_replicas)(sims, targets=batches[step])
                    g = float(np.nanmax(np.concatenate([sims[r].finish[batches[step][r]] for r in range(R)])))
                    adm = np.concatenate([sims[r].admit_time[batches[step][r]] for r in range(R)])
                    ages = step - _versions_at(W, adm)
            counts["trained"] += ages.size
            yield until(g)
            batch_ready[step].succeed((g, ages, trained_tokens))
            e = yield step_trained[step]
            # weight sync for version step + 1
            if in_flight:
                for sim in sims:
                    sim.add_pause(e, refit)
                refit_start.append(e)
                W.append(e + refit)
            else:
                # to the trainer's end, then drain: running sequences finish, nothing new starts
                (run_replicas_pooled if pooled else run_replicas)(sims, t_stop=e, then_drain=True)
                if prefilled and not all(sim.done(slice(None)) for sim in sims):
                    if strict:
                        raise _PoolNotEmpty
                    raise ValueError(f"start = 'prefilled': the weight sync of step {step} left sequences in the "
                                     "generation pool (batches beyond the KV cache); this run needs start = 'empty'")
                rs = max(sim.t for sim in sims)
                refit_start.append(rs)
                W.append(rs + refit)
                for sim in sims:
                    sim.t = W[-1]
            yield until(W[-1])
            weights_loaded[step].succeed(W[-1])
            nxt = step + L + 1
            # release as a run that goes on would (batches trained after the last simulated step included): else
            # the last L measured steps have no new batch in flight, drain nothing and read as steady state
            if nxt < n_steps + L:
                release_batch(nxt)

    def trainer():
        free = 0.0  # after the previous weight sync
        for step in range(n_steps):
            g, ages, trained_tokens = yield batch_ready[step]
            done.append(g)
            s = max(g, free)
            t_start.append(s)
            lp, tr, bd = train_and_logprob(setup, trained_tokens)
            if bd is not None:
                breakdowns.append(bd)
            lp_s.append(lp)
            tr_s.append(tr)
            e = s + w.data_loading_s + lp + tr
            t_end.append(e)
            stale.append(ages)
            yield until(e)
            step_trained[step].succeed(e)
            free = yield weights_loaded[step]  # the trainer takes part in the broadcast

    env.process(generation_pool())
    env.process(trainer())
    env.run()
    trained, dropped = counts["trained"], counts["dropped"]
    # every generated trajectory trains unless partial rollouts carry unfinished ones over (or drop stale ones)
    generated = sum(int((sim.status == 2).sum()) for sim in sims) if partial else trained

    ends = [_batch_end(sims, batches[b]) for b in range(len(release))]
    meas = range(warmup, n_steps)
    step_times = [W[t + 1] - W[t] for t in meas]
    phases = {
        "data": w.data_loading_s,
        "refit": refit,
        "refit_wait": float(np.mean([refit_start[t] - t_end[t] for t in meas])),
        "generation": float(np.mean([ends[t + L] - release[t + L] for t in meas] if prefilled
                                    else [done[t] - max(release[t], W[max(t - L, 0)]) for t in meas])),
        "exposed_generation": float(np.mean([max(0.0, done[t] - W[t]) for t in meas])),
        "logprob": float(np.mean([lp_s[t] for t in meas])),
        "training": float(np.mean([tr_s[t] for t in meas])),
        "step": float(np.mean(step_times)),
    }
    traces = [sims[r].result().trace for r in range(min(trace_replicas, R))]
    run = AsyncRun("speculative" if speculative else "autoregressive", release, done, t_start, t_end, W, refit_start,
                   stale, dropped, generated, trained, phases, R, warmup, traces, sims)
    run.training_breakdown = breakdowns[-1] if breakdowns else None
    run.start = "prefilled" if prefilled else "empty"
    run.batch_end_s = ends
    return run


def _batch_end(sims, batch) -> float:
    """When the last sequence of a released batch (its indices per replica) finished; NaN: a batch generated before
    the window (None) or one with a sequence still running."""
    if batch is None:
        return float("nan")
    fin = np.concatenate([sims[r].finish[idx] for r, idx in enumerate(batch)])
    return float(fin.max()) if fin.size and np.isfinite(fin).all() else float("nan")


def _partial_batch(sims, batches, lengths, step, per_step, W, L, consumed):
    """Partial rollouts: advance generation until ``per_step`` not-yet-trained trajectories have
    finished; take the earliest finishers (older than L at this step: dropped)."""
    # advance in small time slices so finish order is global
    horizon = max(sim.t for sim in sims)
    slice_s = None
    while True:
        cands = []
        for r, sim in enumerate(sims):
            fin_idx = np.flatnonzero(sim.status == 2)
            for i in fin_idx:
                if (r, int(i)) not in consumed:
                    cands.append((sim.finish[i], r, int(i)))
        fresh = [c for c in cands if step - _version_at(W, sims[c[1]].admit_time[c[2]]) <= L]
        if len(fresh) >= per_step:
            break
        if slice_s is None:
            slice_s = max(1e-3, 0.02 * (max(sim.t for sim in sims) - min(W[-1], horizon) + 1.0))
        target = min(sim.t for sim in sims) + slice_s
        run_replicas(sims, t_stop=target)
        if all(sim.done(np.arange(sim.P.size)) for sim in sims) and len(fresh) < per_step:
            break
        slice_s *= 1.5
    cands.sort()
    take, drop = [], 0
    for f, r, i in cands:
        age = step - _version_at(W, sims[r].admit_time[i])
        if age > L:
            consumed.add((r, i))
            drop += 1
            continue
        if len(take) < per_step:
            take.append((f, r, i, age))
    for f, r, i, age in take:
        consumed.add((r, i))
    g = max(f for f, *_ in take) if take else max(sim.t for sim in sims)
    ages = np.array([a for *_, a in take])
    toks = np.array([sims[r].P[i] + sims[r].N[i] for _, r, i, _ in take])
    return g, ages, toks, drop


def async_step_result(setup: Setup, run: AsyncRun) -> StepResult:
    ph = dict(run.phases)
    step = ph.pop("step")
    sims = run.sims
    tokens = int(sum(s.stats["tokens"] for s in sims))
    acc = sum(s.stats["accepted"] for s in sims)
    spec_rounds = sum(s.stats["spec_rounds"] for s in sims)
    mem = setup.memory_spec if run.mode == "speculative" else setup.memory_ar
    stale_all = np.concatenate(run.staleness[run.warmup:]) if run.staleness[run.warmup:] else np.zeros(0)
    hist = {int(a): int((stale_all == a).sum()) for a in np.unique(stale_all)} if stale_all.size else {}
    busy_total = sum(s.stats["busy"] for s in sims)
    total_time = run.weights_loaded_s[-1]
    gen_idle = 1.0 - busy_total / (len(sims) * total_time) if total_time > 0 else 0.0
    train_busy = ph["logprob"] + ph["training"] + ph["data"]
    gs = GenerationStats(
        iterations_max=int(max(s.stats["iterations"] for s in sims)),
        iterations_mean=float(np.mean([s.stats["iterations"] for s in sims])), tokens_generated=tokens,
        realized_acceptance_length=1.0 + acc / spec_rounds if spec_rounds else 1.0,
        preemptions=int(sum(s.stats["preempt"] for s in sims)), kv_capacity_tokens_per_replica=mem.kv_capacity_tokens,
        n_replicas=len(sims), sequences_per_replica=setup.scenario.workload.sequences_per_step / len(sims),
        replica_end_s_min=float("nan"), replica_end_s_max=float("nan"), time_to_90pct_sequences_s=float("nan"),
        tail_s=float("nan"), prefill_time_s=float("nan"))
    extra = {
        "async": {
            "max_trajectory_age_steps": setup.scenario.lag,
            "steady_state_steps": len(run.batch_done_s) - run.warmup, "warmup_steps": run.warmup,
            "start": run.start,
            "gen_gpu_idle_fraction": gen_idle,
            "train_gpu_idle_fraction": max(0.0, 1.0 - train_busy / step) if step > 0 else 0.0,
            "staleness_histogram": hist, "staleness_mean": float(stale_all.mean()) if stale_all.size else 0.0,
            "trajectories_generated": run.generated, "trajectories_trained": run.trained,
            "trajectories_dropped": run.dropped,
            "in_flight_weight_updates": setup.scenario.workload.in_flight_weight_updates,
            "partial_rollout": bool(setup.scenario.options.partial_rollout),
            "gen_gpus": setup.gen_gpus, "train_gpus": setup.train_gpus,
            "per_step_s": [run.weights_loaded_s[t + 1] - run.weights_loaded_s[t] for t in range(run.warmup, len(run.batch_done_s))],
        }
    }
    if getattr(run, "training_breakdown", None):
        extra["training_breakdown"] = run.training_breakdown
    return StepResult(run.mode, step, ph, gs, extra)


def simulate_async_pair(setup: Setup) -> tuple[StepResult, StepResult]:
    """(autoregressive, speculative) steady state; the two runs are independent (pipeline/parallel.py)."""
    from .parallel import both

    return both(lambda: async_step_result(setup, simulate_async(setup, False)),
                lambda: async_step_result(setup, simulate_async(setup, True)), setup.timer.extrapolated)
