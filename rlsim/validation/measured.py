"""Predicted vs measured: replay every ground-truth rollout recorded by the harness
(calibration/<gpu>/rollouts/) with the simulator: same sequences (prompt and response lengths in
order), same k and per-position acceptance rates, same KV capacity, batching limits and CUDA-graph
capture size, the same GPU's calibration. Nothing here is fitted to the rollouts.

A set measured without CUDA graphs (the harness's ``--no-graphs``, recorded as ``caps.cudagraphs: false`` in its
meta.json and as ``cudagraph_max_tokens = 0`` per run, e.g. ``h200-eager``) is replayed with the engine configured
eager (``enforce_eager=True``, as vLLM's ``enforce_eager: true`` in NeMo-RL's DAPO recipe): every step is priced
without graphs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..catalog import GenerationParallelism, load_draft, load_hardware, load_model
from ..catalog.loader import catalog_dir
from ..costmodel import IterationCostModel, replica_layout
from ..costmodel.select import get_timer
from ..engine import ReplicaConfig, simulate_replica
from ..errors import CalibrationDataError
from ..speculation import AcceptanceModel
from ..speculation.policy import SpecPolicy

GPU_PROFILE = {"h100": "h100-sxm", "h200": "h200-sxm"}


def rollout_dir(name: str) -> Path:
    """A ground-truth set: ``h200`` -> calibration/h200/rollouts, ``h200-moe`` -> calibration/h200/rollouts-moe."""
    gpu, _, suffix = name.partition("-")
    return catalog_dir("calibration") / gpu / ("rollouts-" + suffix if suffix else "rollouts")


def set_meta(name: str) -> dict:
    """The set's meta.json (what the harness recorded: command, caps, GPU); {} when absent."""
    p = rollout_dir(name) / "meta.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def set_is_eager(name: str) -> bool:
    """True when the set was measured with no CUDA graphs (``run_grid.py --no-graphs``)."""
    caps = set_meta(name).get("caps") or {}
    return caps.get("cudagraphs") is False


def run_is_eager(run: pd.Series) -> bool:
    """A run measured with no CUDA graphs: the harness writes cudagraph_max_tokens = 0 and graph_iterations = 0."""
    return int(run["cudagraph_max_tokens"]) == 0


def load_runs(gpu: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    d = rollout_dir(gpu)
    if not (d / "runs.csv").is_file():
        raise CalibrationDataError(f"no ground-truth rollouts under {d}")
    runs = pd.read_csv(d / "runs.csv")
    seqs = pd.read_csv(d / "sequences.csv")
    return runs, seqs


def predict_run(run: pd.Series, seqs: pd.DataFrame, calibration: str = "auto", seed: int = 0,
                engine: str = "ideal", enforce_eager: bool | None = None) -> dict:
    """One harness run replayed. The harness is the ideal engine (every step graphed up to its capture limit, fused
    sampling, no host work between steps), so ``engine="ideal"`` is the like-for-like comparison; another profile
    shows what that engine's mechanisms would add to the same rollout. ``enforce_eager`` (None: from the run, see
    ``run_is_eager``) configures the engine with no CUDA graphs."""
    gpu = str(run["gpu"])
    eager = run_is_eager(run) if enforce_eager is None else bool(enforce_eager)
    hw = load_hardware(GPU_PROFILE.get(gpu, gpu))
    if int(run["cudagraph_max_tokens"]) > 0:  # an eager run records 0: keep the profile's limit, enforce_eager decides
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
                                                         max_num_seqs=int(run["max_num_seqs"]),
                                                         enforce_eager=eager),
                              configured_k=k, enforce_eager=eager)
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


def compare(gpu: str, calibration: str = "auto", engine: str = "ideal", enforce_eager: bool | None = None) -> pd.DataFrame:
    """Every run of the set replayed. ``enforce_eager``: None = as measured (a ``--no-graphs`` set, see
    ``set_is_eager``, or a run with cudagraph_max_tokens = 0, is replayed eager); True / False forces it (the
    predicted eager/graphs ratio of a graphed set)."""
    runs, seqs = load_runs(gpu)
    if enforce_eager is None and set_is_eager(gpu):
        enforce_eager = True
    rows = []
    for _, run in runs.iterrows():
        p = predict_run(run, seqs, calibration, engine=engine, enforce_eager=enforce_eager)
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


def graphed_twin(name: str) -> str | None:
    """The graphed runs measured in the same device call as an eager set (``h200-eager`` -> ``h200-eager-graphed``),
    when committed."""
    twin = f"{name}-graphed"
    return twin if set_is_eager(name) and (rollout_dir(twin) / "runs.csv").is_file() else None


def eager_vs_graphed(eager_set: str, graphed_set: str | None = None, calibration: str = "auto",
                     engine: str = "ideal") -> pd.DataFrame:
    """The paired check of the eager mechanism: per run, measured eager / graphed time (same runs, same device call)
    beside the simulator's predicted eager / graphed time (each replayed as measured)."""
    graphed_set = graphed_set or graphed_twin(eager_set)
    if graphed_set is None:
        raise CalibrationDataError(f"no graphed twin of {eager_set!r} (expected rollouts-{eager_set.partition('-')[2]}"
                                   "-graphed/)")
    e = compare(eager_set, calibration, engine=engine)
    g = compare(graphed_set, calibration, engine=engine).set_index("run_id")
    e = e[e["run_id"].isin(g.index)]
    g = g.loc[e["run_id"]]
    out = pd.DataFrame({"run_id": e["run_id"].to_numpy(), "N": e["N"].to_numpy(), "k": e["k"].to_numpy(),
                        "meas_eager_s": e["meas_time_s"].to_numpy(), "pred_eager_s": e["pred_time_s"].to_numpy(),
                        "eager_err": e["time_err"].to_numpy(),
                        "meas_graphed_s": g["meas_time_s"].to_numpy(), "pred_graphed_s": g["pred_time_s"].to_numpy(),
                        "graphed_err": g["time_err"].to_numpy()})
    out["meas_ratio"] = out["meas_eager_s"] / out["meas_graphed_s"]
    out["pred_ratio"] = out["pred_eager_s"] / out["pred_graphed_s"]
    out["ratio_err"] = out["pred_ratio"] / out["meas_ratio"] - 1
    return out


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
