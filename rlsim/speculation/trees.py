"""Draft trees: their shape, their acceptance, and retrieved candidates merged into them.

A round of tree speculation drafts several candidates per position and verifies all of them in one target
pass (a tree attention mask: each draft token attends to the context and to its own ancestors). The round
advances the sequence by the longest accepted root-to-node path + 1 (the bonus or corrected token).

Shapes (``DraftTree``), in the two engines' own terms:

- **SGLang** (``--speculative-num-steps S --speculative-eagle-topk K --speculative-num-draft-tokens N``):
  a dynamic tree. Step 1 keeps the draft's top-K tokens; each later step expands the K current leaves into
  K children each and keeps the K best of those K^2 by cumulative draft score; the verified tree is the
  N - 1 best-scoring of all candidates plus the root (sglang 0.5.23 srt/speculative/spec_utils.py
  ``_select_top_k_tokens_later``, eagle_utils.py ``organize_draft_results``). topk 1 requires N = S + 1 (a
  chain; SGLang adjusts N, srt/arg_groups/speculative_hook.py:1255-1266). The draft runs S passes, the
  later ones K tokens wide.
- **vLLM** (``--speculative-token-tree "[(0,), (1,), (0, 0), ...]"``, vLLM's ``speculative_token_tree``): a
  static tree of rank paths ((0, 1) = the second-ranked child of the top-ranked first token), sorted
  breadth-first (vllm 0.17.1 config/speculative.py:563-569). vLLM's ``propose_tree`` expands every node of
  a level into the same number of children, its top ranks (v1/spec_decode/eagle.py:255-266, 1118-1126).

The modelled dynamic tree is the one SGLang's selection builds when the draft's scores equal the modelled
acceptance probabilities (EAGLE-2's premise: a draft's confidence tracks acceptance): the expected shape, a
static tree, priced and accepted as such.

**Acceptance (an assumption, stated).** No per-depth, per-rank acceptance table has been measured for the
catalog's models. rlsim's model: given a node on the accepted path at depth d - 1, its child of draft rank
r is accepted with probability

    p(d, 0) = c_d                                   (the chain's conditional rate at position d)
    p(d, r) = (1 - c_d) (1 - mu) mu^(r - 1),  r >= 1 (each further rank catches a share 1 - mu of what the
                                                      better ranks missed; mu = ``rank_decay``)

The events of siblings are disjoint (the target keeps one token per position). With c = 0.8 and mu = 0.7
the draft's top 2 / 4 / 8 hold the target's token 86% / 93% / 97% of the time. ``mu`` is exposed
(``--tree-rank-decay``, default ``DEFAULT_RANK_DECAY``); a measured table replaces the whole model
(``--tree-acceptance``: rows by depth, columns by rank). P(accepted path >= d) is the sum over the tree's
depth-d nodes of the product of p along their path.

**Verification.** ``tree``: tree-aware rejection (SGLang's ``tree_speculative_sampling_target_only``,
EAGLE's reference code). ``chain``: vLLM 0.17.1's rejection sampler verifies the breadth-first flattened
tree as a chain (v1/sample/rejection_sampler.py: one loop over positions, no tree in v1/sample or
v1/worker): draft j is checked against the target's prediction after draft j - 1, so it can be accepted
only when its parent is draft j - 1. Any tree whose first level has two or more nodes then accepts at most
one token per round (a sibling's chance to match the next position is taken as 0).

**Retrieval** (``--retrieval-tokens R``): R tokens retrieved by an n-gram / suffix match over the context
(as SuffixDecoding and Graft do) are merged into the tree as one more branch from the root. Its acceptance
is its own chain (``--retrieval-acceptance-length``, AL of the retrieved candidate verified alone at R,
constant per-token rate), assumed independent of the model tree's: the round accepts the longer of the two
paths.

This module must not import the pipeline, engine or report stages.
"""

from __future__ import annotations

import ast
import heapq
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigurationError
from .acceptance import AcceptanceModel, _solve_constant_rate

# Upper bounds (with the reason): a tree's verified tokens per sequence and its depth
MAX_TREE_TOKENS = 128
TREE_TOKENS_WHY = "vLLM's rejection sampler takes at most MAX_SPEC_LEN = 128 draft tokens per request"
MAX_TREE_DEPTH = 16
TREE_DEPTH_WHY = "each level is one more draft pass per round; the study measured chains up to 7"
MAX_TOPK = 16
TOPK_WHY = "each later draft step expands topk^2 candidates per sequence; SGLang's auto settings use up to 4-8"
# Default rank decay mu (the assumption above): a further draft rank catches 30% of the miss mass left
DEFAULT_RANK_DECAY = 0.7


