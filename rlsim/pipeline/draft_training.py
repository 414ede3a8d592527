"""The training-phase seconds of training the draft online with the policy (``policy.draft.enabled``): the draft's
forward + backward over every trained token, and its optimizer step. Used by a synchronous step whose draft trains
online (``pipeline/sync.py``) and by draft-drift runs (``pipeline/drift.py``, whose docstring derives the FLOPs)."""

from __future__ import annotations

import numpy as np

from ..catalog import DraftSpec
from ..costmodel.training import DEFAULT_MFU
from ..errors import ConfigurationError
from .setup import Setup


def online_training_time_s(setup: Setup, prompts: np.ndarray, responses: np.ndarray, unroll: int = 1) -> float:
    """Extra training-phase seconds of one step for training the draft online (see module docstring)."""
    d = setup.drafter.network
    m = setup.drafter.method
    w = setup.scenario.workload
    if m == "ngram" or m == "none" or d is None:
        raise ConfigurationError(f"online draft adaptation needs a trained draft network; drafter {setup.drafter.name!r} "
                                 "has none")
    if isinstance(d, DraftSpec):
        params, layers, heads, hd = d.params, d.num_hidden_layers, d.num_attention_heads, d.head_dim
    elif m == "mtp":
        mm = setup.model
        per_layer = mm.attention_params + (mm.mlp_params_per_layer if not mm.is_moe else
                                           3 * mm.hidden_size * mm.moe_intermediate_size * mm.num_experts_per_tok)
        params, layers, heads, hd = mm.mtp_num_layers * per_layer, mm.mtp_num_layers, mm.num_attention_heads, mm.head_dim
    else:  # draft-model: a whole small model
        params, layers, heads, hd = d.active_params, d.num_hidden_layers, d.num_attention_heads, d.head_dim
    seq = (np.asarray(prompts, dtype=float) + np.asarray(responses, dtype=float))
    fwd = 2.0 * params * seq.sum() + 2.0 * layers * heads * hd * float(np.sum(seq ** 2))
    flops = 3.0 * unroll * fwd
    hw = setup.hardware
    mfu = w.training_mfu or DEFAULT_MFU[("training", "dense")]
    peak = hw.peak_flops.get(w.training_dtype, hw.peak_flops["bf16"])
    opt = params * 16.0 * 2 / setup.train_gpus / (hw.hbm_bandwidth_bytes_per_s * 0.8)
    return flops / (setup.train_gpus * peak * mfu) + opt


__all__ = ["online_training_time_s"]
