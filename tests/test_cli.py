import pytest
import json

from typer.testing import CliRunner

from rlsim.cli import app

runner = CliRunner()


def _json(args):
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_project_json_shape_and_plausibility():
    d = _json(["project", "--workload", "rl-zero-8b", "--json"])
    for mode in ("baseline", "speculative"):
        ph = d[mode]["phases_s"]
        assert {"generation", "refit", "logprob", "training", "data"} <= set(ph)
        assert abs(sum(ph.values()) - d[mode]["step_s"]) < 1e-6
    assert d["speedup"]["generation"] > 1.0
    assert 1.0 < d["speedup"]["step"] < d["speedup"]["generation"]
    assert abs(d["acceptance_length"] - 3.32) < 1e-9
    assert d["scenario"]["workload"] == "rl-zero-8b" and d["scenario"]["gpus"] == 32


def test_k0_speculative_equals_baseline():
    d = _json(["project", "--workload", "rl-think-8b", "--k", "0", "--json"])
    assert d["speculative"]["step_s"] == d["baseline"]["step_s"]
    assert d["speedup"]["step"] == 1.0


def test_model_alone_picks_default_workload_and_flags_override():
    d = _json(["project", "--model", "qwen3-235b", "--gpus", "512", "--k", "2", "--json"])
    assert d["scenario"]["workload"] == "rl-235b"
    assert d["scenario"]["gpus"] == 512 and d["scenario"]["num_speculative_tokens"] == 2


def test_table_output():
    r = runner.invoke(app, ["project", "--workload", "rl-zero-8b"])
    assert r.exit_code == 0
    assert "generation" in r.stdout and "speedup" in r.stdout and "acceptance length 3.32" in r.stdout


def test_iteration_command():
    d = _json(["iteration", "--model", "qwen3-8b", "--hardware", "h100-sxm", "--batch", "16", "--context", "2048",
               "--k", "3", "--json"])
    assert d["tokens"] == 64 and d["time_s"] > 0
    assert abs(sum(v for k, v in d["breakdown_s"].items() if k != "total") - d["time_s"]) < 1e-9


def _err(args, *needles):
    r = runner.invoke(app, args)
    assert r.exit_code == 2, (r.exit_code, r.output)
    for n in needles:
        assert n in r.output, r.output
    assert "Traceback" not in r.output


def test_bad_inputs_exit_2_with_one_clear_line():
    _err(["project", "--model", "gpt-9"], "unknown model 'gpt-9'", "allowed")
    _err(["project", "--workload", "rl-zero-8b", "--hardware", "tpu"], "unknown hardware profile", "h100-sxm")
    _err(["project", "--workload", "rl-zero-8b", "--acceptance-length", "9"], "impossible at k = 3")
    _err(["project", "--workload", "rl-zero-8b", "--drafter", "medusa"], "allowed: eagle3, mtp, draft-model, ngram")
    _err(["project", "--workload", "rl-zero-8b", "--drafter", "ngram"], "--acceptance-length")
    _err(["project", "--workload", "rl-zero-8b", "--drafter", "mtp", "--acceptance-length", "2"], "MTP")
    _err(["project", "--workload", "rl-zero-8b", "--gpus", "0"], "--gpus = 0")
    _err(["project", "--workload", "rl-llama-8b", "--model", "llama-3.1-70b", "--hardware", "h100-sxm"], "does not fit")
    _err(["project", "--workload", "rl-235b", "--gpus", "100"], "do not divide into replicas of 8")
    _err(["project", "--workload", "rl-zero-8b", "--k", "99"], "maximum")
    _err(["project", "--workload", "rl-zero-8b", "--calibration", "magic"], "allowed: auto, roofline, calibrated")
    _err(["iteration", "--model", "qwen3-8b", "--batch", "0", "--context", "10"], "--batch 0")


# ---- issue 18: --version, project --out / --set / --tp / batch flags, progress, tables not cut when piped
SMALL = ["project", "--workload", "rl-zero-8b", "--num-prompts-per-step", "4"]


def test_version():
    from rlsim import __version__

    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.stdout.strip() == f"rlsim {__version__}"


def test_project_out_json_and_csv(tmp_path):
    r = runner.invoke(app, SMALL + ["--out", str(tmp_path / "p.json")])
    assert r.exit_code == 0, r.output
    d = json.loads((tmp_path / "p.json").read_text())
    assert d["scenario"]["num_prompts_per_step"] == 4 and d["speedup"]["step"] > 1
    r = runner.invoke(app, SMALL + ["--out", str(tmp_path / "p.csv")])
    assert r.exit_code == 0, r.output
    import pandas as pd

    row = pd.read_csv(tmp_path / "p.csv").iloc[0]
    assert row["workload"] == "rl-zero-8b" and row["num_prompts_per_step"] == 4
    assert row["ar_step_s"] == pytest.approx(d["baseline"]["step_s"]) and row["speedup_step"] > 1
    r = runner.invoke(app, SMALL + ["--out", str(tmp_path / "p.txt")])
    assert r.exit_code == 2 and "unknown format '.txt'" in r.stderr


def test_project_set_tp_and_batch_flags():
    d = _json(SMALL + ["--tp", "2", "--num-generations-per-prompt", "8", "--max-new-tokens", "2048", "--set",
                       "kv_cache_dtype=fp8", "--set", "engine=vllm-fixed", "--json"])
    sc = d["scenario"]
    assert sc["generation_parallelism"]["tensor_parallel_size"] == 2 and sc["num_generations_per_prompt"] == 8
    assert sc["response_length"]["max_tokens"] == 2048 and sc["kv_cache_dtype"] == "fp8" and sc["engine"] == "vllm-fixed"
    d = _json(["project", "--workload", "rl-think-8b", "--num-prompts-per-step", "8", "--set", "split=24:8",
               "--set", "lag=1", "--json"])
    assert (d["scenario"]["gen_gpus_resolved"], d["scenario"]["train_gpus_resolved"]) == (24, 8)
    r = runner.invoke(app, SMALL + ["--set", "k=1,3"])
    assert r.exit_code == 2 and "rlsim sweep --set k=1,3" in r.stderr
    r = runner.invoke(app, SMALL + ["--k", "3", "--set", "k=5"])
    assert r.exit_code == 2 and "also given as a flag" in r.stderr


def test_tables_are_not_cut_when_piped():
    r = runner.invoke(app, SMALL)  # CliRunner's output is not a terminal
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert max(len(ln) for ln in lines) > 120  # rich's 80 columns would have wrapped the notes
    assert any(ln.startswith("engine vllm-0.17.1: vLLM 0.17.1 under NeMo-RL v0.6.0:") and "(docs/engine-profiles.md)" in ln
               for ln in lines)  # one note, one line


def test_progress_bar_only_on_a_terminal_and_after_a_delay(capsys):
    import time

    from rlsim.report.progress import StageProgress, progress_enabled

    assert not progress_enabled()  # pytest's stderr is not a terminal
    with StageProgress("x", total=2) as p:  # disabled: a no-op
        p.advance("one")
    with StageProgress("y", total=2, delay_s=0.01, enabled=True) as p:
        time.sleep(0.05)
        p.advance("one")
        p.advance("two")
    assert capsys.readouterr().out == ""  # never on stdout
