"""One training loop for every plugin, on ``accelerate``.

``Trainer(model, objective, dataset, config).train()``: the plugin brings the network, the loss
(``objective(model, batch) -> (loss, logs)``) and a map-style dataset; the loop brings the rest —
devices and processes (accelerate; DDP over gloo on CPU), bf16 autocast, gradient accumulation,
clipping, AdamW + warm-up/cosine, EMA, checkpoints every N steps keeping K, exact resume, samples
every M steps, metrics JSONL, a progress bar and a loss-curve PNG.

Exact resume: a checkpoint holds model, optimizer, LR scheduler, EMA, the python/numpy/torch RNG
states of every process (accelerate) and the data position (epoch, batch index) of the
``ResumableBatchSampler``; sampling runs inside ``preserved_rng`` so it never moves the streams
training draws from. Training 2N steps equals N steps + resume + N steps, bit for bit on CPU.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from studio.train import checkpoints
from studio.train.config import TrainConfig
from studio.train.metrics import MetricsLog, plot_loss_curve
from studio.train.rng import preserved_rng
from studio.train.sampler import ResumableBatchSampler

Objective = Callable[[nn.Module, Any], "tuple[torch.Tensor, Mapping[str, Any]] | torch.Tensor"]
SampleFn = Callable[[nn.Module, int, Path], Any]  # (unwrapped model, step, folder to write into)
StepCallback = Callable[[int, int, Mapping[str, float]], None]  # (step, max_steps, last logs); may raise to stop


@dataclass
class TrainState:
    """The loop's own position; saved in every checkpoint (accelerate custom object)."""

    step: int = 0  # optimizer steps done
    epoch: int = 0
    batch_in_epoch: int = 0  # micro-batches of ``epoch`` already consumed

    def state_dict(self) -> dict[str, int]:
        return asdict(self)

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        self.step, self.epoch, self.batch_in_epoch = int(state["step"]), int(state["epoch"]), int(state["batch_in_epoch"])


