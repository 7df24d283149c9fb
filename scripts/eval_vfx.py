"""Evaluate the shipped VFX models (same as `studio eval vfx`); writes docs/benchmarks/vfx.md.

    python scripts/eval_vfx.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json

import torch

from studio.tasks.vfx.evaluate import run

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer clips and denoising steps")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    result = run(quick=args.quick)
    print(json.dumps(result, indent=2) if args.json else result)
