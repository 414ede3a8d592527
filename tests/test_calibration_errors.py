"""Corrupt or mismatched calibration data is detected with a clear message (never a traceback, never
a silent fall-back to the roofline), and extrapolation beyond the measured grid is flagged in the output.

Each test copies the committed calibration tables (calibration/h100) into a temporary catalog root,
damages one thing, and points the catalog at it with ``$RLSIM_CATALOG`` (hardware profiles and
workloads still come from the source tree: the lookup is per folder).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "calibration" / "h100"

try:  # the calibrated timer and its loader (rlsim/costmodel/calib_timer.py, calib_cache.py)
    from rlsim.costmodel import calib_cache, calib_timer
    from rlsim.errors import CalibrationDataError

    HAVE = SRC.is_dir()
except ImportError:  # pragma: no cover
    HAVE = False

pytestmark = pytest.mark.skipif(not HAVE, reason="calibrated timer (rlsim/costmodel/calib_timer.py) or "
                                                  "calibration/h100 not in this build")


def _clear_caches():
    from rlsim.catalog import loader

    from rlsim.costmodel import engine_tables

    for name in ("list_models", "load_model", "load_draft", "load_hardware", "load_workload", "load_engine"):
        getattr(loader, name).cache_clear()
    calib_cache.load_tables.cache_clear()
    engine_tables.load_engine_tables.cache_clear()
    engine_tables.load_host_model.cache_clear()


@pytest.fixture
def calib(tmp_path, monkeypatch):
    """A copy of calibration/h100 under a temporary catalog root; yields its folder."""
    root = tmp_path / "catalog"
    d = root / "calibration" / "h100"
    d.mkdir(parents=True)
    for p in SRC.iterdir():
        if p.is_file() and (p.suffix in (".csv", ".json")):
            shutil.copy(p, d / p.name)
    # the H200 folder (the H100's collectives and the default engine's mechanism tables) and the host-work fit,
    # unchanged
    (root / "calibration" / "h200").mkdir()
    for p in (SRC.parent / "h200").iterdir():
        if p.is_file() and (p.suffix in (".csv", ".json")):
            shutil.copy(p, root / "calibration" / "h200" / p.name)
    shutil.copytree(SRC.parent / "host", root / "calibration" / "host")
    monkeypatch.setenv("RLSIM_CATALOG", str(root))
    monkeypatch.setenv("RLSIM_CACHE_DIR", str(tmp_path / "cache"))  # never read or write the user's cache
    _clear_caches()
    yield d
    _clear_caches()


def _load():
    return calib_cache.load_tables("h100")


def _timer(required=True):
    from rlsim.catalog import load_hardware

    return calib_timer.calibrated_timer(load_hardware("h100-sxm"), required=required)


def _error(match: str | None = None) -> str:
    with pytest.raises(CalibrationDataError) as e:
        _load()
    msg = str(e.value)
    assert "\n" not in msg, msg
    if match:
        assert match in msg, msg
    return msg


def _cli(args):
    from typer.testing import CliRunner

    from rlsim.cli import app

    return CliRunner().invoke(app, args, prog_name="rlsim")


# ------------------------------------------------------------------ sanity: the untouched copy loads
def test_pristine_copy_loads(calib):
    t = _load()
    assert t.gpu == "h100" and t.gemm


def test_pristine_copy_is_complete(calib):
    assert _load().incomplete == []


def test_holes_in_a_table_are_reported_not_hidden(calib):
    # a run stopped by its budget: every other MoE point missing, yet the file is well formed
    p = calib / "moe.csv"
    lines = p.read_text().splitlines()
    p.write_text("\n".join(lines[:1] + lines[1::2]) + "\n")
    t = _load()
    assert t.incomplete == [f"moe.csv: {len(lines[1::2])} of {len(lines) - 1} planned points"]
    timer = _timer()
    assert any("partial calibration (moe.csv" in e for e in timer.extrapolated)
    r = _cli(["calibrate", "report", "--gpu", "h100"])
    assert r.exit_code == 0 and "partial calibration: moe.csv" in r.output


# ------------------------------------------------------------------ truncated and malformed files

def test_truncated_csv_mid_row(calib):
    p = calib / "gemm.csv"
    text = p.read_text()
    p.write_text(text[: len(text) // 2].rsplit(",", 3)[0])  # cut inside a row
    msg = _error("gemm.csv")
    assert "truncated" in msg or "incomplete" in msg or "cannot parse" in msg


def test_csv_cut_to_header_only(calib):
    p = calib / "attention.csv"
    p.write_text(p.read_text().splitlines()[0] + "\n")
    _error("attention.csv: no rows")


def test_empty_csv_file(calib):
    (calib / "moe.csv").write_text("")
    _error("moe.csv")


def test_missing_column(calib):
    p = calib / "sampling.csv"
    lines = p.read_text().splitlines()
    cols = lines[0].split(",")
    drop = cols.index("vocab")
    p.write_text("\n".join(",".join(x for i, x in enumerate(ln.split(",")) if i != drop) for ln in lines) + "\n")
    _error("missing columns ['vocab']")


@pytest.mark.parametrize("col", ["time_s", "tokens"])
def test_non_numeric_value(calib, col):
    p = calib / "elementwise.csv"
    lines = p.read_text().splitlines()
    cols = lines[0].split(",")
    j = cols.index(col)
    row = lines[3].split(",")
    row[j] = "fast"
    lines[3] = ",".join(row)
    p.write_text("\n".join(lines) + "\n")
    _error("elementwise.csv")


def test_non_positive_time(calib):
    p = calib / "gemm.csv"
    lines = p.read_text().splitlines()
    j = lines[0].split(",").index("time_s")
    row = lines[5].split(",")
    row[j] = "-1e-6"
    lines[5] = ",".join(row)
    p.write_text("\n".join(lines) + "\n")
    _error("non-positive time_s")


def test_infinite_time(calib):
    p = calib / "gemm.csv"
    lines = p.read_text().splitlines()
    j = lines[0].split(",").index("time_s")
    row = lines[5].split(",")
    row[j] = "inf"
    lines[5] = ",".join(row)
    p.write_text("\n".join(lines) + "\n")
    _error("gemm.csv")


def test_meta_not_json(calib):
    (calib / "meta.json").write_text("{ gpu: H100")
    _error("meta.json: not valid JSON")


def test_missing_meta(calib):
    (calib / "meta.json").unlink()
    _error("no meta.json")


# ------------------------------------------------------------------ wrong GPU
def test_meta_says_another_gpu(calib):
    meta = json.loads((calib / "meta.json").read_text())
    meta["gpu"] = "NVIDIA H200"
    (calib / "meta.json").write_text(json.dumps(meta))
    _error("wrong GPU")


def test_rows_from_another_gpu(calib):
    p = calib / "gemm.csv"
    lines = p.read_text().splitlines()
    lines[7] = lines[7].replace("NVIDIA H100 80GB HBM3", "NVIDIA H200", 1)
    p.write_text("\n".join(lines) + "\n")
    _error("mixed GPUs")


def test_hardware_profile_points_to_missing_calibration_folder(calib):
    shutil.rmtree(calib)
    with pytest.raises(CalibrationDataError, match="no calibration folder 'h100'"):
        _load()


# ------------------------------------------------------------------ missing grid points
def test_missing_required_table(calib):
    (calib / "moe.csv").unlink()
    _error("missing moe.csv")


def test_attention_phase_missing(calib):
    p = calib / "attention.csv"
    lines = p.read_text().splitlines()
    j = lines[0].split(",").index("phase")
    keep = [lines[0]] + [ln for ln in lines[1:] if ln.split(",")[j] != "prefill"]
    p.write_text("\n".join(keep) + "\n")
    _error("no 'prefill' rows")


def test_gemm_without_any_shape(calib):
    p = calib / "gemm.csv"
    p.write_text(p.read_text().splitlines()[0] + "\n")
    _error("gemm.csv")


# ------------------------------------------------------------------ broken tables are never silently ignored
def test_auto_does_not_fall_back_to_roofline_when_tables_are_broken(calib):
    (calib / "gemm.csv").write_text("gpu,dtype\n")
    with pytest.raises(CalibrationDataError):
        _timer(required=False)


def test_cli_broken_tables_exit_2_one_line(calib):
    (calib / "gemm.csv").write_text("gpu,dtype\n")
    for cal in ("auto", "calibrated"):
        r = _cli(["iteration", "--model", "qwen3-8b", "--hardware", "h100-sxm", "--batch", "8", "--context", "512",
                  "--calibration", cal])
        assert r.exit_code == 2, r.output
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and "gemm.csv" in lines[0], r.stderr
        assert "Traceback" not in r.output


# ------------------------------------------------------------------ extrapolation is flagged
def test_extrapolation_beyond_grid_is_flagged_in_output(calib):
    """Keep only small-m GEMM rows: a projection then runs GEMMs beyond the grid, and says so."""
    p = calib / "gemm.csv"
    lines = p.read_text().splitlines()
    j = lines[0].split(",").index("m")
    p.write_text("\n".join([lines[0]] + [ln for ln in lines[1:] if int(float(ln.split(",")[j])) <= 64]) + "\n")
    from rlsim.api import project_scenario

    r = project_scenario(workload="rl-zero-8b", hardware="h100-sxm", calibration="calibrated",
                         num_prompts_per_step=4, num_generations_per_prompt=4, max_new_tokens=256)
    flagged = [n for n in r.notes if "extrapolated beyond the measured calibration grid" in n]
    assert flagged and "gemm m > 64" in flagged[0], r.notes
    out = _cli(["project", "--workload", "rl-zero-8b", "--hardware", "h100-sxm", "--calibration", "calibrated"])
    assert out.exit_code == 0, out.output
    assert "extrapolated beyond the measured calibration grid" in " ".join(out.stdout.split())
    d = json.loads(_cli(["project", "--workload", "rl-zero-8b", "--hardware", "h100-sxm", "--calibration",
                         "calibrated", "--json"]).stdout)
    assert any("extrapolated" in n for n in d["notes"])


def test_no_extrapolation_note_inside_the_grid(calib):
    from rlsim.api import project_scenario

    # the kernel tables' grid only: the engine's mechanism tables (calibration/h200/engine.csv) are not in this
    # catalog copy, so the ideal engine
    r = project_scenario(workload="rl-zero-8b", hardware="h100-sxm", calibration="calibrated", engine="ideal",
                         num_prompts_per_step=2, num_generations_per_prompt=2, max_new_tokens=64)
    assert "calibration/h100" in r.calibration
    assert not [n for n in r.notes if "extrapolated" in n], r.notes