# ------------------------------------------------------------------------------------------------ shapes
@dataclass(frozen=True)
class DraftTree:
    """A draft tree: ``nodes`` are rank paths sorted breadth-first (vLLM's speculative_token_tree form).

    ``kind``: "sglang" (dynamic; drafted ``steps`` passes, ``topk`` wide) or "vllm" (static, drafted level by
    level). ``retrieval_tokens``: a retrieved branch verified beside the drafted nodes."""

    nodes: tuple[tuple[int, ...], ...]
    kind: str = "vllm"
    steps: int = 0
    topk: int = 1
    draft_tokens: int = 0  # SGLang's num_draft_tokens (root included); vLLM: len(nodes) + 1
    retrieval_tokens: int = 0
    label: str = ""

    @property
    def n_nodes(self) -> int:
        """Drafted tokens verified per sequence (vLLM's num_speculative_tokens for a tree)."""
        return len(self.nodes)

    @property
    def engine_k(self) -> int:
        """Speculative tokens verified per sequence and round (drafted + retrieved): the engine's k."""
        return len(self.nodes) + self.retrieval_tokens

    @property
    def depth(self) -> int:
        return max((len(n) for n in self.nodes), default=0)

    @property
    def level_counts(self) -> list[int]:
        c = [0] * self.depth
        for n in self.nodes:
            c[len(n) - 1] += 1
        return c

    @property
    def draft_passes(self) -> int:
        """Draft forward passes per round: SGLang's steps; vLLM's tree depth."""
        return self.steps if self.kind == "sglang" else self.depth

    @property
    def is_chain(self) -> bool:
        return self.retrieval_tokens == 0 and all(c == 1 for c in self.level_counts)

    def describe(self) -> str:
        base = (f"SGLang tree: num_steps {self.steps}, eagle_topk {self.topk}, num_draft_tokens {self.draft_tokens}"
                if self.kind == "sglang" else f"vLLM speculative_token_tree of {self.n_nodes} nodes")
        r = f" + {self.retrieval_tokens} retrieved tokens" if self.retrieval_tokens else ""
        return f"{base} (depth {self.depth}, levels {self.level_counts}){r}"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "num_steps": self.steps, "eagle_topk": self.topk, "num_draft_tokens": self.draft_tokens,
                "nodes": [list(n) for n in self.nodes], "depth": self.depth, "level_counts": self.level_counts,
                "verified_tokens_per_sequence": self.engine_k + 1, "retrieval_tokens": self.retrieval_tokens,
                "draft_passes": self.draft_passes}


def chain_tree(k: int) -> DraftTree:
    return DraftTree(tuple((0,) * (i + 1) for i in range(k)), "vllm", k, 1, k + 1)


