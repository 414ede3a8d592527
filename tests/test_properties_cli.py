"""Property tests of the boundary (issue 22): the CLI and the Python API driven with values of every flag's
type plus the odd ones a new user types (zero, negative, huge, NaN, infinity, words, empty, fractions,
folders, devices, broken files). Every example must end in exactly one of:

- exit 0 with a valid result (``--json``: strict JSON, no NaN / Infinity), or
- exit 2 with one ``error:`` line on stderr and nothing on stdout (the API: an ``RlsimError``),

never a traceback, and within a bounded time (a hang guard, not a timing assertion: an example that runs
for minutes means a missing upper bound). Examples are small (a 4-sequence workload, a few flags at a
time). Deterministic: ``derandomize=True`` and no example database.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import signal
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from rlsim.errors import RlsimError
from rlsim.cli import app

from conftest import write_tiny_workload

runner = CliRunner()
SCRATCH = Path(tempfile.mkdtemp(prefix="rlsim-props-cli-"))
TINY = write_tiny_workload(SCRATCH / "tiny.yaml")
HANG_S = 240  # a guard against a hang (an unbounded input), far above any example's run time


def _settings(n: int):
    return settings(max_examples=n, deadline=None, derandomize=True, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])


@contextlib.contextmanager
def hang_guard(seconds: int = HANG_S):
    def boom(*_):
        raise TimeoutError(f"example still running after {seconds} s: an input without an upper bound?")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def strict_loads(text: str):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def check_cli(args: list[str], json_out: bool = True):
    """Run the CLI; assert the outcome is one of the two allowed ones; return (exit code, parsed JSON or None)."""
    with hang_guard():
        r = runner.invoke(app, args, prog_name="rlsim")
    where = f"rlsim {' '.join(args)}"
    assert r.exception is None or isinstance(r.exception, SystemExit), (where, repr(r.exception), r.output[-3000:])
    assert "Traceback" not in r.output, (where, r.output[-3000:])
    assert r.exit_code in (0, 2), (where, r.exit_code, r.output[-3000:])
    event(f"exit {r.exit_code}")
    if r.exit_code == 2:
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), (where, r.stderr[-3000:])
        assert r.stdout.strip() == "", (where, r.stdout[-2000:])
        event("E " + lines[0][7:50])
        return 2, None
    if json_out:
        return 0, strict_loads(r.stdout)
    return 0, None


# ------------------------------------------------------------------------------------ value strategies
ODD_INTS = ["0", "-1", "-8", "1.5", "abc", "", "1e3", "99999999999999999999", "nan", " 3", "0x10", "٣"]
ODD_FLOATS = ["nan", "inf", "-inf", "-0.5", "1e308", "abc", "", "1,5", "0x10", "-0", "1e-320"]


class V:
    """A flag's values: ``valid`` ones (a well-formed input) and ``odd`` ones (what a new user also types)."""

    def __init__(self, valid, odd=None):
        self.valid, self.odd = valid, odd


def int_flag(lo: int, hi: int) -> V:
    return V(st.integers(lo, hi).map(str), st.sampled_from(ODD_INTS))


def float_flag(lo: float, hi: float) -> V:
    return V(st.floats(lo, hi, allow_nan=False, allow_infinity=False).map(repr), st.sampled_from(ODD_FLOATS))


def choice(valid: list, odd: list | None = None) -> V:
    return V(st.sampled_from(valid), st.sampled_from(odd) if odd else None)


SWITCH = V(st.none())  # a flag without a value


_counter = itertools.count()


def scratch_file(content: bytes | str, suffix: str) -> str:
    p = SCRATCH / f"f{next(_counter)}{suffix}"
    p.write_bytes(content.encode("utf-8", "surrogateescape") if isinstance(content, str) else content)
    return str(p)


def _odd_dir() -> str:
    d = SCRATCH / f"d{next(_counter)}.png"
    d.mkdir()
    return str(d)


def output_path(suffix: str) -> V:
    """A new file in a folder that exists, or one of the places no file can go."""
    return V(st.just(None).map(lambda _: str(SCRATCH / f"o{next(_counter)}{suffix}")),
             st.one_of(st.sampled_from(["/dev/full", "/sys/rlsim-out" + suffix, str(SCRATCH / "no" / "such" / ("x" + suffix)),
                                        str(SCRATCH / "x.txt"), str(SCRATCH), "", "."]),
                       st.just(None).map(lambda _: _odd_dir())))


