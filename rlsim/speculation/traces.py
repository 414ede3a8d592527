"""Acceptance from real traces: vLLM's spec-decode metrics or NeMo-RL's logged acceptance.

Inputs understood (``load_acceptance_trace`` picks by content):

- **vLLM Prometheus text** (a scrape of ``/metrics`` or ``prometheus_client.generate_latest()`` in an
  offline ``LLM``): the V1 counters ``vllm:spec_decode_num_drafts``, ``vllm:spec_decode_num_draft_tokens``,
  ``vllm:spec_decode_num_accepted_tokens`` and ``vllm:spec_decode_num_accepted_tokens_per_pos{position="i"}``
  (exposed with the ``_total`` suffix; names checked against vllm/v1/spec_decode/metrics.py of vLLM
  0.32). Samples of every engine / model label set are summed. Counters are cumulative since engine
  start: pass a second, earlier scrape as ``baseline`` to fit only what happened in between.
- **JSON / JSONL** logs (NeMo-RL's metrics, one object per step, or a dump of ``LLM.get_metrics()``):
  nested keys are flattened with ``/`` and matched on their last component:
  raw counters ``num_drafts``, ``num_draft_tokens``, ``num_accepted_tokens``,
  ``num_accepted_tokens_per_pos`` (a list, or ``..._per_pos_<i>`` / ``...{position="i"}`` keys) with
  or without the ``spec_decode_`` prefix; or rates ``spec_acceptance_length`` (also
  ``acceptance_length``, ``mean_acceptance_length``) and per-position rates (a list under
  ``spec_acceptance_rate_per_pos`` / ``spec_acceptance_per_position``, or ``spec_acceptance_rate_pos_<i>``
  keys). Per-position rates are read with vLLM's definition (unconditional: P(the first i+1 drafts
  all accepted)). Records are pooled weighted by their ``num_drafts`` when present, else equally.

- **NeMo-RL's logged vLLM metrics** (``policy.generation.vllm_cfg.enable_vllm_metrics_logger``): keys under
  ``vllm/``: ``spec_num_drafts``, ``spec_num_draft_tokens``, ``spec_num_accepted_tokens``,
  ``spec_acceptance_rate-pos-{1..k}`` (per-position rates) and ``vllm:spec_decode_num_accepted_tokens_per_pos-{i}``
  (per-position counts); hyphenated positions count from 1. A value logged as a time series (a list) of a
  cumulative counter is read at its last sample.
- **vLLM's own reports**: ``vllm bench serve --save-result`` JSON (``spec_decode_num_drafts``,
  ``spec_decode_draft_tokens``, ``spec_decode_accepted_tokens``, ``spec_decode_per_position_acceptance_rates``) and
  the engine's periodic log lines ``SpecDecoding metrics: Mean acceptance length: ..., Accepted: N tokens, Drafted:
  M tokens, Per-position acceptance rate: ...`` (vllm/v1/spec_decode/metrics.py; intervals pooled by their drafts,
  M / k each). vLLM 0.17.1 keeps no per-request acceptance (``RequestOutput.metrics`` carries token counts and
  timestamps only), so per-request metrics cannot be read; the aggregate counters above are what it exposes.

Fit: unconditional ``p_i = accepted_per_pos[i] / num_drafts``, AL = 1 + accepted / num_drafts, k = the
number of positions (drafters such as n-gram may propose fewer than k tokens in a round: that is in
the counts and in p_i, as vLLM measures it). Counting noise can make p_i increase slightly with
position; the fit takes the running minimum (reported in ``notes``). With only an AL (no per-position
data) the constant-rate model of ``AcceptanceModel.from_acceptance_length`` is used at k.

``fit_al_curve`` fits per-position rates to mean ALs measured at several k (piecewise geometric).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigurationError
from .acceptance import AcceptanceModel, _solve_constant_rate

MAX_TRACE_POSITIONS = 64  # draft positions a trace may give (vLLM's k is at most a few tens)

_PROM_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEinfINFaN]+)(?:\s+\d+)?\s*$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"')


@dataclass
class TraceFit:
    """Acceptance fitted from a trace."""

    k: int
    unconditional_rates: list[float]  # p_i, vLLM's per-position acceptance
    acceptance_length: float
    num_drafts: float | None = None
    num_draft_tokens: float | None = None
    num_accepted_tokens: float | None = None
    source: str = ""
    per_step_acceptance_length: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    format: str = ""  # what the file was read as, and which keys gave the acceptance

    @property
    def model(self) -> AcceptanceModel:
        return AcceptanceModel.from_unconditional_rates(self.unconditional_rates)

    @property
    def draft_acceptance_rate(self) -> float | None:
        """vLLM's 'acceptance rate': accepted / draft tokens."""
        if self.num_draft_tokens and self.num_accepted_tokens is not None:
            return self.num_accepted_tokens / self.num_draft_tokens
        return None

    def as_dict(self) -> dict:
        return {"k": self.k, "unconditional_rates": list(self.unconditional_rates),
                "conditional_rates": list(self.model.conditional_rates), "acceptance_length": self.acceptance_length,
                "num_drafts": self.num_drafts, "num_draft_tokens": self.num_draft_tokens,
                "num_accepted_tokens": self.num_accepted_tokens, "draft_acceptance_rate": self.draft_acceptance_rate,
                "source": self.source, "format": self.format,
                "per_step_acceptance_length": list(self.per_step_acceptance_length), "notes": list(self.notes)}

    def describe(self) -> str:
        """Where the acceptance came from, in one line (for the projection's notes)."""
        what = ("counts over " + f"{self.num_drafts:,.0f} speculative rounds") if self.num_drafts else "logged rates"
        rates = ", ".join(f"{p:.3f}" for p in self.unconditional_rates[:8]) + (" ..." if self.k > 8 else "")
        return (f"acceptance from {self.source} ({self.format or 'metrics'}): k = {self.k}, AL {self.acceptance_length:.3f} "
                f"from {what}; per-position acceptance {rates}")


