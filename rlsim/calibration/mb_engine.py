"""Microbenchmarks of the engine mechanisms vLLM 0.17.1 adds to a speculative round (engine profiles).

Each component is written op for op as vLLM 0.17.1 runs it (file and line in ``SOURCES``), on GPU
tensors of the real shapes, and timed three ways:

* ``device_s``: the components' kernels alone, replayed from a CUDA graph (what the GPU spends);
* ``host_s``:   the host time to issue them eagerly (Python, torch dispatch and launches), averaged over
                back-to-back issues without a synchronisation (what the CPU spends);
* ``eager_s``:  one eager call with a synchronisation at the end (what a step waits when neither hides
                the other).

Components (``component`` column):

* ``sampler_ar``: ``Sampler.forward`` of a plain decode step as NeMo-RL v0.6.0 drives it (temperature
  1.0 on every request, so ``all_random``; no top-k/top-p; ``logprobs_mode="processed_logprobs"``,
  ``logprobs=0``): cast to fp32, temperature, log_softmax, softmax, exponential noise, divide, argmax,
  then ``gather_logprobs`` (topk 0, gather, the rank count, concatenations).
* ``rejection_sampler``: ``RejectionSampler.forward`` with the same settings: the bonus rows through the
  sampler (``processed_logits``), the target rows cast to fp32, temperature expanded per token (Triton),
  softmax, uniform draws (float64) and the Python loop over requests, the recovered-token noise
  ([B, V] exponential and reciprocal) and the Triton kernel that streams the vocabulary per (request,
  position), the accept kernel; then ``_get_logprobs_tensors``: a zero fp32 [B(k+1), V] tensor, two
  scatters, the accepted-index arithmetic, a gather, log_softmax and ``gather_logprobs``.
* ``rejection_sampler_lean``: the same without the [B(k+1), V] log-prob buffers (the later fixes).
* ``draft_choice_full_vocab``: ``Eagle3LlamaForCausalLM.compute_logits`` + argmax per draft step (a
  [B, V_target] tensor filled with -inf, the draft-vocab logits scattered into it, argmax over V_target).
* ``draft_choice_draft_vocab``: the ideal alternative: argmax over the [B, V_draft] draft logits.
* ``draft_step_ops``: the per-draft-step tensor bookkeeping of ``EagleProposer.propose`` (positions,
  sequence lengths, slot mapping through the block table, input copies), without the model forward.
* ``graph_replay``: the host time of one ``CUDAGraph.replay()`` (a piecewise-graphed forward replays one
  graph per piece between the eager attention calls).

The Triton kernels are vLLM 0.17.1's (``vllm/v1/sample/rejection_sampler.py``, Apache-2.0), copied
below. Without a GPU (tests) everything runs on the CPU with torch stand-ins of the kernels.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

try:
    from .mb_common import percentile
except ImportError:  # script mode
    from mb_common import percentile

SOURCES = {
    "sampler_ar": "vllm 0.17.1 v1/sample/sampler.py Sampler.forward/sample/gather_logprobs; "
                  "v1/sample/ops/topk_topp_sampler.py forward_native + random_sample; v1/sample/ops/logprobs.py",
    "rejection_sampler": "vllm 0.17.1 v1/sample/rejection_sampler.py RejectionSampler.forward (97-160), "
                         "rejection_sample (340-420), sample_recovered_tokens (600-650), _get_logprobs_tensors (168-216)",
    "draft_choice_full_vocab": "vllm 0.17.1 model_executor/models/llama_eagle3.py compute_logits (329-351) + "
                               "v1/spec_decode/eagle.py _greedy_sample (370-374)",
    "draft_choice_draft_vocab": "ideal engine: argmax over the draft vocabulary (no scatter into the target vocabulary)",
    "draft_step_ops": "vllm 0.17.1 v1/spec_decode/eagle.py propose loop body (536-640) without the model forward",
    "rejection_sampler_lean": "the 0.17.1 rejection sampler without the [B(k+1), V] log-prob buffers (what the "
                              "reference's later PRs 41258/45323/45369 remove); log-probs from the target and bonus rows",
    "graph_replay": "torch.cuda.CUDAGraph.replay() of a one-kernel graph (vLLM's CUDAGraphWrapper replays one per piece)",
}

CSV_COLS = ["gpu", "component", "batch", "k", "vocab", "draft_vocab", "device_s", "host_s", "eager_s",
            "device_p10_s", "device_p90_s", "host_p10_s", "host_p90_s", "n_kernels", "repeats"]

PLACEHOLDER_TOKEN_ID = -1
GREEDY_TEMPERATURE = 0.0

_KERNELS = None


def _triton_kernels():
    """vLLM 0.17.1's Triton kernels of the rejection sampler (copied, Apache-2.0)."""
    global _KERNELS
    if _KERNELS is not None:
        return _KERNELS
    import triton
    import triton.language as tl

    @triton.jit(do_not_specialize=["max_spec_len"])
    def rejection_random_sample_kernel(output_token_ids_ptr, cu_num_draft_tokens_ptr, draft_token_ids_ptr,
                                       draft_probs_ptr, target_probs_ptr, bonus_token_ids_ptr,
                                       recovered_token_ids_ptr, uniform_probs_ptr, is_greedy_ptr, max_spec_len,
                                       vocab_size, NO_DRAFT_PROBS: tl.constexpr):
        req_idx = tl.program_id(0)
        is_greedy = tl.load(is_greedy_ptr + req_idx)
        if is_greedy:
            return
        start_idx = 0 if req_idx == 0 else tl.load(cu_num_draft_tokens_ptr + req_idx - 1)
        end_idx = tl.load(cu_num_draft_tokens_ptr + req_idx)
        num_draft_tokens = end_idx - start_idx
        rejected = False
        for pos in range(num_draft_tokens):
            if not rejected:
                draft_token_id = tl.load(draft_token_ids_ptr + start_idx + pos)
                if NO_DRAFT_PROBS:
                    draft_prob = 1
                else:
                    draft_prob = tl.load(draft_probs_ptr + (start_idx + pos) * vocab_size + draft_token_id)
                target_prob = tl.load(target_probs_ptr + (start_idx + pos) * vocab_size + draft_token_id)
                uniform_prob = tl.load(uniform_probs_ptr + start_idx + pos)
                if draft_prob > 0 and target_prob / draft_prob >= uniform_prob:
                    token_id = draft_token_id
                else:
                    rejected = True
                    token_id = tl.load(recovered_token_ids_ptr + start_idx + pos)
                tl.store(output_token_ids_ptr + req_idx * (max_spec_len + 1) + pos, token_id)
        if not rejected:
            bonus_token_id = tl.load(bonus_token_ids_ptr + req_idx)
            tl.store(output_token_ids_ptr + req_idx * (max_spec_len + 1) + num_draft_tokens, bonus_token_id)

    @triton.jit(do_not_specialize=["replace_from", "replace_to"])
    def expand_kernel(output_ptr, input_ptr, cu_num_tokens_ptr, replace_from, replace_to,
                      MAX_NUM_TOKENS: tl.constexpr):
        req_idx = tl.program_id(0)
        if req_idx == 0:  # noqa: SIM108
            start_idx = 0
        else:
            start_idx = tl.load(cu_num_tokens_ptr + req_idx - 1)
        end_idx = tl.load(cu_num_tokens_ptr + req_idx)
        num_tokens = end_idx - start_idx
        src_val = tl.load(input_ptr + req_idx)
        src_val = tl.where(src_val == replace_from, replace_to, src_val)
        offset = tl.arange(0, MAX_NUM_TOKENS)
        tl.store(output_ptr + start_idx + offset, src_val, mask=offset < num_tokens)

    @triton.jit
    def sample_recovered_tokens_kernel(output_token_ids_ptr, cu_num_draft_tokens_ptr, draft_token_ids_ptr,
                                       draft_probs_ptr, target_probs_ptr, inv_q_ptr, vocab_size,
                                       BLOCK_SIZE: tl.constexpr, NO_DRAFT_PROBS: tl.constexpr):
        req_idx = tl.program_id(0)
        start_idx = 0 if req_idx == 0 else tl.load(cu_num_draft_tokens_ptr + req_idx - 1)
        end_idx = tl.load(cu_num_draft_tokens_ptr + req_idx)
        num_draft_tokens = end_idx - start_idx
        pos = tl.program_id(1)
        if pos >= num_draft_tokens:
            return
        token_idx = start_idx + pos
        if NO_DRAFT_PROBS:
            draft_token_id = tl.load(draft_token_ids_ptr + token_idx)
        max_val = float("-inf")
        recovered_id = 0
        for v in range(0, vocab_size, BLOCK_SIZE):
            vocab_offset = v + tl.arange(0, BLOCK_SIZE)
            vocab_mask = vocab_offset < vocab_size
            if NO_DRAFT_PROBS:
                prob = tl.load(target_probs_ptr + token_idx * vocab_size + vocab_offset,
                               mask=(vocab_mask & (vocab_offset != draft_token_id)), other=0.0)
            else:
                draft_prob = tl.load(draft_probs_ptr + token_idx * vocab_size + vocab_offset, mask=vocab_mask,
                                     other=0.0)
                target_prob = tl.load(target_probs_ptr + token_idx * vocab_size + vocab_offset, mask=vocab_mask,
                                      other=0.0)
                prob = tl.maximum(target_prob - draft_prob, 0.0)
            inv_q = tl.load(inv_q_ptr + req_idx * vocab_size + vocab_offset, mask=vocab_mask, other=0.0)
            score = prob * inv_q
            local_max, local_id = tl.max(score, axis=0, return_indices=True)
            if local_max > max_val:
                max_val = local_max
                recovered_id = v + local_id
        tl.store(output_token_ids_ptr + token_idx, recovered_id)

    _KERNELS = (rejection_random_sample_kernel, expand_kernel, sample_recovered_tokens_kernel)
    return _KERNELS


