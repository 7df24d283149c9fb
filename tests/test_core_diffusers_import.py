"""A random tiny diffusers DiTTransformer2DModel, saved and imported, matches the core DiT to 1e-5."""

import pytest
import torch

from studio.core.diffusers_import import DiffusersImportError, dit_from_diffusers

DiTTransformer2DModel = pytest.importorskip("diffusers").DiTTransformer2DModel


def _tiny(seed=0, tie=True, **kw):
    torch.manual_seed(seed)
    cfg = dict(
        num_attention_heads=2, attention_head_dim=16, in_channels=4, out_channels=8, num_layers=3,
        sample_size=8, patch_size=2, num_embeds_ada_norm=10,
    )
    model = DiTTransformer2DModel(**{**cfg, **kw}).eval()
    if tie:
        # real diffusers DiT checkpoints carry the original DiT's one embedder copied into every block
        with torch.no_grad():
            state = model.state_dict()
            for key in [k for k in state if k.startswith("transformer_blocks.0.norm1.emb.")]:
                for i in range(1, model.config.num_layers):
                    state[key.replace("blocks.0.", f"blocks.{i}.")].copy_(state[key])
    return model


def test_diffusers_dit_parity_after_save_and_load(tmp_path):
    ref = _tiny()
    ref.save_pretrained(tmp_path / "transformer")
    core = dit_from_diffusers(tmp_path)  # finds the transformer/ subfolder like a pipeline dir
    assert core.config.learn_sigma and core.config.num_classes == 10
    x = torch.randn(3, 4, 8, 8)
    t = torch.tensor([0, 437, 999])
    y = torch.tensor([0, 7, 10])  # 10 = null class (CFG)
    with torch.no_grad():
        expected = ref(x, timestep=t, class_labels=y).sample
        got = core(x, t, y)
    assert expected.abs().max() > 0.1  # a non-trivial output
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_attention_bias_false_and_default_eps_also_match():
    ref = _tiny(seed=1, attention_bias=False, norm_eps=1e-6)
    core = dit_from_diffusers(ref)
    x, t, y = torch.randn(2, 4, 8, 8), torch.tensor([5, 800]), torch.tensor([1, 2])
    with torch.no_grad():
        torch.testing.assert_close(core(x, t, y), ref(x, t, y).sample, atol=1e-5, rtol=1e-5)


def test_untied_block_embedders_are_refused_with_the_key():
    with pytest.raises(DiffusersImportError, match="transformer_blocks.1.norm1.emb"):
        dit_from_diffusers(_tiny(tie=False))


def test_missing_path_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="path"):
        dit_from_diffusers(tmp_path / "nope")
