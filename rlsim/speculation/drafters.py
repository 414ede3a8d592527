"""Drafters and what each costs per round (the cost itself is charged by the cost model).

- ``eagle3`` (default): the model's EAGLE-3 head: k draft passes of one decoder layer (the first
  over all B*(k+1) positions, the rest over B tokens), fc fusion of 3 hidden states, a reduced-vocab
  LM head per pass.
- ``mtp``: the model's own multi-token-prediction layer(s); only models that ship them.
- ``draft-model``: a separate small model of the same tokenizer, k full forward passes.
- ``ngram``: prompt lookup on the CPU; no GPU pass, but host time per sequence and no async scheduling.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..catalog import DraftSpec, ModelSpec, list_models, load_draft, load_model
from ..errors import ConfigurationError

DRAFTERS = ("eagle3", "mtp", "draft-model", "ngram")


@dataclass(frozen=True)
class Drafter:
    method: str
    network: DraftSpec | ModelSpec | None

    @property
    def name(self) -> str:
        return self.method if self.network is None else f"{self.method} ({self.network.name})"


def resolve_drafter(model: ModelSpec, method: str, draft_model: str | None = None) -> Drafter:
    if method not in DRAFTERS:
        raise ConfigurationError(f"unknown drafter {method!r}; allowed: {', '.join(DRAFTERS)}")
    if method == "ngram":
        return Drafter("ngram", None)
    if method == "mtp":
        if model.mtp_num_layers < 1:
            with_mtp = sorted({n for n in list_models().values() if load_model(n).mtp_num_layers > 0})
            raise ConfigurationError(
                f"drafter 'mtp' needs a model that ships MTP heads; {model.name} has mtp_num_layers = 0 "
                f"(models with MTP in the catalog: {', '.join(with_mtp) or 'none'}); use eagle3, draft-model or ngram")
        return Drafter("mtp", model)
    if method == "eagle3":
        name = model.drafts.get("eagle3")
        if not name:
            raise ConfigurationError(f"{model.name} has no EAGLE-3 head in the catalog (its `drafts.eagle3` is empty)")
        head = load_draft(name)
        if head.target not in {model.name, *model.aliases} or head.hidden_size != model.hidden_size:
            raise ConfigurationError(
                f"{model.name}: drafts.eagle3 = {name!r} is a head for {head.target!r} (hidden_size {head.hidden_size}); "
                f"it must target {model.name} (hidden_size {model.hidden_size})")
        return Drafter("eagle3", head)
    name = draft_model or model.drafts.get("draft-model")
    if not name:
        raise ConfigurationError(f"drafter 'draft-model' needs --draft-model; {model.name} names no default")
    d = load_model(name)
    if d.vocab_size != model.vocab_size:
        raise ConfigurationError(
            f"draft model {d.name} has vocab_size {d.vocab_size}, target {model.name} has {model.vocab_size}: "
            "a draft model must share the target's tokenizer")
    return Drafter("draft-model", d)