PROM_LINES = st.sampled_from([
    "vllm:spec_decode_num_drafts_total 1000", "vllm:spec_decode_num_draft_tokens_total 3000",
    "vllm:spec_decode_num_accepted_tokens_total 1800", 'vllm:spec_decode_num_accepted_tokens_per_pos_total{position="0"} 800',
    'vllm:spec_decode_num_accepted_tokens_per_pos_total{position="1"} 600',
    'vllm:spec_decode_num_accepted_tokens_per_pos_total{position="2"} 400',
    'vllm:spec_decode_num_accepted_tokens_per_pos_total{position="x"} 4', "vllm:spec_decode_num_drafts_total NaN",
    'vllm:spec_decode_num_accepted_tokens_per_pos_total{position="99999999"} 1', "vllm:spec_decode_num_drafts_total -5",
    "# HELP vllm:spec_decode_num_drafts_total drafts", "vllm:num_requests_running 3", "garbage {{{", ""])
JSON_TRACES = st.sampled_from([
    '{"spec_acceptance_length": 2.5, "num_speculative_tokens": 3}', '{"num_drafts": 100, "num_accepted_tokens_per_pos": [80, null]}',
    '{"spec_acceptance_rate_per_pos": [0.8, 0.6, 0.4]}', '{"spec_acceptance_rate_per_pos": [1.5]}', "[]", "{}", "[1, 2]",
    '{"num_speculative_tokens": 1e300, "spec_acceptance_length": 2}', '{"num_drafts": Infinity}', "[" * 5000 + "]" * 5000,
    '{"spec_acceptance_length": "high", "k": 3}', '{"num_drafts": 10, "num_accepted_tokens_per_pos_7": 5}'])


VALID_PROM = ["vllm:spec_decode_num_drafts_total 1000", "vllm:spec_decode_num_draft_tokens_total 3000",
              "vllm:spec_decode_num_accepted_tokens_total 1800"] + [
    f'vllm:spec_decode_num_accepted_tokens_per_pos_total{{position="{i}"}} {a}' for i, a in enumerate((800, 600, 400))]


@st.composite
def trace_file(draw, odd: bool | None = None):
    """A metrics file: a complete vLLM scrape (valid), or a broken scrape, JSON, text or bytes (odd)."""
    if odd is None:
        odd = draw(st.booleans())
    if not odd:  # a complete scrape, perhaps with one more line somewhere
        lines = list(VALID_PROM)
        if draw(st.booleans()):
            lines.insert(draw(st.integers(0, len(lines))), draw(PROM_LINES))
        return scratch_file("\n".join(lines) + "\n", ".prom")
    kind = draw(st.sampled_from(["prom", "json", "text", "bytes"]))
    if kind == "prom":
        lines = draw(st.lists(PROM_LINES, max_size=8))
        text = "\n".join(lines) + draw(st.sampled_from(["\n", ""]))
        return scratch_file(text, ".prom")
    if kind == "json":
        return scratch_file(draw(JSON_TRACES), ".json")
    if kind == "text":
        return scratch_file(draw(st.text(max_size=200)), ".txt")
    return scratch_file(draw(st.binary(max_size=200)), ".bin")


GOOD_RECIPES = ["grpo: {num_prompts_per_step: 2, num_generations_per_prompt: 2}\n",
                "cluster: {num_nodes: 1, gpus_per_node: 4}\n",
                "policy: {generation: {vllm_kwargs: {speculative_config: {method: eagle3, num_speculative_tokens: 2}}}}\n",
                "grpo: {async_grpo: {enabled: true, max_trajectory_age_steps: 1}}\n"]
ODD_RECIPES = [
    "grpo: {num_prompts_per_step: .inf}\n", "grpo: {num_generations_per_prompt: .nan}\n",
    "grpo: {async_grpo: {enabled: 'false'}}\n", "policy: {generation: {colocated: {enabled: maybe}}}\n",
    "a: &a [1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b]\n"
    "d: &d [*c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e]\n",
    "defaults: self.yaml\n", "- a list\n", "policy: {model_name: nobody/model}\n",
    "grpo: {async_grpo: {enabled: true, max_trajectory_age_steps: 1000}}\n", "\udcff\udcfe: x\n"]


