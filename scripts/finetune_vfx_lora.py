"""Fine-tune a controllable VFX LoRA (peft LoRA + mask branch + temporal control) on the base.

    python scripts/finetune_vfx_lora.py --config datasets/vfx/configs/lora_mixed.toml
"""

from __future__ import annotations

import argparse

import torch

from studio.tasks.vfx.train import main

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="TOML/YAML config with a [lora] section")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (1 is fastest when other processes share the cores)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    main(args.config)
