"""Eager (no CUDA graphs) ground truth on H200: calibration/h200/rollouts-eager/ (the harness with --no-graphs) and its
graphed twin rollouts-eager-graphed/ (the same 8 runs, same device call). The replay must price these runs eager
(enforce_eager) and keep its error where it was measured (docs/validation.md, "Eager (no CUDA graphs) ground truth on
H200"). The bound is the committed error plus about one point: pricing eager steps like graphed ones (no eager
mechanism at all) gives 61.3% and fails it."""

import numpy as np
import pytest

from rlsim.validation import measured

EAGER, GRAPHED = "h200-eager", "h200-eager-graphed"
# measured on the committed set: median |time error| 58.0% (every run predicted too fast: the harness's per-launch
# host cost in eager steps is ~5-8x the bare torch launch the calibration measured)
MEDIAN_ERR_BOUND = 0.59


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
    # the iteration counts are the scheduler's, graphs or not
    df = measured.compare(EAGER)
    assert df["iter_err"].abs().median() < 0.03
    # the graphed twin stays inside the graphed sets' band
    assert pairs["graphed_err"].abs().median() < 0.05


def test_predicted_eager_is_slower_than_graphed_at_small_batch(pairs):
    small = pairs[pairs["N"] == 16]
    assert len(small) == 2
    assert (small["pred_eager_s"] > 1.08 * small["pred_graphed_s"]).all(), small[["run_id", "pred_ratio"]]
    # never faster eager than graphed, and the measured ratio is larger at small batch than at large
    assert (pairs["pred_ratio"] >= 1.0 - 1e-9).all()
    r = pairs.set_index(["N", "k"])["meas_ratio"]
    assert r[(16, 0)] > r[(512, 0)] and r[(16, 3)] > r[(512, 3)]


def test_forcing_graphs_on_the_eager_set_is_faster():
    forced = measured.compare(EAGER, enforce_eager=False)
    asm = measured.compare(EAGER)
    assert np.all(forced["pred_time_s"].to_numpy() <= asm["pred_time_s"].to_numpy() + 1e-9)
    assert forced["time_err"].abs().median() > MEDIAN_ERR_BOUND