# ----------------------------------------------------------------------------------------------- vLLM ops
def _count_greater(torch, x, values):
    # v1/sample/ops/logprobs.py: torch.compile'd (x >= values).sum(-1): one fused read of x
    return (x >= values).sum(-1)


def _gather_logprobs(torch, logprobs, num_logprobs, token_ids):
    topk_logprobs, topk_indices = torch.topk(logprobs, num_logprobs, dim=-1)
    token_ids = token_ids.unsqueeze(-1)
    token_logprobs = logprobs.gather(-1, token_ids)
    token_ranks = _count_greater(torch, logprobs, token_logprobs)
    indices = torch.cat((token_ids, topk_indices), dim=1)
    lp = torch.cat((token_logprobs, topk_logprobs), dim=1)
    return indices.to(torch.int32), lp, token_ranks


def sampler_forward(torch, logits, temperature, max_num_logprobs, logprobs_mode):
    """Sampler.forward, all_random (temperature 1 everywhere), no top-k/top-p, no penalties."""
    logits = logits.to(torch.float32)
    # sample(): all_random -> no greedy pass; apply_temperature
    logits = logits.div_(temperature.unsqueeze(dim=1))
    # forward_native: apply_top_k_top_p(None, None) returns logits unchanged
    processed = None
    if logprobs_mode == "processed_logits":
        processed = logits
    elif logprobs_mode == "processed_logprobs":
        processed = logits.log_softmax(dim=-1, dtype=torch.float32)
    probs = logits.softmax(dim=-1, dtype=torch.float32)
    q = torch.empty_like(probs)
    q.exponential_()
    sampled = probs.div_(q).argmax(dim=-1).view(-1)
    sampled = sampled.long()
    out_lp = None
    if max_num_logprobs is not None and max_num_logprobs >= 0:
        out_lp = _gather_logprobs(torch, processed, max_num_logprobs, sampled)
    return sampled.to(torch.int32).unsqueeze(-1), processed, out_lp


