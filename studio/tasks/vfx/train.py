"""Training entry points: the base video DiT on generic motion, and the controllable effect LoRA.

``studio train vfx CONFIG`` and ``scripts/train_vfx.py`` / ``scripts/finetune_vfx_lora.py`` call
``main(config_path)``: a config with a ``[lora]`` section fine-tunes a controllable LoRA on a base,
one without trains the base. The loop is the shared ``studio.train.Trainer``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from studio.diffusion.schedulers import TimestepBias
from studio.train.config import Section, TrainConfig, load_config

GENERIC = "generic"  # data.effects = ["generic"] → every generic motion
ALL_EFFECTS = "all"  # data.effects = ["all"] → every effect


class ModelSection(Section):
    hidden_size: int = Field(128, ge=16)
    depth: int = Field(4, ge=1)
    num_heads: int = Field(4, ge=1)
    patch_size: tuple[int, int, int] = (2, 4, 4)
    attention: Literal["full", "factorised"] = "full"
    preconditioning: Literal["edm", "gated", "x", "gated_mean"] = "edm"
    frame_noise_correlation: float = Field(0.0, ge=0, lt=1, description="ρ of the noise across frames (PYoCo).")
    caption_dropout: float = Field(0.0, ge=0, lt=1, description="Prompts → '' with this probability (for guidance).")


class DataSection(Section):
    folder: Path | None = Field(None, description="An Open-VFX folder (annotations.json + videos + masks) "
                                "to train on instead of procedural clips; effects/clips/seed then unused.")
    effects: list[str] = [GENERIC]
    clips: int = Field(2000, ge=1)
    seed: int = 0
    size: int = 32
    frames: int = 16


class LoraSection(Section):
    base: str = "vfx-base"  # a name under models/ or a folder
    name: str = "vfx-mixed"
    rank: int = Field(32, ge=1)
    alpha: float = 32.0
    targets: list[str] = ["to_q", "to_k", "to_v", "to_out"]
    temporal: Literal["tokens", "tokens_fourier", "active", "frame_phase", "none"] = "tokens"
    mask_blocks: int = Field(2, ge=0)
    mask_loss_weight: float = Field(0.0, ge=0, description="λ: the loss inside the object's mask weighs 1 + λ.")
    caption_dropout: float = Field(0.0, ge=0, lt=1, description="Prompts → '' with this probability (for guidance).")
    motion_loss_weight: float = Field(0.0, ge=0, description="μ: weight of the frame-to-frame change error.")
    after_end_loss_weight: float = Field(0.0, ge=0, description="Extra weight on the object's frames after the end.")
    skip_mix: bool = Field(False, description="The adapter may mix the skip input across frames (SkipFrameMix), "
                           "so frames that should agree — after the effect's end — share their skip.")
    hold: bool = Field(False, description="The adapter may keep, per pixel, the previous frame's prediction "
                       "(FrameHold), so the object can hold still where the effect has not begun or has ended.")
    hold_loss_weight: float = Field(0.0, ge=0, description="ν: supervise the frame hold towards the true clip's "
                                    "still map (1 where a frame equals the one before) — needs hold = true.")
    effect_label: bool = Field(False, description="The effect's name (--effect) also enters as a class label "
                               "(EffectEmbed: a zero-initialised row per effect in the data, added to the "
                               "conditioning vector), beside the prompt.")
    timestep_bias: TimestepBias = Field(
        "none", description="Draw more training timesteps from the noisiest ('later') or cleanest ('earlier') "
        "portion, as diffusers' --timestep_bias_strategy.")
    timestep_bias_portion: float = Field(0.25, gt=0, le=1, description="The share of the timesteps biased.")
    timestep_bias_multiplier: float = Field(1.0, gt=0, description="How much more often they are drawn (1 = uniform).")
    init_from: str | None = Field(None, description="Start from this controllable adapter's weights (LoRA and "
                                  "controls; a name under adapters/ or a folder) instead of zero, as kohya's "
                                  "--network_weights: e.g. specialise the mixed adapter to one effect. Its rank, "
                                  "targets and controls must be this section's, and it must be on this base.")
    train_base: bool = Field(False, description="Also train every base weight (full fine-tune with the controls); "
                             "the tuned base is exported to <export_dir>/base, the adapter is tied to it.")

    @model_validator(mode="after")
    def _hold_loss_needs_a_hold(self) -> "LoraSection":
        if self.hold_loss_weight and not self.hold:
            raise ValueError("hold_loss_weight: needs hold = true (without a frame hold there is nothing to supervise)")
        return self


class VfxTrainConfig(TrainConfig):
    model: ModelSection = ModelSection()
    data: DataSection = DataSection()
    lora: LoraSection | None = None
    export_dir: Path | None = None  # where the finished model/adapter is written (models/… or adapters/…)


def effect_names(spec: list[str]) -> tuple[str, ...]:
    from studio.tasks.vfx.effects import EFFECT_NAMES, MOTIONS

    out: list[str] = []
    for name in spec:
        out += list(MOTIONS) if name == GENERIC else list(EFFECT_NAMES) if name == ALL_EFFECTS else [name]
    return tuple(out)


def build_dataset(cfg: VfxTrainConfig):
    from studio.tasks.vfx.data import ClipConfig, ClipDataset, FolderClipDataset

    clip_cfg = ClipConfig(size=cfg.data.size, frames=cfg.data.frames)
    if cfg.data.folder is not None:
        return FolderClipDataset(cfg.data.folder, clip_cfg)
    return ClipDataset(effect_names(cfg.data.effects), cfg.data.clips, cfg.data.seed, clip_cfg)


def dataset_id(cfg: VfxTrainConfig, n: int) -> str:
    d = cfg.data
    if d.folder is not None:
        return f"open-vfx-folder:{d.folder}:{n} clips"
    return f"open-vfx-mini:{','.join(d.effects)}:{d.clips}@seed{d.seed}"


def _text():
    from studio.core.text import TextEncoder

    return TextEncoder.get()


def _trainer(model, objective, dataset, cfg: VfxTrainConfig):
    from studio.train import Trainer

    return Trainer(model, objective, dataset, cfg)


def build_dit(cfg: VfxTrainConfig):
    """A fresh base network of the config's size."""
    from studio.tasks.vfx.model import VideoDiT

    m = cfg.model
    return VideoDiT(sample_frames=cfg.data.frames, sample_size=cfg.data.size, patch_size=m.patch_size,
                    hidden_size=m.hidden_size, depth=m.depth, num_heads=m.num_heads, attention=m.attention,
                    preconditioning=m.preconditioning, frame_noise_correlation=m.frame_noise_correlation)


