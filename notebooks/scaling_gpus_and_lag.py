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
# # Speculative decoding vs GPU count and policy lag
#
# More GPUs shrink every replica's batch and stretch the long tail, where speculation pays most; an
# asynchronous pipeline (policy lag >= 1) hides generation behind training, leaving less for speculation
# to shorten. This notebook sweeps both for RL-Zero / RL-Think (8B) and Qwen3-235B-A22B.
# `RLSIM_NOTEBOOK_SMALL=1` shrinks the grids (CI); `RLSIM_NOTEBOOK_SIZE=moderate` runs one seed and fewer
# 235B points; unset both for the full grids (3 seeds), at which **the outputs committed with this notebook were
# executed** (about a minute on two cores with an empty cache). The GPU and lag plots draw the absolute step and rollout times (autoregressive solid,
# speculative dashed) with the speedup on the right axis: a policy lag shortens both steps even where the ratio
# falls. Lag >= 1 needs the asynchronous pipeline (`rlsim.pipeline.asynchronous`); the lag section says so if this
# build lacks it.

# %%
# %matplotlib inline
import importlib.util
import os
from pathlib import Path

from rlsim import sweep
from rlsim.report import plots

try:
    from IPython.display import display
except ImportError:  # run as a plain script
    display = print

SMALL = os.environ.get("RLSIM_NOTEBOOK_SMALL") == "1"
MODERATE = not SMALL and os.environ.get("RLSIM_NOTEBOOK_SIZE") == "moderate"
FIGURES = Path(os.environ.get("RLSIM_NOTEBOOK_FIGURES", "figures"))
SEEDS = 1 if SMALL or MODERATE else 3
# in the small grid the 8B workloads run 8 prompts x 32 generations per step instead of 64 x 32
SHRINK = {"num_prompts_per_step": 8} if SMALL else {}

# %% [markdown]
# ## Speedup vs GPU count (synchronous, colocated)

# %%
gpus8 = [8, 32] if SMALL else [8, 16, 32, 64, 128]
df = sweep(workload="rl-zero-8b", gpus=gpus8, k=[1, 3] if SMALL else [1, 3, 5], draft_quality=0.8, seeds=SEEDS, **SHRINK)
fig = plots.speedup_vs_gpus(df)
plots.save(fig, FIGURES / "speedup_vs_gpus_8b.png")
fig

# %%
if not SMALL:  # Qwen3-235B: 128 .. 2048 GB200 (replicas of TP 8)
    df235 = sweep(workload="rl-235b", gpus=[128, 512, 2048] if MODERATE else [128, 256, 512, 1024, 2048], k=3,
                  draft_quality=[0.8] if MODERATE else [0.7, 0.8, 0.9], seeds=SEEDS)
    fig = plots.speedup_vs_gpus(df235)
    plots.save(fig, FIGURES / "speedup_vs_gpus_235b.png")
    display(fig)

# %% [markdown]
# ## Speedup vs policy lag (asynchronous RL, non-colocated)
#
# RL-Think on 12 generation + 4 training trays (48 + 16 GB200), the study's async layout.

# %%
if importlib.util.find_spec("rlsim.pipeline.asynchronous") is None:
    print("asynchronous RL (rlsim.pipeline.asynchronous) is not in this build: lag >= 1 cannot be simulated yet")
else:
    lag = sweep(workload="rl-think-8b", split="48:16", lag=[0, 1] if SMALL else [0, 1, 2, 3], k=3,
                seeds=SEEDS, **SHRINK)
    fig = plots.speedup_vs_lag(lag)
    plots.save(fig, FIGURES / "speedup_vs_lag_8b.png")
    display(fig)
    fig = plots.phase_bars(lag, by="lag")
    plots.save(fig, FIGURES / "phases_by_lag_8b.png")
    display(fig)
