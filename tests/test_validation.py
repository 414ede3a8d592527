"""Fidelity regression tests: recompute the predictions from committed measurements.

Targets (issue texts): ground-truth rollouts - generation time error median <= 5% and max <= 10%,
speculative speedup error <= 5%; the study's Table 1 - spec k=3 generation and step within 10%.
Where a target is not met today, the committed error is the bar (it may not grow), and the miss is
reported in the closing notes rather than hidden. Errors are bounded with their sign: a prediction 34% too
fast must not pass by becoming 36% too slow, so a signed error must stay within 2 points of the committed
one unless it lies inside the target band.
"""

import json
from pathlib import Path

import pandas as pd
import pytest

from rlsim.validation import measured

ROOT = Path(__file__).resolve().parents[1]
TOL = 0.01
SIGNED_TOL = 0.02


def within_committed_or_target(err: float, committed: float, target: float) -> bool:
    """The signed error stays within SIGNED_TOL of the committed signed error, or inside +-target."""
    return committed - SIGNED_TOL <= err <= committed + SIGNED_TOL or abs(err) <= target


def test_signed_bound_refuses_a_sign_flip():
    """The bar itself: -34% committed, +36% now fails (the old |err| <= |committed| + 2% let it pass)."""
    assert not within_committed_or_target(0.36, -0.34, 0.10)
    assert within_committed_or_target(-0.355, -0.34, 0.10)
    assert within_committed_or_target(0.09, -0.34, 0.10)
    assert not within_committed_or_target(-0.37, -0.34, 0.10)


@pytest.mark.parametrize("gpu", measured.available_gpus())
def test_ground_truth_rollouts_do_not_regress(gpu):
    committed = pd.read_csv(ROOT / "validation" / f"measured_{gpu}.csv")
    df = measured.compare(gpu)
    e, c = df["time_err"].abs(), committed["time_err"].abs()
    assert e.median() <= max(0.05, c.median() + TOL)
    assert e.max() <= max(0.10, c.max() + TOL)
    s, cs = df["speedup_err"].abs().dropna(), committed["speedup_err"].abs().dropna()
    assert s.median() <= max(0.05, cs.median() + TOL)
    assert s.max() <= max(0.05, cs.max() + TOL)
    # the typical error keeps its sign (too fast stays too fast unless it enters the target band)
    for col, target in (("time_err", 0.05), ("speedup_err", 0.05)):
        got, was = df[col].dropna().median(), committed[col].dropna().median()
        assert within_committed_or_target(got, was, target), (col, got, was)
    # the engine reproduces the measured iteration counts closely (acceptance sampling noise only)
    assert df["iter_err"].abs().median() < 0.03


def test_table1_does_not_regress():
    from rlsim.validation import paper

    committed = json.loads((ROOT / "validation" / "paper.json").read_text())
    for wl in paper.WORKLOADS:
        r = committed[wl]["rel_err"]
        setup_pred = paper.predict_table_rows(wl)
        pub = paper.TABLE1[wl]
        for key in ("generation", "step"):
            err = setup_pred["spec"][key] / pub["spec"][key] - 1
            assert within_committed_or_target(err, r[f"spec_{key}"], paper.TARGET_REL_ERR), (wl, key, err, r[f"spec_{key}"])
        # the fitted AR baseline stays fitted
        assert abs(setup_pred["ar"]["generation"] / pub["ar"]["generation"] - 1) < 0.02
