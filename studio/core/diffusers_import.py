"""Load a diffusers ``DiTTransformer2DModel`` checkpoint into the core :class:`~studio.core.dit.DiT`.

diffusers stores DiT with per-block copies of the timestep/label embedder (``transformer_blocks.i.
norm1.emb``) — its conversion script copies the original DiT's single shared embedder into every
block, and its final layer reads block 0's copy. The core keeps the single shared embedder, so the
import checks that the copies are identical and refuses (naming the first differing block) when a
checkpoint was trained with them untied, instead of silently changing its maths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .dit import DiT

_EMB = "transformer_blocks.{i}.norm1.emb."


class DiffusersImportError(ValueError):
    """The diffusers checkpoint uses a feature the core DiT does not express."""


def dit_from_diffusers(path_or_model: Any, subfolder: str | None = None) -> DiT:
    """A diffusers DiT (a directory with ``config.json`` + weights, a pipeline directory with a
    ``transformer/`` subfolder, or a loaded ``DiTTransformer2DModel``) → core ``DiT`` in eval mode."""
    model = _load_diffusers(path_or_model, subfolder)
    config = core_config(dict(model.config))
    state = model.state_dict()
    _check_tied_embedders(state, config["depth"])
    dit = DiT(**config)
    dit.load_state_dict(map_state_dict(state, config), strict=True)
    return dit.eval()


def _load_diffusers(path_or_model: Any, subfolder: str | None):
    from diffusers import DiTTransformer2DModel

    if isinstance(path_or_model, DiTTransformer2DModel):
        return path_or_model
    path = Path(path_or_model)
    if not path.exists():
        raise FileNotFoundError(f"path: no diffusers checkpoint at {path}")
    if subfolder is None and not (path / "config.json").exists() and (path / "transformer" / "config.json").exists():
        subfolder = "transformer"
    return DiTTransformer2DModel.from_pretrained(path, subfolder=subfolder)


def core_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """diffusers ``DiTTransformer2DModel`` config → core ``DiT`` constructor arguments."""
    if cfg.get("norm_type", "ada_norm_zero") != "ada_norm_zero":
        raise DiffusersImportError(f"norm_type {cfg['norm_type']!r}: only ada_norm_zero DiTs are supported")
    if cfg.get("activation_fn", "gelu-approximate") != "gelu-approximate":
        raise DiffusersImportError(f"activation_fn {cfg['activation_fn']!r}: the core DiT MLP is GELU(tanh)")
    if cfg.get("norm_elementwise_affine", False):
        raise DiffusersImportError("norm_elementwise_affine=True: the core DiT's block norms carry no affine")
    in_ch = cfg["in_channels"]
    out_ch = cfg.get("out_channels") or in_ch
    if out_ch not in (in_ch, 2 * in_ch):
        raise DiffusersImportError(f"out_channels {out_ch}: must be in_channels ({in_ch}) or twice it (learned σ)")
    return dict(
        sample_size=cfg["sample_size"],
        patch_size=cfg["patch_size"],
        in_channels=in_ch,
        hidden_size=cfg["num_attention_heads"] * cfg["attention_head_dim"],
        depth=cfg["num_layers"],
        num_heads=cfg["num_attention_heads"],
        mlp_ratio=4.0,
        learn_sigma=out_ch == 2 * in_ch,
        num_classes=cfg["num_embeds_ada_norm"],
        mlp_norm_eps=cfg.get("norm_eps", 1e-5),
    )


def _check_tied_embedders(state: dict[str, torch.Tensor], depth: int) -> None:
    first = {k[len(_EMB.format(i=0)) :]: v for k, v in state.items() if k.startswith(_EMB.format(i=0))}
    for i in range(1, depth):
        prefix = _EMB.format(i=i)
        for name, ref in first.items():
            if not torch.equal(state[prefix + name], ref):
                raise DiffusersImportError(
                    f"{prefix}{name}: block {i}'s timestep/label embedder differs from block 0's; the core DiT "
                    "shares one embedder (as the original DiT and diffusers' converted checkpoints do)"
                )


def map_state_dict(state: dict[str, torch.Tensor], config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Rename diffusers DiT keys to core DiT keys (the key map)."""
    emb = _EMB.format(i=0)
    out = {
        "x_embedder.proj.weight": state["pos_embed.proj.weight"],
        "x_embedder.proj.bias": state["pos_embed.proj.bias"],
        "t_embedder.mlp.0.weight": state[emb + "timestep_embedder.linear_1.weight"],
        "t_embedder.mlp.0.bias": state[emb + "timestep_embedder.linear_1.bias"],
        "t_embedder.mlp.2.weight": state[emb + "timestep_embedder.linear_2.weight"],
        "t_embedder.mlp.2.bias": state[emb + "timestep_embedder.linear_2.bias"],
        "y_embedder.embedding_table.weight": _with_null_row(
            state[emb + "class_embedder.embedding_table.weight"], config["num_classes"]
        ),
        "final_layer.adaLN_modulation.weight": state["proj_out_1.weight"],
        "final_layer.adaLN_modulation.bias": state["proj_out_1.bias"],
        "final_layer.linear.weight": state["proj_out_2.weight"],
        "final_layer.linear.bias": state["proj_out_2.bias"],
    }
    block_map = {
        "norm1.linear": "adaLN_modulation",
        "attn1.to_q": "attn.to_q",
        "attn1.to_k": "attn.to_k",
        "attn1.to_v": "attn.to_v",
        "attn1.to_out.0": "attn.to_out",
        "ff.net.0.proj": "mlp.fc1",
        "ff.net.2": "mlp.fc2",
    }
    for i in range(config["depth"]):
        for src, dst in block_map.items():
            for param in ("weight", "bias"):
                key = f"transformer_blocks.{i}.{src}.{param}"
                if key in state:
                    out[f"blocks.{i}.{dst}.{param}"] = state[key]
                elif param == "bias":  # attention_bias=False: a zero bias is the same map
                    weight = state[f"transformer_blocks.{i}.{src}.weight"]
                    out[f"blocks.{i}.{dst}.bias"] = weight.new_zeros(weight.shape[0])
    return out


def _with_null_row(table: torch.Tensor, num_classes: int) -> torch.Tensor:
    # diffusers omits the null row when its label dropout is 0; the core always has one
    if table.shape[0] == num_classes:
        return torch.cat([table, torch.zeros_like(table[:1])], dim=0)
    return table