def run_base(cfg: VfxTrainConfig, log=print) -> dict:
    """Train the base on generic motion (no mask, no timing); export ``config.json`` + safetensors."""
    from studio.diffusion import scheduler_from_spec
    from studio.tasks.vfx.objective import NOISE, Objective, VfxModel

    torch.manual_seed(cfg.seed)
    dit = build_dit(cfg)
    t0 = time.time()
    dataset = build_dataset(cfg)
    objective = Objective(scheduler_from_spec("ddpm", NOISE), _text(), use_mask=False, use_time=False,
                          caption_dropout=cfg.model.caption_dropout)
    result = _trainer(VfxModel(dit), objective, dataset, cfg).train()
    record = {"kind": "vfx-base", "steps": result.step, "final_loss": result.loss,
              "train_seconds": round(time.time() - t0, 1), "data": cfg.data.model_dump(),
              "parameters": sum(p.numel() for p in dit.parameters())}
    if cfg.export_dir is not None:
        record["loss_curve"] = LOSS_CURVE if result.loss_curve else None
        export_base(dit, Path(cfg.export_dir), record)
        (Path(cfg.export_dir) / "train_config.json").write_text(json.dumps(cfg.to_json_dict(), indent=2))
        keep_loss_curve(result, Path(cfg.export_dir))
    return record


LOSS_CURVE = "loss_curve.png"


def keep_loss_curve(result, out: Path) -> None:
    """The run's training-loss plot, copied beside the exported weights."""
    import shutil

    if result.loss_curve and Path(result.loss_curve).is_file():
        shutil.copyfile(result.loss_curve, out / LOSS_CURVE)


def round_base_to_bf16(dit) -> None:
    """Round the base weights of a LoRA-injected network to bf16 in place (LoRA weights untouched)."""
    from studio.lora.identity import base_state

    with torch.no_grad():
        for p in base_state(dit).values():
            if p.is_floating_point():
                p.copy_(p.to(torch.bfloat16).float())


