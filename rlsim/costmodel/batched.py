"""Many engine events costed in one call: the rollout engine's batched path into the cost model.

The engine simulates the replicas of a pool in lockstep (``rlsim/engine/replica.py:run_replicas``): each
replica's scheduling stays its own, and every cost-model call its events make is collected and evaluated
together with the other replicas' calls, on arrays of (batch, context, k). Each function here returns, element
for element, the same seconds as the one-event calls of ``IterationCostModel`` it replaces (bit for bit, tested
in tests/test_batched_cost.py):

- ``mixed_steps_time_s``: rows of ``iteration_time_s`` on one-iteration batches (prefill steps);
- ``decode_points_time_s``: groups of pure-decode iterations, each group one call of the stride-1 body of
  ``decode_iterations_time_s`` (or of ``decode_segment_time_s``, its fixed-batch form);
- ``interpolation_points``: the iterations ``decode_iterations_time_s`` costs exactly (the rest interpolated).

Costs are elementwise in the events, except the calibrated timer's attention lookups of calls of a few points,
which depend on the call: those are evaluated per group (``KernelTimer.call_groups``).
"""

from __future__ import annotations

import numpy as np

from .iteration import _STATIC_KEYS, IterationBatch, IterationCostModel

DECODE_STRIDE = 8  # decode_iterations_time_s's default stride

# the one-iteration batch fields of a prefill step, in IterationBatch order
MIXED_FIELDS = ("n_decode", "k", "decode_kv_tokens", "n_prefill_tokens", "n_prefill_seqs", "prefill_kv_tokens",
                "prefill_qk_pairs", "n_prefill_done")


def interpolation_points(n_decode: np.ndarray, stride: int = DECODE_STRIDE) -> np.ndarray | None:
    """Iterations that ``decode_iterations_time_s(n_decode, k, kv, stride)`` costs exactly (every ``stride``-th and
    both ends of each run of equal batch size; the others are interpolated), or None when it costs every one."""
    n = n_decode.size
    if stride > 1 and n > 4 * stride:
        return points_with_changes(n, np.flatnonzero(n_decode[1:] != n_decode[:-1]), stride)
    return None


def points_with_changes(n: int, change: np.ndarray, stride: int = DECODE_STRIDE) -> np.ndarray | None:
    """``interpolation_points`` of ``n`` iterations whose batch size changes after the iterations ``change``."""
    if stride > 1 and n > 4 * stride:
        # the sorted union of 0, stride, 2 stride, ..., each change of batch size and the iteration after it, n - 1
        keep = np.zeros(n, bool)
        keep[::stride] = True
        keep[change] = True
        keep[change + 1] = True
        keep[-1] = True
        return np.flatnonzero(keep)
    return None


def static_columns(cost: IterationCostModel, k: int, B: np.ndarray) -> list[np.ndarray]:
    """The KV-independent parts (``_STATIC_KEYS``) of pure-decode iterations of batch sizes ``B`` at ``k``, from the
    cost model's cache (missing batch sizes computed in one call, as ``decode_iterations_time_s`` does)."""
    cache = cost._static_cache
    # batch sizes come in runs (a decode stretch's iterations): unique values of the runs
    brk = np.flatnonzero(B[1:] != B[:-1]) + 1
    starts = np.concatenate([[0], brk])
    uniq, inv_r = np.unique(B[starts], return_inverse=True)
    inv = np.repeat(inv_r, np.diff(np.append(starts, B.size)))
    missing = [int(x) for x in uniq if (int(x), k) not in cache]
    if missing:
        b0 = IterationBatch(n_decode=np.asarray(missing, float), k=np.full(len(missing), k),
                            decode_kv_tokens=np.zeros(len(missing)))
        parts = cost.breakdown(b0, attention=False)
        for j, bsz in enumerate(missing):
            cache[(bsz, k)] = tuple(float(np.broadcast_to(parts[x], (len(missing),))[j]) for x in _STATIC_KEYS)
    table = np.array([cache[(int(x), k)] for x in uniq]).reshape(len(uniq), len(_STATIC_KEYS))
    # a part equal for every batch size here is passed as one value (broadcast: the same arithmetic per element)
    return [table[0, c] if (table[:, c] == table[0, c]).all() else table[inv, c] for c in range(len(_STATIC_KEYS))]


def decode_points_time_s(cost: IterationCostModel, k: int, B: np.ndarray, kv: np.ndarray,
                         groups: np.ndarray) -> np.ndarray:
    """Seconds of pure-decode iterations (batch ``B``, summed KV ``kv``, one k), concatenated from ``groups``
    (sizes) of one-call evaluations: each group equals ``decode_iterations_time_s(B_g, k, kv_g, stride=1)``."""
    B = np.asarray(B, np.int64)
    kv = np.asarray(kv, float)
    if B.size == 0:
        return np.zeros(0)
    cols = static_columns(cost, k, B)
    with cost.timer.call_groups(groups):
        dyn = cost._decode_attention_s(B.astype(float), k, kv)
    return cost._finish(*cols, dyn)


def mixed_steps_time_s(cost: IterationCostModel, rows: np.ndarray) -> np.ndarray:
    """Seconds of one-iteration steps, ``rows`` [n, 8] in ``MIXED_FIELDS`` order: element i equals
    ``iteration_time_s(IterationBatch(*rows[i] as 1-element arrays))[0]``."""
    rows = np.asarray(rows, float).reshape(-1, len(MIXED_FIELDS))
    b = IterationBatch(**{f: rows[:, j] for j, f in enumerate(MIXED_FIELDS)})
    with cost.timer.call_groups(np.ones(rows.shape[0], np.int64)):
        return np.asarray(cost.iteration_time_s(b), float)


__all__ = ["DECODE_STRIDE", "MIXED_FIELDS", "decode_points_time_s", "interpolation_points", "mixed_steps_time_s",
           "points_with_changes", "static_columns"]