GOOD_VERL = ["python3 -m verl.trainer.main_ppo data.train_batch_size=2 actor_rollout_ref.rollout.n=2 "
             "actor_rollout_ref.rollout.name=vllm trainer.n_gpus_per_node=4 trainer.nnodes=1\n",
             "N=2\npython3 -m verl.trainer.main_ppo data.train_batch_size=$((N * 1)) actor_rollout_ref.rollout.name=vllm "
             "actor_rollout_ref.rollout.tensor_model_parallel_size=1\n"]
ODD_VERL = ["echo nothing\n", "python3 -m verl.trainer.main_ppo data.train_batch_size=.inf\n",
            "python3 -m verl.trainer.main_ppo actor_rollout_ref.rollout.name=sglang\n",
            "python3 -m verl.trainer.main_ppo data.train_batch_size='\n", "\udcff\udcfe\n",
            "python3 -m verl.trainer.main_ppo actor_rollout_ref.rollout.gpu_memory_utilization=high "
            "actor_rollout_ref.rollout.name=vllm\n"]


def recipe_file(odd: bool) -> st.SearchStrategy:
    return st.sampled_from(ODD_RECIPES if odd else GOOD_RECIPES).map(lambda t: scratch_file(t, ".yaml"))


def _argv(draw, flags: dict, n_max: int, required: tuple = ()) -> list[str]:
    """Some flags (``required`` always), each with a valid value, except in about half of the examples one
    flag that gets an odd value."""
    names = list(required) + draw(st.lists(st.sampled_from(sorted(set(flags) - set(required))), max_size=n_max,
                                           unique=True), label="flags")
    can_be_odd = [n for n in names if flags[n].odd is not None]
    odd = draw(st.sampled_from(can_be_odd), label="odd flag") if can_be_odd and draw(st.booleans()) else None
    argv = []
    for n in names:
        v = draw(flags[n].odd if n == odd else flags[n].valid, label=n)
        argv += [n] if v is None else [n, v]
    return argv


# ------------------------------------------------------------------------------------ rlsim project
PROJECT_FLAGS = {
    "--gpus": int_flag(1, 8), "--k": int_flag(0, 5), "--lag": int_flag(0, 2),
    "--acceptance-length": float_flag(1.0, 4.0), "--draft-quality": float_flag(0.0, 1.0),
    "--drafter": choice(["eagle3", "ngram", "draft-model"], ["mtp", "medusa", ""]),
    "--gen-gpus": int_flag(1, 4), "--train-gpus": int_flag(1, 4), "--seed": int_flag(0, 1000), "--seeds": int_flag(1, 3),
    "--calibration": choice(["auto", "roofline"], ["calibrated", "magic"]),
    "--hardware": choice(["h100-sxm", "h200-sxm", "gb200-nvl72"], ["tpu-v5", str(SCRATCH)]),
    "--draft-quality-decay": float_flag(0.5, 1.0), "--acceptance-spread": float_flag(0.0, 0.5),
    "--acceptance-response-decay": float_flag(0.0, 0.5), "--moe-routing-skew": float_flag(0.0, 3.0),
    "--k-schedule": choice(["1-16:2,17-1024:1", "[[1, 4, 2], [5, 1024, 1]]"],
                           ["small:5", "[[1, 16, 99]]", "1-16:5,64-17:3", "", "[[1,2]]", "{}", "1-2:3:4"]),
    "--steps": int_flag(1, 2), "--drift-steps": float_flag(0.0, 1000.0), "--draft-init": float_flag(0.5, 1.2),
    "--in-flight-weight-updates": SWITCH, "--partial-rollouts": SWITCH,
    "--draft-model": choice(["qwen3-0.6b"], ["gpt-9", ""]),
    "--timeline": output_path(".png"), "--acceptance-from": V(trace_file(odd=False), trace_file(odd=True)),
    "--from-nemo-rl": V(recipe_file(False), recipe_file(True)),
    # issue 20: engines, long context, a prefill pool, multi-turn rollouts
    "--engine": choice(["vllm-0.17.1", "sglang-0.5.6", "sglang-0.5.6-nemo-rl"], ["sglang-9", ""]),
    "--prefill-gpus": int_flag(1, 2), "--kv-link-gbps": float_flag(1.0, 3600.0),
    "--kv-link-latency-ms": float_flag(0.0, 20.0), "--turns": int_flag(1, 2), "--tool-latency-s": float_flag(0.0, 1.0),
    "--tool-output-tokens": float_flag(1.0, 64.0), "--rope-scaling": choice(["none", "yarn"], ["linear", ""]),
    # issue 18
    "--tp": int_flag(1, 2), "--num-prompts-per-step": int_flag(1, 4), "--num-generations-per-prompt": int_flag(1, 4),
    "--max-new-tokens": int_flag(16, 512), "--out": output_path(".json"),
    "--set": choice(["kv_cache_dtype=fp8", "engine=ideal", "response_sigma=0.5", "reference_logprobs=false"],
                    ["foo=3", "=", "k", "k=1,2", "colocated=maybe", "seed=3", "max_new_tokens=-5"]),
    "--from-verl": V(st.sampled_from(GOOD_VERL).map(lambda t: scratch_file(t, ".sh")),
                     st.sampled_from(ODD_VERL).map(lambda t: scratch_file(t, ".sh"))),
}