# ---------------------------------------------------------------------------------------------- counters
def _fit_counts(drafts: float, draft_tokens: float | None, accepted: float | None, per_pos: list[float],
                source: str) -> TraceFit:
    notes = []
    for name, v in (("num_drafts", drafts), ("num_draft_tokens", draft_tokens), ("num_accepted_tokens", accepted)):
        if v is not None and not (np.isfinite(v) and v >= 0):
            raise ConfigurationError(f"{source}: {name} = {v:g}; allowed: a finite count >= 0")
    for i, v in enumerate(per_pos):
        if not (np.isfinite(v) and v >= 0):
            raise ConfigurationError(f"{source}: accepted tokens at position {i} = {v:g}; allowed: a finite count >= 0")
    if drafts <= 0:
        raise ConfigurationError(f"{source}: num_drafts = {drafts}: no speculative rounds recorded (was speculation on?)")
    if not per_pos:
        if accepted is None or draft_tokens is None:
            raise ConfigurationError(f"{source}: has num_drafts but neither per-position counts nor accepted/draft tokens")
        k = int(round(draft_tokens / drafts))
        if k > MAX_TRACE_POSITIONS:
            raise ConfigurationError(f"{source}: num_draft_tokens / num_drafts = {draft_tokens / drafts:.2f} draft tokens "
                                     f"per round; allowed: up to {MAX_TRACE_POSITIONS}")
        if k < 1:
            raise ConfigurationError(f"{source}: num_draft_tokens / num_drafts = {draft_tokens / drafts:.2f}; cannot infer k")
        if accepted > draft_tokens:
            raise ConfigurationError(f"{source}: num_accepted_tokens ({accepted:g}) > num_draft_tokens ({draft_tokens:g}): "
                                     "more tokens accepted than drafted is impossible")
        al = 1.0 + accepted / drafts
        rate = _solve_constant_rate(k, al)
        p = [rate ** (i + 1) for i in range(k)]
        notes.append(f"no per-position counts: constant conditional rate {rate:.4f} at k = {k} (from AL {al:.4f})")
        return TraceFit(k, p, al, drafts, draft_tokens, accepted, source, notes=notes)
    if draft_tokens is not None and draft_tokens / drafts > len(per_pos) + 0.5:
        # a drafter proposes at most k tokens a round: more draft tokens per round than positions counted means
        # the per-position counters are incomplete (a truncated scrape), and fitting them would lower k silently
        raise ConfigurationError(
            f"{source}: num_draft_tokens / num_drafts = {draft_tokens / drafts:.2f} draft tokens per round, but accepted "
            f"counts cover only positions 0..{len(per_pos) - 1}: the per-position counters are incomplete (a truncated "
            "scrape?); allowed: counts for every draft position")
    p = [float(a) / drafts for a in per_pos]
    for i, v in enumerate(p):
        if v > 1.0 + 1e-9:
            raise ConfigurationError(f"{source}: accepted tokens at position {i} ({per_pos[i]:g}) exceed num_drafts ({drafts:g})")
    mono = list(np.minimum.accumulate(p))
    if any(b < a - 1e-12 for a, b in zip(p, mono)):
        notes.append("per-position rates increased with position (counting noise?); running minimum taken")
    acc_sum = float(sum(per_pos))
    if accepted is not None and accepted > 0 and abs(acc_sum - accepted) > 0.01 * accepted + 1:
        notes.append(f"per-position accepted tokens sum to {acc_sum:g} but num_accepted_tokens = {accepted:g}; "
                     "per-position counts used")
    al = 1.0 + float(sum(mono))
    if draft_tokens is not None and draft_tokens < len(p) * drafts - 0.5:
        notes.append(f"drafts carried {draft_tokens / drafts:.2f} tokens on average (< k = {len(p)}): a drafter that "
                     "proposes fewer tokens when it finds no match (n-gram); that is in the rates")
    return TraceFit(len(p), [float(x) for x in mono], al, drafts, draft_tokens, accepted, source, notes=notes)