def parse_token_tree(text: str) -> tuple[tuple[int, ...], ...]:
    """vLLM's ``speculative_token_tree`` string -> rank paths sorted breadth-first, checked as vLLM 0.17.1's
    ``propose_tree`` needs them (every prefix present; each node of a level with the same number of children,
    ranks 0..c-1)."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError(f"--speculative-token-tree = {text!r}; allowed: a list of rank tuples, e.g. "
                                 "'[(0,), (1,), (0, 0)]' (vLLM's speculative_token_tree)")
    try:
        raw = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise ConfigurationError(f"--speculative-token-tree = {text!r} is not a Python literal; allowed: a list of "
                                 "rank tuples, e.g. '[(0,), (1,), (0, 0)]'") from None
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ConfigurationError(f"--speculative-token-tree = {text!r}; allowed: a non-empty list of rank tuples, "
                                 "e.g. '[(0,), (1,), (0, 0)]'")
    if len(raw) > MAX_TREE_TOKENS - 1:
        raise ConfigurationError(f"--speculative-token-tree has {len(raw)} nodes; allowed: 1..{MAX_TREE_TOKENS - 1} "
                                 f"({TREE_TOKENS_WHY})")
    nodes = []
    for p in raw:
        if not isinstance(p, (list, tuple)) or not p or not all(isinstance(x, int) and not isinstance(x, bool)
                                                                and 0 <= x < MAX_TOPK for x in p):
            raise ConfigurationError(f"--speculative-token-tree node {p!r}; allowed: a non-empty tuple of ranks "
                                     f"0..{MAX_TOPK - 1}, e.g. (0, 1)")
        if len(p) > MAX_TREE_DEPTH:
            raise ConfigurationError(f"--speculative-token-tree node {tuple(p)} has depth {len(p)}; allowed: "
                                     f"1..{MAX_TREE_DEPTH} ({TREE_DEPTH_WHY})")
        nodes.append(tuple(p))
    if len(set(nodes)) != len(nodes):
        dup = next(n for n in nodes if nodes.count(n) > 1)
        raise ConfigurationError(f"--speculative-token-tree lists node {dup} twice; allowed: each node once")
    have = set(nodes)
    for n in nodes:
        if len(n) > 1 and n[:-1] not in have:
            raise ConfigurationError(f"--speculative-token-tree node {n} has no parent {n[:-1]} in the tree; allowed: "
                                     "every prefix of a node is a node")
    nodes.sort(key=lambda t: (len(t), t))
    depth = max(len(n) for n in nodes)
    for d in range(1, depth + 1):
        parents = [()] if d == 1 else [n for n in nodes if len(n) == d - 1]
        kids = {p: sorted(n[-1] for n in nodes if len(n) == d and n[:-1] == p) for p in parents}
        counts = {len(v) for v in kids.values()}
        if len(counts) != 1 or any(v != list(range(len(v))) for v in kids.values()):
            raise ConfigurationError(
                f"--speculative-token-tree level {d}: children per node {[len(v) for v in kids.values()]} with ranks "
                f"{list(kids.values())}; allowed: every node of a level with the same number c of children, ranks "
                "0..c-1 (vLLM 0.17.1 propose_tree expands each node into its top c tokens, v1/spec_decode/eagle.py:255-266)")
    return tuple(nodes)


def check_sglang_params(steps: int, topk: int, draft_tokens: int | None) -> int:
    """SGLang's three tree parameters checked; returns num_draft_tokens (root included)."""
    from ..inputs import check_count

    check_count("--speculative-num-steps", steps, 1, MAX_TREE_DEPTH, TREE_DEPTH_WHY)
    check_count("--speculative-eagle-topk", topk, 1, MAX_TOPK, TOPK_WHY)
    if draft_tokens is None:
        if topk > 1:
            raise ConfigurationError(
                f"--speculative-eagle-topk {topk} needs --speculative-num-draft-tokens (the verified tree's tokens, root "
                f"included); allowed: 2..{min(sglang_max_draft_tokens(steps, topk), MAX_TREE_TOKENS)}")
        return steps + 1
    n_max = min(sglang_max_draft_tokens(steps, topk), MAX_TREE_TOKENS)
    n = check_count("--speculative-num-draft-tokens", draft_tokens, 2, MAX_TREE_TOKENS, TREE_TOKENS_WHY)
    if topk == 1 and n != steps + 1:
        raise ConfigurationError(
            f"--speculative-num-draft-tokens {n} with --speculative-eagle-topk 1: a chain of {steps} steps verifies "
            f"{steps + 1} tokens (SGLang adjusts it to num_steps + 1, speculative_hook.py:1255-1266); allowed: {steps + 1}")
    if n > n_max:
        raise ConfigurationError(
            f"--speculative-num-draft-tokens {n} exceeds the {n_max - 1} candidates (+ root) that {steps} steps of top-"
            f"{topk} draft (topk + (steps - 1) x topk^2); allowed: 2..{n_max}")
    return n


def sglang_max_draft_tokens(steps: int, topk: int) -> int:
    return 1 + topk + (steps - 1) * topk * topk