class RejectionInputs:
    def __init__(self, torch, B, k, V, device):
        self.B, self.k, self.V = B, k, V
        Q = k + 1
        self.logits = torch.randn((B * Q, V), device=device, dtype=torch.bfloat16)
        rows = torch.arange(B * Q, device=device).view(B, Q)
        self.bonus_idx = rows[:, k].contiguous()
        self.target_idx = rows[:, :k].reshape(-1).contiguous()
        self.draft_token_ids = torch.randint(0, V, (B * k,), device=device, dtype=torch.int32)
        self.num_draft_tokens = [k] * B  # a Python list in vLLM (SpecDecodeMetadata)
        self.cu_num_draft_tokens = torch.arange(1, B + 1, device=device, dtype=torch.int32) * k
        self.cu_num_sampled_tokens = torch.arange(1, B + 1, device=device, dtype=torch.int32) * Q
        self.temperature = torch.ones(B, device=device, dtype=torch.float32)
        self.device = device


def rejection_sampler_forward(torch, x: RejectionInputs, use_triton: bool):
    B, k, V = x.B, x.k, x.V
    logits = x.logits
    bonus_logits = logits[x.bonus_idx]
    bonus_sampled, bonus_processed, _ = sampler_forward(torch, bonus_logits, x.temperature, -1, "processed_logits")
    raw_target_logits = logits[x.target_idx].to(torch.float32)
    target_logits = raw_target_logits  # processed_logprobs mode: no clone
    # apply_sampling_constraints: temperature expanded to tokens (Triton expand_kernel), divide in place
    num_tokens = target_logits.shape[0]
    if use_triton:
        _, expand_kernel, _ = _triton_kernels()
        temp = x.temperature.new_empty(num_tokens)
        expand_kernel[(B,)](temp, x.temperature, x.cu_num_draft_tokens, GREEDY_TEMPERATURE, 1, MAX_NUM_TOKENS=128)
    else:
        temp = x.temperature.repeat_interleave(k)
    target_logits.div_(temp.unsqueeze(-1))
    # rejection_sample
    output_token_ids = torch.full((B, k + 1), PLACEHOLDER_TOKEN_ID, dtype=torch.int32, device=x.device)
    is_greedy = x.temperature == GREEDY_TEMPERATURE
    target_probs = target_logits.softmax(dim=-1, dtype=torch.float32)
    uniform_probs = torch.rand((num_tokens,), dtype=torch.float64, device=x.device)
    start_idx = 0
    for req_idx, n in enumerate(x.num_draft_tokens):  # generate_uniform_probs' loop (no per-request seeds)
        if n == 0:
            continue
        start_idx = start_idx + n
    q = torch.empty((B, V), dtype=torch.float32, device=x.device)
    q.exponential_()
    inv_q = q.reciprocal()
    recovered = torch.empty_like(x.draft_token_ids)
    if use_triton:
        rej_kernel, _, rec_kernel = _triton_kernels()
        rec_kernel[(B, k)](recovered, x.cu_num_draft_tokens, x.draft_token_ids, None, target_probs, inv_q, V, 8192,
                           NO_DRAFT_PROBS=True)
        rej_kernel[(B,)](output_token_ids, x.cu_num_draft_tokens, x.draft_token_ids, None, target_probs,
                         bonus_sampled, recovered, uniform_probs, is_greedy, k, V, NO_DRAFT_PROBS=True)
    else:  # CPU stand-ins with the same reads
        score = target_probs.view(B, k, V) * inv_q.unsqueeze(1)
        recovered = score.argmax(-1).view(-1).to(torch.int32)
        pt = target_probs.gather(1, x.draft_token_ids.long().unsqueeze(1)).squeeze(1)
        acc = (pt >= uniform_probs.to(pt.dtype)).view(B, k)
        output_token_ids[:, :k] = torch.where(acc, x.draft_token_ids.view(B, k), recovered.view(B, k))
    # _get_logprobs_tensors (max_num_logprobs = 0)
    cu_num_sampled_tokens = torch.zeros_like(x.cu_num_sampled_tokens)
    cu_num_sampled_tokens[1:] = x.cu_num_sampled_tokens[:-1]
    final_logits = torch.zeros_like(logits, dtype=torch.float32)
    final_logits[x.target_idx] = target_logits.to(torch.float32)
    final_logits[x.bonus_idx] = bonus_processed.to(torch.float32)
    offsets = torch.arange(output_token_ids.shape[-1], device=x.device, dtype=cu_num_sampled_tokens.dtype)
    accepted_logit_indices = (cu_num_sampled_tokens.unsqueeze(1) + offsets.unsqueeze(0)).flatten()
    accepted_logit_indices.clamp_(max=final_logits.shape[0] - 1)
    accepted_tokens = output_token_ids.clone().flatten()
    accepted_tokens[accepted_tokens == PLACEHOLDER_TOKEN_ID] = 0
    accepted_logits = final_logits[accepted_logit_indices]
    accepted_logprobs = accepted_logits.log_softmax(dim=-1, dtype=torch.float32)
    lp = _gather_logprobs(torch, accepted_logprobs, 0, accepted_tokens.to(torch.int64))
    return output_token_ids, lp


