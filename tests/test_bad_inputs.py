"""Every bad input listed in scripts/gen_errors_doc.py: exit code 2, one ``error:`` line naming what is
wrong and what is allowed, never a traceback; docs/errors.md is what the code prints now. A few go
through a real subprocess (the installed entry point), the rest through typer's CliRunner."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_errors_doc", REPO / "scripts" / "gen_errors_doc.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gen_errors_doc"] = mod
    spec.loader.exec_module(mod)
    return mod


G = _load_generator()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return G.run_all(tmp_path_factory.mktemp("bad-inputs"))


def _case_id(i_case):
    i, c = i_case
    return f"{i:03d}-" + "".join(ch if ch.isalnum() else "-" for ch in c.what)[:50]


@pytest.mark.parametrize("i", range(len(G.CASES)), ids=[_case_id(x) for x in enumerate(G.CASES)])
def test_bad_input_gives_one_clear_line_and_exit_2(results, i):
    case, outcome, message = results[i]
    assert "Traceback" not in outcome.stderr + outcome.stdout, outcome.stderr
    assert outcome.exit_code == 2, (outcome.exit_code, outcome.stderr, outcome.stdout[-500:])
    lines = [ln for ln in outcome.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    if case.api is None:
        assert lines[0].startswith("error: "), lines[0]
        assert outcome.stdout.strip() == "", outcome.stdout[-500:]  # nothing half-printed before the error
    for needle in case.expect:
        assert needle in message, (needle, message)


def test_errors_doc_is_current(results):
    text = G.render(results)
    assert G.DOC.exists(), "docs/errors.md missing: run python scripts/gen_errors_doc.py"
    assert G.DOC.read_text() == text, "docs/errors.md is stale: run python scripts/gen_errors_doc.py"


def test_cases_cover_every_input_kind():
    sections = {c.section.split(" (")[0] for c in G.CASES}
    for kind in ("Command line: usage", "Command line: values", "Impossible configurations", "Workload YAML",
                 "Model YAML", "Hardware YAML", "Draft-head YAML", "Files", "Python API",
                 # issue 22: no input that crashes, hangs or lies
                 "Output paths", "Acceptance traces", "NeMo-RL recipes", "Sweep grid files", "Upper bounds on counts that drive work",
                 "Conflicting or inapplicable flags", "Physical sanity", "Python API: wrong types", "Ray executor",
                 "`rlsim plot --from` results files"):
        assert kind in sections, kind
    assert len(G.CASES) >= 300


# ------------------------------------------------------------------ the real entry point, in a subprocess
SUBPROCESS_CASES = [
    (["project", "--model", "gpt-9"], "unknown model 'gpt-9'"),
    (["project", "--workload", "rl-zero-8b", "--gpus", "abc"], "Invalid value for '--gpus'"),
    (["project", "--workload", "rl-zero-8b", "--seed", "-1"], "--seed = -1"),
    (["projekt"], "No such command 'projekt'"),
    (["project", "--workload", "rl-235b", "--gpus", "100"], "do not divide into replicas of 8"),
    (["project", "--workload", "rl-zero-8b", "--lag", "1000000"], "--lag = 1000000; allowed: 0..8"),
    (["sweep", "--workload", "rl-zero-8b", "--k", "1..1000000000"], "has 1,000,000,000 values"),
    (["sweep", "--workload", "rl-zero-8b", "--k", "1", "--out", "/dev/full"], "not a regular file"),
]


@pytest.mark.parametrize("args,needle", SUBPROCESS_CASES, ids=[" ".join(a[:3]) for a, _ in SUBPROCESS_CASES])
def test_subprocess_exit_2_one_line(args, needle):
    env = dict(os.environ, COLUMNS="80")
    cmd = [sys.executable, "-c", "from rlsim.cli import main; main()", *args]  # what the `rlsim` script runs
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.stderr


def test_no_args_prints_help():
    from typer.testing import CliRunner

    from rlsim.cli import app

    r = CliRunner().invoke(app, [], prog_name="rlsim")
    assert "Usage" in r.stdout and "project" in r.stdout
    assert "Traceback" not in r.output


def test_seeds_flag_reports_spread():
    """`--seeds N` reports mean and min/max of step and speedups (spread is reported, not hidden)."""
    import json

    from typer.testing import CliRunner

    from rlsim.cli import app

    r = CliRunner().invoke(app, ["project", "--workload", "rl-zero-8b", "--seeds", "3", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    sp = d["seed_spread"]
    assert sp["seeds"] == [0, 1, 2]
    st = sp["metrics"]["speedup_step"]
    assert st["min"] <= st["mean"] <= st["max"] and st["max"] > st["min"]
    assert sp["metrics"]["ar_step_s"]["values"][0] == d["baseline"]["step_s"]  # seed 0 is the headline run
    t = CliRunner().invoke(app, ["project", "--workload", "rl-zero-8b", "--seeds", "2"])
    assert t.exit_code == 0 and "seed spread over 2 seeds" in t.stdout and "speedup_step" in t.stdout