def export_tuned_base(dit, out: Path, record: dict) -> Path:
    """The base weights of a LoRA-injected network (``train_base``) as a plain base folder."""
    from studio.lora.identity import base_state
    from studio.tasks.vfx.model import VideoDiT

    plain = VideoDiT(**{k: v for k, v in dit.config.items() if not k.startswith("_")})
    plain.load_state_dict(base_state(dit))
    return export_base(plain, out, record)


def export_base(dit, out: Path, record: dict) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    dit.to(torch.bfloat16).save_pretrained(str(out), safe_serialization=True)
    dit.to(torch.float32)
    (out / "training.json").write_text(json.dumps(record, indent=2, default=str))
    return out


def run_lora(cfg: VfxTrainConfig, log=print) -> dict:
    """Fine-tune a controllable LoRA (peft LoRA + mask branch + temporal control) on the base."""
    from studio.diffusion import scheduler_from_spec, timestep_weights
    from studio.lora import add_lora, load_adapter
    from studio.tasks.vfx.controls import TEMPORAL, ControlSpec, MaskBranchSpec, VfxControls
    from studio.tasks.vfx.objective import NOISE, Objective, VfxModel
    from studio.tasks.vfx.pipeline import load_base

    lc = cfg.lora
    assert lc is not None
    torch.manual_seed(cfg.seed)
    dit = load_base(lc.base)
    if lc.init_from:
        load_adapter(dit, lc.init_from, adapter_name=lc.name, trainable=True)  # refuses an adapter of another base
        check_same_lora(dit, lc)
    else:
        add_lora(dit, lc.name, rank=lc.rank, alpha=lc.alpha, targets=lc.targets)
    t0 = time.time()
    dataset = build_dataset(cfg)
    labels = tuple(n for n in dataset.names if n != "unknown") if lc.effect_label else ()  # unknown → the null row
    spec = ControlSpec(TEMPORAL[lc.temporal], MaskBranchSpec(lc.mask_blocks) if lc.mask_blocks else None,
                       lc.skip_mix, lc.hold, labels)
    controls = VfxControls(dit, spec)
    if lc.init_from:
        start_controls_from(dit, controls, lc.init_from)
    if lc.train_base:
        for name, p in dit.named_parameters():
            p.requires_grad_(p.requires_grad or "lora_" not in name)
    objective = Objective(scheduler_from_spec("ddpm", NOISE), _text(), use_mask=spec.mask is not None,
                          use_time=lc.temporal != "none", mask_weight=lc.mask_loss_weight,
                          caption_dropout=lc.caption_dropout, motion_weight=lc.motion_loss_weight,
                          after_end_weight=lc.after_end_loss_weight, hold_weight=lc.hold_loss_weight,
                          timestep_weights=timestep_weights(NOISE.num_train_timesteps, lc.timestep_bias,
                                                            lc.timestep_bias_portion, lc.timestep_bias_multiplier))
    biased = objective.timestep_weights is not None
    result = _trainer(VfxModel(dit, controls), objective, dataset, cfg).train()
    record = {"steps": result.step, "final_loss": result.loss, "train_seconds": round(time.time() - t0, 1),
              "dataset": dataset_id(cfg, len(dataset)), "controls": spec.to_dict(), "effects": list(dataset.names),
              "mask_loss_weight": lc.mask_loss_weight, "caption_dropout": lc.caption_dropout,
              "motion_loss_weight": lc.motion_loss_weight,
              "after_end_loss_weight": lc.after_end_loss_weight, "hold_loss_weight": lc.hold_loss_weight,
              "train_base": lc.train_base, "init_from": lc.init_from,
              "timestep_bias": (f"{lc.timestep_bias}: {lc.timestep_bias_portion:g} of the timesteps drawn "
                                f"{lc.timestep_bias_multiplier:g}x as often" if biased else "none"),
              "loss_curve": LOSS_CURVE if result.loss_curve else None}
    if cfg.export_dir is not None:
        from studio.tasks.vfx.pipeline import save_controllable_adapter

        if lc.train_base:
            round_base_to_bf16(dit)  # as the tuned base is saved, so the adapter's base hash matches it
        save_controllable_adapter(dit, controls, lc.name, Path(cfg.export_dir), record)
        keep_loss_curve(result, Path(cfg.export_dir))
        if lc.train_base:  # after the adapter: saving an adapter replaces its whole folder
            export_tuned_base(dit, Path(cfg.export_dir) / "base", {"kind": "vfx-base", "tuned_from": lc.base, **record})
    return record


