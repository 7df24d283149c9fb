"""Theme Transformer layers: the gate's behaviour, XOR layers, KV-cache decode == full forward."""

import pytest
import torch

from studio.autoregressive import DecodeSpec, SamplingSpec, generate
from studio.tasks.music.grammar import RemiGrammar, track
from studio.tasks.music.model import GatedParallelLayer, PromptDecoder, ThemeTransformer
from studio.tasks.music.stepper import BaselineStepper, ThemeStepper
from studio.tasks.music.vocab import VOCAB

D, H = 32, 4


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # small ops on a CPU shared with other jobs: one thread avoids OpenMP oversubscription
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _randomize(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return module.eval()


def _layer_inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 10, D, generator=g)
    gate = torch.zeros(2, 10, 1)
    gate[:, 3:7] = 1.0  # tokens 3..6 lie in a theme region
    tpos = torch.randn(2, 10, D, generator=g)
    theme = torch.randn(2, 5, D, generator=g)
    return x, gate, tpos, theme, torch.ones(2, 5, dtype=torch.bool)


def test_cross_attention_has_no_effect_outside_theme_regions():
    for kind in ("parallel", "xor"):
        layer = _randomize(GatedParallelLayer(D, H, kind))
        x, gate, tpos, theme, mask = _layer_inputs()
        a = layer(x, gate, tpos, theme, mask)
        b = layer(x, gate, tpos, theme * -2 + 1, mask)
        outside = gate[..., 0] == 0
        assert torch.allclose(a[outside], b[outside], atol=1e-6)
        assert not torch.allclose(a[~outside], b[~outside], atol=1e-3)  # inside, the theme matters


def test_xor_layers_switch_self_attention_off_inside_theme_regions():
    x, gate, tpos, theme, mask = _layer_inputs()
    x2 = x.clone()
    x2[:, :3] = torch.randn(2, 3, D, generator=torch.Generator().manual_seed(9))  # other tokens before the region
    inside = gate[..., 0] == 1
    xor = _randomize(GatedParallelLayer(D, H, "xor"))
    assert torch.allclose(xor(x, gate, tpos, theme, mask)[inside], xor(x2, gate, tpos, theme, mask)[inside], atol=1e-5)
    par = _randomize(GatedParallelLayer(D, H, "parallel"))  # parallel layers do see the context
    assert not torch.allclose(par(x, gate, tpos, theme, mask)[inside], par(x2, gate, tpos, theme, mask)[inside], atol=1e-3)


def test_cross_branch_starts_as_zero():
    layer = GatedParallelLayer(D, H, "parallel")
    assert layer.cross_attn.to_out.weight.abs().sum() == 0 and layer.cross_attn.to_out.bias.abs().sum() == 0


def _song_ids():
    ev = ["BOS", "Bar_16", "Tempo_124", "Position_0", "MelOn_60", "Duration_4", "Velocity_64",
          "Theme_Start", "Bar_16", "Position_0", "MelOn_62", "Duration_4", "Velocity_64", "AccOn_48", "Duration_8",
          "Velocity_64", "Position_8", "MelOn_64", "Duration_8", "Velocity_64",
          "Bar_16", "Position_4", "MelOn_65", "Duration_2", "Velocity_64", "Theme_End",
          "Bar_16", "Position_0", "MelOn_67", "Duration_16", "Velocity_64"]
    return torch.tensor([VOCAB.encode(ev)])


def _tiny_theme_model():
    m = ThemeTransformer(len(VOCAB), dim=D, heads=H, enc_layers=1, dec_layers=2, context=64)
    return _randomize(m, 1)


def _theme():
    ids = VOCAB.encode(["Bar_16", "Position_0", "MelOn_62", "Duration_4", "Velocity_64", "Position_8", "MelOn_64",
                        "Duration_8", "Velocity_64"])
    from studio.tasks.music.windows import theme_inputs

    ids, offs = theme_inputs(VOCAB.decode(ids))
    return torch.tensor([ids]), torch.tensor([offs])


def test_theme_is_invisible_before_the_first_theme_region():
    m = _tiny_theme_model()
    ids = _song_ids()
    g, o, valid = track(ids[0].tolist())
    assert valid
    th, to = _theme()
    mask = torch.ones_like(th, dtype=torch.bool)
    a = m(ids, torch.tensor([g]), torch.tensor([o]), m.encode_theme(th, to, mask), mask)
    b = m(ids, torch.tensor([g]), torch.tensor([o]), m.encode_theme(th.flip(1), to, mask), mask)
    first = g.index(1)
    assert torch.allclose(a[:, :first], b[:, :first], atol=1e-5)
    assert not torch.allclose(a[:, first:], b[:, first:], atol=1e-3)


def test_kv_cache_decode_equals_full_forward():
    m = _tiny_theme_model()
    ids = _song_ids()
    th, to = _theme()
    stepper = ThemeStepper(m, th, to)
    full = stepper.forward(ids, None)  # (1, N, V) recomputed from the whole sequence
    state = stepper.new_state(1, None)
    steps = [stepper.forward(ids[:, :5], state)]  # a prompt, then one token at a time
    steps += [stepper.forward(ids[:, i : i + 1], state) for i in range(5, ids.shape[1])]
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-4)
    base = _randomize(PromptDecoder(len(VOCAB), dim=D, heads=H, n_layers=2, context=64), 2)
    bs = BaselineStepper(base)
    st = bs.new_state(1, None)
    inc = torch.cat([bs.forward(ids[:, i : i + 1], st) for i in range(ids.shape[1])], 1)
    assert torch.allclose(inc, bs.forward(ids, None), atol=1e-4)


def test_sliding_window_bounds_the_cache_and_generation_is_grammatical():
    m = _tiny_theme_model()
    th, to = _theme()
    stepper = ThemeStepper(m, th, to)
    state = stepper.new_state(1, 16)
    for i in range(40):
        stepper.forward(torch.tensor([[VOCAB.bos if i == 0 else VOCAB.id("Bar_16")]]), state)
    assert state.caches[0].self_attn.length == 16 and state.pos == 40
    gram = RemiGrammar(max_bars=4, meter=16)
    spec = DecodeSpec(120, SamplingSpec(1.0), eos_id=VOCAB.eos, window=24)
    out = generate(stepper, torch.tensor([[VOCAB.bos]]), spec, [gram], torch.Generator().manual_seed(0))
    toks = out[0].tolist()
    assert len(toks) > 24 and track(toks)[2] and 1 <= gram.bars <= 4  # random weights: valid, not finished
