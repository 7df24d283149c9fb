"""Multi-process smoke run of the shared Trainer on a tiny model.

    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no \
        --dynamo_backend no scripts/accelerate_smoke.py --out runs/smoke

On a GPU-less machine ``--multi_gpu`` gives two CPU processes over gloo (``--cpu`` would silently
run one). Each process writes ``rank<r>.json``: world size, the data indices it trained on, and a
hash of its final weights, so a caller can check that both ranks ran, split the data, and ended
with the same weights. Run plainly (``python scripts/accelerate_smoke.py``) it is the 1-process
reference with the same global batch.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

import torch
from torch import nn


class Regression(torch.utils.data.Dataset):
    def __init__(self, n: int = 64, dim: int = 8):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, dim, generator=g)
        self.y = self.x @ torch.randn(dim, 1, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i], "index": i}


def main() -> None:
    from studio.train import TrainConfig, Trainer

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--global-batch", type=int, default=8)
    args = ap.parse_args()

    seen: list[int] = []

    def objective(model, batch):
        seen.extend(batch["index"].tolist())
        return (model(batch["x"]) - batch["y"]).square().mean()

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 1))
    world = int(os.environ.get("WORLD_SIZE", "1"))  # per-process batch keeps the global batch fixed
    cfg = TrainConfig(output_dir=args.out, max_steps=args.steps, batch_size=args.global_batch // world,
                      optimizer={"lr": 1e-2}, ema={"decay": 0.9}, checkpoint={"every": 3, "keep": 2},
                      log={"every": 1, "progress_bar": False})
    trainer = Trainer(model, objective, Regression(), cfg)
    result = trainer.train()
    weights = trainer.unwrapped_model.state_dict()
    digest = hashlib.sha256(b"".join(weights[k].numpy().tobytes() for k in sorted(weights))).hexdigest()
    acc = trainer.accelerator
    Path(args.out, f"rank{acc.process_index}.json").write_text(json.dumps({
        "rank": acc.process_index,
        "world_size": acc.num_processes,
        "backend": str(acc.state.backend),
        "seen": seen,
        "weights_sha256": digest,
        "weights": {k: v.tolist() for k, v in weights.items()},
        "final_loss": result.loss,
    }))


if __name__ == "__main__":
    main()
