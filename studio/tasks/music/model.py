"""Theme Transformer (gated parallel attention) and the prompt-prefix baseline, from core pieces.

Theme Transformer (arXiv 2111.04093 §3): an encoder reads the theme; every decoder layer runs
causal self-attention and cross-attention to the theme *in parallel* on the same input. The gate
``g`` (1 for a token inside a theme region, tracked online by ``grammar.RemiTracker``) switches the
cross branch on; in "parallel" layers the active branches are averaged, in the last half of the
layers ("xor" layers) a token inside a theme region uses only the cross branch. The cross branch's
queries carry the theme-aligned position: the time in sixteenths since the current occurrence
began, coded like the theme tokens' own time, so an occurrence's k-th beat looks up the theme's
k-th beat. (The paper counts tokens; musical time stays aligned when the accompaniment adds
tokens that the melody-only theme does not have.)

The baseline has the same width and depth budget (parameters matched within a few percent) and
reads ``theme SEP song`` with plain causal decoder blocks.
"""

from __future__ import annotations

from typing import Literal

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from studio.core.attention import Attention, KVCache, RopeSpec, SdpaSpec
from studio.core.blocks import DecoderBlock, DecoderCache, EncoderBlock, Mlp
from studio.core.embeddings import sincos_1d

LayerKind = Literal["parallel", "xor"]

PRESETS = {
    # name: (dim, heads, enc_layers, dec_layers); the baseline preset matches parameters
    "tiny": dict(dim=64, heads=4, enc_layers=1, dec_layers=2),
    "small": dict(dim=192, heads=6, enc_layers=2, dec_layers=4),
}


def time_code(dim: int, offsets: torch.Tensor) -> torch.Tensor:
    """(B, N) sixteenth offsets -> (B, N, dim) sincos code of musical time."""
    return sincos_1d(dim, offsets).reshape(*offsets.shape, dim).to(offsets.device)


