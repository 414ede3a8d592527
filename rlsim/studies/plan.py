"""``rlsim plan``: which configuration of a run is best -- how many GPUs generate and how many train, the rollout
TP / EP, k and drafter, and the policy lag -- under a GPU budget, with memory as a constraint.

The search, in four passes (aiconfigurator's shape -- enumerate, estimate, keep the front -- with the simulator
as the judge):

1. **Enumerate** every configuration of the space: GPU counts (the budget and halvings of it, where the model
   fits), for lag 0 the colocated pool, for lag 1..max a generation/training split (training pools of 1/32..1/2
   of the GPUs, in whole training model-parallel units), rollout TP (and EP for MoE), k, drafter, lag.
2. **Prune the infeasible** analytically, before anything is simulated: the rollout engine's memory
   (``costmodel/memory.py``: weights + draft + one longest sequence's KV within ``gpu_memory_utilization``) and
   the trainer's (``costmodel/training_memory.py`` through ``pipeline/training_fit.py``: the layout the projection
   would use fits, or none does); each infeasible class is reported with its one-line reason.
3. **Estimate** every feasible point from the cost model alone (``Estimator``): training and log-prob from the
   layout model (or the workload's MFU) on the step's own sequences; refit from its formula; generation from a
   *fluid* decode of the replica that holds the step's longest sequence (and of the one with most tokens): all
   its sequences admitted at once, each advancing AL tokens per round, every iteration priced by
   ``IterationCostModel.decode_iterations_time_s`` at the live batch and its KV -- i.e. the simulator's own
   vectorised drain without acceptance noise, queueing or preemption, plus a throughput floor where the KV cache
   or ``max_num_seqs`` caps the batch. Then the step: synchronous ``data + refit + generation + log-prob +
   training``; asynchronous with a drain before each weight sync ``max(training, generation) + refit`` (each
   step's released batch is finished by the drain); with in-flight weight updates ``max(training + refit,
   generation / (lag + 1))``.
4. **Simulate** (``rlsim.studies.sweep``: the process pool or Ray; cached) the references -- the workload's own
   configuration at the budget for lag 0 and at the largest lag with the default split -- and then, round by
   round, the candidates most likely to be fastest or on the Pareto front of step time vs GPU-hours per step.
   After each round the estimator is calibrated per family (synchronous / drain / in-flight) by the smallest
   simulated-to-estimated ratio seen, and a candidate is pruned as **dominated** when even that optimistic
   bound (estimate x smallest ratio x 0.9) is slower than the best simulated step and no better in GPU-hours
   than a simulated point. The search stops when nothing is left, or at ``max_simulations`` (or an opt-in
   wall-clock ``time_budget_s``); rounds have ROUND_SIZE points whatever the core count: a deterministic answer.

Only simulated points are ranked and printed; each carries the exact ``rlsim project`` command that reproduces
its step time (the plan simulates the very arguments the command maps to). A speculative simulation also yields
the autoregressive step of the same configuration (the projection runs both), so k = 0 candidates are never
simulated alone.
"""

from __future__ import annotations

import math
import shlex
import time
import types
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigurationError, RlsimError

TRAIN_FRACTIONS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 3 / 8, 1 / 2)  # training pool shares searched at lag >= 1
PRIOR_RATIO = 0.85  # simulated / estimated assumed before a family has a simulated point (the fluid is optimistic)
PRUNE_MARGIN = 0.9  # a candidate is dominated only if even 0.9 x its calibrated estimate cannot win
ROUND_SIZE = 2  # points simulated per search round (independent of the worker count: a deterministic search)
MAX_TP = 16  # rollout TP searched up to this (and the NVLink domain)
EXACT_BATCH = 64  # fluid batch sizes priced exactly up to this, on a geometric grid above
BATCH_GRID = 1.03
FLUID_STRIDE = 32  # iterations between exactly priced ones in the fluid decode (linear in between; KV grows smoothly)


# ------------------------------------------------------------------------------------------ inputs
@dataclass(frozen=True)
class DrafterOption:
    """A drafter to search and where its acceptance comes from."""

    name: str
    quality: float | None = None  # per-token conditional acceptance rate (any k)
    als: tuple[tuple[int, float], ...] = ()  # (k, AL) pairs: only those k

    def label(self) -> str:
        if self.quality is not None:
            return f"{self.name} (q {self.quality:g})"
        if self.als:
            return f"{self.name} (AL " + ", ".join(f"{a:g}@k{k}" for k, a in self.als) + ")"
        return self.name


@dataclass
class PlanInputs:
    base: dict  # build_scenario arguments shared by every candidate (model / workload, hardware, engine, seed ...)
    gpus: int
    gpu_counts: list[int] | None = None
    max_lag: int = 2
    ks: list[int] | None = None
    tps: list[int] | None = None
    expert_parallel: list[bool] | None = None
    drafters: list[DrafterOption] | None = None
    in_flight: bool = False
    top: int = 5
    max_simulations: int = 32
    time_budget_s: float | None = None  # None: no wall-clock stop (the result must not depend on the machine's speed)
    executor: str = "process"
    workers: int | None = None
    address: str | None = None
    cache_dir: str | None = None
    steps: int | None = None
    gpu_hour_price: float | None = None