def rejection_sampler_lean_forward(torch, x: RejectionInputs, use_triton: bool):
    """The rejection sampler as the later fixes (reference: PRs 41258, 45323, 45369) leave it: the same sampling,
    and the log-probs of the emitted tokens computed on the target and bonus rows directly (log_softmax of each,
    gather), without the zero [B(k+1), V] tensor, its two scatters and the gather of B(k+1) full rows."""
    B, k, V = x.B, x.k, x.V
    logits = x.logits
    bonus_logits = logits[x.bonus_idx]
    bonus_sampled, bonus_processed, _ = sampler_forward(torch, bonus_logits, x.temperature, -1, "processed_logits")
    target_logits = logits[x.target_idx].to(torch.float32)
    num_tokens = target_logits.shape[0]
    if use_triton:
        _, expand_kernel, _ = _triton_kernels()
        temp = x.temperature.new_empty(num_tokens)
        expand_kernel[(B,)](temp, x.temperature, x.cu_num_draft_tokens, GREEDY_TEMPERATURE, 1, MAX_NUM_TOKENS=128)
    else:
        temp = x.temperature.repeat_interleave(k)
    target_logits.div_(temp.unsqueeze(-1))
    output_token_ids = torch.full((B, k + 1), PLACEHOLDER_TOKEN_ID, dtype=torch.int32, device=x.device)
    is_greedy = x.temperature == GREEDY_TEMPERATURE
    target_probs = target_logits.softmax(dim=-1, dtype=torch.float32)
    uniform_probs = torch.rand((num_tokens,), dtype=torch.float64, device=x.device)
    q = torch.empty((B, V), dtype=torch.float32, device=x.device)
    q.exponential_()
    inv_q = q.reciprocal()
    recovered = torch.empty_like(x.draft_token_ids)
    if use_triton:
        rej_kernel, _, rec_kernel = _triton_kernels()
        rec_kernel[(B, k)](recovered, x.cu_num_draft_tokens, x.draft_token_ids, None, target_probs, inv_q, V, 8192,
                           NO_DRAFT_PROBS=True)
        rej_kernel[(B,)](output_token_ids, x.cu_num_draft_tokens, x.draft_token_ids, None, target_probs,
                         bonus_sampled, recovered, uniform_probs, is_greedy, k, V, NO_DRAFT_PROBS=True)
    else:
        score = target_probs.view(B, k, V) * inv_q.unsqueeze(1)
        recovered = score.argmax(-1).view(-1).to(torch.int32)
        output_token_ids[:, :k] = recovered.view(B, k)
    tok = output_token_ids.clamp(min=0).long()
    lp_t = _gather_logprobs(torch, target_logits.log_softmax(dim=-1, dtype=torch.float32), 0, tok[:, :k].reshape(-1))
    lp_b = _gather_logprobs(torch, bonus_processed.log_softmax(dim=-1, dtype=torch.float32), 0, tok[:, k])
    return output_token_ids, (lp_t, lp_b)


