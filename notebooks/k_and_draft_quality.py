# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Speculative decoding in RL rollouts: which k, and how good must the draft be?
#
# This notebook sweeps the number of draft tokens **k** and the **draft quality** for the study's two
# 8B workloads (RL-Zero: `rl-zero-8b`, RL-Think: `rl-think-8b`, 32 GB200, synchronous, colocated) and for
# Qwen3-235B-A22B (`rl-235b`, 512 GB200, FP8 generation), and plots rollout and end-to-end speedups.
#
# **Draft quality** `c` is the per-token conditional acceptance rate of a geometric model: draft token *i*
# is accepted with probability `c` given that tokens *0..i-1* were. It belongs to the draft, not to k, so
# it gives an acceptance length at every k: `AL(k) = 1 + c + c^2 + ... + c^k`. Sweeping quality and k
# independently answers "is a longer draft worth it for *this* draft?".
#
# Every point is simulated for several seeds (sampled response lengths differ); the plots show the mean
# and a 95% confidence interval. Results are cached in `.rlsim-cache/` (or `$RLSIM_CACHE_DIR`), so
# re-running the notebook is instant. Set `RLSIM_NOTEBOOK_SMALL=1` for a small grid (CI does), or
# `RLSIM_NOTEBOOK_SIZE=moderate` for k 1, 2, 3, 5, 7 x quality 0.6..0.9 with one seed; unset both for the full
# grid (3 seeds), at which **the outputs committed with this notebook were executed** (about a minute on two cores with an empty cache).

# %%
# %matplotlib inline
import os
from pathlib import Path

import pandas as pd

from rlsim import sweep
from rlsim.report import plots
from rlsim.speculation import AcceptanceModel

SMALL = os.environ.get("RLSIM_NOTEBOOK_SMALL") == "1"
MODERATE = not SMALL and os.environ.get("RLSIM_NOTEBOOK_SIZE") == "moderate"
FIGURES = Path(os.environ.get("RLSIM_NOTEBOOK_FIGURES", "figures"))
K = [1, 3] if SMALL else [1, 2, 3, 5, 7] if MODERATE else [1, 2, 3, 4, 5, 6, 7]
QUALITY = [0.6, 0.9] if SMALL else [0.6, 0.7, 0.8, 0.9] if MODERATE else [0.5, 0.6, 0.7, 0.8, 0.9]
SEEDS = 1 if SMALL or MODERATE else 3
# the small grid (CI) also shrinks each RL step (8 prompts per step for the 8B workloads, 32 for 235B)
SHRINK_8B = {"num_prompts_per_step": 8} if SMALL else {}
SHRINK_235B = {"num_prompts_per_step": 32} if SMALL else {}
print(f"grid: k {K} x quality {QUALITY} x {SEEDS} seed(s); figures -> {FIGURES}/")

# %% [markdown]
# ## Draft quality -> acceptance length at every k

# %%
al = pd.DataFrame({f"k={k}": [AcceptanceModel.from_quality(k, q).acceptance_length for q in QUALITY] for k in K},
                  index=pd.Index(QUALITY, name="quality"))
al.round(2)

# %% [markdown]
# The study's measured acceptance lengths (EAGLE-3, DAPO-initialised) imply a quality that *falls* with k
# (the constant per-token rate that reproduces each AL): real drafts get worse further ahead, which the
# optional `draft_quality_decay` axis models.

# %%
measured = {"rl-zero-8b": {3: 3.32, 5: 4.35, 7: 5.06}, "rl-think-8b": {3: 2.77, 5: 3.23, 7: 3.48}}
pd.DataFrame({w: {k: round(AcceptanceModel.from_acceptance_length(k, a).conditional_rates[0], 3) for k, a in d.items()}
              for w, d in measured.items()}).rename_axis("k")

# %% [markdown]
# ## The 8B workloads (RL-Zero and RL-Think)

# %%
df8 = sweep(workload=["rl-zero-8b", "rl-think-8b"], k=K, draft_quality=QUALITY, seeds=SEEDS, **SHRINK_8B)
df8[["workload", "k", "draft_quality", "n_seeds", "acceptance_length", "speedup_generation", "speedup_step",
     "speedup_step_ci_lo", "speedup_step_ci_hi"]].round(3)

# %%
fig = plots.speedup_vs_k(df8)
plots.save(fig, FIGURES / "speedup_vs_k_8b.png")
fig

# %%
fig = plots.heatmap(df8)
plots.save(fig, FIGURES / "heatmap_8b.png")
fig

# %% [markdown]
# Best k per quality (end-to-end): with a weak draft, longer drafts stop paying early; a strong draft
# keeps gaining up to k = 7.

# %%
best = df8.loc[df8.groupby(["workload", "draft_quality"])["speedup_step"].idxmax(),
               ["workload", "draft_quality", "k", "speedup_step", "speedup_generation"]]
best.round(3)

# %% [markdown]
# ## Qwen3-235B-A22B (`rl-235b`: 512 GB200, rollout batch 4096, FP8 generation)

# %%
df235 = sweep(workload="rl-235b", k=K, draft_quality=QUALITY, seeds=SEEDS, **SHRINK_235B)
fig = plots.speedup_vs_k(df235)
plots.save(fig, FIGURES / "speedup_vs_k_235b.png")
fig

# %%
fig = plots.heatmap(df235)
plots.save(fig, FIGURES / "heatmap_235b.png")
fig

# %% [markdown]
# ## Where the step time goes (draft quality 0.8 in the full grid)
#
# Light bars: autoregressive; solid: speculative. Speculation shortens only the generation phase; refit,
# log-prob and training stay, which is why the end-to-end speedup is below the rollout speedup.

# %%
q_bar = 0.8 if 0.8 in QUALITY else QUALITY[-1]
both = pd.concat([df8, df235], ignore_index=True)
fig = plots.phase_bars(both[both.draft_quality == q_bar], by="k")
plots.save(fig, FIGURES / "phases_by_k.png")
fig
