"""Reproduce the reference study's Table 1 (arXiv 2604.26779): ``rlsim validate paper``.

Only the autoregressive baseline is fitted (``--refit``):
- the response-length distribution's scale (median tokens) of each workload, so that the simulated
  AR generation time equals the published one (RL-Zero 100.0 s, RL-Think 133.6 s);
- the training and log-prob model-FLOPs utilisation, so that the AR training and log-prob stages
  equal the published ones.
Everything speculative is then a prediction. The fitted values are written into the workload YAMLs
with a source line saying so.

The gap between the study's Amdahl bound S = 1 / (R/AL + 1 - R) and the predicted speedup is
decomposed by re-simulating the speculative generation with parts of its cost removed:
  ideal            every AR iteration shrinks by AL (generation / AL)
  + rounds         speculative rounds at the cost of an AR iteration (random acceptance per sequence,
                   prefill, the long tail: sequences finish unevenly)
  + verification   the target verifies k+1 tokens per sequence (+ rejection sampling), drafts free
  + drafting       the k draft passes (full speculative prediction)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..catalog.loader import catalog_dir, load_workload
from ..costmodel import IterationBatch, IterationCostModel
from ..costmodel.training import DEFAULT_MFU, logprob_time, training_time
from ..engine import simulate_rollout
from ..pipeline import build_setup, simulate_sync_step
from ..scenario import build_scenario

# The study's Table 1 (shared/reference/paper-8b.md), seconds. k = 3, EAGLE-3 DAPO-initialised.
TABLE1 = {
    "rl-think-8b": {"ar": {"data": 0.3, "prepare": 2.1, "generation": 133.6, "logprob": 17.9, "training": 31.4, "step": 185.3},
                    "spec": {"data": 0.2, "prepare": 1.6, "generation": 87.0, "logprob": 18.1, "training": 30.5, "step": 137.4}},
    "rl-zero-8b": {"ar": {"data": 0.2, "prepare": 1.9, "generation": 100.0, "logprob": 17.8, "training": 31.3, "step": 151.2},
                   "spec": {"data": 0.2, "prepare": 2.1, "generation": 56.6, "logprob": 18.1, "training": 30.5, "step": 107.5}},
}
PUBLISHED_SPEEDUP = {"rl-think-8b": {"generation": 1.54, "step": 1.35}, "rl-zero-8b": {"generation": 1.77, "step": 1.41}}
WORKLOADS = ("rl-zero-8b", "rl-think-8b")
FIT_SEEDS = (0, 1, 2)
TARGET_REL_ERR = 0.10  # issue: spec k=3 generation and step within 10%


class _CostAtK0:
    """A cost model that charges every iteration as a plain AR decode iteration (for the decomposition)."""

    def __init__(self, base: IterationCostModel):
        self.base = base

    def iteration_time_s(self, b: IterationBatch):
        b2 = IterationBatch(b.n_decode, np.zeros_like(b.k), b.decode_kv_tokens, b.n_prefill_tokens, b.n_prefill_seqs,
                            b.prefill_kv_tokens, b.prefill_qk_pairs, b.n_prefill_done)
        return self.base.iteration_time_s(b2)

    def decode_segment_time_s(self, n_decode, k, kv):
        return self.base.decode_segment_time_s(n_decode, 0, kv)

    def decode_iterations_time_s(self, n_decode, k, kv, stride=8):
        return self.base.decode_iterations_time_s(n_decode, 0, kv, stride)


def gen_times(setup, speculative: bool, seeds=FIT_SEEDS, cost=None) -> list[float]:
    """Generation seconds of the sampled step ``s`` for each of ``seeds`` (one rollout each)."""
    out = []
    for s in seeds:
        prompts, responses = setup.sample_step_lengths(s)
        c = cost or (setup.cost_spec if speculative else setup.cost_ar)
        ro = simulate_rollout(prompts, responses, setup.n_replicas, c, setup.policy(speculative),
                              setup.replica_config(speculative), seed=setup.scenario.seed * 1000003 + s)
        out.append(ro.generation_time_s)
    return out


def _gen_time(setup, speculative: bool, seeds=FIT_SEEDS, cost=None) -> float:
    return float(np.mean(gen_times(setup, speculative, seeds, cost)))


def _scenario(workload: str, calibration: str, **kw):
    return build_scenario(workload=workload, calibration=calibration, **kw)


@dataclass
class Fit:
    workload: str
    median_tokens: float
    training_mfu: float
    logprob_mfu: float
    ar_generation_s: float


def fit_workload(workload: str, calibration: str = "auto") -> Fit:
    """Bisection on the response median (log scale) to the AR generation time; MFUs in closed form."""
    target = TABLE1[workload]["ar"]
    lo, hi = 50.0, 30000.0
    for _ in range(22):
        mid = float(np.sqrt(lo * hi))
        setup = build_setup(_scenario(workload, calibration, response_median_tokens=mid, k=0))
        g = _gen_time(setup, False)
        if g < target["generation"]:
            lo = mid
        else:
            hi = mid
        if hi / lo < 1.002:
            break
    median = float(np.sqrt(lo * hi))
    setup = build_setup(_scenario(workload, calibration, response_median_tokens=median, k=0))
    g = _gen_time(setup, False)
    training_mfu, logprob_mfu = fit_mfus(workload, setup)
    return Fit(workload, median, training_mfu, logprob_mfu, g)


def fit_mfus(workload: str, setup) -> tuple[float, float]:
    """Training and log-prob MFU (closed form) that reproduce the study's AR stages for ``setup``'s lengths."""
    target = TABLE1[workload]["ar"]
    w = setup.scenario.workload
    tr_t, lp_t = [], []
    for s in FIT_SEEDS:
        p, n = setup.sample_step_lengths(s)
        toks = p + n
        base_tr = training_time(setup.model, setup.hardware, setup.train_gpus, toks, w.training_dtype, 1.0)
        base_lp = logprob_time(setup.model, setup.hardware, setup.train_gpus, toks, 2 if w.reference_logprobs else 1, 1.0)
        tr_t.append(base_tr)
        lp_t.append(base_lp)
    flops_tr = np.mean([c.flops for c in tr_t])
    opt_s = np.mean([c.seconds - c.flops / (setup.train_gpus * setup.hardware.peak_flops["bf16"]) for c in tr_t])
    peak = setup.train_gpus * setup.hardware.peak_flops["bf16"]
    training_mfu = float(flops_tr / (peak * (target["training"] - opt_s)))
    logprob_mfu = float(np.mean([c.flops for c in lp_t]) / (peak * target["logprob"]))
    return training_mfu, logprob_mfu


def write_fit(fit: Fit) -> Path:
    """Write the fitted values into the workload YAML, with their source."""
    path = catalog_dir("workloads") / f"{fit.workload}.yaml"
    text = path.read_text()
    text = re.sub(r"(response_length: \{[^}]*median_tokens: )[0-9.]+", rf"\g<1>{fit.median_tokens:.0f}", text)
    for key, val in (("training_mfu", fit.training_mfu), ("logprob_mfu", fit.logprob_mfu)):
        if re.search(rf"^{key}: ", text, flags=re.M):
            text = re.sub(rf"^{key}: .*$", f"{key}: {val:.4f}", text, flags=re.M)
        else:
            text = text.replace("\nsources:\n", f"\n{key}: {val:.4f}\nsources:\n", 1)
    src = {
        "response_length": (f"median_tokens fitted by `rlsim validate paper --refit` so that the simulated AR generation "
                            f"time equals the study's ({TABLE1[fit.workload]['ar']['generation']} s); lognormal sigma 0.8 "
                            "(RL math responses are wide) capped at 16384 new tokens: not published, chosen"),
        "training_mfu": (f"fitted by `rlsim validate paper --refit` to the study's AR training stage "
                         f"({TABLE1[fit.workload]['ar']['training']} s)"),
        "logprob_mfu": (f"fitted by `rlsim validate paper --refit` to the study's AR log-prob stage "
                        f"({TABLE1[fit.workload]['ar']['logprob']} s)"),
    }
    for key, s in src.items():
        line = f'  {key}: "{s}"'
        if re.search(rf"^  {key}: ", text, flags=re.M):
            text = re.sub(rf"^  {key}: .*$", line.replace("\\", "\\\\"), text, flags=re.M)
        else:
            text = text.rstrip("\n") + "\n" + line + "\n"
    path.write_text(text)
    load_workload.cache_clear()
    return path


def decompose(workload: str, calibration: str = "auto") -> dict:
    """Generation time of the speculative run with parts of its cost removed (mean over the fit seeds)."""
    setup = build_setup(_scenario(workload, calibration))
    al = setup.acceptance.acceptance_length
    ar = _gen_time(setup, False)
    rounds = _gen_time(setup, True, cost=_CostAtK0(setup.cost_ar))
    verify = _gen_time(setup, True, cost=setup.cost_ar)  # method none: k+1 verification, no draft passes
    full = _gen_time(setup, True)
    return {"acceptance_length": al, "ar": ar, "ideal": ar / al, "rounds_at_ar_cost": rounds,
            "with_verification": verify, "with_drafting": full}


def predict_table_rows(wl: str, calibration: str = "auto", **scenario_kwargs) -> dict:
    """Table 1 rows (AR and spec) predicted for one workload, mean over the fit seeds."""
    setup = build_setup(_scenario(wl, calibration, **scenario_kwargs))
    rows = {"ar": {}, "spec": {}}
    acc = {"ar": [], "spec": []}
    for s in FIT_SEEDS:
        for mode, spec in (("ar", False), ("spec", True)):
            r, _ = simulate_sync_step(setup, spec, step=s)
            acc[mode].append(r)
    for mode in ("ar", "spec"):
        rs = acc[mode]
        ph = {k: float(np.mean([r.phases_s[k] for r in rs])) for k in rs[0].phases_s}
        rows[mode] = {"data": ph["data"], "prepare": ph["refit"], "generation": ph["generation"],
                      "logprob": ph["logprob"], "training": ph["training"], "step": float(np.mean([r.step_s for r in rs]))}
    return rows


def predict_table(calibration: str = "auto") -> dict:
    out = {}
    for wl in WORKLOADS:
        setup = build_setup(_scenario(wl, calibration))
        rows = predict_table_rows(wl, calibration)
        gen_sp = rows["ar"]["generation"] / rows["spec"]["generation"]
        step_sp = rows["ar"]["step"] / rows["spec"]["step"]
        pub = TABLE1[wl]
        R = pub["ar"]["generation"] / pub["ar"]["step"]
        al = setup.acceptance.acceptance_length
        bound = 1 / (R / al + 1 - R)
        R_sim = rows["ar"]["generation"] / rows["ar"]["step"]
        bound_sim = 1 / (R_sim / al + 1 - R_sim)
        dec = decompose(wl, calibration)
        out[wl] = {"predicted": rows, "published": pub, "speedup_predicted": {"generation": gen_sp, "step": step_sp},
                   "speedup_published": PUBLISHED_SPEEDUP[wl], "amdahl_bound_published_R": bound,
                   "amdahl_bound_simulated_R": bound_sim, "acceptance_length": al, "decomposition": dec,
                   "calibration": setup.timer.describe(),
                   "rel_err": {f"{m}_{k}": rows[m][k] / pub[m][k] - 1 for m in ("ar", "spec") for k in pub[m]}}
    return out


def format_report(res: dict) -> str:
    lines = ["# rlsim vs the study's Table 1 (arXiv 2604.26779), k = 3, EAGLE-3 DAPO-initialised", ""]
    for wl, r in res.items():
        lines += [f"## {wl} (AL {r['acceptance_length']:.2f}; kernel costs: {r['calibration']})", "",
                  "| stage | AR published | AR rlsim | err | spec published | spec rlsim | err |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for k in ("data", "prepare", "generation", "logprob", "training", "step"):
            pa, ra = r["published"]["ar"][k], r["predicted"]["ar"][k]
            ps, rs = r["published"]["spec"][k], r["predicted"]["spec"][k]
            fit = " (fitted)" if k in ("generation", "logprob", "training") else ""
            lines.append(f"| {k} | {pa:.1f} | {ra:.1f}{fit} | {ra / pa - 1:+.1%} | {ps:.1f} | {rs:.1f} | {rs / ps - 1:+.1%} |")
        sp, pub = r["speedup_predicted"], r["speedup_published"]
        lines += ["", f"Generation speedup: published {pub['generation']:.2f}x, rlsim {sp['generation']:.2f}x; "
                  f"step speedup: published {pub['step']:.2f}x, rlsim {sp['step']:.2f}x.",
                  f"Amdahl bound 1/(R/AL + 1-R): {r['amdahl_bound_published_R']:.2f}x with the study's R, "
                  f"{r['amdahl_bound_simulated_R']:.2f}x with rlsim's.", ""]
        d = r["decomposition"]
        lines += ["Where the generation speedup goes (generation seconds, mean of 3 seeds):", "",
                  "| model of the speculative generation | seconds | speedup vs AR | lost vs previous row |",
                  "|---|---:|---:|---:|"]
        prev = None
        for name, key in (("AR (measured baseline, fitted)", "ar"), ("ideal: AR / AL", "ideal"),
                          ("+ rounds at AR cost (random acceptance, prefill, long tail)", "rounds_at_ar_cost"),
                          ("+ verification of k+1 tokens, rejection sampling", "with_verification"),
                          ("+ k draft passes (full prediction)", "with_drafting")):
            v = d[key]
            lost = "" if prev is None or key == "ideal" else f"{v - prev:+.1f} s"
            lines.append(f"| {name} | {v:.1f} | {d['ar'] / v:.2f}x | {lost} |")
            prev = v
        lines.append("")
    return "\n".join(lines)


def check_targets(res: dict) -> list[str]:
    bad = []
    for wl, r in res.items():
        for key in ("spec_generation", "spec_step"):
            e = r["rel_err"][key]
            if abs(e) > TARGET_REL_ERR:
                bad.append(f"{wl} {key}: {e:+.1%} (target within {TARGET_REL_ERR:.0%})")
    return bad


def save(res: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "paper.json").write_text(json.dumps(res, indent=1, default=float) + "\n")
    (out_dir / "paper.md").write_text(format_report(res))


__all__ = ["TABLE1", "fit_workload", "write_fit", "predict_table", "format_report", "check_targets", "save", "DEFAULT_MFU"]
