"""Measure what an image style LoRA does: `python scripts/eval_image_lora.py [ADAPTER] [--n 64]`.

FD of the base's generations without → with the adapter against real images of the adapter's style
and of the base's; writes the adapter's samples.png and the measured section of its ADAPTER_CARD.md.
"""

import argparse
import json

from studio.tasks.image.adapter_eval import measure

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("adapter", nargs="?", default="image-outline")
    ap.add_argument("--n", type=int, default=64, help="held-out prompts")
    ap.add_argument("--no-write", action="store_true", help="print only; leave the card and samples alone")
    args = ap.parse_args()
    print(json.dumps(measure(args.adapter, n=args.n, write=not args.no_write), indent=2))
