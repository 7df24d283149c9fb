"""Fine-tune a Diffscaler affiner: `python scripts/finetune_diffscaler.py --config datasets/diffscaler/outline.toml`.

`--pretrain-base` first trains the small class-conditional base `models/diffscaler-base`.
"""

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", help="TOML: dataset, steps, method.kind/rank/targets/lr, base, out")
    p.add_argument("--pretrain-base", action="store_true", help="train models/diffscaler-base first")
    p.add_argument("--base-steps", type=int, default=1500)
    p.add_argument("--base-lr", type=float, default=3e-4)
    p.add_argument("--base-resume", action="store_true", help="continue training the saved base")
    args = p.parse_args(argv)
    if not args.config and not args.pretrain_base:
        p.error("give --config and/or --pretrain-base")
    import torch

    torch.set_num_threads(1)  # 1 thread is far faster than 2 on this shared 2-core machine
    if args.pretrain_base:
        from studio.paths import models_dir
        from studio.tasks.diffscaler.base import BASE_NAME, pretrain

        print(pretrain(models_dir() / BASE_NAME, steps=args.base_steps, lr=args.base_lr, resume=args.base_resume,
                       seed=1 if args.base_resume else 0))
    if args.config:
        from studio.tasks.diffscaler.train import main as finetune

        finetune(args.config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
