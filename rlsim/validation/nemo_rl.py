"""NeMo-RL v0.6.0's measured H100 step times at scale beside rlsim's predictions: ``rlsim validate nemo-rl``.

Each row of shared/reference/nemo-rl-performance-h100.md is re-predicted from its recipe (``defaults:`` chain
resolved by ``studies.nemo_rl.from_nemo_rl``) and the measured mean sequence length (``avg_seq_len``), on
``h100-sxm``, autoregressive (k = 0), as ``rlsim project --from-nemo-rl RECIPE --hardware h100-sxm
--avg-seq-len N --k 0`` does. Nothing in rlsim is fitted to these rows (see docs/validation.md): every
constant comes from the calibration tables, the hardware profiles, the catalog or the recipe.

The GB200 rows of the same document are withheld from the reference; ``predict_gb200`` predicts them: the
same recipes (models, layouts, batch sizes, lengths) on ``gb200-nvl72`` (4 GPUs per node, NVLink domain of
72) at 64-512 GPUs (the 32-GPU rows raised to 64).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RECIPE_DIR_ENV = "RLSIM_NEMO_RL_RECIPES"
RECIPE_SUBDIR = Path("nemo-rl-v0.6.0/examples/configs/recipes/llm/performance")


@dataclass(frozen=True)
class Row:
    model: str
    policy: str
    recipe: str
    gpus: int
    avg_seq_len: int
    tokens_per_s_per_gpu: float
    step_s: float


# shared/reference/nemo-rl-performance-h100.md (NeMo-RL v0.6.0 docs/about/performance-summary.md, H100 BF16)
H100_ROWS = (
    Row("DeepSeek-V3", "on-policy", "grpo-deepseek-v3-32n8g", 256, 701, 12.1, 134.0),
    Row("DeepSeek-V3", "on-policy", "grpo-deepseek-v3-64n8g", 512, 697, 7.24, 111.0),
    Row("DeepSeek-V3", "1-step off", "grpo-deepseek-v3-64n8g-async-1off", 512, 710, 12.8, 64.1),
    Row("Qwen3-235B-A22B", "on-policy", "grpo-qwen3-235b-16n8g", 128, 5698, 58.9, 395.0),
    Row("Qwen3-235B-A22B", "on-policy", "grpo-qwen3-235b-32n8g", 256, 5713, 37.4, 312.0),
    Row("Qwen3-235B-A22B", "1-step off", "grpo-qwen3-235b-32n8g-async-1off", 256, 5721, 58.7, 231.0),
    Row("Qwen3-30B-A3B", "on-policy", "grpo-qwen3-30ba3b-4n8g", 32, 3203, 1102.0, 192.0),
    Row("Qwen3-30B-A3B", "1-step off", "grpo-qwen3-30ba3b-4n8g-async-1off", 32, 3201, 1414.0, 152.0),
    Row("Qwen3-30B-A3B", "8-step off", "grpo-qwen3-30ba3b-24n8g-async-8off", 192, 3206, 1025.0, 34.5),
)
TARGET, GOAL = 0.20, 0.10


def recipe_dir() -> Path:
    """The NeMo-RL performance recipes: ``$RLSIM_NEMO_RL_RECIPES``, else the copy in validation/nemo-rl-v0.6.0 (source
    checkout), else shared/reference beside the checkout."""
    import os

    env = os.environ.get(RECIPE_DIR_ENV)
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    vendored = here.parents[2] / "validation" / RECIPE_SUBDIR  # the copy committed beside the artefacts
    if vendored.is_dir():
        return vendored
    for up in here.parents:
        for cand in (up / "shared" / "reference" / RECIPE_SUBDIR, up.parent / "shared" / "reference" / RECIPE_SUBDIR):
            if cand.is_dir():
                return cand
    from ..errors import ConfigurationError

    raise ConfigurationError(f"NeMo-RL recipes not found: set ${RECIPE_DIR_ENV} to the folder holding "
                             f"{RECIPE_SUBDIR} (grpo-qwen3-235b-16n8g.yaml, ...)")


def scenario_kwargs(row: Row, hardware: str = "h100-sxm", gpus: int | None = None) -> dict:
    """``build_scenario`` arguments of a row: the recipe's, the measured mean length, k = 0, and for another GPU
    count the recipe's generation / training split scaled in proportion."""
    from ..studies.nemo_rl import from_nemo_rl

    m = from_nemo_rl(recipe_dir() / f"{row.recipe}.yaml")
    kw = dict(m.kwargs)
    kw.update(hardware=hardware, k=0, avg_seq_len=float(row.avg_seq_len))
    if gpus is not None and gpus != row.gpus:
        if "gen_gpus" in kw:
            f = gpus / row.gpus
            kw["gen_gpus"], kw["train_gpus"] = int(kw["gen_gpus"] * f), int(kw["train_gpus"] * f)
        else:
            kw["gpus"] = gpus
    return kw


