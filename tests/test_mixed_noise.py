"""PYoCo's mixed noise prior: unit variance per element, correlation ρ between frames, and ρ = 0
is exactly the plain Gaussian stream (so models trained before it reproduce)."""

import pytest
import torch

from studio.diffusion import mixed_noise


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_unit_variance_and_frame_correlation(rho):
    x = mixed_noise((64, 3, 8, 16, 16), rho, dim=2, generator=torch.Generator().manual_seed(0))
    assert abs(x.std().item() - 1.0) < 0.02 and abs(x.mean().item()) < 0.02
    a, b = x[:, :, 0].flatten(), x[:, :, 5].flatten()  # two frames
    corr = torch.corrcoef(torch.stack([a, b]))[0, 1].item()
    assert abs(corr - rho) < 0.03
    c, d = x[:, :, :, 0, 0].flatten(), x[:, :, :, 3, 7].flatten()  # two pixels: never correlated
    assert abs(torch.corrcoef(torch.stack([c, d]))[0, 1].item()) < 0.12  # ~200 independent samples


def test_zero_correlation_is_the_plain_stream_and_bad_rho_is_named():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(mixed_noise((2, 3, 4), 0.0, generator=g1), torch.randn((2, 3, 4), generator=g2))
    with pytest.raises(ValueError, match="correlation"):
        mixed_noise((2, 3, 4), 1.0)