# ---------------------------------------------------------------------------------------------- Prometheus
def parse_prometheus(text: str, source: str = "prometheus text") -> dict[str, list[tuple[dict, float]]]:
    """Samples of a Prometheus text exposition: name -> [(labels, value), ...]. Lines of other metrics that do
    not parse are skipped; a ``spec_decode`` line that does not parse, or one cut off at the end of the file
    (a truncated scrape: its value could be a prefix of the real one), is an error naming the line."""
    out: dict[str, list[tuple[dict, float]]] = {}
    seen: dict[tuple, int] = {}
    lines = text.split("\n")
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        ours = "spec_decode" in line.split("{", 1)[0]
        cut = n == len(lines)  # the last line of a text that does not end with a newline
        m = _PROM_LINE.match(line)
        if cut and (ours or not m):
            raise ConfigurationError(f"{source}: line {n} ends without a newline ({line[:60]!r}): a truncated scrape? "
                                     "allowed: a complete /metrics scrape")
        if not m:
            if ours:
                raise ConfigurationError(f"{source}: line {n} is not a Prometheus sample ({line[:60]!r}); expected "
                                         'NAME{LABEL="VALUE",...} NUMBER')
            continue
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        try:
            v = float(value)
        except ValueError:
            if ours:
                raise ConfigurationError(f"{source}: line {n}: value {value!r} is not a number") from None
            continue
        lab = {k: v_ for k, v_ in _LABEL.findall(labels)}
        if ours:  # a series given twice would be summed: two scrapes pasted together?
            key = (name, tuple(sorted(lab.items())))
            if key in seen:
                raise ConfigurationError(f"{source}: line {n} repeats the series of line {seen[key]} ({line[:60]!r}): "
                                         "two scrapes in one file?; allowed: each series once (pass an earlier scrape "
                                         "as the baseline instead)")
            seen[key] = n
        out.setdefault(name, []).append((lab, v))
    return out


def _position(label, source: str) -> int:
    try:
        i = int(str(label))
    except ValueError:
        raise ConfigurationError(f"{source}: position label {label!r} is not an integer; allowed: "
                                 f"0..{MAX_TRACE_POSITIONS - 1}") from None
    if not 0 <= i < MAX_TRACE_POSITIONS:
        raise ConfigurationError(f"{source}: position {i}; allowed: 0..{MAX_TRACE_POSITIONS - 1} (a draft position)")
    return i


def _dense_positions(per: dict[int, float], source: str) -> list[float]:
    """{position: count} -> a list; a missing position in between is an error (reading it as 0 would cut k)."""
    if not per:
        return []
    missing = [i for i in range(max(per) + 1) if i not in per]
    if missing:
        raise ConfigurationError(f"{source}: no per-position count for position {missing[0]} (positions "
                                 f"{', '.join(map(str, sorted(per)))} given): incomplete counters; allowed: every "
                                 "position from 0 up")
    return [per[i] for i in range(max(per) + 1)]


def _prom_counts(samples: dict, prefix: str = "vllm:spec_decode_",
                 source: str = "prometheus text") -> tuple[float | None, float | None, float | None, list[float]]:
    def total(base: str) -> float | None:
        for name in (prefix + base + "_total", prefix + base):
            if name in samples:
                return float(sum(v for _, v in samples[name]))
        return None

    drafts = total("num_drafts")
    draft_tokens = total("num_draft_tokens")
    accepted = total("num_accepted_tokens")
    per: dict[int, float] = {}
    for name in (prefix + "num_accepted_tokens_per_pos_total", prefix + "num_accepted_tokens_per_pos"):
        for labels, v in samples.get(name, []):
            if "position" in labels:
                i = _position(labels["position"], source)
                per[i] = per.get(i, 0.0) + v
        if per:
            break
    return drafts, draft_tokens, accepted, _dense_positions(per, source)