def predict(row: Row, hardware: str = "h100-sxm", calibration: str = "auto", gpus: int | None = None) -> dict:
    """rlsim's step and phases for one row (autoregressive, steady state for async rows)."""
    from ..pipeline import build_setup
    from ..pipeline.run import simulate_one
    from ..scenario import build_scenario

    sc = build_scenario(**scenario_kwargs(row, hardware, gpus), calibration=calibration)
    setup = build_setup(sc)
    r = simulate_one(setup, speculative=False)
    ph = r.phases_s
    out = {"recipe": row.recipe, "model": row.model, "policy": row.policy, "hardware": hardware,
           "gpus": gpus or row.gpus, "gen_gpus": setup.gen_gpus, "train_gpus": setup.train_gpus,
           "colocated": sc.workload.colocated, "lag": sc.lag, "avg_seq_len": row.avg_seq_len,
           "step_s": r.step_s, "phases_s": {k: float(v) for k, v in ph.items()},
           "generation": {"replicas": setup.n_replicas, "tensor_parallel_size": setup.layout.tensor_parallel_size,
                          "kv_capacity_tokens_per_replica": (setup.memory_ar.kv_capacity_tokens),
                          "iterations_max": r.generation.iterations_max,
                          "preemptions": r.generation.preemptions},
           "training_breakdown": r.extra.get("training_breakdown"), "calibration": setup.timer.describe(),
           "extrapolated": sorted(setup.timer.extrapolated)}
    if hardware == "h100-sxm" and (gpus is None or gpus == row.gpus):
        out["measured_step_s"] = row.step_s
        out["signed_error"] = r.step_s / row.step_s - 1.0
    return out


def validate(calibration: str = "auto", rows=H100_ROWS, progress=None) -> list[dict]:
    out = []
    for row in rows:
        if progress:
            progress(row.recipe)
        out.append(predict(row, "h100-sxm", calibration))
    return out


def gb200_gpus(row: Row) -> int:
    """The GPU count a row's GB200 prediction uses: its own, raised to 64 for the 32-GPU rows. The 512-GPU
    DeepSeek-V3 rows keep 512: their layouts (EP 32; PP 16 x EP 16 over a 256-GPU training pool) do not fit 256."""
    return int(max(row.gpus, 64))


def predict_gb200(calibration: str = "auto", rows=H100_ROWS, progress=None) -> list[dict]:
    out = []
    for row in rows:
        if progress:
            progress(row.recipe)
        out.append(predict(row, "gb200-nvl72", calibration, gb200_gpus(row)))
    return out


# ------------------------------------------------------------------------------------------- report
_PHASES = (("generation", "gen"), ("exposed_generation", "exposed gen"), ("refit", "refit"), ("logprob", "log-prob"),
           ("training", "training"))


def _phase_cells(r: dict) -> list[str]:
    ph = r["phases_s"]
    return [f"{ph[k]:.1f}" if k in ph else "-" for k, _ in _PHASES]


def format_table(results: list[dict]) -> str:
    lines = ["| model | policy | GPUs | avg seq | measured s | rlsim s | signed error | "
             + " | ".join(n for _, n in _PHASES) + " |",
             "|---|---|---:|---:|---:|---:|---:|" + "---:|" * len(_PHASES)]
    for r in results:
        lines.append(f"| {r['model']} | {r['policy']} | {r['gpus']} | {r['avg_seq_len']} | {r['measured_step_s']:.1f} | "
                     f"{r['step_s']:.1f} | {r['signed_error']:+.1%} | " + " | ".join(_phase_cells(r)) + " |")
    return "\n".join(lines)


def summary(results: list[dict]) -> dict:
    e = np.array([r["signed_error"] for r in results])
    return {"rows": len(e), "within_target_20pct": int((np.abs(e) <= TARGET).sum()),
            "within_goal_10pct": int((np.abs(e) <= GOAL).sum()), "median_abs_error": float(np.median(np.abs(e))),
            "mean_signed_error": float(e.mean())}


