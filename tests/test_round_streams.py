"""The per-sequence round streams (engine/replica.py ``_AdvanceStreams._rows``) hold, row after row, the row's offset
then its cumulative advances: checked against the plain per-row construction, for short and long rows, rows of
zero rounds anywhere, with and without row offsets."""

import numpy as np

from rlsim.engine.replica import _AdvanceStreams


class _Fixed:
    """A policy whose advances are given (the stream layout is what is under test)."""

    def __init__(self, adv):
        self.adv = adv

    def sample_rounds(self, rng, k, rounds, idx, before):
        return self.adv


def _plain(adv, rounds, row_ids):
    out, pos = [], 0
    for j, r in enumerate(rounds):
        off = 0 if row_ids is None else int(row_ids[j]) * int(_AdvanceStreams.BIG)
        out.append(off)
        out.extend((off + np.cumsum(adv[pos: pos + r].astype(np.int64))).tolist())
        pos += r
    return np.array(out, np.int64)


def test_rows_match_the_plain_construction():
    rng = np.random.default_rng(11)
    for trial in range(300):
        n = int(rng.integers(0, 12))
        rounds = rng.integers(0, 3000 if trial % 2 else 6, n)
        if n and trial % 3 == 0:
            rounds[rng.integers(0, n, 2)] = 0  # rows with no rounds, at the ends too
        adv = rng.integers(1, 9, int(rounds.sum())).astype(np.int8 if trial % 4 else np.int64)
        row_ids = None if trial % 5 == 0 else np.sort(rng.choice(10_000, n, replace=False))
        streams = _AdvanceStreams(_Fixed(adv), rng)
        vals, start, slots = streams._rows(3, np.arange(n), rounds, np.zeros(n, np.int64), row_ids)
        assert np.array_equal(vals, _plain(adv, rounds, row_ids)), trial
        assert np.array_equal(slots, rounds + 1)
        assert np.array_equal(start, np.concatenate([[0], np.cumsum(rounds + 1)[:-1]]).astype(np.int64)[:n])