def check_same_lora(dit, lc: LoraSection) -> None:
    """The adapter ``init_from`` loaded must have the rank, alpha and targets the config asks for."""
    got = dit.peft_config[lc.name]
    have = (got.r, float(got.lora_alpha), sorted(got.target_modules))
    want = (lc.rank, float(lc.alpha), sorted(lc.targets))
    if have != want:
        raise ValueError(f"init_from: {lc.init_from!r} has rank, alpha, targets {have}; the config asks {want}")


def start_controls_from(dit, controls, init_from: str) -> None:
    """Copy a trained adapter's controls (mask branch, timestamp tokens, hold…) into ``controls``; the specs must match."""
    from studio.lora import resolve_adapter_dir
    from studio.tasks.vfx.pipeline import load_controls

    trained = load_controls(dit, resolve_adapter_dir(init_from))
    if trained is None or trained.spec != controls.spec:
        have = trained.spec.to_dict() if trained is not None else "none (a plain LoRA)"
        raise ValueError(f"init_from: {init_from!r} has controls {have}; the config asks {controls.spec.to_dict()}")
    controls.load_state_dict(trained.state_dict())


def main(config_path: str | Path, overrides: dict | None = None) -> dict:
    cfg = load_config(config_path, VfxTrainConfig, overrides)
    record = run_lora(cfg) if cfg.lora is not None else run_base(cfg)
    print(json.dumps(record, indent=2, default=str))
    return record


def dit_from_checkpoint(cfg: VfxTrainConfig, step: int):
    """The base network as saved by the Trainer at ``step`` (keys under ``dit.``)."""
    from safetensors.torch import load_file

    from studio.train.checkpoints import checkpoints_dir, step_dir_name

    dit = build_dit(cfg)
    state = load_file(str(checkpoints_dir(Path(cfg.output_dir)) / step_dir_name(step) / "model.safetensors"))
    dit.load_state_dict({k.removeprefix("dit."): v for k, v in state.items() if k.startswith("dit.")})
    return dit.eval()


def compare_layouts(configs: dict[str, Path], step: int, out: Path, val_clips: int = 64) -> dict:
    """Held-out denoising loss of bases trained alike except for the space-time attention layout
    (same size, data, seed, steps), each at its ``step`` checkpoint, on generic-motion clips from a
    seed no run trains on; plus the loss of predicting "nothing moves" on the same clips."""
    from studio.diffusion import scheduler_from_spec
    from studio.tasks.vfx.data import ClipConfig, ClipDataset
    from studio.tasks.vfx.effects import MOTIONS
    from studio.tasks.vfx.objective import LATENT_SCALE, NOISE, Objective, VfxModel, held_out_loss

    val = ClipDataset(tuple(MOTIONS), val_clips, seed=777, cfg=ClipConfig())
    objective = Objective(scheduler_from_spec("ddpm", NOISE), _text(), use_mask=False, use_time=False)
    results: dict = {}
    for layout, config_path in configs.items():
        cfg = load_config(config_path, VfxTrainConfig)
        dit = dit_from_checkpoint(cfg, step)
        rows = [json.loads(x) for x in (Path(cfg.output_dir) / "metrics.jsonl").read_text().splitlines()]
        speed = np.mean([r["samples_per_s"] for r in rows if r["step"] <= step])
        results[layout] = {"held_out_loss": round(held_out_loss(VfxModel(dit), objective, val), 5),
                           "parameters": sum(p.numel() for p in dit.parameters()), "steps": step,
                           "samples_per_s": round(float(speed), 2),
                           "hidden": dit.config.hidden_size, "depth": dit.config.depth}
    results["better"] = min(configs, key=lambda k: results[k]["held_out_loss"])
    # z0 = 2·(frame − reference) in [-1, 1] pixels = 4·(frame − reference)/255 in uint8 units
    zero = np.mean([(LATENT_SCALE * 2 * (c.frames.astype(np.float32) - c.frames[:1]) / 255.0) ** 2 for c in val.clips])
    results["zero_prediction_loss"] = round(float(zero), 5)
    out.write_text(json.dumps(results, indent=2))
    return results