def draft_choice_full_vocab(torch, draft_logits, targets, V):
    logits_new = draft_logits.new_full((draft_logits.shape[0], V), float("-inf"))
    logits_new[:, targets] = draft_logits
    return logits_new.argmax(dim=-1)


class DraftStepState:
    def __init__(self, torch, B, device, block_size=16, max_blocks=1024, max_model_len=40960):
        self.positions = torch.randint(100, 4000, (B,), device=device, dtype=torch.int64)
        self.seq_lens = torch.randint(100, 4000, (B,), device=device, dtype=torch.int32)
        self.block_table = torch.randint(0, 100000, (B, max_blocks), device=device, dtype=torch.int32)
        self.draft_ids = torch.randint(0, 151936, (B,), device=device, dtype=torch.int64)
        self.hidden = torch.randn((B, 4096), device=device, dtype=torch.bfloat16)
        self.input_ids_buf = torch.zeros(B, device=device, dtype=torch.int32)
        self.pos_buf = torch.zeros(B, device=device, dtype=torch.int64)
        self.hidden_buf = torch.zeros((B, 4096), device=device, dtype=torch.bfloat16)
        self.block_size, self.max_model_len, self.B = block_size, max_model_len, B


def draft_step_ops(torch, s: DraftStepState):
    """The tensor bookkeeping of one iteration of EagleProposer.propose's draft loop (eagle.py 536-640)."""
    input_ids = s.draft_ids.int()
    s.positions += 1
    exceeds = s.positions >= s.max_model_len
    clamped = torch.where(exceeds, 0, s.positions)
    s.seq_lens += 1
    s.seq_lens.masked_fill_(exceeds, 1)
    block_numbers = clamped // s.block_size
    block_ids = s.block_table.gather(dim=1, index=block_numbers.view(-1, 1)).view(-1)
    slot_mapping = block_ids * s.block_size + clamped % s.block_size
    slot_mapping.masked_fill_(exceeds, -1)
    s.input_ids_buf[: s.B] = input_ids
    s.pos_buf[: s.B] = clamped
    s.hidden_buf[: s.B] = s.hidden
    return slot_mapping


