"""Where an asynchronous run starts does not move its steady state: the prefilled start against filling the pipeline
from empty (pipeline/asynchronous.py, ``simulate_async(start=...)``).

Where draining weight syncs leave the pool empty the steady state has one batch in flight, so a run may start there
(``prefilled``: lag batches counted as generated before the window, no warm-up) instead of releasing batches
0..lag at once and discarding lag + 2 warm-up steps (``empty``, the start before 2026-12-02).
The default (``start=None``) starts prefilled and falls back to the empty start where a sync leaves sequences in
the pool (batches beyond the KV cache); the last column says which start it used. For each scenario and seed the
empty start and the default run the same number of measured steps; the table gives the mean measured step of each
over all seeds and steps ("prefilled": the default), their difference, and two standard errors of that difference
(the steps' spread), with the generation phase, the staleness, the realised acceptance and each run's seconds.

    python benchmarks/async_start.py                      # all but the slow scenario, 3 seeds, 12 measured steps
    python benchmarks/async_start.py --steps 8 --seeds 1,2 --only zero8b-lag1
    python benchmarks/async_start.py --only think8b-kv-bound-lag2 --seeds 1 --steps 4   # slow: ~6 min
"""

from __future__ import annotations

import argparse
import time

import numpy as np

SCENARIOS = {
    "235b-512-lag1": dict(model="qwen3-235b", gpus=512, k=3, lag=1),
    "235b-2048-lag2": dict(model="qwen3-235b", gpus=2048, k=3, lag=2),
    "zero8b-lag1": dict(workload="rl-zero-8b", lag=1),
    "think8b-lag2": dict(workload="rl-think-8b", lag=2),
    "30b-a3b-lag1": dict(workload="rl-think-30b-a3b", lag=1),
    "30b-a3b-48+16-lag1-fixed": dict(workload="rl-think-30b-a3b", lag=1, gen_gpus=48, train_gpus=16, engine="vllm-fixed"),
    # a batch's tokens exceed the replicas' KV cache: preemptions (1.7x), then sequences that wait at the syncs (6.6x)
    "think8b-preempt-lag2": dict(workload="rl-think-8b", gen_gpus=8, train_gpus=8, num_prompts_per_step=64,
                                 num_generations_per_prompt=16, lag=2),
    "think8b-kv-bound-lag2": dict(workload="rl-think-8b", gen_gpus=2, train_gpus=8, num_prompts_per_step=64,
                                  num_generations_per_prompt=16, lag=2),
}


SLOW = {"think8b-kv-bound-lag2"}  # the empty start on 2 replicas with preemptions: minutes per run; only when named


def run(name: str, seed: int, speculative: bool, start: str | None, measured: int) -> dict:
    from rlsim.pipeline import build_setup
    from rlsim.pipeline.asynchronous import async_step_result, simulate_async
    from rlsim.scenario import build_scenario

    kw = dict(SCENARIOS[name], seed=seed, options={"async_measured_steps": measured})
    setup = build_setup(build_scenario(**kw))
    t = time.perf_counter()
    r = simulate_async(setup, speculative, start=start)
    secs = time.perf_counter() - t
    res = async_step_result(setup, r)
    a = res.extra["async"]
    return dict(per_step=a["per_step_s"], generation=res.phases_s["generation"], stale=a["staleness_mean"],
                acc=res.generation.realized_acceptance_length, secs=secs, start=r.start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12, help="measured steps per run")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--only", default="", help="comma list of scenarios: " + ", ".join(SCENARIOS))
    a = ap.parse_args()
    names = [n for n in a.only.split(",") if n] or [n for n in SCENARIOS if n not in SLOW]
    for n in names:
        if n not in SCENARIOS:
            raise SystemExit(f"error: unknown scenario {n!r}; allowed: {', '.join(SCENARIOS)}")
    seeds = [int(s) for s in a.seeds.split(",")]
    print(f"{a.steps} measured steps, seeds {seeds}; step and generation in seconds (means over seeds and steps)")
    print(f"{'scenario':22s} {'mode':4s} {'empty':>9s} {'prefilled':>9s} {'diff %':>7s} {'2 se %':>6s}  "
          f"{'gen empty':>9s} {'gen pref':>9s}  {'stale e/p':>9s}  {'acc e/p':>11s}  {'s e/p':>11s}  default start",
          flush=True)
    worst = 0.0
    for n in names:
        for spec in (False, True):
            # "prefilled": the default start (None), which falls back to "empty" where a sync leaves sequences
            out = {key: [run(n, s, spec, st, a.steps) for s in seeds] for key, st in (("empty", "empty"),
                                                                                       ("prefilled", None))}
            used = sorted({r["start"] for r in out["prefilled"]})
            e = np.concatenate([r["per_step"] for r in out["empty"]])
            p = np.concatenate([r["per_step"] for r in out["prefilled"]])
            se = float(np.sqrt(e.var(ddof=1) / e.size + p.var(ddof=1) / p.size))
            diff = p.mean() / e.mean() - 1.0
            worst = max(worst, abs(p.mean() - e.mean()) / se if se > 0 else 0.0)

            def m(st, f):
                return float(np.mean([r[f] for r in out[st]]))

            print(f"{n:22s} {'spec' if spec else 'AR':4s} {e.mean():9.2f} {p.mean():9.2f} {100 * diff:7.2f} "
                  f"{200 * se / e.mean():6.2f}  {m('empty', 'generation'):9.2f} {m('prefilled', 'generation'):9.2f}  "
                  f"{m('empty', 'stale'):4.2f}/{m('prefilled', 'stale'):4.2f}  {m('empty', 'acc'):5.3f}/{m('prefilled', 'acc'):5.3f}"
                  f"  {m('empty', 'secs'):5.2f}/{m('prefilled', 'secs'):5.2f}  {'/'.join(used)}", flush=True)
    print(f"largest |difference| / standard error: {worst:.2f} (below 2: within the steps' spread)")


if __name__ == "__main__":
    main()
