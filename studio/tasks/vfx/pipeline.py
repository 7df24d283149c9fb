"""The VFX generator: base video DiT + controllable adapter(s) → clips.

Loading: the base is a diffusers-style folder (``config.json`` + safetensors) under ``models/``;
a controllable adapter is a peft LoRA folder under ``adapters/`` (``studio.lora`` layout) that
also holds ``controls.safetensors`` + ``controls.json`` (the mask branch and temporal control,
which are not LoRA layers). Generation: numbered steps, progress/cancel through the callback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from studio.tasks.vfx.controls import ControlSpec, VfxControls
from studio.tasks.vfx.model import VideoDiT
from studio.tasks.vfx.objective import (NOISE, VfxModel, decode, encode, eps_model_fn, ref_mask_video, to_uint8,
                                        to_unit)
from studio.tasks.vfx.task import GUIDANCE_SCOPES

CONTROLS_FILE = "controls.safetensors"
CONTROLS_CONFIG = "controls.json"


def load_base(name_or_path: str | Path, device: str = "cpu") -> VideoDiT:
    from studio.lora import set_model_id
    from studio.paths import model_path

    path = model_path(str(name_or_path))
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"model: no VFX base model at {path} (train one with scripts/train_vfx.py)")
    dit = VideoDiT.from_pretrained(str(path), torch_dtype=torch.float32).to(device)
    set_model_id(dit, Path(path).name)
    return dit.eval()


def save_controllable_adapter(dit: VideoDiT, controls: VfxControls, name: str, out: Path, record: dict) -> Path:
    from safetensors.torch import save_file

    from studio.lora import save_adapter

    record = {**record, "controls": controls.spec.to_dict()}
    save_adapter(dit, name, out, metadata=record, dtype=torch.bfloat16)
    state = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in controls.state_dict().items()}
    save_file(state, str(out / CONTROLS_FILE), metadata={"adapter": name})
    (out / CONTROLS_CONFIG).write_text(json.dumps(controls.spec.to_dict()))
    return out


def load_controls(dit: VideoDiT, adapter_dir: Path) -> VfxControls | None:
    from safetensors.torch import load_file

    cfg = adapter_dir / CONTROLS_CONFIG
    if not cfg.is_file():
        return None  # a plain LoRA
    controls = VfxControls(dit, ControlSpec.from_dict(json.loads(cfg.read_text())))
    state = {k: v.float() for k, v in load_file(str(adapter_dir / CONTROLS_FILE)).items()}
    controls.load_state_dict(state)
    return controls.eval()


def load_with_adapters(model: str | Path, adapters: tuple[tuple[str, float], ...],
                       device: str = "cpu") -> tuple[VideoDiT, VfxControls | None]:
    """The base with its adapters loaded, and the first adapter's controls (None for plain LoRAs or none)."""
    from studio.lora import load_adapter, resolve_adapter_dir

    dit = load_base(model, device)
    controls = None
    for name, weight in adapters:
        directory = resolve_adapter_dir(name)
        load_adapter(dit, directory, adapter_name=name.replace(".", "_"), weight=weight)
        controls = controls or load_controls(dit, directory)
    return dit, controls


def guidance_map(guidance: float, scope: str, cond: dict[str, Any], T: int, fps: float) -> float | torch.Tensor:
    """Where classifier-free guidance applies; elsewhere the scale is 1 (the plain conditional model).
    ``clip``: every frame and pixel (the usual scalar). ``mask``: inside the instance mask, every frame.
    ``interval``: the frames from the requested start to the requested end, the whole frame. ``effect``: those
    frames inside the mask — only where and when the effect was asked for. Without times the interval is the
    whole clip; without a mask the mask is the whole frame."""
    if scope not in GUIDANCE_SCOPES:
        raise ValueError(f"guidance_scope: {scope!r} is not one of {', '.join(GUIDANCE_SCOPES)}")
    if scope == "clip" or guidance == 1.0:
        return guidance
    return 1.0 + (guidance - 1.0) * guidance_window(scope, cond, T, fps)


def guidance_window(scope: str, cond: dict[str, Any], T: int, fps: float) -> torch.Tensor:
    """1 where guidance of ``scope`` applies, 0 elsewhere: (B, 1, T, 1 or H, 1 or W) (see ``guidance_map``)."""
    ref = cond["ref"]
    window = torch.ones(ref.shape[0], 1, T, 1, 1, device=ref.device)  # (B, 1, T, 1, 1)
    if scope in ("interval", "effect") and "start_s" in cond:
        f = torch.arange(T, device=ref.device, dtype=torch.float32)[None]  # (1, T)
        start, end = ((cond[k].float()[:, None] * fps).round() for k in ("start_s", "end_s"))
        window = ((f >= start) & (f <= end)).float()[:, None, :, None, None]
    if scope in ("mask", "effect") and "mask" in cond:
        window = window * cond["mask"]  # (B, 1, T, H, W)
    return window


