"""What bounds a step, what would move it, and what it costs in GPU-hours.

**The step as a sum.** A synchronous step is the sum of its phases (data, refit, generation, log-prob,
training). An asynchronous step in steady state is too: the time between two weight syncs W(t) -> W(t+1) is
the trainer's wait for its batch (exposed generation) + data + log-prob + training + the drain before the
weight sync (running sequences finishing, no new admissions) + the refit (``pipeline/asynchronous.py``). The
largest term bounds the step; the statement names it with its share and with what would move it:

- **rollout tail** (synchronous generation whose tail after 90% of the sequences is long, or an asynchronous
  drain): lower per-token latency where few sequences remain (higher rollout TP, speculation with a k the
  draft sustains), asynchronous RL (synchronous runs), in-flight weight updates / partial rollouts (no drain);
- **generation throughput** (synchronous generation finished mostly before its tail, or an asynchronous
  trainer waiting for rollouts): more generation GPUs, a larger lag, faster decoding;
- **training** (log-prob + training): more training GPUs or a faster layout; asynchronous RL to overlap it;
- **weight sync**: the refit.

**Cost**: GPU-hours per step = all GPUs of the run (colocated: the pool; else generation + training) x the step
time; per run = steps x that; dollars = GPU-hours x the price the user gives (rlsim ships no prices).
"""

from __future__ import annotations

import math

TAIL_SHARE = 0.5  # a synchronous generation whose tail (after 90% of sequences) is >= this share is tail-bound


def _fmt_s(x: float) -> str:
    return f"{x:,.1f} s"


def bottleneck(step, scenario: dict) -> dict:
    """The bounding phase of one step (a :class:`~rlsim.pipeline.results.StepResult`), its share, the idle
    fractions of the pools, and the levers that would move it."""
    a = step.extra.get("async")
    g = step.generation
    idle = ({"generation_gpus": a.get("gen_gpu_idle_fraction"), "training_gpus": a.get("train_gpu_idle_fraction")}
            if a else None)
    return bottleneck_from_phases(
        step.phases_s, step.step_s, idle, g.tail_s if (g is not None and not a) else None,
        g.preemptions if g is not None else 0, mode=step.mode,
        k=scenario.get("num_speculative_tokens", 0) if step.mode == "speculative" else 0,
        tp=(scenario.get("generation_parallelism") or {}).get("tensor_parallel_size"),
        gen_gpus=a.get("gen_gpus") if a else None, train_gpus=a.get("train_gpus") if a else None,
        lag=a.get("max_trajectory_age_steps") if a else None)


def bottleneck_from_phases(phases: dict, total: float, idle: dict | None = None, tail_s: float | None = None,
                           preemptions: int = 0, *, mode: str = "speculative", k: int = 0, tp: int | None = None,
                           gen_gpus: int | None = None, train_gpus: int | None = None, lag: int | None = None) -> dict:
    """:func:`bottleneck` from a step's phases (seconds), its time, and -- for an asynchronous step (``idle`` given:
    the idle fractions of the generation and training pools) -- nothing else; a synchronous step's generation
    tail (seconds after 90% of its sequences finished) tells a tail-bound rollout from a throughput-bound one."""
    ph = dict(phases)
    tp_more = f" > {tp}" if tp else ""
    k_more = f"> {k}" if k else ">= 1"
    if idle is not None:
        terms = {"exposed generation": ph.get("exposed_generation", 0.0), "drain before weight sync": ph.get("refit_wait", 0.0),
                 "training": ph.get("data", 0.0) + ph.get("logprob", 0.0) + ph.get("training", 0.0),
                 "weight sync": ph.get("refit", 0.0)}
        name = max(terms, key=terms.get)
        bound = {"drain before weight sync": "rollout tail", "exposed generation": "generation throughput",
                 "training": "training", "weight sync": "weight sync"}[name]
        ig, it = idle.get("generation_gpus"), idle.get("training_gpus")
        pct = (lambda v: f"{v:.0%}" if v is not None and math.isfinite(v) else "?")
        if bound == "rollout tail":
            levers = ["--in-flight-weight-updates or --partial-rollouts (weights change between iterations: no drain)",
                      f"lower per-token latency where few sequences remain (rollout TP{tp_more}; k {k_more} if the "
                      "draft's acceptance holds)",
                      f"the pools wait on the tail (training GPUs {pct(it)} idle, generation GPUs {pct(ig)}): "
                      "`rlsim plan` weighs smaller pools against the step time"]
        elif bound == "generation throughput":
            levers = [f"more generation GPUs{f' (now {gen_gpus})' if gen_gpus else ''} or a larger lag"
                      f"{f' (now {lag})' if lag is not None else ''}", "faster decoding (speculation, fp8, the rollout TP)"]
        elif bound == "training":
            levers = [f"more training GPUs{f' (now {train_gpus})' if train_gpus else ''}; generation GPUs {pct(ig)} idle",
                      "a faster training layout (the layout model's breakdown: --json training_breakdown)"]
        else:
            levers = ["fewer weight bytes per generation GPU (a larger rollout TP)"]
    else:
        gen = ph.get("generation", 0.0)
        terms = {"generation": gen, "training": ph.get("logprob", 0.0) + ph.get("training", 0.0),
                 "weight sync": ph.get("refit", 0.0), "data": ph.get("data", 0.0)}
        name = max(terms, key=terms.get)
        tail_share = tail_s / gen if (gen > 0 and tail_s is not None and math.isfinite(tail_s)) else 0.0
        if name == "generation":
            bound = "rollout tail" if tail_share >= TAIL_SHARE else "generation throughput"
            levers = (["asynchronous RL (--lag 1 or 2 on separate pools) overlaps generation with training",
                       f"lower per-token latency in the tail (rollout TP{tp_more}; k {k_more} if the draft's "
                       "acceptance holds)"]
                      if bound == "rollout tail" else
                      ["more GPUs or faster decoding (speculation, fp8)",
                       "asynchronous RL (--lag 1 or 2 on separate pools) overlaps generation with training"])
            if preemptions:
                levers.insert(0, f"more KV cache per replica ({int(preemptions):,} preemptions: a larger rollout TP or "
                                 "fewer sequences per replica)")
        elif name == "training":
            bound = "training"
            levers = ["more GPUs or a faster training layout (--json training_breakdown)",
                      "asynchronous RL (--lag 1 or 2) overlaps training with generation"]
        else:
            bound = name
            levers = ["fewer weight bytes per generation GPU (a larger rollout TP)"] if name == "weight sync" else []
    share = terms[name] / total if total > 0 else float("nan")
    out = {"mode": mode, "bound_by": bound, "term": name, "seconds": terms[name], "share": share, "terms_s": terms,
           "idle_fraction": dict(idle) if idle else {}, "levers": levers}
    if idle is None and tail_s is not None:
        out["generation_tail_s"] = tail_s
    out["statement"] = statement(out, total)
    return out


