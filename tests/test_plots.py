"""Plots: every figure renders from a real (small) sweep, to PNG and SVG, from Python and the CLI."""

import importlib.util

import pytest
from typer.testing import CliRunner

from rlsim import project_scenario, sweep
from rlsim.errors import ConfigurationError
from rlsim.report import plots
from rlsim.cli import app

SMALL = dict(workload="rl-zero-8b", num_prompts_per_step=4)
runner = CliRunner()


@pytest.fixture(scope="module")
def kq(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return sweep(SMALL, k=[1, 3], draft_quality=[0.6, 0.9], seeds=2, executor="serial", cache_dir=cache)


def _png_ok(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_speedup_vs_k_lines_and_error_bars(kq, tmp_path):
    fig = plots.speedup_vs_k(kq)
    axes = fig.get_axes()
    assert len(axes) == 2  # rollout and end-to-end
    assert [t.get_text() for t in axes[1].get_legend().get_texts()] == ["quality 0.6", "quality 0.9"]
    assert "rollout" in axes[0].get_title() and "end-to-end" in axes[1].get_title()
    _png_ok(plots.save(fig, tmp_path / "k.png"))
    assert (plots.save(fig, tmp_path / "k.svg")).read_text().lstrip().startswith("<?xml")


def test_heatmap_annotates_every_cell(kq, tmp_path):
    fig = plots.heatmap(kq, metrics="speedup_step")
    ax = fig.get_axes()[0]
    cells = [t.get_text() for t in ax.texts]
    assert len(cells) == 4 and all(float(c) > 1 for c in cells)
    assert fig.get_axes()[1].get_ylabel() == "end-to-end step speedup"  # the colour bar is labelled
    bold = [t.get_text() for t in ax.texts if t.get_fontweight() == "bold"]
    assert len(bold) == 2  # one best k per draft quality, marked
    for q in (0.6, 0.9):
        g = kq[kq.draft_quality == q]
        assert f"{g['speedup_step'].max():.2f}" in bold
    assert [p_.get_label() for p_ in ax.patches][:1] == ["best k per row"]
    assert "2 seeds per point" in fig._suptitle.get_text()
    _png_ok(plots.save(fig, tmp_path / "h.png"))


def test_phase_bars_from_sweep_and_results(kq, tmp_path):
    _png_ok(plots.save(plots.phase_bars(kq[kq.draft_quality == 0.9]), tmp_path / "p.png"))
    res = [project_scenario(**SMALL, k=k) for k in (1, 3)]
    fig = plots.phase_bars(res)
    labels = [t.get_text() for t in fig.get_axes()[0].get_xticklabels()]
    assert labels == ["rl-zero-8b k=1", "rl-zero-8b k=3"]
    _png_ok(plots.save(fig, tmp_path / "p2.png"))


def test_speedup_vs_gpus(tmp_path):
    df = sweep(SMALL, gpus=[8, 16], k=[1, 3], executor="serial", use_cache=False)
    fig = plots.speedup_vs_gpus(df)
    ax_step = fig.get_axes()[0]  # step time panel: AR and speculative seconds, the speedup on a twin axis
    assert ax_step.get_ylabel() == "step time (s)" and "speedup" in fig.get_axes()[2].get_ylabel()  # its twin
    labels = fig.get_axes()[1].get_legend().get_texts()  # the last panel carries the legend
    assert [t.get_text() for t in labels][:4] == ["autoregressive (k 1)", "speculative (k 1)", "autoregressive (k 3)",
                                                  "speculative (k 3)"]
    ar = [ln for ln in ax_step.get_lines() if ln.get_linestyle() == "-" and len(ln.get_xdata()) == 2]
    assert sorted(ar[0].get_xdata()) == [8, 16] and all(y > 0 for y in ar[0].get_ydata())  # absolute seconds
    assert "32 x" not in fig._suptitle.get_text() and "gb200-nvl72" in fig._suptitle.get_text()  # GPUs are the x axis
    assert "engine vllm-0.17.1" in fig._suptitle.get_text()
    old = plots.speedup_vs_gpus(df, absolute=False)  # the ratio-only form is still there
    assert old.get_axes()[1].get_legend_handles_labels()[1] == ["k 1", "k 3"]
    _png_ok(plots.save(fig, tmp_path / "g.png"))


def test_speedup_vs_lag(tmp_path):
    df = sweep(workload="rl-think-8b", num_prompts_per_step=4, lag=[0, 1], executor="serial", use_cache=False)
    fig = plots.speedup_vs_lag(df)
    ax = fig.get_axes()[0]
    assert ax.get_ylabel() == "step time (s)"
    # the AR step's absolute time, which a lag shortens, is drawn (not only the spec / AR ratio)
    ar = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-" and len(ln.get_xdata()) == 2][0]
    assert list(ar.get_ydata()) == pytest.approx(df.sort_values("lag")["ar_step_s"].tolist())
    assert "seed" in fig._suptitle.get_text() and "qwen3-8b" in fig._suptitle.get_text()
    _png_ok(plots.save(fig, tmp_path / "lag.png"))
    _png_ok(plots.save(plots.phase_bars(df, by="lag"), tmp_path / "lagbars.png"))


def test_bad_inputs(kq, tmp_path):
    with pytest.raises(ConfigurationError, match="no column"):
        plots.speedup_vs(kq, "gen_gpuz")
    with pytest.raises(ConfigurationError, match="unknown format"):
        plots.save(plots.heatmap(kq), tmp_path / "x.jpg")


def test_cli_plot_from_results_and_from_flags(kq, tmp_path):
    res = tmp_path / "res.csv"
    kq.to_csv(res, index=False)
    for cmd in ("speedup-vs-k", "heatmap", "phases"):
        out = tmp_path / f"{cmd}.png"
        r = runner.invoke(app, ["plot", cmd, "--from", str(res), "--out", str(out)])
        assert r.exit_code == 0, r.output
        _png_ok(out)
    out = tmp_path / "flags.svg"
    r = runner.invoke(app, ["plot", "speedup-vs-k", "--workload", "rl-zero-8b", "--set", "num_prompts_per_step=4",
                            "--k", "1,2", "--draft-quality", "0.7", "--executor", "serial", "--no-cache", "--no-progress",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_text().lstrip().startswith("<?xml")
    r = runner.invoke(app, ["plot", "heatmap", "--from", str(tmp_path / "missing.csv")])
    assert r.exit_code == 2 and "no such results file" in r.output


def test_timeline_says_what_it_draws_and_lists_only_what_appears():
    from rlsim.report.timeline import timeline_figure
    from rlsim.scenario import build_scenario

    sc = build_scenario(workload="rl-think-8b", num_prompts_per_step=4, gen_gpus=8, train_gpus=8, lag=1,
                        in_flight_weight_updates=True)
    fig = timeline_figure(sc, n_replicas=3, n_steps=2)
    ax = fig.get_axes()[0]
    title = ax.get_title()
    assert "3 of 8 generation replicas drawn" in title and "gb200-nvl72" in title and "engine vllm-0.17.1" in title
    assert "8 generation + 8 training GPUs" in title and "seed 0" in title
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "generating" in labels and "refit" in labels
    assert "drain before refit" not in labels  # in-flight weight updates: no drain is drawn, so none is listed
