"""The replica's GPU work: Qwen3-like target + EAGLE-3 draft over a paged KV pool.

Weights are random (timing depends on shapes, not values), scaled so activations stay
finite: linear weights ~ N(0, 1/fan_in), embeddings ~ N(0, 1), norm weights ~ 1.

One engine iteration is one call of :meth:`Replica.step` over a token batch laid out as
  [ B decode sequences x Q = k+1 tokens | prefill chunk tokens ]
with all metadata (token ids, positions, cache slots, attention work items, rows of the
logits, draft positions ...) read from ONE device int32 buffer ``meta_d`` that the host
fills (pinned) and copies in one H2D transfer per iteration.  Because every tensor the
step reads is static, a decode-only step is captured in a CUDA graph per padded batch.

Per iteration the step does, as vLLM V1 does:
  1. target forward over all T tokens (36 layers), logits at the B*(k+1) decode rows and
     at the last token of every prefill that completes;
  2. sampling / rejection: softmax over the full vocabulary for every logits row,
     p_target/q_draft accept test of the k draft tokens, exponential-race sampling of the
     recovered / bonus / next tokens (the *decisions* are discarded: acceptance counts are
     synthetic, drawn on the host);
  3. EAGLE-3 drafting (k > 0): fc over the 3 aux hidden states of all T tokens, one draft
     layer over all T tokens, draft LM head (32000) + argmax at one row per sampled
     sequence; then k-1 more passes over one token per sampled sequence;
  4. one D2H copy of sampled tokens, accept flags and draft tokens (a host sync, like
     vLLM's non-async scheduling).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import ops
from .attention import PAGE, choose_nsplit, paged_attention, tile_for
from .config import DraftShape, TargetShape


@dataclass
class Caps:
    max_num_seqs: int = 1024
    max_num_batched_tokens: int = 8192
    max_model_len: int = 10240
    k_max: int = 7
    max_updates: int = 4096

    @property
    def max_blocks_per_seq(self) -> int:
        return (self.max_model_len + 2 * self.k_max + 2 + PAGE - 1) // PAGE

    @property
    def max_prefill_items(self) -> int:
        return self.max_num_batched_tokens // 16 + self.max_num_seqs


class MetaLayout:
    """Offsets of the sections of the int32 metadata buffer."""

    def __init__(self, caps: Caps):
        T, B, W = caps.max_num_batched_tokens, caps.max_num_seqs, caps.max_prefill_items
        K1 = max(caps.k_max - 1, 0)
        sizes = [("ids", T), ("pos", T), ("slot", T), ("drow", B), ("dpos0", B),
                 ("prow", W), ("pqs", W), ("pnq", W), ("ppos0", W), ("lrows", B),
                 ("last_idx", B), ("srow", B), ("dpos", K1 * B), ("dslot", K1 * B),
                 ("upd_idx", caps.max_updates), ("upd_val", caps.max_updates)]
        self.off = {}
        o = 0
        for name, n in sizes:
            self.off[name] = o
            o += n
        self.size = o
        self.B = B


class Replica:
    def __init__(self, tgt: TargetShape, dft: DraftShape | None, device: str,
                 dtype: torch.dtype, caps: Caps, seed: int = 0, n_sm: int = 132):
        self.tgt, self.dft = tgt, dft
        self.device = torch.device(device)
        self.dtype = dtype
        self.caps = caps
        self.n_sm = n_sm
        self.scale = 1.0 / math.sqrt(tgt.head_dim)
        self._init_weights(seed)
        self.rope = ops.rope_table(caps.max_model_len + 2 * caps.k_max + 64, tgt.head_dim,
                                   tgt.rope_theta, self.device)
        self.layout = MetaLayout(caps)
        self.meta_d = torch.zeros(self.layout.size, dtype=torch.int32, device=self.device)
        pin = self.device.type == "cuda"
        self.meta_h_t = torch.zeros(self.layout.size, dtype=torch.int32, pin_memory=pin)
        self.meta_h = self.meta_h_t.numpy()
        B = caps.max_num_seqs
        # block table: one row per running sequence + a null row (index B) -> null block 0
        self.bt = torch.zeros((B + 1, caps.max_blocks_per_seq), dtype=torch.int32,
                              device=self.device)
        self.null_row = B
        ar = torch.arange(B, dtype=torch.int32, device=self.device)
        self.ar1 = ar
        self.ones = torch.ones(B, dtype=torch.int32, device=self.device)
        self.qsQ = {Q: (ar * Q).contiguous() for Q in range(1, caps.k_max + 2)}
        self.nqQ = {Q: torch.full((B,), Q, dtype=torch.int32, device=self.device)
                    for Q in range(1, caps.k_max + 2)}
        km = max(caps.k_max, 1)
        if dft is not None:
            self.dtok_buf = torch.randint(0, tgt.vocab, (B, km), device=self.device)
            self.dprob_buf = torch.rand((B, km), device=self.device) * 0.5 + 0.5
        self.kv = None
        self.num_blocks = 0

    # ------------------------------------------------------------------ weights
    def _init_weights(self, seed: int):
        t, d, dev, dt = self.tgt, self.dft, self.device, self.dtype
        gen = torch.Generator(device=dev).manual_seed(seed)

        def lin(out_f, in_f):
            w = torch.randn((out_f, in_f), device=dev, dtype=dt, generator=gen)
            return w.mul_(1.0 / math.sqrt(in_f))

        def norm(n):
            return (1.0 + 0.02 * torch.randn((n,), device=dev, generator=gen)).to(dt)

        H, D = t.hidden, t.head_dim
        self.embed = torch.randn((t.vocab, H), device=dev, dtype=dt, generator=gen)
        self.layers = []
        for _ in range(t.num_layers):
            lw = dict(ln1=norm(H), wqkv=lin((t.n_heads + 2 * t.n_kv_heads) * D, H),
                      qn=norm(D), kn=norm(D), wo=lin(H, t.n_heads * D), ln2=norm(H))
            if t.is_moe:  # router [H, E]; experts' gate/up [E, 2I, H] and down [E, H, I]
                E_, I_ = t.num_experts, t.moe_intermediate
                lw["wr"] = torch.randn((H, E_), device=dev, dtype=dt, generator=gen)
                lw["w1"] = torch.randn((E_, 2 * I_, H), device=dev, dtype=dt, generator=gen).mul_(1.0 / math.sqrt(H))
                lw["w2"] = torch.randn((E_, H, I_), device=dev, dtype=dt, generator=gen).mul_(1.0 / math.sqrt(I_))
            else:
                lw["wgu"] = lin(2 * t.intermediate, H)
                lw["wd"] = lin(H, t.intermediate)
            self.layers.append(lw)
        self.final_norm = norm(H)
        self.lm_head = lin(t.vocab, H)
        if d is not None:
            assert d.hidden == H and d.head_dim == D
            Dd = d.head_dim
            self.draft = dict(
                fc=lin(H, d.fused_hidden_states * H), enorm=norm(H), hnorm=norm(H),
                wqkv=lin((d.n_heads + 2 * d.n_kv_heads) * Dd, 2 * H),
                qn=norm(Dd), kn=norm(Dd), wo=lin(H, d.n_heads * Dd), ln2=norm(H),
                wgu=lin(2 * d.intermediate, H), wd=lin(H, d.intermediate), norm=norm(H),
                lm_head=lin(d.draft_vocab, H))
            g = torch.Generator(device="cpu").manual_seed(seed + 1)
            tgt_ids = torch.sort(torch.randperm(t.vocab, generator=g)[: d.draft_vocab]).values
            self.d2t = (tgt_ids - torch.arange(d.draft_vocab)).to(dev)

    def weight_bytes(self) -> int:
        n = self.embed.numel() + self.lm_head.numel() + self.final_norm.numel()
        for lw in self.layers:
            n += sum(v.numel() for v in lw.values())
        if self.dft is not None:
            n += sum(v.numel() for v in self.draft.values())
        return n * self.embed.element_size()

    # ------------------------------------------------------------------ KV pool
    def kv_bytes_per_block(self) -> int:
        n_layers = self.tgt.num_layers + (1 if self.dft is not None else 0)
        return n_layers * 2 * PAGE * self.tgt.n_kv_heads * self.tgt.head_dim * \
            torch.tensor([], dtype=self.dtype).element_size()

    def allocate_kv(self, num_blocks: int):
        self.kv = None
        n_layers = self.tgt.num_layers + (1 if self.dft is not None else 0)
        self.kv = torch.empty((n_layers, 2, num_blocks * PAGE, self.tgt.n_kv_heads,
                               self.tgt.head_dim), dtype=self.dtype, device=self.device)
        self.kv.normal_()  # never time attention over zeros / NaN garbage
        self.num_blocks = num_blocks

    def apply_updates(self, n_upd: int):
        """Incremental block-table update: entries (flat index, block) of this iteration."""
        idx = self.sec("upd_idx", n_upd).long()
        self.bt.view(-1).index_copy_(0, idx, self.sec("upd_val", n_upd))

    # ------------------------------------------------------------------ helpers
    def sec(self, name: str, n: int, start: int = 0) -> torch.Tensor:
        o = self.layout.off[name] + start
        return self.meta_d[o: o + n]

    def _attn_block(self, h, lw, cache_l: int, pos, slots, groups, n_heads, n_kv, has_norm):
        T = h.shape[0]
        D = self.tgt.head_dim
        qkv = h @ lw["wqkv"].t()
        kc, vc = self.kv[cache_l, 0], self.kv[cache_l, 1]
        q = ops.qkv_rope_cache(qkv, pos, slots, self.rope, lw["qn"], lw["kn"], kc, vc,
                               n_heads, n_kv, D, self.tgt.rms_eps, has_norm)
        o = torch.empty_like(q)
        for (row, qs, nq, p0, n_items, tile, nsplit) in groups:
            paged_attention(q, kc, vc, o, self.bt, row, qs, nq, p0, n_items, tile, nsplit,
                            self.scale, n_kv)
        return o.view(T, n_heads * D) @ lw["wo"].t()

    def _groups(self, B, Q, n_items_pre, nsplit_dec):
        G = self.tgt.group
        groups = []
        if B > 0:
            groups.append((self.sec("drow", B), self.qsQ[Q][:B], self.nqQ[Q][:B],
                           self.sec("dpos0", B), B, tile_for(Q, G), nsplit_dec))
        if n_items_pre > 0:
            groups.append((self.sec("prow", n_items_pre), self.sec("pqs", n_items_pre),
                           self.sec("pnq", n_items_pre), self.sec("ppos0", n_items_pre),
                           n_items_pre, tile_for(16, G), 1))
        return groups

    # ------------------------------------------------------------------ the step
    def step(self, B: int, k: int, n_pre_tok: int, n_items_pre: int,
             n_complete: int) -> torch.Tensor:
        """One engine iteration (see module doc).  Returns the int32 output tensor
        [sampled (B*(k+1) + n_complete) | accept flags (B*k) | draft tokens (n_samp*k)]."""
        t = self.tgt
        Q = k + 1
        T = B * Q + n_pre_tok
        n_samp = B + n_complete
        ids = self.sec("ids", T)
        pos = self.sec("pos", T)
        slots = self.sec("slot", T)
        nsplit_dec = choose_nsplit(B, t.n_kv_heads, self.n_sm)
        groups = self._groups(B, Q, n_items_pre, nsplit_dec)
        aux_set = set(self.dft.aux_layers) if (self.dft is not None and k > 0) else set()
        aux_d = {}
        x = F.embedding(ids, self.embed)
        res = None
        for li, lw in enumerate(self.layers):
            h, res = ops.add_rmsnorm(x, res, lw["ln1"], t.rms_eps)
            if li in aux_set:
                aux_d[li] = res
            x = self._attn_block(h, lw, li, pos, slots, groups, t.n_heads, t.n_kv_heads,
                                 t.qk_norm)
            h, res = ops.add_rmsnorm(x, res, lw["ln2"], t.rms_eps)
            if t.is_moe:
                x = ops.moe(h, lw["wr"], lw["w1"], lw["w2"], t.top_k)
            else:
                x = ops.silu_mul(h @ lw["wgu"].t()) @ lw["wd"].t()
        h, _ = ops.add_rmsnorm(x, res, self.final_norm, t.rms_eps)
        aux = [aux_d[li] for li in self.dft.aux_layers] if aux_set else []
        if n_complete > 0:
            hl = torch.cat([h[: B * Q], h.index_select(0, self.sec("lrows", n_complete))])
        else:
            hl = h[: B * Q]
        logits = hl @ self.lm_head.t()
        probs = torch.softmax(logits, dim=-1, dtype=torch.float32)
        outs = []
        if k > 0 and B > 0:
            dtok = self.dtok_buf[:B, :k]
            pt = probs[: B * Q].view(B, Q, -1)[:, :k].gather(2, dtok.unsqueeze(-1)).squeeze(-1)
            u = torch.rand((B, k), device=self.device)
            accept = (u * self.dprob_buf[:B, :k] <= pt).to(torch.int32)
        noise = torch.empty_like(probs).exponential_()
        sampled = probs.div_(noise).argmax(dim=-1).to(torch.int32)
        outs.append(sampled)
        if k > 0 and B > 0:
            outs.append(accept.view(-1))
        if k > 0 and n_samp > 0:
            outs.append(self._draft(B, Q, k, T, n_samp, ids, pos, slots, groups, aux))
        return torch.cat(outs) if len(outs) > 1 else outs[0]

    def _draft_layer(self, emb, hid, cache_l, pos, slots, groups):
        dw, d, eps = self.draft, self.dft, self.tgt.rms_eps
        e, _ = ops.add_rmsnorm(emb, None, dw["enorm"], eps)
        hn, _ = ops.add_rmsnorm(hid, None, dw["hnorm"], eps)
        x = self._attn_block(torch.cat([e, hn], dim=-1), dw, cache_l, pos, slots, groups,
                             d.n_heads, d.n_kv_heads, d.qk_norm)
        h, res = ops.add_rmsnorm(x, hid, dw["ln2"], eps)
        x = ops.silu_mul(h @ dw["wgu"].t()) @ dw["wd"].t()
        return x + res  # pre-norm hidden state (input of the next draft pass)

    def _draft_head(self, hid, slot_j: int, n_samp: int):
        dw = self.draft
        hn, _ = ops.add_rmsnorm(hid, None, dw["norm"], self.tgt.rms_eps)
        lg = hn @ dw["lm_head"].t()
        tok = lg.argmax(dim=-1)
        qprob = torch.softmax(lg, dim=-1, dtype=torch.float32).gather(1, tok[:, None])[:, 0]
        ttok = tok + self.d2t[tok]
        self.dtok_buf[:n_samp, slot_j].copy_(ttok)
        self.dprob_buf[:n_samp, slot_j].copy_(qprob)
        return ttok

    def _draft(self, B, Q, k, T, n_samp, ids, pos, slots, groups, aux):
        cache_l = self.tgt.num_layers
        dw = self.draft
        fused = torch.cat(aux, dim=-1) @ dw["fc"].t()
        emb = F.embedding(ids, self.embed)  # (shifted) next tokens; values don't matter
        hout = self._draft_layer(emb, fused, cache_l, pos, slots, groups)
        hid = hout.index_select(0, self.sec("last_idx", n_samp))
        toks = [self._draft_head(hid, 0, n_samp)]
        G = self.tgt.group
        nsplit = choose_nsplit(n_samp, self.tgt.n_kv_heads, self.n_sm)
        for j in range(1, k):
            dpos = self.sec("dpos", n_samp, (j - 1) * self.layout.B)
            dslot = self.sec("dslot", n_samp, (j - 1) * self.layout.B)
            grp = [(self.sec("srow", n_samp), self.ar1[:n_samp], self.ones[:n_samp], dpos,
                    n_samp, tile_for(1, G), nsplit)]
            emb = F.embedding(toks[-1], self.embed)
            hid = self._draft_layer(emb, hid, cache_l, dpos, dslot, grp)
            toks.append(self._draft_head(hid, j, n_samp))
        return torch.stack(toks, dim=1).to(torch.int32).view(-1)