def fit_prometheus(text: str, baseline: str | None = None, source: str = "prometheus text") -> TraceFit:
    """Fit from a vLLM /metrics scrape; with ``baseline`` (an earlier scrape), from the difference."""
    d, dt, a, pp = _prom_counts(parse_prometheus(text, source), source=source)
    if d is None:
        raise ConfigurationError(
            f"{source}: no vllm:spec_decode_num_drafts counter (expected vLLM V1 metrics with speculative decoding on: "
            "vllm:spec_decode_num_drafts_total, ..._num_draft_tokens_total, ..._num_accepted_tokens_total, "
            "..._num_accepted_tokens_per_pos_total{position=...})")
    if baseline is not None:
        d0, dt0, a0, pp0 = _prom_counts(parse_prometheus(baseline, f"{source} (baseline)"), source=f"{source} (baseline)")
        d -= d0 or 0.0
        dt = None if dt is None else dt - (dt0 or 0.0)
        a = None if a is None else a - (a0 or 0.0)
        pp = [x - (pp0[i] if i < len(pp0) else 0.0) for i, x in enumerate(pp)]
        if d < 0 or any(x < 0 for x in pp):
            raise ConfigurationError(f"{source}: counters decreased against the baseline scrape (engine restarted? "
                                     "pass the earlier scrape as baseline)")
    return _fit_counts(d, dt, a, pp, source)


# ---------------------------------------------------------------------------------------------- JSON / JSONL
def _flatten(obj, prefix: str = "") -> dict:
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            key = f"{prefix}/{k}" if prefix else str(k)
            if isinstance(v, dict):
                out.update(_flatten(v, key))
            else:
                out[key] = v
    return out


_AL_KEYS = ("spec_acceptance_length", "mean_acceptance_length", "acceptance_length", "spec_decode_acceptance_length")
_POS_LIST_KEYS = ("spec_acceptance_rate_per_pos", "spec_acceptance_per_position", "spec_acceptance_rates_per_position",
                  "acceptance_rates_per_position", "acceptance_rate_per_pos", "spec_decode_acceptance_rate_per_pos",
                  "spec_decode_per_position_acceptance_rates", "per_position_acceptance_rates")
_POS_KEY = re.compile(r"(?:spec_)?(?:decode_)?accept(?:ance|ed)?_(?:rate|length)?_?(?:per_)?pos(?:ition)?_?(\d+)$")
_COUNT_POS_KEY = re.compile(r'(?:spec_decode_)?num_accepted_tokens_per_pos(?:_total)?(?:_|\{position="?)(\d+)"?\}?$')
# NeMo-RL's hyphenated per-position keys count positions from 1
_NEMO_RATE_POS = re.compile(r"spec_acceptance_rate-pos-(\d+)$")
_NEMO_COUNT_POS = re.compile(r"(?:spec_decode_)?num_accepted_tokens_per_pos-(\d+)$")
# other names of the counters: NeMo-RL's vllm/spec_num_*, vLLM bench's spec_decode_{draft,accepted}_tokens
_COUNTER_ALIASES = {"spec_num_drafts": "num_drafts", "spec_num_draft_tokens": "num_draft_tokens",
                    "spec_num_accepted_tokens": "num_accepted_tokens", "draft_tokens": "num_draft_tokens",
                    "accepted_tokens": "num_accepted_tokens"}


def _last(key: str) -> str:
    s = key.rsplit("/", 1)[-1]
    return s[len("vllm:"):] if s.startswith("vllm:") else s