@dataclass
class TrainResult:
    step: int
    loss: float | None
    output_dir: Path
    metrics_path: Path
    loss_curve: Path | None
    last_checkpoint: Path | None
    resumed_from: Path | None


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        objective: Objective,
        dataset: Dataset,
        config: TrainConfig,
        sample_fn: SampleFn | None = None,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        step_callback: StepCallback | None = None,
    ):
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        self.config = config
        self.objective, self.dataset = objective, dataset
        self.sample_fn, self.collate_fn, self.step_callback = sample_fn, collate_fn, step_callback
        # Mixed precision is our own autocast (below), not Accelerator(mixed_precision=…): accelerate
        # keeps that setting process-wide, and a worker may train bf16 and fp32 jobs one after another.
        # "auto" = CUDA when present, else CPU. On CPU accelerate must be told so explicitly: only
        # then does a multi-process launch (`accelerate launch --multi_gpu`, torchrun) form a gloo
        # group; without it every process silently trains alone.
        cpu = config.device == "cpu" or not torch.cuda.is_available()
        self.accelerator = Accelerator(
            cpu=cpu,
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=config.find_unused_parameters)],
        )
        self.model = model
        self.state = TrainState()
        self.ema = None
        self.output_dir = Path(config.output_dir)

    # ---- public helpers -------------------------------------------------------------------------

    @property
    def is_main_process(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def unwrapped_model(self) -> nn.Module:
        return self.accelerator.unwrap_model(self.model)

    @contextlib.contextmanager
    def ema_weights(self, enabled: bool = True) -> Iterator[nn.Module]:
        """Temporarily swap the EMA weights into the model (no-op without EMA); yields the model."""
        model = self.unwrapped_model
        if self.ema is None or not enabled:
            yield model
            return
        params = self._trainable()
        self.ema.store(params)
        self.ema.copy_to(params)
        try:
            yield model
        finally:
            self.ema.restore(params)

    def autocast(self):
        bf16 = self.config.mixed_precision == "bf16"
        return torch.autocast(device_type=self.accelerator.device.type, dtype=torch.bfloat16, enabled=bf16)

    # ---- the loop ---------------------------------------------------------------------------------

    def train(self, stop_at: int | None = None) -> TrainResult:
        """Run to ``config.max_steps`` (or stop after step ``stop_at`` with a checkpoint, as a
        preempted job would; ``config.resume = "latest"`` continues from there)."""
        cfg = self.config
        if hasattr(self, "optimizer"):
            raise RuntimeError("a Trainer runs once; build a new one (with resume=\"latest\") to continue")
        end = cfg.max_steps if stop_at is None else min(stop_at, cfg.max_steps)
        # 1. seed, optimizer, schedule, EMA, accelerate wrapping
        self._setup()
        # 2. resume (model, optimizer, scheduler, EMA, RNG, data position, step)
        resumed_from = self._resume()
        metrics = MetricsLog(self.output_dir / "metrics.jsonl", self.state.step if resumed_from else None) \
            if self.is_main_process else None
        # 3. optimizer steps
        batches = self._batches()
        bar = self._progress_bar()
        window: dict[str, float] = {}
        window_n, last_logs, last_loss = 0, {}, None
        last_saved = self.state.step if resumed_from else None
        last_sampled = None
        t0, steps_timed = time.perf_counter(), 0
        self.model.train()
        while self.state.step < end:
            loss_value, logs = self._optimizer_step(batches)
            self.state.step += 1
            steps_timed += 1
            step = self.state.step
            window["loss"] = window.get("loss", 0.0) + loss_value
            for k, v in logs.items():
                window[k] = window.get(k, 0.0) + v
            window_n += 1
            bar.update(1)
            # 4. log every N steps (loss averaged over the window and over processes)
            if step % cfg.log.every == 0 or step == cfg.max_steps:
                last_logs = self._log(metrics, window, window_n, steps_timed / (time.perf_counter() - t0))
                last_loss = last_logs["loss"]
                bar.set_postfix(loss=f"{last_loss:.4g}", lr=f"{last_logs['lr']:.2e}")
                window, window_n = {}, 0
            # 5. samples every M steps, 6. checkpoints every N steps
            if cfg.samples.every and step % cfg.samples.every == 0:
                self._sample(step)
                last_sampled = step
            if cfg.checkpoint.every and step % cfg.checkpoint.every == 0:
                self._save_checkpoint(step)
                last_saved = step
            # last: a callback that raises (a canceled job) leaves this step's checkpoint behind
            if self.step_callback is not None:
                self.step_callback(step, cfg.max_steps, last_logs)
        bar.close()
        # 7. finish: last sample and checkpoint, loss curve
        step = self.state.step
        finished = step >= cfg.max_steps
        if finished and cfg.samples.at_end and last_sampled != step and self.sample_fn is not None:
            self._sample(step)
        if (cfg.checkpoint.at_end or not finished) and last_saved != step:
            self._save_checkpoint(step)
        curve = None
        if self.is_main_process:
            curve = plot_loss_curve(self.output_dir / "metrics.jsonl", self.output_dir / "loss_curve.png")
        self.accelerator.wait_for_everyone()
        return TrainResult(step, last_loss, self.output_dir, self.output_dir / "metrics.jsonl", curve,
                           checkpoints.latest_checkpoint(self.output_dir), resumed_from)

    # ---- steps of the loop --------------------------------------------------------------------------

    def _trainable(self) -> list[nn.Parameter]:
        return [p for p in self.unwrapped_model.parameters() if p.requires_grad]

    def _setup(self) -> None:
        from accelerate.utils import set_seed
        from diffusers.optimization import get_scheduler

        cfg, acc = self.config, self.accelerator
        set_seed(cfg.seed, device_specific=True)  # each process its own stream (seed + rank)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("model: no trainable parameters (everything has requires_grad=False)")
        opt = cfg.optimizer
        optimizer = torch.optim.AdamW(params, lr=opt.lr, betas=opt.betas, weight_decay=opt.weight_decay, eps=opt.eps)
        # not passed through accelerator.prepare: its wrapper steps the schedule once per process
        self.scheduler = get_scheduler(cfg.schedule.name, optimizer, num_warmup_steps=cfg.schedule.warmup_steps,
                                       num_training_steps=cfg.max_steps)
        self.model, self.optimizer = acc.prepare(self.model, optimizer)
        acc.register_for_checkpointing(self.scheduler)
        if cfg.ema is not None:
            from diffusers.training_utils import EMAModel

            e = cfg.ema
            self.ema = EMAModel(self._trainable(), decay=e.decay, update_after_step=e.update_after_step,
                                use_ema_warmup=e.warmup, power=e.power)
            acc.register_for_checkpointing(self.ema)
        acc.register_for_checkpointing(self.state)
        self.sampler = ResumableBatchSampler(len(self.dataset), cfg.batch_size, seed=cfg.seed,
                                             rank=acc.process_index, world_size=acc.num_processes)
        # its own generator: creating a DataLoader iterator must not draw from the global torch RNG
        self.loader = DataLoader(self.dataset, batch_sampler=self.sampler, collate_fn=self.collate_fn,
                                 num_workers=cfg.num_workers, generator=torch.Generator().manual_seed(cfg.seed))
        if self.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "train_config.json").write_text(json.dumps(cfg.to_json_dict(), indent=2))

    def _resume(self) -> Path | None:
        path = checkpoints.resolve_resume(self.output_dir, self.config.resume)
        if path is None:
            return None
        self.accelerator.load_state(str(path))
        self.accelerator.print(f"resumed from {path} at step {self.state.step}")
        return path

    def _batches(self) -> Iterator[Any]:
        """Endless micro-batches from the saved data position on; advances it as they are consumed."""
        from accelerate.utils import send_to_device

        while True:
            self.sampler.set_position(self.state.epoch, self.state.batch_in_epoch)
            for batch in self.loader:
                self.state.batch_in_epoch += 1
                yield send_to_device(batch, self.accelerator.device)
            self.state.epoch += 1
            self.state.batch_in_epoch = 0

    def _optimizer_step(self, batches: Iterator[Any]) -> tuple[float, dict[str, float]]:
        cfg, acc = self.config, self.accelerator
        total, logs = 0.0, {}
        for micro in range(cfg.grad_accum):
            last = micro == cfg.grad_accum - 1
            # DDP all-reduces gradients only on the last micro-batch of the step
            sync = contextlib.nullcontext() if last else acc.no_sync(self.model)
            with sync:
                with self.autocast():
                    out = self.objective(self.model, next(batches))
                loss, extra = (out if isinstance(out, tuple) else (out, {}))
                if not torch.isfinite(loss.detach()):
                    raise FloatingPointError(f"loss is {loss.item()} at step {self.state.step + 1}")
                acc.backward(loss / cfg.grad_accum)
            total += loss.detach().float().item() / cfg.grad_accum
            for k, v in extra.items():
                if k != "loss":  # the returned loss is logged as "loss"; an echo of it must not add twice
                    logs[k] = logs.get(k, 0.0) + float(v) / cfg.grad_accum
        params = self._trainable()
        norm = acc.clip_grad_norm_(params, cfg.max_grad_norm if cfg.max_grad_norm else float("inf"))
        logs["grad_norm"] = float(norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.step(params)
        return total, logs

    def _log(self, metrics: MetricsLog | None, window: dict[str, float], n: int, steps_per_s: float) -> dict[str, float]:
        acc = self.accelerator
        loss = torch.tensor(window["loss"] / n, device=acc.device)
        loss = float(acc.reduce(loss, reduction="mean")) if acc.num_processes > 1 else float(loss)
        record = {"step": self.state.step, "epoch": self.state.epoch, "loss": loss,
                  "lr": self.scheduler.get_last_lr()[0],
                  **{k: v / n for k, v in window.items() if k != "loss"},
                  "samples_per_s": steps_per_s * self.config.batch_size * self.config.grad_accum * acc.num_processes,
                  "time": time.time()}
        if metrics is not None:
            metrics.write(record)
        return record

    def _progress_bar(self):
        from tqdm.auto import tqdm

        show = self.is_main_process and self.config.log.progress_bar
        return tqdm(total=self.config.max_steps, initial=self.state.step, disable=not show, desc="train",
                    dynamic_ncols=True)

    def _sample(self, step: int) -> None:
        if self.sample_fn is None:
            return
        if self.is_main_process:
            out = self.output_dir / "samples" / checkpoints.step_dir_name(step)
            out.mkdir(parents=True, exist_ok=True)
            with preserved_rng(), torch.no_grad(), self.ema_weights(self.config.samples.use_ema) as model:
                was_training = model.training
                model.eval()
                try:
                    with self.autocast():
                        self.sample_fn(model, step, out)
                finally:
                    model.train(was_training)
        self.accelerator.wait_for_everyone()

    def _save_checkpoint(self, step: int) -> Path:
        acc = self.accelerator
        stage = checkpoints.staging_dir(self.output_dir, step)
        stage.mkdir(parents=True, exist_ok=True)
        acc.wait_for_everyone()
        acc.save_state(str(stage))
        acc.wait_for_everyone()  # every process has written its RNG state
        final = checkpoints.checkpoints_dir(self.output_dir) / checkpoints.step_dir_name(step)
        if self.is_main_process:
            (stage / "trainer_state.json").write_text(json.dumps(
                {**self.state.state_dict(), "max_steps": self.config.max_steps,
                 "num_processes": acc.num_processes}, indent=2))
            final = checkpoints.publish(self.output_dir, step, self.config.checkpoint.keep)
        acc.wait_for_everyone()
        return final
