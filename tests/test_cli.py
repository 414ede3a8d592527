import json

from typer.testing import CliRunner

from rlsim.report.cli import app

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