# ----------------------------------------------------------------------------------------------- timing
def _time_component(torch, fn, device, n_kernels_hint: int, repeats: int = 15):
    """(device, host, eager) seconds with p10/p90: see the module docstring."""
    cuda = device.type == "cuda"
    for _ in range(3):
        fn()
    if cuda:
        torch.cuda.synchronize()
    eager = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        eager.append(time.perf_counter() - t0)
    host = []
    n_issue = max(1, min(16, 600 // max(n_kernels_hint, 1)))  # stay below the launch queue's depth
    for _ in range(max(3, repeats // 3)):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(n_issue):
            fn()
        host.append((time.perf_counter() - t0) / n_issue)
    if cuda:
        torch.cuda.synchronize()
    dev = list(eager)
    if cuda:
        try:
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                fn()
            torch.cuda.current_stream().wait_stream(s)
            torch.cuda.synchronize()
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                fn()
            g.replay()
            torch.cuda.synchronize()
            dev = []
            for _ in range(repeats):
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                g.replay()
                b.record()
                b.synchronize()
                dev.append(a.elapsed_time(b) / 1e3)
            del g
        except Exception as e:  # noqa: BLE001 - a component that cannot be captured: events around an eager call
            print(f"    (graph capture failed: {type(e).__name__}: {str(e)[:100]}; device time from events)", flush=True)
            torch.cuda.synchronize()
            dev = []
            for _ in range(repeats):
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                fn()
                b.record()
                b.synchronize()
                dev.append(a.elapsed_time(b) / 1e3)
    return {"device_s": percentile(dev, 50), "device_p10_s": percentile(dev, 10), "device_p90_s": percentile(dev, 90),
            "host_s": percentile(host, 50), "host_p10_s": percentile(host, 10), "host_p90_s": percentile(host, 90),
            "eager_s": percentile(eager, 50), "repeats": repeats}


def _count_kernels(torch, fn, device) -> int:
    """Kernels launched by one call (torch profiler), 0 where unavailable."""
    if device.type != "cuda":
        return 0
    try:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            fn()
            torch.cuda.synchronize()
        return sum(1 for e in prof.events() if e.device_type.name == "CUDA")
    except Exception:  # noqa: BLE001
        return 0


def grid(quick: bool):
    batches = [1, 4, 16, 64] if quick else [1, 4, 16, 32, 64, 128, 256, 512, 1024]
    ks = [1, 3] if quick else [1, 2, 3, 5, 7]
    vocabs = [151936] if quick else [151936, 128256]
    pts = []
    for V in vocabs:
        for B in batches:
            pts.append(("sampler_ar", B, 0, V, 0))
            for k in ks:
                pts.append(("rejection_sampler", B, k, V, 0))
                pts.append(("rejection_sampler_lean", B, k, V, 0))
            pts.append(("draft_choice_full_vocab", B, 0, V, 32000))
            pts.append(("draft_choice_draft_vocab", B, 0, V, 32000))
    for B in batches:
        pts.append(("draft_step_ops", B, 0, 0, 0))
    pts.append(("graph_replay", 1, 0, 0, 0))
    return pts


def run(out_dir: Path, quick: bool = False, small_cpu: bool = False) -> Path:
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gpu = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    use_triton = device.type == "cuda"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "engine.csv"
    pts = grid(quick)
    if small_cpu:  # tests: tiny vocabulary and batches
        pts = [(c, min(B, 4), k, min(V, 1000) if V else 0, min(dv, 100)) for c, B, k, V, dv in pts[:8]]
    rows = []
    t_start = time.time()
    for i, (comp, B, k, V, dv) in enumerate(pts):
        torch.manual_seed(0)
        if comp == "sampler_ar":
            logits = torch.randn((B, V), device=device, dtype=torch.bfloat16)
            temp = torch.ones(B, device=device)
            work = logits.clone()

            def fn(logits=logits, temp=temp, work=work):
                work.copy_(logits)  # the sampler divides in place; restore the logits each call
                return sampler_forward(torch, work, temp, 0, "processed_logprobs")
        elif comp == "rejection_sampler":
            x = RejectionInputs(torch, B, k, V, device)

            def fn(x=x):
                return rejection_sampler_forward(torch, x, use_triton)
        elif comp == "rejection_sampler_lean":
            x = RejectionInputs(torch, B, k, V, device)

            def fn(x=x):
                return rejection_sampler_lean_forward(torch, x, use_triton)
        elif comp == "draft_choice_full_vocab":
            dl = torch.randn((B, dv), device=device, dtype=torch.bfloat16)
            targets = torch.arange(dv, device=device) + torch.randint(0, max(V - dv, 1), (dv,), device=device).sort().values

            def fn(dl=dl, targets=targets, V=V):
                return draft_choice_full_vocab(torch, dl, targets, V)
        elif comp == "draft_choice_draft_vocab":
            dl = torch.randn((B, dv), device=device, dtype=torch.bfloat16)

            def fn(dl=dl):
                return dl.argmax(dim=-1)
        elif comp == "draft_step_ops":
            st = DraftStepState(torch, B, device)

            def fn(st=st):
                st.positions.sub_(1)  # keep the state bounded across calls (one extra tiny kernel, counted)
                st.seq_lens.sub_(1)
                return draft_step_ops(torch, st)
        elif comp == "graph_replay":
            if device.type != "cuda":
                continue
            buf = torch.zeros(16, device=device)
            s_ = torch.cuda.Stream()
            s_.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s_):
                buf.add_(1)
            torch.cuda.current_stream().wait_stream(s_)
            g1 = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g1):
                buf.add_(1)

            def fn(g1=g1):
                g1.replay()
        else:
            raise ValueError(comp)
        nk = _count_kernels(torch, fn, device)
        r = _time_component(torch, fn, device, nk or 40, repeats=5 if small_cpu else 15)
        row = {"gpu": gpu, "component": comp, "batch": B, "k": k, "vocab": V, "draft_vocab": dv, "n_kernels": nk, **r}
        rows.append(row)
        print(f"[{i + 1}/{len(pts)}] {comp} B={B} k={k} V={V}: device {r['device_s'] * 1e6:.1f} us, host "
              f"{r['host_s'] * 1e6:.1f} us, eager {r['eager_s'] * 1e6:.1f} us, {nk} kernels "
              f"({time.time() - t_start:.0f} s)", flush=True)
        del fn
        if device.type == "cuda":
            torch.cuda.empty_cache()
    import csv

    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLS)
        w.writeheader()
        for r in rows:
            w.writerow({c: (f"{r[c]:.6e}" if isinstance(r[c], float) else r[c]) for c in CSV_COLS})
    meta = {"gpu": gpu, "torch": torch.__version__, "cuda": torch.version.cuda,
            "triton": _version("triton"), "python": platform.python_version(), "host_cpu": _cpu_model(),
            "date": time.strftime("%Y-%m-%d"), "quick": quick, "sources": SOURCES,
            "method": "device_s: CUDA-graph replay of the component (kernels only); host_s: eager issue time per call, "
                      "back-to-back without synchronisation; eager_s: one eager call + synchronize; medians"}
    (out_dir / "meta_engine.json").write_text(json.dumps(meta, indent=1) + "\n")
    return path


def _version(mod):
    try:
        return __import__(mod).__version__
    except Exception:  # noqa: BLE001
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    run(Path(a.out), quick=a.quick)
    print("done", flush=True)