class GatedParallelLayer(nn.Module):
    """One decoder layer: self- and cross-attention side by side, mixed by the theme gate."""

    def __init__(self, dim: int, heads: int, kind: LayerKind, mlp_ratio: float = 4.0):
        super().__init__()
        self.kind = kind
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, kernel=SdpaSpec(causal=True, rope=RopeSpec()))
        self.norm_cross = nn.LayerNorm(dim)
        self.cross_attn = Attention(dim, heads, SdpaSpec())
        # the theme branch starts as a no-op (flamingo-style): what it adds is learned
        nn.init.zeros_(self.cross_attn.to_out.weight)
        nn.init.zeros_(self.cross_attn.to_out.bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(
        self,
        x: torch.Tensor,  # (B, N, D)
        gate: torch.Tensor,  # (B, N, 1) float: 1 inside a theme region
        theme_pos: torch.Tensor,  # (B, N, D) theme-aligned time code for the cross queries
        theme: torch.Tensor | None,  # (B, M, D) encoded theme; None when the cache holds its keys
        theme_mask: torch.Tensor | None,  # (B, M) bool, True = real theme token
        positions: torch.Tensor | None = None,  # (N,) absolute positions for RoPE
        cache: DecoderCache | None = None,
    ) -> torch.Tensor:
        sa = self.attn(self.norm1(x), kv_cache=cache.self_attn if cache else None, positions=positions)
        ca = self.cross_attn(
            self.norm_cross(x) + theme_pos, context=theme, context_mask=theme_mask,
            kv_cache=cache.cross_attn if cache else None,
        )
        if self.kind == "xor":
            mixed = (1 - gate) * sa + gate * ca  # inside a theme: only the theme
        else:
            mixed = (sa + gate * ca) / (1 + gate)  # inside a theme: the average of both
        x = x + mixed
        return x + self.mlp(self.norm2(x))


class ThemeTransformer(ModelMixin, ConfigMixin):
    config_name = "config.json"

    @register_to_config
    def __init__(self, vocab_size: int, dim: int = 192, heads: int = 6, enc_layers: int = 2, dec_layers: int = 4,
                 mlp_ratio: float = 4.0, context: int = 512, max_theme_tokens: int = 160, pad_id: int = 0):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab_size, dim)
        self.encoder = nn.ModuleList(
            EncoderBlock(dim, heads, mlp_ratio, kernel=SdpaSpec(rope=RopeSpec())) for _ in range(enc_layers)
        )
        self.enc_norm = nn.LayerNorm(dim)
        kinds: list[LayerKind] = ["parallel"] * (dec_layers - dec_layers // 2) + ["xor"] * (dec_layers // 2)
        self.layers = nn.ModuleList(GatedParallelLayer(dim, heads, k, mlp_ratio) for k in kinds)
        self.norm_out = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, vocab_size, bias=False)

    def encode_theme(self, theme: torch.Tensor, theme_offsets: torch.Tensor, theme_mask: torch.Tensor) -> torch.Tensor:
        """(B, M) theme tokens + their times -> (B, M, D) theme memory."""
        h = self.tok_emb(theme) + time_code(self.config.dim, theme_offsets).to(self.tok_emb.weight.dtype)
        pad = theme_mask[:, None, :] & theme_mask[:, :, None]  # (B, M, M): padding attends nowhere useful
        for block in self.encoder:
            h = block(h, attn_mask=pad)
        return self.enc_norm(h)

    def forward(
        self,
        tokens: torch.Tensor,  # (B, N)
        gates: torch.Tensor,  # (B, N) 0/1
        offsets: torch.Tensor,  # (B, N) theme-aligned sixteenths
        theme: torch.Tensor | None,  # (B, M, D) from encode_theme, or None with warm caches
        theme_mask: torch.Tensor | None,
        positions: torch.Tensor | None = None,
        caches: list[DecoderCache] | None = None,
    ) -> torch.Tensor:
        x = self.tok_emb(tokens)  # (B, N, D)
        gate = gates.to(x.dtype)[..., None]  # (B, N, 1)
        tpos = time_code(self.config.dim, offsets).to(x.dtype)  # (B, N, D)
        for i, layer in enumerate(self.layers):
            x = layer(x, gate, tpos, theme, theme_mask, positions, caches[i] if caches else None)
        return self.lm_head(self.norm_out(x))  # (B, N, V)


class PromptDecoder(ModelMixin, ConfigMixin):
    """Baseline: decoder-only LM over ``theme SEP song`` (theme as a prompt prefix)."""

    config_name = "config.json"

    @register_to_config
    def __init__(self, vocab_size: int, dim: int = 192, heads: int = 6, n_layers: int = 7, mlp_ratio: float = 4.0,
                 context: int = 672, pad_id: int = 0):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab_size, dim)
        kernel = SdpaSpec(causal=True, rope=RopeSpec())
        self.layers = nn.ModuleList(DecoderBlock(dim, heads, mlp_ratio, kernel=kernel, cross=False) for _ in range(n_layers))
        self.norm_out = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, vocab_size, bias=False)

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor | None = None,
                caches: list[DecoderCache] | None = None) -> torch.Tensor:
        x = self.tok_emb(tokens)  # (B, N, D)
        for i, block in enumerate(self.layers):
            x = block(x, cache=caches[i] if caches else None, positions=positions)
        return self.lm_head(self.norm_out(x))  # (B, N, V)


def baseline_layers_matching(dim: int, enc_layers: int, dec_layers: int) -> int:
    """Decoder depth whose parameter count best matches the theme model's.

    An encoder block holds ~12·D² parameters, a gated layer ~16·D² (one more attention), a plain
    decoder block ~12·D²: the baseline gets the rounded total.
    """
    return round((12 * enc_layers + 16 * dec_layers) / 12)


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def trim_cache(cache: KVCache, window: int) -> None:
    """Keep the newest ``window`` keys/values (sliding window; RoPE keeps relative positions)."""
    if cache.k is not None and cache.k.shape[2] > window:
        cache.k = cache.k[:, :, -window:]  # (B, h, window, dh)
        cache.v = cache.v[:, :, -window:]
