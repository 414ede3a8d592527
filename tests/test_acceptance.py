import numpy as np
import pytest

from rlsim.errors import ConfigurationError
from rlsim.speculation import AcceptanceModel, DraftQuality, resolve_drafter
from rlsim.catalog import load_model


@pytest.mark.parametrize("k,al", [(1, 1.5), (3, 3.32), (5, 4.35), (7, 5.06), (3, 1.0), (3, 4.0)])
def test_al_roundtrip_and_sampling(k, al):
    m = AcceptanceModel.from_acceptance_length(k, al)
    assert m.acceptance_length == pytest.approx(al, abs=1e-6)
    assert m.pmf.sum() == pytest.approx(1.0)
    adv = m.sample_advance(np.random.default_rng(0), 200_000)
    assert adv.min() >= 1 and adv.max() <= k + 1
    assert adv.mean() == pytest.approx(al, rel=0.01)


def test_impossible_al_is_rejected_with_bounds():
    with pytest.raises(ConfigurationError, match="1 <= AL <= k\\+1 = 4"):
        AcceptanceModel.from_acceptance_length(3, 4.5)


def test_unconditional_rates_vllm_definition():
    # vLLM per-position: P(first i+1 accepted); AL = 1 + sum
    m = AcceptanceModel.from_unconditional_rates([0.8, 0.6, 0.4])
    assert m.acceptance_length == pytest.approx(2.8)
    np.testing.assert_allclose(m.unconditional_rates, [0.8, 0.6, 0.4])
    with pytest.raises(ConfigurationError, match="must not increase"):
        AcceptanceModel.from_unconditional_rates([0.5, 0.7])


def test_quality_axis_maps_to_al_at_every_k():
    q = DraftQuality(0.8)
    als = [q.at_k(k).acceptance_length for k in range(0, 8)]
    assert als[0] == 1.0
    assert all(b > a for a, b in zip(als, als[1:]))
    assert als[-1] < 1 / (1 - 0.8)  # geometric limit
    decayed = DraftQuality(0.8, 0.9).at_k(5).acceptance_length
    assert decayed < q.at_k(5).acceptance_length


def test_drafter_errors():
    m = load_model("qwen3-8b")
    with pytest.raises(ConfigurationError, match="mtp_num_layers = 0"):
        resolve_drafter(m, "mtp")
    with pytest.raises(ConfigurationError, match="allowed: eagle3, mtp, draft-model, ngram"):
        resolve_drafter(m, "medusa")
    assert resolve_drafter(m, "ngram").network is None
    assert resolve_drafter(m, "draft-model").network.name == "qwen3-0.6b"
