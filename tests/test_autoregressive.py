"""Shared decoding loop: sampling filters, constraints, seeds, cache vs. no cache."""

import pytest
import torch

from studio.autoregressive import Constraint, DecodeSpec, SamplingSpec, apply_constraints, filter_logits, generate, sample_next


class Bigram:
    """A toy StepModel: logits depend on the previous token only; counts calls for the cache path."""

    def __init__(self, V=12, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.table = torch.randn(V, V, generator=g) * 3
        self.calls = []

    def new_state(self, batch, window):
        return {"n": 0}

    def forward(self, tokens, state):
        self.calls.append(tokens.shape[1])
        return self.table[tokens]  # (B, T, V)


class EvenOnly(Constraint):
    def __init__(self):
        self.seen = []

    def allowed(self, V):
        m = torch.zeros(V, dtype=torch.bool)
        m[::2] = True
        return m

    def advance(self, token):
        self.seen.append(token)


def test_top_k_and_top_p_keep_the_right_tokens():
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0]])
    assert torch.isfinite(filter_logits(logits, SamplingSpec(top_k=2))).sum() == 2
    probs = logits.softmax(-1)[0]
    # nucleus 0.9: smallest prefix whose mass reaches 0.9
    need = int((probs.cumsum(0) < 0.9).sum()) + 1
    kept = torch.isfinite(filter_logits(logits, SamplingSpec(top_p=0.9)))[0]
    assert kept.sum() == need and kept[:need].all()


def test_greedy_and_temperature():
    logits = torch.tensor([[0.0, 5.0, 1.0]])
    assert sample_next(logits, SamplingSpec(temperature=0)).item() == 1
    with pytest.raises(ValueError, match="temperature"):
        SamplingSpec(temperature=-1)
    with pytest.raises(ValueError, match="top_p"):
        SamplingSpec(top_p=0)


def test_seed_reproducible_and_cache_matches_recompute():
    m = Bigram()
    prompt = torch.tensor([[1], [2]])
    spec = DecodeSpec(20, SamplingSpec(temperature=1.0, top_p=0.95))
    a = generate(m, prompt, spec, generator=torch.Generator().manual_seed(3))
    b = generate(m, prompt, spec, generator=torch.Generator().manual_seed(3))
    c = generate(m, prompt, DecodeSpec(20, spec.sampling, use_cache=False), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and torch.equal(a, c)
    assert a.shape == (2, 21)


def test_constraints_mask_and_advance():
    cons = [EvenOnly(), None]
    out = generate(Bigram(), torch.tensor([[1], [1]]), DecodeSpec(30), cons, torch.Generator().manual_seed(0))
    assert (out[0, 1:] % 2 == 0).all()
    assert cons[0].seen[0] == 1 and cons[0].seen[1:] == out[0, 1:].tolist()  # prompt consumed, then every token
    masked = apply_constraints(torch.zeros(1, 4), [EvenOnly()])
    assert torch.isinf(masked[0, 1]) and masked[0, 0] == 0


def test_eos_stops_rows_and_callback_can_cancel():
    m = Bigram()
    m.table[:, 5] = 100.0  # always EOS
    out = generate(m, torch.tensor([[1]]), DecodeSpec(10, eos_id=5), generator=torch.Generator().manual_seed(0))
    assert out.tolist() == [[1, 5]]

    def cb(i, n, seq):
        if i == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(Bigram(), torch.tensor([[1]]), DecodeSpec(10), callback=cb)