def _num(key: str, v, source: str) -> float:
    """A finite number from a JSON value (null, text, NaN or an infinity is an error naming the key)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
        raise ConfigurationError(f"{source}: `{key}` = {json.dumps(v) if _jsonable(v) else repr(v)}; allowed: a "
                                 "finite number")
    return float(v)


def _jsonable(v) -> bool:
    try:
        json.dumps(v, allow_nan=False)
        return True
    except (TypeError, ValueError):
        return False


def _num_list(key: str, v: list, source: str) -> dict[int, float]:
    if len(v) > MAX_TRACE_POSITIONS:
        raise ConfigurationError(f"{source}: `{key}` has {len(v)} positions; allowed: up to {MAX_TRACE_POSITIONS}")
    return {i: _num(f"{key}[{i}]", x, source) for i, x in enumerate(v)}


def _record_fit(rec: dict, source: str = "json") -> dict:
    """What one JSON record carries: counts and/or rates."""
    flat = _flatten(rec)
    got: dict = {"per_pos_counts": {}, "per_pos_rates": {}, "keys": []}
    for key, v in flat.items():
        name = _last(key)
        base = name[len("spec_decode_"):] if name.startswith("spec_decode_") else name
        if base.endswith("_total"):
            base = base[: -len("_total")]
        base = _COUNTER_ALIASES.get(base, base)
        if isinstance(v, bool):
            continue
        m1, m2 = _NEMO_RATE_POS.search(name), _NEMO_COUNT_POS.search(name)
        if (m1 or m2 or base in ("num_drafts", "num_draft_tokens", "num_accepted_tokens")) and isinstance(v, list) \
                and v and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            v = v[-1]  # a time series of a cumulative counter (or of a rate): its last sample
            got.setdefault("series", True)
        if m1 or m2:  # NeMo-RL: positions from 1
            i = int((m1 or m2).group(1))
            if i < 1:
                raise ConfigurationError(f"{source}: `{key}`: NeMo-RL numbers positions from 1; allowed: -pos-1 .. "
                                         f"-pos-{MAX_TRACE_POSITIONS}")
            (got["per_pos_rates"] if m1 else got["per_pos_counts"])[_position(i - 1, source)] = _num(key, v, source)
            got["keys"].append(key)
            continue
        if isinstance(v, float) and not np.isfinite(v) and (base in ("num_drafts", "num_draft_tokens", "num_accepted_tokens")
                                                               or name in _AL_KEYS or name in ("num_speculative_tokens", "k")):
            _num(key, v, source)  # NaN / Infinity in a metric rlsim reads: an error, not a silent NaN fit
        if base == "num_accepted_tokens_per_pos" and isinstance(v, list):
            got["per_pos_counts"] = _num_list(key, v, source)
        elif base in ("num_drafts", "num_draft_tokens", "num_accepted_tokens") and isinstance(v, (int, float)):
            got[base] = float(v)
            got["keys"].append(key)
        elif name in _POS_LIST_KEYS and isinstance(v, list):
            got["per_pos_rates"] = _num_list(key, v, source)
            got["keys"].append(key)
        elif name in _AL_KEYS and isinstance(v, (int, float)):
            got["al"] = float(v)
            got["keys"].append(key)
        elif name in ("num_speculative_tokens", "k") and isinstance(v, (int, float)):
            if not float(v).is_integer() or not 1 <= v <= MAX_TRACE_POSITIONS:
                raise ConfigurationError(f"{source}: `{key}` = {v!r}; allowed: an integer 1..{MAX_TRACE_POSITIONS}")
            got["k"] = int(v)
        elif name == "step" and isinstance(v, (int, float)):
            if np.isfinite(v):
                got["step"] = int(v)
        elif isinstance(v, (int, float)):
            m = _COUNT_POS_KEY.fullmatch(name)
            if m:
                got["per_pos_counts"][_position(m.group(1), source)] = _num(key, v, source)
                got["keys"].append(key)
                continue
            m = _POS_KEY.search(name)
            if m and "num_" not in name:
                got["per_pos_rates"][_position(m.group(1), source)] = _num(key, v, source)
                got["keys"].append(key)
        elif v is None and (base in ("num_drafts", "num_draft_tokens", "num_accepted_tokens", "num_accepted_tokens_per_pos")
                            or name in _AL_KEYS or name in _POS_LIST_KEYS):
            raise ConfigurationError(f"{source}: `{key}` = null; allowed: a number (or leave the key out)")
    return got


def _get_metrics_records(obj, source: str = "json") -> list[dict] | None:
    """A dump of vLLM's ``LLM.get_metrics()`` ([{name, labels, value|values}, ...]) -> one record."""
    if not (isinstance(obj, list) and obj and all(isinstance(x, dict) and "name" in x for x in obj)):
        return None
    rec: dict = {}
    for m in obj:
        name = _last(str(m["name"]))
        if "values" in m:
            prev = rec.get(name, [])
            if not isinstance(m["values"], list):
                raise ConfigurationError(f"{source}: metric {name!r}: `values` = {m['values']!r}; allowed: a list of numbers")
            vals = list(_num_list(f"{name}.values", m["values"], source).values())
            rec[name] = [a + b for a, b in zip(prev, vals)] + vals[len(prev):] if prev else vals
        elif "value" in m and isinstance(m["value"], (int, float)):
            rec[name] = rec.get(name, 0.0) + float(m["value"])
    return [rec]