PRECOND_WORDS = {"edm": "EDM skip c_skip·x_t + c_out·F", "x": "the network predicts ẑ0 itself (JiT)",
                 "gated": "EDM skip scaled per pixel by a gate the network outputs, so still pixels shut the noise out",
                 "gated_mean": "EDM skip split into the frames' mean and each frame's deviation, each gated per pixel"}


def write_base_card(model_dir: Path, recipe: str = "base.toml") -> Path:
    """MODEL_CARD.md from what is recorded beside the weights (training record, layout comparison,
    classifier validation) — no number in it is typed by hand."""
    model_dir = Path(model_dir)
    rec = json.loads((model_dir / "training.json").read_text())
    cfg = json.loads((model_dir / "config.json").read_text())
    tc = json.loads((model_dir / "train_config.json").read_text())
    lines = [f"# {model_dir.name} — small video DiT for image animation (VFX Creator base)", "",
             "- architecture: video DiT from `studio.core` blocks (adaLN-Zero, text cross-attention), "
             f"{cfg['attention']} space-time attention, patch {tuple(cfg['patch_size'])}, hidden {cfg['hidden_size']}, "
             f"depth {cfg['depth']}, heads {cfg['num_heads']}, {rec['parameters']:,} parameters, bf16 safetensors",
             f"- input: {cfg['sample_frames']} frames × {cfg['sample_size']}² px at 8 fps; image-to-video by channel-"
             "concatenating the reference frame; MiniLM-L6 text tokens (+ pooled vector); two reserved context "
             "slots (zeros) for the controllable adapters' timestamp tokens",
             "- representation: pixel-space residual from the reference frame, 2·(video − reference); z0-prediction, "
             f"preconditioning `{cfg.get('preconditioning', 'edm')}` ({PRECOND_WORDS[cfg.get('preconditioning', 'edm')]}), "
             "cosine (squaredcos_cap_v2) 1000-step schedule; sample with DDIM or DPM++",
             f"- noise: frame-correlated (PYoCo mixed prior, ρ = {cfg.get('frame_noise_correlation', 0.0)}) in training "
             f"and sampling; prompt dropped for {tc['model'].get('caption_dropout', 0.0):.0%} of training clips "
             "(classifier-free guidance)",
             f"- data: Open-VFX-mini generic motions ({rec['data']['clips']} clips, seed {rec['data']['seed']}; "
             "slides, turn, grow, shrink, fade, still — no effects: those are the adapters' job)",
             f"- training: {rec['steps']} steps, batch {tc['batch_size']}, AdamW lr {tc['optimizer']['lr']} "
             f"({tc['schedule']['name']}, {tc['schedule']['warmup_steps']} warm-up steps), {tc['mixed_precision']} autocast, "
             f"{rec['train_seconds']} s wall on a 2-core CPU (config: `train_config.json`"
             + (f"; training loss: `{rec['loss_curve']}`)" if rec.get("loss_curve") else ")")]
    layouts = model_dir / "layouts.json"
    if layouts.is_file():
        lay = json.loads(layouts.read_text())
        lines.append("- attention layout, measured (held-out denoising loss, same size/data/steps): "
                     + ", ".join(f"{k} {lay[k]['held_out_loss']:.4f}" for k in ("full", "factorised"))
                     + f" after {lay['full']['steps']} steps at hidden {lay['full']['hidden']}, depth {lay['full']['depth']} "
                     "(predicting 'nothing moves': "
                     f"{lay['zero_prediction_loss']:.4f}) → shipped: {lay['better']}")
    clf = model_dir / "effect_classifier.json"
    if clf.is_file():
        c = json.loads(clf.read_text())
        lines.append(f"- `effect_classifier.safetensors`: 3D CNN naming the 11 effects for `studio eval vfx`; "
                     f"validation accuracy on held-out real procedural clips {c['val_accuracy']:.3f} "
                     f"({c['val_clips']} clips, {c['steps']} steps)")
    lines += ["", "Use with the controllable adapters in `adapters/vfx-*` (see `docs/benchmarks/vfx.md` for the "
              f"measured controls). Recipe: `scripts/train_vfx.py --config datasets/vfx/configs/{recipe}`; the "
              "layout was chosen by `--compare` (configs `base_full.toml` / `base_factorised.toml`), the "
              "preconditioning and noise by `scripts/vfx_design_study.py` (`docs/benchmarks/vfx_design.md`).", ""]
    out = model_dir / "MODEL_CARD.md"
    out.write_text("\n".join(lines))
    return out