# ------------------------------------------------------------------------------------------------ acceptance
@dataclass(frozen=True)
class RankAcceptance:
    """P(the child of draft rank r is accepted | its parent is on the accepted path), by depth d = 1, 2, ...

    From the chain's conditional rates and a rank decay (the module's assumption), or a user's table
    (``table[d - 1][r]``; depths past its last row repeat the last row, ranks past a row's end are 0)."""

    chain_rates: tuple[float, ...] = ()
    rank_decay: float = DEFAULT_RANK_DECAY
    table: tuple[tuple[float, ...], ...] | None = None
    _memo: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    def __post_init__(self):
        if not (0.0 <= self.rank_decay < 1.0):
            raise ConfigurationError(f"--tree-rank-decay = {self.rank_decay!r}; allowed: 0 <= decay < 1 (the share of "
                                     "the miss mass that each further draft rank leaves)")

    def p(self, depth: int, rank: int) -> float:
        key = (depth, rank)
        v = self._memo.get(key)
        if v is not None:
            return v
        if self.table is not None:
            row = self.table[min(depth, len(self.table)) - 1]
            v = float(row[rank]) if rank < len(row) else 0.0
        else:
            rates = self.chain_rates
            c = float(rates[min(depth, len(rates)) - 1]) if rates else 0.0
            mu = self.rank_decay
            v = c if rank == 0 else (1.0 - c) * (1.0 - mu) * mu ** (rank - 1)
        self._memo[key] = v
        return v

    def describe(self) -> str:
        if self.table is not None:
            return f"per-depth, per-rank acceptance table ({len(self.table)} depths, given)"
        return (f"per-rank acceptance from the chain's per-position rates and rank decay {self.rank_decay:g} "
                "(an assumption: no measured per-rank table, docs/speculation-trees.md)")


def parse_acceptance_table(value) -> tuple[tuple[float, ...], ...]:
    """``--tree-acceptance``: JSON / Python list of rows (one per depth) of per-rank probabilities, e.g.
    ``[[0.8, 0.08, 0.04], [0.75, 0.1]]``; each in 0..1, each row summing to at most 1."""
    rows = value
    if isinstance(value, str):
        try:
            rows = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise ConfigurationError(f"--tree-acceptance = {value!r} is not a list of lists; allowed: rows by depth of "
                                     "per-rank probabilities, e.g. '[[0.8, 0.08, 0.04], [0.75, 0.1]]'") from None
    if not isinstance(rows, (list, tuple)) or not rows or len(rows) > MAX_TREE_DEPTH:
        raise ConfigurationError(f"--tree-acceptance = {value!r}; allowed: 1..{MAX_TREE_DEPTH} rows (one per depth) of "
                                 "per-rank probabilities, e.g. '[[0.8, 0.08, 0.04], [0.75, 0.1]]'")
    out = []
    for d, row in enumerate(rows):
        if not isinstance(row, (list, tuple)) or not row or len(row) > MAX_TOPK:
            raise ConfigurationError(f"--tree-acceptance row {d} = {row!r}; allowed: 1..{MAX_TOPK} probabilities (one "
                                     "per draft rank)")
        vals = []
        for r, x in enumerate(row):
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not (0.0 <= float(x) <= 1.0):
                raise ConfigurationError(f"--tree-acceptance[{d}][{r}] = {x!r}; allowed: a probability 0..1")
            vals.append(float(x))
        if sum(vals) > 1.0 + 1e-9:
            raise ConfigurationError(f"--tree-acceptance row {d} sums to {sum(vals):.4g}; allowed: at most 1 (the ranks "
                                     "of one position are disjoint events)")
        out.append(tuple(vals))
    return tuple(out)


def _parent(n: tuple[int, ...]) -> tuple[int, ...]:
    return n[:-1]


def path_survival(tree: DraftTree, acc: RankAcceptance, verification: str = "tree") -> np.ndarray:
    """P(accepted path >= d) for d = 1..depth of the drafted nodes (retrieved branch excluded)."""
    D = tree.depth
    surv = np.zeros(D)
    if verification == "chain":
        prev, prob = (), 1.0
        for d_i, n in enumerate(tree.nodes):
            if _parent(n) != prev:
                break
            prob *= acc.p(len(n), n[-1])
            surv[len(n) - 1] = prob
            prev = n
        return surv
    if verification != "tree":
        raise ConfigurationError(f"tree verification {verification!r}; allowed: tree, chain")
    reach = {(): 1.0}
    for n in tree.nodes:  # breadth-first: parents first
        r = reach[_parent(n)] * acc.p(len(n), n[-1])
        reach[n] = r
        surv[len(n) - 1] += r
    return np.minimum(surv, 1.0)


def survival_to_model(surv: np.ndarray) -> AcceptanceModel:
    """P(path >= d), d = 1..D (non-increasing) -> conditional rates (an AcceptanceModel of k = D)."""
    cond, prev = [], 1.0
    for s in np.asarray(surv, float):
        s = min(max(float(s), 0.0), prev)
        cond.append(0.0 if prev <= 0 else min(s / prev, 1.0))
        prev = s
    return AcceptanceModel(tuple(cond))


