"""The image models: a text-conditioned DiT teacher and its LiT student, and weight inheritance.

Both are the core :class:`~studio.core.dit.DiT`; the student differs only in ``attention="linear"``
(LiT's ReLU linear attention, few heads, 5×5 depthwise conv on V). Inheritance (LiT guideline 4)
copies every teacher tensor except the self-attention projections ``to_q/to_k/to_v/to_out``;
those and the new depthwise conv keep their fresh initialisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from studio.core.dit import DiT
from studio.core.text import TEXT_DIM

# Size presets of this plugin (constructor kwargs of the core DiT), CPU scale.
IMAGE_PRESETS: dict[str, dict] = {
    "image-tiny": dict(hidden_size=128, depth=4, num_heads=4, patch_size=4),  # the shipped size (CPU budget)
    "image-tiny/2": dict(hidden_size=128, depth=4, num_heads=4, patch_size=2),
    "image-small": dict(hidden_size=192, depth=6, num_heads=6, patch_size=2),
    "image-micro": dict(hidden_size=64, depth=2, num_heads=2, patch_size=2),  # tests
}
NOT_INHERITED = ("to_q", "to_k", "to_v", "to_out")


def image_dit(preset: str = "image-tiny", attention: str = "sdpa", sample_size: int = 32, linear_heads: int = 2,
              **overrides) -> DiT:
    """A text-to-image DiT (RGB pixels, learned σ, MiniLM tokens + pooled vector)."""
    if preset not in IMAGE_PRESETS:
        raise ValueError(f"preset: unknown {preset!r}; choose from {', '.join(IMAGE_PRESETS)}")
    kwargs = dict(IMAGE_PRESETS[preset], sample_size=sample_size, in_channels=3, learn_sigma=True,
                  context_dim=TEXT_DIM, pooled_dim=TEXT_DIM, attention=attention, linear_heads=linear_heads,
                  num_classes=0)
    kwargs.update(overrides)
    return DiT(**kwargs)


def student_config(teacher: DiT, linear_heads: int = 2) -> dict:
    """The teacher's config with every self-attention made linear (LiT: same macro design)."""
    cfg = {k: v for k, v in teacher.config.items() if not k.startswith("_")}
    cfg.update(attention="linear", linear_heads=linear_heads)
    return cfg


def _is_self_attention_projection(key: str) -> bool:
    parts = key.split(".")
    # blocks.{i}.attn.to_q.weight — cross-attention (``cross_attn``) is inherited like the MLP
    return len(parts) >= 3 and parts[-3] == "attn" and parts[-2] in NOT_INHERITED


@dataclass
class InheritReport:
    loaded: list[str]  # copied from the teacher
    new: list[str]  # student keys kept at their initialisation (attention projections, DWC)
    skipped: list[str]  # teacher keys not copied (its attention projections)

    def summary(self) -> str:
        return f"inherited {len(self.loaded)} tensors; new {len(self.new)}; teacher tensors not used {len(self.skipped)}"


def inherit_weights(student: DiT, teacher: DiT) -> InheritReport:
    """Copy every teacher tensor into ``student`` except self-attention to_q/to_k/to_v/to_out."""
    s_state, t_state = student.state_dict(), teacher.state_dict()
    loaded, skipped = [], []
    with torch.no_grad():
        for key, value in t_state.items():
            if _is_self_attention_projection(key) or key not in s_state:
                skipped.append(key)
                continue
            if s_state[key].shape != value.shape:
                raise ValueError(f"inherit: {key} has shape {tuple(value.shape)} in the teacher and "
                                 f"{tuple(s_state[key].shape)} in the student")
            s_state[key].copy_(value)
            loaded.append(key)
    new = sorted(set(s_state) - set(loaded))
    return InheritReport(sorted(loaded), new, sorted(skipped))


def make_student(teacher: DiT, linear_heads: int = 2, inherit: bool = True, seed: int = 0) -> tuple[DiT, InheritReport | None]:
    """A LiT student for ``teacher``: fresh (``inherit=False``, "scratch") or with inherited weights."""
    torch.manual_seed(seed)
    student = DiT(**student_config(teacher, linear_heads))
    report = inherit_weights(student, teacher) if inherit else None
    return student, report
