"""A small video DiT for image animation, built from the shared core blocks.

Input: the noisy clip (B, 3, T, H, W) channel-concatenated with the reference frame repeated over
time (image-to-video as in CogVideoX-I2V / VFX Creator), cut into (pt, ph, pw) patches. Text comes
in as MiniLM token states through cross-attention and as the pooled sentence vector added to the
timestep embedding. Two context slots after the text are reserved for the timestamp tokens:
the base always sees zeros there, so a controllable adapter that fills them with
``LayerNorm(W·log t + b)`` (zero at init) starts as an exact identity of the base.

Space-time attention is a typed choice: ``FullSpaceTime`` attends over all T·H·W tokens in each
block; ``FactorisedSpaceTime`` alternates spatial blocks (within a frame, with text cross-attention)
and temporal blocks (along time at one position). Same depth, nearly the same parameter count.

Extension points used by the controls (``controls.py``): ``block_residuals`` (a tensor added to the
hidden states before each of the first blocks — the mask branch), ``cond_extra`` (added to the
conditioning vector — the rejected per-frame "effect active" alternative) and ``return_hidden``
(the last block's tokens, read by the skip's frame mixing).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from studio.core.blocks import DiTBlock, FinalLayer
from studio.core.embeddings import PatchEmbed3d, TimestepEmbedder, sincos_3d, unpatchify_3d

TEXT_DIM = 384  # MiniLM-L6 token states
TIME_SLOTS = 2  # start and end tokens


@dataclass(frozen=True)
class FullSpaceTime:
    """Every block attends over all space-time tokens."""


@dataclass(frozen=True)
class FactorisedSpaceTime:
    """Blocks alternate: spatial attention within each frame, then temporal along each position."""


LAYOUTS = {"full": FullSpaceTime(), "factorised": FactorisedSpaceTime()}

# How the network's output becomes ẑ0 (read by ``objective.VfxModel``; stored in the config so a
# saved base is sampled the way it was trained). "edm": ẑ0 = c_skip·x_t + c_out·F (Karras et al.
# 2022); "gated": the same, but a per-pixel gate the network outputs (an extra channel) scales the
# skip; "x": ẑ0 = σ_d·F, the network predicts the clean latent itself (JiT, Li & He 2025).
# "gated_mean": two gates, one on the clip's frame mean of x_t and one on each frame's deviation from it, so
# the network can keep the shared noise (the details all frames have in common) and shut out each frame's own.
PRECONDITIONING = ("edm", "gated", "x", "gated_mean")
GATE_CHANNELS = {"edm": 0, "gated": 1, "x": 0, "gated_mean": 2}
# ``frame_noise_correlation`` ρ: the diffusion noise the model is trained and sampled with is
# correlated ρ across frames (PYoCo's mixed noise prior, ``studio.diffusion.mixed_noise``); also
# read by the objective and the pipeline, and stored here so a saved base carries it.

# Named size presets (data, so the CLI and configs can list them).
VFX_PRESETS: dict[str, dict] = {
    "VfxDiT-Tiny": dict(hidden_size=128, depth=4, num_heads=4, patch_size=(2, 4, 4)),
    "VfxDiT-Micro": dict(hidden_size=64, depth=2, num_heads=2, patch_size=(2, 4, 4)),
}


class VideoDiT(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(
        self,
        sample_frames: int = 16,
        sample_size: int = 32,
        patch_size: tuple[int, int, int] = (2, 4, 4),
        in_channels: int = 3,
        hidden_size: int = 128,
        depth: int = 4,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        context_dim: int = TEXT_DIM,
        attention: str = "full",
        preconditioning: str = "edm",
        frame_noise_correlation: float = 0.0,
    ):
        super().__init__()
        if attention not in LAYOUTS:
            raise ValueError(f"attention: unknown {attention!r}; choose from {', '.join(LAYOUTS)}")
        if preconditioning not in PRECONDITIONING:
            raise ValueError(f"preconditioning: unknown {preconditioning!r}; choose from {', '.join(PRECONDITIONING)}")
        if not 0.0 <= frame_noise_correlation < 1.0:
            raise ValueError(f"frame_noise_correlation: {frame_noise_correlation} must be in [0, 1)")
        self.layout = LAYOUTS[attention]
        self.patch = tuple(patch_size)
        self.x_embedder = PatchEmbed3d(self.patch, 2 * in_channels, hidden_size)  # noisy clip + reference
        self.t_embedder = TimestepEmbedder(hidden_size)
        self.pooled_embedder = nn.Sequential(nn.Linear(context_dim, hidden_size), nn.SiLU(),
                                             nn.Linear(hidden_size, hidden_size))
        self.blocks = nn.ModuleList(self._block(i) for i in range(depth))
        self.out_channels = in_channels + GATE_CHANNELS[preconditioning]  # + the skip gate(s)
        self.final_layer = FinalLayer(hidden_size, self.patch[0] * self.patch[1] * self.patch[2], self.out_channels)
        self._init_weights()

    def _block(self, i: int) -> DiTBlock:
        cfg = self.config
        # in the factorised layout only the spatial blocks read the text; temporal ones mix time
        cross = isinstance(self.layout, FullSpaceTime) or self.is_spatial(i)
        return DiTBlock(cfg.hidden_size, cfg.num_heads, cfg.mlp_ratio, context_dim=cfg.context_dim if cross else None)

    def is_spatial(self, i: int) -> bool:
        return isinstance(self.layout, FactorisedSpaceTime) and i % 2 == 0

    def _init_weights(self) -> None:
        # DiT's init: xavier linears, but the zero-initialised ones (adaLN, final layer, the
        # cross-attention output) stay zero so a fresh block is the identity
        zero = ("adaLN_modulation", "final_layer", "cross_attn.to_out")
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear) and not any(z in name for z in zero):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        w = self.x_embedder.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)

    def grid(self, x: torch.Tensor) -> tuple[int, int, int]:
        return self.x_embedder.grid(x)

    def forward(
        self,
        x: torch.Tensor,  # (B, C, T, H, W) noisy clip
        t: torch.Tensor,  # (B,) diffusion timesteps
        ref: torch.Tensor,  # (B, C, H, W) reference frame
        context: torch.Tensor,  # (B, L, 384) text tokens
        context_mask: torch.Tensor,  # (B, L) bool, True = keep
        pooled: torch.Tensor,  # (B, 384)
        time_tokens: torch.Tensor | None = None,  # (B, 2, 384) or None = the reserved zeros
        block_residuals: list[torch.Tensor] | None = None,  # each (B, N, D), added before block i
        cond_extra: torch.Tensor | None = None,  # (B, D) added to the conditioning vector
        return_hidden: bool = False,  # also return the last block's tokens (B, N, D) and the conditioning (B, D)
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, C, T, H, W = x.shape
        inp = torch.cat([x, ref[:, :, None].expand(-1, -1, T, -1, -1)], dim=1)  # (B, 2C, T, H, W)
        grid = self.grid(inp)
        h = self.x_embedder(inp) + self._pos(grid, x.device).to(x.dtype)  # (B, N, D)
        c = self.t_embedder(t, dtype=h.dtype) + self.pooled_embedder(pooled.to(h.dtype))  # (B, D)
        if cond_extra is not None:
            c = c + cond_extra
        context, context_mask = with_time_slots(context, context_mask, time_tokens)
        for i, block in enumerate(self.blocks):
            if block_residuals is not None and i < len(block_residuals):
                h = h + block_residuals[i]
            h = self._run_block(i, block, h, c, grid, context, context_mask)
        out = unpatchify_3d(self.final_layer(h, c), self.patch, grid, self.out_channels)  # (B, C_out, T, H, W)
        return (out, h, c) if return_hidden else out

    def _run_block(self, i, block, h, c, grid, context, context_mask) -> torch.Tensor:
        if isinstance(self.layout, FullSpaceTime):
            return block(h, c, grid=grid, context=context, context_mask=context_mask)
        B, N, D = h.shape
        gt, gh, gw = grid
        if self.is_spatial(i):
            hs = h.reshape(B * gt, gh * gw, D)  # one sequence per frame
            rep = lambda z: z.repeat_interleave(gt, 0)  # noqa: E731
            out = block(hs, rep(c), grid=(gh, gw), context=rep(context), context_mask=rep(context_mask))
            return out.reshape(B, N, D)
        ht = h.reshape(B, gt, gh * gw, D).transpose(1, 2).reshape(B * gh * gw, gt, D)  # one sequence per position
        out = block(ht, c.repeat_interleave(gh * gw, 0), grid=(gt,))
        return out.reshape(B, gh * gw, gt, D).transpose(1, 2).reshape(B, N, D)

    def _pos(self, grid: tuple[int, int, int], device) -> torch.Tensor:
        return sincos_3d(self.config.hidden_size, *grid, device=device)[None]  # (1, N, D)


def with_time_slots(context: torch.Tensor, mask: torch.Tensor,
                    time_tokens: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Append the two timestamp slots (zeros when there are no timestamp tokens) to the text."""
    B = context.shape[0]
    if time_tokens is None:
        time_tokens = context.new_zeros(B, TIME_SLOTS, context.shape[-1])
    slots_mask = torch.ones(B, TIME_SLOTS, dtype=torch.bool, device=mask.device)
    return torch.cat([context, time_tokens.to(context.dtype)], 1), torch.cat([mask.bool(), slots_mask], 1)
