"""Continuous-batching engine of one replica: scheduler, CUDA graphs, timing.

Scheduling policy (EXACTLY this; docs/ground-truth-harness.md repeats it):

All N sequences are submitted at t = 0 into the waiting queue in seq_id order.  Let
Q = k+1 (1 for plain decoding), PAGE = 16, and for a sequence: P prompt length, R target
response length, g tokens generated so far, nc tokens whose KV is in the cache.
A running sequence is *decoding* once its prefill has completed (then nc = P + g - 1: the
last sampled token is not in the cache yet).  Blocks (16 tokens, one pool shared by the
36 target layers and the draft layer) are held per sequence and never shrink until the
sequence finishes or is preempted.

Each iteration:
 1. KV growth.  For each decoding sequence in admission order: it needs
    ceil((nc + 2k + 1) / 16) blocks (k+1 verify tokens plus k-1 draft lookahead slots,
    +1 spare); missing blocks are taken from the free pool; if the pool is short, the
    most recently admitted running sequence is preempted (blocks freed, nc = 0, put back
    at the HEAD of the waiting queue; its P + g tokens are re-prefilled later), repeated
    until the need is met or the sequence itself was preempted.
 2. Every decoding sequence contributes Q tokens.  budget = 8192 - Q * n_decoding.
 3. Prefill: running sequences whose prefill is not complete, in admission order, take
    chunks min(remaining prefill, budget) while budget > 0.
 4. Admission (skipped if step 1 preempted anything): while the waiting queue is not
    empty, running < max_num_seqs (1024) and budget > 0: the head sequence needs
    ceil((P + g + 2k + 1) / 16) free blocks (whole prompt plus this iteration's needs);
    if they are free it is admitted (all those blocks allocated) and takes a prefill chunk
    min(P + g, budget); otherwise admission stops (FCFS, no skipping).
 5. Execute (one GPU step; CUDA graph iff no prefill tokens and Q*B_pad <= 512, B_pad the
    smallest capture size >= B).  A decoding sequence then advances
    adv = min(accepted + 1, R - g) tokens (accepted from its synthetic stream, see
    workload.py); a sequence whose prefill completes samples its first (or next) token
    (g += 1).  A sequence with g == R finishes and frees its blocks at once.
"""
from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch

from .attention import PAGE
from .model import Caps, Replica
from .workload import accept_stream

CAPTURE_SIZES = [1, 2, 4, 8] + list(range(16, 1025, 8))


@dataclass
class Seq:
    sid: int
    P: int
    R: int
    stream: list
    g: int = 0
    nc: int = 0
    pre_len: int = 0
    decoding: bool = False
    running: bool = False
    row: int = -1
    blocks: list = field(default_factory=list)
    rounds: int = 0
    acc: int = 0
    preempted: int = 0
    finish: float = float("nan")