def fit_json_records(records: list[dict], source: str = "json", k: int | None = None) -> TraceFit:
    """Pool JSON records (one per step, or one in all) into a fit; ``format`` says which keys gave it."""
    fit = _fit_json_records(records, source, k)
    keys: list[str] = []
    for r in records:
        if isinstance(r, dict):
            for key in _record_fit(r, source)["keys"]:
                if key not in keys:
                    keys.append(key)
    nemo = any(k_.startswith("vllm/") or "-pos-" in k_ for k_ in keys)
    bench = any(k_.startswith("spec_decode_") for k_ in keys) and not nemo
    kind = ("NeMo-RL vLLM metrics log" if nemo else "vLLM bench serve result" if bench else "JSON metrics")
    if any(isinstance(r, dict) and _record_fit(r, source).get("series") for r in records):
        fit.notes.append("values logged as time series (lists): the last sample of each was read (cumulative counters)")
    shown = _compress_keys(keys)
    fit.format = f"{kind}, {len([r for r in records if isinstance(r, dict)])} record(s); keys {shown}"
    return fit


def _compress_keys(keys: list[str]) -> str:
    """``a-pos-1, a-pos-2, a-pos-3`` -> ``a-pos-{1..3}`` (positional families written once)."""
    fam: dict[str, list[int]] = {}
    order: list[str] = []
    for k_ in keys:
        m = re.search(r"(\d+)(\D*)$", k_)
        stem = k_[:m.start(1)] + "{i}" + m.group(2) if m and ("pos" in k_ or "position" in k_) else k_
        if stem not in fam:
            fam[stem] = []
            order.append(stem)
        if stem != k_:
            fam[stem].append(int(m.group(1)))
    out = []
    for s in order:
        ns = fam[s]
        out.append(s.replace("{i}", "{" + f"{min(ns)}..{max(ns)}" + "}") if ns else s)
    return ", ".join(out[:8]) + (" ..." if len(out) > 8 else "")


def _fit_json_records(records: list[dict], source: str = "json", k: int | None = None) -> TraceFit:
    parsed = [_record_fit(r, source) for r in records if isinstance(r, dict)]
    parsed = [p for p in parsed if set(p) - {"per_pos_counts", "per_pos_rates", "step", "keys", "series"}
              or p["per_pos_counts"] or p["per_pos_rates"]]
    if not parsed:
        raise ConfigurationError(
            f"{source}: no acceptance metrics found; expected keys such as num_drafts + num_accepted_tokens_per_pos "
            "(counts), or spec_acceptance_length / spec_acceptance_rate_per_pos (rates)")
    per_step = [p["al"] for p in parsed if "al" in p]
    # 1) counts, pooled by summing (exact)
    counted = [p for p in parsed if "num_drafts" in p]
    for p in counted:  # rates beside the drafts (vLLM bench's result): counts = rate x drafts
        if not p["per_pos_counts"] and p["per_pos_rates"]:
            p["per_pos_counts"] = {i: r * p["num_drafts"] for i, r in p["per_pos_rates"].items()}
    if counted:
        d = sum(p["num_drafts"] for p in counted)
        dt = sum(p["num_draft_tokens"] for p in counted) if all("num_draft_tokens" in p for p in counted) else None
        a = sum(p["num_accepted_tokens"] for p in counted) if all("num_accepted_tokens" in p for p in counted) else None
        for p in counted:
            _dense_positions(p["per_pos_counts"], source)
        n = max((max(p["per_pos_counts"]) + 1 for p in counted if p["per_pos_counts"]), default=0)
        pp = [sum(p["per_pos_counts"].get(i, 0.0) for p in counted) for i in range(n)]
        fit = _fit_counts(d, dt, a, pp, source)
        if not per_step:
            per_step = [1.0 + sum(p["per_pos_counts"].values()) / p["num_drafts"] for p in counted
                        if p["per_pos_counts"] and p["num_drafts"] > 0]
        fit.per_step_acceptance_length = per_step
        return fit
    # 2) rates: per-position lists/keys, pooled equally over records
    with_pos = [p for p in parsed if p["per_pos_rates"]]
    notes = []
    if with_pos:
        n = max(max(p["per_pos_rates"]) + 1 for p in with_pos)
        rows = np.array([[p["per_pos_rates"].get(i, np.nan) for i in range(n)] for p in with_pos])
        p_mean = np.nanmean(rows, axis=0)
        if np.any(np.isnan(p_mean)):
            raise ConfigurationError(f"{source}: per-position rates have missing positions")
        for i, x in enumerate(p_mean):
            if not 0.0 <= x <= 1.0:
                raise ConfigurationError(f"{source}: per-position acceptance at position {i} = {x:.4f}; allowed 0..1 "
                                         "(vLLM's unconditional rate)")
        mono = np.minimum.accumulate(p_mean)
        if np.any(mono < p_mean - 1e-12):
            notes.append("per-position rates increased with position; running minimum taken (are they conditional "
                         "rates? rlsim reads vLLM's unconditional definition)")
        if len(with_pos) > 1:
            notes.append(f"{len(with_pos)} records averaged with equal weight (no num_drafts to weight them)")
        al = 1.0 + float(mono.sum())
        if per_step and abs(np.mean(per_step) - al) > 0.05:
            notes.append(f"logged mean acceptance length {np.mean(per_step):.3f} differs from 1 + sum of per-position "
                         f"rates {al:.3f}; per-position rates used")
        return TraceFit(n, [float(x) for x in mono], al, source=source, per_step_acceptance_length=per_step, notes=notes)
    # 3) AL only: needs k
    ks = {p["k"] for p in parsed if "k" in p}
    k_eff = k if k is not None else (ks.pop() if len(ks) == 1 else None)
    if k_eff is None or k_eff < 1:
        raise ConfigurationError(f"{source}: only an acceptance length is logged; give k (num_speculative_tokens) to "
                                 "turn it into per-position rates (--k)")
    if k_eff > MAX_TRACE_POSITIONS:
        raise ConfigurationError(f"{source}: k = {k_eff}; allowed: 1..{MAX_TRACE_POSITIONS}")
    if not per_step:
        raise ConfigurationError(f"{source}: no acceptance metrics found (only k); expected an acceptance length or "
                                 "per-position counts or rates")
    al = float(np.mean(per_step))
    if not 1.0 <= al <= k_eff + 1:
        raise ConfigurationError(f"{source}: mean acceptance length {al:.3f} is impossible at k = {k_eff}; allowed 1..{k_eff + 1}")
    rate = _solve_constant_rate(k_eff, al)
    notes.append(f"only acceptance lengths logged: constant conditional rate {rate:.4f} at k = {k_eff}")
    return TraceFit(k_eff, [rate ** (i + 1) for i in range(k_eff)], al, source=source, per_step_acceptance_length=per_step,
                    notes=notes)


