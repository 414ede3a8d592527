"""The ``rlsim`` command ends the process without Python's teardown after a simulation command (rlsim/cli/app.py):
every output is still complete, and the exit code is the command's."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(args, fast: bool):
    env = dict(os.environ, RLSIM_FAST_EXIT="1" if fast else "0", COLUMNS="120")
    return subprocess.run([sys.executable, "-c", "from rlsim.cli import main; main()", *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=300)


def test_fast_exit_keeps_every_output(tmp_path):
    outs = {}
    for fast in (True, False):
        path = tmp_path / f"fast{int(fast)}.json"
        r = _run(["project", "--workload", "rl-zero-8b", "--gpus", "8", "--num-prompts-per-step", "8", "--calibration",
                  "roofline", "--json", "--out", str(path)], fast)
        assert r.returncode == 0, r.stderr
        outs[fast] = (r.stdout, path.read_text())
        json.loads(r.stdout)  # the whole document reached the pipe
        json.loads(outs[fast][1])
    assert outs[True] == outs[False]


def test_fast_exit_keeps_the_exit_code():
    r = _run(["project", "--workload", "rl-zero-8b", "--k", "-1"], True)
    assert r.returncode == 2 and r.stderr.startswith("error: ")