@_settings(40)
@given(data=st.data())
def test_project_cli_any_flags(data):
    workload = data.draw(st.sampled_from([TINY, TINY, TINY, "rl-zero", str(SCRATCH / "none.yaml")]), label="workload")
    argv = ["project", "--workload", workload] + _argv(data.draw, PROJECT_FLAGS, 3) + ["--json"]
    code, d = check_cli(argv)
    if code == 0:
        if "--steps" in argv:
            assert d["steps"] and all(math.isfinite(s["offline_step_s"]) for s in d["steps"])
        else:
            for mode in ("baseline", "speculative"):
                assert d[mode]["step_s"] > 0 and math.isfinite(d[mode]["step_s"])
            assert 1.0 <= d["acceptance_length_realized"] <= d["scenario"]["num_speculative_tokens"] + 1 + 1e-9


TREE_FLAGS = {  # issue 19: draft trees, retrieval (with the engine that takes them)
    "--engine": choice(["ideal", "vllm-0.17.1"], ["sglang-9", ""]),
    "--speculative-num-steps": int_flag(1, 4), "--speculative-eagle-topk": int_flag(1, 3),
    "--speculative-num-draft-tokens": int_flag(2, 12),
    "--speculative-token-tree": choice(["[(0,), (1,)]", "[(0,), (1,), (0, 0), (1, 0)]", "[(0,), (0, 0)]"],
                                       ["[(0,", "[(0, 1)]", "", "[(0,), (1,), (0, 0)]", "[[[[[[0]]]]]]", "()"]),
    "--tree-rank-decay": float_flag(0.0, 0.99), "--tree-verification": choice(["tree", "chain"], ["both", ""]),
    "--tree-acceptance": choice(["[[0.7, 0.2], [0.6, 0.1]]", "[[0.9]]"], ["[[0.9, 0.9]]", "[]", "x", "[[-1]]"]),
    "--retrieval-tokens": int_flag(0, 4), "--retrieval-acceptance-length": float_flag(1.0, 3.0),
    "--k": int_flag(0, 4), "--acceptance-length": float_flag(1.0, 3.0),
}


@_settings(30)
@given(data=st.data())
def test_project_cli_tree_flags(data):
    argv = ["project", "--workload", TINY] + _argv(data.draw, TREE_FLAGS, 4) + ["--json"]
    code, d = check_cli(argv)
    if code == 0:
        for mode in ("baseline", "speculative"):
            assert d[mode]["step_s"] > 0 and math.isfinite(d[mode]["step_s"])
        tree = d["scenario"].get("tree")
        top = tree["depth"] + 1 if tree and not tree["retrieval_tokens"] else (
            max(tree["depth"], tree["retrieval_tokens"]) + 1 if tree else None)
        if top is not None:
            assert 1.0 <= d["acceptance_length_realized"] <= top + 1e-9