# ------------------------------------------------------------------------------------------ candidates
@dataclass
class Candidate:
    gpus: int
    lag: int
    gen_gpus: int | None  # None: colocated
    train_gpus: int | None
    tp: int
    ep: bool
    k: int
    drafter: DrafterOption
    in_flight: bool = False
    est_s: float = float("nan")
    est_parts: dict = field(default_factory=dict)
    family: str = ""
    sim: dict | None = None  # step_s, phases, bottleneck ... once simulated
    reference: str | None = None  # "default lag 0" ...
    pruned: str | None = None
    train_note: str | None = None

    @property
    def colocated(self) -> bool:
        return self.gen_gpus is None

    @property
    def key(self) -> tuple:
        return (self.gpus, self.lag, self.gen_gpus, self.train_gpus, self.tp, self.ep, self.k, self.drafter,
                self.in_flight)

    @property
    def step_s(self) -> float:
        return self.sim["step_s"] if self.sim else float("nan")

    @property
    def gpu_hours_per_step(self) -> float:
        return self.gpus * self.step_s / 3600.0

    def kwargs(self, base: dict, workload_ep: bool, workload_drafter: str) -> dict:
        """The build_scenario arguments of this candidate (what its command maps to)."""
        kw = dict(base)
        if self.colocated:
            kw["gpus"] = self.gpus
        else:
            kw["gen_gpus"], kw["train_gpus"] = self.gen_gpus, self.train_gpus
        kw.update(lag=self.lag, tensor_parallel_size=self.tp, k=self.k)
        if self.ep != workload_ep:
            kw["enable_expert_parallel"] = self.ep
        d = self.drafter
        if d.name != workload_drafter:
            kw["drafter"] = d.name
        if self.k > 0:
            if d.quality is not None:
                kw["draft_quality"] = d.quality
            elif d.als:
                kw["acceptance_length"] = dict(d.als)[self.k]
        if self.in_flight:
            kw["in_flight_weight_updates"] = True
        return kw

    def describe(self) -> str:
        where = (f"{self.gpus} GPUs colocated" if self.colocated else
                 f"{self.gen_gpus} gen + {self.train_gpus} train")
        s = f"{where}, lag {self.lag}, TP {self.tp}{' EP' if self.ep else ''}, k {self.k}"
        if self.k:
            s += f" {self.drafter.label()}"
        return s + (", in-flight weight updates" if self.in_flight else "")


_FLAGS = [("workload", "--workload"), ("model", "--model"), ("hardware", "--hardware"), ("gpus", "--gpus"),
          ("gen_gpus", "--gen-gpus"), ("train_gpus", "--train-gpus"), ("lag", "--lag"), ("tensor_parallel_size", "--tp"),
          ("k", "--k"), ("drafter", "--drafter"), ("acceptance_length", "--acceptance-length"),
          ("draft_quality", "--draft-quality"), ("engine", "--engine"), ("calibration", "--calibration"),
          ("seed", "--seed")]


def command(kw: dict) -> str:
    """``rlsim project`` flags for build_scenario arguments (only those plan candidates use)."""
    parts = ["rlsim", "project"]
    known = {k for k, _ in _FLAGS} | {"enable_expert_parallel", "in_flight_weight_updates"}
    extra = sorted(set(kw) - known)
    if extra:
        raise ConfigurationError(f"internal: no rlsim project flag for {', '.join(extra)}")
    for key, flag in _FLAGS:
        v = kw.get(key)
        if v is None or (key == "seed" and v == 0) or (key == "calibration" and v == "auto"):
            continue
        parts += [flag, repr(v) if isinstance(v, float) else str(v)]
    if "enable_expert_parallel" in kw:
        parts.append("--expert-parallel" if kw["enable_expert_parallel"] else "--no-expert-parallel")
    if kw.get("in_flight_weight_updates"):
        parts.append("--in-flight-weight-updates")
    return " ".join(shlex.quote(p) for p in parts)