def merge_independent(a: AcceptanceModel, b: AcceptanceModel) -> AcceptanceModel:
    """The longer of two independent accepted paths (model tree, retrieved branch)."""
    D = max(a.k, b.k)
    sa = np.zeros(D)
    sb = np.zeros(D)
    sa[: a.k] = a.unconditional_rates
    sb[: b.k] = b.unconditional_rates
    return survival_to_model(1.0 - (1.0 - sa) * (1.0 - sb))


def retrieval_model(tokens: int, acceptance_length: float) -> AcceptanceModel:
    if not (1.0 <= acceptance_length <= tokens + 1):
        raise ConfigurationError(f"--retrieval-acceptance-length = {acceptance_length!r} is impossible for {tokens} "
                                 f"retrieved tokens; allowed: 1 <= AL <= {tokens + 1}")
    c = _solve_constant_rate(tokens, acceptance_length)
    return AcceptanceModel(tuple([c] * tokens))


def tree_acceptance(tree: DraftTree, acc: RankAcceptance, verification: str = "tree",
                    retrieval: AcceptanceModel | None = None) -> AcceptanceModel:
    """The accepted path length of one round (an AcceptanceModel over depth; advance = path + 1)."""
    m = survival_to_model(path_survival(tree, acc, verification))
    if retrieval is not None and retrieval.k:
        m = merge_independent(m, retrieval)
    return m


# ------------------------------------------------------------------------------------------------ SGLang's tree
def sglang_tree(steps: int, topk: int, draft_tokens: int, acc: RankAcceptance) -> DraftTree:
    """The tree SGLang's selection builds when the draft's scores are the modelled acceptance probabilities:
    step 1 keeps ranks 0..K-1 of the root; each later step expands the K current leaves into K children and
    keeps the K best of the K^2 by cumulative probability; the verified tree is the N - 1 best of all
    candidates (ties: shallower, then lower rank first, so that a parent always precedes its children)."""
    K = topk
    cands: list[tuple[float, tuple[int, ...]]] = []
    leaves = []
    for r in range(K):
        n = (r,)
        s = acc.p(1, r)
        cands.append((s, n))
        leaves.append((s, n))
    for d in range(2, steps + 1):
        expand = [(s * acc.p(d, r), n + (r,)) for s, n in leaves for r in range(K)]
        cands.extend(expand)
        leaves = heapq.nlargest(K, expand, key=lambda x: (x[0], -len(x[1]), tuple(-v for v in x[1])))
    order = sorted(cands, key=lambda x: (-x[0], len(x[1]), x[1]))
    chosen: set = set()
    for s, n in order:
        if len(chosen) == draft_tokens - 1:
            break
        if len(n) == 1 or n[:-1] in chosen:  # a parent scoring equal to its child is taken first (ties)
            chosen.add(n)
    nodes = tuple(sorted(chosen, key=lambda t: (len(t), t)))
    return DraftTree(nodes, "sglang", steps, K, draft_tokens)


def build_tree(*, steps: int | None = None, topk: int | None = None, draft_tokens: int | None = None,
               token_tree: str | None = None, acc: RankAcceptance, retrieval_tokens: int = 0) -> DraftTree:
    """A DraftTree from SGLang's parameters or vLLM's speculative_token_tree (exactly one of the two)."""
    if token_tree is not None:
        nodes = parse_token_tree(token_tree)
        t = DraftTree(nodes, "vllm", max(len(n) for n in nodes), max(n[-1] for n in nodes) + 1, len(nodes) + 1)
    else:
        n = check_sglang_params(steps, topk, draft_tokens)
        t = sglang_tree(steps, topk, n, acc)
    if retrieval_tokens:
        t = DraftTree(t.nodes, t.kind, t.steps, t.topk, t.draft_tokens, retrieval_tokens)
    if t.engine_k + 1 > MAX_TREE_TOKENS:
        raise ConfigurationError(f"the tree verifies {t.engine_k + 1} tokens per sequence (drafted {t.n_nodes} + "
                                 f"retrieved {retrieval_tokens} + root); allowed: up to {MAX_TREE_TOKENS} ({TREE_TOKENS_WHY})")
    return t


__all__ = ["DEFAULT_RANK_DECAY", "DraftTree", "MAX_TOPK", "MAX_TREE_DEPTH", "MAX_TREE_TOKENS", "RankAcceptance",
           "build_tree", "chain_tree", "check_sglang_params", "merge_independent", "parse_acceptance_table",
           "parse_token_tree", "path_survival", "retrieval_model", "sglang_max_draft_tokens", "sglang_tree",
           "survival_to_model", "tree_acceptance"]
