"""Where a separate prefill pool pays (issue 20): Qwen3-8B on 16 H200 (sync, colocated, TP 1), 128 sequences of a
fixed prompt P and response R, the generation phase with all 16 GPUs running vLLM-style engines (chunked prefill
mixed with decode) vs 4 of them as a prefill pool sending KV to 12 decode replicas, over NVLink-class (3600 Gb/s,
0.005 ms), InfiniBand (400 Gb/s, 0.005 ms) and a cross-datacenter link (25 Gb/s, 10 ms); AR and EAGLE-3 k = 3; plus
a multi-turn (agentic) case. Engine: vllm-0.17.1 (KV moves after each whole prefill, NixlConnector).

    python scripts/disagg_pays.py --out validation/disagg-pays      # .csv and .md
"""

from __future__ import annotations

import argparse
from pathlib import Path

SHAPES = [(1024, 4096), (8192, 2048), (32768, 1024)]
LINKS = [("nvlink", 3600.0, 0.005), ("infiniband", 400.0, 0.005), ("cross-dc", 25.0, 10.0)]
AGENTIC = {"turns": 4, "tool_latency_s": 2.0, "tool_output_tokens": 2000.0}
# block B: agentic rollouts whose tools return long outputs (retrieved documents, logs), prefill pool sizes 2..8 of 16,
# both engines (SGLang runs each prefill batch alone, so a colocated engine's decoding stops while it prefills)
AGENTIC_LONG = {"turns": 4, "tool_latency_s": 2.0, "tool_output_tokens": 8192.0}
POOLS = [2, 4, 8]


def run(out: Path, shapes=SHAPES, links=LINKS, engine: str = "vllm-0.17.1", prefill_gpus: int = 4) -> list[dict]:
    from rlsim import project_scenario

    rows = []
    cases = [(P, R, None) for P, R in shapes] + [(1024, 1024, AGENTIC)]
    for P, R, ag in cases:
        base = dict(workload="rl-think-8b", hardware="h200-sxm", gpus=16, k=3, engine=engine, num_prompts_per_step=16,
                    num_generations_per_prompt=8, response_median_tokens=float(R), max_new_tokens=R, response_sigma=0.0,
                    prompt_length={"distribution": "fixed", "median_tokens": float(P), "min_tokens": 1,
                                   "max_tokens": P}, training_mfu=0.33, logprob_mfu=0.39)
        variants = [("colocated (16 engines)", None)] + [(f"{name}: {prefill_gpus} prefill + {16 - prefill_gpus} decode",
                                                          (g, l)) for name, g, l in links]
        ref = None
        for label, link in variants:
            opts = dict(ag or {})
            if link is not None:
                opts.update(prefill_gpus=prefill_gpus, kv_link_gbps=link[0], kv_link_latency_ms=link[1])
            r = project_scenario(**base, options=opts or None)
            d = r.to_dict()
            ga, gs = d["baseline"]["phases_s"]["generation"], d["speculative"]["phases_s"]["generation"]
            if ref is None:
                ref = (ga, gs)
            ro = d["speculative"].get("rollout", {})
            rows.append({"prompt": P, "response": R, "turns": (ag or {}).get("turns", 1), "setup": label,
                         "ratio_prompt_to_response": P / R, "gen_ar_s": ga, "gen_spec_s": gs,
                         "vs_colocated_ar": ref[0] / ga, "vs_colocated_spec": ref[1] / gs,
                         "spec_speedup": ga / gs, "kv_wait_mean_ms": 1e3 * ro.get("kv_transfer_after_prefill_s_mean", 0.0),
                         "prefill_busy_fraction": ro.get("prefill_busy_fraction", 0.0)})
            print(rows[-1], flush=True)
    write(rows, out)
    return rows


def run_pools(out: Path, engines=("vllm-0.17.1", "sglang-0.5.6"), pools=POOLS, link=("infiniband", 400.0, 0.005)):
    """Block B: agentic, long tool outputs, prefill pool size swept; appended to ``out``.csv / .md."""
    import pandas as pd

    from rlsim import project_scenario

    rows = []
    for eng in engines:
        base = dict(workload="rl-think-8b", hardware="h200-sxm", gpus=16, k=3, engine=eng, num_prompts_per_step=16,
                    num_generations_per_prompt=8, response_median_tokens=1024.0, max_new_tokens=1024,
                    response_sigma=0.0, prompt_length={"distribution": "fixed", "median_tokens": 1024.0,
                                                       "min_tokens": 1, "max_tokens": 1024},
                    training_mfu=0.33, logprob_mfu=0.39)
        ref = None
        for pg in [None, *pools]:
            opts = dict(AGENTIC_LONG)
            if pg:
                opts.update(prefill_gpus=pg, kv_link_gbps=link[1], kv_link_latency_ms=link[2])
            d = project_scenario(**base, options=opts).to_dict()
            ga, gs = d["baseline"]["phases_s"]["generation"], d["speculative"]["phases_s"]["generation"]
            ref = ref or (ga, gs)
            ro = d["speculative"].get("rollout", {})
            rows.append({"block": "B", "engine": eng, "prompt": 1024, "response": 1024, "turns": AGENTIC_LONG["turns"],
                         "setup": "colocated (16 engines)" if not pg else f"{link[0]}: {pg} prefill + {16 - pg} decode",
                         "ratio_prompt_to_response": 1.0, "gen_ar_s": ga, "gen_spec_s": gs,
                         "vs_colocated_ar": ref[0] / ga, "vs_colocated_spec": ref[1] / gs, "spec_speedup": ga / gs,
                         "kv_wait_mean_ms": 1e3 * ro.get("kv_transfer_after_prefill_s_mean", 0.0),
                         "prefill_busy_fraction": ro.get("prefill_busy_fraction", 0.0)})
            print(rows[-1], flush=True)
    prev = pd.read_csv(out.with_suffix(".csv")) if out.with_suffix(".csv").is_file() else pd.DataFrame()
    if not prev.empty:
        if "block" not in prev:
            prev["block"] = "A"
        prev = prev[prev["block"] != "B"]
    allrows = prev.to_dict("records") + rows
    write(allrows, out)
    return rows


