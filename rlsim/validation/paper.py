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
from ..pipeline import build_setup
from ..scenario import build_scenario
from ..studies.seeds import run_seeds, step_means

# The study's Table 1 (shared/reference/paper-8b.md), seconds. k = 3, EAGLE-3 DAPO-initialised.
TABLE1 = {
    "rl-think-8b": {"ar": {"data": 0.3, "prepare": 2.1, "generation": 133.6, "logprob": 17.9, "training": 31.4, "step": 185.3},
                    "spec": {"data": 0.2, "prepare": 1.6, "generation": 87.0, "logprob": 18.1, "training": 30.5, "step": 137.4}},
    "rl-zero-8b": {"ar": {"data": 0.2, "prepare": 1.9, "generation": 100.0, "logprob": 17.8, "training": 31.3, "step": 151.2},
                   "spec": {"data": 0.2, "prepare": 2.1, "generation": 56.6, "logprob": 18.1, "training": 30.5, "step": 107.5}},
}
PUBLISHED_SPEEDUP = {"rl-think-8b": {"generation": 1.54, "step": 1.35}, "rl-zero-8b": {"generation": 1.77, "step": 1.41}}
WORKLOADS = ("rl-zero-8b", "rl-think-8b")
# The same two runs under NeMo-RL v0.6.0's own DAPO recipe settings (the closest published setting for the study's
# DAPO-Math runs; workloads/*-dapo-recipe.yaml): reported beside the default settings, never chosen by the result.
DAPO_RECIPE_WORKLOADS = ("rl-zero-8b-dapo-recipe", "rl-think-8b-dapo-recipe")
SETTINGS = ("default", "dapo-recipe")


def settings_workloads(settings: str) -> tuple:
    """The workloads of a setting (looked up at call time)."""
    return WORKLOADS if settings == "default" else DAPO_RECIPE_WORKLOADS


