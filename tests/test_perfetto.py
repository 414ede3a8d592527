"""`rlsim timeline --format perfetto`: a Chrome trace-event JSON that ui.perfetto.dev and chrome://tracing open,
checked against the trace-event format's rules (rlsim.report.perfetto.check_trace, tested here too)."""

import copy
import json

import pytest
from typer.testing import CliRunner

from rlsim.cli import app
from rlsim.report.perfetto import check_trace, summarize, timeline_trace
from rlsim.scenario import build_scenario

runner = CliRunner()


@pytest.fixture(scope="module")
def trace():
    sc = build_scenario(workload="rl-think-8b", num_prompts_per_step=4, gen_gpus=8, train_gpus=8, lag=1)
    return timeline_trace(sc, n_replicas=3, n_steps=2)


def test_trace_follows_the_trace_event_format(trace):
    assert check_trace(trace) == []
    json.loads(json.dumps(trace, allow_nan=False))  # strict JSON
    ev = trace["traceEvents"]
    assert {e["ph"] for e in ev} == {"M", "X", "b", "e"}
    for e in ev:
        assert {"ph", "ts", "pid", "tid", "name"} <= set(e)
        if e["ph"] == "X":
            assert e["dur"] >= 0
    assert trace["otherData"]["replicas_drawn"] == "3" and trace["otherData"]["model"] == "qwen3-8b"


def test_one_track_per_replica_and_per_phase(trace):
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in trace["traceEvents"]
             if e["ph"] == "M" and e["name"] == "thread_name"}
    procs = {e["pid"]: e["args"]["name"] for e in trace["traceEvents"] if e["ph"] == "M" and e["name"] == "process_name"}
    assert procs[1] == "trainer (8 GPUs)" and sorted(v for k, v in procs.items() if k >= 10) == [
        "gen replica 0 (1 GPU)", "gen replica 1 (1 GPU)", "gen replica 2 (1 GPU)"]
    assert {"data + log-prob", "training", "refit (weight sync)"} <= {v for (p, _), v in names.items() if p == 1}
    s = summarize(trace)
    assert s["tracks"]["trainer (8 GPUs) / training"] == 2  # one slice per drawn step
    assert all(s["tracks"][f"gen replica {r} (1 GPU) / rounds"] > 10 for r in range(3))
    # every sequence of a drawn replica that ran in the window is one async slice with its lengths
    b = [e for e in trace["traceEvents"] if e["ph"] == "b"]
    assert b and all({"prompt_tokens", "response_tokens", "queued_s"} <= set(e["args"]) for e in b)
    assert sum(s["sequences"].values()) == len(b)


def test_schema_checks_catch_broken_traces(trace):
    def broken(fn):
        t = copy.deepcopy(trace)
        fn(t["traceEvents"])
        return check_trace(t)

    x = next(i for i, e in enumerate(trace["traceEvents"]) if e["ph"] == "X")
    b = next(i for i, e in enumerate(trace["traceEvents"]) if e["ph"] == "b")
    assert any("ts" in m for m in broken(lambda ev: ev[x].update(ts=-1)))
    assert any("dur" in m for m in broken(lambda ev: ev[x].pop("dur")))
    assert any("ph" in m for m in broken(lambda ev: ev[x].update(ph="Q")))
    assert any("pid" in m for m in broken(lambda ev: ev[x].update(pid="one")))
    assert any("never ends" in m for m in broken(lambda ev: ev.remove(next(e for e in ev if e["ph"] == "e"
                                                                              and e["id"] == ev[b]["id"]))))
    assert any("overlaps" in m for m in broken(lambda ev: ev.append(dict(ev[x], ts=ev[x]["ts"] + ev[x]["dur"] / 2))))
    assert any("args.name" in m for m in broken(lambda ev: ev.append({"ph": "M", "name": "thread_name", "pid": 1,
                                                                       "tid": 9, "ts": 0, "args": {}})))
    assert check_trace({"events": []}) == ["the trace is not an object with a traceEvents list"]


def test_cli_writes_the_trace_and_describes_it(tmp_path):
    out = tmp_path / "t.json"
    r = runner.invoke(app, ["timeline", "--workload", "rl-think-8b", "--set", "num_prompts_per_step=4", "--gen-gpus", "8",
                            "--train-gpus", "8", "--replicas", "2", "--steps", "1", "--format", "perfetto", "--out",
                            str(out)])
    assert r.exit_code == 0, r.output
    assert "2 of 8 generation replicas" in r.stdout and "trainer (8 GPUs) / training: 1 slices" in r.stdout
    assert check_trace(json.loads(out.read_text())) == []
    r = runner.invoke(app, ["timeline", "--workload", "rl-think-8b", "--format", "perfetto", "--out", str(tmp_path / "t.png")])
    assert r.exit_code == 2 and "unknown format '.png'" in r.stderr
