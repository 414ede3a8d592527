"""Ground-truth rollout harness: a real (torch + Triton) vLLM-like generation replica.

It MEASURES the wall time of speculative rollouts on one GPU; it never predicts and
imports no simulator code.  See docs/ground-truth-harness.md.

Modules (import them explicitly; this file imports nothing heavy):
  config     model / draft shapes (from workloads/*.yaml) and the tiny CPU config
  ops        fused kernels (Triton on CUDA, torch reference elsewhere)
  attention  paged GQA-packed flash-decoding attention (Triton) + float32 reference
  model      target (Qwen3-like) and EAGLE-3 draft forward over a paged KV pool
  workload   lengths, acceptance rates, synthetic acceptance streams
  engine     continuous-batching scheduler, CUDA graphs, timing
  run_grid   command line: the measurement grid and its CSV outputs

Run it as ``python3 rlsim/calibration/harness/run_grid.py ...`` (the script puts its
own folder's parent on sys.path and imports this package as ``harness``), so the
rest of rlsim and its dependencies are never imported.
"""

__all__ = ["config", "ops", "attention", "model", "workload", "engine", "run_grid"]