def load_acceptance_trace(path: str | Path, baseline: str | Path | None = None, k: int | None = None) -> TraceFit:
    """Fit acceptance from a file: vLLM Prometheus text, JSON (object, list of objects, get_metrics dump) or JSONL."""
    p = Path(path)
    text = _read_text(p, "--acceptance-from")
    src = p.name
    stripped = text.lstrip()
    if not stripped:
        raise ConfigurationError(f"--acceptance-from {path}: empty file")
    if "SpecDecoding metrics:" in text:
        return fit_vllm_log(text, src)
    if stripped[0] in "[{":
        records: list | None = None
        try:
            obj = json.loads(text)
            records = _get_metrics_records(obj, src)
            if records is None:
                records = obj if isinstance(obj, list) else [obj]
        except RecursionError:
            raise ConfigurationError(f"{src}: JSON nested too deeply to read") from None
        except json.JSONDecodeError:
            records = []
            for n, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except RecursionError:
                        raise ConfigurationError(f"{src}: line {n}: JSON nested too deeply to read") from None
                    except json.JSONDecodeError as e:
                        raise ConfigurationError(f"{src}: line {n} is not JSON ({e.msg}); expected JSON, JSONL or "
                                                 "Prometheus text") from None
        return fit_json_records(records, src, k)
    base = _read_text(Path(baseline), "baseline") if baseline is not None else None
    fit = fit_prometheus(text, base, src)
    fit.format = ("vLLM Prometheus scrape" + (" minus a baseline scrape" if baseline is not None else "")
                  + "; counters vllm:spec_decode_num_drafts, _num_draft_tokens, _num_accepted_tokens, "
                  + "_num_accepted_tokens_per_pos{position}")
    return fit


_LOG_LINE = re.compile(r"SpecDecoding metrics:.*?Mean acceptance length:\s*([0-9.]+).*?Accepted:\s*([0-9]+)\s*tokens,"
                       r"\s*Drafted:\s*([0-9]+)\s*tokens,\s*Per-position acceptance rate:\s*([0-9.,\s]+?)\s*,\s*Avg")


