"""CPU smoke test of the eager-vs-graph single-step microbenchmark (rlsim/calibration/mb_eager_step.py): tiny model,
torch reference kernels, a few seconds. On a CPU only the eager rows exist (no graphs, no separate device)."""
from __future__ import annotations

import csv
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("numpy")
pytest.importorskip("yaml")

from rlsim.calibration import mb_eager_step as mb  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_step_is_the_harness_step():
    sb = mb.StepBench(tiny=True, device="cpu", context=40, max_B=3, max_q=4)
    for B in (1, 3):
        assert mb.same_as_harness_step(sb, B)
    sb.set_batch(3, 4)
    out = sb.step(3, 4)
    assert out.shape == (3 * 4 + 3 * 3,)  # sampled tokens of every row + accept flags of the 3 drafts
    assert int(out[:12].min()) >= 0 and int(out[:12].max()) < sb.tgt.vocab
    assert set(out[12:].tolist()) <= {0, 1}


def test_main_writes_csv_and_meta(tmp_path):
    meta = mb.main(["--device", "cpu", "--tiny", "--out", str(tmp_path), "--batches", "1,2", "--qs", "1,4",
                    "--context", "32", "--repeats", "3", "--steps", "2"])
    assert meta["completed"] == [[1, 1], [1, 4], [2, 1], [2, 4]] and not meta["skipped"]
    assert meta["same_as_harness_step"] is True
    rows = list(csv.DictReader(open(tmp_path / "eager_step.csv")))
    assert rows and set(rows[0]) == set(mb.COLUMNS)
    assert {r["mode"] for r in rows} == {"eager_wall", "eager_host"}  # CPU: no graph, no device events
    assert len(rows) == 4 * 2
    for r in rows:
        assert float(r["time_s"]) > 0 and int(r["tokens"]) == int(r["B"]) * int(r["q"])
        assert float(r["p25_s"]) <= float(r["time_s"]) <= float(r["p75_s"])
    m = json.loads((tmp_path / "meta_eager_step.json").read_text())
    assert m["context"] == 32 and m["model"] == "tiny" and "command" in m and "date" in m and "torch" in m
    assert "results" not in m  # calib_tables.missing_points reads a 'results' key from meta*.json


def test_budget_skips_points(tmp_path):
    meta = mb.main(["--device", "cpu", "--tiny", "--out", str(tmp_path), "--batches", "1,2", "--qs", "1",
                    "--context", "16", "--repeats", "2", "--steps", "1", "--budget-s", "0"])
    assert meta["completed"] == [] and meta["skipped"] == [[1, 1], [2, 1]]
    assert list(csv.DictReader(open(tmp_path / "eager_step.csv"))) == []