# ------------------------------------------------------------------------------------------ estimator
def _fluid_iterations(k: int, al: float, prompts: np.ndarray, responses: np.ndarray, max_seqs: int,
                      kv_capacity: int):
    """One replica's decode as the fluid sees it: per iteration the live batch and its KV (all sequences admitted at
    once, each advancing ``al`` tokens per round; where ``max_num_seqs`` or the KV cache caps the batch, the batch is
    capped), plus the throughput floor's inputs (all rounds over the capped batch)."""
    p = np.asarray(prompts, float)
    n = np.asarray(responses, float)
    rounds = np.ceil(np.maximum(n - 1.0, 0.0) / al) + 1.0  # the prefill samples the first token
    order = np.argsort(rounds, kind="stable")
    r_sorted = rounds[order]
    j = np.arange(int(r_sorted[-1]), dtype=float)
    live = n.size - np.searchsorted(r_sorted, j, side="right")  # sequences with rounds > j
    suffix_p = np.concatenate([np.cumsum(p[order][::-1])[::-1], [0.0]])
    kv = suffix_p[n.size - live] + al * j * live  # prompts + tokens generated so far of the live sequences
    cap = max(1, min(int(max_seqs), int(kv_capacity // max(float(np.mean(p + n)), 1.0))))
    batch = _quantize(np.minimum(live, cap))
    kv = kv * batch / np.maximum(live, 1)
    floor = (float(np.sum(rounds)) / cap, cap, float(np.mean(p + n / 2.0)) * cap) if n.size > cap else None
    return batch, kv, floor


def _quantize(batch: np.ndarray) -> np.ndarray:
    """Batch sizes above ``EXACT_BATCH`` rounded to a geometric grid (ratio ``BATCH_GRID``): each distinct size costs
    the cost model a static evaluation, and an iteration's time is smooth in the batch (the error is under half a
    grid step, 1.5%, on the iterations of large batches only; the tail's small batches stay exact)."""
    b = np.asarray(batch, float)
    q = np.where(b > EXACT_BATCH, np.round(EXACT_BATCH * BATCH_GRID ** np.round(np.log(np.maximum(b, 1) / EXACT_BATCH)
                                                                                 / np.log(BATCH_GRID))), b)
    return np.maximum(q, 1).astype(np.int64)


def _samples(batch: np.ndarray, stride: int) -> np.ndarray:
    """Iterations priced exactly: every ``stride``-th, both ends of every run of equal batch size, the last."""
    n = batch.size
    change = np.flatnonzero(np.diff(batch))
    return np.unique(np.concatenate([np.arange(0, n, stride), change, change + 1, [n - 1]]))


def fluid_decode_many(cost, k: int, replicas: list[tuple], stride: int = FLUID_STRIDE) -> list[float]:
    """:func:`fluid_decode_s` of several replicas ``(al, prompts, responses, max_seqs, kv_capacity)`` in one call of
    the cost model (the calibrated predictors' per-call overhead dominates a single fluid)."""
    parts, pts_b, pts_kv = [], [], []
    for al, p, n, max_seqs, kv_cap in replicas:
        if len(n) == 0:
            parts.append(None)
            continue
        batch, kv, floor = _fluid_iterations(k, al, p, n, max_seqs, kv_cap)
        idx = _samples(batch, stride)
        parts.append((batch.size, idx, len(pts_b), floor))
        pts_b.append(batch[idx])
        pts_kv.append(kv[idx])
        if floor is not None:
            pts_b.append(np.array([floor[1]]))
            pts_kv.append(np.array([floor[2]]))
    if not pts_b:
        return [0.0] * len(replicas)
    b_all, kv_all = np.concatenate(pts_b), np.concatenate(pts_kv)
    # one exactly priced point per entry (stride 1): interpolation happens here, per replica, never across replicas
    vals = np.asarray(cost.decode_iterations_time_s(b_all, k, kv_all, stride=1), float)
    offsets = np.cumsum([0] + [len(x) for x in pts_b])
    out = []
    for part in parts:
        if part is None:
            out.append(0.0)
            continue
        n_it, idx, pos, floor = part
        v = vals[offsets[pos]:offsets[pos + 1]]
        t = float(np.sum(np.interp(np.arange(n_it), idx, v)))
        if floor is not None:
            t = max(t, floor[0] * float(vals[offsets[pos + 1]]))
        out.append(t)
    return out


def fluid_decode_s(cost, k: int, al: float, prompts: np.ndarray, responses: np.ndarray, max_seqs: int,
                   kv_capacity: int, stride: int = FLUID_STRIDE) -> float:
    """Decode time of one replica's sequences, all admitted at once, each advancing ``al`` tokens per round, every
    iteration priced at its live batch and KV (``decode_iterations_time_s``; every ``stride``-th iteration and both
    ends of each run of equal batch exactly, linear in between); where ``max_num_seqs`` or the KV cache caps the
    batch, at least the rounds over the capped batch at the capped batch's iteration time."""
    return fluid_decode_many(cost, k, [(al, prompts, responses, max_seqs, kv_capacity)], stride)[0]


class Estimator:
    """Cost-model estimates of candidates' steps, with the pieces cached (module docstring, pass 3)."""

    def __init__(self, base: dict):
        from ..catalog import load_engine, load_hardware, load_model
        from ..costmodel.select import get_timer
        from ..pipeline.setup import Setup
        from ..scenario import build_scenario

        self.base = base
        self.sc0 = build_scenario(**base)
        w = self.sc0.workload
        self.workload = w
        self.model = load_model(w.model)
        self.hw = load_hardware(w.hardware)
        self.timer = get_timer(self.hw, self.sc0.calibration)
        self.engine = load_engine(self.sc0.engine)
        # the step's sequences, exactly as every candidate samples them (they depend on the workload and seed only)
        self.prompts, self.responses = Setup.sample_step_lengths(types.SimpleNamespace(scenario=self.sc0), 0)
        self._gen: dict = {}
        self._train: dict = {}
        self._acc: dict = {}
        self._fluid: dict = {}

    # ---- rollout side
    def acceptance_length(self, k: int, d: DrafterOption) -> float:
        key = (k, d)
        if key not in self._acc:
            from ..pipeline.setup import resolve_acceptance
            from ..scenario import build_scenario

            if k == 0:
                self._acc[key] = 1.0
            else:
                kw = dict(self.base, k=k, drafter=d.name)
                if d.quality is not None:
                    kw["draft_quality"] = d.quality
                elif d.als:
                    kw["acceptance_length"] = dict(d.als)[k]
                self._acc[key] = resolve_acceptance(build_scenario(**kw)).acceptance_length
        return self._acc[key]

    def generation(self, tp: int, ep: bool, k: int, d: DrafterOption):
        """(cost model, replica memory, replica GPUs) of a rollout configuration; raises when it does not fit."""
        key = (tp, ep, k, d.name)
        if key not in self._gen:
            from ..catalog import GenerationParallelism
            from ..costmodel import IterationCostModel, replica_layout, replica_memory
            from ..speculation import resolve_drafter
            from ..speculation.drafters import Drafter

            w, m, hw = self.workload, self.model, self.hw
            try:
                layout = replica_layout(m, GenerationParallelism(tensor_parallel_size=tp, enable_expert_parallel=ep))
                drafter = resolve_drafter(m, d.name, self.sc0.draft_model) if k > 0 else Drafter("none", None)
                longest = w.prompt_length.max_tokens + w.response_length.max_tokens
                if w.max_total_sequence_length is not None:
                    longest = min(longest, w.max_total_sequence_length)
                mem = replica_memory(m, hw, layout, w.generation_dtype, w.kv_cache_dtype, w.engine.gpu_memory_utilization,
                                     drafter.network, drafter.method, longest)
                # as pipeline/setup.build_setup builds them (tests/test_plan.py holds the two equal)
                cost = IterationCostModel(model=m, hardware=hw, layout=layout, timer=self.timer, dtype=w.generation_dtype,
                                          kv_dtype=w.kv_cache_dtype, enforce_eager=w.engine.enforce_eager,
                                          moe_routing_skew=float(self.sc0.options.moe_routing_skew or 0.0),
                                          engine=None if self.engine.engine == "ideal" else self.engine,
                                          engine_config=w.engine, method=drafter.method, draft=drafter.network,
                                          configured_k=k)
                self._gen[key] = (cost, mem, layout)
            except RlsimError as e:
                self._gen[key] = e
        v = self._gen[key]
        if isinstance(v, Exception):
            raise v
        return v

    def _replicas_of(self, replicas: int) -> list[np.ndarray]:
        """The shards (as the simulator deals sequences) of the replica holding the longest response and of the
        one holding the most tokens (the two that can set a rollout's end)."""
        n = self.responses
        shards = np.array_split(np.arange(n.size), replicas)
        sizes = np.array([s.size for s in shards])
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        ok = sizes > 0
        tok = np.zeros(len(shards))
        mx = np.zeros(len(shards))
        tok[ok] = np.add.reduceat(self.prompts + n, starts[ok])
        mx[ok] = np.maximum.reduceat(n, starts[ok])
        picks = sorted({int(np.argmax(mx)), int(np.argmax(tok))})
        return [shards[r] for r in picks]

    def prepare_generation(self, keys) -> None:
        """Fluid estimates of many (tp, ep, k, drafter, replicas) at once: one cost-model call per rollout
        configuration (``fluid_decode_many``)."""
        groups: dict = {}
        for tp, ep, k, d, replicas in keys:
            fkey = (tp, ep, k, d.name if k else "", self.acceptance_length(k, d) if k else 1.0, replicas)
            if fkey in self._fluid:
                continue
            try:
                self.generation(tp, ep, k, d)
            except RlsimError:
                continue
            groups.setdefault((tp, ep, k, d), []).append((fkey, replicas))
        e = self.workload.engine
        for (tp, ep, k, d), items in groups.items():
            cost, mem, _ = self.generation(tp, ep, k, d)
            al = self.acceptance_length(k, d) if k else 1.0
            reps, owners = [], []
            for fkey, replicas in items:
                if fkey in self._fluid:
                    continue
                self._fluid[fkey] = None
                for sh in self._replicas_of(replicas):
                    reps.append((al, self.prompts[sh], self.responses[sh], e.max_num_seqs, mem.kv_capacity_tokens))
                    owners.append(fkey)
            for fkey, t in zip(owners, fluid_decode_many(cost, k, reps)):
                self._fluid[fkey] = max(self._fluid[fkey] or 0.0, t)

    def generation_s(self, tp: int, ep: bool, k: int, d: DrafterOption, replicas: int) -> float:
        fkey = (tp, ep, k, d.name if k else "", self.acceptance_length(k, d) if k else 1.0, replicas)
        if self._fluid.get(fkey) is None:
            self.prepare_generation([(tp, ep, k, d, replicas)])
        return self._fluid[fkey]

    # ---- training side
    def training(self, train_gpus: int, colocated: bool, tp_hint: int) -> dict:
        """data + log-prob + training seconds on a training pool (or the colocated pool), the layout used, or the
        reason nothing fits."""
        key = (train_gpus, colocated)
        if key not in self._train:
            from ..pipeline import build_setup
            from ..pipeline.sync import train_and_logprob
            from ..scenario import build_scenario

            kw = dict(self.base, k=0)
            if colocated:
                kw.update(gpus=train_gpus, tensor_parallel_size=tp_hint, lag=0)
            else:
                kw.update(gen_gpus=tp_hint, train_gpus=train_gpus, tensor_parallel_size=tp_hint, lag=0)
            try:
                setup = build_setup(build_scenario(**kw))
                lp, tr, _ = train_and_logprob(setup, self.prompts + self.responses)
                fit = setup.training_fit
                self._train[key] = {"seconds": self.workload.data_loading_s + lp + tr, "logprob_s": lp, "training_s": tr,
                                    "layout": fit.memory.layout.describe() if fit else None,
                                    "note": fit.note if fit else None, "setup": setup}
            except RlsimError as e:
                self._train[key] = {"error": str(e)}
        return self._train[key]

    def refit_s(self, tp: int, ep: bool, k: int, d: DrafterOption, colocated: bool, train: dict) -> float:
        from ..costmodel.training import refit_time_s
        from ..pipeline.sync import refit_crosses_domains

        _, mem, layout = self.generation(tp, ep, k, d)
        w_bytes = mem.weight_bytes_per_gpu + mem.draft_weight_bytes_per_gpu
        if not colocated:
            return refit_time_s(w_bytes, False, self.hw)
        kv_pool = mem.kv_capacity_tokens / layout.data_parallel_size * mem.kv_bytes_per_token_per_gpu
        setup = train.get("setup")
        cross = refit_crosses_domains(types.SimpleNamespace(hardware=self.hw, layout=layout,
                                                            training_layout=setup.training_layout if setup else None))
        return refit_time_s(w_bytes, True, self.hw, kv_pool, cross_domain=cross)

    def estimate(self, c: Candidate) -> None:
        """Fill ``c.est_s`` / ``c.est_parts`` / ``c.family``, or mark it infeasible (``c.pruned``)."""
        try:
            _, _, layout = self.generation(c.tp, c.ep, c.k, c.drafter)
        except RlsimError as e:
            c.pruned = f"rollout memory: {e}"
            return
        gen_gpus = c.gpus if c.colocated else c.gen_gpus
        replicas = gen_gpus // layout.gpus
        train = self.training(c.gpus if c.colocated else c.train_gpus, c.colocated, c.tp)
        if "error" in train:
            c.pruned = f"training: {train['error']}"
            return
        c.train_note = train.get("note")
        gen = self.generation_s(c.tp, c.ep, c.k, c.drafter, replicas)
        refit = self.refit_s(c.tp, c.ep, c.k, c.drafter, c.colocated, train)
        C = train["seconds"]
        if c.lag == 0:
            c.family, est = "sync", C + refit + gen
        elif c.in_flight:
            c.family, est = "in-flight", max(C + refit, gen / (c.lag + 1))
        else:
            c.family, est = "drain", max(C, gen) + refit
        c.est_s = est
        c.est_parts = {"generation_s": gen, "train_chain_s": C, "refit_s": refit}


# ------------------------------------------------------------------------------------------ the search
@dataclass
class PlanResult:
    inputs: PlanInputs
    candidates: list[Candidate]
    references: list[Candidate]
    infeasible: dict[str, int]
    simulated: int
    rounds: int
    elapsed_s: float
    stop_reason: str
    ratios: dict[str, float]
    workload_ep: bool
    workload_drafter: str
    workload_label: str = ""
    notes: list[str] = field(default_factory=list)

    def simulated_candidates(self) -> list[Candidate]:
        return [c for c in self.candidates if c.sim is not None]

    def ranked(self) -> list[Candidate]:
        return sorted(self.simulated_candidates(), key=lambda c: (c.step_s, c.gpu_hours_per_step))

    def top_configurations(self) -> list[Candidate]:
        """The best few distinct configurations: each pool layout / lag / rollout TP / EP once, at its best k."""
        out, seen = [], set()
        for c in self.ranked():
            g = (c.gpus, c.lag, c.gen_gpus, c.train_gpus, c.tp, c.ep, c.in_flight)
            if g not in seen:
                seen.add(g)
                out.append(c)
        return out[: self.inputs.top]

    def pareto(self) -> list[Candidate]:
        """Simulated points no other simulated point beats in both step time and GPU-hours per step."""
        pts = sorted(self.simulated_candidates(), key=lambda c: (c.gpu_hours_per_step, c.step_s))
        front, best = [], math.inf
        for c in pts:
            if c.step_s < best - 1e-12:
                front.append(c)
                best = c.step_s
        return front

    def command(self, c: Candidate) -> str:
        return command(c.kwargs(self.inputs.base, self.workload_ep, self.workload_drafter))

    def by_gpu_count(self) -> list[dict]:
        out = []
        for g in sorted({c.gpus for c in self.simulated_candidates()}):
            cs = [c for c in self.simulated_candidates() if c.gpus == g]
            b = min(cs, key=lambda c: (c.step_s, c.gpu_hours_per_step))
            out.append({"gpus": g, "step_s": b.step_s, "gpu_hours_per_step": b.gpu_hours_per_step,
                        "configuration": b.describe(), "command": self.command(b), "simulated": len(cs)})
        return out

    def row(self, c: Candidate) -> dict:
        d = {"configuration": c.describe(), "command": self.command(c), "gpus": c.gpus,
             "gen_gpus": c.gen_gpus if not c.colocated else c.gpus, "train_gpus": c.train_gpus if not c.colocated else c.gpus,
             "colocated": c.colocated, "lag": c.lag, "tensor_parallel_size": c.tp, "expert_parallel": c.ep, "k": c.k,
             "drafter": c.drafter.name if c.k else None, "draft_quality": c.drafter.quality if c.k else None,
             "in_flight_weight_updates": c.in_flight, "estimated_step_s": c.est_s, "estimate": dict(c.est_parts),
             "family": c.family, "simulated": c.sim is not None, "reference": c.reference}
        if c.sim:
            d.update(step_s=c.step_s, gpu_hours_per_step=c.gpu_hours_per_step, phases_s=c.sim["phases"],
                     bottleneck=c.sim.get("bottleneck"))
            if self.inputs.gpu_hour_price is not None:
                d["dollars_per_step"] = c.gpu_hours_per_step * self.inputs.gpu_hour_price
            if self.inputs.steps is not None:
                d["gpu_hours_per_run"] = c.gpu_hours_per_step * self.inputs.steps
                if self.inputs.gpu_hour_price is not None:
                    d["dollars_per_run"] = d["gpu_hours_per_run"] * self.inputs.gpu_hour_price
        if c.train_note:
            d["training_layout_note"] = c.train_note
        return d

    def to_dict(self) -> dict:
        ranked = self.ranked()
        if not ranked:
            raise ConfigurationError("no configuration was simulated")
        best = ranked[0]
        est_only = sorted((c for c in self.candidates if c.sim is None and c.pruned is None), key=lambda c: c.est_s)
        return {"best": self.row(best), "top": [self.row(c) for c in self.top_configurations()],
                "pareto": [self.row(c) for c in self.pareto()],
                "references": [self.row(c) for c in self.references if c.sim],
                "by_gpu_count": self.by_gpu_count(),
                "candidates": [self.row(c) for c in ranked] + [self.row(c) for c in est_only],
                "search": {"enumerated": len(self.candidates) + sum(self.infeasible.values()),
                           "infeasible": dict(self.infeasible), "feasible": len(self.candidates),
                           "simulated": self.simulated, "rounds": self.rounds,
                           "pruned_dominated": sum(1 for c in self.candidates if c.pruned == "dominated"),
                           "elapsed_s": self.elapsed_s, "stopped": self.stop_reason,
                           "estimate_ratio_simulated_over_estimated": dict(self.ratios)},
                "workload": self.workload_label, "notes": list(self.notes)}


def _powers_between(lo: int, hi: int) -> list[int]:
    return [1 << i for i in range(0, 32) if lo <= (1 << i) <= hi]


def enumerate_candidates(inp: PlanInputs, est: Estimator) -> tuple[list[Candidate], list[int]]:
    w, m = est.workload, est.model
    counts = inp.gpu_counts or [g for g in (inp.gpus, inp.gpus // 2, inp.gpus // 4, inp.gpus // 8) if g >= 1]
    counts = sorted(set(counts), reverse=True)
    tps = inp.tps
    if tps is None:  # from the smallest TP whose weights fit to 8x that (and MAX_TP)
        fit = []
        for t in _powers_between(1, MAX_TP):
            if m.num_attention_heads % t:
                continue
            try:
                est.generation(t, w.generation.enable_expert_parallel if m.is_moe else False, 0,
                               DrafterOption(w.speculation.method))
                fit.append(t)
            except RlsimError:
                continue
        tps = [t for t in fit if fit and t <= 8 * fit[0]]
    eps = inp.expert_parallel or ([w.generation.enable_expert_parallel, not w.generation.enable_expert_parallel]
                                  if m.is_moe else [False])
    ks = inp.ks if inp.ks is not None else list(range(0, 8))
    drafters = inp.drafters or [DrafterOption(w.speculation.method)]
    unit = (w.training.tensor_model_parallel_size * w.training.pipeline_model_parallel_size
            * w.training.context_parallel_size)
    out = []
    for g in counts:
        splits = sorted({max(unit, int(g * f) // unit * unit) for f in TRAIN_FRACTIONS})
        for tp in tps:
            if tp > g:
                continue
            for ep in eps:
                for lag in range(0, inp.max_lag + 1):
                    pools = [(None, None)] if lag == 0 else [(g - t, t) for t in splits if 0 < g - t and (g - t) % tp == 0]
                    if lag == 0 and g % tp:
                        continue
                    for gen, train in pools:
                        for in_flight in ([False, True] if (inp.in_flight and lag > 0) else [False]):
                            for d in drafters:
                                for k in ks:
                                    if k and d.als and k not in dict(d.als):
                                        continue
                                    if k == 0 and d is not drafters[0]:
                                        continue  # one autoregressive point per configuration
                                    out.append(Candidate(g, lag, gen, train, tp, ep, k, d, in_flight))
    return out, counts


def _simulate(points: list[dict], inp: PlanInputs) -> list[dict]:
    """Run build_scenario argument sets through ``sweep`` (its executors and cache); one record per point."""
    from .sweep import sweep

    df = sweep(points=points, executor=inp.executor, workers=inp.workers, address=inp.address, cache_dir=inp.cache_dir,
               skip_invalid=True, progress=False)
    recs: list[dict] = [{} for _ in points]
    for _, row in df.iterrows():
        recs[int(row["point"])] = {k: row[k] for k in df.columns}
    return recs


def _sim_result(rec: dict, mode: str, scenario_kind: str) -> dict | None:
    """Step, phases and the bottleneck of one mode from a sweep record."""
    from ..pipeline.bottleneck import bottleneck_from_phases

    err = rec.get("error")
    if isinstance(err, str) and err:
        return {"error": err}
    p = "spec" if mode == "speculative" else "ar"
    step = rec.get(f"{p}_step_s")
    if step is None or not np.isfinite(step):
        return None
    phases = {}
    for name in ("data", "refit", "refit_wait", "generation", "exposed_generation", "logprob", "training"):
        v = rec.get(f"{p}_{name}_s")
        if v is not None and np.isfinite(v):
            phases[name] = float(v)
    idle = None
    if scenario_kind != "sync":
        idle = {"generation_gpus": rec.get(f"{p}_x_gen_gpu_idle_fraction"),
                "training_gpus": rec.get(f"{p}_x_train_gpu_idle_fraction")}
    tail = rec.get(f"{p}_gen_tail_s")
    b = bottleneck_from_phases(phases, float(step), idle, tail, rec.get(f"{p}_gen_preemptions") or 0)
    return {"step_s": float(step), "phases": phases, "bottleneck": b}


def plan(inp: PlanInputs, progress=None) -> PlanResult:
    t0 = time.perf_counter()
    est = Estimator(inp.base)
    w = est.workload
    workload_ep = w.generation.enable_expert_parallel
    workload_drafter = est.sc0.drafter
    cands, counts = enumerate_candidates(inp, est)
    # ---- references: the workload's own configuration at the budget (lag 0 colocated, and the default split at
    # the largest lag), as `rlsim project --model M --gpus N [--lag L]` would run it
    refs = []
    wl_k = est.sc0.k
    d0 = (inp.drafters or [DrafterOption(w.speculation.method)])[0]
    tp0 = w.generation.tensor_parallel_size
    by_key = {c.key: c for c in cands}
    from ..pipeline.setup import choose_split

    for lag in sorted({0, inp.max_lag}):
        if lag == 0:
            key = (inp.gpus, 0, None, None, tp0, workload_ep, wl_k, d0, False)
        else:
            unit = (w.training.tensor_model_parallel_size * w.training.pipeline_model_parallel_size
                    * w.training.context_parallel_size)
            try:
                g, t, _ = choose_split(inp.gpus, tp0 * w.generation.data_parallel_size, unit)
            except ConfigurationError:
                continue
            key = (inp.gpus, lag, g, t, tp0, workload_ep, wl_k, d0, False)
        c = by_key.get(key)
        if c is None:
            c = Candidate(*key)
            cands.append(c)
            by_key[key] = c
        c.reference = f"the workload's configuration at {inp.gpus} GPUs, lag {lag}" + (
            f" (default split {c.gen_gpus}:{c.train_gpus})" if lag else " (colocated)")
        refs.append(c)
    # ---- estimate, prune the infeasible
    infeasible: dict[str, int] = {}
    feasible = []
    keys = []
    for c in cands:
        try:
            _, _, lay = est.generation(c.tp, c.ep, c.k, c.drafter)
        except RlsimError:
            continue
        keys.append((c.tp, c.ep, c.k, c.drafter, (c.gpus if c.colocated else c.gen_gpus) // lay.gpus))
    if progress:
        progress(f"estimating {len(cands):,} configurations from the cost model")
    est.prepare_generation(keys)
    ref_notes = []
    for c in cands:
        est.estimate(c)
        if c.pruned:
            reason = c.pruned.split(":")[0] + ": " + _short_reason(c.pruned)
            infeasible[reason] = infeasible.get(reason, 0) + 1
            if c.reference:
                ref_notes.append(f"{c.reference} ({c.describe()}) does not fit: {c.pruned}")
        else:
            feasible.append(c)
    if not any(c.pruned is None and np.isfinite(c.est_s) for c in feasible):
        raise ConfigurationError(_nothing_fits(inp, infeasible))
    # ---- refine the split around the best estimated asynchronous configurations (the coarse shares of
    # TRAIN_FRACTIONS bracket the balance of training and generation; whole units between them may be better)
    extra = _refine_splits(feasible, est, by_key)
    feasible += [c for c in extra if c.pruned is None]
    for c in extra:
        if c.pruned:
            reason = c.pruned.split(":")[0] + ": " + _short_reason(c.pruned)
            infeasible[reason] = infeasible.get(reason, 0) + 1
    # ---- simulate: references first, then rounds of the most promising
    ratios: dict[str, float] = {}
    simulated, rounds = 0, 0
    sim_by_cfg: dict[tuple, dict] = {}  # configuration without k -> the simulated AR result
    stop = "nothing left to simulate (every other configuration is estimated slower and no cheaper)"

    def cfg_key(c: Candidate) -> tuple:
        return (c.gpus, c.lag, c.gen_gpus, c.train_gpus, c.tp, c.ep, c.in_flight)

    def best_step() -> float:
        s = [c.step_s for c in feasible if c.sim]
        return min(s) if s else math.inf

    def bound(c: Candidate) -> float:
        return c.est_s * ratios.get(c.family, PRIOR_RATIO) * PRUNE_MARGIN

    def dominated(c: Candidate, best: float, done: list[tuple[float, float]]) -> bool:
        lb = bound(c)
        if lb < best:
            return False
        lb_gpuh = c.gpus * lb / 3600.0
        return any(s <= lb and h <= lb_gpuh for s, h in done)

    rate: list[float] = []  # seconds per simulation unit (sim_units) seen per round
    turn = 0
    while True:
        for c in feasible:  # dominance is judged afresh with the latest calibration (it only ever loosens it)
            if c.pruned == "dominated":
                c.pruned = None
        pending = [c for c in feasible if c.sim is None and c.pruned is None and np.isfinite(c.est_s)]
        done = [(c.step_s, c.gpu_hours_per_step) for c in feasible if c.sim]
        best = best_step()
        for c in pending:
            if not c.reference and dominated(c, best, done):
                c.pruned = "dominated"
        pending = [c for c in pending if c.pruned is None]
        # a k = 0 point is simulated by any speculative point of its configuration: never alone if one exists
        spec_cfgs = {cfg_key(c) for c in pending if c.k > 0}
        pending = [c for c in pending if c.k > 0 or cfg_key(c) not in spec_cfgs or c.reference]
        if not pending:
            break
        if simulated >= inp.max_simulations:
            stop = f"max_simulations ({inp.max_simulations}) reached"
            break
        # a round is ROUND_SIZE points whatever the worker count (the workers only run it), so the points chosen,
        # and the answer, do not depend on the machine's cores
        n = min(ROUND_SIZE, inp.max_simulations - simulated)
        affordable = pending
        if rate and inp.time_budget_s is not None:  # opt-in wall-clock budget: only what the time left allows (a
            # synchronous projection costs a fraction of an asynchronous one); machine-dependent by nature
            left = inp.time_budget_s - (time.perf_counter() - t0)
            affordable = [c for c in pending if sim_units(c) * max(rate) <= left]
            if not affordable:
                stop = f"time budget ({inp.time_budget_s:g} s) reached"
                break
        batch, turn = _next_batch(affordable, [c for c in feasible if c.sim], n, turn)
        if not batch:
            break
        ts = time.perf_counter()
        points = [c.kwargs(inp.base, workload_ep, workload_drafter) for c in batch]
        if progress:
            progress(f"simulating {len(batch)}: " + "; ".join(c.describe() for c in batch))
        recs = _simulate(points, inp)
        rate.append((time.perf_counter() - ts) / max(sim_units(c) for c in batch))
        rounds += 1
        simulated += len(batch)
        for c, rec in zip(batch, recs):
            kind = c.family or ("sync" if c.lag == 0 else "drain")
            res = _sim_result(rec, "speculative" if c.k else "autoregressive", kind)
            if res is None or "error" in res:
                c.pruned = f"simulation: {res['error'] if res else 'no result'}"
                continue
            c.sim = res
            ar = _sim_result(rec, "autoregressive", kind)
            if c.k and ar and "error" not in ar:  # the same configuration at k = 0, from the same projection
                z = next((o for o in feasible if cfg_key(o) == cfg_key(c) and o.k == 0), None)
                if z is not None and z.sim is None:
                    z.sim = ar
                    sim_by_cfg[cfg_key(c)] = ar
        # calibrate: the smallest simulated / estimated ratio per family
        for c in feasible:
            if c.sim and np.isfinite(c.est_s) and c.est_s > 0 and c.family:
                r = c.step_s / c.est_s
                ratios[c.family] = min(ratios.get(c.family, math.inf), r)
    done = [(c.step_s, c.gpu_hours_per_step) for c in feasible if c.sim]
    best_final = best_step()
    for c in feasible:  # the final verdict, with the final calibration
        if c.pruned == "dominated":
            c.pruned = None
        if c.sim is None and c.pruned is None and not c.reference and np.isfinite(c.est_s) and \
                dominated(c, best_final, done):
            c.pruned = "dominated"
    label = (f"{est.model.name} ({w.name}) on {est.hw.name}, engine {est.sc0.engine}, "
             f"{w.sequences_per_step:,} sequences/step")
    res = PlanResult(inp, feasible, refs, infeasible, simulated, rounds, time.perf_counter() - t0, stop, ratios,
                     workload_ep, workload_drafter, label)
    notes = list(ref_notes)
    tn = {c.train_note for c in feasible if c.sim and c.train_note}
    for n_ in sorted(tn):
        notes.append(n_)
    res.notes = notes
    return res


REFINE_TOP = 3  # asynchronous configurations whose split is refined
REFINE_STEPS = 3  # training units tried on either side of each


def _refine_splits(feasible: list[Candidate], est: Estimator, by_key: dict) -> list[Candidate]:
    w = est.workload
    unit = (w.training.tensor_model_parallel_size * w.training.pipeline_model_parallel_size
            * w.training.context_parallel_size)
    best: dict[tuple, Candidate] = {}
    for c in sorted((c for c in feasible if c.lag > 0 and c.pruned is None and np.isfinite(c.est_s)),
                    key=lambda c: c.est_s):
        g = (c.gpus, c.lag, c.tp, c.ep, c.k, c.drafter, c.in_flight)
        if g not in best:
            best[g] = c
        if len(best) >= REFINE_TOP:
            break
    new: list[Candidate] = []
    for c in best.values():
        for j in range(-REFINE_STEPS, REFINE_STEPS + 1):
            t = c.train_gpus + j * unit
            if j == 0 or t < unit or t >= c.gpus or (c.gpus - t) % c.tp:
                continue
            n = Candidate(c.gpus, c.lag, c.gpus - t, t, c.tp, c.ep, c.k, c.drafter, c.in_flight)
            if n.key in by_key:
                continue
            by_key[n.key] = n
            new.append(n)
    keys = []
    for n in new:
        try:
            _, _, lay = est.generation(n.tp, n.ep, n.k, n.drafter)
            keys.append((n.tp, n.ep, n.k, n.drafter, n.gen_gpus // lay.gpus))
        except RlsimError:
            pass
    est.prepare_generation(keys)
    for n in new:
        est.estimate(n)
    return new


def sim_units(c: Candidate) -> float:
    """Relative cost of simulating a candidate: batches generated (a synchronous projection one per mode; an
    asynchronous one draining before its syncs 4 measured steps from a start in the steady state, batches
    lag..lag + 3; with in-flight updates lag + 2 warm-up and 4 measured steps with lag more batches in flight),
    each over the step's sequences on the generation pool (pipeline/asynchronous.py)."""
    if c.lag == 0:
        return 1.0
    return float(2 * c.lag + 6) if c.in_flight else 4.0


GOALS = ("best", "reference", "front")


def _next_batch(pending: list[Candidate], done: list[Candidate], n: int, turn: int) -> tuple[list[Candidate], int]:
    """``n`` candidates to simulate, the slots taken in turn by three goals: the **best** step (the fastest
    estimate), the **references** still owed, and the **front** (the GPU count with the fewest simulated points,
    larger counts first: its fastest estimate). A goal with nothing to offer passes its slot on."""
    order = sorted(pending, key=lambda c: (c.est_s, c.lag, c.gpus, c.k))
    free = [c for c in order if not c.reference]
    refs = [c for c in order if c.reference]
    simulated_per_count: dict[int, int] = {}
    for c in done:
        simulated_per_count[c.gpus] = simulated_per_count.get(c.gpus, 0) + 1
    out: list[Candidate] = []

    def take(goal: str):
        if goal == "best":
            return next((c for c in free if c not in out), None)
        if goal == "reference":
            return next((c for c in refs if c not in out), None)
        counts = sorted({c.gpus for c in free}, key=lambda g: (simulated_per_count.get(g, 0)
                                                                + sum(o.gpus == g for o in out), -g))
        for g in counts:
            c = next((c for c in free if c.gpus == g and c not in out), None)
            if c is not None:
                return c
        return None

    while len(out) < n:
        for i in range(len(GOALS)):
            c = take(GOALS[(turn + i) % len(GOALS)])
            if c is not None:
                out.append(c)
                turn = (turn + i + 1) % len(GOALS)
                break
        else:
            break
    return out, turn


def _short_reason(msg: str) -> str:
    m = msg.split(":", 1)[1].strip() if ":" in msg else msg
    return m.split(";")[0][:160]


def _nothing_fits(inp: PlanInputs, infeasible: dict[str, int]) -> str:
    top = max(infeasible, key=infeasible.get) if infeasible else "no configuration in the search space"
    return f"no configuration fits {inp.gpus} GPUs: {top}"


__all__ = ["Candidate", "DrafterOption", "Estimator", "PlanInputs", "PlanResult", "command", "enumerate_candidates",
           "fluid_decode_s", "plan"]