# ------------------------------------------------------------------------------------ rlsim sweep
SWEEP_FLAGS = {
    "--k": choice(["1", "1,2", "0..2"], ["1..", "..", "1..3..0", "a,b", "1..1000000000", "3..1", "1,,2", "-1"]),
    "--draft-quality": choice(["0.8", "0.6..0.8..0.1"], ["0.5..inf..0.1", "nan", "0..1..0", "x", "0.1..0.9"]),
    "--lag": choice(["0", "0,1"], ["9", "-1", "a"]),
    "--seeds": choice(["1", "2", "0,4"], ["0", "-3", "0,0", "abc", "1000000000", "0..1000000000", "1.5"]),
    "--set": choice(["k=1", "lag=1", "num_prompts_per_step=1,2"], ["foo=3", "=", "k", "colocated=maybe", "options=3"]),
    "--split": choice(["2:2"], ["4:0", "a:b", "3", "1:3,2:2"]),
    "--executor": choice(["serial", "process"], ["mpi", ""]),
    "--workers": int_flag(1, 2), "--rows": int_flag(0, 5),
    "--out": output_path(".csv"), "--per-seed": SWITCH, "--skip-invalid": SWITCH,
    "--grid": V(st.sampled_from(["k: [1, 2]\nseeds: 2\n", "k: [1]\nuse_cache: false\nper_seed: true\n"]),
                st.sampled_from(["seeds: abc\n", "k: [1, 2]\nper_seed: maybe\n", "workers: 0\n", "out: /dev/full\n",
                                 "k: '1..7'\n", "points: 3\n", "- 1\n", "grid: {k: 5}\n"]))
}
SWEEP_FLAGS["--grid"] = V(*(s_.map(lambda t: scratch_file(f"workload: {TINY}\n" + t, ".yaml"))
                            for s_ in (SWEEP_FLAGS["--grid"].valid, SWEEP_FLAGS["--grid"].odd)))


@_settings(30)
@given(data=st.data())
def test_sweep_cli_any_flags(data):
    argv = ["sweep", "--workload", TINY, "--no-cache", "--no-progress"] + _argv(data.draw, SWEEP_FLAGS, 3)
    if "--executor" not in argv:
        argv += ["--executor", "serial"]
    code, d = check_cli(argv + ["--json"])
    if code == 0:
        assert isinstance(d, list) and d and all("point" in row for row in d)


# ------------------------------------------------------------------------------------ rlsim iteration
ITERATION_FLAGS = {
    "--model": choice(["qwen3-8b", "qwen3-30b-a3b", "llama-3.1-70b"], ["gpt-9", ""]),
    "--batch": V(st.integers(1, 64).map(str), st.sampled_from(ODD_INTS + ["100000000", "4096"])),
    "--context": V(st.integers(1, 4096).map(str), st.sampled_from(ODD_INTS + ["1000000000", "131072"])),
    "--k": int_flag(0, 7), "--tp": V(st.sampled_from(["1", "2", "4", "8"]), st.sampled_from(ODD_INTS + ["3"])),
    "--ep": SWITCH, "--no-ep": SWITCH, "--dtype": choice(["bf16", "fp8"], ["fp4", ""]),
    "--drafter": choice(["eagle3", "ngram"], ["mtp", "x"]), "--hardware": choice(["h100-sxm", "b200"], ["tpu"]),
    "--calibration": choice(["auto", "roofline"], ["x"]),
    "--engine": choice(["vllm-0.17.1", "sglang-0.5.6"], ["sglang-9"]), "--acceptance-length": float_flag(1.0, 4.0),
}


@_settings(40)
@given(data=st.data())
def test_iteration_cli_any_flags(data):
    code, d = check_cli(["iteration"] + _argv(data.draw, ITERATION_FLAGS, 3, ("--model", "--batch", "--context"))
                        + ["--json"])
    if code == 0:
        assert d["time_s"] > 0 and math.isfinite(d["time_s"])


# ------------------------------------------------------------------------------------ rlsim plot --from, timeline
GOOD_CSV = ("point,k,draft_quality,speedup_generation,speedup_step,ar_step_s,ar_generation_s,spec_step_s,"
            "spec_generation_s\n0,1,0.8,1.5,1.2,10,6,8.3,4\n1,2,0.8,1.7,1.3,10,6,7.7,3.5\n2,1,0.9,1.6,1.25,10,6,8,3.8\n"
            "3,2,0.9,1.9,1.4,10,6,7.1,3.2\n")