def run_extra_pool(out: Path, engines=("vllm-0.17.1", "sglang-0.5.6"), extra: int = 4,
                   links=(("infiniband", 400.0, 0.005), ("cross-dc", 25.0, 10.0))):
    """Block C (PrFaaS's framing): the prefill pool is added, the 16 decode GPUs only decode; agentic, long tool
    outputs as block B. Appended to ``out``.csv / .md."""
    import pandas as pd

    from rlsim import project_scenario

    rows = []
    for eng in engines:
        base = dict(workload="rl-think-8b", hardware="h200-sxm", k=3, engine=eng, num_prompts_per_step=16,
                    num_generations_per_prompt=8, response_median_tokens=1024.0, max_new_tokens=1024,
                    response_sigma=0.0, prompt_length={"distribution": "fixed", "median_tokens": 1024.0,
                                                       "min_tokens": 1, "max_tokens": 1024},
                    training_mfu=0.33, logprob_mfu=0.39)
        d = project_scenario(**base, gpus=16, options=dict(AGENTIC_LONG)).to_dict()
        ref = (d["baseline"]["phases_s"]["generation"], d["speculative"]["phases_s"]["generation"])
        for name, g, lat in links:
            opts = dict(AGENTIC_LONG, prefill_gpus=extra, kv_link_gbps=g, kv_link_latency_ms=lat)
            d = project_scenario(**base, gpus=16 + extra, options=opts).to_dict()
            ga, gs = d["baseline"]["phases_s"]["generation"], d["speculative"]["phases_s"]["generation"]
            ro = d["speculative"].get("rollout", {})
            rows.append({"block": "C", "engine": eng, "prompt": 1024, "response": 1024, "turns": AGENTIC_LONG["turns"],
                         "setup": f"{name}: {extra} prefill GPUs added, 16 decode", "ratio_prompt_to_response": 1.0,
                         "gen_ar_s": ga, "gen_spec_s": gs, "vs_colocated_ar": ref[0] / ga, "vs_colocated_spec": ref[1] / gs,
                         "spec_speedup": ga / gs, "kv_wait_mean_ms": 1e3 * ro.get("kv_transfer_after_prefill_s_mean", 0.0),
                         "prefill_busy_fraction": ro.get("prefill_busy_fraction", 0.0)})
            print(rows[-1], flush=True)
    prev = pd.read_csv(out.with_suffix(".csv"))
    prev = prev[~((prev["block"] == "C") & prev["setup"].isin({r["setup"] for r in rows}))]
    write(prev.to_dict("records") + rows, out)
    return rows


def write(rows, out: Path) -> None:
    import pandas as pd

    for r in rows:
        r.setdefault("block", "A")
        r.setdefault("engine", "vllm-0.17.1")
    pd.DataFrame(rows).to_csv(out.with_suffix(".csv"), index=False)
    lines = ["# Where a separate prefill pool pays", "",
             "Generated by `python scripts/disagg_pays.py`: Qwen3-8B on 16 H200 (TP 1), 128 sequences per step of a "
             "fixed prompt and response, engine vllm-0.17.1 (KV moves after each whole prefill); generation phase "
             "only. 'vs colocated' > 1 means the split pool is faster than 16 engines that prefill and decode; the "
             "last rows of block A are a 4-turn agentic rollout (tool latency 2 s, tool output 2,000 tokens). Block B "
             "(`run_pools`): 4 turns whose tools return 8,192 tokens, the prefill pool swept over 2, 4 and 8 of the 16 "
             "GPUs on InfiniBand (400 Gb/s), vLLM 0.17.1 and SGLang 0.5.6 (KV after each chunk). Block C (`run_extra_pool`, "
             "PrFaaS's framing): the same agentic rollout with 4 or 16 prefill GPUs *added* to 16 decode GPUs, compared "
             "with the 16 colocated.", "",
             "| block | engine | prompt | response | turns | setup | AR gen (s) | spec gen (s) | vs colocated AR | "
             "vs colocated spec | spec speedup | KV wait after prefill (ms) | prefill pool busy |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['block']} | {r['engine']} | {int(r['prompt']):,} | {int(r['response']):,} | {r['turns']} | "
                     f"{r['setup']} | {r['gen_ar_s']:.1f} | "
                     f"{r['gen_spec_s']:.1f} | {r['vs_colocated_ar']:.2f}x | {r['vs_colocated_spec']:.2f}x | "
                     f"{r['spec_speedup']:.2f}x | {r['kv_wait_mean_ms']:.1f} | {r['prefill_busy_fraction']:.0%} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="validation/disagg-pays")
    ap.add_argument("--pools", action="store_true", help="only block B (agentic, prefill pool sizes)")
    ap.add_argument("--extra", action="store_true", help="only block C (a prefill pool added to 16 decode GPUs)")
    a = ap.parse_args()
    if not a.pools and not a.extra:
        run(Path(a.out))
    if not a.extra:
        run_pools(Path(a.out))
    run_extra_pool(Path(a.out))
    run_extra_pool(Path(a.out), extra=16, links=(("infiniband", 400.0, 0.005),))
