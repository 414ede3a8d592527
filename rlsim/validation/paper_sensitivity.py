"""How Table 1's speculative predictions depend on the study's unpublished settings.

``rlsim validate paper --sensitivity`` re-runs the prediction with one unpublished setting changed at a
time. Each variant refits the AR baseline first (the response-length median to the published AR
generation time, exactly as ``--refit`` does), so every row is a fair alternative world in which the
AR column still matches the study; the speculative column is again a prediction. Nothing here changes
the committed workloads: it shows which unpublished facts the residual error hinges on, and by how much.

It also checks an outcome the study published beyond Table 1: the per-step generation speedup across
RL steps (mean 1.79x, max 2.85x on RL-Zero; mean 1.54x, max 1.81x on RL-Think). The AR and the
speculative runs of the study were separate trainings, so each step compares two independent draws;
the check does the same (AR steps with one seed, speculative steps with another) and reports the mean
and the largest per-step ratio.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import RlsimError
from ..pipeline import build_setup
from .paper import TABLE1, _gen_time, _scenario, fit_mfus, gen_times, predict_table_rows

PER_STEP = {"rl-zero-8b": {"mean": 1.79, "max": 2.85}, "rl-think-8b": {"mean": 1.54, "max": 1.81}}
N_STEPS = 12
SPEC_RUN_SEED = 7  # the speculative run's scenario seed (the AR run's is the workload's, 0)


@dataclass(frozen=True)
class Variant:
    label: str
    kwargs: dict
    why: str


VARIANTS = (
    Variant("as committed", {}, "homogeneous acceptance, lognormal sigma 0.8, cap 16384, 64 x 32 sequences"),
    Variant("acceptance spread across sequences s = 0.05", {"options": {"acceptance_spread": 0.05}},
            "each sequence's per-token rate ~ Beta, variance s*mu*(1-mu) (std 0.07 at mu 0.88), mean AL kept; not published"),
    Variant("acceptance spread across sequences s = 0.10", {"options": {"acceptance_spread": 0.10}},
            "std 0.10 at mu 0.88: sequences from about 0.7 to 0.99; not published"),
    Variant("acceptance spread across sequences s = 0.20", {"options": {"acceptance_spread": 0.20}},
            "std 0.15 at mu 0.88; not published"),
    Variant("acceptance falls 2% per 1000 response tokens", {"options": {"acceptance_response_decay": 0.02}},
            "drafts trained on shorter responses lose acceptance deep into long ones; mean AL kept; not published"),
    Variant("response lengths sigma 0.6", {"response_sigma": 0.6}, "narrower length distribution; not published"),
    Variant("response lengths sigma 1.0", {"response_sigma": 1.0}, "wider length distribution; not published"),
    Variant("max response 8192 tokens", {"max_new_tokens": 8192}, "a shorter cap; not published"),
    Variant("max response 20480 tokens", {"max_new_tokens": 20480},
            "DAPO's 16384 + 4096 overlong buffer; not published for the study"),
    Variant("512 prompts x 16 generations", {"num_prompts_per_step": 512, "num_generations_per_prompt": 16},
            "the DAPO paper's batch (8192 sequences, 256 per GPU) instead of the 64 x 32 hint"),
)


@dataclass
class VariantResult:
    workload: str
    label: str
    why: str
    median_tokens: float | None
    ar_generation_s: float | None
    training_mfu: float | None = None
    logprob_mfu: float | None = None
    spec_generation_s: float | None = None
    spec_step_s: float | None = None
    generation_err: float | None = None
    step_err: float | None = None
    per_step_mean: float | None = None
    per_step_max: float | None = None
    note: str = ""
    rows: dict = field(default_factory=dict)


def refit_median(workload: str, calibration: str, kwargs: dict, start: float) -> tuple[float | None, float]:
    """Response median (tokens) whose simulated AR generation time equals the study's, by a safeguarded
    secant on log(median); None where no median in [50, 60000] reaches it (the cap binds)."""
    target = TABLE1[workload]["ar"]["generation"]

    def f(m: float) -> float:
        setup = build_setup(_scenario(workload, calibration, response_median_tokens=m, k=0, **kwargs))
        return _gen_time(setup, False) - target

    lo, hi = np.log(50.0), np.log(60000.0)
    x0, x1 = np.log(start), np.log(start * 1.3)
    f0, f1 = f(np.exp(x0)), f(np.exp(x1))
    for _ in range(14):
        if abs(f1) < 0.002 * target:
            return float(np.exp(x1)), f1 + target
        x2 = x1 - f1 * (x1 - x0) / (f1 - f0) if f1 != f0 else x1 + 0.3
        x2 = float(np.clip(x2, lo, hi))
        if x2 in (lo, hi) and x1 in (lo, hi):
            break
        x0, f0, x1 = x1, f1, x2
        f1 = f(np.exp(x1))
    if abs(f1) < 0.01 * target:
        return float(np.exp(x1)), f1 + target
    return None, f1 + target


def run_variant(workload: str, v: Variant, calibration: str = "auto", per_step: bool = True) -> VariantResult:
    from ..catalog.loader import load_workload

    start = load_workload(workload).response_length.median_tokens
    median, ar = refit_median(workload, calibration, v.kwargs, start)
    res = VariantResult(workload, v.label, v.why, median, ar)
    if median is None:
        res.note = f"no response median gives the AR generation time (closest {ar:.1f} s): this setting is ruled out"
        return res
    kw = dict(v.kwargs, response_median_tokens=median)
    # the training and log-prob MFUs refit too (the token counts changed), as --refit would
    tr_mfu, lp_mfu = fit_mfus(workload, build_setup(_scenario(workload, calibration, k=0, **kw)))
    kw.update(training_mfu=tr_mfu, logprob_mfu=lp_mfu)
    res.training_mfu, res.logprob_mfu = tr_mfu, lp_mfu
    rows = predict_table_rows(workload, calibration, **kw)
    pub = TABLE1[workload]["spec"]
    res.rows = rows
    res.spec_generation_s = rows["spec"]["generation"]
    res.spec_step_s = rows["spec"]["step"]
    res.generation_err = res.spec_generation_s / pub["generation"] - 1
    res.step_err = res.spec_step_s / pub["step"] - 1
    if per_step:
        steps = range(N_STEPS)
        ar_run = build_setup(_scenario(workload, calibration, **kw))
        spec_run = build_setup(_scenario(workload, calibration, seed=SPEC_RUN_SEED, **kw))
        ratios = np.array(gen_times(ar_run, False, steps)) / np.array(gen_times(spec_run, True, steps))
        res.per_step_mean, res.per_step_max = float(ratios.mean()), float(ratios.max())
    return res


def sensitivity(calibration: str = "auto", workloads=None, variants=None, per_step: bool = True,
                progress: Callable[[str], None] | None = None) -> list[VariantResult]:
    """Every variant (default ``VARIANTS``) on every workload (default the study's two)."""
    from . import paper

    out = []
    for wl in workloads or paper.WORKLOADS:
        for v in variants or VARIANTS:
            if progress:
                progress(f"{wl}: {v.label}")
            try:
                out.append(run_variant(wl, v, calibration, per_step))
            except RlsimError as e:  # a setting this workload cannot take (e.g. its AL is out of reach)
                out.append(VariantResult(wl, v.label, v.why, None, None, note=f"not possible: {e}"))
    return out


def format_sensitivity(results: list[VariantResult]) -> str:
    lines = ["# Table 1's speculative cells under the study's unpublished settings", "",
             "Each row changes one unpublished setting, refits the AR baseline (response median to the published AR "
             "generation time) and predicts again. Per-step: the generation speedup of independent AR and speculative "
             f"runs over {N_STEPS} steps (mean / largest), against the study's per-step figures. Generated by "
             "`rlsim validate paper --sensitivity`.", ""]
    for wl in dict.fromkeys(r.workload for r in results):
        pub = TABLE1[wl]["spec"]
        ps = PER_STEP[wl]
        lines += [f"## {wl}: published spec generation {pub['generation']:.1f} s, step {pub['step']:.1f} s, "
                  f"per-step speedup mean {ps['mean']:.2f}x / max {ps['max']:.2f}x", "",
                  "| variant | refit median (tokens) | spec generation s (err) | spec step s (err) | per-step mean / max | why |",
                  "|---|---:|---:|---:|---:|---|"]
        for r in (r for r in results if r.workload == wl):
            if r.spec_generation_s is None:
                lines.append(f"| {r.label} | - | - | - | - | {r.note} |")
                continue
            ps_txt = "-" if r.per_step_mean is None else f"{r.per_step_mean:.2f}x / {r.per_step_max:.2f}x"
            lines.append(f"| {r.label} | {r.median_tokens:.0f} | {r.spec_generation_s:.1f} ({r.generation_err:+.0%}) | "
                         f"{r.spec_step_s:.1f} ({r.step_err:+.0%}) | {ps_txt} | {r.why} |")
        lines.append("")
    return "\n".join(lines)


def save_sensitivity(results: list[VariantResult], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "paper-sensitivity.json").write_text(json.dumps([asdict(r) for r in results], indent=1, default=float) + "\n")
    (out_dir / "paper-sensitivity.md").write_text(format_sensitivity(results))