PLOT_FLAGS = {
    "--from": V(st.just(GOOD_CSV), st.one_of(
        st.sampled_from(["", "a,b\n1,2\n", "point,k,speedup_generation\n", "point,seed,k,speedup_generation\n0,0,1,1.5\n",
                         "\x00\x01\x02", "point\n" + "0\n" * 3]), st.text(max_size=120))),
    "--out": output_path(".png"), "--k": choice(["1", "1,2"], ["7", "x"]), "--metric": choice(["speedup_step"], ["nope"]),
}
PLOT_FLAGS["--from"] = V(*(s_.map(lambda t: scratch_file(t, ".csv")) for s_ in (PLOT_FLAGS["--from"].valid,
                                                                                PLOT_FLAGS["--from"].odd)))


@_settings(8)
@given(data=st.data(), plot=st.sampled_from(["speedup-vs-k", "heatmap"]))
def test_plot_from_any_file(data, plot):
    check_cli(["plot", plot] + _argv(data.draw, PLOT_FLAGS, 2, ("--from", "--out")), json_out=False)


TIMELINE_FLAGS = {"--replicas": int_flag(1, 40), "--steps": int_flag(1, 3), "--lag": int_flag(0, 2),
                  "--out": output_path(".svg"), "--autoregressive": SWITCH, "--k": int_flag(1, 3)}


@_settings(6)
@given(data=st.data())
def test_timeline_any_flags(data):
    check_cli(["timeline", "--workload", TINY] + _argv(data.draw, TIMELINE_FLAGS, 2, ("--replicas", "--out")),
              json_out=False)


# ------------------------------------------------------------------------------------ the Python API
ANY = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**12), st.floats(allow_nan=True, allow_infinity=True),
                st.text(max_size=8), st.lists(st.integers(-2, 20), max_size=4), st.lists(st.floats(0, 1), max_size=3),
                st.dictionaries(st.sampled_from(["moe_routing_skew", "partial_rollout", "x"]), st.integers(-1, 5), max_size=2),
                st.sampled_from(["rl-zero-8b", "qwen3-8b", "h100-sxm", "eagle3", "bf16", "auto", "x.yaml"]))
API_ARGS = ["model", "workload", "hardware", "gpus", "k", "drafter", "acceptance_length", "lag", "gen_gpus", "train_gpus",
            "seed", "acceptance_rates_per_position", "draft_quality", "draft_quality_decay", "draft_model",
            "num_speculative_tokens_per_batch_size", "calibration", "tensor_parallel_size", "response_median_tokens",
            "max_new_tokens", "response_sigma", "options", "num_prompts_per_step", "num_generations_per_prompt",
            "generation_dtype", "kv_cache_dtype", "reference_logprobs", "in_flight_weight_updates", "training_mfu",
            "logprob_mfu", "data_loading_s", "colocated", "num_prompt_per_step"]


@_settings(300)
@given(kwargs=st.dictionaries(st.sampled_from(API_ARGS), ANY, max_size=4))
def test_build_scenario_any_arguments(kwargs):
    """Any arguments of any type: a Scenario or an RlsimError (a ConfigurationError or CatalogError), nothing
    else. (Resolution only: simulating is covered by the CLI property above.)"""
    from rlsim import build_scenario
    from rlsim.scenario import Scenario

    kwargs = {"workload": "rl-zero-8b", **kwargs}
    with hang_guard():
        try:
            sc = build_scenario(**kwargs)
        except RlsimError as e:
            assert "\n" not in str(e).strip(), str(e)
            event("RlsimError")
            return
    event("valid")
    assert isinstance(sc, Scenario)
    if kwargs.get("k") is not None:
        assert sc.k == kwargs["k"]


SWEEP_SETTINGS = {"seeds": st.one_of(st.integers(-1, 3), st.sampled_from(["3", [0, 0], [0, 1], 10**9, 1.5, None, range(2)])),
                  "workers": st.one_of(st.integers(-1, 2), st.sampled_from(["x", None, 2.0])),
                  "executor": st.sampled_from(["serial", "process", "mpi", 5, None]),
                  "per_seed": ANY, "skip_invalid": st.sampled_from([True, False, "yes", None]),
                  "use_cache": st.sampled_from([False, "no", 0]), "progress": st.sampled_from([False, None, "x"]),
                  "points": st.sampled_from([None, [], [{"k": 2}], [1], "x", [{"k": "a"}]]),
                  "k": st.sampled_from([1, [1, 2], "abc", [], range(10**9), {1, 2}, None, 2.5]),
                  "out": st.one_of(output_path(".csv").valid, output_path(".csv").odd,
                                   st.sampled_from([None, 5, str(SCRATCH / "r.xlsx")]))}


