"""The speculative-decoding policy an engine replica runs (``SpecPolicy``): k per iteration as a function of the
live decode batch (a fixed k, a batch-size schedule, or a draft tree's verified tokens) and the draft's
acceptance at each k, from which the rounds' advances are drawn. ``VariableAcceptancePolicy``
(``variable_acceptance.py``) varies the acceptance across sequences and along a response."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .acceptance import AcceptanceModel


@dataclass
class SpecPolicy:
    """k per iteration as a function of the live decode batch size (vLLM's
    ``num_speculative_tokens_per_batch_size``), and the draft's acceptance at any k."""

    acceptance: AcceptanceModel
    k_for_batch: Callable[[int], int] | None = None
    _cache: dict = field(default_factory=dict)
    # a draft tree (rlsim/speculation/trees.py): every round verifies ``verify_k`` speculative tokens per sequence
    # and advances by the accepted path + 1, whose distribution is ``acceptance`` (k = the tree's depth)
    verify_k: int | None = None

    def k(self, batch: int) -> int:
        if self.k_for_batch is None:
            return self.acceptance.k if self.verify_k is None else self.verify_k
        return int(self.k_for_batch(batch))

    def at(self, k: int) -> AcceptanceModel:
        m = self._cache.get(k)
        if m is None:
            m = self._cache[k] = self.acceptance if k == self.verify_k else self.acceptance.at_k(k)
        return m

    def expected_advance(self, k: int) -> float:
        """Mean tokens per round at k (sizes the pre-drawn streams)."""
        return self.at(k).acceptance_length

    def sample_rounds(self, rng: np.random.Generator, k: int, rounds: np.ndarray, seq_index: np.ndarray,
                      tokens_before: np.ndarray) -> np.ndarray:
        """Advances (accepted + 1) of the next ``rounds[i]`` rounds of each sequence ``seq_index[i]``,
        concatenated sequence after sequence (flat int array of length rounds.sum()).

        ``tokens_before[i]``: tokens the sequence had generated in this stream before these rounds.
        The default draws i.i.d. rounds from the draft's acceptance at k. Subclasses (acceptance that
        varies across sequences or with the position in the response) override this."""
        return self.at(k).sample_advance(rng, int(np.sum(rounds)))
