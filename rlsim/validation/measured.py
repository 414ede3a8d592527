"""Predicted vs measured: replay every ground-truth rollout recorded by the harness
(calibration/<gpu>/rollouts/) with the simulator: same sequences (prompt and response lengths in
order), same k and per-position acceptance rates, same KV capacity, batching limits and CUDA-graph
capture size, the same GPU's calibration. Nothing here is fitted to the rollouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..catalog import GenerationParallelism, load_draft, load_hardware, load_model
from ..catalog.loader import catalog_dir
from ..costmodel import IterationCostModel, replica_layout
from ..costmodel.select import get_timer
from ..engine import ReplicaConfig, SpecPolicy, simulate_replica
from ..errors import CalibrationDataError
from ..speculation import AcceptanceModel

GPU_PROFILE = {"h100": "h100-sxm", "h200": "h200-sxm"}


def rollout_dir(name: str) -> Path:
    """A ground-truth set: ``h200`` -> calibration/h200/rollouts, ``h200-moe`` -> calibration/h200/rollouts-moe."""
    gpu, _, suffix = name.partition("-")
    return catalog_dir("calibration") / gpu / ("rollouts-" + suffix if suffix else "rollouts")


def load_runs(gpu: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    d = rollout_dir(gpu)
    if not (d / "runs.csv").is_file():
        raise CalibrationDataError(f"no ground-truth rollouts under {d}")
    runs = pd.read_csv(d / "runs.csv")
    seqs = pd.read_csv(d / "sequences.csv")
    return runs, seqs


def predict_run(run: pd.Series, seqs: pd.DataFrame, calibration: str = "auto", seed: int = 0,
                engine: str = "ideal") -> dict:
    """One harness run replayed. The harness is the ideal engine (every step graphed up to its capture limit, fused
    sampling, no host work between steps), so ``engine="ideal"`` is the like-for-like comparison; another profile
    shows what that engine's mechanisms would add to the same rollout."""
    gpu = str(run["gpu"])
    hw = load_hardware(GPU_PROFILE.get(gpu, gpu))
    hw = hw.model_copy(update={"cudagraph_capture_max_tokens": int(run["cudagraph_max_tokens"])})
    model = load_model(str(run["model"]))
    k = int(run["k"])
    draft = load_draft(str(run["draft"])) if k > 0 and isinstance(run["draft"], str) and run["draft"] else None
    layout = replica_layout(model, GenerationParallelism(tensor_parallel_size=1))
    from ..catalog import EngineConfig, load_engine

    prof = load_engine(engine)
    cost = IterationCostModel(model, hw, layout, get_timer(hw, calibration), dtype="bf16",
                              method="eagle3" if draft is not None else "none", draft=draft,
                              engine=None if prof.engine == "ideal" else prof,
                              engine_config=EngineConfig(max_num_batched_tokens=int(run["max_num_batched_tokens"]),
                                                         max_num_seqs=int(run["max_num_seqs"])), configured_k=k)
    if k > 0:
        rates = [float(x) for x in str(run["acceptance_rates"]).split(";")]
        acc = AcceptanceModel(tuple(rates))
    else:
        acc = AcceptanceModel.none()
    cfg = ReplicaConfig(int(run["max_num_batched_tokens"]), int(run["max_num_seqs"]), int(run["kv_capacity_tokens"]))
    s = seqs[seqs["run_id"] == run["run_id"]].sort_values("seq_id")
    r = simulate_replica(s["prompt_len"].to_numpy(), s["response_len"].to_numpy(), cost, SpecPolicy(acc), cfg,
                         np.random.default_rng([seed, int(run["seed"])]))
    return {"pred_time_s": r.end_time_s, "pred_iterations": r.iterations,
            "pred_al": 1 + r.accepted_drafts / r.spec_rounds if r.spec_rounds else 1.0}


def compare(gpu: str, calibration: str = "auto", engine: str = "ideal") -> pd.DataFrame:
    runs, seqs = load_runs(gpu)
    rows = []
    for _, run in runs.iterrows():
        p = predict_run(run, seqs, calibration, engine=engine)
        rows.append({"run_id": run["run_id"], "length": run.get("length_kind", ""), "N": int(run["n_seqs"]),
                     "k": int(run["k"]), "target_al": float(run["target_al"]), "meas_time_s": float(run["total_time_s"]),
                     "meas_iterations": int(run["iterations"]), **p})
    df = pd.DataFrame(rows)
    df["time_err"] = df["pred_time_s"] / df["meas_time_s"] - 1
    df["iter_err"] = df["pred_iterations"] / df["meas_iterations"] - 1
    # speedup vs the AR run of the same (length, N)
    ar = df[df["k"] == 0].set_index(["length", "N"])
    sp_m, sp_p = [], []
    for _, r in df.iterrows():
        key = (r["length"], r["N"])
        if key in ar.index and r["k"] > 0:
            a = ar.loc[key]
            sp_m.append(a["meas_time_s"] / r["meas_time_s"])
            sp_p.append(a["pred_time_s"] / r["pred_time_s"])
        else:
            sp_m.append(np.nan)
            sp_p.append(np.nan)
    df["meas_speedup"] = sp_m
    df["pred_speedup"] = sp_p
    df["speedup_err"] = df["pred_speedup"] / df["meas_speedup"] - 1
    return df


def crossover(df: pd.DataFrame) -> pd.DataFrame:
    """Per k (at the middle acceptance), the batch sizes where speculation stops paying, measured and predicted."""
    out = []
    sel = df[(df["k"] > 0) & (df["length"] == "short")]
    for k, g in sel.groupby("k"):
        for al, gg in g.groupby("target_al"):
            gg = gg.sort_values("N")
            out.append({"k": k, "target_al": al,
                        "meas_speedup_by_N": dict(zip(gg["N"], gg["meas_speedup"].round(2))),
                        "pred_speedup_by_N": dict(zip(gg["N"], gg["pred_speedup"].round(2))),
                        "meas_crossover_N": next((int(n) for n, s in zip(gg["N"], gg["meas_speedup"]) if s < 1.0), None),
                        "pred_crossover_N": next((int(n) for n, s in zip(gg["N"], gg["pred_speedup"]) if s < 1.0), None)})
    return pd.DataFrame(out)


def available_gpus() -> list[str]:
    """Ground-truth sets: one per GPU folder with rollouts/ (the dense 8B grid), plus one per rollouts-<x>/
    (e.g. ``h200-moe``: an MoE target)."""
    root = catalog_dir("calibration")
    return sorted(p.parent.name + p.name[len("rollouts"):] for p in root.glob("*/rollouts*")
                  if (p / "runs.csv").is_file())


def save_artifacts(out_dir: Path, calibration: str = "auto") -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {}
    for gpu in available_gpus():
        df = compare(gpu, calibration)
        df.to_csv(out_dir / f"measured_{gpu}.csv", index=False, float_format="%.5g")
        summary[gpu] = {"runs": len(df), "time_err_median": float(df["time_err"].abs().median()),
                        "time_err_max": float(df["time_err"].abs().max()),
                        "speedup_err_median": float(df["speedup_err"].abs().median()),
                        "speedup_err_max": float(df["speedup_err"].abs().max())}
    return summary