@_settings(30)
@given(kw=st.fixed_dictionaries({}, optional=SWEEP_SETTINGS))
def test_sweep_api_any_settings(kw):
    from rlsim import sweep

    kw.setdefault("use_cache", False)
    kw.setdefault("executor", "serial")
    with hang_guard():
        try:
            df = sweep(workload=TINY, **kw)
        except RlsimError as e:
            assert "\n" not in str(e).strip(), str(e)
            event("RlsimError")
            return
    event("valid")
    assert len(df) >= 1 and "point" in df.columns


RECIPE_KEYS = ["grpo.num_prompts_per_step", "grpo.num_generations_per_prompt", "policy.max_total_sequence_length",
               "policy.generation.vllm_cfg.tensor_parallel_size", "policy.generation.vllm_cfg.precision",
               "policy.generation.vllm_kwargs.speculative_config.method",
               "policy.generation.vllm_kwargs.speculative_config.num_speculative_tokens", "grpo.async_grpo.enabled",
               "grpo.async_grpo.max_trajectory_age_steps", "grpo.async_grpo.in_flight_weight_updates",
               "cluster.num_nodes", "cluster.gpus_per_node", "policy.generation.colocated.enabled",
               "policy.generation.colocated.resources.num_nodes", "policy.model_name"]


@_settings(80)
@given(values=st.dictionaries(st.sampled_from(RECIPE_KEYS), ANY, max_size=5))
def test_nemo_rl_recipe_any_values(values):
    """A recipe with any value under the keys rlsim reads: mapped and resolved, or one RlsimError."""
    from rlsim import build_scenario
    from rlsim.studies.nemo_rl import from_nemo_rl, merge_flags

    recipe: dict = {}
    for dotted, v in values.items():
        node = recipe
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {}) if isinstance(node.get(p, {}), dict) else {}
        node[last] = v
    with hang_guard():
        try:
            m = from_nemo_rl(recipe)
            build_scenario(**merge_flags(m, {"workload": "rl-zero-8b"}))
            event("valid")
        except RlsimError as e:
            assert "\n" not in str(e).strip(), str(e)
            event("RlsimError")


@_settings(60)
@given(path=trace_file(), k=st.sampled_from([None, 1, 3, 8]))
def test_acceptance_trace_any_file(path, k):
    """Any file as --acceptance-from: a fit that is a valid acceptance model, or one RlsimError."""
    from rlsim.speculation.traces import load_acceptance_trace

    with hang_guard():
        try:
            fit = load_acceptance_trace(path, k=k)
        except RlsimError as e:
            assert "\n" not in str(e).strip(), str(e)
            event("RlsimError")
            return
    event("valid")
    p = fit.unconditional_rates
    assert 1 <= fit.k == len(p) <= 64
    assert all(0.0 <= x <= 1.0 for x in p) and all(b <= a + 1e-12 for a, b in zip(p, p[1:]))
    assert fit.acceptance_length == pytest.approx(1.0 + sum(p))


@_settings(40)
@given(n=st.integers(1, 6), drafts=st.integers(1, 10**6), data=st.data())
def test_complete_scrape_keeps_k_truncated_one_is_refused(n, drafts, data):
    """A scrape with counters for positions 0..n-1 fits k = n; the same scrape cut anywhere inside the
    per-position counters is refused, never fitted with a smaller k."""
    from rlsim.errors import ConfigurationError
    from rlsim.speculation.traces import fit_prometheus

    acc = sorted((data.draw(st.integers(0, drafts), label=f"acc{i}") for i in range(n)), reverse=True)
    lines = [f"vllm:spec_decode_num_drafts_total {drafts}", f"vllm:spec_decode_num_draft_tokens_total {n * drafts}",
             f"vllm:spec_decode_num_accepted_tokens_total {sum(acc)}"]
    lines += [f'vllm:spec_decode_num_accepted_tokens_per_pos_total{{position="{i}"}} {a}' for i, a in enumerate(acc)]
    text = "\n".join(lines) + "\n"
    assert fit_prometheus(text).k == n
    cut = data.draw(st.integers(len("\n".join(lines[:3])) + 2, len(text) - 2), label="cut")
    with pytest.raises(ConfigurationError):
        fit_prometheus(text[:cut])
