"""Calibration: a fresh fit on the committed data must not regress the committed held-out report,
and the calibrated timer must be used by default where tables exist."""

import json

import numpy as np
import pytest

from rlsim.catalog import load_hardware
from rlsim.catalog.loader import catalog_dir
from rlsim.costmodel.calib_timer import CalibratedTimer, calibrated_timer
from rlsim.validation.calibration_report import report
from rlsim.costmodel.select import get_timer

GPUS = [p.name for p in sorted(catalog_dir("calibration").iterdir()) if (p / "report.json").is_file()]


@pytest.mark.parametrize("gpu", GPUS)
def test_fresh_fit_does_not_regress_committed_report(gpu):
    d = catalog_dir("calibration") / gpu
    committed = json.loads((d / "report.json").read_text())["op_classes"]
    fresh = report(d)["op_classes"]
    for op, c in committed.items():
        f = fresh[op]
        assert f["median"] <= c["median"] * 1.02 + 1e-4, (op, f, c)
        assert f["p90"] <= c["p90"] * 1.02 + 1e-4, (op, f, c)


def test_default_timer_is_calibrated_where_tables_exist():
    hw = load_hardware("h100-sxm")
    t = get_timer(hw, "auto")
    assert isinstance(t, CalibratedTimer) and "calibrated on H100" in t.describe()
    assert not isinstance(get_timer(hw, "roofline"), CalibratedTimer)


def test_calibrated_gemm_reproduces_measured_points():
    hw = load_hardware("h100-sxm")
    t = calibrated_timer(hw)
    for (dt, n, k), (m, y) in list(t.tables.gemm.items())[:20]:
        # measured points are reproduced, except where a noisy point dips below a smaller m (made monotone)
        np.testing.assert_allclose(t.gemm_s(m, n, k, dt), np.maximum.accumulate(y), rtol=1e-9)


def test_transfer_to_unmeasured_gpu_scales_with_peaks():
    src = load_hardware("h100-sxm")
    t_src = calibrated_timer(src)
    faster = src.model_copy(update={"name": "h100-fast", "hbm_bandwidth_bytes_per_s": 2 * src.hbm_bandwidth_bytes_per_s,
                                    "peak_flops": {k: 2 * v for k, v in src.peak_flops.items()}})
    t_dst = CalibratedTimer(faster, t_src.tables, src)
    assert "projected from H100" in t_dst.describe()
    big = float(t_src.gemm_s(8192, 8192, 8192)[0] if np.ndim(t_src.gemm_s(8192, 8192, 8192)) else t_src.gemm_s(8192, 8192, 8192))
    big2 = float(np.asarray(t_dst.gemm_s(8192, 8192, 8192)).ravel()[0])
    assert big2 == pytest.approx(big / 2, rel=0.02)  # compute-bound: twice the peak, half the time
    tiny = float(np.asarray(t_src.gemm_s(1, 128, 128)).ravel()[0])
    tiny2 = float(np.asarray(t_dst.gemm_s(1, 128, 128)).ravel()[0])
    assert tiny2 > 0.75 * tiny  # latency-bound: barely faster


def test_vllm_backend_explains_itself_when_absent():
    from typer.testing import CliRunner

    from rlsim.calibration import vllm_backend
    from rlsim.cli import app

    ok, why = vllm_backend.vllm_available()
    if ok:
        import pytest

        pytest.skip("vLLM is installed here: the absent-path message is not reachable")
    assert "vLLM is not installed" in why
    r = CliRunner().invoke(app, ["calibrate", "--backend", "vllm", "--quick"])
    assert r.exit_code == 2 and "vLLM is not installed" in r.output
    assert len(list(vllm_backend.grid_points(True))) == 4


def test_corrupt_calibration_is_a_clear_error(tmp_path):
    import shutil

    from rlsim.costmodel.calib_fit import fit_tables
    from rlsim.errors import CalibrationDataError

    src = catalog_dir("calibration") / "h100"
    d = tmp_path / "h100"
    shutil.copytree(src, d, ignore=shutil.ignore_patterns("rollouts"))
    text = (d / "gemm.csv").read_text().splitlines()
    (d / "gemm.csv").write_text("\n".join(text[:50] + [text[50][:20]]) + "\n")  # truncated last row
    with pytest.raises(CalibrationDataError, match="gemm.csv"):
        fit_tables(d)
    shutil.copy(src / "gemm.csv", d / "gemm.csv")
    meta = json.loads((d / "meta.json").read_text())
    meta["gpu"] = "NVIDIA A100"
    (d / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CalibrationDataError, match="wrong GPU"):
        fit_tables(d)


def test_h100_uses_the_h200_collectives_of_the_same_nvlink_generation():
    # no multi-GPU H100 was lent: its profile borrows calibration/h200's collectives (same NVLink 4),
    # as measured (no bandwidth scaling, measured latency); GB200 (NVLink 5) scales them and says so
    import numpy as np

    from rlsim.catalog import load_hardware
    from rlsim.costmodel.calib_timer import calibrated_timer

    h100, h200, gb = (load_hardware(n) for n in ("h100-sxm", "h200-sxm", "gb200-nvl72"))
    t100, t200, tgb = (calibrated_timer(h, required=True) for h in (h100, h200, gb))
    b = np.array([64 * 1024.0, 2.0 ** 20, 16 * 2.0 ** 20])
    a100 = t100.collective_s("all_reduce", b, 4, h100.nvlink_bandwidth_bytes_per_s)
    a200 = t200.collective_s("all_reduce", b, 4, h200.nvlink_bandwidth_bytes_per_s)
    assert np.allclose(a100, a200) and "collectives from calibration/h200" in t100.label
    agb = tgb.collective_s("all_reduce", b, 4, gb.nvlink_bandwidth_bytes_per_s)
    assert agb[-1] < 0.7 * a200[-1]  # twice the NVLink bandwidth on a bandwidth-bound message