class Engine:
    def __init__(self, replica: Replica, caps: Caps, use_graphs: bool,
                 graph_max_tokens: int = 512):
        self.rp = replica
        self.caps = caps
        self.is_cuda = replica.device.type == "cuda"
        self.use_graphs = use_graphs and self.is_cuda
        self.graph_max_tokens = graph_max_tokens
        self.graphs: dict[tuple[int, int], tuple] = {}
        self.pool = torch.cuda.graph_pool_handle() if self.is_cuda else None
        self.max_bps = caps.max_blocks_per_seq
        self.bt_h = np.zeros((caps.max_num_seqs + 1, self.max_bps), dtype=np.int64)
        self.vocab = replica.tgt.vocab
        max_out = (caps.max_num_batched_tokens + caps.max_num_seqs
                   + 2 * caps.max_num_seqs * max(caps.k_max, 1) + 1024)
        self.out_h = torch.zeros(max_out, dtype=torch.int32, pin_memory=self.is_cuda)

    # ------------------------------------------------------------------ graphs
    def capture_sizes(self, k: int) -> list[int]:
        Q = k + 1
        return [b for b in CAPTURE_SIZES
                if b * Q <= self.graph_max_tokens and b <= self.caps.max_num_seqs]

    def capture(self, k: int) -> float:
        """Capture the decode step for every padded batch size of this k (largest first)."""
        if not self.use_graphs:
            return 0.0
        t0 = time.perf_counter()
        self.rp.meta_h[:] = 0
        self.rp.meta_d.zero_()
        for b in reversed(self.capture_sizes(k)):
            if (k, b) in self.graphs:
                continue
            self.rp.step(b, k, 0, 0, 0)  # warm-up: Triton JIT, cuBLAS heuristics
            torch.cuda.synchronize()
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g, pool=self.pool):
                out = self.rp.step(b, k, 0, 0, 0)
            self.graphs[(k, b)] = (g, out)
        torch.cuda.synchronize()
        return time.perf_counter() - t0

    def _graph_size(self, B: int, k: int) -> int | None:
        if not self.use_graphs or B == 0:
            return None
        for b in CAPTURE_SIZES:
            if b >= B:
                if b * (k + 1) <= self.graph_max_tokens and (k, b) in self.graphs:
                    return b
                return None
        return None

    # ------------------------------------------------------------------ blocks
    def _alloc(self, s: Seq, n_blocks: int, upd: list):
        for _ in range(n_blocks - len(s.blocks)):
            b = self.free.pop()
            col = len(s.blocks)
            s.blocks.append(b)
            self.bt_h[s.row, col] = b
            upd.append((s.row * self.max_bps + col, b))

    def _release(self, s: Seq):
        self.free.extend(s.blocks)
        s.blocks = []
        self.free_rows.append(s.row)
        s.row = -1
        s.running = False

    def _preempt(self, s: Seq):
        self._release(s)
        self.running.remove(s)
        s.nc = 0
        s.decoding = False
        s.preempted += 1
        self.waiting.appendleft(s)

    # ------------------------------------------------------------------ run
    def run(self, prompts, responses, k: int, rates, seed: int, run_id: str = "",
            iter_log: bool = True, progress_every: float = 0.0) -> dict:
        rp, caps = self.rp, self.caps
        Q = k + 1
        seqs = [Seq(i, int(p), int(r), accept_stream(seed, i, int(r), rates).tolist()
                    if k > 0 else None)
                for i, (p, r) in enumerate(zip(prompts, responses))]
        for s in seqs:
            if s.P + s.R + 2 * k + 2 > caps.max_model_len + 2 * caps.k_max:
                raise ValueError("sequence longer than max_model_len")
        self.free = list(range(rp.num_blocks - 1, 0, -1))  # block 0 = null block
        self.free_rows = list(range(caps.max_num_seqs - 1, -1, -1))
        self.waiting = deque(seqs)
        self.running: list[Seq] = []
        n_graph = 0
        n_iter = 0
        n_preempt = 0
        tokens = 0
        iters = []
        ev_pend = []
        meta = rp.meta_h
        off = rp.layout.off
        Bcap = rp.layout.B
        null_row = rp.null_row
        arQ = np.arange(Q)
        MAXTOK = caps.max_num_batched_tokens
        lay_dpos, lay_dslot = off["dpos"], off["dslot"]
        if self.is_cuda:
            ev_pool = [(torch.cuda.Event(enable_timing=True),
                        torch.cuda.Event(enable_timing=True)) for _ in range(64)]
            torch.cuda.synchronize()
        t_start = time.perf_counter()
        t_prev = t_start
        last_print = t_start
        while self.waiting or self.running:
            upd: list = []
            preempted_now = 0
            # ---- 1. KV growth of decoding sequences
            dec = [s for s in self.running if s.decoding]
            for s in dec:
                if not s.running:
                    continue
                need = (s.nc + 2 * k + 1 + PAGE - 1) // PAGE
                while len(s.blocks) < need:
                    if len(self.free) >= need - len(s.blocks):
                        self._alloc(s, need, upd)
                        break
                    victim = self.running[-1]
                    self._preempt(victim)
                    preempted_now += 1
                    if victim is s:
                        break
            if preempted_now:
                dec = [s for s in dec if s.running]
            B = len(dec)
            budget = MAXTOK - B * Q
            assert budget >= 0, "decode tokens exceed max_num_batched_tokens"
            # ---- 3. prefill chunks of admitted sequences
            chunks = []
            for s in self.running:
                if budget <= 0:
                    break
                if s.decoding:
                    continue
                c = min(s.pre_len - s.nc, budget)
                chunks.append((s, c))
                budget -= c
            # ---- 4. admission
            if not preempted_now:
                while (self.waiting and len(self.running) < caps.max_num_seqs
                       and budget > 0):
                    s = self.waiting[0]
                    L = s.P + s.g
                    need = (L + 2 * k + 1 + PAGE - 1) // PAGE
                    if need > len(self.free):
                        break
                    self.waiting.popleft()
                    s.row = self.free_rows.pop()
                    s.running = True
                    s.pre_len = L
                    s.nc = 0
                    self.running.append(s)
                    self._alloc(s, need, upd)
                    c = min(L, budget)
                    chunks.append((s, c))
                    budget -= c
            n_preempt += preempted_now
            if B == 0 and not chunks:
                raise RuntimeError("nothing schedulable: KV pool too small for the head "
                                   "of the waiting queue")
            # ---- build the metadata of this iteration
            n_pre_tok = sum(c for _, c in chunks)
            T = B * Q + n_pre_tok
            Bg = self._graph_size(B, k) if n_pre_tok == 0 else None
            Bp = Bg if Bg is not None else B
            sum_kv = 0
            if B:
                nc = np.fromiter((s.nc for s in dec), np.int64, B)
                rows = np.fromiter((s.row for s in dec), np.int64, B)
                pos = nc[:, None] + arQ[None, :]
                slot = self.bt_h[rows[:, None], pos // PAGE] * PAGE + pos % PAGE
                sid = np.fromiter((s.sid for s in dec), np.int64, B)
                meta[off["ids"]: off["ids"] + B * Q] = ((sid[:, None] * 131 + pos)
                                                        % self.vocab).ravel()
                meta[off["pos"]: off["pos"] + B * Q] = pos.ravel()
                meta[off["slot"]: off["slot"] + B * Q] = slot.ravel()
                meta[off["drow"]: off["drow"] + B] = rows
                meta[off["dpos0"]: off["dpos0"] + B] = nc
                meta[off["srow"]: off["srow"] + B] = rows
                sum_kv += int(nc.sum()) + B * Q
                if k > 0:
                    acc = np.fromiter((s.stream[s.rounds] for s in dec), np.int64, B)
                    rem = np.fromiter((s.R - s.g for s in dec), np.int64, B)
                    adv = np.minimum(acc + 1, rem)
                    meta[off["last_idx"]: off["last_idx"] + B] = np.arange(B) * Q + adv - 1
                    base = nc + adv - 1
                    for j in range(1, k):
                        dp = base + j
                        o = lay_dpos + (j - 1) * Bcap
                        meta[o: o + B] = dp
                        o = lay_dslot + (j - 1) * Bcap
                        meta[o: o + B] = self.bt_h[rows, dp // PAGE] * PAGE + dp % PAGE
                else:
                    acc = np.zeros(B, np.int64)
                    rem = np.fromiter((s.R - s.g for s in dec), np.int64, B)
                    adv = np.minimum(acc + 1, rem)
            if Bp > B:  # graph padding -> null row / null block 0
                n = Bp - B
                pp = np.tile(arQ, n)
                meta[off["ids"] + B * Q: off["ids"] + Bp * Q] = pp
                meta[off["pos"] + B * Q: off["pos"] + Bp * Q] = pp
                meta[off["slot"] + B * Q: off["slot"] + Bp * Q] = pp
                meta[off["drow"] + B: off["drow"] + Bp] = null_row
                meta[off["dpos0"] + B: off["dpos0"] + Bp] = 0
                meta[off["srow"] + B: off["srow"] + Bp] = null_row
                meta[off["last_idx"] + B: off["last_idx"] + Bp] = np.arange(B, Bp) * Q
                for j in range(1, k):
                    meta[lay_dpos + (j - 1) * Bcap + B: lay_dpos + (j - 1) * Bcap + Bp] = 0
                    meta[lay_dslot + (j - 1) * Bcap + B: lay_dslot + (j - 1) * Bcap + Bp] = 0
            n_items = 0
            n_complete = 0
            completes = []
            if chunks:
                tok0 = B * Q
                it_rows, it_qs, it_nq, it_pos = [], [], [], []
                for s, c in chunks:
                    p = np.arange(s.nc, s.nc + c)
                    meta[off["ids"] + tok0: off["ids"] + tok0 + c] = (s.sid * 131 + p) % self.vocab
                    meta[off["pos"] + tok0: off["pos"] + tok0 + c] = p
                    meta[off["slot"] + tok0: off["slot"] + tok0 + c] = \
                        self.bt_h[s.row, p // PAGE] * PAGE + p % PAGE
                    starts = np.arange(0, c, 16)
                    it_rows.append(np.full(len(starts), s.row))
                    it_qs.append(tok0 + starts)
                    it_nq.append(np.minimum(16, c - starts))
                    it_pos.append(s.nc + starts)
                    sum_kv += s.nc + c
                    if s.nc + c == s.pre_len:
                        completes.append((s, tok0 + c - 1))
                    tok0 += c
                rows_ = np.concatenate(it_rows)
                n_items = len(rows_)
                meta[off["prow"]: off["prow"] + n_items] = rows_
                meta[off["pqs"]: off["pqs"] + n_items] = np.concatenate(it_qs)
                meta[off["pnq"]: off["pnq"] + n_items] = np.concatenate(it_nq)
                meta[off["ppos0"]: off["ppos0"] + n_items] = np.concatenate(it_pos)
                n_complete = len(completes)
                for i, (s, ti) in enumerate(completes):
                    meta[off["lrows"] + i] = ti
                    meta[off["last_idx"] + B + i] = ti
                    meta[off["srow"] + B + i] = s.row
                    for j in range(1, k):
                        dp = s.pre_len - 1 + j
                        meta[lay_dpos + (j - 1) * Bcap + B + i] = dp
                        meta[lay_dslot + (j - 1) * Bcap + B + i] = \
                            self.bt_h[s.row, dp // PAGE] * PAGE + dp % PAGE
            n_upd = len(upd)
            if n_upd:
                if n_upd > caps.max_updates:
                    raise RuntimeError("too many block-table updates in one iteration")
                u = np.asarray(upd, dtype=np.int64)
                meta[off["upd_idx"]: off["upd_idx"] + n_upd] = u[:, 0]
                meta[off["upd_val"]: off["upd_val"] + n_upd] = u[:, 1]
            # ---- 5. execute on the GPU
            n_samp = Bp + n_complete
            n_out = Bp * Q + n_complete + (Bp * k + n_samp * k if k > 0 else 0)
            if self.is_cuda:
                e0, e1 = ev_pool[n_iter % 64]
                e0.record()
            else:
                tc0 = time.perf_counter()
            rp.meta_d.copy_(rp.meta_h_t, non_blocking=True)
            if n_upd:
                rp.apply_updates(n_upd)
            if Bg is not None:
                g, out = self.graphs[(k, Bg)]
                g.replay()
                n_graph += 1
            else:
                out = rp.step(B, k, n_pre_tok, n_items, n_complete)
            self.out_h[:n_out].copy_(out[:n_out], non_blocking=self.is_cuda)
            if self.is_cuda:
                e1.record()
                e1.synchronize()
                ev_pend.append(n_iter)
            else:
                gpu_t = time.perf_counter() - tc0
            # (the copied tokens / decisions are not used: acceptance is synthetic)
            now = time.perf_counter()
            # ---- apply results
            done = False
            for i, s in enumerate(dec):
                a = int(adv[i])
                s.g += a
                s.nc += a
                s.rounds += 1
                if k > 0:
                    s.acc += int(acc[i])
                tokens += a
                if s.g >= s.R:
                    s.finish = now - t_start
                    self._release(s)
                    done = True
            for s, c in chunks:
                s.nc += c
                if s.nc == s.pre_len:
                    s.decoding = True
                    s.g += 1
                    tokens += 1
                    if s.g >= s.R:
                        s.finish = now - t_start
                        self._release(s)
                        done = True
            if done:
                self.running = [s for s in self.running if s.running]
            if iter_log:
                iters.append([n_iter, B, n_pre_tok, len(chunks), n_complete, T,
                              Bp * Q + n_pre_tok, sum_kv, int(Bg is not None),
                              float("nan") if self.is_cuda else gpu_t, 0.0, preempted_now,
                              len(self.running), len(self.waiting)])
            if self.is_cuda and len(ev_pend) == 64:
                self._resolve(ev_pool, ev_pend, iters, iter_log)
            if iter_log:
                iters[-1][10] = now - t_prev
            t_prev = now
            n_iter += 1
            if progress_every and now - last_print > progress_every:
                last_print = now
                print(f"    [{run_id}] t={now - t_start:7.2f}s iter={n_iter} "
                      f"running={len(self.running)} waiting={len(self.waiting)}", flush=True)
        if self.is_cuda:
            torch.cuda.synchronize()
        t_end = time.perf_counter()
        if self.is_cuda and ev_pend:
            self._resolve(ev_pool, ev_pend, iters, iter_log)
        total_rounds = sum(s.rounds for s in seqs)
        total_acc = sum(s.acc for s in seqs)
        return dict(
            total_time_s=t_end - t_start, iterations=n_iter, graph_iterations=n_graph,
            preemptions=n_preempt, tokens_generated=tokens,
            realized_al=(1.0 + total_acc / total_rounds) if (k > 0 and total_rounds) else 1.0,
            seqs=[(s.sid, s.P, s.R, s.g, s.finish, s.rounds, s.acc, s.preempted) for s in seqs],
            iters=iters)

    @staticmethod
    def _resolve(ev_pool, ev_pend, iters, iter_log):
        if iter_log:  # events of iterations still pending sit at the end of `iters`
            base = len(iters) - len(ev_pend)
            for j, it in enumerate(ev_pend):
                e0, e1 = ev_pool[it % 64]
                iters[base + j][9] = e0.elapsed_time(e1) / 1e3
        ev_pend.clear()


ITER_COLUMNS = ["iter", "n_decode_seqs", "n_prefill_tokens", "n_prefill_seqs",
                "n_prefill_complete", "n_tokens", "padded_tokens", "sum_kv_len", "graph",
                "time_s", "wall_s", "preempted", "n_running", "n_waiting"]
