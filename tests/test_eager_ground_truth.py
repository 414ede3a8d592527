"""Eager (no CUDA graphs) ground truth on H200: calibration/h200/rollouts-eager/ (the harness with --no-graphs) and its
graphed twin rollouts-eager-graphed/ (the same 8 runs, same device call). The replay must price these runs eager
(enforce_eager) and keep its error where it was measured (docs/validation.md, "Eager (no CUDA graphs) ground truth on
H200"). The eager forward's host cost per kernel is fitted on two of the 8 runs (k = 0 at 16 and 64 sequences,
scripts/fit_eager_launch.py); the other 6 are held out. Pricing eager steps like graphed ones (no eager mechanism at
all) gives 61.3%, the bare-op launch cost 58.0%: both fail the bound."""

import numpy as np
import pytest

from rlsim.validation import measured

EAGER, GRAPHED = "h200-eager", "h200-eager-graphed"
# measured on the committed set: median |time error| 6.0% with the fitted eager-forward launch cost (58.0% with the
# bare torch launch of calibration/h200/overhead.csv mode eager); held-out runs within 21%
MEDIAN_ERR_BOUND = 0.08
HELD_OUT_MAX_BOUND = 0.25


@pytest.fixture(scope="module")
def pairs():
    return measured.eager_vs_graphed(EAGER)


def test_eager_set_is_found_and_replayed_eager():
    assert EAGER in measured.available_gpus() and GRAPHED in measured.available_gpus()
    assert measured.set_is_eager(EAGER) and not measured.set_is_eager(GRAPHED)
    assert measured.graphed_twin(EAGER) == GRAPHED
    runs, _ = measured.load_runs(EAGER)
    assert (runs["graph_iterations"] == 0).all() and (runs["cudagraph_max_tokens"] == 0).all()
    assert set(runs["k"]) == {0, 3} and {16, 512} <= set(runs["n_seqs"])
    assert "--no-graphs" in measured.set_meta(EAGER)["command"]


def test_eager_replay_error_does_not_regress(pairs):
    err = pairs["eager_err"]
    assert err.abs().median() <= MEDIAN_ERR_BOUND, err.abs().median()
    held_out = pairs[~pairs["run_id"].isin(["h200-short-N16-k0", "h200-short-N64-k0"])]
    assert len(held_out) == 6 and held_out["eager_err"].abs().max() <= HELD_OUT_MAX_BOUND, held_out[["run_id", "eager_err"]]
    # the iteration counts are the scheduler's, graphs or not
    df = measured.compare(EAGER)
    assert df["iter_err"].abs().median() < 0.03
    # the graphed twin stays inside the graphed sets' band
    assert pairs["graphed_err"].abs().median() < 0.05


def test_predicted_eager_is_slower_than_graphed_at_small_batch(pairs):
    small = pairs[pairs["N"] == 16]
    assert len(small) == 2
    # measured 3.2-3.5x; predicted 2.9-3.0x (host-bound: 442 kernels x the eager forward's cost per kernel)
    assert (small["pred_eager_s"] > 2.0 * small["pred_graphed_s"]).all(), small[["run_id", "pred_ratio"]]
    # never faster eager than graphed, and the measured ratio is larger at small batch than at large
    assert (pairs["pred_ratio"] >= 1.0 - 1e-9).all()
    r = pairs.set_index(["N", "k"])["meas_ratio"]
    assert r[(16, 0)] > r[(512, 0)] and r[(16, 3)] > r[(512, 3)]


def test_forcing_graphs_on_the_eager_set_is_faster():
    forced = measured.compare(EAGER, enforce_eager=False)
    asm = measured.compare(EAGER)
    assert np.all(forced["pred_time_s"].to_numpy() <= asm["pred_time_s"].to_numpy() + 1e-9)
    assert forced["time_err"].abs().median() > MEDIAN_ERR_BOUND