def table_key(workload: str) -> str:
    """The study's Table 1 column a workload reproduces (rl-zero-8b-dapo-recipe -> rl-zero-8b)."""
    for base in WORKLOADS:
        if workload == base or workload.startswith(base + "-"):
            return base
    raise KeyError(f"{workload!r} reproduces no Table 1 column; allowed: {', '.join(WORKLOADS)} and their variants")
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
    def one(s):
        prompts, responses = setup.sample_step_lengths(s)
        c = cost or (setup.cost_spec if speculative else setup.cost_ar)
        ro = simulate_rollout(prompts, responses, setup.n_replicas, c, setup.policy(speculative),
                              setup.replica_config(speculative), seed=setup.scenario.seed * 1000003 + s)
        return ro.generation_time_s

    return run_seeds(one, seeds)


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
    target = TABLE1[table_key(workload)]["ar"]
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
    target = TABLE1[table_key(workload)]["ar"]
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
    tkey = table_key(fit.workload)
    text = re.sub(r"(response_length: \{[^}]*median_tokens: )[0-9.]+", rf"\g<1>{fit.median_tokens:.0f}", text)
    for key, val in (("training_mfu", fit.training_mfu), ("logprob_mfu", fit.logprob_mfu)):
        if re.search(rf"^{key}: ", text, flags=re.M):
            text = re.sub(rf"^{key}: .*$", f"{key}: {val:.4f}", text, flags=re.M)
        else:
            text = text.replace("\nsources:\n", f"\n{key}: {val:.4f}\nsources:\n", 1)
    w = load_workload(fit.workload)
    dapo = fit.workload.endswith("-dapo-recipe")
    cap = w.response_length.max_tokens
    cap_src = ("the recipe's max_total_sequence_length 16384 - its 2048-token prompt cap (reward_shaping."
               "max_response_length 14336)" if dapo else "not published, chosen")
    src = {
        "response_length": (f"median_tokens fitted by `rlsim validate paper{' --settings dapo-recipe' if dapo else ''} "
                            f"--refit` so that the simulated AR generation time equals the study's "
                            f"({TABLE1[tkey]['ar']['generation']} s) under the default engine (vllm-0.17.1); lognormal "
                            f"sigma {w.response_length.sigma:g} (RL math responses are wide: not published, chosen); "
                            f"cap {cap} new tokens ({cap_src})"),
        "training_mfu": (f"fitted by `rlsim validate paper --refit` to the study's AR training stage "
                         f"({TABLE1[tkey]['ar']['training']} s)"),
        "logprob_mfu": (f"fitted by `rlsim validate paper --refit` to the study's AR log-prob stage "
                        f"({TABLE1[tkey]['ar']['logprob']} s)"),
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


def decompose(workload: str, calibration: str = "auto", **scenario_kwargs) -> dict:
    """Generation time of the speculative run with parts of its cost removed (mean over the fit seeds)."""
    setup = build_setup(_scenario(workload, calibration, **scenario_kwargs))
    al = setup.acceptance.acceptance_length
    ar = _gen_time(setup, False)
    rounds = _gen_time(setup, True, cost=_CostAtK0(setup.cost_ar))
    verify = _gen_time(setup, True, cost=setup.cost_ar)  # method none: k+1 verification, no draft passes
    full = _gen_time(setup, True)
    return {"acceptance_length": al, "ar": ar, "ideal": ar / al, "rounds_at_ar_cost": rounds,
            "with_verification": verify, "with_drafting": full}


# The engine mechanisms in the order `mechanism_ladder` switches them on, from the ideal engine to a vLLM profile:
# (label, profile fields taken from the target profile at that rung)
MECHANISMS = (
    ("host work per step and round; async scheduling rule", ("host", "async_scheduling")),
    ("CUDA graphs: token capture limit, padding, PIECEWISE steps and drafter", ("graphs",)),
    ("verify attention kernel (Blackwell TRTLLM-gen tile)", ("verify_attention_blackwell", "trtllm_tile_cost")),
    ("sampler / rejection sampler with log-probs", ("sampler",)),
    ("draft token choice over the full vocabulary", ("draft_token_choice",)),
)


def mechanism_ladder(target: str = "vllm-0.17.1") -> list[tuple[str, object]]:
    """Engine profiles from ``ideal`` to ``target``, switching one mechanism on per rung (cumulative)."""
    from ..catalog import load_engine

    ideal, tgt = load_engine("ideal"), load_engine(target)
    rungs = [("ideal engine", ideal)]
    fields = ideal.model_dump()
    fields.update(name="ideal", engine="vllm", version="ladder")
    for label, keys in MECHANISMS:
        for k_ in keys:
            fields[k_] = getattr(tgt, k_).model_dump() if hasattr(getattr(tgt, k_), "model_dump") else getattr(tgt, k_)
            if k_ in tgt.sources:
                fields["sources"] = {**fields["sources"], k_: tgt.sources[k_]}
        fields["name"] = f"{target}-rung{len(rungs)}"
        rungs.append((label, type(tgt).model_validate(fields)))
    return rungs


def decompose_mechanisms(workload: str, calibration: str = "auto", target: str = "vllm-0.17.1",
                         seeds=FIT_SEEDS, **scenario_kwargs) -> list[dict]:
    """AR and speculative generation seconds of the study's step with the target engine's mechanisms switched
    on one at a time (the same sampled lengths; only the AR baseline of the target engine is fitted)."""
    import tempfile

    import yaml

    from ..catalog import load_engine

    rows = []
    with tempfile.TemporaryDirectory() as td:
        for label, prof in mechanism_ladder(target):
            if prof.name == "ideal":
                eng = "ideal"
            else:
                path = Path(td) / f"{prof.name}.yaml"
                path.write_text(yaml.safe_dump(prof.model_dump()))
                eng = str(path)
            setup = build_setup(_scenario(workload, calibration, engine=eng, **scenario_kwargs))
            ar = _gen_time(setup, False, seeds)
            spec = _gen_time(setup, True, seeds)
            rows.append({"mechanism": label, "ar_generation_s": ar, "spec_generation_s": spec,
                         "generation_speedup": ar / spec})
            load_engine.cache_clear()
    return rows


def predict_table_rows(wl: str, calibration: str = "auto", **scenario_kwargs) -> dict:
    """Table 1 rows (AR and spec) predicted for one workload, mean over the fit seeds."""
    setup = build_setup(_scenario(wl, calibration, **scenario_kwargs))
    rows = {"ar": {}, "spec": {}}
    for mode, speculative in (("ar", False), ("spec", True)):
        _, ph = step_means(setup, speculative, FIT_SEEDS)
        rows[mode] = {"data": ph["data"], "prepare": ph["refit"], "generation": ph["generation"],
                      "logprob": ph["logprob"], "training": ph["training"], "step": ph["step"]}
    return rows


def predict_table(calibration: str = "auto", engine: str | None = None, workloads=WORKLOADS,
                  mechanisms: bool = True) -> dict:
    """Table 1 predicted per workload under ``engine`` (default: the scenario default, vllm-0.17.1), with the
    classic decomposition (AR/AL -> rounds -> verification -> drafting) and, for a non-ideal engine, the gap
    per engine mechanism (``decompose_mechanisms``)."""
    out = {}
    kw = {} if engine is None else {"engine": engine}
    for wl in workloads:
        setup = build_setup(_scenario(wl, calibration, **kw))
        rows = predict_table_rows(wl, calibration, **kw)
        gen_sp = rows["ar"]["generation"] / rows["spec"]["generation"]
        step_sp = rows["ar"]["step"] / rows["spec"]["step"]
        pub = TABLE1[table_key(wl)]
        R = pub["ar"]["generation"] / pub["ar"]["step"]
        al = setup.acceptance.acceptance_length
        bound = 1 / (R / al + 1 - R)
        R_sim = rows["ar"]["generation"] / rows["ar"]["step"]
        bound_sim = 1 / (R_sim / al + 1 - R_sim)
        dec = decompose(wl, calibration, **kw)
        eng = setup.scenario.engine
        mech = decompose_mechanisms(wl, calibration, target=eng) if (mechanisms and eng != "ideal") else []
        out[wl] = {"predicted": rows, "published": pub, "speedup_predicted": {"generation": gen_sp, "step": step_sp},
                   "speedup_published": PUBLISHED_SPEEDUP[table_key(wl)], "amdahl_bound_published_R": bound,
                   "amdahl_bound_simulated_R": bound_sim, "acceptance_length": al, "decomposition": dec,
                   "engine": eng, "mechanisms": mech, "calibration": setup.timer.describe(),
                   "rel_err": {f"{m}_{k}": rows[m][k] / pub[m][k] - 1 for m in ("ar", "spec") for k in pub[m]}}
    return out


def format_report(res: dict) -> str:
    lines = ["# rlsim vs the study's Table 1 (arXiv 2604.26779), k = 3, EAGLE-3 DAPO-initialised", ""]
    for wl, r in res.items():
        lines += [f"## {wl} (AL {r['acceptance_length']:.2f}; engine {r.get('engine', '?')}; kernel costs: "
                  f"{r['calibration']})", "",
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
        if r.get("mechanisms"):
            lines += [f"What each engine mechanism costs (ideal engine -> {r['engine']}, one mechanism switched on per "
                      "row, cumulative; the same sampled lengths, mean of 3 seeds):", "",
                      "| engine mechanism | AR gen s | spec gen s | gen speedup | speedup change |", "|---|---:|---:|---:|---:|"]
            prev = None
            for m in r["mechanisms"]:
                ch = "" if prev is None else f"{m['generation_speedup'] - prev:+.2f}x"
                lines.append(f"| {m['mechanism']} | {m['ar_generation_s']:.1f} | {m['spec_generation_s']:.1f} | "
                             f"{m['generation_speedup']:.2f}x | {ch} |")
                prev = m["generation_speedup"]
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


def artefact_name(settings: str = "default", engine: str | None = None) -> str:
    """paper, paper-dapo-recipe, paper-ideal, paper-dapo-recipe-ideal ..."""
    from ..scenario import DEFAULT_ENGINE

    name = "paper" + ("" if settings == "default" else f"-{settings}")
    return name + ("" if engine in (None, DEFAULT_ENGINE) else f"-{engine}")


def save(res: dict, out_dir: Path, name: str = "paper") -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(res, indent=1, default=float) + "\n")
    (out_dir / f"{name}.md").write_text(format_report(res))


__all__ = ["TABLE1", "fit_workload", "write_fit", "predict_table", "format_report", "check_targets", "save", "DEFAULT_MFU"]
