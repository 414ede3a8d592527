"""Does the trainer fit? The training layout a projection uses, checked (and, where the workload allows, chosen)
against the memory model (``costmodel/training_memory.py``).

- The workload's layout is used as given when it divides the training GPUs and fits.
- A layout the user pinned (``training_model: layout``: a NeMo-RL recipe, ``--from-nemo-rl``) that does not fit
  is refused with the numbers and the smallest change that fits.
- Otherwise (a catalog workload's layout is a default: its sources say "not published; chosen") the layout with
  the fewest changed knobs (TP, PP, EP, CP, activation checkpointing) that fits is chosen; among equally small
  changes, the fastest by the layout model when it prices training, else by ``training_memory._preference``.
  The projection's notes say what was chosen and why.
- When no layout fits on these GPUs: refused, with the smallest GPU count at which one does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..catalog import TrainingParallelism
from ..costmodel import training_memory as tm
from ..errors import ConfigurationError


def uses_layout_model(w) -> bool:
    """Training / log-prob priced by the Megatron layout model (default) or by a workload's MFU (when it sets
    ``training_mfu``, or ``training_model: mfu``)."""
    return w.training_model == "layout" or (w.training_model == "auto" and w.training_mfu is None)


MAX_TIMED_CANDIDATES = 4  # equally small changes timed by the layout model (each a full pass over the step)


@dataclass
class TrainingFit:
    par: TrainingParallelism  # the layout used (the workload's, or chosen)
    memory: tm.TrainingMemory
    chosen: bool
    note: str | None = None

    def to_dict(self) -> dict:
        return self.memory.to_dict() | {"chosen": self.chosen, "why": self.note}


def _max_total(w) -> int:
    return w.max_total_sequence_length or (w.prompt_length.max_tokens + w.response_length.max_tokens)


def _diff(a: TrainingParallelism, b: TrainingParallelism) -> str:
    """What changes from layout a to layout b, as workload fields."""
    names = (("tensor_model_parallel_size", "TP"), ("pipeline_model_parallel_size", "PP"),
             ("expert_model_parallel_size", "EP"), ("context_parallel_size", "CP"))
    out = [f"{short} {getattr(a, f)} -> {getattr(b, f)}" for f, short in names if getattr(a, f) != getattr(b, f)]
    if a.activation_checkpointing != b.activation_checkpointing:
        out.append(f"activation_checkpointing: {str(b.activation_checkpointing).lower()}")
    return ", ".join(out) or "none"


def _describe_par(model, par: TrainingParallelism, gpus: int) -> str:
    try:
        return tm.resolve(model, par, gpus).describe()
    except ConfigurationError:
        s = (f"TP {par.tensor_model_parallel_size}, PP {par.pipeline_model_parallel_size}"
             + (f", CP {par.context_parallel_size}" if par.context_parallel_size > 1 else "")
             + (f", EP {par.expert_model_parallel_size}" if par.expert_model_parallel_size > 1 else ""))
        return s + (", activation checkpointing" if par.activation_checkpointing else "")


def _flag(colocated: bool) -> str:
    return "--gpus" if colocated else "--train-gpus"


def resolve_training(setup, lengths: np.ndarray | None = None) -> TrainingFit:
    """The training layout of ``setup`` (a :class:`~rlsim.pipeline.setup.Setup` with its GPUs resolved), checked
    against the memory model; raises :class:`ConfigurationError` (one line, with numbers) when nothing fits."""
    sc, model, hw = setup.scenario, setup.model, setup.hardware
    w = sc.workload
    gpus = setup.train_gpus
    max_total = _max_total(w)
    colocated = w.colocated
    mem_spec = setup.memory_spec
    rollout = (tm.RolloutFootprint(mem_spec.weight_bytes_per_gpu + mem_spec.draft_weight_bytes_per_gpu,
                                   w.engine.gpu_memory_utilization) if colocated else None)
    if lengths is None:
        p, n = setup.sample_step_lengths(0)
        lengths = p + n
    gbs = w.training.train_global_batch_size or max(len(lengths), 1)
    n_opt = max(1, math.ceil(len(lengths) / gbs))
    tokens_per_opt = float(np.sum(lengths)) / n_opt
    kw = dict(colocated=colocated, rollout=rollout, tokens_per_optimizer_step=tokens_per_opt)
    par = w.training
    pinned = w.training_model == "layout"
    own_error = None
    try:
        mem = tm.training_memory(model, hw, par, gpus, max_total, **kw)
        if mem.fits:
            return TrainingFit(par, mem, chosen=False)
    except ConfigurationError as e:
        mem, own_error = None, e
    if pinned and own_error is not None:
        raise own_error  # the recipe's layout does not divide these GPUs: its own error
    fits = tm.fitting_layouts(model, hw, par, gpus, max_total, **kw)
    where = f"{gpus} x {hw.name}" + ("" if colocated else " training GPUs")
    if pinned or not fits:
        raise ConfigurationError(_refusal(setup, par, mem, fits, where, max_total, kw, pinned))
    least = [f for f in fits if f[0] == fits[0][0]][:MAX_TIMED_CANDIDATES]
    pick = least[0]

    if len(least) > 1 and uses_layout_model(w):
        pick = min(least, key=lambda f: _layout_seconds(setup, f[1], lengths))
    _, chosen, cmem = pick
    why = (f"the workload's {_describe_par(model, par, gpus)} needs {mem.need_bytes / tm.GB:.1f} GB per GPU in "
           f"{mem.binding_phase} ({mem.breakdown()}), more than the {hw.hbm_capacity_bytes / tm.GB:.0f} GB of "
           f"{hw.name}" if mem is not None else
           f"the workload's {_describe_par(model, par, gpus)} does not divide {gpus} GPUs ({own_error})")
    note = (f"training layout chosen to fit: {cmem.layout.describe()} ({_diff(par, chosen)}), "
            f"{cmem.need_bytes / tm.GB:.1f} of {hw.hbm_capacity_bytes / tm.GB:.0f} GB per GPU; {why}")
    return TrainingFit(chosen, cmem, chosen=True, note=note)


def _layout_seconds(setup, par: TrainingParallelism, lengths: np.ndarray) -> float:
    from ..costmodel.training_layout import TrainingLayoutModel

    w = setup.scenario.workload
    tl = TrainingLayoutModel(setup.model, setup.hardware, setup.timer, par, setup.train_gpus, _max_total(w),
                             w.colocated, w.training_dtype)
    return tl.training(lengths).seconds + tl.logprob(lengths, 2 if w.reference_logprobs else 1).seconds


def _refusal(setup, par, mem, fits, where, max_total, kw, pinned) -> str:
    model, hw = setup.model, setup.hardware
    w = setup.scenario.workload
    gpus = setup.train_gpus
    cap = hw.hbm_capacity_bytes / tm.GB
    if mem is None or not pinned:  # the layout that needs least on these GPUs
        cands = []
        for _, cand in tm.candidate_layouts(model, hw, par, gpus):
            try:
                cands.append(tm.training_memory(model, hw, cand, gpus, max_total, **kw))
            except ConfigurationError:
                continue
        best = min(cands, key=lambda m: m.need_bytes) if cands else mem
        head = (f"{model.name} training does not fit {where}: needs {best.need_bytes / tm.GB:,.1f} GB per GPU in "
                f"{best.binding_phase} even at the most compact layout, {best.layout.describe()} ({best.breakdown()}), "
                f"available {cap:.1f} GB per GPU on {hw.name}") if best is not None else (
                f"{model.name} training does not fit {where}: no layout divides these GPUs")
        floor = tm.lower_bound_bytes(model, gpus) / tm.GB
        head += (f"; weights, gradients and Adam state alone are {model.total_params / 1e9:.0f}B params x 16 B / {gpus} "
                 f"GPUs = {floor:,.1f} GB per GPU")
    else:
        head = (f"{model.name} training does not fit {where} with the recipe's layout ({mem.layout.describe()}): needs "
                f"{mem.need_bytes / tm.GB:,.1f} GB per GPU in {mem.binding_phase} ({mem.breakdown()}), available "
                f"{cap:.1f} GB per GPU on {hw.name}")
        if fits:
            _, cand, cmem = fits[0]
            return head + (f"; smallest change that fits: {_diff(par, cand)} in the recipe's megatron_cfg "
                           f"({cmem.need_bytes / tm.GB:.1f} GB per GPU)")
    step = setup.layout.gpus if w.colocated else 1
    floor_gpus = max(gpus + 1, math.ceil(model.total_params * 16.0 / max(hw.hbm_capacity_bytes - tm.TRAINER_RESERVE_BYTES,
                                                                          1.0)))
    start = (floor_gpus - 1) // step * step
    found = tm.smallest_fitting_gpus(model, hw, par, max(start, gpus), max_total, step=step, **kw)
    if found is None:
        return head + "; no GPU count up to 2^20 fits"
    n, cand, cmem = found
    return head + (f"; smallest change that fits: {_flag(w.colocated)} {n} ({cmem.layout.describe()}; "
                   f"{cmem.need_bytes / tm.GB:.1f} of {cap:.1f} GB per GPU)")


__all__ = ["TrainingFit", "resolve_training"]