def fit_vllm_log(text: str, source: str = "vllm log") -> TraceFit:
    """Fit from vLLM's periodic ``SpecDecoding metrics`` log lines (vllm/v1/spec_decode/metrics.py,
    ``SpecDecodingLogging.log``): each interval's accepted and drafted tokens and per-position rates; an interval's
    drafts are its drafted tokens / k (EAGLE / MTP / draft-model always propose k), its per-position counts the
    rates x drafts; intervals are summed."""
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if "SpecDecoding metrics:" not in line:
            continue
        m = _LOG_LINE.search(line)
        if not m:
            raise ConfigurationError(f"{source}: line {n} is a SpecDecoding metrics line rlsim cannot read ({line.strip()[:80]!r}); "
                                     "expected vLLM's format: Mean acceptance length: X, ..., Accepted: N tokens, "
                                     "Drafted: M tokens, Per-position acceptance rate: a, b, c, Avg Draft acceptance rate")
        rates = [float(x) for x in m.group(4).replace(" ", "").split(",") if x]
        rows.append((float(m.group(1)), float(m.group(2)), float(m.group(3)), rates))
    ks = {len(r[3]) for r in rows}
    if len(ks) != 1 or 0 in ks:
        raise ConfigurationError(f"{source}: the SpecDecoding lines give {sorted(ks)} draft positions; allowed: the same "
                                 "k on every line (one engine configuration)")
    k = ks.pop()
    if k > MAX_TRACE_POSITIONS:
        raise ConfigurationError(f"{source}: {k} draft positions; allowed: up to {MAX_TRACE_POSITIONS}")
    drafts = sum(r[2] / k for r in rows)
    accepted = sum(r[1] for r in rows)
    per_pos = [sum(r[3][i] * r[2] / k for r in rows) for i in range(k)]
    fit = _fit_counts(drafts, sum(r[2] for r in rows), accepted, per_pos, source)
    fit.per_step_acceptance_length = [r[0] for r in rows]
    fit.format = f"vLLM SpecDecoding log lines, {len(rows)} interval(s); drafts = drafted tokens / k"
    fit.notes = [n for n in fit.notes if "sum to" not in n]  # the printed rates are rounded to 3 decimals
    return fit


def _read_text(p: Path, flag: str) -> str:
    if p.is_dir():
        raise ConfigurationError(f"{flag} {p}: is a folder; allowed: a metrics file")
    if not p.is_file():
        raise ConfigurationError(f"{flag} {p}: no such file")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigurationError(f"{flag} {p}: not a UTF-8 text file (byte {e.start}: {e.object[e.start:e.start + 1]!r}); "
                                 "allowed: vLLM Prometheus text, JSON or JSONL") from None
    except OSError as e:
        raise ConfigurationError(f"{flag} {p}: cannot read: {e.strerror}") from None


# ---------------------------------------------------------------------------------------------- AL curve
def fit_al_curve(al_by_k: dict[int, float]) -> list[float]:
    """Unconditional per-position rates from mean ALs measured at several k (e.g. the study's RL-Zero
    EAGLE-3: {3: 3.32, 5: 4.35, 7: 5.06}). Piecewise geometric: a constant conditional rate over the
    positions up to the smallest k, then a constant conditional rate over each next stretch, solved so
    that every measured AL is matched exactly. Returns p_0..p_{kmax-1}."""
    if not al_by_k:
        raise ConfigurationError("empty AL curve")
    ks = sorted(int(k) for k in al_by_k)
    if ks[0] < 1:
        raise ConfigurationError(f"AL curve has k = {ks[0]}; allowed: >= 1")
    p: list[float] = []
    prev_k, prev_al, last_p = 0, 1.0, 1.0
    for k in ks:
        al = float(al_by_k[k])
        gain = al - prev_al  # sum of p over positions prev_k..k-1
        n = k - prev_k
        if gain < -1e-9 or gain > n * last_p + 1e-9:
            raise ConfigurationError(
                f"AL {al} at k = {k} is inconsistent with AL {prev_al} at k = {prev_k}: the {n} extra positions can add "
                f"0..{n * last_p:.3f} (rates cannot rise with position)")
        # last_p * (c + c^2 + ... + c^n) = gain
        c = _solve_constant_rate(n, 1.0 + gain / last_p) if last_p > 0 else 0.0
        for j in range(1, n + 1):
            p.append(last_p * c ** j)
        prev_k, prev_al, last_p = k, al, p[-1]
    return p


def parse_al_curve(text: str) -> dict[int, float]:
    """``"3:3.32,5:4.35,7:5.06"`` -> {3: 3.32, 5: 4.35, 7: 5.06}."""
    out = {}
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*:\s*([0-9.]+)\s*", part)
        if not m:
            raise ConfigurationError(f"AL curve entry {part.strip()!r} is not K:AL (e.g. '3:3.32,5:4.35')")
        out[int(m.group(1))] = float(m.group(2))
    return out


# The study's measured EAGLE-3 (DAPO-initialised, offline) ALs at k = 3, 5, 7 (shared/reference/paper-8b.md).
STUDY_AL_CURVES = {
    "rl-zero": {3: 3.32, 5: 4.35, 7: 5.06},
    "rl-think": {3: 2.77, 5: 3.23, 7: 3.48},
}

__all__ = ["STUDY_AL_CURVES", "TraceFit", "fit_al_curve", "fit_json_records", "fit_prometheus", "fit_vllm_log",
           "load_acceptance_trace",
           "parse_al_curve", "parse_prometheus"]

