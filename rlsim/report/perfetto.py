"""A timeline users can open: Chrome trace-event JSON (``rlsim timeline --format perfetto``) for ui.perfetto.dev and
chrome://tracing.

The file is the trace-event format's JSON object form (``{"traceEvents": [...], "displayTimeUnit": "ms", ...}``):

- process 1 **trainer**, one thread (track) per phase: ``waits for rollouts (exposed generation)``, ``data +
  log-prob``, ``training``, ``drain before refit``, ``refit (weight sync)``; one complete slice (``ph: X``) per
  step and phase;
- one process per drawn **generation replica** (``gen replica r``): a thread ``rounds`` with one complete slice per
  engine iteration (a decode / verify round, with prefill when chunks are mixed in; args: decoding sequences,
  tokens, k), and every sequence as an async slice (``ph: b`` / ``e``, category ``sequence``) from admission to its
  last token (args: step, prompt and response tokens, time queued);
- metadata events (``ph: M``) naming and ordering processes and threads; ``otherData`` carries the scenario.

Times are microseconds from the first drawn step's weights load; the window is the same steady-state steps the
PNG timeline draws. ``check_trace`` validates a trace against the format's rules (rlsim's own schema checks).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

TRAINER_PID = 1
REPLICA_PID0 = 10
TRAINER_TRACKS = {  # tid -> track name
    1: "waits for rollouts (exposed generation)", 2: "data + log-prob", 3: "training", 4: "drain before refit",
    5: "refit (weight sync)"}
ROUNDS_TID = 1
PHASES = ("B", "E", "X", "i", "I", "b", "e", "n", "M", "C", "s", "t", "f")


def _us(t: float, t0: float) -> float:
    return round((t - t0) * 1e6, 3)


def timeline_trace(scenario, speculative: bool = True, n_replicas: int = 8, n_steps: int = 3, rounds: bool = True,
                   sequences: bool = True) -> dict:
    """Simulate ``scenario`` through the asynchronous pipeline (as ``plot_timeline`` does) and return the trace
    of ``n_steps`` steady-state steps and ``n_replicas`` generation replicas as a trace-event JSON object."""
    from ..inputs import MAX_TIMELINE_REPLICAS, MAX_TIMELINE_STEPS, TIMELINE_WHY, check_count
    from ..pipeline import build_setup
    from ..pipeline.run import simulate_trace

    check_count("replicas", n_replicas, 1, MAX_TIMELINE_REPLICAS, TIMELINE_WHY)
    check_count("steps", n_steps, 1, MAX_TIMELINE_STEPS, TIMELINE_WHY)
    setup = build_setup(scenario)
    n_rep = min(n_replicas, setup.n_replicas)
    run = simulate_trace(setup, speculative, n_rep)
    W = run.weights_loaded_s
    first = run.warmup
    last = min(run.warmup + n_steps, len(W) - 1)
    t0, t1 = W[first], W[last]
    ev: list[dict] = []

    def meta(kind, pid, tid=None, **args):
        ev.append({"ph": "M", "name": kind, "pid": pid, "tid": 0 if tid is None else tid, "ts": 0, "args": args})

    w = scenario.workload
    mode = "speculative" if speculative else "autoregressive"
    used_tracks: set[tuple[int, int]] = set()
    meta("process_name", TRAINER_PID, name=f"trainer ({setup.train_gpus} GPUs)")
    meta("process_sort_index", TRAINER_PID, sort_index=0)

    def slice_(pid, tid, name, a, b, **args):
        a, b = max(a, t0), min(b, t1)
        ta, tb = _us(a, t0), _us(b, t0)  # both ends rounded alike: neighbours touch, never overlap
        if tb > ta:
            ev.append({"ph": "X", "name": name, "cat": "phase" if pid == TRAINER_PID else "round", "pid": pid,
                       "tid": tid, "ts": ta, "dur": round(tb - ta, 3), "args": args})
            used_tracks.add((pid, tid))

    lp = run.phases["logprob"] + run.phases["data"]
    tr = run.phases["training"]
    frac = lp / (lp + tr) if lp + tr > 0 else 0.5
    for t in range(len(run.train_end_s)):
        s, e = run.train_start_s[t], run.train_end_s[t]
        if e < t0 or W[t] > t1:
            continue
        lp_end = s + frac * (e - s)
        slice_(TRAINER_PID, 1, f"wait for batch {t}", W[t], s, step=t)
        slice_(TRAINER_PID, 2, f"data + log-prob {t}", s, lp_end, step=t)
        slice_(TRAINER_PID, 3, f"training {t}", lp_end, e, step=t)
        slice_(TRAINER_PID, 4, f"drain {t}", e, run.refit_start_s[t], step=t)
        slice_(TRAINER_PID, 5, f"refit -> weights v{t + 1}", run.refit_start_s[t], W[t + 1], step=t, version=t + 1)
    for tid, name in TRAINER_TRACKS.items():  # only the phases that happened (no empty "drain" track)
        if (TRAINER_PID, tid) in used_tracks:
            meta("thread_name", TRAINER_PID, tid, name=name)
            meta("thread_sort_index", TRAINER_PID, tid, sort_index=tid)
    rel = np.asarray(run.release_s, dtype=float)
    for r in range(n_rep):
        pid = REPLICA_PID0 + r
        meta("process_name", pid, name=f"gen replica {r} ({setup.layout.gpus} GPU{'s' if setup.layout.gpus > 1 else ''})")
        meta("process_sort_index", pid, sort_index=1 + r)
        meta("thread_name", pid, ROUNDS_TID, name="rounds")
        if rounds and r < len(run.replica_traces) and run.replica_traces[r] is not None:
            trc = run.replica_traces[r]
            ends, dts = np.asarray(trc["t_end"], float), np.asarray(trc["dt"], float)
            order = np.argsort(ends - dts, kind="stable")
            prev = t0
            for i in order:
                a, b = max(ends[i] - dts[i], prev), ends[i]
                if b <= t0 or a >= t1 or b <= a:
                    continue
                nd, nt, k = int(trc["n_decode"][i]), int(trc["n_tokens"][i]), int(trc["k"][i])
                kind = ("verify" if k > 0 else "decode") + (" + prefill" if nt > nd * (k + 1) else "")
                slice_(pid, ROUNDS_TID, f"{kind} B={nd}", a, b, decoding_sequences=nd, tokens=nt, k=k)
                prev = b
        if sequences and r < len(run.sims):
            sim = run.sims[r]
            adm, fin, arr = sim.admit_time, sim.finish, sim.arrival
            for i in np.flatnonzero(np.isfinite(adm) & np.isfinite(fin)):
                a, b = max(float(adm[i]), t0), min(float(fin[i]), t1)
                if b <= a:
                    continue
                steps = np.flatnonzero(np.isclose(rel, arr[i]))
                args = {"prompt_tokens": int(sim.P[i]), "response_tokens": int(sim.N[i]),
                        "queued_s": round(float(adm[i] - arr[i]), 6), "clipped": bool(a > adm[i] or b < fin[i])}
                if steps.size == 1:
                    args["step"] = int(steps[0])
                sid = f"r{r}-s{i}"
                ev.append({"ph": "b", "cat": "sequence", "name": "sequence", "id": sid, "pid": pid, "tid": ROUNDS_TID,
                           "ts": _us(a, t0), "args": args})
                ev.append({"ph": "e", "cat": "sequence", "name": "sequence", "id": sid, "pid": pid, "tid": ROUNDS_TID,
                           "ts": _us(b, t0)})
    info = {"tool": "rlsim timeline --format perfetto", "model": w.model, "hardware": w.hardware,
            "engine": scenario.engine, "mode": mode, "k": scenario.k, "lag": scenario.lag, "seed": scenario.seed,
            "gen_gpus": setup.gen_gpus, "train_gpus": setup.train_gpus, "replicas": setup.n_replicas,
            "replicas_drawn": n_rep, "steps_drawn": last - first, "first_step": first,
            "window_s": [float(t0), float(t1)]}
    return {"traceEvents": ev, "displayTimeUnit": "ms", "otherData": {k: str(v) for k, v in info.items()}}


def write_trace(trace: dict, path: str | Path, flag: str = "--out") -> Path:
    from ..inputs import dumps_strict, write_or_keep

    return write_or_keep(Path(path), lambda p: p.write_text(dumps_strict(trace, indent=None)), flag)


def summarize(trace: dict) -> dict:
    """Track names and slice counts (what ``rlsim timeline --format perfetto`` prints)."""
    names: dict[tuple, str] = {}
    pnames: dict[int, str] = {}
    for e in trace["traceEvents"]:
        if e["ph"] == "M" and e["name"] == "thread_name":
            names[(e["pid"], e["tid"])] = e["args"]["name"]
        elif e["ph"] == "M" and e["name"] == "process_name":
            pnames[e["pid"]] = e["args"]["name"]
    counts: dict[str, int] = {}
    seqs: dict[int, int] = {}
    for e in trace["traceEvents"]:
        if e["ph"] == "X":
            key = f"{pnames.get(e['pid'], e['pid'])} / {names.get((e['pid'], e['tid']), e['tid'])}"
            counts[key] = counts.get(key, 0) + 1
        elif e["ph"] == "b":
            seqs[e["pid"]] = seqs.get(e["pid"], 0) + 1
    return {"tracks": counts, "sequences": {pnames.get(p, str(p)): n for p, n in seqs.items()},
            "events": len(trace["traceEvents"])}


# ------------------------------------------------------------------------------------------ schema checks
def check_trace(trace) -> list[str]:
    """Problems of ``trace`` against the trace-event format (JSON object form); empty when it is valid:
    ``traceEvents`` a list of objects; every event has ``ph`` (a known phase), ``name`` (text), ``pid`` and ``tid``
    (integers) and ``ts`` (a finite number >= 0, microseconds); ``X`` events a ``dur`` >= 0, and slices on one
    thread nest (no partial overlap, which Perfetto would draw wrongly); async ``b`` / ``e`` events a ``cat`` and an
    ``id``, every ``b`` closed by one ``e`` of the same (pid, cat, id) no earlier; metadata ``M`` events are
    ``process_name`` / ``thread_name`` / ``*_sort_index`` with the matching ``args``; ``args`` objects; the whole
    object JSON-serialisable without NaN or infinities."""
    errs: list[str] = []
    if not isinstance(trace, dict) or not isinstance(trace.get("traceEvents"), list):
        return ["the trace is not an object with a traceEvents list"]
    if trace.get("displayTimeUnit", "ms") not in ("ms", "ns"):
        errs.append(f"displayTimeUnit {trace.get('displayTimeUnit')!r}: allowed ms or ns")
    try:
        json.dumps(trace, allow_nan=False)
    except (TypeError, ValueError) as e:
        errs.append(f"not strict JSON: {e}")
    open_async: dict[tuple, float] = {}
    by_thread: dict[tuple, list[tuple[float, float, str]]] = {}
    for n, e in enumerate(trace["traceEvents"]):
        where = f"event {n}"
        if not isinstance(e, dict):
            errs.append(f"{where}: not an object")
            continue
        ph = e.get("ph")
        if ph not in PHASES:
            errs.append(f"{where}: ph {ph!r} is not a trace-event phase")
            continue
        for key, typ in (("name", str), ("pid", int), ("tid", int)):
            if not isinstance(e.get(key), typ) or isinstance(e.get(key), bool):
                errs.append(f"{where} ({ph}): {key} missing or not {typ.__name__}")
        ts = e.get("ts")
        if not isinstance(ts, (int, float)) or isinstance(ts, bool) or not math.isfinite(ts) or ts < 0:
            errs.append(f"{where} ({ph}): ts {ts!r} is not a finite number >= 0")
            continue
        if "args" in e and not isinstance(e["args"], dict):
            errs.append(f"{where}: args is not an object")
        if ph == "X":
            d = e.get("dur")
            if not isinstance(d, (int, float)) or isinstance(d, bool) or not math.isfinite(d) or d < 0:
                errs.append(f"{where} (X): dur {d!r} is not a finite number >= 0")
                continue
            by_thread.setdefault((e.get("pid"), e.get("tid")), []).append((float(ts), float(ts) + float(d), e["name"]))
        elif ph in ("b", "e"):
            if not isinstance(e.get("cat"), str) or "id" not in e:
                errs.append(f"{where} ({ph}): an async event needs cat and id")
                continue
            key = (e.get("pid"), e["cat"], str(e["id"]))
            if ph == "b":
                if key in open_async:
                    errs.append(f"{where}: async slice {key} begun twice")
                open_async[key] = float(ts)
            else:
                if key not in open_async:
                    errs.append(f"{where}: async end {key} without a begin")
                elif ts < open_async.pop(key):
                    errs.append(f"{where}: async slice {key} ends before it begins")
        elif ph == "M":
            name, args = e.get("name"), e.get("args") or {}
            if name in ("process_name", "thread_name"):
                if not isinstance(args.get("name"), str):
                    errs.append(f"{where}: {name} needs args.name (text)")
            elif name in ("process_sort_index", "thread_sort_index"):
                if not isinstance(args.get("sort_index"), int):
                    errs.append(f"{where}: {name} needs args.sort_index (integer)")
            else:
                errs.append(f"{where}: unknown metadata event {name!r}")
    for key in open_async:
        errs.append(f"async slice {key} never ends")
    for key, spans in by_thread.items():
        spans.sort(key=lambda s: (s[0], -s[1]))
        stack: list[float] = []
        for a, b, name in spans:
            while stack and stack[-1] <= a + 1e-6:
                stack.pop()
            if stack and b > stack[-1] + 1e-6:
                errs.append(f"thread {key}: slice {name!r} [{a}, {b}] overlaps its neighbour without nesting")
                break
            stack.append(b)
    return errs


__all__ = ["check_trace", "summarize", "timeline_trace", "write_trace"]