def format_breakdown(r: dict) -> str:
    bd = r.get("training_breakdown")
    if not bd:
        return ""
    lines = [f"{r['recipe']} ({r['gpus']} GPUs): training {r['phases_s']['training']:.1f} s, log-prob "
             f"{r['phases_s']['logprob']:.1f} s; layout {bd['training']['details']['layout']}; micro-batches per rank "
             f"per optimizer step {bd['training']['details']['micro_batches_per_rank']}; implied MFU training "
             f"{bd['implied_mfu']['training']:.1%}, log-prob {bd['implied_mfu']['logprob']:.1%}", "",
             "| component | training s | log-prob s |", "|---|---:|---:|"]
    tr, lp = bd["training"]["components_s"], bd["logprob"]["components_s"]
    for k in sorted(set(tr) | set(lp), key=lambda k: -(tr.get(k, 0) + lp.get(k, 0))):
        if tr.get(k, 0) + lp.get(k, 0) < 0.005:
            continue
        lines.append(f"| {k} | {tr.get(k, 0):.2f} | {lp.get(k, 0):.2f} |")
    return "\n".join(lines)


def format_report(results: list[dict]) -> str:
    s = summary(results)
    out = ["# rlsim vs NeMo-RL v0.6.0's measured H100 step times (autoregressive, BF16)", "",
           "Regenerate: `rlsim validate nemo-rl --gb200 --out validation` (recipes: the copy in "
           "validation/nemo-rl-v0.6.0, or $RLSIM_NEMO_RL_RECIPES). Nothing is fitted to these rows.", "",
           f"Kernel costs: {results[0]['calibration'] if results else '-'}.", "",
           format_table(results), "",
           f"Within 20% (target): {s['within_target_20pct']} of {s['rows']}; within 10% (goal): "
           f"{s['within_goal_10pct']}; median |error| {s['median_abs_error']:.1%}; mean signed error "
           f"{s['mean_signed_error']:+.1%}.", "",
           "Phases in seconds (async rows: steady-state means; `gen` is a batch's generation span, `exposed gen` "
           "the trainer's wait for it).", "", "## Training and log-prob by component (layout model)", ""]
    for r in results:
        b = format_breakdown(r)
        if b:
            out += [b, ""]
    return "\n".join(out)


def format_gb200(results: list[dict]) -> str:
    lines = ["# rlsim's predictions of NeMo-RL's GB200-NVL72 rows (withheld from the reference)", "",
             "The H100 rows' recipes (same models, layouts, batch sizes, maximum and measured mean lengths) on "
             "`gb200-nvl72` (4 GPUs per node, one NVLink domain of 72 GPUs, kernel costs transferred from the H200 "
             "calibration), at the row's GPU count (the 32-GPU rows at 64; async rows: the recipe's generation / "
             "training split scaled in proportion; the 512-GPU DeepSeek-V3 rows stay at 512, their layouts need it). Regenerate: `rlsim validate nemo-rl --gb200 --out validation`.",
             "", "| model | policy | recipe (n8g) | GB200 GPUs | gen / train GPUs | rlsim step s | "
             + " | ".join(n for _, n in _PHASES) + " |",
             "|---|---|---|---:|---|---:|" + "---:|" * len(_PHASES)]
    for r in results:
        split = "colocated" if r["colocated"] else f"{r['gen_gpus']} / {r['train_gpus']}"
        lines.append(f"| {r['model']} | {r['policy']} | {r['recipe']} | {r['gpus']} | {split} | {r['step_s']:.1f} | "
                     + " | ".join(_phase_cells(r)) + " |")
    return "\n".join(lines) + "\n"


def save(results: list[dict], out_dir: Path, gb200: list[dict] | None = None) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if results:
        (out_dir / "nemo-rl.json").write_text(json.dumps({"summary": summary(results), "rows": results}, indent=1,
                                                         default=float) + "\n")
        (out_dir / "nemo-rl.md").write_text(format_report(results) + "\n")
        written += [out_dir / "nemo-rl.json", out_dir / "nemo-rl.md"]
    if gb200:
        (out_dir / "nemo-rl-gb200-predictions.md").write_text(format_gb200(gb200))
        (out_dir / "nemo-rl-gb200-predictions.json").write_text(json.dumps(gb200, indent=1, default=float) + "\n")
        written += [out_dir / "nemo-rl-gb200-predictions.md", out_dir / "nemo-rl-gb200-predictions.json"]
    return written


__all__ = ["H100_ROWS", "Row", "format_report", "predict", "predict_gb200", "save", "summary", "validate"]
