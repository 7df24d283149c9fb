"""LoRA on a folder of images + captions: `python scripts/finetune_image_lora.py --config datasets/image/lora_outline.toml`."""

import argparse
import json

from studio.tasks.image.finetune import main
from studio.train import parse_overrides

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", required=True, help="TOML/YAML LoraTrainConfig")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (dotted)")
    args = ap.parse_args()
    overrides = parse_overrides(args.set)
    print(json.dumps(main(args.config, overrides), indent=2, default=str))
