"""Batch-adaptive k: a schedule of num_speculative_tokens by live decode batch size, and its optimiser.

A schedule is vLLM's ``num_speculative_tokens_per_batch_size``: ``[[start, end, k], ...]``, inclusive
batch-size ranges, each with the k used by an iteration whose decode batch lies in it. The engine
applies it per iteration (``SpecPolicy.k_for_batch``; ``Setup.policy`` builds it from the scenario).

Why k should depend on the batch: one round of a decoding sequence yields AL(k) tokens on average
(the acceptance model) and costs an iteration of B*(k+1) verified tokens plus k draft passes (the
cost model). At small B the iteration is memory-bound (weights are read once whatever the token
count), so verifying more drafts is nearly free and large k wins; at large B verification turns
compute-bound and every rejected draft costs real FLOPs, so small k (or none) wins. RL rollouts
start with every sequence decoding (large B) and end in a long tail of few sequences (small B).

The optimiser is pure: it takes a cost model (``IterationCostModel``), an acceptance model (or a
function k -> mean tokens per round) and the KV context at each batch size, and returns the k that
maximises goodput per iteration, ``B * AL(k) / t_iter(B, k, KV)``, for every batch size B. At a fixed
B every live sequence advances AL(k) tokens per iteration, so maximising goodput is also minimising
each sequence's time per token (the long tail's latency): the per-B optimum is the rollout optimum
as long as scheduling (admission, preemption) does not depend on k.

Switching cost. vLLM captures CUDA graphs per token count; with speculation the uniform decode
query length is k+1, so every distinct k of a schedule (a "tier") needs its own graphs for the
target and for the drafter. ``cuda_graph_cost`` counts those graphs and charges engineering
estimates of their memory and capture time (``CUDA_GRAPH``): the memory is taken from each
replica's KV cache, the capture time is a one-off at engine start-up (graphs survive vLLM's sleep
mode between RL steps), amortised over the run's steps. Only the tiers beyond the first count
against a schedule when it is compared with a fixed k, which needs one tier itself.

This module must not import the pipeline or report stages.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

from ..costmodel import IterationBatch, IterationCostModel
from ..errors import ConfigurationError
from .acceptance import AcceptanceModel

Schedule = list[tuple[int, int, int]]

# CUDA-graph cost per captured graph, per decoder layer of the network captured. Engineering
# estimates from vLLM's start-up log of an 8B dense model ("Graph capturing finished in ~13 s, took
# ~0.5 GiB" for ~67 capture sizes of 32 layers: ~0.25 MB and ~6 ms per graph and layer); not
# measured here. Parametrise through ``cuda_graph_cost(..., constants=...)``.
CUDA_GRAPH = {"bytes_per_graph_per_layer": 0.25e6, "capture_s_per_graph_per_layer": 6e-3}


# ---------------------------------------------------------------------------------------------- schedules
def parse_k_schedule(text: str | Sequence) -> Schedule:
    """Parse ``"1-16:5,17-64:3,65-128:1,129-100000:0"`` or JSON ``[[1,16,5],[17,64,3],...]`` (a string or a
    list) into ``[(start, end, k), ...]``. Validation (overlaps, gaps, k range) is ``validate_k_schedule``."""
    if not isinstance(text, str):
        items = list(text)
    else:
        s = text.strip()
        if not s:
            raise ConfigurationError("empty k schedule; expected e.g. '1-16:5,17-64:3,65-1024:0'")
        if s.startswith("["):
            try:
                items = json.loads(s)
            except json.JSONDecodeError as e:
                raise ConfigurationError(f"k schedule {text!r} is not valid JSON: {e.msg}") from None
        else:
            items = []
            for part in s.split(","):
                m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*:\s*(-?\d+)\s*", part)
                if not m:
                    m1 = re.fullmatch(r"\s*(\d+)\s*:\s*(-?\d+)\s*", part)  # a single batch size "16:5"
                    if not m1:
                        raise ConfigurationError(
                            f"k schedule entry {part.strip()!r} is not START-END:K (e.g. '17-64:3'); whole schedule: {text!r}")
                    items.append([int(m1.group(1)), int(m1.group(1)), int(m1.group(2))])
                    continue
                items.append([int(m.group(1)), int(m.group(2)), int(m.group(3))])
    out: Schedule = []
    for it in items:
        if not isinstance(it, (list, tuple)) or len(it) != 3 or not all(isinstance(x, (int, np.integer)) for x in it):
            raise ConfigurationError(f"k schedule entry {it!r} is not [start, end, k] of three integers")
        out.append((int(it[0]), int(it[1]), int(it[2])))
    return out


def validate_k_schedule(schedule: Sequence, max_k: int | None = None, max_batch: int | None = None) -> Schedule:
    """Check a schedule and return it sorted. Ranges are inclusive, must start at batch size 1, follow one
    another without gaps or overlaps, and reach ``max_batch`` (the engine's max_num_seqs) if given;
    each k must lie in 0..max_k."""
    sched = [tuple(int(x) for x in e) for e in schedule]
    if not sched:
        raise ConfigurationError("empty k schedule; expected e.g. [[1, 16, 5], [17, 64, 3], [65, 1024, 0]]")
    for lo, hi, k in sched:
        if lo < 0 or hi < lo or hi < 1:
            raise ConfigurationError(f"k schedule range {lo}-{hi}: need 0 <= start <= end and end >= 1")
        if k < 0 or (max_k is not None and k > max_k):
            raise ConfigurationError(
                f"k schedule range {lo}-{hi} has k = {k}; allowed: 0..{max_k if max_k is not None else 'inf'}"
                + (" (the engine's max_num_speculative_tokens)" if max_k is not None else ""))
    sched.sort()
    if sched[0][0] > 1:  # batch 0 (no decoding sequence) needs no k; 0 or 1 may start the schedule
        raise ConfigurationError(f"k schedule starts at batch size {sched[0][0]}; batch sizes 1-{sched[0][0] - 1} "
                                 f"have no k (add e.g. '1-{sched[0][0] - 1}:{sched[0][2]}')")
    for (lo1, hi1, _), (lo2, hi2, _) in zip(sched, sched[1:]):
        if lo2 <= hi1:
            raise ConfigurationError(f"k schedule ranges {lo1}-{hi1} and {lo2}-{hi2} overlap (batch sizes "
                                     f"{lo2}-{min(hi1, hi2)} appear twice)")
        if lo2 > hi1 + 1:
            missing = f"batch size {hi1 + 1} has" if lo2 == hi1 + 2 else f"batch sizes {hi1 + 1}-{lo2 - 1} have"
            raise ConfigurationError(f"k schedule has a gap: {missing} no k (between ranges {lo1}-{hi1} and {lo2}-{hi2})")
    if max_batch is not None and sched[-1][1] < max_batch:
        hi = sched[-1][1]
        raise ConfigurationError(f"k schedule ends at batch size {hi} but the engine runs up to max_num_seqs = {max_batch}: "
                                 f"batch sizes {hi + 1}-{max_batch} have no k (add e.g. '{hi + 1}-{max_batch}:0')")
    return [tuple(e) for e in sched]  # type: ignore[misc]


def format_k_schedule(schedule: Iterable) -> str:
    return ",".join(f"{lo}-{hi}:{k}" for lo, hi, k in schedule)


def k_for_batch(schedule: Sequence) -> Callable[[int], int]:
    """The schedule as a function batch size -> k (0 outside every range, e.g. batch 0)."""
    s = validate_k_schedule(schedule)
    his = np.array([e[1] for e in s])
    ks = [e[2] for e in s]
    lo0 = s[0][0]

    def f(b: int) -> int:
        if b < lo0:
            return 0
        i = int(np.searchsorted(his, b))
        return ks[i] if i < len(ks) else 0

    return f


def schedule_tiers(schedule: Sequence, max_batch: int | None = None) -> list[int]:
    """Distinct k values a schedule uses (over batch sizes 1..max_batch if given)."""
    out = set()
    for lo, hi, k in schedule:
        if max_batch is None or lo <= max_batch:
            out.add(int(k))
    return sorted(out)


# ---------------------------------------------------------------------------------------------- KV by batch size
def context_by_batch(prompts: np.ndarray, responses: np.ndarray, shards: Sequence[np.ndarray],
                     max_batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Representative KV tokens per live sequence when B sequences of a replica are decoding, and the
    decode span (response tokens per sequence) a replica spends at each B, for B = 1..max_batch.

    Assumes a replica admits its whole shard at once (true when the KV cache holds it): sequences
    then decode together and leave shortest first, so while B are live they are the B longest, at
    a response position between the (B+1)-th and the B-th longest lengths. Returns (context[B-1],
    span[B-1]) averaged over replicas; batch sizes larger than any shard get the start of decoding."""
    ctx_sum = np.zeros(max_batch)
    span_sum = np.zeros(max_batch)
    n = np.zeros(max_batch)
    for idx in shards:
        if len(idx) == 0:
            continue
        order = np.argsort(-responses[idx], kind="stable")
        N = responses[idx][order].astype(float)
        P = prompts[idx][order].astype(float)
        S = min(len(N), max_batch)
        nxt = np.concatenate([N[1:], [0.0]])[:S]
        mid = 0.5 * (N[:S] + nxt)  # response position while exactly B are live
        ctx = np.cumsum(P[:S]) / np.arange(1, S + 1) + mid
        ctx_sum[:S] += ctx
        span_sum[:S] += N[:S] - nxt
        n[:S] += 1
    ctx = np.where(n > 0, ctx_sum / np.maximum(n, 1), np.nan)
    # larger batches than any replica holds: decoding has just started
    last = np.flatnonzero(n > 0)
    if last.size:
        j = last[-1]
        ctx[j + 1:] = ctx[j]
        ctx = np.where(np.isnan(ctx), ctx[j], ctx)
    else:
        ctx[:] = float(np.mean(prompts)) if len(prompts) else 1.0
    span = span_sum / max(len([s for s in shards if len(s)]), 1)
    return ctx, span


# ---------------------------------------------------------------------------------------------- goodput
@dataclass
class GoodputTable:
    batch_sizes: np.ndarray  # B
    ks: np.ndarray  # candidate k
    tokens_per_round: np.ndarray  # AL(k) per candidate k
    iteration_s: np.ndarray  # [len(B), len(ks)]
    context_tokens: np.ndarray  # KV per live sequence used at each B

    @property
    def goodput(self) -> np.ndarray:
        """Tokens per second of the replica at each (B, k): B * AL(k) / t_iter."""
        return self.batch_sizes[:, None] * self.tokens_per_round[None, :] / self.iteration_s

    @property
    def time_per_token_s(self) -> np.ndarray:
        """Seconds per generated token of one live sequence at each (B, k): t_iter / AL(k)."""
        return self.iteration_s / self.tokens_per_round[None, :]

    @property
    def best_k(self) -> np.ndarray:
        return self.ks[np.argmax(self.goodput, axis=1)]

    def k_index(self, k: int) -> int:
        hits = np.flatnonzero(self.ks == k)
        if not hits.size:
            raise ConfigurationError(f"k = {k} is not among the candidates {self.ks.tolist()}")
        return int(hits[0])


def goodput_table(cost: IterationCostModel, acceptance: AcceptanceModel | Callable[[int], float],
                  batch_sizes: Sequence[int], ks: Sequence[int], context_tokens: float | Sequence[float]) -> GoodputTable:
    """Iteration time and goodput of a pure-decode iteration at every (batch size, k).

    ``acceptance``: an AcceptanceModel (evaluated at each k with ``at_k``) or a function k -> mean
    tokens per round. ``context_tokens``: KV tokens per live sequence, one value or one per batch size."""
    B = np.asarray(list(batch_sizes), dtype=np.int64)
    K = np.asarray(sorted(set(int(k) for k in ks)), dtype=np.int64)
    if B.size == 0 or K.size == 0 or B.min() < 1 or K.min() < 0:
        raise ConfigurationError("goodput_table needs batch sizes >= 1 and k >= 0")
    ctx = np.broadcast_to(np.asarray(context_tokens, dtype=float), B.shape).copy()
    if callable(acceptance) and not isinstance(acceptance, AcceptanceModel):
        al = np.array([1.0 if k == 0 else float(acceptance(int(k))) for k in K])
    else:
        al = np.array([acceptance.at_k(int(k)).acceptance_length for k in K])
    t = np.empty((B.size, K.size))
    for j, k in enumerate(K):
        b = IterationBatch(n_decode=B.astype(float), k=np.full(B.size, float(k)), decode_kv_tokens=B * ctx)
        t[:, j] = cost.iteration_time_s(b)
    return GoodputTable(B, K, al, t, ctx)


def optimal_schedule(table: GoodputTable, span: Sequence[float] | None = None, max_tiers: int | None = None,
                     max_batch: int | None = None) -> Schedule:
    """The schedule of k by batch size that maximises goodput per iteration.

    Without ``max_tiers``: the per-batch-size argmax, with equal neighbours merged into ranges. With
    ``max_tiers`` (a bound on distinct k, i.e. on CUDA-graph tiers): contiguous ranges of the argmax
    are merged by dynamic programming to minimise the decode time sum_B span_B * t_iter(B, k) / AL(k)
    (``span``: response tokens per sequence decoded at each batch size, e.g. from ``context_by_batch``;
    uniform if not given). The last range is extended to ``max_batch``."""
    B = table.batch_sizes
    best = table.best_k
    runs: list[list[int]] = []  # [start index, end index, k]
    for i, k in enumerate(best):
        if runs and runs[-1][2] == k:
            runs[-1][1] = i
        else:
            runs.append([i, i, int(k)])
    if max_tiers is not None and max_tiers < 1:
        raise ConfigurationError(f"max_tiers = {max_tiers}; allowed: >= 1")
    if max_tiers is not None and len({r[2] for r in runs}) > max_tiers:
        w = np.ones(B.size) if span is None else np.asarray(span, dtype=float)[: B.size]
        w = np.maximum(w, 1e-9)  # every batch size counts a little, so ties break towards the argmax
        tpt = table.time_per_token_s  # [B, K]
        cum = np.vstack([np.zeros(tpt.shape[1]), np.cumsum(w[:, None] * tpt, axis=0)])
        R = len(runs)

        def seg(a: int, b: int) -> tuple[float, int]:  # runs a..b-1 as one range
            lo, hi = runs[a][0], runs[b - 1][1] + 1
            c = cum[hi] - cum[lo]
            j = int(np.argmin(c))
            return float(c[j]), int(table.ks[j])

        # contiguous ranges, each one k; the number of distinct k is bounded by the number of ranges
        INF = float("inf")
        f = [[INF] * (R + 1) for _ in range(max_tiers + 1)]
        arg: dict = {}
        f[0][0] = 0.0
        for t in range(1, max_tiers + 1):
            for b in range(1, R + 1):
                for a in range(0, b):
                    if f[t - 1][a] == INF:
                        continue
                    c, k = seg(a, b)
                    if f[t - 1][a] + c < f[t][b]:
                        f[t][b] = f[t - 1][a] + c
                        arg[(t, b)] = (a, k)
        t_best = min(range(1, max_tiers + 1), key=lambda t: f[t][R])
        merged, b, t = [], R, t_best
        while b > 0:
            a, k = arg[(t, b)]
            merged.append([runs[a][0], runs[b - 1][1], k])
            b, t = a, t - 1
        runs = merged[::-1]
        # neighbours that ended up with the same k become one range
        out_runs: list[list[int]] = []
        for r in runs:
            if out_runs and out_runs[-1][2] == r[2]:
                out_runs[-1][1] = r[1]
            else:
                out_runs.append(list(r))
        runs = out_runs
    sched = [(int(B[a]), int(B[b]), int(k)) for a, b, k in runs]
    if max_batch is not None and sched[-1][1] < max_batch:
        lo, _, k = sched[-1]
        sched[-1] = (lo, int(max_batch), k)
    return sched


def decode_time_estimate_s(table: GoodputTable, span: Sequence[float], k_of_batch: Callable[[int], int]) -> float:
    """Analytic decode time of one replica (sum over batch sizes of span * time per token) under a k policy."""
    tpt = table.time_per_token_s
    w = np.asarray(span, dtype=float)[: table.batch_sizes.size]
    idx = [table.k_index(k_of_batch(int(b))) for b in table.batch_sizes]
    return float(np.sum(w * tpt[np.arange(table.batch_sizes.size), idx]))


# ---------------------------------------------------------------------------------------------- switching cost
def vllm_capture_sizes(max_tokens: int) -> list[int]:
    """vLLM's default CUDA-graph capture sizes (token counts): 1, 2, 4, 8..248 step 8, 256.. step 16."""
    sizes = [1, 2, 4] + list(range(8, 256, 8)) + list(range(256, max_tokens + 1, 16))
    return [s for s in sizes if s <= max_tokens]


@dataclass(frozen=True)
class CudaGraphCost:
    tiers: tuple[int, ...]  # distinct k
    graphs_target: int
    graphs_draft: int
    bytes_per_gpu: float
    capture_s: float  # per replica, once per engine start

    def minus(self, other: "CudaGraphCost") -> "CudaGraphCost":
        """Extra cost over another configuration (never negative)."""
        return CudaGraphCost(self.tiers, max(self.graphs_target - other.graphs_target, 0),
                             max(self.graphs_draft - other.graphs_draft, 0),
                             max(self.bytes_per_gpu - other.bytes_per_gpu, 0.0), max(self.capture_s - other.capture_s, 0.0))

    def as_dict(self) -> dict:
        return {"tiers": list(self.tiers), "graphs_target": self.graphs_target, "graphs_draft": self.graphs_draft,
                "bytes_per_gpu": self.bytes_per_gpu, "capture_s": self.capture_s}


def cuda_graph_cost(schedule: Sequence, max_capture_tokens: int, target_layers: int, draft_layers: int = 0,
                    max_batch: int | None = None, constants: dict | None = None) -> CudaGraphCost:
    """CUDA graphs a schedule needs: per tier (distinct k), the capture sizes that its batches' token
    counts B*(k+1) round up to (batches above the largest size run eagerly), for the target and, with
    a model-based drafter (``draft_layers`` > 0), as many for the drafter. A fixed k is the schedule
    ``[(1, max_batch, k)]``."""
    c = dict(CUDA_GRAPH, **(constants or {}))
    sizes = np.asarray(vllm_capture_sizes(max_capture_tokens))
    # ranges of one k share their graphs: count per distinct (k, size) pair
    graphs, draft_graphs = _dedupe_graphs(schedule, sizes, max_batch, draft_layers)
    b = c["bytes_per_graph_per_layer"] * (graphs * target_layers + draft_graphs * draft_layers)
    t = c["capture_s_per_graph_per_layer"] * (graphs * target_layers + draft_graphs * draft_layers)
    return CudaGraphCost(tuple(schedule_tiers(schedule, max_batch)), graphs, draft_graphs, b, t)


def _dedupe_graphs(schedule, sizes, max_batch, draft_layers) -> tuple[int, int]:
    per_k: dict[int, set] = {}
    for lo, hi, k in schedule:
        if max_batch is not None:
            hi = min(hi, max_batch)
        q = k + 1
        b_hi = min(hi, int(sizes[-1]) // q) if sizes.size else 0
        if b_hi < lo:
            continue
        tok = np.arange(lo, b_hi + 1) * q
        per_k.setdefault(k, set()).update(int(x) for x in sizes[np.searchsorted(sizes, tok)])
    target = sum(len(v) for v in per_k.values())
    draft = sum(len(v) for k, v in per_k.items() if k > 0) if draft_layers > 0 else 0
    return target, draft


# ---------------------------------------------------------------------------------------------- tree shapes
@dataclass(frozen=True)
class Shape:
    """A draft per round: a chain (``tree`` None, ``steps`` drafts) or a tree (SGLang's (steps, topk, draft
    tokens) or a static vLLM tree)."""

    label: str
    steps: int
    topk: int
    draft_tokens: int  # tokens verified per sequence, root included
    tree: object = None  # rlsim.speculation.trees.DraftTree
    acceptance_length: float = 1.0

    @property
    def is_chain(self) -> bool:
        return self.tree is None

    @property
    def engine_k(self) -> int:
        return self.draft_tokens - 1

    def as_dict(self) -> dict:
        d = {"label": self.label, "kind": "chain" if self.is_chain else self.tree.kind, "num_steps": self.steps,
             "eagle_topk": self.topk, "num_draft_tokens": self.draft_tokens, "acceptance_length": self.acceptance_length}
        if self.tree is not None and self.tree.kind == "vllm":
            d["speculative_token_tree"] = str([tuple(n) for n in self.tree.nodes])
        return d


def bundle_tree_text(branches: int, depth: int) -> str:
    """A static tree vLLM 0.17.1's propose_tree can draft: the first draft position's top ``branches`` tokens, each
    continued by a chain to ``depth`` (every node of a level has the same number of children)."""
    return str([tuple([r] + [0] * j) for j in range(depth) for r in range(branches)])


def shape_candidates(chain_rates: Sequence[float], steps_max: int, topks: Sequence[int], draft_tokens: Sequence[int],
                     dynamic: bool, verification: str = "tree", rank_decay: float | None = None,
                     table=None) -> list[Shape]:
    """Chains of 1..steps_max drafts and trees: SGLang's (steps, topk, draft tokens) for every steps in 2..steps_max,
    topk > 1 and draft-token count that the steps can fill (``dynamic``), else static bundles of topk chains of
    depth 2..steps_max (vLLM's static trees). Each with its expected AL (rlsim/speculation/trees.py)."""
    from .trees import (DEFAULT_RANK_DECAY, RankAcceptance, build_tree, sglang_max_draft_tokens, tree_acceptance)

    base = AcceptanceModel(tuple(chain_rates))
    out = [Shape(f"chain k={s}", s, 1, s + 1, None, base.at_k(s).acceptance_length) for s in range(1, steps_max + 1)]
    decay = DEFAULT_RANK_DECAY if rank_decay is None else rank_decay
    for s in range(2, steps_max + 1):
        acc = RankAcceptance(base.at_k(s).conditional_rates, decay) if table is None else RankAcceptance(table=table)
        for K in sorted({int(x) for x in topks if int(x) > 1}):
            if dynamic:
                for n in sorted({int(x) for x in draft_tokens}):
                    if n < 2 or n > min(sglang_max_draft_tokens(s, K), 128) or n <= s:
                        continue
                    t = build_tree(steps=s, topk=K, draft_tokens=n, acc=acc)
                    if t.is_chain:
                        continue
                    out.append(Shape(f"tree {s}/{K}/{n}", s, K, n, t, tree_acceptance(t, acc, verification).acceptance_length))
            else:
                t = build_tree(token_tree=bundle_tree_text(K, s), acc=acc)
                if t.engine_k + 1 > 128:
                    continue
                out.append(Shape(f"tree {K}x{s}", s, K, t.engine_k + 1, t, tree_acceptance(t, acc, verification).acceptance_length))
    return out


@dataclass
class ShapeTable:
    batch_sizes: np.ndarray
    shapes: list
    iteration_s: np.ndarray  # [B, shape]
    feasible: np.ndarray  # [B, shape] bool: fits the memory limit and the step's token budget
    context_tokens: np.ndarray

    @property
    def goodput(self) -> np.ndarray:
        al = np.array([s.acceptance_length for s in self.shapes])
        g = self.batch_sizes[:, None] * al[None, :] / self.iteration_s
        return np.where(self.feasible, g, 0.0)

    def best(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        """(index of the best shape, its goodput) per batch size among chains or trees (-1 where none fits)."""
        sel = np.array([s.is_chain == (which == "chain") for s in self.shapes])
        g = np.where(sel[None, :], self.goodput, -1.0)
        i = np.argmax(g, axis=1)
        v = g[np.arange(g.shape[0]), i]
        return np.where(v > 0, i, -1), np.maximum(v, 0.0)

    def crossover(self) -> int | None:
        """The smallest batch size from which on the best chain's goodput is at least the best tree's (None: the
        tree pays at every batch size of the table; 1: never)."""
        _, gc = self.best("chain")
        _, gt = self.best("tree")
        pays = gt > gc
        if pays.all():
            return None
        last = np.flatnonzero(pays)
        if not last.size:
            return int(self.batch_sizes[0])
        j = int(last[-1]) + 1
        return int(self.batch_sizes[j]) if j < self.batch_sizes.size else None


def shape_table(cost_for: Callable[[Shape], IterationCostModel], shapes: Sequence[Shape], batch_sizes: Sequence[int],
                context_tokens: float | Sequence[float], kv_capacity_tokens: float | None = None,
                max_batched_tokens: float | None = None) -> ShapeTable:
    """Iteration time (pure decode, each sequence at its context) and feasibility of every shape at every batch
    size: a shape fits at B if B (context + verified tokens) fits the KV capacity (the memory limit) and B x
    verified tokens the step's token budget."""
    B = np.asarray(list(batch_sizes), dtype=np.int64)
    ctx = np.broadcast_to(np.asarray(context_tokens, dtype=float), B.shape).copy()
    t = np.empty((B.size, len(shapes)))
    ok = np.ones((B.size, len(shapes)), bool)
    for j, s in enumerate(shapes):
        b = IterationBatch(n_decode=B.astype(float), k=np.full(B.size, float(s.engine_k)), decode_kv_tokens=B * ctx)
        t[:, j] = cost_for(s).iteration_time_s(b)
        if kv_capacity_tokens is not None:
            ok[:, j] &= B * (ctx + s.draft_tokens) <= kv_capacity_tokens
        if max_batched_tokens is not None:
            ok[:, j] &= B * s.draft_tokens <= max_batched_tokens
    return ShapeTable(B, list(shapes), t, ok, ctx)


__all__ = ["CUDA_GRAPH", "CudaGraphCost", "GoodputTable", "Schedule", "context_by_batch", "cuda_graph_cost",
           "decode_time_estimate_s", "format_k_schedule", "goodput_table", "k_for_batch", "optimal_schedule",
           "parse_k_schedule", "schedule_tiers", "validate_k_schedule", "vllm_capture_sizes", "Shape", "ShapeTable",
           "bundle_tree_text", "shape_candidates", "shape_table"]
