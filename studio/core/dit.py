"""DiT: a diffusion transformer on 2D latents/images (Peebles & Xie), the core's image backbone.

Patchify (conv) + 2D sincos position table computed for the input's grid → N adaLN-Zero blocks
conditioned on ``c = t_emb + label_emb (+ pooled-text emb)`` → adaLN final layer → unpatchify.
``attention="linear"`` swaps every self-attention for LiT's linear kernel with ``linear_heads`` heads
and nothing else, so a LiT student inherits all non-attention weights of a DiT teacher by name.
Optional cross-attention to text tokens (``context_dim``) sits inside each block.

The maths equals diffusers' ``DiTTransformer2DModel`` (timestep code, label table with a null row,
adaLN-Zero order shift/scale/gate, GELU-tanh MLP, sincos table, final layer, unpatchify), which is
what lets :mod:`studio.core.diffusers_import` load its checkpoints by a key map.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .attention import LinearSpec, SdpaSpec
from .blocks import DiTBlock, FinalLayer
from .embeddings import LabelEmbedder, PatchEmbed2d, TimestepEmbedder, sincos_2d, unpatchify_2d

ATTENTIONS = ("sdpa", "linear")

# Named size presets (DiT paper table 1 + tiny CPU-scale ones); values are constructor kwargs.
DIT_PRESETS: dict[str, dict] = {
    "DiT-XL/2": dict(hidden_size=1152, depth=28, num_heads=16, patch_size=2),
    "DiT-L/2": dict(hidden_size=1024, depth=24, num_heads=16, patch_size=2),
    "DiT-B/2": dict(hidden_size=768, depth=12, num_heads=12, patch_size=2),
    "DiT-S/2": dict(hidden_size=384, depth=12, num_heads=6, patch_size=2),
    "DiT-S/4": dict(hidden_size=384, depth=12, num_heads=6, patch_size=4),
    "DiT-Mini/2": dict(hidden_size=256, depth=6, num_heads=4, patch_size=2),
    "DiT-Tiny/2": dict(hidden_size=128, depth=4, num_heads=4, patch_size=2),
}


class DiT(ModelMixin, ConfigMixin):
    """Class-, text- or un-conditional DiT; ``forward(x, t, y, context, context_mask, pooled)``."""

    _supports_gradient_checkpointing = False

    @register_to_config
    def __init__(
        self,
        sample_size: int = 32,
        patch_size: int = 2,
        in_channels: int = 4,
        hidden_size: int = 384,
        depth: int = 12,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        learn_sigma: bool = True,
        num_classes: int = 0,
        context_dim: int = 0,
        pooled_dim: int = 0,
        attention: str = "sdpa",
        linear_heads: int = 2,
        class_dropout_prob: float = 0.1,
        dwc_kernel: int = 5,
        mlp_norm_eps: float = 1e-6,
    ):
        super().__init__()
        _validate(sample_size, patch_size, hidden_size, num_heads, attention, linear_heads)
        self.out_channels = in_channels * 2 if learn_sigma else in_channels
        self.x_embedder = PatchEmbed2d(patch_size, in_channels, hidden_size)
        self.t_embedder = TimestepEmbedder(hidden_size)
        self.y_embedder = LabelEmbedder(num_classes, hidden_size, class_dropout_prob) if num_classes > 0 else None
        self.pooled_embedder = _zero_mlp(pooled_dim, hidden_size) if pooled_dim > 0 else None
        kernel, heads = (SdpaSpec(), num_heads) if attention == "sdpa" else (LinearSpec(dwc_kernel=dwc_kernel), linear_heads)
        self.blocks = nn.ModuleList(
            DiTBlock(
                hidden_size,
                heads,
                mlp_ratio,
                kernel=kernel,
                context_dim=context_dim or None,
                cross_heads=num_heads,
                mlp_norm_eps=mlp_norm_eps,
            )
            for _ in range(depth)
        )
        self.final_layer = FinalLayer(hidden_size, patch_size * patch_size, self.out_channels)
        self._pos_cache: dict[tuple, torch.Tensor] = {}
        self._init_weights()

    def _init_weights(self) -> None:
        # DiT's initialisation: xavier linears, patch conv like a linear; zero-inits set in the blocks
        # (adaLN, final layer, cross-attention out) are re-applied after this sweep.
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        w = self.x_embedder.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        if self.y_embedder is not None:
            nn.init.normal_(self.y_embedder.embedding_table.weight, std=0.02)
        for block in self.blocks:
            nn.init.zeros_(block.adaLN_modulation.weight)
            nn.init.zeros_(block.adaLN_modulation.bias)
            if block.cross_attn is not None:
                nn.init.zeros_(block.cross_attn.to_out.weight)
        for layer in (self.final_layer.adaLN_modulation, self.final_layer.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        if self.pooled_embedder is not None:
            nn.init.zeros_(self.pooled_embedder[2].weight)

    # ------------------------------------------------------------------ forward

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor | float,
        y: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
        pooled: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, C, H, W) noisy input, timesteps (B,) or scalar → (B, out_channels, H, W)."""
        B, _, H, W = x.shape
        grid = self.x_embedder.grid(x)
        tokens = self.x_embedder(x)  # (B, N, D)
        tokens = tokens + self.pos_embed(grid, tokens.device).to(tokens.dtype)
        c = self.conditioning(B, t, y, pooled, tokens.dtype, tokens.device)  # (B, D)
        if context is not None and self.config.context_dim == 0:
            raise ValueError("context: this DiT has no cross-attention (context_dim = 0)")
        for block in self.blocks:
            tokens = block(tokens, c, grid=grid, context=context, context_mask=context_mask)
        out = self.final_layer(tokens, c)  # (B, N, p·p·C_out)
        return unpatchify_2d(out, self.config.patch_size, grid, self.out_channels)

    def conditioning(self, batch, t, y, pooled, dtype, device) -> torch.Tensor:
        t = torch.as_tensor(t, device=device)
        t = t.expand(batch) if t.dim() == 0 else t
        if t.shape != (batch,):
            raise ValueError(f"t: expected a scalar or shape ({batch},), got {tuple(t.shape)}")
        c = self.t_embedder(t, dtype)  # (B, D)
        if self.y_embedder is not None:
            # no label = the null class (unconditional branch of classifier-free guidance)
            y = self.y_embedder.null(batch, device) if y is None else y
            c = c + self.y_embedder(y).to(c.dtype)
        elif y is not None:
            raise ValueError("y: this DiT is not class-conditional (num_classes = 0)")
        if self.pooled_embedder is not None and pooled is not None:
            c = c + self.pooled_embedder(pooled.to(c.dtype))
        return c

    def pos_embed(self, grid: tuple[int, int], device: torch.device) -> torch.Tensor:
        key = (grid, device)
        table = self._pos_cache.get(key)
        if table is None:
            table = sincos_2d(self.config.hidden_size, *grid, device=device)  # (N, D) float32
            self._pos_cache[key] = table
        return table

    @property
    def attention_names(self) -> list[str]:
        """Module names of the attention projections (LoRA targets, weights LiT does not inherit)."""
        return [n for n, _ in self.named_modules() if n.rsplit(".", 1)[-1] in ("to_q", "to_k", "to_v", "to_out")]


def _zero_mlp(in_dim: int, dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, dim), nn.SiLU(), nn.Linear(dim, dim))


def _validate(sample_size, patch_size, hidden_size, num_heads, attention, linear_heads) -> None:
    if attention not in ATTENTIONS:
        raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
    if sample_size % patch_size:
        raise ValueError(f"sample_size {sample_size} is not divisible by patch_size {patch_size}")
    if hidden_size % 4:
        raise ValueError(f"hidden_size {hidden_size} must be divisible by 4 (2D sincos table)")
    heads = num_heads if attention == "sdpa" else linear_heads
    if hidden_size % heads:
        raise ValueError(f"hidden_size {hidden_size} is not divisible by the head count {heads}")


def dit_from_preset(name: str, **overrides) -> DiT:
    if name not in DIT_PRESETS:
        raise ValueError(f"preset: unknown DiT preset {name!r}; choose from {sorted(DIT_PRESETS)}")
    return DiT(**{**DIT_PRESETS[name], **overrides})
