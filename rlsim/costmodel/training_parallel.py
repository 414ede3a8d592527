"""The Megatron training layout (TP / CP / PP / VPP / DP, and EP / ETP / EDP for the experts) that a workload's
``training`` section resolves to on a number of GPUs, checked: what the training time model
(``training_layout.py``) and the memory model (``training_memory.py``) both read."""

from __future__ import annotations

from dataclasses import dataclass

from ..catalog import ModelSpec, TrainingParallelism
from ..errors import ConfigurationError


@dataclass(frozen=True)
class TrainingLayout:
    tp: int
    cp: int
    pp: int
    vpp: int
    dp: int
    ep: int
    etp: int
    edp: int
    sp: bool
    recompute: bool
    stage_layers: tuple[tuple[int, int], ...]  # per PP stage: (dense layers, MoE layers)

    def as_dict(self) -> dict:
        return {"TP": self.tp, "CP": self.cp, "PP": self.pp, "VPP": self.vpp, "DP": self.dp, "EP": self.ep,
                "ETP": self.etp, "EDP": self.edp, "sequence_parallel": self.sp, "activation_checkpointing": self.recompute,
                "layers_per_stage": [d + m for d, m in self.stage_layers]}


def resolve_layout(model: ModelSpec, par: TrainingParallelism, gpus: int) -> TrainingLayout:
    tp, cp, pp, vpp = (par.tensor_model_parallel_size, par.context_parallel_size, par.pipeline_model_parallel_size,
                       par.virtual_pipeline_model_parallel_size)
    ep, etp = (par.expert_model_parallel_size, par.expert_tensor_parallel_size) if model.is_moe else (1, 1)
    unit = tp * cp * pp
    if gpus % unit:
        raise ConfigurationError(f"training GPUs = {gpus} is not a multiple of TP x CP x PP = {tp} x {cp} x {pp} = {unit}")
    dp = gpus // unit
    if (tp * cp * dp) % (ep * etp):
        raise ConfigurationError(f"expert layout: ETP x EP = {etp} x {ep} must divide TP x CP x DP = {tp * cp * dp} "
                                 f"(training GPUs {gpus}, TP {tp}, CP {cp}, PP {pp})")
    if model.is_moe and model.num_experts % ep:
        raise ConfigurationError(f"expert_model_parallel_size = {ep} does not divide num_experts = {model.num_experts}")
    if model.num_attention_heads % tp or (not model.is_mla and model.num_key_value_heads % tp
                                          and tp % model.num_key_value_heads):
        raise ConfigurationError(f"tensor_model_parallel_size = {tp} does not divide the heads of {model.name}")
    edp = tp * cp * dp // (ep * etp)
    sp = par.sequence_parallel or (model.is_moe and tp > 1)  # Megatron requires SP for MoE with TP > 1
    L = model.num_hidden_layers
    chunks = pp * vpp
    first, last = par.num_layers_in_first_pipeline_stage, par.num_layers_in_last_pipeline_stage
    if pp == 1:
        per_stage = [L]
    else:
        f = first if first is not None else None
        la = last if last is not None else None
        rest_stages = pp - (f is not None) - (la is not None)
        rest = L - (f or 0) - (la or 0)
        if rest < 0 or (rest_stages == 0 and rest != 0):
            raise ConfigurationError(f"pipeline stages: first {f} + last {la} layers do not fit {L} layers over PP {pp}")
        base, extra = divmod(rest, max(rest_stages, 1))
        middle = [base + (1 if i < extra else 0) for i in range(rest_stages)]
        per_stage = ([f] if f is not None else []) + middle + ([la] if la is not None else [])
    if chunks > L:
        raise ConfigurationError(f"PP x VPP = {chunks} model chunks exceed {L} layers")
    stage_layers, start = [], 0
    n_dense = model.n_dense_layers if model.is_moe else L
    for n in per_stage:
        d = max(0, min(start + n, n_dense) - start) if model.is_moe else n
        stage_layers.append((d, n - d))
        start += n
    return TrainingLayout(tp, cp, pp, vpp, dp, ep, etp, edp, sp, par.activation_checkpointing, tuple(stage_layers))


__all__ = ["TrainingLayout", "resolve_layout"]