def statement(b: dict, total: float) -> str:
    """One sentence: 'bound by the rollout tail: drain before weight sync 77.4 s of the 100.8 s step (77%); ...'."""
    s = f"bound by the {b['bound_by']}: {b['term']} {_fmt_s(b['seconds'])} of the {_fmt_s(total)} step ({b['share']:.0%})"
    if b.get("generation_tail_s") is not None and b["term"] == "generation" and math.isfinite(b["generation_tail_s"]):
        s += f", of which the tail after 90% of sequences {_fmt_s(b['generation_tail_s'])}"
    idle = {k: v for k, v in (b.get("idle_fraction") or {}).items() if v is not None}
    if idle:
        s += "; idle: " + ", ".join(f"{k.replace('_', ' ')} {v:.0%}" for k, v in idle.items())
    if b["levers"]:
        s += "; to move it: " + "; ".join(b["levers"])
    return s


def run_gpus(scenario: dict) -> int:
    """GPUs the run holds: the colocated pool, else generation + training."""
    if scenario.get("colocated"):
        return int(scenario["gpus"])
    g, t = scenario.get("gen_gpus_resolved"), scenario.get("train_gpus_resolved")
    return int(g + t) if g is not None and t is not None else int(scenario["gpus"])


def cost(result, steps: int | None = None, gpu_hour_price: float | None = None,
         run_s: dict[str, float] | None = None) -> dict:
    """GPU-hours (and dollars, given a price per GPU-hour) per step and, given ``steps``, per run, for both
    decoding modes of a :class:`~rlsim.pipeline.results.ProjectionResult`. ``run_s``: seconds of the whole run
    per mode when simulated step by step (the draft-drift run); else steps x the projected step."""
    gpus = run_gpus(result.scenario)
    out = {"gpus": gpus, "steps": steps, "gpu_hour_price": gpu_hour_price, "modes": {}}
    for mode, r in (("autoregressive", result.baseline), ("speculative", result.speculative)):
        per_step = gpus * r.step_s / 3600.0
        d = {"step_s": r.step_s, "gpu_hours_per_step": per_step}
        if steps is not None:
            secs = run_s[mode] if run_s and mode in run_s else steps * r.step_s
            d["run_s"] = secs
            d["gpu_hours_per_run"] = gpus * secs / 3600.0
        if gpu_hour_price is not None:
            d["dollars_per_step"] = per_step * gpu_hour_price
            if steps is not None:
                d["dollars_per_run"] = d["gpu_hours_per_run"] * gpu_hour_price
        out["modes"][mode] = d
    out["gpu_hours_per_step"] = out["modes"]["speculative"]["gpu_hours_per_step"]
    return out


def cost_line(c: dict) -> str:
    """'cost: 2048 GPUs; GPU-hours per step AR 114.6, spec 57.4; per run of 100 steps ...; $...'."""
    m = c["modes"]
    s = (f"cost: {c['gpus']:,} GPUs x step = GPU-hours per step AR {m['autoregressive']['gpu_hours_per_step']:,.2f}, "
         f"spec {m['speculative']['gpu_hours_per_step']:,.2f}")
    if c["steps"] is not None:
        s += (f"; per run of {c['steps']:,} steps AR {m['autoregressive']['gpu_hours_per_run']:,.1f}, "
              f"spec {m['speculative']['gpu_hours_per_run']:,.1f} GPU-hours")
    if c["gpu_hour_price"] is not None:
        s += (f"; at ${c['gpu_hour_price']:,.2f} per GPU-hour: ${m['speculative']['dollars_per_step']:,.2f} per step (spec)"
              + (f", ${m['speculative']['dollars_per_run']:,.0f} per run" if c["steps"] is not None else ""))
    return s


__all__ = ["bottleneck", "bottleneck_from_phases", "cost", "cost_line", "run_gpus", "statement"]