@dataclass
class Request:
    """One clip to make; arrays already validated and at the model's size."""

    reference: np.ndarray  # (H, W, 3) uint8
    prompt: str
    mask: np.ndarray | None  # (H, W) bool
    start_s: float | None
    end_s: float | None
    effect: str = ""  # the effect's name, read by an adapter with an effect label ("" = none: its null row)


class VfxPipeline:
    def __init__(self, dit: VideoDiT, controls: VfxControls | None, text: Any, device: str = "cpu",
                 dtype: torch.dtype = torch.float32, adapters: tuple[tuple[str, float], ...] = (),
                 guide: VfxModel | None = None):
        self.model = VfxModel(dit, controls).to(device).eval()
        self.guide = guide.to(device).eval() if guide is not None else None  # the weaker model, for autoguidance
        self.text, self.device, self.dtype = text, device, dtype
        self.adapters = adapters
        self.size = dit.config.sample_size
        self.frames = dit.config.sample_frames
        self.fps = controls.fps if controls is not None else 8.0
        self._effect_guides: dict[str, Any] = {}  # noise-aware effect classifiers by name, loaded on first use

    def effect_guide(self, name: str) -> Any:
        """The effect guide ``name`` (a folder, or a name under models/) for classifier guidance, loaded once."""
        from studio.tasks.vfx.effect_guide import load_effect_guide

        if name not in self._effect_guides:
            self._effect_guides[name] = load_effect_guide(name).to(self.device)
        return self._effect_guides[name]

    @classmethod
    def load(cls, model: str = "vfx-base", adapters: tuple[tuple[str, float], ...] = (), device: str = "cpu",
             dtype: str = "float32", guide: tuple[tuple[str, float], ...] = ()) -> "VfxPipeline":
        """``guide``: adapters of a second copy of the base — a weaker model (e.g. an earlier checkpoint of the
        same adapter) for autoguidance; () = none."""
        from studio.core.text import TextEncoder

        dit, controls = load_with_adapters(model, adapters, device)
        guide_model = VfxModel(*load_with_adapters(model, guide, device)) if guide else None
        torch_dtype = torch.bfloat16 if dtype == "bfloat16" else torch.float32
        return cls(dit, controls, TextEncoder.get(), device, torch_dtype, adapters, guide_model)

    @property
    def has_mask_branch(self) -> bool:
        c = self.model.controls
        return c is not None and c.mask_branch is not None

    @torch.no_grad()
    def generate(self, requests: list[Request], steps: int = 20, generator: torch.Generator | None = None,
                 sampler: str = "ddim", frames: int | None = None, guidance: float = 1.0,
                 callback: Callable[[int, int, torch.Tensor], None] | None = None,
                 frame_noise: float | None = None, guidance_scope: str = "clip",
                 autoguidance: float = 1.0,
                 autoguidance_min_timestep: float = 0.0, init: np.ndarray | None = None,
                 denoise: float = 1.0, guidance_min_timestep: float = 0.0, effect_guidance: float = 0.0,
                 effect_guidance_min_timestep: float = 0.0, effect_guide: str = "vfx-effect-guide",
                 effect_guidance_scope: str = "clip", noise_candidates: int = 1,
                 noise_select_timestep: float = 800.0) -> np.ndarray:
        """Clips for a batch of requests → (B, T, H, W, 3) uint8.

        ``guidance`` > 1 is classifier-free guidance on the prompt: the unguided branch is the same
        request with the empty caption and no effect name (reference, mask and times kept), as adapters
        trained with ``caption_dropout`` learn it. ``guidance_scope`` says where it applies: the whole
        ``clip``, inside the ``mask``, the requested ``interval``, or the ``effect`` (that interval inside the
        mask); see ``guidance_map``; ``guidance_min_timestep`` limits it to the training timesteps t ≥ it.

        ``autoguidance`` w > 1 steps away from the guide model loaded with the pipeline (``load(guide=…)``, a
        weaker adapter such as an earlier checkpoint of this one), given the same request: ε + (w − 1)(ε − ε_guide)
        over the whole clip (``studio.diffusion.AutoGuide``), only at training timesteps t ≥
        ``autoguidance_min_timestep`` (0 = every step).

        ``frame_noise`` is the correlation across frames of the starting noise (None: the ρ the base
        was trained with). A deterministic sampler turns each frame's own share of that noise into
        that frame's own details, which the object keeps changing after its effect has ended; more
        shared noise (as FreeNoise shares noise between frames at inference) keeps them alike.

        ``effect_guidance`` s > 0 is classifier guidance towards each request's ``effect`` by the noise-aware effect
        classifier ``effect_guide`` (``studio.tasks.vfx.effect_guide``; ``studio.diffusion.ClassifierGuide``), only at
        training timesteps t ≥ ``effect_guidance_min_timestep``: one classifier forward and backward per such step.
        ``effect_guidance_scope`` limits its push like ``guidance_scope`` (``guidance_window``).

        ``noise_candidates`` N > 1 starts each request from N noises, runs all of them through the steps with training
        timestep t ≥ ``noise_select_timestep``, and keeps the one the effect guide reads as the requested effect most
        surely (``studio.diffusion.NoiseSelection``): those steps cost N times as much.

        ``init`` clips (B, T, H, W, 3) uint8 with ``denoise`` < 1 are noised to that share of the steps and
        denoised from there (SDEdit; ``studio.diffusion.sample``): a clip to redo rather than to make from noise.
        """
        from studio.diffusion import (AutoGuide, ClassifierGuide, NoiseSelection, mixed_noise, sample,
                                      scheduler_from_spec)
        from studio.tasks.vfx.effect_guide import effect_log_prob_fn

        if noise_candidates < 1:
            raise ValueError(f"noise_candidates: {noise_candidates} must be ≥ 1")
        if autoguidance != 1.0 and self.guide is None:
            raise ValueError("autoguidance: needs a guide model (load the pipeline with guide=… adapters)")
        T = frames or self.frames
        # 1. conditioning: reference, text tokens, mask video, times (and the same without the prompt)
        cond, uncond = self._cond(requests, T, with_uncond=guidance != 1.0)
        # 2. the denoising loop on the residual latent (ẑ0 → ε for the shared sampler), from noise as trained
        scheduler = scheduler_from_spec(sampler, NOISE)
        shape = (len(requests), 3, T, self.size, self.size)
        autocast = torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16,
                                  enabled=self.dtype == torch.bfloat16)
        with autocast:
            rho = self.model.noise_correlation if frame_noise is None else frame_noise
            x_T = mixed_noise((noise_candidates * shape[0], *shape[1:]), rho, dim=2, generator=generator)
            w = guidance_map(guidance, guidance_scope, cond, T, self.fps)
            guide = (AutoGuide(eps_model_fn(self.guide, scheduler), autoguidance, autoguidance_min_timestep)
                     if autoguidance != 1.0 else None)
            s = (effect_guidance if effect_guidance_scope == "clip" or not effect_guidance
                 else effect_guidance * guidance_window(effect_guidance_scope, cond, T, self.fps))
            reads = (effect_log_prob_fn(self.effect_guide(effect_guide))  # log p(requested effect | z_t)
                     if effect_guidance or noise_candidates > 1 else None)
            classifier = (ClassifierGuide(reads, scheduler.alphas_cumprod, s, effect_guidance_min_timestep)
                          if effect_guidance else None)
            selection = (NoiseSelection(torch.no_grad()(reads), noise_candidates, noise_select_timestep)
                         if noise_candidates > 1 else None)
            z = sample(eps_model_fn(self.model, scheduler), shape, scheduler, steps, generator=generator,
                       guidance=w, cond=cond, uncond=uncond, callback=callback, device=self.device, x_T=x_T,
                       guide=guide, denoise=denoise, guidance_min_timestep=guidance_min_timestep, classifier=classifier,
                       selection=selection,
                       init=None if init is None else encode(to_unit(torch.from_numpy(init).to(self.device)),
                                                             cond["ref"]))
        # 3. back to pixels: the reference plus the generated change
        video = decode(z.float(), cond["ref"].float())
        video[:, :, 0] = cond["ref"]  # frame 0 is the reference by definition
        return to_uint8(video).cpu().numpy()

    def _cond(self, requests: list[Request], T: int, with_uncond: bool = False) -> tuple[dict[str, Any], dict | None]:
        B = len(requests)
        ref = torch.stack([torch.from_numpy(r.reference) for r in requests]).to(self.device)
        ref = ref.permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (B, 3, H, W)
        # prompts and empty captions in one call: both come out padded to the same length
        emb = self.text.encode([r.prompt for r in requests] + [""] * (B if with_uncond else 0))
        tokens, mask, pooled = (x.to(self.device) for x in (emb.tokens, emb.mask, emb.pooled))
        cond: dict[str, Any] = {"ref": ref, "context": tokens[:B], "context_mask": mask[:B], "pooled": pooled[:B],
                                "effect": [r.effect for r in requests]}
        if all(r.mask is not None for r in requests):
            masks = torch.stack([torch.from_numpy(r.mask) for r in requests]).to(self.device)
            cond["mask"] = ref_mask_video(masks, T)
        if all(r.start_s is not None and r.end_s is not None for r in requests):
            cond["start_s"] = torch.tensor([r.start_s for r in requests], device=self.device)
            cond["end_s"] = torch.tensor([r.end_s for r in requests], device=self.device)
        uncond = ({**cond, "context": tokens[B:], "context_mask": mask[B:], "pooled": pooled[B:], "effect": [""] * B}
                  if with_uncond else None)
        return cond, uncond
